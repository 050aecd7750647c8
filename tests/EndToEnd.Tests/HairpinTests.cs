using Natd.Control.Lab;
using Xunit.Abstractions;
using static Natd.Tests.EndToEnd.LabScripts;

namespace Natd.Tests.EndToEnd;

/// <summary>
/// Hairpinning (RFC 4787 REQ-9, RFC 5382 REQ-8) with the real daemon, 2 workers and 1: an inside
/// client reaches a forward's server through the external address, and an inside host reaches
/// another's mapping; each side sees only the other's external endpoint. natd rows only: the kernel
/// baseline's nftables masquerade has no forward (DNAT) or hairpin rules in this harness.
/// </summary>
[Collection(EndToEndCollection.Name)]
[Trait("Category", "EndToEnd")]
public sealed class HairpinTests(ITestOutputHelper output)
{
    public static TheoryData<string> NatdRows => GatewayKinds.Rows(["natd", "natd-w1"]);

    private static NatdGateway Natd(string kind, string extra, string nat = "") => new()
    {
        ExtraConfig = (kind == "natd" ? "dataplane: { workers: 2 }\n" : "dataplane: { workers: 1 }\n") + extra,
        NatConfig = nat,
    };

    /// <summary>10.0.0.3 sends to 198.51.100.1:5000, forwarded to 10.0.0.2:5000, which answers whoever it saw.</summary>
    private const string UdpForwardClient = """
        import socket
        srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); srv.bind(("10.0.0.2", 5000)); srv.settimeout(3)
        cli = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); cli.bind(("10.0.0.3", 0)); cli.settimeout(3)
        for i in range(4):
            cli.sendto(b"ping", ("198.51.100.1", 5000))
            try:
                data, peer = srv.recvfrom(2048)
            except socket.timeout:
                print("server timeout", flush=True); continue
            print("server saw %s:%d" % peer, flush=True)
            srv.sendto(b"pong", peer)
            try:
                data, frm = cli.recvfrom(2048)
                print("client got %s from %s:%d" % (data.decode(), frm[0], frm[1]), flush=True); break
            except socket.timeout:
                print("client timeout", flush=True)
        """;

    /// <summary>10.0.0.3 connects to 198.51.100.1:8080, forwarded to 10.0.0.2:8000, which reports the peer it accepted.</summary>
    private const string TcpForwardClient = """
        import socket
        srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("10.0.0.2", 8000)); srv.listen(1); srv.settimeout(15)
        cli = socket.socket(); cli.bind(("10.0.0.3", 0)); cli.settimeout(15)
        try:
            cli.connect(("198.51.100.1", 8080))
            c, peer = srv.accept()
            print("server saw %s:%d" % peer, flush=True)
            c.sendall(b"pong\n")
            print("client got %s" % cli.recv(100).decode().strip(), flush=True)
        except OSError as e:
            print("error %s" % e, flush=True)
        """;

    /// <summary>A (10.0.0.2) learns its external endpoint from the reflector; B (10.0.0.3) sends to it; A answers B.</summary>
    private const string MappingClients = """
        import socket
        a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); a.bind(("10.0.0.2", 0)); a.settimeout(3)
        b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); b.bind(("10.0.0.3", 0)); b.settimeout(3)
        ext = None
        for i in range(4):
            a.sendto(b"who", ("198.51.100.2", 7400))
            try:
                ext = a.recvfrom(2048)[0].decode(); break
            except socket.timeout:
                pass
        print("a external %s" % ext, flush=True)
        host, port = ext.split(":")
        peer = None
        for i in range(4):
            b.sendto(b"hello a", (host, int(port)))
            try:
                data, peer = a.recvfrom(2048)
                print("a got %s from %s:%d" % (data.decode(), peer[0], peer[1]), flush=True); break
            except socket.timeout:
                print("a timeout", flush=True)
        if peer:
            a.sendto(b"hello b", peer)
            try:
                data, frm = b.recvfrom(2048)
                print("b got %s from %s:%d" % (data.decode(), frm[0], frm[1]), flush=True)
            except socket.timeout:
                print("b timeout", flush=True)
        """;

    /// <summary>An outside TCP reflector: answers each connection with the source it saw.</summary>
    private const string TcpReflector = """
        import socket
        s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("198.51.100.2", 7401)); s.listen(8); print("listening", flush=True)
        while True:
            c, peer = s.accept(); c.sendall(("%s:%d\n" % peer).encode()); c.close()
        """;

    /// <summary>
    /// A (10.0.0.2) connects out from port 40500 to learn its TCP mapping, keeps that connection
    /// open and listens on the same port; B (10.0.0.3) connects to A's external endpoint; A accepts
    /// and reports the peer; B reads A's greeting.
    /// </summary>
    private const string TcpMappingClients = """
        import socket
        def sock():
            x = socket.socket(); x.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            x.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1); x.settimeout(15); return x
        out = sock(); out.bind(("10.0.0.2", 40500)); out.connect(("198.51.100.2", 7401))
        ext = out.recv(100).decode().strip()
        print("a external %s" % ext, flush=True)
        lis = sock(); lis.bind(("10.0.0.2", 40500)); lis.listen(1)
        host, port = ext.split(":")
        b = socket.socket(); b.bind(("10.0.0.3", 0)); b.settimeout(15)
        try:
            b.connect((host, int(port)))
            c, peer = lis.accept()
            print("a accepted %s:%d" % peer, flush=True)
            c.sendall(b"hello b\n")
            print("b got %s" % b.recv(100).decode().strip(), flush=True)
        except OSError as e:
            print("error %s" % e, flush=True)
        """;

    [RootTheory]
    [MemberData(nameof(NatdRows))]
    public void Udp_hairpin_to_a_forward_shows_both_sides_the_external_address(string kind)
    {
        using var scenario = Scenario.Start(Natd(kind, """
            forwards:
              - { protocol: udp, external: 198.51.100.1:5000, backends: [10.0.0.2:5000] }

            """), output);
        var lab = scenario.Lab;
        lab.AddInsideHostAddress("10.0.0.3/24");
        var r = lab.TryRunIn(lab.InsideNs, TimeSpan.FromSeconds(30), "python3", "-u", Script(lab, "hairpin_udp.py", UdpForwardClient));
        output.WriteLine(r.Combined);
        Assert.Matches(@"server saw 198\.51\.100\.1:\d+", r.StdOut);
        Assert.Contains("client got pong from 198.51.100.1:5000", r.StdOut, StringComparison.Ordinal);
        Assert.DoesNotContain("10.0.0.3", r.StdOut, StringComparison.Ordinal);
        scenario.Pass();
    }

    [RootTheory]
    [MemberData(nameof(NatdRows))]
    public void Tcp_hairpin_to_a_forward_connects_through_the_external_address(string kind)
    {
        using var scenario = Scenario.Start(Natd(kind, """
            forwards:
              - { protocol: tcp, external: 198.51.100.1:8080, backends: [10.0.0.2:8000] }

            """), output);
        var lab = scenario.Lab;
        lab.AddInsideHostAddress("10.0.0.3/24");
        var r = lab.TryRunIn(lab.InsideNs, TimeSpan.FromSeconds(40), "python3", "-u", Script(lab, "hairpin_tcp.py", TcpForwardClient));
        output.WriteLine(r.Combined);
        Assert.Matches(@"server saw 198\.51\.100\.1:\d+", r.StdOut);
        Assert.Contains("client got pong", r.StdOut, StringComparison.Ordinal);
        scenario.Pass();
    }

    [RootTheory]
    [MemberData(nameof(NatdRows))]
    public void Udp_hairpin_to_another_hosts_mapping_reaches_it_with_endpoint_independent_filtering(string kind)
    {
        using var scenario = Scenario.Start(Natd(kind, "", nat: ", filtering: endpoint-independent"), output);
        var lab = scenario.Lab;
        lab.AddInsideHostAddress("10.0.0.3/24");
        using var reflector = StartUdpReflector(lab, 7400);
        var r = lab.TryRunIn(lab.InsideNs, TimeSpan.FromSeconds(40), "python3", "-u", Script(lab, "hairpin_mapping.py", MappingClients));
        output.WriteLine(r.Combined);
        var ext = System.Text.RegularExpressions.Regex.Match(r.StdOut, @"a external 198\.51\.100\.1:(\d+)");
        Assert.True(ext.Success, r.Combined);
        Assert.Matches(@"a got hello a from 198\.51\.100\.1:\d+", r.StdOut);
        Assert.Contains($"b got hello b from 198.51.100.1:{ext.Groups[1].Value}", r.StdOut, StringComparison.Ordinal);
        Assert.DoesNotContain("10.0.0.", r.StdOut, StringComparison.Ordinal);
        scenario.Pass();
    }

    [RootTheory]
    [MemberData(nameof(NatdRows))]
    public void Tcp_hairpin_to_another_hosts_mapping_connects_with_endpoint_independent_filtering(string kind)
    {
        using var scenario = Scenario.Start(Natd(kind, "", nat: ", filtering: endpoint-independent"), output);
        var lab = scenario.Lab;
        lab.AddInsideHostAddress("10.0.0.3/24");
        using var reflector = lab.StartIn(lab.OutsideNs, "python3", "-u", Script(lab, "tcp_reflector.py", TcpReflector));
        Assert.NotNull(reflector.WaitForLine(l => l == "listening", TimeSpan.FromSeconds(10)));
        var r = lab.TryRunIn(lab.InsideNs, TimeSpan.FromSeconds(40), "python3", "-u", Script(lab, "hairpin_tcp_mapping.py", TcpMappingClients));
        output.WriteLine(r.Combined);
        Assert.Matches(@"a external 198\.51\.100\.1:\d+", r.StdOut);
        Assert.Matches(@"a accepted 198\.51\.100\.1:\d+", r.StdOut);
        Assert.Contains("b got hello b", r.StdOut, StringComparison.Ordinal);
        Assert.DoesNotContain("a accepted 10.0.0.", r.StdOut, StringComparison.Ordinal);
        scenario.Pass();
    }
}
