using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using Natd.Control.Lab;
using Xunit.Abstractions;
using static Natd.Tests.EndToEnd.LabScripts;

namespace Natd.Tests.EndToEnd;

/// <summary>
/// The carrier-grade NAT lab (issue 11): 200 inside hosts (200 addresses on the inside namespace,
/// each socket bound to one) behind natd with <c>nat.allocation: port-block</c> and
/// <c>limits.per-subscriber.sessions: 2000</c>, 2 workers and 1. Real traffic from every host (a
/// UDP exchange with an outside reflector), curl to an outside HTTP server from a quarter of them
/// and ping from a tenth. Checked: paired pooling (RFC 4787 REQ-2: every flow of a host leaves
/// from one external address, as the outside servers saw it), block logging (RFC 6888 section 5:
/// the JSON event log has one <c>port-block-allocate</c> per block, every port seen outside lies in
/// one of its host's blocks, and nothing is logged per session), and the session limit (RFC 6888
/// REQ-4): one host's 2001st UDP session is refused and counted while its first 2000 keep working
/// and the other hosts' new flows still get through.
/// </summary>
[Collection(EndToEndCollection.Name)]
[Trait("Category", "EndToEnd")]
public sealed class CgnLabTests(ITestOutputHelper output)
{
    public static TheoryData<string> NatdRows => GatewayKinds.Rows(["natd", "natd-w1"]);

    private const int Hosts = 200, SessionLimit = 2000, BlockSize = 512;

    /// <summary>10.0.0.10 to 10.0.0.209; the first is the host that runs into the session limit.</summary>
    private static readonly string[] HostAddresses = [.. Enumerable.Range(10, Hosts).Select(i => "10.0.0." + i.ToString(CultureInfo.InvariantCulture))];

    private static string Heavy => HostAddresses[0];

    /// <summary>An outside HTTP server (python's http.server) whose answer is the client's address:port.</summary>
    private const string HttpServer = """
        import http.server
        class Who(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                body = ("%s:%d\n" % self.client_address).encode()
                self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)
            def log_message(self, *args):
                pass
        srv = http.server.ThreadingHTTPServer(("198.51.100.2", 8000), Who); print("listening", flush=True); srv.serve_forever()
        """;

    /// <summary>
    /// The inside side. "hosts A,B,...": two UDP flows from each listed host, curl from every 4th, ping
    /// from every 10th; "again A,...": one new UDP flow each and curl from every 4th. Prints
    /// "udp HOST EXT:PORT", "http HOST EXT:PORT", "ping HOST ok|fail", "udp HOST timeout".
    /// </summary>
    private const string HostTraffic = """
        import socket, subprocess, sys
        mode, hosts = sys.argv[1], sys.argv[2].split(",")
        def udp(h):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind((h, 0)); s.settimeout(1)
            for attempt in range(4):
                s.sendto(b"who", ("198.51.100.2", 7400))
                try:
                    print("udp %s %s" % (h, s.recvfrom(2048)[0].decode()), flush=True); return
                except socket.timeout:
                    pass
            print("udp %s timeout" % h, flush=True)
        for i, h in enumerate(hosts):
            for f in range(2 if mode == "hosts" else 1):
                udp(h)
            if i % 4 == 0:
                r = subprocess.run(["curl", "-sS", "--max-time", "5", "--retry", "2", "--interface", h, "http://198.51.100.2:8000/"], capture_output=True, text=True)
                print("http %s %s" % (h, r.stdout.strip() if r.returncode == 0 else "fail " + r.stderr.strip()), flush=True)
            if mode == "hosts" and i % 10 == 0:
                r = subprocess.run(["ping", "-n", "-c", "1", "-W", "2", "-I", h, "198.51.100.2"], capture_output=True, text=True)
                if r.returncode != 0:
                    r = subprocess.run(["ping", "-n", "-c", "1", "-W", "2", "-I", h, "198.51.100.2"], capture_output=True, text=True)
                print("ping %s %s" % (h, "ok" if r.returncode == 0 else "fail"), flush=True)
        """;

    /// <summary>
    /// One host opens LIMIT + 1 UDP sessions (that many sockets, so distinct source ports) to the
    /// reflector: each of the first LIMIT is answered ("udp HOST EXT:PORT"), the last is not
    /// ("over answered|refused"); then every 50th of the first LIMIT sends again ("again I EXT:PORT").
    /// </summary>
    private const string Limit = """
        import resource, socket, sys
        h, limit = sys.argv[1], int(sys.argv[2])
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit + 256, limit + 256))
        socks = []
        def exchange(s, timeout, attempts):
            s.settimeout(timeout)
            for attempt in range(attempts):
                s.sendto(b"who", ("198.51.100.2", 7400))
                try:
                    return s.recvfrom(2048)[0].decode()
                except socket.timeout:
                    pass
            return None
        for i in range(limit + 1):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind((h, 0)); socks.append(s)
        for i in range(limit):
            print("udp %s %s" % (h, exchange(socks[i], 1, 4) or "timeout"), flush=True)
        print("over %s" % ("answered " + a if (a := exchange(socks[limit], 1.5, 2)) else "refused"), flush=True)
        for i in range(0, limit, 50):
            print("again %d %s" % (i, exchange(socks[i], 1, 4) or "timeout"), flush=True)
        """;

    [RootTheory]
    [MemberData(nameof(NatdRows))]
    public void Two_hundred_hosts_keep_pairing_log_each_block_once_and_one_host_meets_its_session_limit(string kind)
    {
        int workers = kind == "natd" ? 2 : 1;
        WithEventLog("natd-cgn-", events => Run(workers, events));
    }

    private void Run(int workers, string events)
    {
        var natd = new NatdGateway
        {
            ExtraConfig = $"dataplane: {{ workers: {workers} }}\n"
                + $"limits: {{ per-subscriber: {{ sessions: {SessionLimit} }} }}\n"
                + $"log: {{ events: {{ file: {{ path: {events} }} }} }}\n",
            // A range of four addresses: 126 blocks of 512 each, enough for 200 subscribers and the heavy one's four.
            Pool = "198.51.100.10-198.51.100.13",
            NatConfig = $", allocation: port-block, port-block: {{ size: {BlockSize}, per-subscriber: 8 }}",
        };
        using var scenario = Scenario.Start(natd, output);
        var lab = scenario.Lab;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        foreach (var h in HostAddresses)
        {
            lab.AddInsideHostAddress(h + "/24");
        }
        using var reflector = StartUdpReflector(lab, 7400);
        using var http = lab.StartIn(lab.OutsideNs, "python3", "-u", Script(lab, "cgn_http.py", HttpServer));
        Assert.NotNull(http.WaitForLine(l => l == "listening", TimeSpan.FromSeconds(10)));
        string hostsScript = Script(lab, "cgn_hosts.py", HostTraffic);
        output.WriteLine($"setup {clock.Elapsed.TotalSeconds:0.0} s");

        // Every host but the heavy one: UDP from each, curl from a quarter, ping from a tenth.
        var others = HostAddresses[1..];
        var a = lab.TryRunIn(lab.InsideNs, TimeSpan.FromSeconds(90), "python3", "-u", hostsScript, "hosts", string.Join(",", others));
        output.WriteLine($"hosts {clock.Elapsed.TotalSeconds:0.0} s");
        var flows = Flows(a.StdOut);
        Assert.True(!a.StdOut.Contains("timeout", StringComparison.Ordinal) && !a.StdOut.Contains("fail", StringComparison.Ordinal), a.Combined);
        Assert.Equal(others.Length * 2, flows.Count(f => f.Kind == "udp"));
        Assert.Equal((others.Length + 3) / 4, flows.Count(f => f.Kind == "http"));
        Assert.Equal((others.Length + 9) / 10, Regex.Matches(a.StdOut, @"^ping \S+ ok$", RegexOptions.Multiline).Count);

        // The heavy host: 2000 sessions answered, the 2001st refused, the first 2000 still answered.
        var l = lab.TryRunIn(lab.InsideNs, TimeSpan.FromSeconds(60), "python3", "-u", Script(lab, "cgn_limit.py", Limit), Heavy, SessionLimit.ToString(CultureInfo.InvariantCulture));
        output.WriteLine($"limit {clock.Elapsed.TotalSeconds:0.0} s");
        var heavy = Flows(l.StdOut);
        Assert.True(SessionLimit == heavy.Count, $"{heavy.Count} of {SessionLimit} sessions answered\n{Tail(l.Combined)}");
        Assert.Equal(SessionLimit, heavy.Select(f => f.Port).Distinct().Count());
        Assert.Contains("over refused", l.StdOut, StringComparison.Ordinal);
        var again = Regex.Matches(l.StdOut, @"^again (\d+) (\S+)$", RegexOptions.Multiline);
        Assert.Equal(SessionLimit / 50, again.Count);
        foreach (Match m in again)
        {
            // The same session answers again: the same external endpoint as its first exchange.
            var first = heavy[int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture)];
            Assert.Equal($"{first.Ext}:{first.Port}", m.Groups[2].Value);
        }
        Assert.True(Drops(lab, "subscriber-session-limit") >= 1, "the 2001st session is counted as subscriber-session-limit");

        // Other hosts are unaffected: new flows work, from the address they had.
        var sample = others.Where((_, i) => i % 10 == 0).ToArray();
        var c = lab.TryRunIn(lab.InsideNs, TimeSpan.FromSeconds(60), "python3", "-u", hostsScript, "again", string.Join(",", sample));
        var later = Flows(c.StdOut);
        Assert.True(!c.StdOut.Contains("timeout", StringComparison.Ordinal) && !c.StdOut.Contains("fail", StringComparison.Ordinal), c.Combined);
        Assert.Equal(sample.Length + (sample.Length + 3) / 4, later.Count);
        output.WriteLine($"again {clock.Elapsed.TotalSeconds:0.0} s");

        // Pairing: every flow of a host (UDP, TCP, before and after) left from one external address.
        var all = flows.Concat(heavy).Concat(later).ToList();
        foreach (var g in all.GroupBy(f => f.Host))
        {
            Assert.True(g.Select(f => f.Ext).Distinct().Count() == 1, $"{g.Key} left from {string.Join(", ", g.Select(f => f.Ext).Distinct())}");
        }
        Assert.Equal(Hosts, all.Select(f => f.Host).Distinct().Count());
        Assert.True(all.Select(f => f.Ext).Distinct().Count() > 1, "subscribers are spread over the pool");

        // Blocks logged once: stop natd so the event log is drained and flushed, then read it.
        natd.Process!.Stop(TimeSpan.FromSeconds(10));
        var records = File.ReadAllLines(events).Select(line => JsonDocument.Parse(line).RootElement).ToList();
        Assert.DoesNotContain(records, r => r.GetProperty("event").GetString()!.StartsWith("session-", StringComparison.Ordinal));
        var blocks = records.Where(r => r.GetProperty("event").GetString() == "port-block-allocate")
            .Select(r => (Host: r.GetProperty("inside").GetString()!, Ext: r.GetProperty("external").GetString()!,
                Low: r.GetProperty("port-low").GetInt32(), High: r.GetProperty("port-high").GetInt32(),
                Step: r.TryGetProperty("port-step", out var s) ? s.GetInt32() : 1))
            .ToList();
        output.WriteLine($"{records.Count} events, {blocks.Count} port-block-allocate");
        // The refusal is logged once (at most one limit event per subscriber per 10 s), naming the host and the limit.
        var limit = Assert.Single(records, r => r.GetProperty("event").GetString() == "subscriber-limit");
        Assert.Equal((Heavy, "sessions"), (limit.GetProperty("inside").GetString(), limit.GetProperty("limit").GetString()));
        Assert.Equal(blocks.Count + 1, records.Count); // nothing else: no session records, no block released yet
        Assert.Equal(blocks.Count, blocks.Select(b => (b.Ext, b.Low)).Distinct().Count()); // each block once
        Assert.All(blocks, b => Assert.Equal(workers, b.Step));
        Assert.All(blocks, b => Assert.Equal(BlockSize, (b.High - b.Low) / b.Step + 1));
        foreach (var f in all)
        {
            Assert.True(blocks.Any(b => b.Host == f.Host && b.Ext == f.Ext && f.Port >= b.Low && f.Port <= b.High && (f.Port - b.Low) % b.Step == 0),
                $"{f.Kind} {f.Host} {f.Ext}:{f.Port} is in none of its logged blocks");
        }
        // A block is only taken when the ones before are full: the heavy host's 2000 ports need four.
        Assert.Equal((SessionLimit + BlockSize - 1) / BlockSize, blocks.Count(b => b.Host == Heavy));
        Assert.All(blocks.Where(b => b.Host != Heavy).GroupBy(b => b.Host), g => Assert.Single(g));
        output.WriteLine($"done {clock.Elapsed.TotalSeconds:0.0} s");
        scenario.Pass();
    }

    /// <summary>"udp|http HOST EXT:PORT" lines, in order.</summary>
    private static List<(string Kind, string Host, string Ext, int Port)> Flows(string stdout) =>
        [.. Regex.Matches(stdout, @"^(udp|http) (10\.0\.0\.\d+) (198\.51\.100\.\d+):(\d+)$", RegexOptions.Multiline)
            .Select(m => (m.Groups[1].Value, m.Groups[2].Value, m.Groups[3].Value, int.Parse(m.Groups[4].Value, CultureInfo.InvariantCulture)))];

    /// <summary>natd_drops_total for <paramref name="reason"/> from /metrics; -1 when absent.</summary>
    private long Drops(LabTopology lab, string reason)
    {
        var metrics = lab.RunIn(lab.GatewayNs, "curl", "-s", "http://127.0.0.1:9180/metrics").StdOut;
        var m = Regex.Match(metrics, $"^natd_drops_total\\{{reason=\"{reason}\"\\}} (\\d+)$", RegexOptions.Multiline | RegexOptions.CultureInvariant);
        output.WriteLine(m.Success ? m.Value : $"no natd_drops_total for {reason}");
        return m.Success ? long.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture) : -1;
    }

    private static string Tail(string text) => text.Length <= 4000 ? text : "..." + text[^4000..];
}
