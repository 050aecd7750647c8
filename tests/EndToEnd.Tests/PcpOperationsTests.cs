using System.Text.Json;
using System.Text.RegularExpressions;
using Natd.Control.Lab;
using Xunit.Abstractions;
using static Natd.Tests.EndToEnd.LabScripts;

namespace Natd.Tests.EndToEnd;

/// <summary>
/// The operator's side of natd's PCP server, with 2 workers and 1: `natctl mappings` lists what
/// the real clients made (pcpnatpmpc's TCP mapping to a web server on the inside host, natpmpc's
/// UDP mapping), the JSON event log records the mappings, a restart with --state keeps the TCP
/// mapping reachable from outside without a refresh, and `natctl mappings delete` makes its port
/// unreachable; with port blocks, a restart keeps a mapping whose host had no session, and its
/// block.
/// </summary>
[Collection(EndToEndCollection.Name)]
[Trait("Category", "EndToEnd")]
public sealed partial class PcpOperationsTests(ITestOutputHelper output)
{
    public static TheoryData<string> NatdRows => GatewayKinds.Rows(["natd", "natd-w1"]);

    private const string WebServer = """
        import socket
        s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("10.0.0.2", 8080)); s.listen(16)
        print("serving", flush=True)
        while True:
            c, peer = s.accept(); c.recv(4096)
            c.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 12\r\n\r\ninside host\n"); c.close()
            print("served %s" % peer[0], flush=True)
        """;

    // pcpnatpmpc's result table: server, protocol, internal address and port, peer and port, external address and port, result code, state.
    [GeneratedRegex(@"^\S+\s+(TCP|UDP)\s+\S+\s+(\d+)\s+\S+\s+(\d+)\s+(\S+)\s+(\d+)\s+(\d+)\s+(\S+)", RegexOptions.Multiline)]
    private static partial Regex PcpRow();

    [RootTheory]
    [MemberData(nameof(NatdRows))]
    public void Natctl_lists_deletes_and_a_restart_keeps_pcp_mappings(string kind)
    {
        string pcpnatpmpc = PcpClients.Pcpnatpmpc;
        int workers = kind == "natd" ? 2 : 1;
        string events = Path.Combine(Directory.CreateTempSubdirectory("natd-pcp-events-").FullName, "events.jsonl");
        var natd = new NatdGateway
        {
            WithState = true,
            ExtraConfig = $"dataplane: {{ workers: {workers} }}\npcp: {{ enabled: true }}\nlog: {{ events: {{ file: {{ path: {events} }} }} }}\n",
        };
        using var scenario = Scenario.Start(natd, output);
        var lab = scenario.Lab;
        string gw = lab.GatewayInside.ToString(), ext = lab.GatewayOutside.ToString();

        using var http = lab.StartIn(lab.InsideNs, "python3", "-u", Script(lab, "pcp_web.py", WebServer));
        Assert.NotNull(http.WaitForLine(l => l == "serving", TimeSpan.FromSeconds(10)));
        var map = lab.TryRunIn(lab.InsideNs, TimeSpan.FromSeconds(30), pcpnatpmpc, "-s", gw, "-T", "3", "-i", "10.0.0.2:8080", "-t", "-l", "600", "-e", $"{ext}:18080");
        output.WriteLine($"$ pcpnatpmpc -s {gw} -T 3 -i 10.0.0.2:8080 -t -l 600 -e {ext}:18080\n{map.Combined}");
        var row = PcpRow().Match(map.StdOut);
        Assert.True(row.Success && row.Groups[6].Value == "0", "pcpnatpmpc did not map the port");
        int port = int.Parse(row.Groups[5].Value);
        var natpmp = lab.TryRunIn(lab.InsideNs, TimeSpan.FromSeconds(20), "natpmpc", "-g", gw, "-a", "5000", "5000", "udp", "3600");
        output.WriteLine($"$ natpmpc -g {gw} -a 5000 5000 udp 3600\n{natpmp.Combined}");
        var udp = Regex.Match(natpmp.StdOut, @"Mapped public port (\d+) protocol UDP to local port 5000");
        Assert.True(udp.Success, "natpmpc printed no mapping");

        // natctl mappings: one line each, the lifetime left, the client's nonce, how it was made.
        var list = Natctl(lab, "mappings");
        output.WriteLine("$ natctl mappings\n" + list.Combined);
        Assert.Equal(0, list.ExitCode);
        Assert.Matches(@"^protocol\s+internal\s+external\s+lifetime\s+filters\s+nonce\s+via\n", list.StdOut);
        Assert.Matches($@"(?m)^tcp\s+10\.0\.0\.2:8080\s+{Regex.Escape(ext)}:{port}\s+(5\d\d|600)s\s+-\s+[0-9a-f]{{24}}\s+pcp$", list.StdOut);
        Assert.Matches($@"(?m)^udp\s+10\.0\.0\.2:5000\s+{Regex.Escape(ext)}:{udp.Groups[1].Value}\s+\d+s\s+-\s+0{{24}}\s+nat-pmp$", list.StdOut);
        var json = Natctl(lab, "mappings", "--json");
        using (var doc = JsonDocument.Parse(json.StdOut))
        {
            Assert.Equal(2, doc.RootElement.GetProperty("total").GetInt64());
        }

        // A restart with --state: the mapping is restored and reachable without a refresh.
        Assert.Equal("200", Curl(lab, ext, port, 5).StdOut.Trim());
        natd.Restart();
        Assert.Contains(natd.Process!.StdOutLines, l => l.StartsWith("natd: restored 2 PCP mappings", StringComparison.Ordinal));
        var curl = Curl(lab, ext, port, 5);
        output.WriteLine($"$ curl http://{ext}:{port}/ (after the restart) -> {curl.Combined}");
        Assert.Equal("200", curl.StdOut.Trim());
        var restored = Natctl(lab, "mappings");
        output.WriteLine("$ natctl mappings (after the restart)\n" + restored.Combined);
        Assert.Matches($@"(?m)^tcp\s+10\.0\.0\.2:8080\s+{Regex.Escape(ext)}:{port}\s", restored.StdOut);

        // The operator's delete, by the external endpoint: new connections no longer get in.
        var delete = Natctl(lab, "mappings", "delete", "--protocol", "tcp", "--external", $"{ext}:{port}");
        output.WriteLine($"$ natctl mappings delete --protocol tcp --external {ext}:{port}\n{delete.Combined}");
        Assert.Equal((0, "1 mapping deleted"), (delete.ExitCode, delete.StdOut.Trim()));
        var after = Curl(lab, ext, port, 3);
        output.WriteLine($"$ curl http://{ext}:{port}/ (deleted) -> exit {after.ExitCode} {after.Combined}");
        Assert.NotEqual("200", after.StdOut.Trim());
        var left = Natctl(lab, "mappings");
        output.WriteLine("$ natctl mappings (after the delete)\n" + left.Combined);
        Assert.DoesNotMatch(@"(?m)^tcp\s", left.StdOut);
        Assert.Matches(@"(?m)^udp\s+10\.0\.0\.2:5000\s", left.StdOut);

        // The event log: the creates (first run) and the operator's delete (second run), once the logger has drained.
        string[] lines = [];
        for (var until = DateTime.UtcNow.AddSeconds(10); DateTime.UtcNow < until; Thread.Sleep(200))
        {
            lines = File.Exists(events) ? ReadShared(events) : [];
            if (lines.Any(l => l.Contains("\"cause\":\"operator\"", StringComparison.Ordinal)))
            {
                break;
            }
        }
        foreach (var l in lines.Where(l => l.Contains("pcp-mapping", StringComparison.Ordinal)))
        {
            output.WriteLine(l);
        }
        Assert.Contains(lines, l => l.Contains("\"event\":\"pcp-mapping-create\",\"protocol\":\"tcp\",\"inside\":\"10.0.0.2:8080\"", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.Contains("\"event\":\"pcp-mapping-create\",\"protocol\":\"udp\",\"inside\":\"10.0.0.2:5000\"", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.Contains("\"event\":\"pcp-mapping-delete\",\"protocol\":\"tcp\"", StringComparison.Ordinal)
            && l.Contains("\"cause\":\"operator\"", StringComparison.Ordinal));
        scenario.Pass();
    }

    /// <summary>
    /// Port blocks (<c>nat.allocation: port-block</c>): a MAP whose host has no session when natd
    /// stops holds the subscriber's block alone; the restart with --state brings the mapping back
    /// with its external endpoint and the block with it (the holding the first run logged: no second
    /// <c>port-block-allocate</c>), reachable from outside without a refresh.
    /// </summary>
    [RootTheory]
    [MemberData(nameof(NatdRows))]
    public void A_restart_keeps_a_pcp_mapping_and_its_port_block_when_no_session_held_the_block(string kind)
    {
        string pcpnatpmpc = PcpClients.Pcpnatpmpc;
        int workers = kind == "natd" ? 2 : 1;
        string events = Path.Combine(Directory.CreateTempSubdirectory("natd-pcp-blocks-").FullName, "events.jsonl");
        var natd = new NatdGateway
        {
            WithState = true,
            NatConfig = ", allocation: port-block, port-block: { size: 256, per-subscriber: 1 }",
            ExtraConfig = $"dataplane: {{ workers: {workers} }}\npcp: {{ enabled: true }}\nlog: {{ events: {{ file: {{ path: {events} }} }} }}\n",
        };
        using var scenario = Scenario.Start(natd, output);
        var lab = scenario.Lab;
        string gw = lab.GatewayInside.ToString(), ext = lab.GatewayOutside.ToString();

        using var http = lab.StartIn(lab.InsideNs, "python3", "-u", Script(lab, "pcp_web.py", WebServer));
        Assert.NotNull(http.WaitForLine(l => l == "serving", TimeSpan.FromSeconds(10)));
        var map = lab.TryRunIn(lab.InsideNs, TimeSpan.FromSeconds(30), pcpnatpmpc, "-s", gw, "-T", "3", "-i", "10.0.0.2:8080", "-t", "-l", "600");
        output.WriteLine($"$ pcpnatpmpc -s {gw} -T 3 -i 10.0.0.2:8080 -t -l 600\n{map.Combined}");
        var row = PcpRow().Match(map.StdOut);
        Assert.True(row.Success && row.Groups[6].Value == "0", "pcpnatpmpc did not map the port");
        int port = int.Parse(row.Groups[5].Value);

        // The mapping's port lies in the subscriber's one block, and no session holds any port of it.
        var block = Block(lab);
        Assert.InRange(port, block.Low, block.High);
        Assert.Equal(0, (port - block.Low) % block.Step);
        var sessions = Natctl(lab, "sessions", "--inside", "10.0.0.2", "--json");
        output.WriteLine("$ natctl sessions --inside 10.0.0.2 --json\n" + sessions.Combined);
        using (var doc = JsonDocument.Parse(sessions.StdOut))
        {
            var root = doc.RootElement;
            Assert.Equal(0, root.ValueKind == JsonValueKind.Array ? root.GetArrayLength() : root.GetProperty("sessions").GetArrayLength());
        }
        Assert.Single(WaitForLines(events, l => IsAllocate(l, ext, block), 1));

        natd.Restart();
        Assert.Contains(natd.Process!.StdOutLines, l => l.StartsWith("natd: restored 1 PCP mappings", StringComparison.Ordinal));
        var restored = Natctl(lab, "mappings");
        output.WriteLine("$ natctl mappings (after the restart)\n" + restored.Combined);
        Assert.Matches($@"(?m)^tcp\s+10\.0\.0\.2:8080\s+{Regex.Escape(ext)}:{port}\s", restored.StdOut);
        Assert.Equal(block, Block(lab)); // the same block, for the same subscriber
        var curl = Curl(lab, ext, port, 5);
        output.WriteLine($"$ curl http://{ext}:{port}/ (after the restart) -> {curl.Combined}");
        Assert.Equal("200", curl.StdOut.Trim());

        // The block was logged once, when the first run took it: the restart keeps that holding and
        // writes no second allocate record, nor does the curl's session in the block.
        Thread.Sleep(1500); // the logger writes once a second
        string[] allocates = [.. ReadShared(events).Where(l => l.Contains("\"event\":\"port-block-allocate\"", StringComparison.Ordinal))];
        foreach (var l in allocates)
        {
            output.WriteLine(l);
        }
        Assert.True(IsAllocate(Assert.Single(allocates), ext, block), allocates[0]);
        scenario.Pass();
    }

    private static (string Subscriber, int Low, int High, int Step) Block(LabTopology lab)
    {
        var blocks = Natctl(lab, "blocks", "--json");
        Assert.Equal(0, blocks.ExitCode);
        using var doc = JsonDocument.Parse(blocks.StdOut);
        var b = Assert.Single(doc.RootElement.GetProperty("blocks").EnumerateArray());
        int step = b.TryGetProperty("port-step", out var st) && st.ValueKind == JsonValueKind.Number ? Math.Max(1, st.GetInt32()) : 1;
        return (b.GetProperty("subscriber").GetString()!, b.GetProperty("port-low").GetInt32(), b.GetProperty("port-high").GetInt32(), step);
    }

    private static bool IsAllocate(string line, string ext, (string Subscriber, int Low, int High, int Step) block)
        => line.Contains("\"event\":\"port-block-allocate\"", StringComparison.Ordinal)
            && line.Contains($"\"inside\":\"{block.Subscriber}\",\"external\":\"{ext}\",\"port-low\":{block.Low},\"port-high\":{block.High}", StringComparison.Ordinal);

    /// <summary>The event log's lines that match, once at least <paramref name="count"/> do (or after 10 s).</summary>
    private static string[] WaitForLines(string path, Func<string, bool> match, int count)
    {
        string[] lines = [];
        for (var until = DateTime.UtcNow.AddSeconds(10); DateTime.UtcNow < until; Thread.Sleep(200))
        {
            lines = File.Exists(path) ? [.. ReadShared(path).Where(match)] : [];
            if (lines.Length >= count)
            {
                break;
            }
        }
        return lines;
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
