using System.Buffers.Binary;
using Natd.Dataplane.Nat;
using Natd.Dataplane.Packets;
using Natd.Dataplane.Sessions;
using Natd.Tests.Support;
using static Natd.Tests.Support.Frames;
using IcmpH = Natd.Dataplane.Packets.Icmp;
using TcpH = Natd.Dataplane.Packets.Tcp;

namespace Natd.Tests.Nat;

/// <summary>
/// <see cref="FrameParser"/>: each good frame's headers as read once for prefetch, routing and
/// translation; each malformed frame's reason, in the order the engine checked them before the parser.
/// </summary>
public class FrameParserTests
{
    private const string In = EngineHarness.InsideHost, Out = EngineHarness.OutsideHost;
    private const ulong Seed = 0x1234_5678_9ABC_DEF0UL;

    private static ushort Raw(int port) => FlowKey.PortToRaw((ushort)port);

    private static uint Addr(string a) => Ipv4.Parse(a);

    /// <summary>name, side, protocol, source port (raw key), destination port (raw key), TCP flags, ICMP type, inner offset, has key.</summary>
    public static TheoryData<string, Side, byte, int, int, byte, byte, int, bool> Good => new()
    {
        { "tcp-syn", Side.Inside, IpProtocol.Tcp, 40000, 80, TcpH.Syn, 0, -1, true },
        { "tcp-ack-from-outside", Side.Outside, IpProtocol.Tcp, 80, 40000, TcpH.Ack, 0, -1, true },
        { "udp", Side.Inside, IpProtocol.Udp, 40000, 53, 0, 0, -1, true },
        // An ICMP query's identifier is the source port from inside, the destination port from outside (FlowKey).
        { "icmp-echo-request", Side.Inside, IpProtocol.Icmp, 777, 0, 0, IcmpH.EchoRequest, -1, true },
        { "icmp-echo-reply", Side.Outside, IpProtocol.Icmp, 0, 777, 0, IcmpH.EchoReply, -1, true },
        // An ICMP error has no key of its own: its quoted header (after the 8-byte ICMP header) names the flow.
        { "icmp-error", Side.Outside, IpProtocol.Icmp, 0, 0, 0, IcmpH.DestinationUnreachable, 14 + 20 + 8, false },
        { "gre", Side.Inside, IpProtocol.Gre, 0, 0, 0, 0, -1, false },
    };

    [Theory]
    [MemberData(nameof(Good))]
    public void Good_frames_give_their_headers_key_and_hash(string name, Side side, byte proto, int sport, int dport, byte tcpFlags, byte icmpType, int inner, bool hasKey)
    {
        byte[] f = BuildGood(name);
        FrameParser.Parse(f, side, Seed, out ParsedFrame p);

        Assert.Equal(ParsedFrame.None, p.Drop);
        Assert.Equal(ParsedFrame.None, p.L4Drop);
        Assert.True(p.IsIpv4);
        Assert.Equal(side, p.Ingress);
        Assert.Equal(EtherType.Ipv4, p.EtherType);
        Assert.Equal(proto, p.Protocol);
        Assert.Equal(20, p.Ihl);
        Assert.Equal(f.Length - 14, p.TotalLength);
        Assert.Equal(34, p.L4Offset);
        Assert.Equal(f.Length - 34, p.L4Length);
        Assert.Equal(Addr(Src(f)), p.Source);
        Assert.Equal(Addr(Dst(f)), p.Destination);
        Assert.Equal(Ttl(f), p.Ttl);
        Assert.Equal(tcpFlags, p.TcpFlags);
        Assert.Equal(icmpType, p.IcmpType);
        Assert.Equal(inner, p.InnerOffset);
        Assert.Equal(hasKey, p.HasKey);
        if (hasKey)
        {
            var key = new FlowKey(p.Source, p.Destination, Raw(sport), Raw(dport), proto);
            Assert.Equal(key, p.Key);
            Assert.Equal(key.Hash(Seed), p.Hash);
        }
    }

    private static byte[] BuildGood(string name) => name switch
    {
        "tcp-syn" => Tcp(In, 40000, Out, 80, TcpH.Syn, ttl: 17),
        "tcp-ack-from-outside" => Tcp(Out, 80, EngineHarness.External, 40000, TcpH.Ack, payload: [1, 2, 3]),
        "udp" => Udp(In, 40000, Out, 53),
        "icmp-echo-request" => Icmp(In, Out, IcmpH.EchoRequest, 0, 777, 1),
        "icmp-echo-reply" => Icmp(Out, EngineHarness.External, IcmpH.EchoReply, 0, 777, 1),
        "icmp-error" => IcmpError(Out, EngineHarness.External, IcmpH.DestinationUnreachable, 3, Udp(EngineHarness.External, 1024, Out, 53)),
        "gre" => Wrap(In, Out, IpProtocol.Gre, new byte[8], 64, null, null),
        _ => throw new ArgumentException(name),
    };

    [Fact]
    public void Ethernet_padding_is_not_part_of_the_datagram()
    {
        byte[] f = Udp(In, 40000, Out, 53);
        byte[] padded = [.. f, .. new byte[12]];
        FrameParser.Parse(padded, Side.Inside, Seed, out ParsedFrame p);
        Assert.Equal(ParsedFrame.None, p.Drop);
        Assert.Equal(ParsedFrame.None, p.L4Drop);
        Assert.Equal(f.Length - 14, p.TotalLength);
    }

    [Fact]
    public void Arp_is_left_to_the_arp_handler()
    {
        byte[] f = Arp(1, InsideHostMac, In, new byte[6], "10.0.0.1");
        FrameParser.Parse(f, Side.Inside, Seed, out ParsedFrame p);
        Assert.Equal(EtherType.Arp, p.EtherType);
        Assert.Equal(ParsedFrame.None, p.Drop);
        Assert.False(p.IsIpv4);
        Assert.False(p.HasKey);
    }

    /// <summary>name, the header reason (<see cref="ParsedFrame.Drop"/>), the transport reason (<see cref="ParsedFrame.L4Drop"/>).</summary>
    public static TheoryData<string, DropReason, DropReason> Malformed => new()
    {
        { "truncated-ethernet", DropReason.Truncated, ParsedFrame.None },
        { "ipv6", DropReason.UnsupportedEthertype, ParsedFrame.None },
        { "truncated-ip", DropReason.Truncated, ParsedFrame.None },
        { "bad-version", DropReason.BadVersion, ParsedFrame.None },
        // Version is checked before IHL: a frame wrong in both is bad-version.
        { "bad-version-and-ihl", DropReason.BadVersion, ParsedFrame.None },
        { "bad-ihl-small", DropReason.BadIhl, ParsedFrame.None },
        { "bad-ihl-beyond", DropReason.BadIhl, ParsedFrame.None },
        { "total-length-beyond-frame", DropReason.BadTotalLength, ParsedFrame.None },
        { "total-length-below-header", DropReason.BadTotalLength, ParsedFrame.None },
        { "bad-ip-checksum", DropReason.BadIpChecksum, ParsedFrame.None },
        { "martian-loopback", DropReason.Martian, ParsedFrame.None },
        { "multicast", DropReason.Martian, ParsedFrame.None },
        // Martian before fragment, as the engine checked them.
        { "martian-fragment", DropReason.Martian, ParsedFrame.None },
        // Fragments of TCP, UDP and ICMP are followed (FragmentTests); a port-less protocol's are not.
        { "fragment-mf-gre", DropReason.Fragment, ParsedFrame.None },
        { "fragment-offset-gre", DropReason.Fragment, ParsedFrame.None },
        { "truncated-tcp", ParsedFrame.None, DropReason.Truncated },
        { "tcp-offset-below-5", ParsedFrame.None, DropReason.BadL4Length },
        { "tcp-offset-beyond-payload", ParsedFrame.None, DropReason.Truncated },
        { "udp-length-beyond", ParsedFrame.None, DropReason.Truncated },
        { "udp-length-shorter-than-payload", ParsedFrame.None, DropReason.BadL4Length },
        { "udp-length-below-8", ParsedFrame.None, DropReason.BadL4Length },
        { "truncated-udp", ParsedFrame.None, DropReason.Truncated },
        { "icmp-shorter-than-header", ParsedFrame.None, DropReason.Truncated },
    };

    [Theory]
    [MemberData(nameof(Malformed))]
    public void Malformed_frames_give_their_reason(string name, DropReason header, DropReason transport)
    {
        byte[] f = BuildMalformed(name);
        FrameParser.Parse(f, Side.Inside, Seed, out ParsedFrame p);
        Assert.Equal(header, p.Drop);
        Assert.Equal(transport, p.L4Drop);
        Assert.False(p.HasKey);
        Assert.Equal(header == ParsedFrame.None, p.IsIpv4);
    }

    [Fact]
    public void Random_garbage_never_throws()
    {
        var rnd = new Random(11);
        var buf = new byte[200];
        for (int i = 0; i < 20_000; i++)
        {
            int len = rnd.Next(0, buf.Length);
            rnd.NextBytes(buf);
            if (i % 2 == 0 && len >= 34)
            {
                buf[12] = 0x08;
                buf[13] = 0x00;
                buf[14] = 0x45;
            }
            FrameParser.Parse(buf.AsSpan(0, len), i % 3 == 0 ? Side.Outside : Side.Inside, Seed, out ParsedFrame p);
            Assert.True(p.Drop == ParsedFrame.None || (int)p.Drop < DropReasons.Count);
        }
    }

    private static byte[] BuildMalformed(string name)
    {
        byte[] udp = Udp(In, 40000, Out, 53);
        switch (name)
        {
            case "truncated-ethernet": return udp[..10];
            case "ipv6": { var f = (byte[])udp.Clone(); f[12] = 0x86; f[13] = 0xDD; return f; }
            case "truncated-ip": return udp[..30];
            case "bad-version": return FixIp(udp, f => f[14] = 0x65);
            case "bad-version-and-ihl": return FixIp(udp, f => f[14] = 0x62);
            case "bad-ihl-small": return FixIp(udp, f => f[14] = 0x44);
            case "bad-ihl-beyond": return FixIp(udp[..40], f => f[14] = 0x4F);
            case "total-length-beyond-frame": return FixIp(udp, f => BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(16), 1500));
            case "total-length-below-header": return FixIp(udp, f => BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(16), 12));
            case "bad-ip-checksum": { var f = (byte[])udp.Clone(); f[24] ^= 0x55; return f; }
            case "martian-loopback": return Udp("127.0.0.1", 40000, Out, 53);
            case "multicast": return Udp(In, 5353, "224.0.0.251", 5353);
            case "martian-fragment": return FixIp(Udp("0.1.2.3", 40000, Out, 53), f => f[20] = 0x20);
            case "fragment-mf-gre": return FixIp(Wrap(In, Out, IpProtocol.Gre, new byte[8], 64, null, null), f => f[20] = 0x20);
            case "fragment-offset-gre": return FixIp(Wrap(In, Out, IpProtocol.Gre, new byte[8], 64, null, null), f => { f[20] = 0x00; f[21] = 0x10; });
            case "truncated-tcp": return Wrap(In, Out, IpProtocol.Tcp, new byte[12], 64, null, null);
            case "tcp-offset-below-5": return SetByte(Tcp(In, 40000, Out, 80, TcpH.Syn, payload: new byte[8]), 34 + 12, 4 << 4);
            case "tcp-offset-beyond-payload": return SetByte(Tcp(In, 40000, Out, 80, TcpH.Syn, payload: new byte[8]), 34 + 12, 8 << 4);
            case "udp-length-beyond": return SetUdpLength(udp, 200);
            case "udp-length-shorter-than-payload": return SetUdpLength(Udp(In, 40000, Out, 53, new byte[16], zeroChecksum: true), 16);
            case "udp-length-below-8": return SetUdpLength(udp, 4);
            case "truncated-udp": return Wrap(In, Out, IpProtocol.Udp, new byte[6], 64, null, null);
            case "icmp-shorter-than-header": return Wrap(In, Out, IpProtocol.Icmp, [8, 0, 0xf7, 0xff], 64, null, null);
            default: throw new ArgumentException(name);
        }
    }

    // The parser checks shapes, not transport checksums: a field edit alone is enough.
    private static byte[] SetByte(byte[] frame, int offset, int value)
    {
        var f = (byte[])frame.Clone();
        f[offset] = (byte)value;
        return f;
    }

    private static byte[] SetUdpLength(byte[] frame, int length)
    {
        var f = (byte[])frame.Clone();
        BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(34 + 4), (ushort)length);
        return f;
    }
}
