using System.Net;
using System.Text.RegularExpressions;
using Natd.Control.Lab;
using Xunit.Abstractions;
using static Natd.Tests.EndToEnd.LabScripts;

namespace Natd.Tests.EndToEnd;

/// <summary>
/// natd's PCP server (RFC 6887) and NAT-PMP (RFC 6886) driven by real clients nobody here wrote,
/// with 2 workers and 1: Cisco's libpcp client (pcpnatpmpc) maps a TCP port to a web
/// server on the inside host, which the outside host then reaches at the external address
/// and port the client printed; the mapping is refreshed and deleted (then unreachable); PEER
/// reports the external endpoint a flow then uses; a FILTER keeps a second outside address out;
/// PREFER_FAILURE with a taken port fails. Debian's natpmpc asks the external address and maps a
/// UDP port that a datagram from outside reaches, also under port blocks with two pool addresses,
/// at the address it was told.
/// </summary>
[Collection(EndToEndCollection.Name)]
[Trait("Category", "EndToEnd")]
public sealed partial class PcpTests(ITestOutputHelper output)
{
    public static TheoryData<string> NatdRows => GatewayKinds.Rows(["natd", "natd-w1"]);

    /// <summary>A UDP listener on the inside host: prints each datagram with its sender.</summary>
    private const string Listener = """
        import socket, sys
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("10.0.0.2", int(sys.argv[1]))); print("listening", flush=True)
        while True:
            data, peer = s.recvfrom(2048); print("got %s from %s" % (data.decode(), peer[0]), flush=True)
        """;

    /// <summary>
    /// A web server on the inside host (python3's http.server would first resolve its own name,
    /// and the inside host's resolver is beyond natd, where nothing answers).
    /// </summary>
    private const string WebServer = """
        import socket
        s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("10.0.0.2", 8080)); s.listen(16)
        print("serving", flush=True)
        while True:
            c, peer = s.accept(); c.recv(4096)
            c.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 12\r\n\r\ninside host\n"); c.close()
            print("served %s" % peer[0], flush=True)
        """;

    /// <summary>Sends from a fixed inside port to the reflector and prints what it saw.</summary>
    private const string FromPort = """
        import socket, sys
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("10.0.0.2", int(sys.argv[1]))); s.settimeout(2)
        for attempt in range(4):
            s.sendto(b"who", ("198.51.100.2", 7400))
            try:
                print("seen %s" % s.recvfrom(2048)[0].decode(), flush=True); break
            except socket.timeout:
                pass
        """;

    // pcpnatpmpc's result table: server, protocol, internal address and port, peer and port, external address and port, result code, state.
    [GeneratedRegex(@"^\S+\s+(TCP|UDP)\s+\S+\s+(\d+)\s+\S+\s+(\d+)\s+(\S+)\s+(\d+)\s+(\d+)\s+(\S+)", RegexOptions.Multiline)]
    private static partial Regex PcpRow();

    private sealed record PcpAnswer(string Output, int ExitCode, string Protocol, string External, int ExternalPort, int Result, string State);

    [RootTheory]
    [MemberData(nameof(NatdRows))]
    public void Real_pcp_and_natpmp_clients_open_ports_through_natd(string kind)
    {
        string pcpnatpmpc = PcpClients.Pcpnatpmpc; // build (or reuse) before the lab exists
        int workers = kind == "natd" ? 2 : 1;
        using var scenario = Scenario.Start(new NatdGateway
        {
            ExtraConfig = $"dataplane: {{ workers: {workers} }}\npcp: {{ enabled: true, min-lifetime: 2, max-lifetime: 3600 }}\n",
        }, output);
        var lab = scenario.Lab;
        IPAddress second = lab.AddOutsideHostAddress("198.51.100.3/24");
        string gw = lab.GatewayInside.ToString(), ext = lab.GatewayOutside.ToString();

        PcpAnswer Pcp(params string[] args)
        {
            var r = lab.TryRunIn(lab.InsideNs, TimeSpan.FromSeconds(30), pcpnatpmpc, ["-s", gw, "-T", "3", .. args]);
            output.WriteLine($"$ pcpnatpmpc -s {gw} -T 3 {string.Join(' ', args)}\n{r.Combined}");
            var m = PcpRow().Match(r.StdOut);
            Assert.True(m.Success, "no result row in pcpnatpmpc's output");
            return new PcpAnswer(r.StdOut, r.ExitCode, m.Groups[1].Value, m.Groups[4].Value, int.Parse(m.Groups[5].Value),
                int.Parse(m.Groups[6].Value), m.Groups[7].Value);
        }

        ProcessResult CurlFromOutside(int port, double seconds = 5)
            => lab.TryRunIn(lab.OutsideNs, TimeSpan.FromSeconds(seconds + 5), "curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}",
                "--max-time", seconds.ToString(System.Globalization.CultureInfo.InvariantCulture), $"http://{ext}:{port}/");

        // MAP a TCP port for a real server on the inside host; the outside host reaches it.
        using var http = lab.StartIn(lab.InsideNs, "python3", "-u", Script(lab, "pcp_web.py", WebServer));
        Assert.NotNull(http.WaitForLine(l => l == "serving", TimeSpan.FromSeconds(10)));
        var map = Pcp("-i", "10.0.0.2:8080", "-t", "-l", "600", "-e", $"{ext}:18080");
        Assert.Equal((0, "TCP", "::ffff:" + ext, 0, "succ"), (map.ExitCode, map.Protocol, map.External, map.Result, map.State));
        int port = map.ExternalPort;
        var curl = CurlFromOutside(port);
        output.WriteLine($"$ curl http://{ext}:{port}/ -> {curl.Combined}");
        if (curl.StdOut.Trim() != "200")
        {
            output.WriteLine(http.Dump());
            output.WriteLine(Natctl(lab, "stats").Combined);
            output.WriteLine(Natctl(lab, "sessions").Combined);
        }
        Assert.Equal("200", curl.StdOut.Trim());

        // Refresh: a new run of the client (with a nonce of its own) keeps the same external port.
        var refresh = Pcp("-i", "10.0.0.2:8080", "-t", "-l", "900", "-e", $"{ext}:{port}");
        Assert.Equal((0, port), (refresh.Result, refresh.ExternalPort));

        // PREFER_FAILURE with the port the first mapping holds: CANNOT_PROVIDE_EXTERNAL (11).
        var refused = Pcp("-i", "10.0.0.2:8081", "-t", "-l", "600", "-e", $"{ext}:{port}", "-P");
        Assert.Equal(11, refused.Result);
        Assert.NotEqual(0, refused.ExitCode);

        // Delete (lifetime 0): new connections from outside no longer get in.
        var delete = Pcp("-i", "10.0.0.2:8080", "-t", "-l", "0");
        Assert.Equal(0, delete.Result);
        var after = CurlFromOutside(port, 3);
        output.WriteLine($"$ curl http://{ext}:{port}/ (deleted) -> exit {after.ExitCode} {after.Combined}");
        Assert.NotEqual("200", after.StdOut.Trim());

        // PEER: the flow's external endpoint, reported before the flow sends, is the one the remote then sees.
        using var reflector = StartUdpReflector(lab, 7400);
        var peer = Pcp("-i", "10.0.0.2:40123", "-p", "198.51.100.2:7400", "-u", "-l", "120");
        Assert.Equal((0, "UDP"), (peer.Result, peer.Protocol));
        var seen = lab.TryRunIn(lab.InsideNs, TimeSpan.FromSeconds(20), "python3", "-u", Script(lab, "pcp_from_port.py", FromPort), "40123");
        output.WriteLine(seen.Combined);
        Assert.Contains($"seen {ext}:{peer.ExternalPort}", seen.StdOut, StringComparison.Ordinal);

        // FILTER: only 198.51.100.2 may use the mapping; 198.51.100.3 is kept out.
        using var listener = lab.StartIn(lab.InsideNs, "python3", "-u", Script(lab, "pcp_listener.py", Listener), "9100");
        Assert.NotNull(listener.WaitForLine(l => l == "listening", TimeSpan.FromSeconds(10)));
        var filtered = Pcp("-i", "10.0.0.2:9100", "-u", "-l", "600", "-F", "[198.51.100.2/32]:0");
        Assert.Equal(0, filtered.Result);
        LabPrograms.SendUdp(lab, lab.OutsideNs, second, 5555, lab.GatewayOutside, filtered.ExternalPort, "stranger");
        LabPrograms.SendUdp(lab, lab.OutsideNs, lab.OutsideHost, 5555, lab.GatewayOutside, filtered.ExternalPort, "friend");
        Assert.NotNull(listener.WaitForLine(l => l == "got friend from 198.51.100.2", TimeSpan.FromSeconds(5)));
        Assert.DoesNotContain(listener.StdOutLines, l => l.Contains("stranger", StringComparison.Ordinal));

        // natpmpc: the external address, then a UDP mapping reached from outside.
        var address = lab.TryRunIn(lab.InsideNs, TimeSpan.FromSeconds(20), "natpmpc", "-g", gw);
        output.WriteLine($"$ natpmpc -g {gw}\n{address.Combined}");
        Assert.Contains($"Public IP address : {ext}", address.StdOut, StringComparison.Ordinal);
        using var udp5000 = lab.StartIn(lab.InsideNs, "python3", "-u", Script(lab, "pcp_listener.py", Listener), "5000");
        Assert.NotNull(udp5000.WaitForLine(l => l == "listening", TimeSpan.FromSeconds(10)));
        var natpmp = lab.TryRunIn(lab.InsideNs, TimeSpan.FromSeconds(20), "natpmpc", "-g", gw, "-a", "5000", "5000", "udp", "60");
        output.WriteLine($"$ natpmpc -g {gw} -a 5000 5000 udp 60\n{natpmp.Combined}");
        var mapped = Regex.Match(natpmp.StdOut, @"Mapped public port (\d+) protocol UDP to local port 5000 li\w*time (\d+)"); // natpmpc prints "liftime"
        Assert.True(mapped.Success, "natpmpc printed no mapping");
        Assert.Equal("60", mapped.Groups[2].Value); // within min-lifetime 2 and max-lifetime 3600: granted as asked
        LabPrograms.SendUdp(lab, lab.OutsideNs, lab.OutsideHost, 6666, lab.GatewayOutside, int.Parse(mapped.Groups[1].Value), "natpmp");
        Assert.NotNull(udp5000.WaitForLine(l => l == "got natpmp from 198.51.100.2", TimeSpan.FromSeconds(5)));

        // The results counted, as natctl stats shows them.
        var stats = Natctl(lab, "stats");
        output.WriteLine(stats.Combined);
        Assert.Matches(@"(?m)^pcp success\s+\d+$", stats.StdOut);
        Assert.Matches(@"(?m)^pcp cannot-provide-external\s+1$", stats.StdOut);
        Assert.Matches(@"(?m)^pcp natpmp-success\s+\d+$", stats.StdOut);
        scenario.Pass();
    }

    /// <summary>
    /// Debian's natpmpc under carrier-grade NAT (port blocks, two pool addresses), 2 workers and 1:
    /// it asks the external address, then maps a UDP port; a datagram from outside to the address
    /// it was told and the port it got reaches the inside host. A NAT-PMP mapping reply does not
    /// repeat the address, so the answer must already be the subscriber's pairing.
    /// </summary>
    [RootTheory]
    [MemberData(nameof(NatdRows))]
    public void Natpmpc_with_port_blocks_is_reached_at_the_address_it_was_told(string kind)
    {
        int workers = kind == "natd" ? 2 : 1;
        using var scenario = Scenario.Start(new NatdGateway
        {
            Pool = "198.51.100.1, 198.51.100.7",
            NatConfig = ", allocation: port-block, port-block: { size: 64, per-subscriber: 2 }",
            ExtraConfig = $"dataplane: {{ workers: {workers} }}\npcp: {{ enabled: true }}\n",
        }, output);
        var lab = scenario.Lab;
        string gw = lab.GatewayInside.ToString();

        var address = lab.TryRunIn(lab.InsideNs, TimeSpan.FromSeconds(20), "natpmpc", "-g", gw);
        output.WriteLine($"$ natpmpc -g {gw}\n{address.Combined}");
        var told = Regex.Match(address.StdOut, @"Public IP address : (\S+)");
        Assert.True(told.Success, "natpmpc printed no public address");
        Assert.Contains(told.Groups[1].Value, new[] { "198.51.100.1", "198.51.100.7" });

        using var udp5000 = lab.StartIn(lab.InsideNs, "python3", "-u", Script(lab, "pcp_listener.py", Listener), "5000");
        Assert.NotNull(udp5000.WaitForLine(l => l == "listening", TimeSpan.FromSeconds(10)));
        var natpmp = lab.TryRunIn(lab.InsideNs, TimeSpan.FromSeconds(20), "natpmpc", "-g", gw, "-a", "5000", "5000", "udp", "3600");
        output.WriteLine($"$ natpmpc -g {gw} -a 5000 5000 udp 3600\n{natpmp.Combined}");
        var mapped = Regex.Match(natpmp.StdOut, @"Mapped public port (\d+) protocol UDP to local port 5000");
        Assert.True(mapped.Success, "natpmpc printed no mapping");
        var mappings = Natctl(lab, "mappings");
        output.WriteLine(mappings.Combined);
        Assert.Contains($"{told.Groups[1].Value}:{mapped.Groups[1].Value}", mappings.StdOut, StringComparison.Ordinal);
        LabPrograms.SendUdp(lab, lab.OutsideNs, lab.OutsideHost, 6666, IPAddress.Parse(told.Groups[1].Value), int.Parse(mapped.Groups[1].Value), "told");
        Assert.NotNull(udp5000.WaitForLine(l => l == "got told from 198.51.100.2", TimeSpan.FromSeconds(5)));
        scenario.Pass();
    }
}
