using System.Globalization;
using System.Text.RegularExpressions;
using Natd.Control.Lab;
using Xunit.Abstractions;
using static Natd.Tests.EndToEnd.LabScripts;

namespace Natd.Tests.EndToEnd;

/// <summary>
/// The egress MTU with the real daemon, 2 workers and 1, and the hosts' own kernels: path MTU
/// discovery through natd's fragmentation-needed (RFC 1191), natd fragmenting what may be
/// fragmented (RFC 791), and MSS clamping (RFC 6691). Before natd had an egress MTU, a datagram
/// larger than the smaller side's MTU was lost in the gateway's kernel, and a TCP transfer over
/// a smaller uplink stalled.
/// </summary>
[Collection(EndToEndCollection.Name)]
[Trait("Category", "EndToEnd")]
public sealed class MtuTests(ITestOutputHelper output)
{
    public static TheoryData<string> NatdRows => GatewayKinds.Rows(["natd", "natd-w1"]);

    private static string Workers(string kind) => kind == "natd" ? "dataplane: { workers: 2 }\n" : "dataplane: { workers: 1 }\n";

    /// <summary>An outside TCP server: reads 2 MiB, checks them, answers with 2 MiB of its own.</summary>
    private const string TcpServer = """
        import socket
        N = 2 * 1024 * 1024
        s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("198.51.100.2", 7600)); s.listen(1); print("listening", flush=True)
        c, peer = s.accept()
        got = bytearray()
        while len(got) < N:
            b = c.recv(65536)
            if not b: break
            got += b
        ok = bytes(got) == bytes((i * 7 + 3) & 0xFF for i in range(N))
        print("server got %d bytes %s from %s" % (len(got), "intact" if ok else "corrupt", peer[0]), flush=True)
        c.sendall(bytes((i * 11 + 5) & 0xFF for i in range(N))); c.close()
        """;

    /// <summary>The inside client: 2 MiB up, 2 MiB down.</summary>
    private const string TcpClient = """
        import socket
        N = 2 * 1024 * 1024
        c = socket.create_connection(("198.51.100.2", 7600), timeout=20)
        c.sendall(bytes((i * 7 + 3) & 0xFF for i in range(N)))
        got = bytearray()
        while len(got) < N:
            b = c.recv(65536)
            if not b: break
            got += b
        ok = bytes(got) == bytes((i * 11 + 5) & 0xFF for i in range(N))
        print("client got %d bytes %s" % (len(got), "intact" if ok else "corrupt"), flush=True)
        """;

    [RootTheory]
    [MemberData(nameof(NatdRows))]
    public void Over_a_smaller_uplink_ping_learns_the_path_mtu_and_a_datagram_without_df_crosses_in_fragments(string kind)
    {
        using var scenario = Scenario.Start(new NatdGateway { ExtraConfig = Workers(kind), OutsideMtu = 1400 }, output);
        var lab = scenario.Lab;
        string note = ((NatdGateway)scenario.Gateway).Process!.Dump();
        Assert.Contains("natin: MTU 1500 is above natout's 1400: natd fragments datagrams larger than 1400 bytes", note, StringComparison.Ordinal);

        // 1500 bytes without DF (before the inside host knows the path's MTU): natd splits it, the outside host answers in its own fragments.
        var dont = lab.TryRunIn(lab.InsideNs, TimeSpan.FromSeconds(20), "ping", "-n", "-c", "3", "-W", "2", "-i", "0.2", "-M", "dont", "-s", "1472", lab.OutsideHost.ToString());
        output.WriteLine(dont.Combined);
        Assert.Contains("3 packets transmitted, 3 received", dont.StdOut, StringComparison.Ordinal);
        Assert.Contains("1480 bytes from " + lab.OutsideHost, dont.StdOut, StringComparison.Ordinal);

        // The same size with DF: natd answers fragmentation-needed, and the inside host's kernel learns 1400.
        var df = lab.TryRunIn(lab.InsideNs, TimeSpan.FromSeconds(10), "ping", "-n", "-c", "1", "-W", "2", "-M", "do", "-s", "1472", lab.OutsideHost.ToString());
        output.WriteLine(df.Combined);
        Assert.Contains($"From {lab.GatewayInside} icmp_seq=1 Frag needed and DF set (mtu = 1400)", df.Combined, StringComparison.Ordinal);
        var route = lab.RunIn(lab.InsideNs, "ip", "route", "get", lab.OutsideHost.ToString()).StdOut;
        output.WriteLine(route);
        Assert.Contains("mtu 1400", route, StringComparison.Ordinal);

        var metrics = Metrics(lab);
        Assert.True(Value(metrics, "natd_drops_total{reason=\"fragmentation-needed\"}") >= 1, "the DF ping was answered");
        Assert.True(Value(metrics, "natd_fragments_total{outcome=\"made\"}") >= 6, "three echo requests, two fragments each");
        Assert.True(Value(metrics, "natd_gateway_events_total{event=\"datagrams-fragmented\"}") >= 3);
        scenario.Pass();
    }

    [RootTheory]
    [MemberData(nameof(NatdRows))]
    public void A_link_mtu_lowered_while_natd_runs_is_followed(string kind)
    {
        using var scenario = Scenario.Start(new NatdGateway { ExtraConfig = Workers(kind) }, output);
        var lab = scenario.Lab;
        string host = lab.OutsideHost.ToString();
        var before = lab.TryRunIn(lab.InsideNs, TimeSpan.FromSeconds(10), "ping", "-n", "-c", "1", "-W", "2", "-M", "do", "-s", "1472", host);
        output.WriteLine(before.Combined);
        Assert.Contains("1 packets transmitted, 1 received", before.StdOut, StringComparison.Ordinal);

        lab.SetOutsideMtu(1400); // as a PPPoE client renegotiating would
        var daemon = ((NatdGateway)scenario.Gateway).Process!;
        Assert.NotNull(daemon.WaitForLine(l => l.Contains("natout: MTU changed from 1500 to 1400", StringComparison.Ordinal), TimeSpan.FromSeconds(10)));
        Thread.Sleep(200); // the pollers apply it from their mailboxes
        var after = lab.TryRunIn(lab.InsideNs, TimeSpan.FromSeconds(10), "ping", "-n", "-c", "1", "-W", "2", "-M", "do", "-s", "1472", host);
        output.WriteLine(after.Combined);
        Assert.Contains($"From {lab.GatewayInside} icmp_seq=1 Frag needed and DF set (mtu = 1400)", after.Combined, StringComparison.Ordinal);
        scenario.Pass();
    }

    [RootTheory]
    [MemberData(nameof(NatdRows))]
    public void Tcp_both_ways_through_a_path_mtu_smaller_than_the_hosts_links_learns_it_from_natd(string kind)
    {
        // The links stay at 1500, so both hosts start with 1460-byte segments and DF; natd's outside
        // MTU of 1300 (a tunnel beyond the link) is what each must learn.
        using var scenario = Scenario.Start(new NatdGateway { ExtraConfig = Workers(kind), OutsideInterfaceConfig = ", mtu: 1300" }, output);
        var lab = scenario.Lab;
        Transfer(lab);
        var metrics = Metrics(lab);
        Assert.True(Value(metrics, "natd_drops_total{reason=\"fragmentation-needed\"}") >= 2, "a segment each way was answered with fragmentation-needed");
        Assert.Equal(0, Value(metrics, "natd_gateway_events_total{event=\"mss-clamped\"}"));
        scenario.Pass();
    }

    [RootTheory]
    [MemberData(nameof(NatdRows))]
    public void With_mss_clamp_auto_tcp_segments_fit_the_smaller_mtu_from_the_start(string kind)
    {
        using var scenario = Scenario.Start(new NatdGateway
        {
            ExtraConfig = Workers(kind),
            OutsideInterfaceConfig = ", mtu: 1300",
            NatConfig = ", mss-clamp: auto",
        }, output);
        var lab = scenario.Lab;
        Transfer(lab);
        var metrics = Metrics(lab);
        Assert.True(Value(metrics, "natd_gateway_events_total{event=\"mss-clamped\"}") >= 2, "the SYN and the SYN-ACK");
        Assert.Equal(0, Value(metrics, "natd_drops_total{reason=\"fragmentation-needed\"}"));
        scenario.Pass();
    }

    private void Transfer(LabTopology lab)
    {
        using var server = lab.StartIn(lab.OutsideNs, "python3", "-u", Script(lab, "tcp_server.py", TcpServer));
        Assert.NotNull(server.WaitForLine(l => l == "listening", TimeSpan.FromSeconds(10)));
        var r = lab.TryRunIn(lab.InsideNs, TimeSpan.FromSeconds(60), "python3", "-u", Script(lab, "tcp_client.py", TcpClient));
        output.WriteLine(r.Combined);
        var seen = server.WaitForLine(l => l.StartsWith("server got", StringComparison.Ordinal), TimeSpan.FromSeconds(5));
        output.WriteLine(seen ?? "(server saw nothing)\n" + server.Dump());
        Assert.Equal($"server got 2097152 bytes intact from {lab.GatewayOutside}", seen);
        Assert.Contains("client got 2097152 bytes intact", r.StdOut, StringComparison.Ordinal);
    }

    /// <summary>natd's /metrics (the lines this test reads are logged).</summary>
    private string Metrics(LabTopology lab)
    {
        var metrics = lab.RunIn(lab.GatewayNs, "curl", "-s", "http://127.0.0.1:9180/metrics").StdOut;
        foreach (var line in metrics.Split('\n'))
        {
            if (line.StartsWith("natd_fragments_total{", StringComparison.Ordinal) || line.Contains("fragmentation-needed", StringComparison.Ordinal)
                || line.Contains("mss-clamped", StringComparison.Ordinal) || line.Contains("datagrams-fragmented", StringComparison.Ordinal)
                || line.Contains("icmp-errors-sent", StringComparison.Ordinal))
            {
                output.WriteLine(line);
            }
        }
        return metrics;
    }

    private static long Value(string metrics, string series)
    {
        var m = Regex.Match(metrics, "^" + Regex.Escape(series) + @" (\d+)$", RegexOptions.Multiline | RegexOptions.CultureInvariant);
        Assert.True(m.Success, $"{series} is not in /metrics");
        return long.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture);
    }
}
