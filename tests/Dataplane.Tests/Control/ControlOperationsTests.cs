using System.Net;
using System.Text;
using System.Text.Json;
using Natd.Control.Api;
using Natd.Ctl;
using Natd.Dataplane.Nat;
using Natd.Dataplane.Packets;
using Natd.Dataplane.Sessions;

namespace Natd.Tests.Control;

/// <summary>The control API's filters and write endpoints, over HTTP and through natctl.</summary>
public sealed class ControlOperationsTests : IAsyncLifetime
{
    private readonly FakeDataplaneQuery _query = new();
    private readonly FakeControlOperations _ops = new();
    private ControlServer? _server;
    private HttpClient? _http;
    private string _control = "";

    public async Task InitializeAsync()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        _server = await ControlServer.StartAsync("127.0.0.1:0", _query, _ops, null, cts.Token);
        _http = new HttpClient { BaseAddress = _server.Address, Timeout = TimeSpan.FromSeconds(10) };
        _control = $"127.0.0.1:{_server.Address.Port}";
    }

    public async Task DisposeAsync()
    {
        _http?.Dispose();
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }
    }

    private async Task<(int Code, string Out, string Err)> Natctl(params string[] args)
    {
        var stdout = new StringWriter { NewLine = "\n" };
        var stderr = new StringWriter { NewLine = "\n" };
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        int code = await Cli.RunAsync([.. args, "--control", _control], stdout, stderr, _ => null, cts.Token);
        return (code, stdout.ToString(), stderr.ToString());
    }

    private async Task<(HttpStatusCode Status, string Body)> Send(HttpMethod method, string path, string? json = null)
    {
        using var request = new HttpRequestMessage(method, path);
        if (json is not null)
        {
            request.Content = new StringContent(json, Encoding.UTF8, "application/json");
        }
        using var response = await _http!.SendAsync(request);
        return (response.StatusCode, await response.Content.ReadAsStringAsync());
    }

    [Theory]
    [InlineData("?protocol=tcp", new[] { 2, 3 })]
    [InlineData("?protocol=icmp", new[] { 1 })]
    [InlineData("?inside=10.0.0.10", new[] { 2 })]
    [InlineData("?inside=10.0.0.2:40312", new[] { 3 })]
    [InlineData("?remote=198.51.100.2:80", new[] { 2 })]
    [InlineData("?protocol=udp&inside=10.0.0.2&remote=198.51.100.2", new[] { 0 })]
    [InlineData("?protocol=udp&inside=10.0.0.10", new int[0])]
    [InlineData("", new[] { 0, 1, 2, 3 })]
    public async Task Session_filters_apply_server_side(string query, int[] expected)
    {
        var (status, body) = await Send(HttpMethod.Get, "/sessions" + query);
        Assert.Equal(HttpStatusCode.OK, status);
        using var doc = JsonDocument.Parse(body);
        var ports = doc.RootElement.EnumerateArray().Select(e => e.GetProperty("externalPort").GetInt32()).ToArray();
        Assert.Equal(expected.Select(i => (int)_query.Sessions[i].ExternalPort).ToArray(), ports);
    }

    [Theory]
    [InlineData("?protocol=sctp", "protocol 'sctp' is not tcp, udp, icmp, isakmp, esp or gre")]
    [InlineData("?inside=10.0.0", "inside '10.0.0' is not ADDRESS[:PORT]")]
    [InlineData("?remote=1.2.3.4:99999", "remote '1.2.3.4:99999' is not ADDRESS[:PORT]")]
    [InlineData("?port=80", "unknown filter 'port'")]
    public async Task Bad_filters_answer_400(string query, string message)
    {
        var (status, body) = await Send(HttpMethod.Get, "/sessions" + query);
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains(message, body, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Flush_answers_the_count()
    {
        var (status, body) = await Send(HttpMethod.Post, "/flush");
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal("""{"deleted":4}""", body);
        Assert.Equal(1, _ops.Flushes);
        Assert.Equal(0u, _ops.FlushedExternals[^1]); // every session
    }

    [Fact]
    public async Task Flush_of_one_external_address_passes_it_and_refuses_anything_else()
    {
        var (status, body) = await Send(HttpMethod.Post, "/flush?external=198.51.100.11");
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal("""{"deleted":4}""", body);
        Assert.Equal(Ipv4.Parse("198.51.100.11"), _ops.FlushedExternals[^1]);
        foreach (string bad in new[] { "/flush?external=198.51.100", "/flush?external=0.0.0.0", "/flush?inside=10.0.0.2", "/flush?external=198.51.100.11&x=1" })
        {
            (status, body) = await Send(HttpMethod.Post, bad);
            Assert.Equal(HttpStatusCode.BadRequest, status);
            Assert.Contains("?external=a.b.c.d", body, StringComparison.Ordinal);
        }
        Assert.Equal(1, _ops.Flushes); // nothing flushed by a refused request
    }

    [Fact]
    public async Task Delete_parses_the_endpoints()
    {
        var (status, body) = await Send(HttpMethod.Post, "/sessions/delete", """{"protocol":"udp","inside":"10.0.0.2:50000","remote":"198.51.100.2:9999"}""");
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal("""{"deleted":1}""", body);
        Assert.Equal(new SessionSelector(17, Ipv4.Parse("10.0.0.2"), 50000, Ipv4.Parse("198.51.100.2"), 9999), Assert.Single(_ops.Deletes));

        (status, body) = await Send(HttpMethod.Post, "/sessions/delete", """{"protocol":"icmp","inside":"10.0.0.2:1234"}""");
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal(new SessionSelector(1, Ipv4.Parse("10.0.0.2"), 1234, 0, 0), _ops.Deletes[1]);
    }

    [Theory]
    [InlineData("""{"protocol":"tcp"}""", "inside '' is not ADDRESS:PORT")]
    [InlineData("""{"protocol":"gre","inside":"10.0.0.2:1"}""", "protocol 'gre' is not tcp, udp or icmp")]
    [InlineData("""{"protocol":"tcp","inside":"10.0.0.2"}""", "inside '10.0.0.2' is not ADDRESS:PORT")]
    [InlineData("""{"protocol":"tcp","inside":"10.0.0.2:80","remote":"x"}""", "remote 'x' is not ADDRESS[:PORT]")]
    [InlineData("""{"protocol":"tcp","inside":"10.0.0.2:80","port":1}""", "'port' must be a string")]
    [InlineData("""{"protocol":"tcp","inside":"10.0.0.2:80","extra":"1"}""", "unknown field 'extra'")]
    [InlineData("""[1]""", "expected a JSON object")]
    [InlineData("""{""", "body is not JSON")]
    public async Task Bad_delete_bodies_answer_400(string json, string message)
    {
        var (status, body) = await Send(HttpMethod.Post, "/sessions/delete", json);
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains(message, body, StringComparison.Ordinal);
        Assert.Empty(_ops.Deletes);
    }

    [Fact]
    public async Task Reload_answers_ok_or_422_with_messages()
    {
        var (status, body) = await Send(HttpMethod.Post, "/reload");
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal("""{"ok":true,"messages":[]}""", body);

        _ops.ReloadAnswer = new OperationResult(false, ["natd.yaml:3:3: timeouts.bogus: unknown key 'bogus'"]);
        (status, body) = await Send(HttpMethod.Post, "/reload");
        Assert.Equal(HttpStatusCode.UnprocessableEntity, status);
        Assert.Equal("""{"ok":false,"messages":["natd.yaml:3:3: timeouts.bogus: unknown key \u0027bogus\u0027"]}""", body);
    }

    [Fact]
    public async Task The_well_known_ports_udp_timers_are_shown_and_a_live_change_keeps_them()
    {
        _ops.Current = new Timeouts { UdpPorts = UdpPortTimeouts.Create([new(53, 30), new(123, 60)], out _)! };
        var (status, body) = await Send(HttpMethod.Get, "/timeouts");
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal("""{"tcp-established":7440,"tcp-transitory":240,"udp":300,"icmp":60,"udp/53":30,"udp/123":60}""", body);

        (status, body) = await Send(HttpMethod.Put, "/timeouts", """{"udp":600}""");
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal("""{"ok":true,"messages":[],"timeouts":{"tcp-established":7440,"tcp-transitory":240,"udp":600,"icmp":60,"udp/53":30,"udp/123":60}}""", body);
        Assert.Equal("{ 53: 30, 123: 60 }", _ops.Current.UdpPorts.ToString());

        // natctl prints them as further rows.
        Assert.Equal("udp     600 s\nudp/53   30 s\n", Cli.TimeoutsTable(new() { ["udp"] = 600, ["udp/53"] = 30 }));
    }

    [Fact]
    public async Task Timeouts_are_read_and_changed_partially()
    {
        var (status, body) = await Send(HttpMethod.Get, "/timeouts");
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal("""{"tcp-established":7440,"tcp-transitory":240,"udp":300,"icmp":60}""", body);

        (status, body) = await Send(HttpMethod.Put, "/timeouts", """{"udp":600}""");
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal("""{"ok":true,"messages":[],"timeouts":{"tcp-established":7440,"tcp-transitory":240,"udp":600,"icmp":60}}""", body);
        Assert.Equal(new TimeoutsChange(Udp: 600), Assert.Single(_ops.Changes));

        (status, body) = await Send(HttpMethod.Put, "/timeouts", """{"udp":60,"icmp":30}""");
        Assert.Equal(HttpStatusCode.OK, status);
        using var doc = JsonDocument.Parse(body);
        var messages = doc.RootElement.GetProperty("messages").EnumerateArray().Select(m => m.GetString()!).ToList();
        Assert.Equal(2, messages.Count);
        Assert.StartsWith("udp: 60 s is below the recommendation: RFC 4787", messages[0], StringComparison.Ordinal);
        Assert.StartsWith("icmp: 30 s is below the recommendation: RFC 5508", messages[1], StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("""{"tcp":1}""", "unknown timeout 'tcp' (accepted: tcp-established, tcp-transitory, udp, icmp)")]
    [InlineData("""{"udp":0}""", "udp: '0' is not a whole number of seconds")]
    [InlineData("""{"udp":1.5}""", "udp: '1.5' is not a whole number")]
    [InlineData("""{"udp":"600"}""", "udp: '\"600\"' is not a whole number")]
    [InlineData("""{"udp":3000000000}""", "is not a whole number")]
    [InlineData("""{}""", "no timeout given")]
    public async Task Bad_timeout_bodies_answer_400(string json, string message)
    {
        var (status, body) = await Send(HttpMethod.Put, "/timeouts", json);
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains(message, body, StringComparison.Ordinal);
        Assert.Empty(_ops.Changes);
    }

    [Fact]
    public async Task A_refused_timeout_change_answers_422()
    {
        _ops.RefuseTimeouts = "a reload is already in progress";
        var (status, body) = await Send(HttpMethod.Put, "/timeouts", """{"udp":600}""");
        Assert.Equal(HttpStatusCode.UnprocessableEntity, status);
        Assert.Contains("a reload is already in progress", body, StringComparison.Ordinal);
        Assert.Contains("\"udp\":300", body, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Without_operations_the_write_endpoints_answer_501()
    {
        await using var server = await ControlServer.StartAsync("127.0.0.1:0", _query, null, CancellationToken.None);
        using var http = new HttpClient { BaseAddress = server.Address, Timeout = TimeSpan.FromSeconds(10) };
        using var response = await http.PostAsync("/flush", null);
        Assert.Equal(HttpStatusCode.NotImplemented, response.StatusCode);
    }

    [Fact]
    public async Task Natctl_sessions_passes_the_filters()
    {
        var (code, output, err) = await Natctl("sessions", "--protocol", "tcp", "--inside", "10.0.0.2", "-n");
        Assert.Equal(0, code);
        Assert.Equal("", err);
        var rows = output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(3, rows.Length); // title, header, the one tcp session of 10.0.0.2
        Assert.StartsWith("tcp ", rows[2], StringComparison.Ordinal);
        Assert.EndsWith("40312 (61001) -> 8080", rows[2], StringComparison.Ordinal);

        (code, output, _) = await Natctl("sessions", "--remote", "198.51.100.2:80", "--json");
        Assert.Equal(0, code);
        using var doc = JsonDocument.Parse(output);
        Assert.Equal(61002, Assert.Single(doc.RootElement.EnumerateArray()).GetProperty("externalPort").GetInt32());
    }

    [Fact]
    public async Task Natctl_flush_and_delete_print_counts()
    {
        var (code, output, _) = await Natctl("flush");
        Assert.Equal(0, code);
        Assert.Equal("4 sessions deleted\n", output);
        (code, output, _) = await Natctl("flush", "--external", "198.51.100.11");
        Assert.Equal(0, code);
        Assert.Equal("4 sessions deleted\n", output);
        Assert.Equal(Ipv4.Parse("198.51.100.11"), _ops.FlushedExternals[^1]);

        (code, output, _) = await Natctl("delete", "tcp", "10.0.0.2:40312", "198.51.100.2:8080");
        Assert.Equal(0, code);
        Assert.Equal("1 session deleted\n", output);
        Assert.Equal(new SessionSelector(6, Ipv4.Parse("10.0.0.2"), 40312, Ipv4.Parse("198.51.100.2"), 8080), _ops.Deletes[^1]);

        (code, output, _) = await Natctl("delete", "udp", "10.0.0.2:50000", "198.51.100.2");
        Assert.Equal(0, code);
        Assert.Equal(new SessionSelector(17, Ipv4.Parse("10.0.0.2"), 50000, Ipv4.Parse("198.51.100.2"), 0), _ops.Deletes[^1]);
    }

    [Fact]
    public async Task Natctl_reload_reports_rejection_with_exit_2()
    {
        var (code, output, err) = await Natctl("reload");
        Assert.True(code == 0, $"exit {code}: {err}");
        Assert.Equal("configuration reloaded\n", output);

        _ops.ReloadAnswer = new OperationResult(false, ["natd.yaml:3:3: timeouts.bogus: unknown key 'bogus'"]);
        (code, output, err) = await Natctl("reload");
        Assert.Equal(2, code);
        Assert.Equal("", output);
        Assert.Equal("natctl: reload rejected, natd keeps its running configuration:\n  natd.yaml:3:3: timeouts.bogus: unknown key 'bogus'\n", err);
    }

    [Fact]
    public async Task Natctl_timeouts_show_and_set_like_ipfwadm()
    {
        var (code, output, _) = await Natctl("timeouts");
        Assert.Equal(0, code);
        Assert.Equal("tcp-established  7440 s\ntcp-transitory    240 s\nudp               300 s\nicmp               60 s\n", output);

        // ipfwadm -M -s 1200 0 600: TCP, TCP after FIN, UDP; 0 leaves the FIN timeout alone.
        (code, output, var err) = await Natctl("timeouts", "set", "1200", "0", "600");
        Assert.Equal(0, code);
        Assert.Equal(new TimeoutsChange(1200, null, 600, null), _ops.Changes[^1]);
        Assert.Contains("tcp-established  1200 s", output, StringComparison.Ordinal);
        Assert.Contains("natctl: warning: tcp-established: 1200 s is below the recommendation", err, StringComparison.Ordinal);

        (code, _, _) = await Natctl("timeouts", "set", "--udp", "900", "--icmp", "30", "--tcpfin", "120");
        Assert.Equal(0, code);
        Assert.Equal(new TimeoutsChange(null, 120, 900, 30), _ops.Changes[^1]);
        Assert.Equal(new Timeouts(1200, 120, 900, 30), _ops.Current);

        _ops.RefuseTimeouts = "a reload is already in progress";
        (code, output, err) = await Natctl("timeouts", "set", "--udp", "300");
        Assert.Equal(2, code);
        Assert.Equal("natctl: timeouts not changed:\n  a reload is already in progress\n", err);
    }

    private static NatSettings DeterministicSettings() => Natd.Tests.Support.EngineHarness.LabSettings() with
    {
        Pool = [Ipv4.Parse("198.51.100.16"), Ipv4.Parse("198.51.100.17")],
        Cgnat = new CgnatSettings
        {
            Allocation = PortAllocation.Deterministic,
            Deterministic = new DeterministicSettings([Ipv4Prefix.Parse("10.64.0.0/24")], 0), // 128 per address, 504 ports each
        },
    };

    [Fact]
    public async Task Lookup_answers_from_the_running_configurations_map_both_ways()
    {
        _ops.Settings = DeterministicSettings();
        var inside = await Natctl("lookup", "--inside", "10.64.0.130");
        Assert.Equal((0, "10.64.0.130 198.51.100.17:2032-2535\n", ""), inside);
        var external = await Natctl("lookup", "--external", "198.51.100.17:2535");
        Assert.Equal((0, "10.64.0.130 198.51.100.17:2032-2535\n", ""), external);
        var json = await Natctl("lookup", "--external", "198.51.100.16:1024", "--json");
        Assert.Equal(0, json.Code);
        using var doc = JsonDocument.Parse(json.Out);
        Assert.Equal("10.64.0.0", doc.RootElement.GetProperty("inside").GetString());
        Assert.Equal(1527, doc.RootElement.GetProperty("port-high").GetInt32());

        var (status, body) = await Send(HttpMethod.Get, "/lookup?external=198.51.100.16:1024");
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal("{\"inside\":\"10.64.0.0\",\"external\":\"198.51.100.16\",\"port-low\":1024,\"port-high\":1527}", body);
    }

    [Fact]
    public async Task Lookup_not_found_exits_1_and_other_modes_or_bad_questions_are_refused()
    {
        _ops.Settings = DeterministicSettings();
        var missing = await Natctl("lookup", "--inside", "10.64.1.1");
        Assert.Equal(1, missing.Code);
        Assert.Equal("", missing.Out);
        Assert.Contains("10.64.1.1 is in no nat.deterministic.inside prefix", missing.Err, StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.NotFound, (await Send(HttpMethod.Get, "/lookup?external=203.0.113.1:1024")).Status);
        Assert.Equal(HttpStatusCode.BadRequest, (await Send(HttpMethod.Get, "/lookup?external=198.51.100.16")).Status);
        Assert.Equal(HttpStatusCode.BadRequest, (await Send(HttpMethod.Get, "/lookup?inside=10.64.0.1&external=198.51.100.16:1024")).Status);
        var usage = await Natctl("lookup");
        Assert.Equal(Cli.Usage, usage.Code);
        Assert.Contains("lookup needs one of --external ADDR:PORT or --inside ADDR", usage.Err, StringComparison.Ordinal);

        _ops.Settings = Natd.Tests.Support.EngineHarness.LabSettings(); // dynamic
        var dynamic = await Natctl("lookup", "--inside", "10.0.0.2");
        Assert.Equal(Cli.Unreachable, dynamic.Code);
        Assert.Contains("deterministic lookup needs nat.allocation: deterministic", dynamic.Err, StringComparison.Ordinal);
    }
}
