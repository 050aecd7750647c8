namespace Natd.Dataplane.Alg;

/// <summary>
/// Sequence-number correction of one direction of a TCP connection whose payload an ALG resized,
/// as Linux netfilter's <c>nf_ct_seqadj</c> keeps it: segments of this direction that start after
/// <see cref="CorrectionPos"/> are shifted by <see cref="OffsetAfter"/>, earlier ones by
/// <see cref="OffsetBefore"/>; acknowledgments (and SACK blocks, RFC 2018) of the other direction
/// are shifted back the same way. Sequence numbers are host order, compared modulo 2^32 (RFC 793
/// section 3.3).
/// </summary>
public struct SeqAdjustWay
{
    /// <summary>Original (sender's) sequence number of the segment that held the last resizing edit.</summary>
    public uint CorrectionPos;

    /// <summary>Bytes added (negative: removed) before the segment at <see cref="CorrectionPos"/>.</summary>
    public int OffsetBefore;

    /// <summary>Bytes added (negative: removed) up to and including the segment at <see cref="CorrectionPos"/>.</summary>
    public int OffsetAfter;

    /// <summary>True when no edit ever changed a length in this direction.</summary>
    public readonly bool IsIdentity => OffsetBefore == 0 && OffsetAfter == 0;

    /// <summary>
    /// Records that the segment with original sequence <paramref name="seq"/> grew by
    /// <paramref name="delta"/> bytes. Like netfilter, only an edit at or after the current
    /// correction position is tracked: a later segment moves the position, further edits of the
    /// segment at the position add up (several lines of one segment); an older segment would need a
    /// second position and is not tracked.
    /// </summary>
    /// <returns>False when the edit could not be recorded (an older segment).</returns>
    public bool Record(uint seq, int delta)
    {
        if (delta == 0)
        {
            return true;
        }
        if (!CanRecord(seq))
        {
            return false;
        }
        if (seq != CorrectionPos || IsIdentity)
        {
            CorrectionPos = seq;
            OffsetBefore = OffsetAfter;
        }
        OffsetAfter += delta;
        return true;
    }

    /// <summary>True when a length change in the segment at <paramref name="seq"/> can be tracked (see <see cref="Record"/>).</summary>
    public readonly bool CanRecord(uint seq) => OffsetBefore == OffsetAfter || seq == CorrectionPos || SeqMath.After(seq, CorrectionPos);

    /// <summary>The sequence number on the wire for a segment the sender numbered <paramref name="seq"/>.</summary>
    public readonly uint MapSeq(uint seq) => seq + (uint)(SeqMath.After(seq, CorrectionPos) ? OffsetAfter : OffsetBefore);

    /// <summary>The sender's numbering for an acknowledgment (or SACK edge) <paramref name="ack"/> the peer sent about the edited stream.</summary>
    public readonly uint UnmapAck(uint ack) => ack - (uint)(SeqMath.After(ack - (uint)OffsetBefore, CorrectionPos) ? OffsetAfter : OffsetBefore);
}

/// <summary>Modulo 2^32 comparison of TCP sequence numbers (RFC 793 section 3.3; RFC 1982 style).</summary>
public static class SeqMath
{
    /// <summary>True when <paramref name="a"/> comes strictly after <paramref name="b"/>.</summary>
    public static bool After(uint a, uint b) => (int)(a - b) > 0;
}

/// <summary>
/// Everything a TCP ALG remembers about one connection's edits: the sequence correction of both
/// directions and, per direction, the last edited segment (all its rewrites), so a retransmission of
/// it (same original bytes at the same sequence number, possibly coalesced with neighbouring data)
/// gets exactly the same bytes without applying the length change twice.
/// </summary>
public sealed class TcpStreamEdits
{
    private SeqAdjustWay _in2Out;
    private SeqAdjustWay _out2In;
    private readonly LastEdit[] _last = [new(), new()];

    /// <summary>The correction of segments travelling in <paramref name="direction"/>.</summary>
    public ref SeqAdjustWay Way(AlgDirection direction)
    {
        if (direction == AlgDirection.In2Out)
        {
            return ref _in2Out;
        }
        return ref _out2In;
    }

    /// <summary>
    /// If <paramref name="buffer"/>'s segment carries (again) all the original bytes of the last
    /// edited segment of its direction, puts the bytes that went out in their place: same
    /// rewrites, no new correction.
    /// </summary>
    /// <returns>True when the frame was rewritten (<paramref name="length"/> and <paramref name="segment"/> updated).</returns>
    public bool TryReplay(AlgDirection direction, Span<byte> buffer, ref int length, ref FrameLayout segment)
    {
        LastEdit e = _last[(int)direction];
        if (e.Original is null || e.Result is null)
        {
            return false;
        }
        uint seq = segment.Seq(buffer);
        int at = (int)(e.Seq - seq);
        Span<byte> payload = segment.Payload(buffer);
        if (at < 0 || at > payload.Length - e.Original.Length
            || !payload.Slice(at, e.Original.Length).SequenceEqual(e.Original))
        {
            return false;
        }
        return TcpRewriter.Splice(buffer, ref length, ref segment, at, e.Original.Length, e.Result);
    }

    /// <summary>
    /// A retransmission that reaches into the last edited segment of its direction without holding
    /// all of it (the sender re-cut its data) is cut where that segment starts (FIN cleared): its
    /// original bytes must never reach the receiver in place of the rewritten ones it may lack. The
    /// sender sends the rest again, usually coalesced (<see cref="TryReplay"/> then matches).
    /// </summary>
    /// <returns>True when the frame was cut.</returns>
    public bool CutPartialUnit(AlgDirection direction, Span<byte> buffer, ref int length, ref FrameLayout segment)
    {
        LastEdit e = _last[(int)direction];
        if (e.Original is null)
        {
            return false;
        }
        uint seq = segment.Seq(buffer);
        uint end = seq + (uint)segment.PayloadLength;
        uint unitEnd = e.Seq + (uint)e.Original.Length;
        if (!SeqMath.After(end, e.Seq) || !SeqMath.After(unitEnd, seq))
        {
            return false; // no overlap
        }
        int keep = SeqMath.After(e.Seq, seq) ? (int)(e.Seq - seq) : 0;
        TcpRewriter.Splice(buffer, ref length, ref segment, keep, segment.PayloadLength - keep, []);
        if ((buffer[segment.L4Offset + 13] & Packets.Tcp.Fin) != 0)
        {
            buffer[segment.L4Offset + 13] &= unchecked((byte)~Packets.Tcp.Fin);
            TcpRewriter.FixTcpChecksum(buffer, segment);
        }
        return true;
    }

    /// <summary>
    /// Remembers the last edited segment of <paramref name="direction"/>: its original sequence
    /// number, the original bytes that went out in it and the bytes that replaced them, so a
    /// retransmission gets the same rewrite (<see cref="TryReplay"/>). The length change itself is
    /// recorded by the caller in <see cref="Way"/>.
    /// </summary>
    public void Remember(AlgDirection direction, uint seq, ReadOnlySpan<byte> original, ReadOnlySpan<byte> result)
    {
        _last[(int)direction] = new LastEdit { Seq = seq, Original = original.ToArray(), Result = result.ToArray() };
    }

    /// <summary>
    /// Applies the corrections to a segment travelling in <paramref name="direction"/>: its
    /// sequence number by this direction's correction, its acknowledgment number (when ACK is set)
    /// and SACK blocks by the other direction's. Does not fix the checksum.
    /// </summary>
    /// <returns>True when a field changed.</returns>
    public bool Adjust(AlgDirection direction, Span<byte> buffer, in FrameLayout segment)
    {
        ref SeqAdjustWay self = ref Way(direction);
        ref SeqAdjustWay other = ref Way(direction == AlgDirection.In2Out ? AlgDirection.Out2In : AlgDirection.In2Out);
        return TcpRewriter.AdjustSeqAck(buffer, segment, self, other);
    }

    private sealed class LastEdit
    {
        public uint Seq;
        public byte[]? Original;
        public byte[]? Result;
    }
}
