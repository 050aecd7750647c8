using System.Text.Json;
using System.Text.RegularExpressions;
using Natd.Control.Lab;
using Xunit.Abstractions;
using static Natd.Tests.EndToEnd.LabScripts;

namespace Natd.Tests.EndToEnd;

/// <summary>
/// Taking a pool address out of service with the real daemon, 2 workers and 1: port blocks on two
/// addresses, several inside hosts each holding a live UDP flow; a reload adds the second address
/// to <c>nat.drain</c>. Every live flow keeps its external address and port, every host's next new
/// flow leaves from the serving address (a pairing-move record for each host that moved), and
/// natctl and /metrics name the draining address.
/// </summary>
[Collection(EndToEndCollection.Name)]
[Trait("Category", "EndToEnd")]
public sealed class PoolDrainTests(ITestOutputHelper output)
{
    public static TheoryData<string> NatdRows => GatewayKinds.Rows(["natd", "natd-w1"]);

    private const string Serving = "198.51.100.1", Draining = "198.51.100.11";
    private const int Hosts = 6;

    /// <summary>
    /// Each host opens a flow and prints where it appeared; once the go file exists, each sends on
    /// that flow again and on a new one; once the second go file exists, on the first flow again.
    /// </summary>
    private const string Clients = """
        import os, socket, sys, time
        hosts, go, go2 = sys.argv[1].split(","), sys.argv[2], sys.argv[3]
        def ask(s):
            for attempt in range(4):
                s.sendto(b"who", ("198.51.100.2", 7500))
                try:
                    return s.recvfrom(2048)[0].decode()
                except socket.timeout:
                    pass
            return "timeout"
        def sock(h):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind((h, 0)); s.settimeout(2); return s
        live = {h: sock(h) for h in hosts}
        for h in hosts:
            print("before %s %s" % (h, ask(live[h])), flush=True)
        print("ready", flush=True)
        while not os.path.exists(go):
            time.sleep(0.05)
        for h in hosts:
            print("live %s %s" % (h, ask(live[h])), flush=True)
            print("new %s %s" % (h, ask(sock(h))), flush=True)
        print("moved", flush=True)
        while not os.path.exists(go2):
            time.sleep(0.05)
        for h in hosts:
            print("after %s %s" % (h, ask(live[h])), flush=True)
        print("done", flush=True)
        """;

    [RootTheory]
    [MemberData(nameof(NatdRows))]
    public void A_draining_address_keeps_its_live_flows_and_gets_no_new_one(string kind)
    {
        int workers = kind == "natd" ? 2 : 1;
        WithEventLog("natd-drain-", events => Run(workers, events));
    }

    private void Run(int workers, string events)
    {
        const string nat = ", allocation: port-block, port-block: { size: 64, per-subscriber: 4 }";
        string extra = $"dataplane: {{ workers: {workers} }}\nlog: {{ events: {{ file: {{ path: {events} }} }} }}\n";
        var natd = new NatdGateway { ExtraConfig = extra, Pool = $"{Serving}, {Draining}", NatConfig = nat };
        using var scenario = Scenario.Start(natd, output);
        var lab = scenario.Lab;
        var hosts = Enumerable.Range(3, Hosts).Select(i => $"10.0.0.{i}").ToList();
        foreach (var h in hosts)
        {
            lab.AddInsideHostAddress(h + "/24");
        }
        using var reflector = StartUdpReflector(lab, 7500);
        string go = Path.Combine(Path.GetDirectoryName(events)!, "go"), go2 = go + "2";
        using var clients = lab.StartIn(lab.InsideNs, "python3", "-u", Script(lab, "drain_clients.py", Clients), string.Join(",", hosts), go, go2);
        Assert.NotNull(clients.WaitForLine(l => l == "ready", TimeSpan.FromSeconds(60)));
        var before = Seen(clients.StdOutLines, "before");
        output.WriteLine(string.Join('\n', before.Select(kv => $"before {kv.Key} {kv.Value}")));
        Assert.Equal(Hosts, before.Count);
        var moving = before.Where(kv => kv.Value.StartsWith(Draining + ":", StringComparison.Ordinal)).Select(kv => kv.Key).ToList();
        Assert.True(moving.Count > 0 && moving.Count < Hosts, "the hosts are spread over both addresses"); // least loaded

        File.WriteAllText(natd.ConfigPath!, NatdGateway.ConfigFor(lab, nat + $", drain: [{Draining}]", $"{Serving}, {Draining}") + extra);
        natd.Reload();
        Assert.NotNull(natd.Process!.WaitForLine(l => l.Contains("configuration reloaded", StringComparison.Ordinal), TimeSpan.FromSeconds(10)));
        File.WriteAllText(go, "");
        Assert.NotNull(clients.WaitForLine(l => l == "moved", TimeSpan.FromSeconds(60)));
        var live = Seen(clients.StdOutLines, "live");
        var fresh = Seen(clients.StdOutLines, "new");
        output.WriteLine(string.Join('\n', clients.StdOutLines));
        foreach (var h in hosts)
        {
            Assert.Equal(before[h], live[h]); // a live flow keeps its external address and port
            Assert.StartsWith(Serving + ":", fresh[h], StringComparison.Ordinal); // a new one never gets the draining address
        }

        // natctl: the subscribers that moved show the serving address; stats and /metrics name the draining one.
        var subs = Natctl(lab, "subscribers", "--json");
        Assert.True(subs.ExitCode == 0, subs.Combined);
        using (var doc = JsonDocument.Parse(subs.StdOut))
        {
            var rows = doc.RootElement.GetProperty("subscribers").EnumerateArray().ToDictionary(e => e.GetProperty("subscriber").GetString()!);
            Assert.All(hosts, h => Assert.Equal(Serving, rows[h].GetProperty("external").GetString()));
            Assert.All(moving, h => Assert.Equal(2, rows[h].GetProperty("blocks").GetArrayLength())); // the old block until its flow ends
        }
        var stats = Natctl(lab, "stats");
        output.WriteLine(stats.Combined);
        Assert.Matches($@"(?m)^ports {Regex.Escape(Draining)} udp\s+\d+/\d+ \(\d+\.\d%\) draining$", stats.StdOut);
        Assert.Matches($@"(?m)^ports {Regex.Escape(Serving)} udp\s+\d+/\d+ \(\d+\.\d%\)$", stats.StdOut);
        var metrics = Natctl(lab, "metrics");
        Assert.Matches($@"(?m)^natd_pool_address_draining\{{address=""{Regex.Escape(Draining)}""\}} 1$", metrics.StdOut);
        Assert.Matches($@"(?m)^natd_pool_address_draining\{{address=""{Regex.Escape(Serving)}""\}} 0$", metrics.StdOut);

        // One pairing-move record for each host that moved, naming the serving address (the log is flushed as it goes).
        var deadline = System.Diagnostics.Stopwatch.StartNew();
        List<(string Inside, string External)> moves;
        do
        {
            moves = File.Exists(events) ? Moves(File.ReadAllLines(events)) : [];
            if (moves.Count >= moving.Count)
            {
                break;
            }
            Thread.Sleep(200);
        }
        while (deadline.Elapsed < TimeSpan.FromSeconds(10));
        Assert.Equal(moving.Order(), moves.Select(m => m.Inside).Order());
        Assert.All(moves, m => Assert.Equal(Serving, m.External));

        // At the deadline, natctl flush --external ends what is left there: the moved hosts' first
        // flows, which start again on the serving address; the others' are untouched.
        var flush = Natctl(lab, "flush", "--external", Draining);
        output.WriteLine("$ natctl flush --external " + Draining + "\n" + flush.Combined);
        Assert.Equal(0, flush.ExitCode);
        Assert.Equal($"{moving.Count} session{(moving.Count == 1 ? "" : "s")} deleted", flush.StdOut.Trim());
        File.WriteAllText(go2, "");
        Assert.NotNull(clients.WaitForLine(l => l == "done", TimeSpan.FromSeconds(60)));
        var after = Seen(clients.StdOutLines, "after");
        foreach (var h in hosts)
        {
            if (moving.Contains(h))
            {
                Assert.StartsWith(Serving + ":", after[h], StringComparison.Ordinal);
            }
            else
            {
                Assert.Equal(before[h], after[h]);
            }
        }
        scenario.Pass();
    }

    private static Dictionary<string, string> Seen(IEnumerable<string> lines, string phase)
    {
        var seen = new Dictionary<string, string>();
        foreach (string line in lines)
        {
            var m = Regex.Match(line, $@"^{phase} (10\.0\.0\.\d+) (\S+)$");
            if (m.Success)
            {
                seen[m.Groups[1].Value] = m.Groups[2].Value;
            }
        }
        return seen;
    }

    private static List<(string Inside, string External)> Moves(string[] lines)
    {
        var moves = new List<(string, string)>();
        foreach (string line in lines)
        {
            using var doc = JsonDocument.Parse(line);
            var e = doc.RootElement;
            if (e.GetProperty("event").GetString() == "pairing-move")
            {
                moves.Add((e.GetProperty("inside").GetString()!, e.GetProperty("external").GetString()!));
            }
        }
        return moves;
    }
}
