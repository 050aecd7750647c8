using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using Natd.Control.Api;
using Natd.Ctl;

namespace Natd.Tests.Control;

public sealed class NatctlTests : IAsyncLifetime
{
    private readonly FakeDataplaneQuery _query = new();
    private ControlServer? _server;
    private string _control = "";

    public async Task InitializeAsync()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        _server = await ControlServer.StartAsync("127.0.0.1:0", _query, null, cts.Token);
        _control = $"127.0.0.1:{_server.Address.Port}";
    }

    public async Task DisposeAsync()
    {
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }
    }

    private static async Task<(int Code, string Out, string Err)> Run(Func<string, string?> env, params string[] args)
    {
        var stdout = new StringWriter { NewLine = "\n" };
        var stderr = new StringWriter { NewLine = "\n" };
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        int code = await Cli.RunAsync(args, stdout, stderr, env, cts.Token);
        return (code, stdout.ToString(), stderr.ToString());
    }

    private static Task<(int Code, string Out, string Err)> Run(params string[] args) => Run(_ => null, args);

    [Fact]
    public async Task Sessions_prints_the_table()
    {
        var (code, output, err) = await Run("sessions", "-n", "--control", _control);
        Assert.Equal(0, code);
        Assert.Equal("", err);
        const string expected =
            "IP masquerading entries\n" +
            "prot expire    source           destination      ports\n" +
            "tcp  124:00.00 10.0.0.2         198.51.100.2     40312 (61001) -> 8080\n" +
            "tcp    0:30.00 10.0.0.10        198.51.100.2     40000 (61002) -> 80\n" +
            "udp    4:59.12 10.0.0.2         198.51.100.2     50000 (24001) -> 9999\n" +
            "icmp   0:59.00 10.0.0.2         198.51.100.2     1234 (40112)\n";
        Assert.Equal(expected, output);
    }

    [Fact]
    public async Task Expectations_lists_pending_pinholes_soonest_first_with_their_control_connection()
    {
        var (code, output, err) = await Run("expectations", "--control", _control);
        Assert.Equal(0, code);
        Assert.Equal("", err);
        string[] lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal("ALG expectations", lines[0]);
        Assert.Equal(4, lines.Length);
        Assert.Equal("irc  tcp  inbound    0:12.00 10.0.0.3:5000         198.51.100.1:61600    *:0                   10.0.0.3:45000 -> 198.51.100.9:6667", lines[2]);
        Assert.Equal("ftp  tcp  inbound    0:42.50 10.0.0.2:40100        198.51.100.1:61555    198.51.100.2:0        10.0.0.2:40312 -> 198.51.100.2:21", lines[3]);

        var (jcode, json, _) = await Run("expectations", "--json", "--control", _control);
        Assert.Equal(0, jcode);
        using var doc = System.Text.Json.JsonDocument.Parse(json);
        Assert.Equal("198.51.100.1:61555", doc.RootElement[0].GetProperty("external").GetString());
        Assert.Equal("*:0", doc.RootElement[1].GetProperty("remote").GetString());
    }

    [Fact]
    public async Task Sessions_json_is_the_api_json_indented()
    {
        var (code, output, _) = await Run("sessions", "--json", $"--control={_control}");
        Assert.Equal(0, code);
        Assert.Contains("\n  {\n    \"protocol\": \"udp\",", output, StringComparison.Ordinal);
        using var http = new HttpClient { BaseAddress = _server!.Address };
        string api = await http.GetStringAsync("/sessions");
        using var a = JsonDocument.Parse(api);
        using var b = JsonDocument.Parse(output);
        Assert.True(JsonElement.DeepEquals(a.RootElement, b.RootElement));
    }

    [Fact]
    public async Task Stats_prints_aligned_counters_and_nonzero_drops()
    {
        var (code, output, _) = await Run("stats", "--control", _control);
        Assert.Equal(0, code);
        string[] lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Contains(lines, l => l.StartsWith("packets in2out ", StringComparison.Ordinal) && l.EndsWith(" 11", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("sessions tcp ", StringComparison.Ordinal) && l.EndsWith(" 2", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("drops no-session ", StringComparison.Ordinal));
        Assert.DoesNotContain(lines, l => l.StartsWith("drops bad-ihl ", StringComparison.Ordinal)); // the zero reason
        Assert.Contains(lines, l => l.StartsWith("alg ftp rewrites ", StringComparison.Ordinal) && l.EndsWith(" 3", StringComparison.Ordinal));
        Assert.DoesNotContain(lines, l => l.StartsWith("alg ftp lost ", StringComparison.Ordinal)); // zero: not listed
        Assert.Contains(lines, l => l.StartsWith("expectations pending ", StringComparison.Ordinal) && l.EndsWith(" 2", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("ports 198.51.100.3 tcp ", StringComparison.Ordinal) && l.EndsWith(" 0/64512 (0.0%) draining", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("ports 198.51.100.1 tcp ", StringComparison.Ordinal) && l.EndsWith(" 2/64512 (0.0%)", StringComparison.Ordinal));
        long total = _query.Stats.Drops.Values.Sum();
        Assert.Contains(lines, l => l.StartsWith("drops total ", StringComparison.Ordinal) && l.EndsWith(" " + total, StringComparison.Ordinal));
        Assert.Single(lines.Select(l => l.Length).Distinct()); // right-aligned values: every line equally long
    }

    [Fact]
    public async Task Subscribers_prints_one_row_per_subscriber_with_blocks_limits_and_hits()
    {
        var (code, output, err) = await Run("subscribers", "--control", _control);
        Assert.Equal(0, code);
        Assert.Equal("", err);
        const string expected =
            "subscriber  external      blocks                   ports     sessions  limit-hits\n" +
            "10.0.0.2    198.51.100.1  1024-2046/2              12/1024   10/2000   sessions=7 rate=2\n" +
            "10.0.0.3    198.51.100.1  2048-3070/2,4096-5118/2  700/1024  650/2000  ports=3 blocks=1\n";
        Assert.Equal(expected, output);
    }

    [Fact]
    public async Task Subscribers_json_uses_the_same_kebab_case_names()
    {
        var (code, output, _) = await Run("subscribers", "--json", "--inside", "10.0.0.3", "--control", _control);
        Assert.Equal(0, code);
        using var doc = JsonDocument.Parse(output);
        Assert.Equal(1, doc.RootElement.GetProperty("total").GetInt64());
        var row = Assert.Single(doc.RootElement.GetProperty("subscribers").EnumerateArray());
        Assert.Equal(["subscriber", "external", "blocks", "ports", "port-limit", "sessions", "session-limit", "limit-hits"],
            row.EnumerateObject().Select(p => p.Name));
        Assert.Equal("10.0.0.3", row.GetProperty("subscriber").GetString());
        Assert.Equal(["2048-3070/2", "4096-5118/2"], row.GetProperty("blocks").EnumerateArray().Select(b => b.GetString()));
        Assert.Equal(3, row.GetProperty("limit-hits").GetProperty("ports").GetInt64());
    }

    [Fact]
    public async Task Subscribers_inside_a_prefix_and_the_limit_bound_the_listing()
    {
        var (code, output, _) = await Run("subscribers", "--inside", "10.0.0.0/24", "--limit", "1", "--control", _control);
        Assert.Equal(0, code);
        string[] lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(3, lines.Length);
        Assert.StartsWith("10.0.0.2 ", lines[1], StringComparison.Ordinal);
        Assert.Equal("(1 more subscribers not shown; raise --limit)", lines[2]);

        var (none, empty, _) = await Run("subscribers", "--inside", "10.0.1.2", "--control", _control);
        Assert.Equal(0, none);
        Assert.Single(empty.Split('\n', StringSplitOptions.RemoveEmptyEntries)); // the header only
    }

    [Fact]
    public async Task Blocks_prints_one_row_per_block_by_address_and_port()
    {
        var (code, output, err) = await Run("blocks", "--control", _control);
        Assert.Equal(0, code);
        Assert.Equal("", err);
        string[] lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(4, lines.Length);
        Assert.Matches(@"^external\s+block\s+subscriber\s+ports-in-use\s+allocated-at$", lines[0]);
        Assert.Matches(@"^198\.51\.100\.1\s+1024-2046/2\s+10\.0\.0\.2\s+12\s+\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", lines[1]);
        Assert.Matches(@"^198\.51\.100\.1\s+2048-3070/2\s+10\.0\.0\.3\s+512\s", lines[2]);
        Assert.Matches(@"^198\.51\.100\.1\s+4096-5118/2\s+10\.0\.0\.3\s+188\s", lines[3]);

        var (jcode, json, _) = await Run("blocks", "--json", "--limit", "2", "--control", _control);
        Assert.Equal(0, jcode);
        using var doc = JsonDocument.Parse(json);
        Assert.Equal(3, doc.RootElement.GetProperty("total").GetInt64());
        var first = doc.RootElement.GetProperty("blocks")[0];
        Assert.Equal(["external", "block", "port-low", "port-high", "port-step", "subscriber", "ports-in-use", "allocated-at"],
            first.EnumerateObject().Select(p => p.Name));
        Assert.Equal(2, doc.RootElement.GetProperty("blocks").GetArrayLength());
    }

    [Fact]
    public async Task Stats_prints_the_per_subscriber_refusals_as_drop_reasons_and_the_subscribers()
    {
        var (code, output, _) = await Run("stats", "--control", _control);
        Assert.Equal(0, code);
        string[] lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        foreach (string reason in (string[])["subscriber-session-limit", "subscriber-port-limit", "subscriber-rate-limit", "paired-address-full"])
        {
            long v = _query.Stats.Drops[reason];
            Assert.Contains(lines, l => l.StartsWith("drops " + reason + " ", StringComparison.Ordinal) && l.EndsWith(" " + v, StringComparison.Ordinal));
        }
        Assert.Contains(lines, l => l.StartsWith("subscribers ", StringComparison.Ordinal) && l.EndsWith(" 2", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("port blocks 198.51.100.1 ", StringComparison.Ordinal) && l.EndsWith(" 3/62 (4.8%)", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Stats_json_round_trips()
    {
        var (code, output, _) = await Run("stats", "--json", "--control", _control);
        Assert.Equal(0, code);
        using var doc = JsonDocument.Parse(output);
        Assert.Equal(_query.Stats.BytesIn2Out, doc.RootElement.GetProperty("bytesIn2Out").GetInt64());
    }

    [Fact]
    public async Task Metrics_prints_the_raw_text()
    {
        var (code, output, _) = await Run("metrics", "--control", _control);
        Assert.Equal(0, code);
        Assert.Equal(MetricsText.NatdLines(MetricsText.Of(_query.Stats)), MetricsText.NatdLines(output));
    }

    [Fact]
    public async Task The_environment_names_the_control_address()
    {
        var (code, output, _) = await Run(name => name == "NATD_CONTROL" ? _control : null, "metrics");
        Assert.Equal(0, code);
        Assert.StartsWith("# HELP ", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Api_errors_exit_2_with_the_reason()
    {
        _query.Fail = true;
        var (code, output, err) = await Run("sessions", "--control", _control);
        Assert.Equal(2, code);
        Assert.Equal("", output);
        Assert.Equal($"natctl: natd control API at http://{_control}: GET /sessions answered 503 Service Unavailable: dataplane query failed: poller 0 did not answer\n", err);
    }

    [Fact]
    public async Task Unreachable_natd_exits_2_with_one_line()
    {
        int port;
        using (var probe = new TcpListener(IPAddress.Loopback, 0))
        {
            probe.Start();
            port = ((IPEndPoint)probe.LocalEndpoint).Port;
            probe.Stop();
        }
        var (code, output, err) = await Run(_ => $"127.0.0.1:{port}", "sessions");
        Assert.Equal(2, code);
        Assert.Equal("", output);
        Assert.Equal($"natctl: cannot reach natd control API at http://127.0.0.1:{port} (connection refused): is natd running?\n", err);
    }

    [Theory]
    [InlineData]
    [InlineData("flush", "now")]
    [InlineData("flush", "--external", "198.51.100")]
    [InlineData("flush", "--external", "::1")]
    [InlineData("flush", "--inside", "10.0.0.2")]
    [InlineData("frobnicate")]
    [InlineData("sessions", "--protocol", "sctp")]
    [InlineData("sessions", "--inside", "10.0.0")]
    [InlineData("sessions", "--udp", "600")]
    [InlineData("stats", "--protocol", "tcp")]
    [InlineData("delete", "tcp")]
    [InlineData("delete", "sctp", "10.0.0.2:80")]
    [InlineData("delete", "tcp", "10.0.0.2")]
    [InlineData("delete", "tcp", "10.0.0.2:0")]
    [InlineData("delete", "tcp", "10.0.0.2:80", "198.51.100.2:x")]
    [InlineData("timeouts", "set")]
    [InlineData("timeouts", "set", "0", "0", "0")]
    [InlineData("timeouts", "set", "1200", "60")]
    [InlineData("timeouts", "set", "1200", "60", "-1")]
    [InlineData("timeouts", "set", "1200", "60", "120", "--udp", "5")]
    [InlineData("timeouts", "set", "--udp", "0")]
    [InlineData("timeouts", "set", "--tcp", "1", "--tcp-established", "2")]
    [InlineData("timeouts", "show")]
    [InlineData("config", "check")]
    [InlineData("config", "check", "a.yaml", "--json")]
    [InlineData("sessions", "--verbose")]
    [InlineData("sessions", "stats")]
    [InlineData("sessions", "--control")]
    [InlineData("sessions", "--control", "nohost")]
    [InlineData("metrics", "--json")]
    [InlineData("subscribers", "--limit", "0")]
    [InlineData("subscribers", "--limit", "many")]
    [InlineData("subscribers", "--inside", "10.0.0.0/33")]
    [InlineData("subscribers", "10.0.0.2")]
    [InlineData("blocks", "--inside", "10.0.0.2")]
    [InlineData("stats", "--limit", "5")]
    public async Task Usage_errors_exit_1(params string[] args)
    {
        var (code, output, err) = await Run(args);
        Assert.Equal(1, code);
        Assert.Equal("", output);
        Assert.StartsWith("natctl: ", err, StringComparison.Ordinal);
        Assert.Contains("usage: natctl", err, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Help_goes_to_stdout_and_exits_0()
    {
        var (code, output, _) = await Run("--help");
        Assert.Equal(0, code);
        Assert.Contains("sessions", output, StringComparison.Ordinal);
        Assert.Contains("NATD_CONTROL", output, StringComparison.Ordinal);
    }
}
