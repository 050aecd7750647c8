using System.Buffers.Binary;
using Natd.Dataplane.Packets;

namespace Natd.Dataplane.Alg;

/// <summary>
/// Rewriting of translated Ethernet + IPv4 + TCP frames for ALGs: payload splices that change the
/// segment length, sequence/acknowledgment/SACK correction (netfilter <c>nf_ct_seqadj</c>
/// semantics, see <see cref="SeqAdjustWay"/>), and the length and checksum fixes they need.
/// </summary>
public static class TcpRewriter
{
    /// <summary>TCP option kind of SACK blocks (RFC 2018).</summary>
    public const byte SackOption = 5;

    /// <summary>
    /// Replaces payload bytes [<paramref name="payloadOffset"/>, <paramref name="payloadOffset"/> + <paramref name="removeLength"/>)
    /// by <paramref name="insert"/>, moving the rest of the payload; then fixes the IPv4 total
    /// length and header checksum and recomputes the TCP checksum. Ethernet padding after the IPv4
    /// packet is dropped.
    /// </summary>
    /// <param name="buffer">The frame buffer; the frame may grow up to its length.</param>
    /// <param name="length">Frame length in bytes; updated.</param>
    /// <param name="segment">The parsed frame; updated.</param>
    /// <param name="payloadOffset">Offset of the first replaced byte, from the payload start.</param>
    /// <param name="removeLength">Number of bytes replaced.</param>
    /// <param name="insert">New bytes.</param>
    /// <returns>False, frame untouched, when the range is outside the payload or the result would exceed the buffer or 65535 bytes.</returns>
    public static bool Splice(Span<byte> buffer, ref int length, ref FrameLayout segment, int payloadOffset, int removeLength, ReadOnlySpan<byte> insert)
    {
        if (payloadOffset < 0 || removeLength < 0 || payloadOffset > segment.PayloadLength - removeLength)
        {
            return false;
        }
        int newTotal = segment.TotalLength - removeLength + insert.Length;
        if (newTotal > ushort.MaxValue || FrameLayout.IpOffset + newTotal > buffer.Length)
        {
            return false;
        }
        int start = segment.PayloadOffset + payloadOffset;
        int tailFrom = start + removeLength;
        int tailLength = segment.FrameLength - tailFrom;
        // Span.CopyTo handles overlap like memmove.
        buffer.Slice(tailFrom, tailLength).CopyTo(buffer[(start + insert.Length)..]);
        insert.CopyTo(buffer[start..]);
        segment.TotalLength = newTotal;
        var ip = new Ipv4Header(buffer[FrameLayout.IpOffset..]);
        ip.TotalLength = newTotal;
        ip.UpdateChecksum();
        length = segment.FrameLength;
        FixTcpChecksum(buffer, segment);
        return true;
    }

    /// <summary>Recomputes the TCP checksum over the pseudo header (RFC 793 section 3.1), header and payload.</summary>
    public static void FixTcpChecksum(Span<byte> buffer, in FrameLayout segment)
        => FixL4Checksum(buffer, segment, IpProtocol.Tcp, Tcp.ChecksumOffset);

    /// <summary>Recomputes the UDP checksum (RFC 768; a computed 0 is sent as 0xFFFF).</summary>
    public static void FixUdpChecksum(Span<byte> buffer, in FrameLayout segment)
        => FixL4Checksum(buffer, segment, IpProtocol.Udp, Udp.ChecksumOffset);

    /// <summary>
    /// Shifts the sequence number by <paramref name="self"/> and, when ACK is set, the
    /// acknowledgment number and every SACK block edge (RFC 2018) back by <paramref name="other"/>.
    /// The checksum is not fixed.
    /// </summary>
    /// <returns>True when a field changed.</returns>
    public static bool AdjustSeqAck(Span<byte> buffer, in FrameLayout segment, in SeqAdjustWay self, in SeqAdjustWay other)
    {
        bool changed = false;
        Span<byte> tcp = buffer.Slice(segment.L4Offset, segment.L4HeaderLength);
        if (!self.IsIdentity)
        {
            uint seq = BinaryPrimitives.ReadUInt32BigEndian(tcp[4..]);
            uint mapped = self.MapSeq(seq);
            if (mapped != seq)
            {
                BinaryPrimitives.WriteUInt32BigEndian(tcp[4..], mapped);
                changed = true;
            }
        }
        if (other.IsIdentity || (tcp[13] & Tcp.Ack) == 0)
        {
            return changed;
        }
        uint ack = BinaryPrimitives.ReadUInt32BigEndian(tcp[8..]);
        uint unmapped = other.UnmapAck(ack);
        if (unmapped != ack)
        {
            BinaryPrimitives.WriteUInt32BigEndian(tcp[8..], unmapped);
            changed = true;
        }
        // Options: kind 0 ends, kind 1 is one byte, others carry a length (RFC 793, RFC 2018).
        int i = Tcp.MinLength;
        while (i < tcp.Length)
        {
            byte kind = tcp[i];
            if (kind == 0)
            {
                break;
            }
            if (kind == 1)
            {
                i++;
                continue;
            }
            if (i + 1 >= tcp.Length)
            {
                break;
            }
            int optLength = tcp[i + 1];
            if (optLength < 2 || i + optLength > tcp.Length)
            {
                break; // malformed: leave the rest alone
            }
            if (kind == SackOption && (optLength - 2) % 8 == 0)
            {
                for (int edge = i + 2; edge < i + optLength; edge += 4)
                {
                    uint v = BinaryPrimitives.ReadUInt32BigEndian(tcp[edge..]);
                    uint nv = other.UnmapAck(v);
                    if (nv != v)
                    {
                        BinaryPrimitives.WriteUInt32BigEndian(tcp[edge..], nv);
                        changed = true;
                    }
                }
            }
            i += optLength;
        }
        return changed;
    }

    private static void FixL4Checksum(Span<byte> buffer, in FrameLayout segment, byte protocol, int checksumOffset)
    {
        var ip = new Ipv4Header(buffer[FrameLayout.IpOffset..]);
        int l4Length = segment.TotalLength - segment.IpHeaderLength;
        Span<byte> l4 = buffer.Slice(segment.L4Offset, l4Length);
        Checksum.WriteRaw16(l4, checksumOffset, 0);
        ushort c = Checksum.Compute(l4, Checksum.PseudoHeaderSum(ip.Source, ip.Destination, protocol, l4Length));
        if (c == 0 && protocol == IpProtocol.Udp)
        {
            c = 0xFFFF;
        }
        Checksum.WriteRaw16(l4, checksumOffset, c);
    }
}
