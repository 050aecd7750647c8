using Natd.Live;

namespace Natd.Tests.EndToEnd;

/// <summary>
/// The live harness's plan of rows (perf/live/run): which gateways it measures, which natd rows get
/// a twin run by the base build (<c>--base</c>), and the order that alternates who goes first. No
/// lab is built: the plan is computed before any measurement.
/// </summary>
[Trait("Category", "EndToEnd")]
public sealed class LiveHarnessPlanTests
{
    private static Harness Make(string? baseNatd = null, string? driver = null, int maxWorkers = 2)
        => new("dotnet", "natd.dll", "live.dll", seconds: 1, runs: 2, maxWorkers, pin: false, TextWriter.Null,
            baseNatd, baseLabel: baseNatd is null ? null : "abc1234", driver);

    [Fact]
    public void With_a_base_every_natd_row_of_this_build_has_a_twin_on_the_base_build_right_after_it()
    {
        List<Variant> plan = Make(baseNatd: "base/natd.dll", maxWorkers: 3).Variants();

        List<Variant> ours = plan.FindAll(v => v.Kind == GatewayKind.Natd && v.Natd is null);
        Assert.Equal(6, ours.Count); // af_packet and af_xdp, workers 1 to 3
        foreach (Variant v in ours)
        {
            int i = plan.IndexOf(v);
            Variant twin = plan[i + 1];
            Assert.Equal("base/natd.dll", twin.Natd);
            Assert.Equal((v.Driver, v.Workers, v.Scaling), (twin.Driver, twin.Workers, twin.Scaling));
            Assert.Equal(v.Label + " (abc1234)", twin.Label);
        }
        Assert.Equal(12, plan.FindAll(v => v.Kind == GatewayKind.Natd).Count);
        Assert.Equal(2, plan.FindAll(v => v.Kind != GatewayKind.Natd).Count); // kernel forwarding and nftables, once each
    }

    [Fact]
    public void Without_a_base_no_row_runs_another_build()
    {
        List<Variant> plan = Make(maxWorkers: 2).Variants();

        Assert.DoesNotContain(plan, v => v.Natd is not null);
        Assert.Equal(
            ["kernel forward", "nftables snat", "natd af_packet", "natd af_xdp", "natd af_packet workers=2", "natd af_xdp workers=2"],
            plan.ConvertAll(v => v.Label));
    }

    [Fact]
    public void A_driver_keeps_only_its_rows_and_their_twins()
    {
        List<Variant> plan = Make(baseNatd: "base/natd.dll", driver: "af_xdp").Variants();

        Assert.All(plan, v => Assert.Equal("af_xdp", v.Driver));
        Assert.Equal(
            ["natd af_xdp", "natd af_xdp (abc1234)", "natd af_xdp workers=2", "natd af_xdp workers=2 (abc1234)"],
            plan.ConvertAll(v => v.Label));
    }

    [Fact]
    public void Twins_swap_places_every_other_run_so_neither_build_always_goes_first()
    {
        List<Variant> plan = Make(baseNatd: "base/natd.dll", driver: "af_xdp").Variants();

        Assert.Equal(plan, Harness.OrderOf(plan, 0));
        Assert.Equal(
            ["natd af_xdp (abc1234)", "natd af_xdp", "natd af_xdp workers=2 (abc1234)", "natd af_xdp workers=2"],
            Harness.OrderOf(plan, 1).ConvertAll(v => v.Label));
        Assert.Equal(plan, Harness.OrderOf(plan, 2));
    }
}
