using Natd.Dataplane.Nat;
using Natd.Tests.Support;

namespace Natd.Tests.Replay;

/// <summary>
/// The capture's timestamps are replay's clock, so expiry is deterministic: with the default UDP
/// idle timeout of 300 s (RFC 4787 REQ-5), a reply 299 s after the request gets in and a reply
/// 301 s after it is unsolicited.
/// </summary>
public class ExpiryTests
{
    private const long Second = 1_000_000_000L;
    private static readonly string NoSession = DropReasons.Label(DropReason.NoSession);

    private static CapFrame Request(int sport, long ts)
        => new(Frames.Udp("10.0.0.2", sport, "203.0.113.53", 53, "query"u8.ToArray()), ts, "inside");

    private static CapFrame Reply(int externalPort, long ts)
        => new(Lab.FromOutside(Frames.Udp("203.0.113.53", 53, "198.51.100.1", externalPort, "answer"u8.ToArray())), ts, "outside");

    private static ReplayResult RequestThenReply(long gapSeconds)
    {
        long t0 = ReplayKit.T0;
        int ext = Assert.Single(Lab.ExternalPorts([Request(5353, t0)]));
        var frames = new List<CapFrame> { Lab.RouterArp(t0 - Second), Request(5353, t0), Reply(ext, t0 + gapSeconds * Second) };
        // Learned neighbours age out after 60 s unused and nobody answers ARP in a replay: the
        // inside host is a static neighbour, so only the session's timeout is under test.
        var config = Natd.Control.Config.ConfigLoader.Parse(
            "interfaces: { inside: { neighbours: { 10.0.0.2: 02:00:00:00:00:0a } } }", "expiry.yaml");
        return ReplayKit.Run(ReplayKit.PcapNg(frames), config);
    }

    [Fact]
    public void Reply_299_s_after_the_request_is_forwarded()
    {
        var r = RequestThenReply(299);
        var toInside = Assert.Single(r.Out, f => f.Interface == "inside");
        Assert.Equal("10.0.0.2", Frames.Dst(toInside.Data));
        Assert.Equal(5353, Frames.DstPort(toInside.Data));
        Assert.Empty(r.Drops);
        Assert.Equal(0, r.Summary.TotalDrops);
    }

    [Fact]
    public void Reply_301_s_after_the_request_is_dropped_as_no_session()
    {
        var r = RequestThenReply(301);
        Assert.DoesNotContain(r.Out, f => f.Interface == "inside");
        var drop = Assert.Single(r.Drops);
        Assert.Equal(NoSession, drop.Comment);
        Assert.Equal(1, r.Summary.Drops.GetValueOrDefault(NoSession));
        Assert.Equal(0, r.Summary.SessionsAtEnd);
    }

    /// <summary>Expiry must not depend on how many sessions happen to expire at the same moment.</summary>
    [Fact]
    public void Replies_to_many_flows_idle_for_301_s_are_all_dropped()
    {
        const int flows = 200;
        long t0 = ReplayKit.T0;
        var requests = Enumerable.Range(0, flows).Select(i => Request(20000 + i, t0 + i * 1_000_000L)).ToList();
        var ports = Lab.ExternalPorts(requests);
        Assert.Equal(flows, ports.Distinct().Count());
        long late = t0 + flows * 1_000_000L + 301 * Second;
        var frames = new List<CapFrame> { Lab.RouterArp(t0 - Second) };
        frames.AddRange(requests);
        // Newest flow first: a bounded sweep that starts from the oldest sessions must not leave it alive.
        frames.AddRange(ports.Select((p, i) => Reply(p, late + i)).Reverse().Select((f, i) => f with { TimestampNs = late + i }));
        var r = ReplayKit.Run(ReplayKit.PcapNg(frames));
        Assert.Equal(0, r.Summary.SentInside);
        Assert.Equal(flows, r.Summary.Drops.GetValueOrDefault(NoSession));
        Assert.Equal(flows, r.Drops.Count(d => d.Comment == NoSession));
    }

    /// <summary>In an inside trace the reply is rebuilt from the session: an expired session must not rebuild it.</summary>
    [Theory]
    [InlineData(299, true)]
    [InlineData(301, false)]
    public void Inside_trace_reply_after_the_udp_timeout_is_unsolicited(int gapSeconds, bool reproduced)
    {
        long t0 = ReplayKit.T0;
        var trace = new List<CapFrame>
        {
            new(Frames.Udp("10.0.0.2", 5353, "203.0.113.53", 53, "query"u8.ToArray()), t0),
            new(Frames.Udp("203.0.113.53", 53, "10.0.0.2", 5353, "answer"u8.ToArray()), t0 + gapSeconds * Second),
        };
        var r = ReplayKit.Run(ReplayKit.ClassicPcap(trace), insideTrace: true);
        Assert.Equal(reproduced ? 1 : 0, r.Out.Count(f => f.Interface == "inside"));
        Assert.Equal(reproduced ? 0 : 1, r.Drops.Count(d => d.Comment == NoSession));
    }
}
