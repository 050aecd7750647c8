using Natd.Control.Config;
using Natd.Dataplane.Nat;
using Natd.Tests.Support;

namespace Natd.Tests.Replay;

/// <summary>
/// interfaces.*.mtu in replay (no link, so only the configured MTU applies): a datagram larger
/// than the outside MTU leaves in fragments and is counted as forwarded; one with don't-fragment
/// set is answered with fragmentation-needed and counted as a drop.
/// </summary>
public class MtuReplayTests
{
    private static byte[] Big(bool df)
    {
        byte[] f = Frames.Udp("10.0.0.2", 5353, "203.0.113.53", 53, new byte[1400 - 28]);
        return df ? f : Frames.FixIp(f, x => x[20] &= 0xBF);
    }

    [Fact]
    public void A_datagram_above_the_configured_mtu_leaves_in_fragments_or_is_answered_with_fragmentation_needed()
    {
        var config = ConfigLoader.Parse("interfaces: { outside: { mtu: 1000 } }\n", "t.yaml");
        var r = ReplayKit.Run(ReplayKit.PcapNg(
        [
            Lab.RouterArp(ReplayKit.T0),
            new CapFrame(Big(df: false), ReplayKit.T0 + 1_000_000L, "inside"),
            new CapFrame(Big(df: true), ReplayKit.T0 + 2_000_000L, "inside"),
        ]), config);

        var outside = r.Out.Where(f => f.Interface == "outside" && ReplayKit.IsIpv4(f.Data)).Select(f => f.Data).ToList();
        Assert.Equal(2, outside.Count);
        Assert.All(outside, f => Assert.True(f.Length <= 1014));
        var joined = FragmentKit.Join(outside);
        Assert.True(Frames.ChecksumsValid(joined));
        Assert.Equal("198.51.100.1", Frames.Src(joined));

        var answer = Assert.Single(r.Out, f => f.Interface == "inside" && ReplayKit.IsIpv4(f.Data));
        Assert.Equal((3, 4), (answer.Data[34], answer.Data[35]));
        Assert.Equal(1, r.Summary.Drops.GetValueOrDefault(DropReasons.Label(DropReason.FragmentationNeeded)));
        Assert.True(r.Summary.AddsUp);
        Assert.Equal(0, r.Summary.Consumed);
    }
}
