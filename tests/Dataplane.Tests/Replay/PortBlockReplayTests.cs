using Natd.Control.Config;
using Natd.Dataplane.Nat;
using Natd.Tests.Support;

namespace Natd.Tests.Replay;

/// <summary>
/// <c>natd replay</c> with a port-block configuration (RFC 6888 section 5), on the capture's clock:
/// one address, one block of 16 ports that one subscriber at a time may hold. When the holder's
/// only session expires (UDP, 300 s idle, RFC 4787 REQ-5) its emptied block rests for
/// <c>nat.port-reuse-delay</c> seconds of capture time before another subscriber gets it, so a
/// stray datagram of the old holder's flow never reaches the new one.
/// </summary>
public class PortBlockReplayTests
{
    private const long Second = 1_000_000_000L;
    private static readonly string PortExhausted = DropReasons.Label(DropReason.PortExhausted);

    private static CapFrame Query(string inside, long ts)
        => new(Frames.Udp(inside, 40000, "203.0.113.53", 53, "query"u8.ToArray()), ts, "inside");

    private static NatdConfig Config(int reuseDelay) => ConfigLoader.Parse(
        $"nat: {{ ports: 1024-1039, allocation: port-block, port-block: {{ size: 16, per-subscriber: 1 }}, port-reuse-delay: {reuseDelay} }}",
        "pba-replay.yaml");

    /// <summary>
    /// 10.0.0.2 takes the block at T0; 10.0.0.3 asks at T0 + 301 s (the sweep at that frame ends
    /// 10.0.0.2's session and empties its block), then again <paramref name="retrySeconds"/> later.
    /// </summary>
    private static ReplayResult SecondSubscriberAfter(int reuseDelay, double retrySeconds)
    {
        long t0 = ReplayKit.T0;
        long emptied = t0 + 301 * Second;
        var frames = new List<CapFrame>
        {
            Lab.RouterArp(t0 - Second),
            Query("10.0.0.2", t0),
            Query("10.0.0.3", emptied),
            Query("10.0.0.3", emptied + (long)(retrySeconds * Second)),
        };
        return ReplayKit.Run(ReplayKit.PcapNg(frames), Config(reuseDelay));
    }

    private static List<CapFrame> Outbound(ReplayResult r)
        => [.. r.Out.Where(f => f.Interface == "outside" && ReplayKit.IsIpv4(f.Data))];

    [Fact]
    public void An_emptied_block_is_not_handed_to_another_subscriber_before_the_reuse_delay_of_capture_time()
    {
        var r = SecondSubscriberAfter(reuseDelay: 120, retrySeconds: 119.5);
        var only = Assert.Single(Outbound(r));
        Assert.Equal(ReplayKit.T0, only.TimestampNs); // 10.0.0.2's query
        Assert.InRange(Frames.SrcPort(only.Data), 1024, 1039);
        // Both of 10.0.0.3's queries are refused: the only block still rests.
        Assert.Equal(2, r.Drops.Count(d => d.Comment == PortExhausted));
        Assert.All(r.Drops, d => Assert.Equal("10.0.0.3", Frames.Src(d.Data)));
    }

    [Fact]
    public void An_emptied_block_goes_to_another_subscriber_once_the_reuse_delay_of_capture_time_has_passed()
    {
        var r = SecondSubscriberAfter(reuseDelay: 120, retrySeconds: 120.5);
        var outbound = Outbound(r);
        Assert.Equal(2, outbound.Count);
        Assert.All(outbound, f => Assert.Equal("198.51.100.1", Frames.Src(f.Data)));
        Assert.All(outbound, f => Assert.InRange(Frames.SrcPort(f.Data), 1024, 1039));
        Assert.Equal(ReplayKit.T0 + 421 * Second + Second / 2, outbound[1].TimestampNs); // 10.0.0.3's retry
        // Only the query inside the delay was refused.
        var drop = Assert.Single(r.Drops);
        Assert.Equal(PortExhausted, drop.Comment);
        Assert.Equal("10.0.0.3", Frames.Src(drop.Data));
    }

    /// <summary>The contrast that shows the delay is what holds the block: without it the block moves at once.</summary>
    [Fact]
    public void Without_a_reuse_delay_the_emptied_block_goes_to_the_next_subscriber_at_once()
    {
        var r = SecondSubscriberAfter(reuseDelay: 0, retrySeconds: 1);
        var outbound = Outbound(r);
        Assert.Equal(3, outbound.Count);
        Assert.Equal(ReplayKit.T0 + 301 * Second, outbound[1].TimestampNs); // 10.0.0.3's first query
        Assert.Empty(r.Drops);
    }
}
