using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using Natd.Dataplane.Packets;
using Natd.Dataplane.Sessions;

namespace Natd.Dataplane.Nat;

/// <summary>
/// One frame's headers as they arrived, read once per frame by <see cref="FrameParser.Parse"/> and
/// shared by everything that looks at the frame before it is rewritten: the poller's prefetch, the
/// shard routing (<see cref="ShardMap.Owner(in ParsedFrame, ReadOnlySpan{byte})"/>) and the engine
/// (<see cref="NatEngine.Process(Span{byte}, ref int, Side, Io.FrameFlags, in ParsedFrame, ref PacketContext)"/>).
/// Offsets are bytes from the frame's first byte; addresses network order; ports raw (network order in memory).
/// </summary>
public struct ParsedFrame
{
    /// <summary>The value of <see cref="Drop"/> and <see cref="L4Drop"/> when nothing is wrong.</summary>
    public const DropReason None = (DropReason)255;

    /// <summary>Side the frame arrived on.</summary>
    public Side Ingress;

    /// <summary>Ethertype (0 when the frame is shorter than an Ethernet header).</summary>
    public ushort EtherType;

    /// <summary>
    /// The first fault of the Ethernet or IPv4 header, in the order <c>Process</c> checks them
    /// (truncated, unsupported-ethertype, bad-version, bad-ihl, bad-total-length, bad-ip-checksum,
    /// martian, fragment of a protocol other than TCP, UDP and ICMP, a fragment reaching past
    /// 65,535 bytes), or <see cref="None"/>. ARP frames are <see cref="None"/> (the ARP
    /// handler validates them).
    /// </summary>
    public DropReason Drop;

    /// <summary>
    /// The first fault of the TCP, UDP or ICMP header's shape (truncated, bad-l4-length), or
    /// <see cref="None"/>. Kept apart from <see cref="Drop"/> because the engine applies it later,
    /// after its routing checks (a frame to natd's own address is answered whatever its transport).
    /// Checksums are not checked here: that depends on configuration and offload flags.
    /// </summary>
    public DropReason L4Drop;

    /// <summary>IP protocol number.</summary>
    public byte Protocol;

    /// <summary>IPv4 TTL as received.</summary>
    public byte Ttl;

    /// <summary>ICMP type (ICMP only).</summary>
    public byte IcmpType;

    /// <summary>TCP flags (TCP only; 0 otherwise).</summary>
    public byte TcpFlags;

    /// <summary>True when <see cref="Key"/> and <see cref="Hash"/> hold a TCP, UDP or ICMP query's flow key.</summary>
    public bool HasKey;

    /// <summary>IPv4 header length in bytes.</summary>
    public int Ihl;

    /// <summary>IPv4 total length in bytes (the datagram without Ethernet padding).</summary>
    public int TotalLength;

    /// <summary>Offset of the transport header (Ethernet header + <see cref="Ihl"/>).</summary>
    public int L4Offset;

    /// <summary>Transport length in bytes (<see cref="TotalLength"/> - <see cref="Ihl"/>).</summary>
    public int L4Length;

    /// <summary>ICMP errors: offset of the embedded IPv4 header (RFC 792 quote), -1 when absent or too short for its ports.</summary>
    public int InnerOffset;

    /// <summary>Source address, network order.</summary>
    public uint Source;

    /// <summary>Destination address, network order.</summary>
    public uint Destination;

    /// <summary>
    /// The flow key as arrived: ports raw; for an ICMP query the identifier is the source port of a
    /// frame from inside and the destination port of one from outside (<see cref="FlowKey"/>).
    /// </summary>
    public FlowKey Key;

    /// <summary><see cref="Key"/> hashed with the session table's seed (<see cref="SessionTable.HashSeed"/>).</summary>
    public uint Hash;

    /// <summary>IPv4 identification of a fragment, raw (network order in memory); 0 for a whole datagram.</summary>
    public ushort FragmentId;

    /// <summary>A fragment's offset in the datagram's payload, bytes (the header's 8-byte units × 8).</summary>
    public int FragmentOffset;

    /// <summary>The more-fragments flag.</summary>
    public bool MoreFragments;

    /// <summary>True for a fragment of a TCP, UDP or ICMP datagram (MF set or offset non-zero); other protocols' fragments are <see cref="DropReason.Fragment"/>.</summary>
    public readonly bool IsFragment => MoreFragments || FragmentOffset != 0;

    /// <summary>True for a fragment other than the first: it carries no transport header, so <see cref="HasKey"/> is false.</summary>
    public readonly bool IsLaterFragment => FragmentOffset != 0;

    /// <summary>True when the frame's IPv4 header is sound (<see cref="Drop"/> is <see cref="None"/> and it is IPv4).</summary>
    public readonly bool IsIpv4 => Drop == None && EtherType == Packets.EtherType.Ipv4;
}

/// <summary>
/// Reads a received frame's headers once (<see cref="ParsedFrame"/>): Ethernet, IPv4 (RFC 791,
/// header checksum RFC 1071), and the transport's ports, identifier and flags (RFC 768, RFC 9293,
/// RFC 792). Changes nothing, never throws, allocates nothing.
/// </summary>
public static class FrameParser
{
    /// <summary>Parses <paramref name="frame"/> received on <paramref name="ingress"/>.</summary>
    /// <param name="frame">The frame as received (Ethernet header first; padding allowed).</param>
    /// <param name="ingress">Side it arrived on (decides where an ICMP identifier goes in the key).</param>
    /// <param name="hashSeed">The session table's hash seed (<see cref="SessionTable.HashSeed"/>).</param>
    /// <param name="p">The headers; <see cref="ParsedFrame.Drop"/> says what is malformed.</param>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Parse(ReadOnlySpan<byte> frame, Side ingress, ulong hashSeed, out ParsedFrame p)
    {
        p = default;
        p.Drop = ParsedFrame.None;
        p.L4Drop = ParsedFrame.None;
        p.InnerOffset = -1;
        p.Ingress = ingress;
        if (frame.Length < EthernetHeader.Length)
        {
            p.Drop = DropReason.Truncated;
            return;
        }
        p.EtherType = BinaryPrimitives.ReadUInt16BigEndian(frame[12..]);
        if (p.EtherType == EtherType.Arp)
        {
            return;
        }
        if (p.EtherType != EtherType.Ipv4)
        {
            p.Drop = DropReason.UnsupportedEthertype;
            return;
        }
        ReadOnlySpan<byte> ip = frame[EthernetHeader.Length..];
        if (ip.Length < Ipv4Header.MinLength)
        {
            p.Drop = DropReason.Truncated;
            return;
        }
        if (ip[0] >> 4 != 4)
        {
            p.Drop = DropReason.BadVersion;
            return;
        }
        int ihl = (ip[0] & 0x0F) * 4;
        if (ihl < Ipv4Header.MinLength || ihl > ip.Length)
        {
            p.Drop = DropReason.BadIhl;
            return;
        }
        int total = BinaryPrimitives.ReadUInt16BigEndian(ip[2..]);
        if (total < ihl || total > ip.Length)
        {
            p.Drop = DropReason.BadTotalLength;
            return;
        }
        if (!(ihl == Ipv4Header.MinLength ? Checksum.VerifyIpv4Header(ip) : Checksum.Verify(ip[..ihl])))
        {
            p.Drop = DropReason.BadIpChecksum;
            return;
        }
        p.Ihl = ihl;
        p.TotalLength = total;
        p.L4Offset = EthernetHeader.Length + ihl;
        p.L4Length = total - ihl;
        p.Ttl = ip[8];
        p.Protocol = ip[9];
        p.Source = Checksum.ReadRaw32(ip, 12);
        p.Destination = Checksum.ReadRaw32(ip, 16);
        if (IsMartian(p.Source) || IsMartian(p.Destination))
        {
            p.Drop = DropReason.Martian;
            return;
        }
        ushort frag = BinaryPrimitives.ReadUInt16BigEndian(ip[6..]);
        if ((frag & 0x3FFF) != 0)
        {
            // Virtual reassembly (FragmentTable) follows TCP, UDP and ICMP; port-less protocols'
            // fragments have no state to follow them by.
            if (p.Protocol is not (IpProtocol.Tcp or IpProtocol.Udp or IpProtocol.Icmp))
            {
                p.Drop = DropReason.Fragment;
                return;
            }
            p.MoreFragments = (frag & 0x2000) != 0;
            p.FragmentOffset = (frag & 0x1FFF) * 8;
            p.FragmentId = Checksum.ReadRaw16(ip, 4);
            if (p.FragmentOffset + p.L4Length > ushort.MaxValue)
            {
                p.Drop = DropReason.BadTotalLength; // reassembled it would exceed an IPv4 datagram (ping of death)
                return;
            }
            if (p.FragmentOffset != 0)
            {
                return; // no transport header: the datagram's first fragment names the flow
            }
        }
        ParseL4(ip[ihl..total], ingress, hashSeed, ref p);
    }

    private static void ParseL4(ReadOnlySpan<byte> l4, Side ingress, ulong hashSeed, ref ParsedFrame p)
    {
        switch (p.Protocol)
        {
            case IpProtocol.Tcp:
                if (l4.Length < Tcp.MinLength)
                {
                    p.L4Drop = DropReason.Truncated;
                    return;
                }
                int thl = Tcp.HeaderLength(l4);
                if (thl < Tcp.MinLength)
                {
                    p.L4Drop = DropReason.BadL4Length;
                    return;
                }
                if (thl > l4.Length)
                {
                    p.L4Drop = DropReason.Truncated; // the data offset points beyond the IP payload
                    return;
                }
                p.TcpFlags = Tcp.Flags(l4);
                SetKey(ref p, Checksum.ReadRaw16(l4, 0), Checksum.ReadRaw16(l4, 2), hashSeed);
                return;
            case IpProtocol.Udp:
                if (l4.Length < Udp.Length)
                {
                    p.L4Drop = DropReason.Truncated;
                    return;
                }
                int ulen = BinaryPrimitives.ReadUInt16BigEndian(l4[4..]);
                if (p.MoreFragments)
                {
                    // A first fragment: the UDP length is the whole datagram's.
                    if (ulen < l4.Length || ulen < Udp.Length)
                    {
                        p.L4Drop = DropReason.BadL4Length;
                        return;
                    }
                }
                else if (ulen > l4.Length)
                {
                    p.L4Drop = DropReason.Truncated; // announces more than the IP payload holds
                    return;
                }
                else if (ulen != l4.Length)
                {
                    // Below 8, or shorter than the IP payload: the bytes past it are no part of the
                    // datagram and would be forwarded unchecked (the checksum covers the IP payload).
                    p.L4Drop = DropReason.BadL4Length;
                    return;
                }
                SetKey(ref p, Checksum.ReadRaw16(l4, 0), Checksum.ReadRaw16(l4, 2), hashSeed);
                return;
            case IpProtocol.Icmp:
                if (l4.Length < Icmp.HeaderLength)
                {
                    p.L4Drop = DropReason.Truncated;
                    return;
                }
                p.IcmpType = l4[0];
                if (Icmp.IsError(p.IcmpType))
                {
                    if (p.MoreFragments)
                    {
                        p.L4Drop = DropReason.Fragment; // an error is a few hundred bytes: natd never translates a fragmented one
                        return;
                    }
                    // The quoted header and its first 8 bytes (RFC 792) name the flow the error is about.
                    ReadOnlySpan<byte> inner = l4[Icmp.HeaderLength..];
                    if (inner.Length >= Ipv4Header.MinLength + 8)
                    {
                        int eihl = (inner[0] & 0x0F) * 4;
                        if (eihl >= Ipv4Header.MinLength && inner.Length >= eihl + 8)
                        {
                            p.InnerOffset = p.L4Offset + Icmp.HeaderLength;
                        }
                    }
                    return;
                }
                ushort id = Checksum.ReadRaw16(l4, Icmp.IdentifierOffset);
                if (ingress == Side.Inside)
                {
                    SetKey(ref p, id, 0, hashSeed);
                }
                else
                {
                    SetKey(ref p, 0, id, hashSeed);
                }
                return;
            default:
                return; // port-less: the engine's port-less path reads what it needs
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void SetKey(ref ParsedFrame p, ushort sourcePortRaw, ushort destinationPortRaw, ulong hashSeed)
    {
        p.Key = new FlowKey(p.Source, p.Destination, sourcePortRaw, destinationPortRaw, p.Protocol);
        p.Hash = p.Key.Hash(hashSeed);
        p.HasKey = true;
    }

    /// <summary>0/8, 127/8, multicast, class E and limited broadcast (RFC 1812 5.3.7); network order.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool IsMartian(uint address)
    {
        uint first = Ipv4.ToHostOrder(address) >> 24;
        return first == 0 || first == 127 || first >= 224;
    }
}
