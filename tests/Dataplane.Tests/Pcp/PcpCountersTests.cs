using Natd.Control.Api;
using Natd.Control.Daemon;
using Natd.Dataplane.Nat;
using Natd.Dataplane.Packets;
using Natd.Dataplane.Pcp;
using Natd.Dataplane.Workers;
using static Natd.Tests.Pcp.PcpKit;

namespace Natd.Tests.Pcp;

/// <summary>PCP results counted in the shard's table reach the StatsSnapshot, natd_pcp_requests_total and natctl stats.</summary>
public class PcpCountersTests
{
    [Fact]
    public void Results_show_in_stats_metrics_and_natctl()
    {
        var h = Harness(p => p with { MappingsPerSubscriber = 1 });
        Ask(h, Hex(Map(3600, "10.0.0.2", IpProtocol.Udp, 5000)));
        Ask(h, Hex(Map(3600, "10.0.0.2", IpProtocol.Udp, 5001)));
        Ask(h, Hex(Map(3600, "10.0.0.2", IpProtocol.Udp, 5002)));
        Ask(h, Hex("00 00"));

        StatsSnapshot snap = DataplaneQuery.Snapshot([new PollerHandle(null!, h.Engine.ReadView, new PollerStats(h.Engine.Counters.Table))]);
        Assert.Equal(PcpOutcomes.Count, snap.PcpRequests.Count);
        Assert.Equal(1, snap.PcpRequests["success"]);
        Assert.Equal(2, snap.PcpRequests["user-ex-quota"]);
        Assert.Equal(1, snap.PcpRequests["natpmp-success"]);
        Assert.Equal(0, snap.PcpRequests["rate-limited"]);

        string metrics = Natd.Tests.Control.MetricsText.Of(snap);
        Assert.Contains("# TYPE natd_pcp_requests_total counter\n", metrics, StringComparison.Ordinal);
        Assert.Contains("\nnatd_pcp_requests_total{result=\"user-ex-quota\"} 2\n", metrics, StringComparison.Ordinal);
        Assert.Contains("\nnatd_pcp_requests_total{result=\"natpmp-success\"} 1\n", metrics, StringComparison.Ordinal);
        Assert.Equal(PcpOutcomes.Count, metrics.Split('\n').Count(l => l.StartsWith("natd_pcp_requests_total{", StringComparison.Ordinal)));

        string table = Natd.Contracts.StatsTable.Render(WireViews.Stats(snap));
        Assert.Matches(@"(?m)^pcp user-ex-quota\s+2$", table);
        Assert.Matches(@"(?m)^pcp success\s+1$", table);
        Assert.DoesNotMatch(@"(?m)^pcp rate-limited", table);
    }
}
