using System.Text.RegularExpressions;
using Natd.Control.Lab;
using Xunit.Abstractions;
using static Natd.Tests.EndToEnd.LabScripts;

namespace Natd.Tests.EndToEnd;

/// <summary>
/// Deterministic NAT (RFC 7422) with the real daemon, 2 workers and 1: UDP flows from two inside
/// hosts leave from the address and inside the port range <c>natd lookup --inside</c> names from
/// the configuration file alone, and <c>natctl lookup --external</c> names the host back from the
/// running daemon. natd rows only: the kernel baseline has no deterministic mode.
/// </summary>
[Collection(EndToEndCollection.Name)]
[Trait("Category", "EndToEnd")]
public sealed class DeterministicTests(ITestOutputHelper output)
{
    public static TheoryData<string> NatdRows => GatewayKinds.Rows(["natd", "natd-w1"]);

    /// <summary>Eight sockets of one inside host each learn their external endpoint.</summary>
    private const string Clients = """
        import socket, sys
        for i in range(8):
            c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); c.bind((sys.argv[1], 0)); c.settimeout(2)
            for attempt in range(4):
                c.sendto(b"who", ("198.51.100.2", 7402))
                try:
                    print("external %s" % c.recvfrom(2048)[0].decode(), flush=True); break
                except socket.timeout:
                    pass
        """;

    [RootTheory]
    [MemberData(nameof(NatdRows))]
    public void Udp_flows_leave_inside_the_range_natd_lookup_names(string kind)
    {
        var gateway = new NatdGateway
        {
            ExtraConfig = kind == "natd" ? "dataplane: { workers: 2 }\n" : "dataplane: { workers: 1 }\n",
            NatConfig = ", allocation: deterministic, deterministic: { inside: [10.0.0.0/24] }",
        };
        using var scenario = Scenario.Start(gateway, output);
        var lab = scenario.Lab;
        lab.AddInsideHostAddress("10.0.0.77/24");
        string dotnet = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host ? host : "dotnet";
        string natd = Path.Combine(AppContext.BaseDirectory, "natd.dll");
        string natctl = Path.Combine(AppContext.BaseDirectory, "natctl.dll");
        using var reflector = StartUdpReflector(lab, 7402);
        foreach (string inside in new[] { "10.0.0.2", "10.0.0.77" })
        {
            // Offline, from the file alone: no daemon is asked.
            var lookup = Sh.TryRun(TimeSpan.FromSeconds(30), dotnet, natd, "lookup", "--config", gateway.ConfigPath!, "--inside", inside);
            output.WriteLine(lookup.Combined);
            Assert.Equal(0, lookup.ExitCode);
            var m = Regex.Match(lookup.StdOut, $@"^{Regex.Escape(inside)} (\d+\.\d+\.\d+\.\d+):(\d+)-(\d+)\n$");
            Assert.True(m.Success, lookup.Combined);
            string external = m.Groups[1].Value;
            int low = int.Parse(m.Groups[2].Value, System.Globalization.CultureInfo.InvariantCulture);
            int high = int.Parse(m.Groups[3].Value, System.Globalization.CultureInfo.InvariantCulture);
            Assert.Equal(251, high - low); // 256 subscribers on one address: 252 ports each

            var r = lab.TryRunIn(lab.InsideNs, TimeSpan.FromSeconds(60), "python3", "-u", Script(lab, "det_clients.py", Clients), inside);
            output.WriteLine(r.Combined);
            var seen = Regex.Matches(r.StdOut, @"external (\d+\.\d+\.\d+\.\d+):(\d+)");
            Assert.Equal(8, seen.Count);
            foreach (Match s in seen)
            {
                Assert.Equal(external, s.Groups[1].Value);
                Assert.InRange(int.Parse(s.Groups[2].Value, System.Globalization.CultureInfo.InvariantCulture), low, high);
            }

            // The running daemon answers the reverse question the same way.
            string first = $"{external}:{seen[0].Groups[2].Value}";
            var back = lab.TryRunIn(lab.GatewayNs, TimeSpan.FromSeconds(30), dotnet, natctl, "lookup", "--external", first);
            output.WriteLine(back.Combined);
            Assert.Equal(0, back.ExitCode);
            Assert.Equal(lookup.StdOut, back.StdOut);
        }
        scenario.Pass();
    }
}
