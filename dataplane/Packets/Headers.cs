using System.Buffers.Binary;
using System.Runtime.CompilerServices;

namespace Natd.Dataplane.Packets;

/// <summary>EtherType values (IEEE 802.3, host order).</summary>
public static class EtherType
{
    /// <summary>IPv4.</summary>
    public const ushort Ipv4 = 0x0800;
    /// <summary>ARP (RFC 826).</summary>
    public const ushort Arp = 0x0806;
    /// <summary>802.1Q VLAN tag.</summary>
    public const ushort Vlan = 0x8100;
    /// <summary>IPv6.</summary>
    public const ushort Ipv6 = 0x86DD;
}

/// <summary>IP protocol numbers (IANA).</summary>
public static class IpProtocol
{
    /// <summary>ICMP (RFC 792).</summary>
    public const byte Icmp = 1;
    /// <summary>TCP (RFC 793).</summary>
    public const byte Tcp = 6;
    /// <summary>UDP (RFC 768).</summary>
    public const byte Udp = 17;
    /// <summary>GRE (RFC 2784).</summary>
    public const byte Gre = 47;
    /// <summary>ESP (RFC 4303).</summary>
    public const byte Esp = 50;
    /// <summary>AH (RFC 4302): its ICV covers the IP addresses, so it cannot be masqueraded.</summary>
    public const byte Ah = 51;
}

/// <summary>View of an Ethernet II header: 14 bytes, destination MAC, source MAC, EtherType.</summary>
public readonly ref struct EthernetHeader
{
    /// <summary>Header length in bytes.</summary>
    public const int Length = 14;

    private readonly Span<byte> _b;

    /// <summary>Wraps the first 14 bytes of <paramref name="frame"/>; the caller checked the length.</summary>
    public EthernetHeader(Span<byte> frame) => _b = frame;

    /// <summary>Destination MAC.</summary>
    public MacAddress Destination { get => MacAddress.Read(_b); set => value.Write(_b); }

    /// <summary>Source MAC.</summary>
    public MacAddress Source { get => MacAddress.Read(_b[6..]); set => value.Write(_b[6..]); }

    /// <summary>EtherType, host order.</summary>
    public ushort EtherType { get => BinaryPrimitives.ReadUInt16BigEndian(_b[12..]); set => BinaryPrimitives.WriteUInt16BigEndian(_b[12..], value); }
}

/// <summary>View of an ARP packet for IPv4 over Ethernet (RFC 826): 28 bytes after the Ethernet header.</summary>
public readonly ref struct ArpPacket
{
    /// <summary>Length in bytes of an IPv4-over-Ethernet ARP packet.</summary>
    public const int Length = 28;
    /// <summary>ARP request opcode.</summary>
    public const ushort OpRequest = 1;
    /// <summary>ARP reply opcode.</summary>
    public const ushort OpReply = 2;

    private readonly Span<byte> _b;

    /// <summary>Wraps 28 bytes; the caller checked the length.</summary>
    public ArpPacket(Span<byte> packet) => _b = packet;

    /// <summary>True for hardware type Ethernet (1), protocol IPv4, address lengths 6 and 4.</summary>
    public bool IsEthernetIpv4 => BinaryPrimitives.ReadUInt16BigEndian(_b) == 1
        && BinaryPrimitives.ReadUInt16BigEndian(_b[2..]) == EtherType.Ipv4 && _b[4] == 6 && _b[5] == 4;

    /// <summary>Opcode (1 request, 2 reply).</summary>
    public ushort Operation { get => BinaryPrimitives.ReadUInt16BigEndian(_b[6..]); set => BinaryPrimitives.WriteUInt16BigEndian(_b[6..], value); }

    /// <summary>Sender hardware address.</summary>
    public MacAddress SenderMac { get => MacAddress.Read(_b[8..]); set => value.Write(_b[8..]); }

    /// <summary>Sender protocol address, network order.</summary>
    public uint SenderIp { get => Checksum.ReadRaw32(_b, 14); set => Checksum.WriteRaw32(_b, 14, value); }

    /// <summary>Target hardware address.</summary>
    public MacAddress TargetMac { get => MacAddress.Read(_b[18..]); set => value.Write(_b[18..]); }

    /// <summary>Target protocol address, network order.</summary>
    public uint TargetIp { get => Checksum.ReadRaw32(_b, 24); set => Checksum.WriteRaw32(_b, 24, value); }

    /// <summary>Writes the fixed fields for IPv4 over Ethernet.</summary>
    public void WriteFixed()
    {
        BinaryPrimitives.WriteUInt16BigEndian(_b, 1);
        BinaryPrimitives.WriteUInt16BigEndian(_b[2..], EtherType.Ipv4);
        _b[4] = 6;
        _b[5] = 4;
    }
}

/// <summary>
/// View of an IPv4 header (RFC 791). Addresses are network-order <see cref="uint"/> values as in
/// <see cref="Ipv4"/>; the checksum is raw (native load) for use with <see cref="Checksum"/>.
/// </summary>
public readonly ref struct Ipv4Header
{
    /// <summary>Minimum header length in bytes.</summary>
    public const int MinLength = 20;

    private readonly Span<byte> _b;

    /// <summary>Wraps a header starting at <paramref name="packet"/>[0]; the caller checked at least 20 bytes.</summary>
    public Ipv4Header(Span<byte> packet) => _b = packet;

    /// <summary>Version field (4 for IPv4).</summary>
    public int Version => _b[0] >> 4;

    /// <summary>Header length in bytes (IHL * 4).</summary>
    public int HeaderLength => (_b[0] & 0x0F) * 4;

    /// <summary>Total length in bytes, host order.</summary>
    public int TotalLength { get => BinaryPrimitives.ReadUInt16BigEndian(_b[2..]); set => BinaryPrimitives.WriteUInt16BigEndian(_b[2..], (ushort)value); }

    /// <summary>Identification field, host order.</summary>
    public ushort Identification { get => BinaryPrimitives.ReadUInt16BigEndian(_b[4..]); set => BinaryPrimitives.WriteUInt16BigEndian(_b[4..], value); }

    /// <summary>More-fragments flag.</summary>
    public bool MoreFragments => (_b[6] & 0x20) != 0;

    /// <summary>Don't-fragment flag (RFC 791).</summary>
    public bool DontFragment => (_b[6] & 0x40) != 0;

    /// <summary>Fragment offset in 8-byte units.</summary>
    public int FragmentOffset => BinaryPrimitives.ReadUInt16BigEndian(_b[6..]) & 0x1FFF;

    /// <summary>True for any fragment (MF set or non-zero offset).</summary>
    public bool IsFragment => (BinaryPrimitives.ReadUInt16BigEndian(_b[6..]) & 0x3FFF) != 0;

    /// <summary>Time to live.</summary>
    public byte Ttl { get => _b[8]; set => _b[8] = value; }

    /// <summary>Protocol number (see <see cref="IpProtocol"/>).</summary>
    public byte Protocol { get => _b[9]; set => _b[9] = value; }

    /// <summary>Header checksum as stored (raw native load).</summary>
    public ushort ChecksumRaw { get => Checksum.ReadRaw16(_b, 10); set => Checksum.WriteRaw16(_b, 10, value); }

    /// <summary>Source address, network order.</summary>
    public uint Source { get => Checksum.ReadRaw32(_b, 12); set => Checksum.WriteRaw32(_b, 12, value); }

    /// <summary>Destination address, network order.</summary>
    public uint Destination { get => Checksum.ReadRaw32(_b, 16); set => Checksum.WriteRaw32(_b, 16, value); }

    /// <summary>Recomputes the header checksum over <see cref="HeaderLength"/> bytes.</summary>
    public void UpdateChecksum()
    {
        ChecksumRaw = 0;
        ChecksumRaw = Checksum.Compute(_b[..HeaderLength]);
    }

    /// <summary>Decrements TTL and patches the checksum incrementally (RFC 1624; TTL shares a word with protocol).</summary>
    public void DecrementTtl() => DecrementTtl(0);

    /// <summary>
    /// Decrements TTL and patches the header checksum for it and for <paramref name="delta"/> (a
    /// rewritten address's folded ~m + m', as a session precomputes it with <see cref="Checksum.Delta"/>) in one RFC 1624
    /// update: the same result as <see cref="Checksum.ApplyDelta"/> then <see cref="DecrementTtl()"/>.
    /// </summary>
    /// <remarks>
    /// The new TTL/protocol word is built in a register, not re-read after the TTL byte is stored: a
    /// 2-byte load over a 1-byte store cannot be forwarded from the store buffer and waits for the
    /// store to retire (it showed in profiles of the fast path).
    /// </remarks>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void DecrementTtl(ushort delta)
    {
        ushort oldWord = Checksum.ReadRaw16(_b, 8);
        byte ttl = (byte)(_b[8] - 1);
        _b[8] = ttl;
        // The raw (native-order) word holds the TTL in its low byte on a little-endian host.
        ushort newWord = BitConverter.IsLittleEndian ? (ushort)((oldWord & 0xFF00) | ttl) : (ushort)((oldWord & 0x00FF) | (ttl << 8));
        uint sum = (uint)(ushort)~ChecksumRaw + delta + (ushort)~oldWord + newWord;
        ChecksumRaw = (ushort)~Checksum.Fold32(sum);
    }
}

/// <summary>Offsets and flags of the TCP header (RFC 793).</summary>
public static class Tcp
{
    /// <summary>Minimum header length in bytes.</summary>
    public const int MinLength = 20;
    /// <summary>Offset of the checksum field.</summary>
    public const int ChecksumOffset = 16;
    /// <summary>FIN flag.</summary>
    public const byte Fin = 0x01;
    /// <summary>SYN flag.</summary>
    public const byte Syn = 0x02;
    /// <summary>RST flag.</summary>
    public const byte Rst = 0x04;
    /// <summary>ACK flag.</summary>
    public const byte Ack = 0x10;

    /// <summary>Header length in bytes from the data offset field.</summary>
    public static int HeaderLength(ReadOnlySpan<byte> tcp) => (tcp[12] >> 4) * 4;

    /// <summary>The flags byte (CWR ECE URG ACK PSH RST SYN FIN).</summary>
    public static byte Flags(ReadOnlySpan<byte> tcp) => tcp[13];
}

/// <summary>Offsets of the UDP header (RFC 768).</summary>
public static class Udp
{
    /// <summary>Header length in bytes.</summary>
    public const int Length = 8;
    /// <summary>Offset of the checksum field.</summary>
    public const int ChecksumOffset = 6;
}

/// <summary>ICMP (RFC 792) types and offsets natd uses.</summary>
public static class Icmp
{
    /// <summary>Header length in bytes (type, code, checksum, rest of header).</summary>
    public const int HeaderLength = 8;
    /// <summary>Offset of the checksum field.</summary>
    public const int ChecksumOffset = 2;
    /// <summary>Offset of the echo identifier.</summary>
    public const int IdentifierOffset = 4;
    /// <summary>Echo reply.</summary>
    public const byte EchoReply = 0;
    /// <summary>Destination unreachable.</summary>
    public const byte DestinationUnreachable = 3;
    /// <summary>Destination unreachable code 4: fragmentation needed and DF set; bytes 6-7 carry the next-hop MTU (RFC 1191 section 4).</summary>
    public const byte FragmentationNeededCode = 4;
    /// <summary>Source quench (deprecated, RFC 6633).</summary>
    public const byte SourceQuench = 4;
    /// <summary>Echo request.</summary>
    public const byte EchoRequest = 8;
    /// <summary>Time exceeded.</summary>
    public const byte TimeExceeded = 11;
    /// <summary>Parameter problem.</summary>
    public const byte ParameterProblem = 12;

    /// <summary>True for the error types whose payload embeds the offending IP header (RFC 5508 section 4).</summary>
    public static bool IsError(byte type) => type is DestinationUnreachable or TimeExceeded or ParameterProblem;
}
