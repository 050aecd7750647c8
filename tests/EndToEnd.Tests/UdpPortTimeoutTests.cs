using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Natd.Control.Lab;
using Xunit.Abstractions;
using static Natd.Tests.EndToEnd.LabScripts;

namespace Natd.Tests.EndToEnd;

/// <summary>
/// RFC 4787 REQ-5a end to end, 2 workers and 1: with <c>timeouts.udp-ports: { 53: 3 }</c> a real
/// DNS query (dig on the inside host, dnsmasq on the outside host) holds its session for 3 s, while
/// the same query to a DNS server on port 5300 keeps the 300 s UDP timeout. Without the port's own
/// timer every such query would hold an external port for five minutes.
/// </summary>
[Collection(EndToEndCollection.Name)]
[Trait("Category", "EndToEnd")]
public sealed class UdpPortTimeoutTests(ITestOutputHelper output)
{
    public static TheoryData<string> NatdRows => GatewayKinds.Rows(["natd", "natd-w1"]);

    private static string Config(string kind)
        => (kind == "natd" ? "dataplane: { workers: 2 }\n" : "dataplane: { workers: 1 }\n") + "timeouts: { udp-ports: { 53: 3 } }\n";

    [RootTheory]
    [MemberData(nameof(NatdRows))]
    public void Rfc4787_req5a_a_dns_query_gives_its_session_up_at_the_ports_timer_while_other_udp_keeps_the_udp_timeout(string kind)
    {
        using var scenario = Scenario.Start(new NatdGateway { ExtraConfig = Config(kind) }, output);
        var lab = scenario.Lab;
        using var dns = StartDnsmasq(lab, 53);
        using var other = StartDnsmasq(lab, 5300);

        Assert.Equal("192.0.2.53", Dig(lab, 53, 40053));
        var answered = Stopwatch.StartNew();
        Assert.Equal("192.0.2.53", Dig(lab, 5300, 40054));

        var rows = Sessions(lab);
        var toDns = Assert.Single(rows, r => r.InsidePort == 40053);
        var toOther = Assert.Single(rows, r => r.InsidePort == 40054);
        Assert.Equal((53, 5300), (toDns.RemotePort, toOther.RemotePort));
        Assert.InRange(toDns.Expires, 0, 3);
        Assert.InRange(toOther.Expires, 250, 300);
        var timers = Natctl(lab, "timeouts");
        output.WriteLine("$ natctl timeouts\n" + timers.Combined);
        Assert.Matches(@"(?m)^udp/53\s+3 s$", timers.StdOut);

        // The sweeper retires it within about a second of its deadline; the other one stays.
        var deadline = Stopwatch.StartNew();
        while (Sessions(lab).Exists(r => r.InsidePort == 40053) && deadline.Elapsed < TimeSpan.FromSeconds(15))
        {
            Thread.Sleep(250);
        }
        output.WriteLine($"the DNS session went {answered.Elapsed.TotalSeconds:F1} s after its answer");
        rows = Sessions(lab);
        Assert.DoesNotContain(rows, r => r.InsidePort == 40053);
        Assert.True(answered.Elapsed >= TimeSpan.FromSeconds(2.9), $"gone after {answered.Elapsed.TotalSeconds:F1} s, before its 3 s");
        Assert.Contains(rows, r => r.InsidePort == 40054);
        scenario.Pass();
    }

    private LabProcess StartDnsmasq(LabTopology lab, int port)
    {
        // A real DNS server answering one name, in the foreground, no system files or upstreams.
        var p = lab.StartIn(lab.OutsideNs, "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
            "--bind-interfaces", $"--listen-address={lab.OutsideHost}", $"--port={port}", "--address=/natd.test/192.0.2.53",
            "--pid-file", "--user=root", "--log-facility=-");
        var deadline = Stopwatch.StartNew();
        while (!lab.TryRunIn(lab.OutsideNs, TimeSpan.FromSeconds(5), "ss", "-Hlun", $"sport = :{port}").StdOut.Contains(':' + port.ToString(CultureInfo.InvariantCulture), StringComparison.Ordinal))
        {
            Assert.True(deadline.Elapsed < TimeSpan.FromSeconds(10), $"dnsmasq did not listen on UDP {port}: " + string.Join('\n', p.StdErrLines));
            Thread.Sleep(100);
        }
        return p;
    }

    private string Dig(LabTopology lab, int port, int sourcePort)
    {
        var r = lab.TryRunIn(lab.InsideNs, TimeSpan.FromSeconds(15), "dig", "+short", "+tries=2", "+time=3", "-b", $"{lab.InsideHost}#{sourcePort}",
            "-p", port.ToString(CultureInfo.InvariantCulture), "@" + lab.OutsideHost, "natd.test", "A");
        output.WriteLine($"$ dig -p {port} natd.test (from port {sourcePort})\n{r.Combined}");
        return r.StdOut.Trim();
    }

    private List<(int InsidePort, int RemotePort, double Expires)> Sessions(LabTopology lab)
    {
        var r = Natctl(lab, "sessions", "--protocol", "udp", "--json");
        Assert.True(r.ExitCode == 0, r.Combined);
        using var doc = JsonDocument.Parse(r.StdOut);
        var root = doc.RootElement.ValueKind == JsonValueKind.Array ? doc.RootElement : doc.RootElement.GetProperty("sessions");
        var rows = new List<(int, int, double)>();
        foreach (var s in root.EnumerateArray())
        {
            rows.Add((s.GetProperty("insidePort").GetInt32(), s.GetProperty("remotePort").GetInt32(), s.GetProperty("expiresInSeconds").GetDouble()));
        }
        return rows;
    }
}
