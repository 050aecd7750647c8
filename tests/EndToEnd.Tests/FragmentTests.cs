using System.Text.RegularExpressions;
using Natd.Control.Lab;
using Xunit.Abstractions;
using static Natd.Tests.EndToEnd.LabScripts;

namespace Natd.Tests.EndToEnd;

/// <summary>
/// Fragments (RFC 4787 REQ-14) with the real daemon, 2 workers and 1, through the lab's 1500-byte
/// MTU: a 4000-byte UDP datagram from a python socket inside to a server outside and the server's
/// 4000-byte answer back, and <c>ping -s 4000</c>; each leaves its sender as three fragments and
/// reaches the other end whole. natd rows only (the kernel baseline reassembles in conntrack).
/// </summary>
[Collection(EndToEndCollection.Name)]
[Trait("Category", "EndToEnd")]
public sealed class FragmentTests(ITestOutputHelper output)
{
    public static TheoryData<string> NatdRows => GatewayKinds.Rows(["natd", "natd-w1"]);

    private static NatdGateway Natd(string kind) => new()
    {
        ExtraConfig = kind == "natd" ? "dataplane: { workers: 2 }\n" : "dataplane: { workers: 1 }\n",
    };

    /// <summary>An outside server answering each datagram with 4000 bytes of its own.</summary>
    private const string BigServer = """
        import socket
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("198.51.100.2", 7500)); print("listening", flush=True)
        while True:
            data, peer = s.recvfrom(65535)
            ok = data == bytes((i * 7 + 3) & 0xFF for i in range(4000))
            print("server got %d bytes %s from %s:%d" % (len(data), "intact" if ok else "corrupt", peer[0], peer[1]), flush=True)
            s.sendto(bytes((i * 11 + 5) & 0xFF for i in range(4000)), peer)
        """;

    /// <summary>The inside client: 4000 bytes out, 4000 bytes back (a few tries, as UDP may lose one).</summary>
    private const string BigClient = """
        import socket
        c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); c.settimeout(3)
        want = bytes((i * 11 + 5) & 0xFF for i in range(4000))
        for i in range(4):
            c.sendto(bytes((i * 7 + 3) & 0xFF for i in range(4000)), ("198.51.100.2", 7500))
            try:
                data, frm = c.recvfrom(65535)
            except socket.timeout:
                print("client timeout", flush=True); continue
            print("client got %d bytes %s from %s:%d" % (len(data), "intact" if data == want else "corrupt", frm[0], frm[1]), flush=True)
            break
        """;

    [RootTheory]
    [MemberData(nameof(NatdRows))]
    public void Udp_4000_bytes_each_way_cross_natd_in_fragments(string kind)
    {
        using var scenario = Scenario.Start(Natd(kind), output);
        var lab = scenario.Lab;
        using var server = lab.StartIn(lab.OutsideNs, "python3", "-u", Script(lab, "big_server.py", BigServer));
        Assert.NotNull(server.WaitForLine(l => l == "listening", TimeSpan.FromSeconds(10)));
        var r = lab.TryRunIn(lab.InsideNs, TimeSpan.FromSeconds(30), "python3", "-u", Script(lab, "big_client.py", BigClient));
        output.WriteLine(r.Combined);
        var seen = server.WaitForLine(l => l.StartsWith("server got", StringComparison.Ordinal), TimeSpan.FromSeconds(5));
        output.WriteLine(seen ?? "(server saw nothing)");
        Assert.NotNull(seen);
        Assert.Matches(@"^server got 4000 bytes intact from 198\.51\.100\.1:\d+$", seen);
        Assert.Contains("client got 4000 bytes intact from 198.51.100.2:7500", r.StdOut, StringComparison.Ordinal);
        Assert.True(Fragments(lab, "translated") >= 6, "three fragments each way were translated"); // a retry may add more
        scenario.Pass();
    }

    [RootTheory]
    [MemberData(nameof(NatdRows))]
    public void Ping_with_4000_bytes_crosses_natd_in_fragments(string kind)
    {
        using var scenario = Scenario.Start(Natd(kind), output);
        var lab = scenario.Lab;
        var r = lab.TryRunIn(lab.InsideNs, TimeSpan.FromSeconds(20), "ping", "-n", "-c", "3", "-s", "4000", "-W", "2", "-i", "0.2", lab.OutsideHost.ToString());
        output.WriteLine(r.Combined);
        var m = Regex.Match(r.StdOut, @"(\d+) packets transmitted, (\d+) (?:packets )?received", RegexOptions.CultureInvariant);
        Assert.True(m.Success, r.Combined);
        Assert.Equal("3", m.Groups[1].Value);
        Assert.Equal("3", m.Groups[2].Value);
        Assert.Contains("4008 bytes from " + lab.OutsideHost, r.StdOut, StringComparison.Ordinal);
        Assert.True(Fragments(lab, "translated") >= 18, "three fragments each way, three times");
        scenario.Pass();
    }

    /// <summary>natd_fragments_total for <paramref name="outcome"/> from /metrics (the metrics lines are logged).</summary>
    private long Fragments(LabTopology lab, string outcome)
    {
        var metrics = lab.RunIn(lab.GatewayNs, "curl", "-s", "http://127.0.0.1:9180/metrics").StdOut;
        foreach (var line in metrics.Split('\n'))
        {
            if (line.StartsWith("natd_fragments_total{", StringComparison.Ordinal) || line.StartsWith("natd_drops_total{reason=\"fragment", StringComparison.Ordinal)
                || line.StartsWith("natd_handoffs_total ", StringComparison.Ordinal))
            {
                output.WriteLine(line);
            }
        }
        var m = Regex.Match(metrics, $"^natd_fragments_total\\{{outcome=\"{outcome}\"\\}} (\\d+)$", RegexOptions.Multiline | RegexOptions.CultureInvariant);
        return m.Success ? long.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture) : -1;
    }
}
