using Natd.Dataplane.Nat;
using Natd.Tests.Support;

namespace Natd.Tests.Replay;

/// <summary>
/// A frame's ingress side: a pcapng interface named inside/outside says it; in a classic pcap
/// (no names) an IPv4 source in the inside networks means inside, anything else outside. The
/// drop reason tells the sides apart: an inside frame from outside the inside networks is
/// not-from-inside-network, an outside frame not addressed to natd is no-route.
/// </summary>
public class SideDetectionTests
{
    private static readonly string NoRoute = DropReasons.Label(DropReason.NoRoute);
    private static readonly string NotFromInside = DropReasons.Label(DropReason.NotFromInsideNetwork);

    private static byte[] HostToRemote() => Frames.Udp("10.0.0.2", 5353, "203.0.113.53", 53);
    private static byte[] RemoteToHost() => Lab.FromOutside(Frames.Udp("203.0.113.53", 53, "10.0.0.2", 5353));

    [Fact]
    public void Classic_pcap_takes_the_side_from_the_source_network()
    {
        long t = ReplayKit.T0;
        var frames = new List<CapFrame>
        {
            Lab.RouterArp(t),
            new(HostToRemote(), t + 1000),
            new(RemoteToHost(), t + 2000),
            new(Frames.Arp(1, Frames.InsideHostMac, "10.0.0.2", new byte[6], "10.0.0.1"), t + 3000),
        };
        var r = ReplayKit.Run(ReplayKit.ClassicPcap(frames));

        Assert.Equal(2, r.Summary.FromInside);
        Assert.Equal(2, r.Summary.FromOutside);
        var sent = Assert.Single(r.Out, f => f.Interface == "outside" && ReplayKit.IsIpv4(f.Data));
        Assert.Equal("198.51.100.1", Frames.Src(sent.Data));
        Assert.Equal(t + 1000, sent.TimestampNs);
        var arpReply = Assert.Single(r.Out, f => f.Interface == "inside");
        Assert.True(ReplayKit.IsArp(arpReply.Data));
        Assert.Equal(t + 3000, arpReply.TimestampNs);
        var drop = Assert.Single(r.Drops);
        Assert.Equal(("outside", NoRoute), (drop.Interface, drop.Comment));
    }

    [Fact]
    public void Pcapng_interface_name_wins_over_the_addresses()
    {
        long t = ReplayKit.T0;
        var frames = new List<CapFrame>
        {
            Lab.RouterArp(t),
            // An inside source seen on "outside": an outside frame not for natd.
            new(HostToRemote(), t + 1000, "outside"),
            // A remote's source seen on "inside": spoofed as far as natd can tell.
            new(RemoteToHost(), t + 2000, "inside"),
        };
        var r = ReplayKit.Run(ReplayKit.PcapNg(frames));
        Assert.Equal(1, r.Summary.FromInside);
        Assert.Equal(2, r.Summary.FromOutside);
        Assert.DoesNotContain(r.Out, f => ReplayKit.IsIpv4(f.Data));
        Assert.Equal([("outside", NoRoute), ("inside", NotFromInside)], r.Drops.Select(d => (d.Interface, d.Comment)));
        Assert.Equal([t + 1000, t + 2000], r.Drops.Select(d => d.TimestampNs));
    }

    [Fact]
    public void Pcapng_side_follows_the_name_not_the_interface_index()
    {
        long t = ReplayKit.T0;
        string[] names = ["outside", "inside"];
        var frames = new List<CapFrame> { Lab.RouterArp(t), new(HostToRemote(), t + 1000, "inside") };
        var r = ReplayKit.Run(ReplayKit.PcapNg(frames, names));
        var sent = Assert.Single(r.Out, f => ReplayKit.IsIpv4(f.Data));
        Assert.Equal("outside", sent.Interface);
        Assert.Equal("198.51.100.1", Frames.Src(sent.Data));
        Assert.Empty(r.Drops);
    }

    [Fact]
    public void Pcapng_interface_with_another_name_falls_back_to_the_source_network()
    {
        long t = ReplayKit.T0;
        string[] names = ["eth0"];
        var frames = new List<CapFrame>
        {
            Lab.RouterArp(t) with { Interface = "eth0" },
            new(HostToRemote(), t + 1000, "eth0"),
            new(RemoteToHost(), t + 2000, "eth0"),
        };
        var r = ReplayKit.Run(ReplayKit.PcapNg(frames, names));
        var sent = Assert.Single(r.Out, f => ReplayKit.IsIpv4(f.Data));
        Assert.Equal("outside", sent.Interface);
        Assert.Equal(("outside", NoRoute), (Assert.Single(r.Drops).Interface, r.Drops[0].Comment));
    }
}
