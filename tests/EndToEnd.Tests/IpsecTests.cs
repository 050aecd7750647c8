using System.Text.RegularExpressions;
using Natd.Control.Lab;
using Xunit.Abstractions;

namespace Natd.Tests.EndToEnd;

/// <summary>
/// IPsec masquerading through the real daemon (VPN Masquerade HOWTO section 6): two inside clients
/// (10.0.0.2 and 10.0.0.3) run ISAKMP from port 500 with the same initiator cookie, then ESP, then
/// NAT-T, against one scapy-built peer on the outside host; each must get only its own replies.
/// Defaults apply: IPsec on, parallel sessions off, so the second client's ESP to the same remote
/// host is refused while the first holds it. A second theory runs with <c>parallel: true</c>, where
/// it is forwarded and answered.
/// </summary>
[Collection(EndToEndCollection.Name)]
[Trait("Category", "EndToEnd")]
public sealed partial class IpsecTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Step = TimeSpan.FromSeconds(30);

    // The server prints a line before it answers, but the line comes through a pipe reader that can
    // lag the answer the client already has: a check of what the server printed waits this long.
    private static readonly TimeSpan PrintWait = TimeSpan.FromSeconds(5);

    private static string Script => Path.Combine(AppContext.BaseDirectory, "Scripts", "ipsec_lab.py");

    [RootTheory]
    [InlineData("natd")]
    [InlineData("natd-w1")]
    public void Two_clients_share_an_initiator_cookie_and_each_gets_only_its_own_isakmp_esp_and_nat_t_replies(string kind)
    {
        Assert.True(HasScapy(), "python3-scapy is not installed (control/install-deps.sh installs it)");
        using var scenario = Scenario.Start(kind, output);
        var lab = scenario.Lab;
        var second = lab.AddInsideHostAddress("10.0.0.3/24");
        string a = lab.InsideHost.ToString(), b = second.ToString(), remote = lab.OutsideHost.ToString();

        using var server = StartServer(lab, lifetimeSeconds: 90);

        // Same initiator cookie from both: natd keeps port 500 for both and tells replies apart by the responder cookie.
        // Both send their first message at one instant and the server holds its first replies 0.2 s,
        // so the second is held back by natd (cookie collision) and goes out on its retransmission.
        const string cookie = "0x0123456789abcdef";
        string startAt = (DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() / 1000.0 + 6).ToString("F3", System.Globalization.CultureInfo.InvariantCulture);
        using (var ia = Client(lab, "isakmp", a, "A", "--icookie", cookie, "--start-at", startAt))
        using (var ib = Client(lab, "isakmp", b, "B", "--icookie", cookie, "--start-at", startAt))
        {
            var ra = Result(ia, "isakmp");
            var rb = Result(ib, "isakmp");
            Assert.Equal(4, ra.Own);
            Assert.Equal(4, rb.Own);
            Assert.Equal(0, ra.Foreign + rb.Foreign);
        }
        // natd let one first message through, held the other until the first's responder cookie was known.
        var firsts = server.WaitForLines(l => l.StartsWith("isakmp from", StringComparison.Ordinal) && l.Contains("rcookie=0000000000000000", StringComparison.Ordinal), 2, PrintWait);
        Assert.Equal(2, firsts.Count);
        // The server saw both from the external address and port 500.
        AssertPrinted(server, l => l.StartsWith($"isakmp from {lab.GatewayOutside}:500 ", StringComparison.Ordinal) && l.EndsWith("tag=A", StringComparison.Ordinal));
        AssertPrinted(server, l => l.StartsWith($"isakmp from {lab.GatewayOutside}:500 ", StringComparison.Ordinal) && l.EndsWith("tag=B", StringComparison.Ordinal));

        using (var ea = Client(lab, "esp", a, "A", "--spi", "0x1001"))
        {
            var r = Result(ea, "esp");
            Assert.Equal(5, r.Own);
            Assert.Equal(0, r.Foreign);
        }
        using (var eb = Client(lab, "esp", b, "B", "--spi", "0x1002", "--count", "3", "--wait", "0.5"))
        {
            var r = Result(eb, "esp");
            Assert.Equal(0, r.Own); // parallel sessions off: the remote host is A's
            Assert.Equal(0, r.Foreign);
        }
        using (var ea = Client(lab, "esp", a, "A", "--spi", "0x1001", "--count", "2"))
        {
            var r = Result(ea, "esp");
            Assert.Equal(2, r.Own); // A's association survived B's attempts
            Assert.Equal(0, r.Foreign);
        }
        AssertPrinted(server, l => l == $"esp from {lab.GatewayOutside} spi=00001001 tag=A");
        Assert.DoesNotContain(server.StdOutLines, l => l.StartsWith("esp from", StringComparison.Ordinal) && l.EndsWith("tag=B", StringComparison.Ordinal));

        // NAT-T (UDP 4500) is ordinary UDP: both clients on port 4500 get distinct external ports.
        using (var na = Client(lab, "natt", a, "A"))
        using (var nb = Client(lab, "natt", b, "B"))
        {
            Assert.Equal((1, 0), Pair(Result(na, "natt")));
            Assert.Equal((1, 0), Pair(Result(nb, "natt")));
        }
        var natt = server.WaitForLines(l => l.StartsWith("natt from", StringComparison.Ordinal), 2, PrintWait);
        Assert.Equal(2, natt.Count);
        Assert.All(natt, l => Assert.StartsWith($"natt from {lab.GatewayOutside}:", l));
        scenario.Pass();
    }

    /// <summary>natd with two pollers ("natd") or one ("natd-w1") and parallel ESP sessions switched on.</summary>
    public static NatdGateway ParallelGateway(string kind) => kind switch
    {
        "natd" => new NatdGateway { ExtraConfig = "dataplane: { workers: 2 }\n" + ParallelConfig },
        "natd-w1" => new NatdGateway { ExtraConfig = "dataplane: { workers: 1 }\n" + ParallelConfig },
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "expected natd or natd-w1"),
    };

    private const string ParallelConfig = "algs: { ipsec: { parallel: true } }\n";

    /// <summary>
    /// With <c>parallel: true</c> the remote host is no longer one inside host's: once A's SPI is
    /// associated (the init slot is free again), B's new SPI to the same remote host is forwarded,
    /// takes the init slot, and the remote host's first packet with an unknown SPI is associated
    /// with B. Afterwards both SAs run side by side, each inbound SPI to its own host.
    /// </summary>
    [RootTheory]
    [InlineData("natd")]
    [InlineData("natd-w1")]
    public void Parallel_sessions_let_a_second_client_run_esp_with_the_same_remote_host(string kind)
    {
        Assert.True(HasScapy(), "python3-scapy is not installed (control/install-deps.sh installs it)");
        using var scenario = Scenario.Start(ParallelGateway(kind), output);
        var lab = scenario.Lab;
        var second = lab.AddInsideHostAddress("10.0.0.3/24");
        string a = lab.InsideHost.ToString(), b = second.ToString();

        using var server = StartServer(lab, lifetimeSeconds: 60);

        using (var ea = Client(lab, "esp", a, "A", "--spi", "0x1001", "--count", "3"))
        {
            Assert.Equal((3, 0), Pair(Result(ea, "esp")));
        }
        using (var eb = Client(lab, "esp", b, "B", "--spi", "0x1002", "--count", "3"))
        {
            Assert.Equal((3, 0), Pair(Result(eb, "esp"))); // refused (RemoteInUse) with parallel off
        }
        // Both associations hold, interleaved: each reply SPI reaches only its own host.
        using (var ea = Client(lab, "esp", a, "A", "--spi", "0x1001", "--count", "3"))
        using (var eb = Client(lab, "esp", b, "B", "--spi", "0x1002", "--count", "3"))
        {
            Assert.Equal((3, 0), Pair(Result(ea, "esp")));
            Assert.Equal((3, 0), Pair(Result(eb, "esp")));
        }
        AssertPrinted(server, l => l == $"esp from {lab.GatewayOutside} spi=00001001 tag=A");
        AssertPrinted(server, l => l == $"esp from {lab.GatewayOutside} spi=00001002 tag=B");

        // natctl's source: one associated entry per client, each with its own inbound SPI (the
        // server answers with 0x20000000 + the sum of the tag's bytes).
        var sessions = lab.RunIn(lab.GatewayNs, "curl", "-s", "http://127.0.0.1:9180/sessions").StdOut;
        output.WriteLine(sessions);
        using var doc = System.Text.Json.JsonDocument.Parse(sessions);
        var esp = doc.RootElement.EnumerateArray().Where(r => r.GetProperty("protocol").GetString() == "esp")
            .Select(r => $"{r.GetProperty("insideAddress").GetString()} {r.GetProperty("state").GetString()}")
            .Order(StringComparer.Ordinal).ToArray();
        Assert.Equal([$"{a} associated spi 00001001/20000041", $"{b} associated spi 00001002/20000042"], esp);
        scenario.Pass();
    }

    /// <summary>
    /// Deterministic NAT (RFC 7422) over two external addresses: each host's ISAKMP and ESP leave from
    /// the address of its range, the one its TCP and UDP use (RFC 4787 REQ-2), not from the address
    /// a seeded hash of the host picks (the cgn fuzz target found them apart). Eight hosts, four
    /// with their range on each address: a hash agrees with all eight ranges once in 256 starts.
    /// </summary>
    [RootTheory]
    [InlineData("natd")]
    [InlineData("natd-w1")]
    public void With_deterministic_nat_isakmp_and_esp_leave_from_the_address_of_each_hosts_range(string kind)
    {
        Assert.True(HasScapy(), "python3-scapy is not installed (control/install-deps.sh installs it)");
        var gateway = new NatdGateway
        {
            ExtraConfig = (kind == "natd" ? "dataplane: { workers: 2 }\n" : "dataplane: { workers: 1 }\n") + ParallelConfig,
            Pool = "198.51.100.1, 198.51.100.7",
            NatConfig = ", allocation: deterministic, deterministic: { inside: [10.0.0.0/24] }",
        };
        using var scenario = Scenario.Start(gateway, output);
        var lab = scenario.Lab;
        var map = Natd.Dataplane.Nat.DeterministicMap.For(Natd.Control.Config.ConfigLoader.LoadFile(gateway.ConfigPath!).Nat)!;
        string[] hosts = ["10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.200", "10.0.0.201", "10.0.0.202", "10.0.0.203"];
        var externals = new Dictionary<string, string>();
        foreach (string host in hosts)
        {
            if (host != lab.InsideHost.ToString())
            {
                lab.AddInsideHostAddress(host + "/24");
            }
            Assert.True(map.TryForward(Natd.Dataplane.Packets.Ipv4.Parse(host), out var range));
            externals[host] = Natd.Dataplane.Packets.Ipv4.Format(range.External);
            output.WriteLine($"range {range}");
        }
        Assert.Equal(2, externals.Values.Distinct().Count());

        using var server = StartServer(lab, lifetimeSeconds: 60);
        IsakmpAndEspLeaveFrom(lab, server, hosts, externals);
        scenario.Pass();
    }

    private static string Tag(int i) => ((char)('A' + i)).ToString();

    /// <summary>
    /// Each host (tagged A, B, ... in order) runs an ISAKMP exchange, all at once, then three ESP
    /// packets, one host at a time; every one of them reaches the server from its host's
    /// <paramref name="externals"/> address and from no other.
    /// </summary>
    private void IsakmpAndEspLeaveFrom(LabTopology lab, LabProcess server, string[] hosts, Dictionary<string, string> externals)
    {
        var isakmp = hosts.Select((h, i) => Client(lab, "isakmp", h, Tag(i), "--icookie", $"0x01234567000000{i:x2}")).ToList();
        foreach (var c in isakmp)
        {
            var r = Result(c, "isakmp");
            Assert.True(r.Own >= 4, $"{r.Own} ISAKMP replies came back, expected the first and three more (a retransmission may add one)");
            Assert.Equal(0, r.Foreign);
            c.Dispose();
        }
        for (int i = 0; i < hosts.Length; i++)
        {
            // One host at a time: a new SPI to a remote host waits for the one before it to be answered.
            using var c = Client(lab, "esp", hosts[i], Tag(i), "--spi", $"0x{0x1001 + i:x}", "--count", "3");
            Assert.Equal((3, 0), Pair(Result(c, "esp")));
        }
        for (int i = 0; i < hosts.Length; i++)
        {
            string external = externals[hosts[i]], tag = $"tag={Tag(i)}";
            AssertPrinted(server, l => l.StartsWith($"isakmp from {external}:500 ", StringComparison.Ordinal) && l.EndsWith(tag, StringComparison.Ordinal));
            Assert.DoesNotContain(server.StdOutLines, l => l.StartsWith("isakmp from", StringComparison.Ordinal) && l.EndsWith(tag, StringComparison.Ordinal) && !l.StartsWith($"isakmp from {external}:", StringComparison.Ordinal));
            AssertPrinted(server, l => l == $"esp from {external} spi={0x1001 + i:x8} {tag}");
            Assert.DoesNotContain(server.StdOutLines, l => l.StartsWith("esp from", StringComparison.Ordinal) && l.EndsWith(tag, StringComparison.Ordinal) && !l.StartsWith($"esp from {external} ", StringComparison.Ordinal));
        }
    }

    /// <summary>
    /// Port blocks over two external addresses: each host first sends UDP (NAT-T's port 4500, an
    /// ordinary mapping), which pairs its subscriber with the least-loaded address in the shard
    /// that owns it; its ISAKMP and ESP then leave from that same address (RFC 4787 REQ-2). With two
    /// workers they are carried by shard 0, which reads the owner's published pairing; before it
    /// did, a subscriber of shard 1 got the address a hash of the host picks.
    /// </summary>
    [RootTheory]
    [InlineData("natd")]
    [InlineData("natd-w1")]
    public void With_port_blocks_isakmp_and_esp_leave_from_the_address_each_hosts_udp_left_from(string kind)
    {
        using var scenario = PortBlockLab(kind, out string[] hosts);
        var lab = scenario.Lab;
        using var server = StartServer(lab, lifetimeSeconds: 90);
        var externals = new Dictionary<string, string>();
        for (int i = 0; i < hosts.Length; i++)
        {
            externals[hosts[i]] = NattFrom(lab, server, hosts[i], i);
            output.WriteLine($"{hosts[i]} paired with {externals[hosts[i]]}");
        }
        Assert.Equal(2, externals.Values.Distinct().Count()); // least-loaded pairing spread them over both addresses
        IsakmpAndEspLeaveFrom(lab, server, hosts, externals);
        scenario.Pass();
    }

    /// <summary>
    /// The other order: each host's ISAKMP and ESP come first, before it holds any port, and pair its
    /// subscriber (held while those flows live); its NAT-T UDP then leaves from the same address.
    /// Before, the port-less flows left from a hash of the host and the first port took the
    /// least-loaded address. With two workers shard 0 makes the pairing and the owner's first port
    /// reads it.
    /// </summary>
    [RootTheory]
    [InlineData("natd")]
    [InlineData("natd-w1")]
    public void With_port_blocks_a_hosts_first_port_leaves_from_the_address_its_esp_already_uses(string kind)
    {
        using var scenario = PortBlockLab(kind, out string[] hosts);
        var lab = scenario.Lab;
        using var server = StartServer(lab, lifetimeSeconds: 90);
        var externals = new Dictionary<string, string>();
        for (int i = 0; i < hosts.Length; i++)
        {
            using (var c = Client(lab, "esp", hosts[i], Tag(i), "--spi", $"0x{0x1001 + i:x}", "--count", "3"))
            {
                Assert.Equal((3, 0), Pair(Result(c, "esp")));
            }
            string? esp = server.WaitForLine(l => l.StartsWith("esp from ", StringComparison.Ordinal) && l.EndsWith($"tag={Tag(i)}", StringComparison.Ordinal), Step);
            Assert.NotNull(esp);
            externals[hosts[i]] = esp["esp from ".Length..esp.IndexOf(' ', "esp from ".Length)];
            output.WriteLine($"{hosts[i]} ESP from {externals[hosts[i]]}");
        }
        Assert.Equal(2, externals.Values.Distinct().Count()); // the port-less pairing is least loaded too
        for (int i = 0; i < hosts.Length; i++)
        {
            Assert.Equal(externals[hosts[i]], NattFrom(lab, server, hosts[i], i));
        }
        scenario.Pass();
    }

    /// <summary>natd with one worker ("natd-w1") or two ("natd"), port blocks of 64 over two external addresses, and eight inside hosts.</summary>
    private Scenario PortBlockLab(string kind, out string[] hosts)
    {
        Assert.True(HasScapy(), "python3-scapy is not installed (control/install-deps.sh installs it)");
        var gateway = new NatdGateway
        {
            ExtraConfig = (kind == "natd" ? "dataplane: { workers: 2 }\n" : "dataplane: { workers: 1 }\n") + ParallelConfig,
            Pool = "198.51.100.1, 198.51.100.7",
            NatConfig = ", allocation: port-block, port-block: { size: 64 }",
        };
        var scenario = Scenario.Start(gateway, output);
        hosts = ["10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.200", "10.0.0.201", "10.0.0.202", "10.0.0.203"];
        foreach (string host in hosts.Where(h => h != scenario.Lab.InsideHost.ToString()))
        {
            scenario.Lab.AddInsideHostAddress(host + "/24");
        }
        return scenario;
    }

    /// <summary>One NAT-T datagram (UDP 4500, an ordinary mapping) from <paramref name="host"/>, echoed; returns the external address the server saw it from.</summary>
    private string NattFrom(LabTopology lab, LabProcess server, string host, int i)
    {
        using var c = Client(lab, "natt", host, Tag(i));
        Assert.Equal((1, 0), Pair(Result(c, "natt")));
        // The server prints before it answers, but its output is read on another thread: wait for the line.
        string? line = server.WaitForLine(l => l.StartsWith("natt from ", StringComparison.Ordinal) && l.EndsWith($"natt {Tag(i)}", StringComparison.Ordinal), Step);
        Assert.NotNull(line);
        return line["natt from ".Length..line.IndexOf(':', StringComparison.Ordinal)];
    }

    /// <summary>Starts the lab's IPsec peer in the outside namespace (ISAKMP, NAT-T and ESP, see ipsec_lab.py) and waits until it listens.</summary>
    private LabProcess StartServer(LabTopology lab, int lifetimeSeconds)
    {
        var server = lab.StartIn(lab.OutsideNs, "/usr/bin/python3", Script, "server", "--lifetime", lifetimeSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture));
        try
        {
            Assert.NotNull(server.WaitForLine(l => l == "ready", TimeSpan.FromSeconds(15)));
            return server;
        }
        catch
        {
            server.Dispose(); // the caller's using never sees it
            throw;
        }
    }

    private static (int, int) Pair((int Own, int Foreign) r) => (r.Own, r.Foreign);

    /// <summary>Asserts that the server printed a line <paramref name="match"/> takes, waiting <see cref="PrintWait"/> for it.</summary>
    private static void AssertPrinted(LabProcess server, Func<string, bool> match) =>
        Assert.True(server.WaitForLine(match, PrintWait) is not null, $"the server printed no such line:\n{server.Dump()}");

    private LabProcess Client(LabTopology lab, string phase, string src, string tag, params string[] extra)
        => lab.StartIn(lab.InsideNs, "/usr/bin/python3", [Script, phase, "--src", src, "--tag", tag, "--dst", lab.OutsideHost.ToString(), .. extra]);

    private (int Own, int Foreign) Result(LabProcess p, string phase)
    {
        Assert.True(p.WaitForExit(Step), $"{phase} client did not finish: {p.Dump()}");
        output.WriteLine(p.Dump());
        var line = p.StdOutLines.LastOrDefault(l => l.StartsWith(phase + " ", StringComparison.Ordinal));
        Assert.NotNull(line);
        var m = ResultLine().Match(line);
        Assert.True(m.Success, line);
        return (int.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture),
            int.Parse(m.Groups[2].Value, System.Globalization.CultureInfo.InvariantCulture));
    }

    private static bool HasScapy() => Sh.TryRun(TimeSpan.FromSeconds(20), "/usr/bin/python3", "-c", "import scapy.layers.isakmp").ExitCode == 0;

    [GeneratedRegex(@"own=(\d+) foreign=(\d+)")]
    private static partial Regex ResultLine();
}
