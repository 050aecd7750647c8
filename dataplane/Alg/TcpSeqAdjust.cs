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
    /// correction position moves it (a second edit of the same segment, or an older one, would need
    /// more than one position and is not tracked).
    /// </summary>
    /// <returns>False when the edit could not be recorded (an older segment).</returns>
    public bool Record(uint seq, int delta)
    {
        if (delta == 0)
        {
            return true;
        }
        if (CanRecord(seq))
        {
            CorrectionPos = seq;
            OffsetBefore = OffsetAfter;
            OffsetAfter += delta;
            return true;
        }
        return false;
    }

    /// <summary>True when a length change in the segment at <paramref name="seq"/> can be tracked (see <see cref="Record"/>).</summary>
    public readonly bool CanRecord(uint seq) => OffsetBefore == OffsetAfter || SeqMath.After(seq, CorrectionPos);

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
/// directions and, per direction, the last edit made, so a retransmission of the edited segment
/// (same original bytes at the same sequence number, possibly coalesced with neighbouring data)
/// gets exactly the same rewrite without applying the length change twice.
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
    /// If <paramref name="buffer"/>'s segment carries (again) the original bytes of the last edit of
    /// its direction, re-applies that edit: same replacement bytes, no new correction.
    /// </summary>
    /// <returns>True when the frame was rewritten (<paramref name="length"/> and <paramref name="segment"/> updated).</returns>
    public bool TryReplay(AlgDirection direction, Span<byte> buffer, ref int length, ref FrameLayout segment)
    {
        LastEdit e = _last[(int)direction];
        if (e.Original is null || e.Replacement is null)
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
        return TcpRewriter.Splice(buffer, ref length, ref segment, at + e.EditOffset, e.EditLength, e.Replacement);
    }

    /// <summary>
    /// Replaces payload bytes [<paramref name="offset"/>, <paramref name="offset"/> + <paramref name="removeLength"/>)
    /// by <paramref name="replacement"/> in a segment whose payload begins a unit (a command line) of
    /// <paramref name="unitLength"/> bytes, records the length change and remembers the edit for
    /// retransmissions. <paramref name="segment"/> must be the unadjusted segment (original sequence).
    /// </summary>
    /// <returns>False, frame untouched, when the result does not fit the buffer or the change cannot be tracked.</returns>
    public bool TryEdit(AlgDirection direction, Span<byte> buffer, ref int length, ref FrameLayout segment,
        int offset, int removeLength, ReadOnlySpan<byte> replacement, int unitLength)
    {
        uint seq = segment.Seq(buffer);
        ref SeqAdjustWay way = ref Way(direction);
        int delta = replacement.Length - removeLength;
        if (delta != 0 && !way.CanRecord(seq))
        {
            return false; // an edit before the last one would need a second correction position
        }
        if ((uint)unitLength > (uint)segment.PayloadLength || offset < 0 || removeLength < 0 || offset + removeLength > unitLength)
        {
            return false;
        }
        byte[] original = segment.Payload(buffer)[..unitLength].ToArray();
        if (!TcpRewriter.Splice(buffer, ref length, ref segment, offset, removeLength, replacement))
        {
            return false;
        }
        way.Record(seq, delta);
        _last[(int)direction] = new LastEdit
        {
            Seq = seq,
            Original = original,
            EditOffset = offset,
            EditLength = removeLength,
            Replacement = replacement.ToArray(),
        };
        return true;
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
        public int EditOffset;
        public int EditLength;
        public byte[]? Replacement;
    }
}
