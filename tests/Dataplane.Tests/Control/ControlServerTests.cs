using System.Net;
using System.Text.Json;
using Natd.Control.Api;
using Natd.Dataplane.Nat;

namespace Natd.Tests.Control;

public sealed class ControlServerTests : IAsyncLifetime
{
    private readonly FakeDataplaneQuery _query = new();
    private ControlServer? _server;
    private HttpClient? _http;

    public async Task InitializeAsync()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        _server = await ControlServer.StartAsync("127.0.0.1:0", _query, null, cts.Token);
        _http = new HttpClient { BaseAddress = _server.Address, Timeout = TimeSpan.FromSeconds(10) };
    }

    public async Task DisposeAsync()
    {
        _http?.Dispose();
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }
    }

    [Fact]
    public void Binds_to_loopback_on_a_real_port()
    {
        Assert.Equal("127.0.0.1", _server!.Address.Host);
        Assert.NotEqual(0, _server.Address.Port);
    }

    [Fact]
    public async Task Sessions_are_a_camelCase_array_with_dotted_addresses()
    {
        using var response = await _http!.GetAsync("/sessions");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        using var doc = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal(JsonValueKind.Array, doc.RootElement.ValueKind);
        Assert.Equal(_query.Sessions.Count, doc.RootElement.GetArrayLength());
        var e = doc.RootElement[3];
        var s = _query.Sessions[3];
        string[] expectedNames =
        [
            "protocol", "insideAddress", "insidePort", "externalAddress", "externalPort", "remoteAddress", "remotePort",
            "expiresInSeconds", "state", "packetsIn2Out", "packetsOut2In", "bytesIn2Out", "bytesOut2In",
        ];
        Assert.Equal(expectedNames, e.EnumerateObject().Select(p => p.Name));
        Assert.Equal("tcp", e.GetProperty("protocol").GetString());
        Assert.Equal("10.0.0.2", e.GetProperty("insideAddress").GetString());
        Assert.Equal(40312, e.GetProperty("insidePort").GetInt32());
        Assert.Equal("198.51.100.1", e.GetProperty("externalAddress").GetString());
        Assert.Equal(61001, e.GetProperty("externalPort").GetInt32());
        Assert.Equal("198.51.100.2", e.GetProperty("remoteAddress").GetString());
        Assert.Equal(8080, e.GetProperty("remotePort").GetInt32());
        Assert.Equal(s.ExpiresInSeconds, e.GetProperty("expiresInSeconds").GetDouble());
        Assert.Equal("established", e.GetProperty("state").GetString());
        Assert.Equal(s.PacketsIn2Out, e.GetProperty("packetsIn2Out").GetInt64());
        Assert.Equal(s.PacketsOut2In, e.GetProperty("packetsOut2In").GetInt64());
        Assert.Equal(s.BytesIn2Out, e.GetProperty("bytesIn2Out").GetInt64());
        Assert.Equal(s.BytesOut2In, e.GetProperty("bytesOut2In").GetInt64());
    }

    [Fact]
    public async Task Stats_are_the_snapshot_as_json()
    {
        using var response = await _http!.GetAsync("/stats");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        using var doc = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        var r = doc.RootElement;
        var s = _query.Stats;
        Assert.Equal(s.PacketsIn2Out, r.GetProperty("packetsIn2Out").GetInt64());
        Assert.Equal(s.BytesOut2In, r.GetProperty("bytesOut2In").GetInt64());
        Assert.Equal(s.FramesTransmitted, r.GetProperty("framesTransmitted").GetInt64());
        Assert.Equal(s.SessionsDeleted, r.GetProperty("sessionsDeleted").GetInt64());
        Assert.Equal(s.Drops.Count, r.GetProperty("drops").EnumerateObject().Count());
        Assert.Equal(s.Drops["no-session"], r.GetProperty("drops").GetProperty("no-session").GetInt64());
        Assert.Equal(s.Sessions["tcp"], r.GetProperty("sessions").GetProperty("tcp").GetInt64());
        Assert.Equal(s.Gateway["arp-replies"], r.GetProperty("gateway").GetProperty("arp-replies").GetInt64());
    }

    [Fact]
    public async Task Metrics_are_prometheus_text()
    {
        using var response = await _http!.GetAsync("/metrics");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var type = response.Content.Headers.ContentType!;
        Assert.Equal("text/plain", type.MediaType);
        Assert.Contains(type.Parameters, p => p.Name == "version" && p.Value == "0.0.4");
        // The same natd lines as the snapshot renders to; order and the process metrics aside.
        Assert.Equal(MetricsText.NatdLines(MetricsText.Of(_query.Stats)), MetricsText.NatdLines(await response.Content.ReadAsStringAsync()));
    }

    [Fact]
    public async Task Metrics_speak_openmetrics_when_the_scraper_asks()
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "/metrics");
        request.Headers.Accept.ParseAdd("application/openmetrics-text; version=1.0.0");
        using var response = await _http!.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("application/openmetrics-text", response.Content.Headers.ContentType?.MediaType);
        string text = await response.Content.ReadAsStringAsync();
        Assert.EndsWith("# EOF\n", text, StringComparison.Ordinal);
        Assert.Contains("\n# TYPE natd_packets counter\n", text, StringComparison.Ordinal); // OpenMetrics names the family without _total
        Assert.Contains("\nnatd_packets_total{direction=\"in2out\"} 11", text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Metrics_carry_the_process_and_runtime_metrics()
    {
        string text = await _http!.GetStringAsync("/metrics");
        foreach (string family in (string[])["process_cpu_seconds_total", "process_start_time_seconds", "process_working_set_bytes", "process_num_threads",
            "dotnet_collection_count_total", "dotnet_total_memory_bytes", "system_runtime_dotnet_gc_pause_time", "system_runtime_dotnet_gc_heap_total_allocated"])
        {
            Assert.Contains($"\n# TYPE {family} ", text, StringComparison.Ordinal);
        }
        // The runtime's *.count instruments are left out: a gauge named *_count is not valid Prometheus.
        Assert.DoesNotContain("system_runtime_dotnet_thread_pool_thread_count", text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Two_servers_in_one_process_serve_their_own_counters()
    {
        var other = new FakeDataplaneQuery { Stats = FakeDataplaneQuery.SampleStats() with { PacketsIn2Out = 777 } };
        await using var second = await ControlServer.StartAsync("127.0.0.1:0", other, null, CancellationToken.None);
        using var http = new HttpClient { BaseAddress = second.Address, Timeout = TimeSpan.FromSeconds(10) };
        Assert.Contains("\nnatd_packets_total{direction=\"in2out\"} 777\n", await http.GetStringAsync("/metrics"), StringComparison.Ordinal);
        Assert.Contains("\nnatd_packets_total{direction=\"in2out\"} 11\n", await _http!.GetStringAsync("/metrics"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Concurrent_scrapes_run_one_at_a_time_and_each_serves_its_own_snapshot()
    {
        var query = new CountingQuery();
        await using var server = await ControlServer.StartAsync("127.0.0.1:0", query, null, CancellationToken.None);
        using var http = new HttpClient { BaseAddress = server.Address, Timeout = TimeSpan.FromSeconds(20) };
        var texts = await Task.WhenAll(Enumerable.Range(0, 6).Select(_ => http.GetStringAsync("/metrics")));
        Assert.Equal(1, query.MostInFlight);
        // Scrape k published snapshot k and nothing published in between: each value exactly once.
        var served = texts.Select(t => System.Text.RegularExpressions.Regex.Match(t, @"\nnatd_packets_total\{direction=""in2out""\} (\d+)\n").Groups[1].Value).Order().ToList();
        Assert.Equal(Enumerable.Range(1, 6).Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture)).Order(), served);
    }

    /// <summary>Snapshot k has k packets in2out; each query takes a while, and the most queries in flight at once is noted.</summary>
    private sealed class CountingQuery : IDataplaneQuery
    {
        private int _calls, _inFlight, _most;

        public int MostInFlight => Volatile.Read(ref _most);

        public async Task<StatsSnapshot> GetStatsAsync(CancellationToken cancellationToken = default)
        {
            int now = Interlocked.Increment(ref _inFlight);
            int most;
            while (now > (most = Volatile.Read(ref _most)) && Interlocked.CompareExchange(ref _most, now, most) != most)
            {
            }
            int call = Interlocked.Increment(ref _calls);
            await Task.Delay(30, cancellationToken);
            Interlocked.Decrement(ref _inFlight);
            return FakeDataplaneQuery.SampleStats() with { PacketsIn2Out = call };
        }

        public Task<IReadOnlyList<SessionInfo>> GetSessionsAsync(CancellationToken cancellationToken = default) => throw new NotSupportedException();
        public Task<IReadOnlyList<ExpectationInfo>> GetExpectationsAsync(CancellationToken cancellationToken = default) => throw new NotSupportedException();
        public Task<IReadOnlyList<SubscriberInfo>> GetSubscribersAsync(CancellationToken cancellationToken = default) => throw new NotSupportedException();
        public Task<IReadOnlyList<BlockInfo>> GetBlocksAsync(CancellationToken cancellationToken = default) => throw new NotSupportedException();
    }

    [Theory]
    [InlineData("/subscribers?limit=0", "limit '0' is not a whole number from 1 to 1000000")]
    [InlineData("/subscribers?inside=10.0.0", "inside '10.0.0' is not ADDRESS or ADDRESS/LEN")]
    [InlineData("/subscribers?protocol=tcp", "unknown parameter 'protocol' (accepted: inside, limit)")]
    [InlineData("/blocks?inside=10.0.0.2", "unknown parameter 'inside' (accepted: limit)")]
    public async Task Bad_subscriber_and_block_queries_are_400_with_the_reason(string path, string reason)
    {
        using var response = await _http!.GetAsync(path);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal(reason + "\n", await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Subscribers_are_sorted_by_address_and_bounded_by_the_limit()
    {
        using var response = await _http!.GetAsync("/subscribers?limit=1");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        using var doc = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal(2, doc.RootElement.GetProperty("total").GetInt64());
        var only = Assert.Single(doc.RootElement.GetProperty("subscribers").EnumerateArray());
        Assert.Equal("10.0.0.2", only.GetProperty("subscriber").GetString());
    }

    [Fact]
    public async Task Healthz_says_ok()
    {
        using var response = await _http!.GetAsync("/healthz");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("ok", await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Unknown_paths_are_404()
    {
        using var response = await _http!.GetAsync("/nothing-here");
        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
    }

    [Fact]
    public async Task A_failing_query_answers_503_with_the_reason()
    {
        _query.Fail = true;
        foreach (string path in (string[])["/sessions", "/stats", "/metrics"])
        {
            using var response = await _http!.GetAsync(path);
            Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
            Assert.Contains("poller 0 did not answer", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task Stop_closes_the_port()
    {
        await using var server = await ControlServer.StartAsync("127.0.0.1:0", _query, null, CancellationToken.None);
        using var http = new HttpClient { BaseAddress = server.Address, Timeout = TimeSpan.FromSeconds(10) };
        Assert.Equal("ok", await http.GetStringAsync("/healthz"));
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await server.StopAsync(cts.Token);
        using var fresh = new HttpClient { BaseAddress = server.Address, Timeout = TimeSpan.FromSeconds(10) };
        await Assert.ThrowsAsync<HttpRequestException>(() => fresh.GetStringAsync("/healthz"));
    }

    [Theory]
    [InlineData("127.0.0.1")]
    [InlineData("natd:9180")]
    [InlineData("")]
    public async Task Bad_listen_text_is_rejected(string listen)
    {
        await Assert.ThrowsAsync<ArgumentException>(() => ControlServer.StartAsync(listen, _query, null, CancellationToken.None));
    }

    [Fact]
    public async Task A_port_in_use_fails_to_start()
    {
        var taken = new Uri(_server!.Address.ToString());
        await Assert.ThrowsAsync<IOException>(() => ControlServer.StartAsync($"127.0.0.1:{taken.Port}", _query, null, CancellationToken.None));
    }
}
