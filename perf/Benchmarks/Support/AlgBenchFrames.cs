using System.Buffers.Binary;
using Natd.Dataplane.Packets;
using TcpHeader = Natd.Dataplane.Packets.Tcp;
using UdpHeader = Natd.Dataplane.Packets.Udp;

namespace Natd.Benchmarks.Support;

/// <summary>
/// Frames for the ALG benchmarks (a small builder in the spirit of the tests' AlgFrames, which the
/// benchmarks cannot reference): Ethernet II + IPv4 (RFC 791) + TCP, UDP, ESP (RFC 4303) or
/// enhanced GRE (RFC 2637 section 4.1), IPv4 and TCP/UDP checksums valid. Addresses network order,
/// ports host order.
/// </summary>
public static class AlgBenchFrames
{
    /// <summary>TCP flags byte: ACK.</summary>
    public const byte Ack = 0x10;

    /// <summary>TCP flags byte: PSH and ACK (a segment carrying a command line).</summary>
    public const byte PshAck = 0x18;

    /// <summary>Offset of the TCP sequence number in a frame with a 20-byte IPv4 header.</summary>
    public const int SeqOffset = EthernetHeader.Length + Ipv4Header.MinLength + 4;

    /// <summary>Offset of the TCP checksum in a frame with a 20-byte IPv4 header.</summary>
    public const int TcpChecksumOffset = EthernetHeader.Length + Ipv4Header.MinLength + TcpHeader.ChecksumOffset;

    /// <summary>Offset of the TCP payload in a frame with 20-byte IPv4 and TCP headers.</summary>
    public const int PayloadOffset = EthernetHeader.Length + Ipv4Header.MinLength + TcpHeader.MinLength;

    /// <summary>A TCP frame; <paramref name="options"/> (raw bytes) are padded with NOPs to 4 bytes.</summary>
    public static byte[] Tcp(MacAddress smac, MacAddress dmac, uint src, ushort sport, uint dst, ushort dport,
        byte flags, uint seq, uint ack, ReadOnlySpan<byte> payload, ReadOnlySpan<byte> options = default)
    {
        int optLength = (options.Length + 3) / 4 * 4;
        var l4 = new byte[TcpHeader.MinLength + optLength + payload.Length];
        BinaryPrimitives.WriteUInt16BigEndian(l4, sport);
        BinaryPrimitives.WriteUInt16BigEndian(l4.AsSpan(2), dport);
        BinaryPrimitives.WriteUInt32BigEndian(l4.AsSpan(4), seq);
        BinaryPrimitives.WriteUInt32BigEndian(l4.AsSpan(8), ack);
        l4[12] = (byte)((TcpHeader.MinLength + optLength) / 4 << 4);
        l4[13] = flags;
        BinaryPrimitives.WriteUInt16BigEndian(l4.AsSpan(14), 64240);
        l4.AsSpan(TcpHeader.MinLength, optLength).Fill(1);
        options.CopyTo(l4.AsSpan(TcpHeader.MinLength));
        payload.CopyTo(l4.AsSpan(TcpHeader.MinLength + optLength));
        ushort c = Checksum.Compute(l4, Checksum.PseudoHeaderSum(src, dst, IpProtocol.Tcp, l4.Length));
        Checksum.WriteRaw16(l4, TcpHeader.ChecksumOffset, c);
        return Wrap(smac, dmac, src, dst, IpProtocol.Tcp, l4);
    }

    /// <summary>A UDP frame.</summary>
    public static byte[] Udp(MacAddress smac, MacAddress dmac, uint src, ushort sport, uint dst, ushort dport, ReadOnlySpan<byte> payload)
    {
        var l4 = new byte[UdpHeader.Length + payload.Length];
        BinaryPrimitives.WriteUInt16BigEndian(l4, sport);
        BinaryPrimitives.WriteUInt16BigEndian(l4.AsSpan(2), dport);
        BinaryPrimitives.WriteUInt16BigEndian(l4.AsSpan(4), (ushort)l4.Length);
        payload.CopyTo(l4.AsSpan(UdpHeader.Length));
        ushort c = Checksum.Compute(l4, Checksum.PseudoHeaderSum(src, dst, IpProtocol.Udp, l4.Length));
        Checksum.WriteRaw16(l4, UdpHeader.ChecksumOffset, c == 0 ? (ushort)0xFFFF : c);
        return Wrap(smac, dmac, src, dst, IpProtocol.Udp, l4);
    }

    /// <summary>An ESP packet: SPI, sequence number and <paramref name="bodyLength"/> opaque bytes (the encrypted payload and ICV).</summary>
    public static byte[] Esp(MacAddress smac, MacAddress dmac, uint src, uint dst, uint spi, uint seq, int bodyLength)
    {
        var l4 = new byte[8 + bodyLength];
        BinaryPrimitives.WriteUInt32BigEndian(l4, spi);
        BinaryPrimitives.WriteUInt32BigEndian(l4.AsSpan(4), seq);
        for (int i = 8; i < l4.Length; i++)
        {
            l4[i] = (byte)(spi + (uint)i);
        }
        return Wrap(smac, dmac, src, dst, IpProtocol.Esp, l4);
    }

    /// <summary>An enhanced GRE (version 1) packet with a sequence number and <paramref name="pppLength"/> bytes of PPP payload.</summary>
    public static byte[] Gre(MacAddress smac, MacAddress dmac, uint src, uint dst, ushort callId, uint seq, int pppLength)
    {
        var g = new byte[12 + pppLength];
        g[0] = 0x30; // K and S
        g[1] = 0x01; // version 1
        BinaryPrimitives.WriteUInt16BigEndian(g.AsSpan(2), 0x880B);
        BinaryPrimitives.WriteUInt16BigEndian(g.AsSpan(4), (ushort)pppLength);
        BinaryPrimitives.WriteUInt16BigEndian(g.AsSpan(6), callId);
        BinaryPrimitives.WriteUInt32BigEndian(g.AsSpan(8), seq);
        for (int i = 12; i < g.Length; i++)
        {
            g[i] = (byte)(0xC0 + i);
        }
        return Wrap(smac, dmac, src, dst, IpProtocol.Gre, g);
    }

    /// <summary>
    /// Sets the TCP sequence number (host order) of a frame with a 20-byte IPv4 header and patches
    /// the TCP checksum (RFC 1624), so a stream of segments can be replayed from one template.
    /// </summary>
    public static void SetSeq(Span<byte> frame, uint seq)
    {
        uint oldRaw = Checksum.ReadRaw32(frame, SeqOffset);
        BinaryPrimitives.WriteUInt32BigEndian(frame[SeqOffset..], seq);
        uint newRaw = Checksum.ReadRaw32(frame, SeqOffset);
        Checksum.WriteRaw16(frame, TcpChecksumOffset, Checksum.Update(Checksum.ReadRaw16(frame, TcpChecksumOffset), oldRaw, newRaw));
    }

    private static byte[] Wrap(MacAddress smac, MacAddress dmac, uint src, uint dst, byte protocol, ReadOnlySpan<byte> l4)
    {
        int total = Ipv4Header.MinLength + l4.Length;
        var f = new byte[EthernetHeader.Length + total];
        var eth = new EthernetHeader(f);
        eth.Destination = dmac;
        eth.Source = smac;
        eth.EtherType = EtherType.Ipv4;
        Span<byte> ipSpan = f.AsSpan(EthernetHeader.Length);
        ipSpan[0] = 0x45;
        var ip = new Ipv4Header(ipSpan);
        ip.TotalLength = total;
        ip.Identification = 0x2345;
        ipSpan[6] = 0x40; // DF
        ip.Ttl = 64;
        ip.Protocol = protocol;
        ip.Source = src;
        ip.Destination = dst;
        ip.ChecksumRaw = Checksum.Compute(ipSpan[..Ipv4Header.MinLength]);
        l4.CopyTo(ipSpan[Ipv4Header.MinLength..]);
        return f;
    }
}
