using System.Text.RegularExpressions;
using Natd.Control.Lab;
using Xunit.Abstractions;
using static Natd.Tests.EndToEnd.LabScripts;

namespace Natd.Tests.EndToEnd;

/// <summary>
/// All-ports PCP mappings (<c>pcp.all-ports</c>, RFC 6887 section 11.1) with the real daemon and
/// Cisco's libpcp client, 2 workers and 1, deterministic allocation and port blocks: <c>pcpnatpmpc
/// -i 10.0.0.2:0 -n 0</c> maps every port of the host's subscriber; <c>natctl mappings</c> shows
/// the range (the subscriber's block, every n-th port with n workers); a
/// real web server and a UDP listener on ports of that range are reached from outside at the same
/// ports, a server on a port outside it is not; a restart with --state keeps it; a reload to
/// dynamic allocation with all-ports on is rejected (the mapping keeps working); a reload that
/// turns all-ports off removes it (logged as a delete with cause reload) and the same request is
/// then refused.
/// </summary>
[Collection(EndToEndCollection.Name)]
[Trait("Category", "EndToEnd")]
public sealed partial class PcpAllPortsTests(ITestOutputHelper output)
{
    /// <summary>Each natd kind (2 workers, 1) with each allocation mode that owns ports: "deterministic", "port-block".</summary>
    public static TheoryData<string, string> NatdRows
    {
        get
        {
            var rows = new TheoryData<string, string>();
            foreach (string kind in new[] { "natd", "natd-w1" })
            {
                rows.Add(kind, "deterministic");
                rows.Add(kind, "port-block");
            }
            return rows;
        }
    }

    private const string Deterministic = ", allocation: deterministic, deterministic: { inside: [10.0.0.0/24] }";

    // One 64-port block a subscriber: with 2 workers its ports are every other port of 128.
    private const string PortBlock = ", allocation: port-block, port-block: { size: 64, per-subscriber: 1 }";

    /// <summary>A web server on the inside host's port argv[1].</summary>
    private const string WebServer = """
        import socket, sys
        s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("10.0.0.2", int(sys.argv[1]))); s.listen(16)
        print("serving", flush=True)
        while True:
            c, peer = s.accept(); c.recv(4096)
            c.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 12\r\n\r\ninside host\n"); c.close()
            print("served %s" % peer[0], flush=True)
        """;

    /// <summary>A UDP listener on the inside host: prints each datagram with its sender.</summary>
    private const string Listener = """
        import socket, sys
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("10.0.0.2", int(sys.argv[1]))); print("listening", flush=True)
        while True:
            data, peer = s.recvfrom(2048); print("got %s from %s" % (data.decode(), peer[0]), flush=True)
        """;

    // pcpnatpmpc's result table: server, protocol (UNK for 0), internal address and port, peer and port, external address and port, result code, state.
    [GeneratedRegex(@"^\S+\s+(TCP|UDP|UNK)\s+\S+\s+(\d+)\s+\S+\s+(\d+)\s+(\S+)\s+(\d+)\s+(\d+)\s+(\S+)", RegexOptions.Multiline)]
    private static partial Regex PcpRow();

    [RootTheory]
    [MemberData(nameof(NatdRows))]
    public void Pcpnatpmpc_maps_all_ports_and_servers_on_the_subscribers_ports_are_reached(string kind, string allocation)
    {
        string nat = allocation == "port-block" ? PortBlock : Deterministic;
        string pcpnatpmpc = PcpClients.Pcpnatpmpc;
        int workers = kind == "natd" ? 2 : 1;
        string events = Path.Combine(Directory.CreateTempSubdirectory("natd-allports-events-").FullName, "events.jsonl");
        string Extra(bool allPorts) => $"dataplane: {{ workers: {workers} }}\npcp: {{ enabled: true, all-ports: {(allPorts ? "true" : "false")} }}\n"
            + $"log: {{ events: {{ file: {{ path: {events} }} }} }}\n";
        var natd = new NatdGateway { WithState = true, NatConfig = nat, ExtraConfig = Extra(true) };
        using var scenario = Scenario.Start(natd, output);
        var lab = scenario.Lab;
        string gw = lab.GatewayInside.ToString(), ext = lab.GatewayOutside.ToString();

        (int Result, Match Row) Pcp(params string[] args)
        {
            var r = lab.TryRunIn(lab.InsideNs, TimeSpan.FromSeconds(30), pcpnatpmpc, ["-s", gw, "-T", "3", .. args]);
            output.WriteLine($"$ pcpnatpmpc -s {gw} -T 3 {string.Join(' ', args)}\n{r.Combined}");
            var m = PcpRow().Match(r.StdOut);
            Assert.True(m.Success, "no result row in pcpnatpmpc's output");
            return (int.Parse(m.Groups[6].Value), m);
        }

        // All ports, all protocols: the paired address, port 0.
        var (result, row) = Pcp("-i", "10.0.0.2:0", "-n", "0", "-l", "600");
        Assert.Equal((0, "::ffff:" + ext, "0"), (result, row.Groups[4].Value, row.Groups[5].Value));

        // natctl mappings shows the subscriber's range (a block of n workers: LOW-HIGH/n, every n-th port).
        var list = Natctl(lab, "mappings");
        output.WriteLine("$ natctl mappings\n" + list.Combined);
        var line = Regex.Match(list.StdOut, $@"(?m)^all\s+10\.0\.0\.2:\*\s+{Regex.Escape(ext)}:(\d+)-(\d+)(?:/(\d+))?\s+(5\d\d|600)s\s+-\s+[0-9a-f]{{24}}\s+pcp$");
        Assert.True(line.Success, "natctl mappings shows no all-ports line");
        int low = int.Parse(line.Groups[1].Value), high = int.Parse(line.Groups[2].Value);
        int step = line.Groups[3].Success ? int.Parse(line.Groups[3].Value) : 1;
        Assert.Equal(allocation == "port-block" ? workers : 1, step);
        // The next port of the same worker past the range is another subscriber's (or nobody's).
        int tcpPort = low + 10 * step, udpPort = low + 11 * step, outsidePort = high + step <= 65535 ? high + step : low - step;

        using var web = lab.StartIn(lab.InsideNs, "python3", "-u", Script(lab, "allports_web.py", WebServer), tcpPort.ToString(System.Globalization.CultureInfo.InvariantCulture));
        Assert.NotNull(web.WaitForLine(l => l == "serving", TimeSpan.FromSeconds(10)));
        using var stranger = lab.StartIn(lab.InsideNs, "python3", "-u", Script(lab, "allports_web.py", WebServer), outsidePort.ToString(System.Globalization.CultureInfo.InvariantCulture));
        Assert.NotNull(stranger.WaitForLine(l => l == "serving", TimeSpan.FromSeconds(10)));
        using var udp = lab.StartIn(lab.InsideNs, "python3", "-u", Script(lab, "allports_udp.py", Listener), udpPort.ToString(System.Globalization.CultureInfo.InvariantCulture));
        Assert.NotNull(udp.WaitForLine(l => l == "listening", TimeSpan.FromSeconds(10)));

        var curl = Curl(lab, ext, tcpPort, 5);
        output.WriteLine($"$ curl http://{ext}:{tcpPort}/ -> {curl.Combined}");
        if (curl.StdOut.Trim() != "200")
        {
            output.WriteLine(Natctl(lab, "stats").Combined);
        }
        Assert.Equal("200", curl.StdOut.Trim());
        LabPrograms.SendUdp(lab, lab.OutsideNs, lab.OutsideHost, 5555, lab.GatewayOutside, udpPort, "all-ports");
        Assert.NotNull(udp.WaitForLine(l => l == "got all-ports from 198.51.100.2", TimeSpan.FromSeconds(5)));
        var outside = Curl(lab, ext, outsidePort, 3);
        output.WriteLine($"$ curl http://{ext}:{outsidePort}/ (the next subscriber's port) -> exit {outside.ExitCode} {outside.Combined}");
        Assert.NotEqual("200", outside.StdOut.Trim());
        Assert.DoesNotContain(stranger.StdOutLines, l => l.StartsWith("served", StringComparison.Ordinal));

        // A restart with --state keeps it.
        var stopped = natd.Process!;
        natd.Restart();
        ShowIfNotRestored(stopped, natd.Process!);
        Assert.Contains(natd.Process!.StdOutLines, l => l.StartsWith("natd: restored 1 PCP mappings", StringComparison.Ordinal));
        Assert.Equal("200", Curl(lab, ext, tcpPort, 5).StdOut.Trim());

        // Dynamic allocation with all-ports on: rejected with the key, the running configuration stays.
        File.WriteAllText(natd.ConfigPath!, NatdGateway.ConfigFor(lab) + Extra(true));
        natd.Reload();
        Assert.NotNull(natd.Process!.WaitForLine(l => l.Contains("reload rejected", StringComparison.Ordinal), TimeSpan.FromSeconds(10)));
        string why = string.Join('\n', natd.Process.StdErrLines.Concat(natd.Process.StdOutLines));
        output.WriteLine(why);
        Assert.Matches(@"natd\.yaml:\d+:\d+: pcp\.all-ports: true needs nat\.allocation port-block or deterministic", why);
        Assert.Equal("200", Curl(lab, ext, tcpPort, 5).StdOut.Trim());

        // All-ports turned off: the mapping goes (a delete with cause reload), the port closes, the request is refused.
        File.WriteAllText(natd.ConfigPath!, NatdGateway.ConfigFor(lab, nat) + Extra(false));
        natd.Reload();
        Assert.NotNull(natd.Process.WaitForLine(l => l.Contains("configuration reloaded", StringComparison.Ordinal), TimeSpan.FromSeconds(10)));
        var closed = Curl(lab, ext, tcpPort, 3);
        output.WriteLine($"$ curl http://{ext}:{tcpPort}/ (all-ports off) -> exit {closed.ExitCode} {closed.Combined}");
        Assert.NotEqual("200", closed.StdOut.Trim());
        Assert.Equal(9, Pcp("-i", "10.0.0.2:0", "-n", "0", "-l", "600").Result);  // UNSUPP_PROTOCOL, as before all-ports
        Assert.Equal(2, Pcp("-i", "10.0.0.2:0", "-t", "-l", "600").Result);       // NOT_AUTHORIZED
        string[] lines = [];
        for (var until = DateTime.UtcNow.AddSeconds(10); DateTime.UtcNow < until; Thread.Sleep(200))
        {
            lines = File.Exists(events) ? ReadShared(events) : [];
            if (lines.Any(l => l.Contains("\"cause\":\"reload\"", StringComparison.Ordinal)))
            {
                break;
            }
        }
        foreach (var l in lines.Where(l => l.Contains("pcp-mapping", StringComparison.Ordinal)))
        {
            output.WriteLine(l);
        }
        Assert.Contains(lines, l => l.Contains("\"event\":\"pcp-mapping-create\",\"protocol\":\"0\",\"inside\":\"10.0.0.2:0\"", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.Contains("\"event\":\"pcp-mapping-delete\",\"protocol\":\"0\",\"inside\":\"10.0.0.2:0\"", StringComparison.Ordinal)
            && l.Contains("\"cause\":\"reload\"", StringComparison.Ordinal));
        scenario.Pass();
    }

    /// <summary>The stopped run's output (its snapshot save) when the new run restored nothing: the scenario's dump shows the new run only.</summary>
    private void ShowIfNotRestored(LabProcess stopped, LabProcess started)
    {
        if (!started.StdOutLines.Any(l => l.StartsWith("natd: restored", StringComparison.Ordinal)))
        {
            foreach (var l in stopped.StdOutLines.Concat(stopped.StdErrLines))
            {
                output.WriteLine("stopped natd| " + l);
            }
        }
    }

    private static string[] ReadShared(string path)
    {
        using var f = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        using var r = new StreamReader(f);
        return r.ReadToEnd().Split('\n', StringSplitOptions.RemoveEmptyEntries);
    }

    private static ProcessResult Curl(LabTopology lab, string ext, int port, double seconds)
        => lab.TryRunIn(lab.OutsideNs, TimeSpan.FromSeconds(seconds + 5), "curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}",
            "--max-time", seconds.ToString(System.Globalization.CultureInfo.InvariantCulture), $"http://{ext}:{port}/");
}
