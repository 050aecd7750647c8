using Natd.Control.Config;
using Natd.Dataplane.Nat;
using Natd.Tests.Support;

namespace Natd.Tests.Replay;

/// <summary>
/// `natd replay --inside-trace`: IN is what an inside host captured (both directions); natd turns
/// each frame addressed to the host into what the remote really sent, translates it back, and
/// OUT's inside side must reproduce IN's inbound frames exactly but for TTL, the IPv4 header
/// checksum and Ethernet addresses.
/// </summary>
public class InsideTraceTests
{
    private const string Host = "10.0.0.2", Web = "203.0.113.10", Dns = "203.0.113.53", Pinged = "192.0.2.7";
    private const byte Fin = 1, Syn = 2, Psh = 8, Ack = 16;

    /// <summary>The inside host's own router as its capture shows it (natd's inside port in the lab).</summary>
    private static readonly byte[] HostsRouter = [0x02, 0, 0, 0, 0, 0x99];

    private static long Ts(int i) => ReplayKit.T0 + i * 7_000_000L;

    private static byte[] Out(byte[] f) => Frames.WithMacs(f, Frames.InsideHostMac, HostsRouter);
    private static byte[] In(byte[] f) => Frames.WithMacs(f, HostsRouter, Frames.InsideHostMac);

    /// <summary>A trace on 10.0.0.2: TCP with data and close, UDP, two pings, and one unsolicited datagram.</summary>
    private static List<CapFrame> HostTrace()
    {
        var l = new List<byte[]>
        {
            Out(Frames.Tcp(Host, 41000, Web, 443, Syn, 100)),
            In(Frames.Tcp(Web, 443, Host, 41000, Syn | Ack, 900, 101, ttl: 55)),
            Out(Frames.Tcp(Host, 41000, Web, 443, Ack, 101, 901)),
            Out(Frames.Tcp(Host, 41000, Web, 443, Psh | Ack, 101, 901, "hello tls"u8.ToArray())),
            Out(Frames.Udp(Host, 5353, Dns, 53, "query"u8.ToArray())),
            In(Frames.Tcp(Web, 443, Host, 41000, Psh | Ack, 901, 110, "server hello"u8.ToArray(), ttl: 55)),
            In(Frames.Udp(Dns, 53, Host, 5353, "answer with some bytes"u8.ToArray(), ttl: 61)),
            Out(Frames.Icmp(Host, Pinged, 8, 0, 0x777, 1)),
            In(Frames.Icmp(Pinged, Host, 0, 0, 0x777, 1, ttl: 50)),
            In(Frames.Udp("203.0.113.77", 4444, Host, 9999, "unsolicited"u8.ToArray(), ttl: 48)),
            Out(Frames.Icmp(Host, Pinged, 8, 0, 0x777, 2)),
            In(Frames.Icmp(Pinged, Host, 0, 0, 0x777, 2, ttl: 50)),
            Out(Frames.Tcp(Host, 41000, Web, 443, Fin | Ack, 110, 913)),
            In(Frames.Tcp(Web, 443, Host, 41000, Fin | Ack, 913, 111, ttl: 55)),
            Out(Frames.Tcp(Host, 41000, Web, 443, Ack, 111, 914)),
        };
        return l.Select((f, i) => new CapFrame(f, Ts(i))).ToList();
    }

    [Fact]
    public void Inbound_frames_of_a_host_trace_are_reproduced_and_the_unsolicited_one_dropped()
    {
        var trace = HostTrace();
        var o = RoundTrip.Check(ReplayKit.ClassicPcap(trace), ConfigLoader.Default(), Host);
        Assert.Equal(6, o.Reproduced.Count); // model sanity: SYN-ACK, data, DNS answer, 2 echo replies, FIN
        var unsolicited = Assert.Single(o.Unsolicited);
        Assert.Equal(Ts(9), unsolicited.TimestampNs);
        var r = o.Result;
        Assert.Equal(1, r.Summary.Drops.GetValueOrDefault(DropReasons.Label(DropReason.NoSession)));
        Assert.Equal(1, r.Summary.TotalDrops);
        Assert.Equal(trace.Count, r.Summary.FramesRead);
        Assert.Equal(trace.Count - 7, r.Summary.FromInside);
        Assert.Equal(6, r.Summary.FromOutside);
        // The unsolicited frame is a remote's datagram: it is dropped at the outside port.
        Assert.Equal("outside", Assert.Single(r.Drops).Interface);
        // What went out is the masqueraded outbound side of the trace.
        var sentOut = r.Out.Where(f => f.Interface == "outside" && ReplayKit.IsIpv4(f.Data)).ToList();
        Assert.Equal(8, sentOut.Count);
        Assert.All(sentOut, f => Assert.Equal("198.51.100.1", Frames.Src(f.Data)));
        Assert.All(sentOut, f => Assert.True(Frames.ChecksumsValid(f.Data)));
    }

    [Fact]
    public void Pcapng_host_trace_on_an_unnamed_interface_round_trips_the_same()
    {
        var trace = HostTrace().Select(f => f with { Interface = "eth0" }).ToList();
        var o = RoundTrip.Check(ReplayKit.PcapNg(trace, ["eth0"]), ConfigLoader.Default(), Host);
        Assert.Equal(6, o.Reproduced.Count);
    }

    [Fact]
    public void A_trace_of_only_unsolicited_inbound_frames_reproduces_nothing()
    {
        var trace = new List<CapFrame>
        {
            new(In(Frames.Udp(Dns, 53, Host, 5353, "answer"u8.ToArray())), Ts(0)),
            new(In(Frames.Tcp(Web, 443, Host, 41000, Syn | Ack, 900, 101)), Ts(1)),
            new(In(Frames.Icmp(Pinged, Host, 0, 0, 0x777, 1)), Ts(2)),
        };
        var o = RoundTrip.Check(ReplayKit.ClassicPcap(trace), ConfigLoader.Default(), Host);
        Assert.Empty(o.Reproduced);
        Assert.Equal(3, o.Unsolicited.Count);
        Assert.Empty(o.Result.Out);
        Assert.Equal(3, o.Result.Summary.Drops.GetValueOrDefault(DropReasons.Label(DropReason.NoSession)));
    }

    /// <summary>
    /// An ICMP error a remote sends about the host's own datagram is a reply to that flow (RFC
    /// 5508): the trace shows it quoting the datagram as the host sent it, and natd must rebuild
    /// and reproduce it like any other reply rather than call it unsolicited.
    /// </summary>
    [Fact]
    public void Icmp_port_unreachable_about_the_hosts_datagram_is_reproduced()
    {
        var sent = Out(Frames.Udp(Host, 6000, Dns, 5300, "ping?"u8.ToArray()));
        var seenByRemote = Frames.Udp(Host, 6000, Dns, 5300, "ping?"u8.ToArray(), ttl: 63);
        var trace = new List<CapFrame>
        {
            new(sent, Ts(0)),
            new(In(Frames.IcmpError(Dns, Host, 3, 3, seenByRemote, ttl: 60)), Ts(1)),
        };
        var r = ReplayKit.Run(ReplayKit.ClassicPcap(trace), insideTrace: true);
        Assert.Empty(r.Drops);
        var got = Assert.Single(r.Out, f => f.Interface == "inside");
        Assert.Equal(ReplayKit.Hex(ReplayKit.Masked(trace[1].Data)), ReplayKit.Hex(ReplayKit.Masked(got.Data)));
        Assert.True(Frames.ChecksumsValid(got.Data));
    }
}
