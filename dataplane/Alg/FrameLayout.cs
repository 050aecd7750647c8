using System.Buffers.Binary;
using Natd.Dataplane.Packets;

namespace Natd.Dataplane.Alg;

/// <summary>
/// Where the parts of an Ethernet II + IPv4 + TCP (or UDP) frame sit (byte offsets from the frame
/// start), as <see cref="TryParseTcp"/> or <see cref="TryParseUdp"/> found them. ALG handlers work
/// on frames natd already translated.
/// </summary>
public struct FrameLayout
{
    /// <summary>Offset of the IPv4 header (the Ethernet header is 14 bytes).</summary>
    public const int IpOffset = EthernetHeader.Length;

    /// <summary>IPv4 header length in bytes.</summary>
    public int IpHeaderLength;

    /// <summary>IPv4 total length in bytes (header and TCP segment; Ethernet padding excluded).</summary>
    public int TotalLength;

    /// <summary>TCP header length in bytes (20..60, options included), or 8 for UDP.</summary>
    public int L4HeaderLength;

    /// <summary>Offset of the TCP or UDP header.</summary>
    public readonly int L4Offset => IpOffset + IpHeaderLength;

    /// <summary>Offset of the first payload byte.</summary>
    public readonly int PayloadOffset => L4Offset + L4HeaderLength;

    /// <summary>Payload length in bytes.</summary>
    public readonly int PayloadLength => TotalLength - IpHeaderLength - L4HeaderLength;

    /// <summary>Frame length the IPv4 total length implies (Ethernet header plus IPv4 packet).</summary>
    public readonly int FrameLength => IpOffset + TotalLength;

    /// <summary>
    /// Parses <paramref name="frame"/> as Ethernet II, IPv4 (RFC 791) and TCP (RFC 793). Fails,
    /// without exception, on anything else: another EtherType or protocol, a fragment (its TCP
    /// checksum cannot be recomputed from one piece), or lengths that do not fit the frame.
    /// </summary>
    public static bool TryParseTcp(ReadOnlySpan<byte> frame, out FrameLayout segment)
        => TryParseL4(frame, IpProtocol.Tcp, out segment);

    /// <summary>Like <see cref="TryParseTcp"/> for UDP (RFC 768): <see cref="L4HeaderLength"/> is then the 8-byte UDP header.</summary>
    public static bool TryParseUdp(ReadOnlySpan<byte> frame, out FrameLayout segment)
        => TryParseL4(frame, IpProtocol.Udp, out segment);

    /// <summary>TCP sequence number, host order.</summary>
    public readonly uint Seq(ReadOnlySpan<byte> frame) => BinaryPrimitives.ReadUInt32BigEndian(frame[(L4Offset + 4)..]);

    /// <summary>TCP acknowledgment number, host order.</summary>
    public readonly uint Ack(ReadOnlySpan<byte> frame) => BinaryPrimitives.ReadUInt32BigEndian(frame[(L4Offset + 8)..]);

    /// <summary>TCP flags byte (see <see cref="Tcp"/>).</summary>
    public readonly byte Flags(ReadOnlySpan<byte> frame) => frame[L4Offset + 13];

    /// <summary>The payload bytes.</summary>
    public readonly Span<byte> Payload(Span<byte> frame) => frame.Slice(PayloadOffset, PayloadLength);

    private static bool TryParseL4(ReadOnlySpan<byte> frame, byte protocol, out FrameLayout segment)
    {
        segment = default;
        if (frame.Length < IpOffset + Ipv4Header.MinLength
            || BinaryPrimitives.ReadUInt16BigEndian(frame[12..]) != EtherType.Ipv4)
        {
            return false;
        }
        ReadOnlySpan<byte> ip = frame[IpOffset..];
        int ihl = (ip[0] & 0x0F) * 4;
        int total = BinaryPrimitives.ReadUInt16BigEndian(ip[2..]);
        if ((ip[0] >> 4) != 4 || ihl < Ipv4Header.MinLength || ip[9] != protocol
            || (BinaryPrimitives.ReadUInt16BigEndian(ip[6..]) & 0x3FFF) != 0
            || total > ip.Length)
        {
            return false;
        }
        int l4Header;
        if (protocol == IpProtocol.Tcp)
        {
            if (total < ihl + Tcp.MinLength)
            {
                return false;
            }
            l4Header = Tcp.HeaderLength(ip[ihl..]);
            if (l4Header < Tcp.MinLength || ihl + l4Header > total)
            {
                return false;
            }
        }
        else
        {
            l4Header = Udp.Length;
            if (total < ihl + Udp.Length || BinaryPrimitives.ReadUInt16BigEndian(ip[(ihl + 4)..]) != total - ihl)
            {
                return false;
            }
        }
        segment.IpHeaderLength = ihl;
        segment.TotalLength = total;
        segment.L4HeaderLength = l4Header;
        return true;
    }
}
