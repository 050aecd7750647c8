using System.Buffers.Binary;
using DotNetty.Buffers;
using Natd.Dataplane.Packets;

namespace Natd.Dataplane.Alg;

/// <summary>
/// The one buffer allocator of the ALG layer (docs/architecture.md, "ALG control streams"): DotNetty's
/// pooled heap allocator, used only for the cumulation buffers of ALG control connections
/// (<see cref="TcpStreamHold"/>), never on the per-packet path (a pooled buffer costs an object of
/// about 96 bytes, and nothing in DotNetty wraps a UMEM frame).
/// </summary>
public static class AlgBuffers
{
    /// <summary>
    /// One heap arena of 64 KiB chunks (4 KiB pages, order 4): held bytes are at most a line or a
    /// message header per connection, so the default 16 MiB chunk would only waste memory.
    /// </summary>
    public static IByteBufferAllocator Allocator { get; } = new PooledByteBufferAllocator(false, 1, 0, 4096, 4);
}

/// <summary>What <see cref="TcpStreamHold.Merge"/> did with a segment of a direction that holds bytes.</summary>
public enum HoldMerge : byte
{
    /// <summary>Nothing is held: the segment is handled as usual.</summary>
    None,
    /// <summary>The segment lies before the held bytes (a retransmission of forwarded data), cut where the held bytes start.</summary>
    Before,
    /// <summary>The frame now carries the held bytes and the segment's new ones, from the held bytes' sequence number; nothing is held any more.</summary>
    Merged,
    /// <summary>The segment brought nothing new next to the held bytes (a retransmission of them, or data beyond a gap): its payload was removed, the frame goes on as an acknowledgment.</summary>
    Absorbed,
    /// <summary>The held bytes went out unchanged in this frame (the sender keeps re-sending only them, or held and new bytes do not fit one frame): count the line as refused.</summary>
    GaveUp,
}

/// <summary>
/// The bytes of one direction of an ALG's TCP control connection that natd has taken off the wire
/// because they begin a command or message it may have to rewrite but that is not complete yet
/// (docs/architecture.md, "ALG control streams"). The receiver has not seen them: natd forwarded the
/// segment without them, so the sender gets no acknowledgment for them. When the rest arrives,
/// <see cref="Merge"/> puts held and new bytes in one segment starting at the held bytes' sequence
/// number, which the ALG then parses (and rewrites) as if the sender had sent it so. Sequence
/// numbers are the sender's (original) numbering, host order, compared modulo 2^32 (RFC 793 3.3).
/// Single threaded (the ALG's helper). The cumulation buffer is a pooled DotNetty buffer, taken when
/// bytes are first held and given back by <see cref="Release"/> when the connection ends.
/// </summary>
public sealed class TcpStreamHold
{
    /// <summary>Retransmissions of only the held bytes after which they are sent unchanged (the sender waits for an acknowledgment, e.g. Nagle, before it sends the rest).</summary>
    public const int RetransmitsBeforePassThrough = 2;

    private IByteBuffer? _buffer;
    private int _retransmits;

    /// <summary>Sequence number of the first held byte (the receiver's next expected byte while <see cref="Length"/> &gt; 0).</summary>
    public uint Seq { get; private set; }

    /// <summary>Held bytes; 0 when nothing is held.</summary>
    public int Length { get; private set; }

    /// <summary>True while a cumulation buffer is taken (tests: released when the connection ends).</summary>
    public bool HasBuffer => _buffer is not null;

    /// <summary>
    /// Takes the payload bytes from <paramref name="payloadOffset"/> to the end off the frame and holds
    /// them; the frame keeps the bytes before (its IPv4 length and checksums are fixed). The caller
    /// must have checked the frame carries no FIN (the stream ends there: nothing more will come).
    /// </summary>
    /// <param name="buffer">The frame.</param>
    /// <param name="length">Frame length; updated.</param>
    /// <param name="segment">The parsed frame; updated.</param>
    /// <param name="payloadOffset">First payload byte to hold.</param>
    /// <param name="seq">That byte's sequence number (the sender's numbering).</param>
    /// <param name="cap">Most bytes that may be held (a line or message limit).</param>
    /// <returns>False, nothing changed, when the bytes exceed <paramref name="cap"/>.</returns>
    public bool HoldTail(Span<byte> buffer, ref int length, ref FrameLayout segment, int payloadOffset, uint seq, int cap)
    {
        int n = segment.PayloadLength - payloadOffset;
        if (n <= 0 || n > cap || Length != 0)
        {
            return false;
        }
        _buffer ??= AlgBuffers.Allocator.HeapBuffer(Math.Min(cap, 256), cap);
        _buffer.Clear();
        _buffer.EnsureWritable(n);
        ArraySegment<byte> to = _buffer.GetIoBuffer(_buffer.WriterIndex, n);
        segment.Payload(buffer).Slice(payloadOffset, n).CopyTo(to.AsSpan());
        _buffer.SetWriterIndex(_buffer.WriterIndex + n);
        Seq = seq;
        Length = n;
        _retransmits = 0;
        return TcpRewriter.Splice(buffer, ref length, ref segment, payloadOffset, n, []);
    }

    /// <summary>
    /// Fits a segment of this direction around the held bytes [<see cref="Seq"/>, <see cref="Seq"/> + <see cref="Length"/>):
    /// <list type="bullet">
    /// <item>ending at or before them: a retransmission of forwarded bytes, untouched (<see cref="HoldMerge.Before"/>);</item>
    /// <item>starting before and reaching into them: cut at <see cref="Seq"/> (FIN cleared), so the receiver never gets
    /// part of a line that may still be rewritten; the sender sends the rest again (<see cref="HoldMerge.Before"/>);</item>
    /// <item>starting within or right after them with new bytes (or a FIN): held and new bytes become the frame's
    /// payload from <see cref="Seq"/> (<see cref="HoldMerge.Merged"/>); when they do not fit the frame buffer, the
    /// held bytes alone go out unchanged and the new ones are dropped for the sender to send again (<see cref="HoldMerge.GaveUp"/>);</item>
    /// <item>only repeating held bytes: payload removed (<see cref="HoldMerge.Absorbed"/>), until the
    /// <see cref="RetransmitsBeforePassThrough"/>-th such retransmission, which sends the held bytes unchanged (<see cref="HoldMerge.GaveUp"/>);</item>
    /// <item>starting beyond them (a gap): payload removed, as it would land at the wrong place once a rewrite
    /// changes the held line's length (<see cref="HoldMerge.Absorbed"/>).</item>
    /// </list>
    /// Held bytes that are repeated are trusted to be the same (TCP sends the same bytes at the same sequence number).
    /// </summary>
    public HoldMerge Merge(Span<byte> buffer, ref int length, ref FrameLayout segment)
    {
        if (Length == 0)
        {
            return HoldMerge.None;
        }
        uint s = segment.Seq(buffer);
        int payloadLength = segment.PayloadLength;
        uint e = s + (uint)payloadLength;
        uint heldEnd = Seq + (uint)Length;
        bool fin = (segment.Flags(buffer) & Tcp.Fin) != 0;
        if (payloadLength == 0 && !fin)
        {
            return HoldMerge.None; // an acknowledgment: nothing to fit
        }
        if (!SeqMath.After(e, Seq))
        {
            return HoldMerge.Before;
        }
        if (SeqMath.After(Seq, s))
        {
            int keep = (int)(Seq - s);
            TcpRewriter.Splice(buffer, ref length, ref segment, keep, payloadLength - keep, []);
            ClearFlags(buffer, segment, Tcp.Fin);
            return HoldMerge.Before;
        }
        if (SeqMath.After(s, heldEnd))
        {
            Absorb(buffer, ref length, ref segment);
            return HoldMerge.Absorbed;
        }
        int repeated = (int)Math.Min((long)(heldEnd - s), payloadLength);
        if (repeated == payloadLength && !fin)
        {
            if (++_retransmits < RetransmitsBeforePassThrough)
            {
                Absorb(buffer, ref length, ref segment);
                return HoldMerge.Absorbed;
            }
            PutHeld(buffer, ref length, ref segment, repeated, dropAfter: true);
            return HoldMerge.GaveUp;
        }
        if (segment.PayloadOffset + Length + (payloadLength - repeated) > buffer.Length
            || segment.TotalLength + Length - repeated > ushort.MaxValue)
        {
            PutHeld(buffer, ref length, ref segment, payloadLength, dropAfter: true);
            return HoldMerge.GaveUp;
        }
        PutHeld(buffer, ref length, ref segment, repeated, dropAfter: false);
        return HoldMerge.Merged;
    }

    /// <summary>
    /// A RST of this direction: held bytes will never be delivered. When the RST's sequence number is
    /// just past them (the sender's next byte), it is moved back to <see cref="Seq"/>, the receiver's
    /// next expected byte, so the receiver accepts it (RFC 5961 section 3.2 wants an exact match).
    /// Lets the held bytes go; the buffer stays until <see cref="Release"/>.
    /// </summary>
    public void OnReset(Span<byte> buffer, in FrameLayout segment)
    {
        if (Length != 0 && segment.Seq(buffer) == Seq + (uint)Length)
        {
            BinaryPrimitives.WriteUInt32BigEndian(buffer[(segment.L4Offset + 4)..], Seq);
            TcpRewriter.FixTcpChecksum(buffer, segment);
        }
        Length = 0;
    }

    /// <summary>Drops held bytes and gives the cumulation buffer back to the pool (the connection ended).</summary>
    public void Release()
    {
        Length = 0;
        _buffer?.Release();
        _buffer = null;
    }

    /// <summary>Replaces the first <paramref name="replace"/> payload bytes by the held bytes and sets the frame's sequence number to <see cref="Seq"/>; nothing is held afterwards.</summary>
    private void PutHeld(Span<byte> buffer, ref int length, ref FrameLayout segment, int replace, bool dropAfter)
    {
        ArraySegment<byte> held = _buffer!.GetIoBuffer(_buffer.ReaderIndex, Length);
        int payloadLength = segment.PayloadLength;
        if (dropAfter)
        {
            // Only the held bytes go: anything after them is sent again by the sender.
            TcpRewriter.Splice(buffer, ref length, ref segment, 0, payloadLength, held.AsSpan());
            ClearFlags(buffer, segment, Tcp.Fin);
        }
        else
        {
            TcpRewriter.Splice(buffer, ref length, ref segment, 0, replace, held.AsSpan());
        }
        BinaryPrimitives.WriteUInt32BigEndian(buffer[(segment.L4Offset + 4)..], Seq);
        TcpRewriter.FixTcpChecksum(buffer, segment);
        Length = 0;
        _buffer.Clear();
    }

    private static void Absorb(Span<byte> buffer, ref int length, ref FrameLayout segment)
    {
        TcpRewriter.Splice(buffer, ref length, ref segment, 0, segment.PayloadLength, []);
        ClearFlags(buffer, segment, Tcp.Fin);
    }

    private static void ClearFlags(Span<byte> buffer, in FrameLayout segment, byte flags)
    {
        ref byte f = ref buffer[segment.L4Offset + 13];
        if ((f & flags) != 0)
        {
            f &= (byte)~flags;
            TcpRewriter.FixTcpChecksum(buffer, segment);
        }
    }
}
