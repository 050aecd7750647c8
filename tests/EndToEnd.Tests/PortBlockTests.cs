using System.Text.RegularExpressions;
using Natd.Control.Lab;
using Xunit.Abstractions;
using static Natd.Tests.EndToEnd.LabScripts;

namespace Natd.Tests.EndToEnd;

/// <summary>
/// Port-block allocation with the real daemon, 2 workers and 1: several inside hosts, four pool
/// addresses; every flow of a host leaves from one external address (paired pooling, RFC 4787
/// REQ-2) and from ports of its block (every workers-th port inside a 64-port block).
/// </summary>
[Collection(EndToEndCollection.Name)]
[Trait("Category", "EndToEnd")]
public sealed class PortBlockTests(ITestOutputHelper output)
{
    public static TheoryData<string> NatdRows => GatewayKinds.Rows(["natd", "natd-w1"]);

    private const int Hosts = 6, Flows = 6, BlockSize = 64;

    /// <summary>Each inside host sends from several sockets and prints the external endpoint the reflector saw.</summary>
    private const string Clients = """
        import socket, sys
        hosts = sys.argv[1].split(",")
        for h in hosts:
            for f in range(int(sys.argv[2])):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind((h, 0)); s.settimeout(2)
                for attempt in range(4):
                    s.sendto(b"who", ("198.51.100.2", 7400))
                    try:
                        print("%s %s" % (h, s.recvfrom(2048)[0].decode()), flush=True); break
                    except socket.timeout:
                        pass
                else:
                    print("%s timeout" % h, flush=True)
        """;

    [RootTheory]
    [MemberData(nameof(NatdRows))]
    public void Port_blocks_keep_each_hosts_flows_on_one_address_and_in_its_block(string kind)
    {
        int workers = kind == "natd" ? 2 : 1;
        using var scenario = Scenario.Start(new NatdGateway
        {
            ExtraConfig = $"dataplane: {{ workers: {workers} }}\n",
            Pool = "198.51.100.1, 198.51.100.11, 198.51.100.12, 198.51.100.13",
            NatConfig = $", allocation: port-block, port-block: {{ size: {BlockSize}, per-subscriber: 2 }}",
        }, output);
        var lab = scenario.Lab;
        var hosts = Enumerable.Range(3, Hosts).Select(i => $"10.0.0.{i}").ToList();
        foreach (var h in hosts)
        {
            lab.AddInsideHostAddress(h + "/24");
        }
        using var reflector = StartUdpReflector(lab, 7400);
        var r = lab.TryRunIn(lab.InsideNs, TimeSpan.FromSeconds(120), "python3", "-u", Script(lab, "pba_clients.py", Clients), string.Join(",", hosts), Flows.ToString());
        output.WriteLine(r.Combined);
        var seen = Regex.Matches(r.StdOut, @"^(10\.0\.0\.\d+) (198\.51\.100\.\d+):(\d+)$", RegexOptions.Multiline)
            .Select(m => (Host: m.Groups[1].Value, Ext: m.Groups[2].Value, Port: int.Parse(m.Groups[3].Value)))
            .ToList();
        Assert.Equal(Hosts * Flows, seen.Count);
        foreach (var g in seen.GroupBy(x => x.Host))
        {
            Assert.Single(g.Select(x => x.Ext).Distinct()); // pairing holds
            int lo = g.Min(x => x.Port), hi = g.Max(x => x.Port);
            Assert.True(hi - lo <= (BlockSize - 1) * workers, $"{g.Key}: ports {lo}-{hi} are not one block");
            Assert.All(g, x => Assert.Equal(0, (x.Port - lo) % workers)); // one shard's ports
        }
        Assert.True(seen.Select(x => x.Ext).Distinct().Count() > 1, "hosts are spread over the pool");

        // natctl subscribers and blocks show the same: each host on its address, its ports in its one block.
        string dotnet = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } dh ? dh : "dotnet";
        string natctl = Path.Combine(AppContext.BaseDirectory, "natctl.dll");
        var subs = lab.TryRunIn(lab.GatewayNs, TimeSpan.FromSeconds(30), dotnet, natctl, "subscribers", "--json");
        output.WriteLine(subs.Combined);
        Assert.Equal(0, subs.ExitCode);
        using var subDoc = System.Text.Json.JsonDocument.Parse(subs.StdOut);
        var rows = subDoc.RootElement.GetProperty("subscribers").EnumerateArray().ToDictionary(e => e.GetProperty("subscriber").GetString()!);
        foreach (var g in seen.GroupBy(x => x.Host))
        {
            var row = rows[g.Key];
            Assert.Equal(g.First().Ext, row.GetProperty("external").GetString());
            Assert.Equal(Flows, row.GetProperty("ports").GetInt64());
            string block = Assert.Single(row.GetProperty("blocks").EnumerateArray()).GetString()!;
            var bm = Regex.Match(block, @"^(\d+)-(\d+)(?:/(\d+))?$");
            Assert.True(bm.Success, block);
            Assert.Equal(workers, bm.Groups[3].Success ? int.Parse(bm.Groups[3].Value) : 1);
            Assert.All(g, x => Assert.InRange(x.Port, int.Parse(bm.Groups[1].Value), int.Parse(bm.Groups[2].Value)));
        }
        var table = lab.TryRunIn(lab.GatewayNs, TimeSpan.FromSeconds(30), dotnet, natctl, "subscribers");
        output.WriteLine(table.Combined);
        Assert.Equal(Hosts + 1, table.StdOut.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length);
        var blocks = lab.TryRunIn(lab.GatewayNs, TimeSpan.FromSeconds(30), dotnet, natctl, "blocks");
        output.WriteLine(blocks.Combined);
        Assert.Equal(0, blocks.ExitCode);
        Assert.Equal(Hosts + 1, blocks.StdOut.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length); // header and one block each
        var metrics = lab.TryRunIn(lab.GatewayNs, TimeSpan.FromSeconds(30), dotnet, natctl, "metrics");
        long held = Regex.Matches(metrics.StdOut, @"^natd_port_blocks_in_use\{external=""[^""]+""\} (\d+)$", RegexOptions.Multiline).Sum(m => long.Parse(m.Groups[1].Value));
        Assert.Equal(Hosts, held);
        Assert.Matches($@"(?m)^natd_subscribers {Hosts}$", metrics.StdOut);
        scenario.Pass();
    }
}
