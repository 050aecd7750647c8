using Natd.Dataplane.Nat;
using Natd.Tests.Support;

namespace Natd.Tests.Replay;

/// <summary>
/// Golden replay: a conversation built by the test (TCP handshake, data and FIN, UDP
/// request/reply, ICMP echo, unsolicited UDP, a frame with a bad IP checksum, an ICMP port
/// unreachable from outside) replayed with a fixed seed against the lab configuration; every
/// frame of OUT and of the drops file is compared byte for byte with a frame the test builds
/// independently (Frames' own checksum code).
/// </summary>
public class GoldenReplayTests
{
    private const string Host = "10.0.0.2", Ext = "198.51.100.1", Web = "203.0.113.10", Dns = "203.0.113.53", Pinged = "192.0.2.7", Stranger = "203.0.113.99";
    private const byte Fin = 1, Syn = 2, Psh = 8, Ack = 16;
    private const int HostTcpPort = 40000, HostUdpPort = 5353, HostIcmpId = 0x4242;
    private static readonly byte[] Get = "GET / HTTP/1.0\r\n\r\n"u8.ToArray();
    private static readonly byte[] Ok = "HTTP/1.0 200 OK\r\n\r\nhi"u8.ToArray();

    /// <summary>External ports natd chose for the TCP, UDP and ICMP flows.</summary>
    private readonly record struct Ports(int Tcp, int Udp, int IcmpId);

    private sealed record Step(CapFrame In, string? OutInterface, byte[]? Expected, string? DropLabel);

    private static long Ts(int i) => ReplayKit.T0 + i * 10_000_000L + 123_000;

    private static byte[] FromInside(byte[] f) => f; // Frames' defaults: host MAC to gateway inside MAC
    private static byte[] FromOutside(byte[] f) => Frames.WithMacs(f, ReplayKit.RouterMac, ReplayKit.ReplayOutsideMac);
    private static byte[] ToOutside(byte[] f) => Frames.WithMacs(f, ReplayKit.ReplayOutsideMac, ReplayKit.RouterMac);
    private static byte[] ToInside(byte[] f) => Frames.WithMacs(f, ReplayKit.ReplayInsideMac, Frames.InsideHostMac);

    /// <summary>The capture as the router ARP, the inside host's outbound traffic, and the remotes' replies addressed to <paramref name="p"/>.</summary>
    private static List<Step> Scenario(Ports p)
    {
        var steps = new List<Step>();
        void Fwd(string side, byte[] input, byte[] expected, string? egress = null)
            => steps.Add(new Step(new CapFrame(input, Ts(steps.Count), side), egress ?? (side == "inside" ? "outside" : "inside"), expected, null));
        void Drop(string side, byte[] input, string label)
            => steps.Add(new Step(new CapFrame(input, Ts(steps.Count), side), null, null, label));

        // The router asks for natd's outside address: natd answers and learns the router's MAC.
        Fwd("outside", Frames.Arp(1, ReplayKit.RouterMac, "198.51.100.254", new byte[6], Ext),
            Frames.Arp(2, ReplayKit.ReplayOutsideMac, Ext, ReplayKit.RouterMac, "198.51.100.254", dmac: ReplayKit.RouterMac),
            egress: "outside");
        // TCP handshake and data.
        Fwd("inside", FromInside(Frames.Tcp(Host, HostTcpPort, Web, 80, Syn, 1000)),
            ToOutside(Frames.Tcp(Ext, p.Tcp, Web, 80, Syn, 1000, ttl: 63)));
        Fwd("outside", FromOutside(Frames.Tcp(Web, 80, Ext, p.Tcp, Syn | Ack, 5000, 1001, ttl: 50)),
            ToInside(Frames.Tcp(Web, 80, Host, HostTcpPort, Syn | Ack, 5000, 1001, ttl: 49)));
        Fwd("inside", FromInside(Frames.Tcp(Host, HostTcpPort, Web, 80, Ack, 1001, 5001)),
            ToOutside(Frames.Tcp(Ext, p.Tcp, Web, 80, Ack, 1001, 5001, ttl: 63)));
        Fwd("inside", FromInside(Frames.Tcp(Host, HostTcpPort, Web, 80, Psh | Ack, 1001, 5001, Get)),
            ToOutside(Frames.Tcp(Ext, p.Tcp, Web, 80, Psh | Ack, 1001, 5001, Get, ttl: 63)));
        Fwd("outside", FromOutside(Frames.Tcp(Web, 80, Ext, p.Tcp, Psh | Ack, 5001, 1001 + (uint)Get.Length, Ok, ttl: 50)),
            ToInside(Frames.Tcp(Web, 80, Host, HostTcpPort, Psh | Ack, 5001, 1001 + (uint)Get.Length, Ok, ttl: 49)));
        // UDP request and reply.
        Fwd("inside", FromInside(Frames.Udp(Host, HostUdpPort, Dns, 53, "query"u8.ToArray())),
            ToOutside(Frames.Udp(Ext, p.Udp, Dns, 53, "query"u8.ToArray(), ttl: 63)));
        Fwd("outside", FromOutside(Frames.Udp(Dns, 53, Ext, p.Udp, "answer"u8.ToArray(), ttl: 57)),
            ToInside(Frames.Udp(Dns, 53, Host, HostUdpPort, "answer"u8.ToArray(), ttl: 56)));
        // ICMP echo.
        Fwd("inside", FromInside(Frames.Icmp(Host, Pinged, 8, 0, HostIcmpId, 1)),
            ToOutside(Frames.Icmp(Ext, Pinged, 8, 0, p.IcmpId, 1, ttl: 63)));
        Fwd("outside", FromOutside(Frames.Icmp(Pinged, Ext, 0, 0, p.IcmpId, 1, ttl: 60)),
            ToInside(Frames.Icmp(Pinged, Host, 0, 0, HostIcmpId, 1, ttl: 59)));
        // A third address tries the UDP mapping (refused by address-and-port-dependent filtering),
        // then a port nothing maps.
        Drop("outside", FromOutside(Frames.Udp(Stranger, 5000, Ext, p.Udp, "knock"u8.ToArray())), DropReasons.Label(DropReason.Filtered));
        Drop("outside", FromOutside(Frames.Udp(Stranger, 5000, Ext, p.Udp == 40001 ? 40002 : 40001, "knock"u8.ToArray())), DropReasons.Label(DropReason.NoSession));
        // A malformed frame: the IPv4 header checksum is off by one.
        var bad = FromInside(Frames.Udp(Host, HostUdpPort, Dns, 53, "query"u8.ToArray()));
        bad[25] ^= 0x01;
        Drop("inside", bad, DropReasons.Label(DropReason.BadIpChecksum));
        // A second UDP request, answered by an ICMP port unreachable quoting it as natd sent it.
        var sentQuery = Frames.Udp(Ext, p.Udp, Dns, 53, "query2"u8.ToArray(), ttl: 63);
        Fwd("inside", FromInside(Frames.Udp(Host, HostUdpPort, Dns, 53, "query2"u8.ToArray())), ToOutside(sentQuery));
        Fwd("outside", FromOutside(Frames.IcmpError(Dns, Ext, 3, 3, sentQuery, ttl: 58)),
            ToInside(Frames.IcmpError(Dns, Host, 3, 3, Frames.Udp(Host, HostUdpPort, Dns, 53, "query2"u8.ToArray(), ttl: 63), ttl: 57)));
        // TCP close.
        uint hostSeq = 1001 + (uint)Get.Length, webSeq = 5001 + (uint)Ok.Length;
        Fwd("inside", FromInside(Frames.Tcp(Host, HostTcpPort, Web, 80, Fin | Ack, hostSeq, webSeq)),
            ToOutside(Frames.Tcp(Ext, p.Tcp, Web, 80, Fin | Ack, hostSeq, webSeq, ttl: 63)));
        Fwd("outside", FromOutside(Frames.Tcp(Web, 80, Ext, p.Tcp, Fin | Ack, webSeq, hostSeq + 1, ttl: 50)),
            ToInside(Frames.Tcp(Web, 80, Host, HostTcpPort, Fin | Ack, webSeq, hostSeq + 1, ttl: 49)));
        Fwd("inside", FromInside(Frames.Tcp(Host, HostTcpPort, Web, 80, Ack, hostSeq + 1, webSeq + 1)),
            ToOutside(Frames.Tcp(Ext, p.Tcp, Web, 80, Ack, hostSeq + 1, webSeq + 1, ttl: 63)));
        return steps;
    }

    /// <summary>Learns the external ports a seed gives: replays only the frames that create the three mappings, in the same order.</summary>
    private static Ports Probe(ulong seed)
    {
        var steps = Scenario(new Ports(1, 1, 1));
        int[] creators = [0, 1, 6, 8]; // router ARP, SYN, UDP request, echo request
        var input = ReplayKit.PcapNg(creators.Select(i => steps[i].In));
        var r = ReplayKit.Run(input, seed: seed);
        var outside = r.Out.Where(f => f.Interface == "outside" && ReplayKit.IsIpv4(f.Data)).Select(f => f.Data).ToList();
        Assert.Equal(3, outside.Count);
        Assert.Equal([6, 17, 1], outside.Select(ReplayKit.Proto).Select(b => (int)b));
        return new Ports(Frames.SrcPort(outside[0]), Frames.SrcPort(outside[1]), Frames.IcmpId(outside[2]));
    }

    [Fact]
    public void Pcapng_conversation_replays_frame_by_frame_as_the_golden_frames()
    {
        Ports p = Probe(seed: 7);
        var steps = Scenario(p);
        var r = ReplayKit.Run(ReplayKit.PcapNg(steps.Select(s => s.In)), seed: 7);
        CheckGolden(steps, r, p);
    }

    [Fact]
    public void Classic_pcap_conversation_replays_the_same_as_pcapng()
    {
        Ports p = Probe(seed: 7);
        var steps = Scenario(p);
        var fromNg = ReplayKit.Run(ReplayKit.PcapNg(steps.Select(s => s.In)), seed: 7);
        // A classic pcap has no interface names: the sides come from the source addresses.
        var fromPcap = ReplayKit.Run(ReplayKit.ClassicPcap(steps.Select(s => s.In)), seed: 7);
        CheckGolden(steps, fromPcap, p);
        Assert.Equal(ReplayKit.Hex(fromNg.OutBytes), ReplayKit.Hex(fromPcap.OutBytes));
        var fromPcapNanos = ReplayKit.Run(ReplayKit.ClassicPcap(steps.Select(s => s.In), nanos: true), seed: 7);
        Assert.Equal(ReplayKit.Hex(fromNg.OutBytes), ReplayKit.Hex(fromPcapNanos.OutBytes));
    }

    private static void CheckGolden(List<Step> steps, ReplayResult r, Ports p)
    {
        var expectedOut = steps.Where(s => s.Expected is not null).ToList();
        var expectedDrops = steps.Where(s => s.DropLabel is not null).ToList();

        Assert.Equal(expectedOut.Count, r.Out.Count);
        for (int i = 0; i < expectedOut.Count; i++)
        {
            Step s = expectedOut[i];
            CapFrame got = r.Out[i];
            string what = $"output frame {i} (input frame {steps.IndexOf(s)})";
            Assert.True(s.OutInterface == got.Interface, $"{what}: interface {got.Interface}, expected {s.OutInterface}");
            Assert.True(s.In.TimestampNs == got.TimestampNs, $"{what}: timestamp {got.TimestampNs}, expected the input's {s.In.TimestampNs}");
            Assert.True(ReplayKit.Hex(s.Expected!) == ReplayKit.Hex(got.Data), $"{what}:\n expected {ReplayKit.Hex(s.Expected!)}\n got      {ReplayKit.Hex(got.Data)}");
            if (ReplayKit.IsIpv4(got.Data))
            {
                Assert.True(Frames.ChecksumsValid(got.Data), $"{what}: checksums");
                Assert.Equal(Frames.Ttl(s.In.Data) - 1, Frames.Ttl(got.Data));
                byte[] egressMac = got.Interface == "inside" ? ReplayKit.ReplayInsideMac : ReplayKit.ReplayOutsideMac;
                Assert.Equal(egressMac, got.Data[6..12]);
                if (got.Interface == "outside")
                {
                    Assert.Equal("198.51.100.1", Frames.Src(got.Data));
                    int port = ReplayKit.Proto(got.Data) switch { 6 => p.Tcp, 17 => p.Udp, _ => p.IcmpId };
                    Assert.Equal(port, ReplayKit.Proto(got.Data) == 1 ? Frames.IcmpId(got.Data) : Frames.SrcPort(got.Data));
                }
                else
                {
                    Assert.Equal(Host, Frames.Dst(got.Data));
                }
            }
        }

        Assert.Equal(expectedDrops.Count, r.Drops.Count);
        for (int i = 0; i < expectedDrops.Count; i++)
        {
            Step s = expectedDrops[i];
            CapFrame got = r.Drops[i];
            Assert.Equal(s.DropLabel, got.Comment);
            Assert.Equal(s.In.Interface, got.Interface);
            Assert.Equal(s.In.TimestampNs, got.TimestampNs);
            Assert.Equal(ReplayKit.Hex(s.In.Data), ReplayKit.Hex(got.Data));
        }

        var sum = r.Summary;
        Assert.Equal(steps.Count, sum.FramesRead);
        Assert.Equal(steps.Count(s => s.In.Interface == "inside"), sum.FromInside);
        Assert.Equal(steps.Count(s => s.In.Interface == "outside"), sum.FromOutside);
        Assert.Equal(expectedOut.Count(s => s.OutInterface == "inside"), sum.SentInside);
        Assert.Equal(expectedOut.Count(s => s.OutInterface == "outside"), sum.SentOutside);
        Assert.Equal(
            expectedDrops.GroupBy(s => s.DropLabel!).ToDictionary(g => g.Key, g => (long)g.Count()).OrderBy(kv => kv.Key),
            sum.Drops.OrderBy(kv => kv.Key));
        Assert.Equal(3, sum.SessionsAtEnd);
    }

    [Fact]
    public void Same_seed_gives_byte_identical_output_and_another_seed_other_ports()
    {
        Ports p = Probe(seed: 1);
        byte[] input = ReplayKit.PcapNg(Scenario(p).Select(s => s.In));
        var a = ReplayKit.Run(input, seed: 1);
        var b = ReplayKit.Run(input, seed: 1);
        Assert.True(a.Out.Count > 10);
        Assert.Equal(ReplayKit.Hex(a.OutBytes), ReplayKit.Hex(b.OutBytes));

        Ports q = Probe(seed: 2);
        Assert.NotEqual(p, q);
        var c = ReplayKit.Run(input, seed: 2);
        var firstSyn = c.Out.First(f => f.Interface == "outside" && ReplayKit.IsIpv4(f.Data) && ReplayKit.Proto(f.Data) == 6);
        Assert.Equal(q.Tcp, Frames.SrcPort(firstSyn.Data));
        Assert.NotEqual(ReplayKit.Hex(a.OutBytes), ReplayKit.Hex(c.OutBytes));
    }
}
