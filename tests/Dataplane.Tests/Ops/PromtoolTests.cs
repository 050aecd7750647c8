using Natd.Control.Api;
using Natd.Dataplane.Nat;
using Natd.Tests.Control;

namespace Natd.Tests.Ops;

/// <summary>
/// /metrics as Prometheus's own linter sees it: `promtool check metrics` (Debian package
/// prometheus) must exit 0 and print nothing (no naming, unit or help lint).
/// </summary>
public class PromtoolTests
{
    private static string Promtool()
    {
        string? promtool = Repo.OnPath("promtool");
        Assert.True(promtool is not null, "promtool is not installed (apt-get install -y prometheus)");
        return promtool!;
    }

    private static void AssertClean(string exposition)
    {
        var (code, output, errors) = Repo.Run(Promtool(), ["check", "metrics"], exposition);
        Assert.True(code == 0 && output.Length == 0 && errors.Length == 0,
            $"promtool check metrics exit {code}:\n{output}{errors}\n--- input ---\n{exposition}");
    }

    [Fact]
    public void A_full_snapshot_passes_promtool()
    {
        string text = MetricsText.Of(FakeDataplaneQuery.SampleStats());
        Assert.Contains("natd_rule_hits_total{rule=\"vpn-isakmp\"} 12\n", text, StringComparison.Ordinal);
        Assert.Contains("natd_ports_in_use{address=\"198.51.100.1\",protocol=\"tcp\"} 2\n", text, StringComparison.Ordinal);
        Assert.Contains("natd_poller_busy_ratio 0.125\n", text, StringComparison.Ordinal);
        AssertClean(text);
    }

    [Fact]
    public void An_idle_natd_passes_promtool()
    {
        AssertClean(MetricsText.Of(new StatsSnapshot
        {
            Drops = new Dictionary<string, long>(),
            Sessions = new Dictionary<string, long>(),
            Gateway = new Dictionary<string, long>(),
        }));
    }

    [Fact]
    public void The_linter_really_runs()
    {
        // A counter without _total is a lint problem: promtool must say so, or the checks above prove nothing.
        var (code, output, errors) = Repo.Run(Promtool(), ["check", "metrics"], "# HELP natd_x Things.\n# TYPE natd_x counter\nnatd_x 1\n");
        Assert.True(code != 0 || output.Length + errors.Length > 0, "promtool accepted a counter without _total");
    }

    [Fact]
    public async Task The_served_metrics_pass_promtool()
    {
        await using var server = await ControlServer.StartAsync("127.0.0.1:0", new FakeDataplaneQuery(), null, CancellationToken.None);
        using var http = new HttpClient { BaseAddress = server.Address, Timeout = TimeSpan.FromSeconds(10) };
        using var response = await http.GetAsync("/metrics");
        Assert.Equal("text/plain; version=0.0.4; charset=utf-8", response.Content.Headers.ContentType?.ToString());
        AssertClean(await response.Content.ReadAsStringAsync());
    }
}
