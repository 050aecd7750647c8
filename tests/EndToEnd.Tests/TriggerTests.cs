using System.Text.Json;
using System.Text.RegularExpressions;
using Natd.Control.Lab;
using Xunit.Abstractions;

namespace Natd.Tests.EndToEnd;

/// <summary>
/// Port triggers through the real daemon, as ipautofw did them, with the shipped "realaudio" preset
/// (TCP 7070 out opens UDP 6970-7170 back): the range is closed until the inside host connects to
/// port 7070, then open to any outside address on the same ports of the inside host, and closed
/// to new flows again once the triggering session is gone from the table. Real sockets on both
/// sides (Scripts/trigger_lab.py).
/// </summary>
[Collection(EndToEndCollection.Name)]
[Trait("Category", "EndToEnd")]
public sealed partial class TriggerTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Step = TimeSpan.FromSeconds(20);

    private static string Script => Path.Combine(AppContext.BaseDirectory, "Scripts", "trigger_lab.py");

    /// <summary>natd with two pollers ("natd") or one ("natd-w1"), and the realaudio trigger.</summary>
    public static NatdGateway Create(string kind) => kind switch
    {
        "natd" => new NatdGateway { ExtraConfig = "dataplane: { workers: 2 }\ntriggers:\n  - preset: realaudio\n" },
        "natd-w1" => new NatdGateway { ExtraConfig = "dataplane: { workers: 1 }\ntriggers:\n  - preset: realaudio\n" },
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "expected natd or natd-w1"),
    };

    [RootTheory]
    [InlineData("natd")]
    [InlineData("natd-w1")]
    public void Realaudio_trigger_opens_the_udp_range_to_the_inside_host_while_the_trigger_session_lives(string kind)
    {
        using var scenario = Scenario.Start(Create(kind), output);
        var lab = scenario.Lab;
        string inside = lab.InsideHost.ToString(), outside = lab.OutsideHost.ToString(), external = lab.GatewayOutside.ToString();
        var second = lab.AddOutsideHostAddress("198.51.100.3/24").ToString();

        using var echo = lab.StartIn(lab.InsideNs, "/usr/bin/python3", Script, "udp-echo", "--bind", inside, "--ports", "6970,7100,7150", "--lifetime", "90");
        Assert.NotNull(echo.WaitForLine(l => l == "ready", Step));
        using var server = lab.StartIn(lab.OutsideNs, "/usr/bin/python3", Script, "tcp-server", "--port", "7070", "--lifetime", "90");
        Assert.NotNull(server.WaitForLine(l => l == "ready", Step));

        // Before the trigger: the range is reserved, not open; nothing reaches the inside host.
        Assert.Equal((0, 0), Send(lab, outside, external, 6970, "before"));
        Assert.DoesNotContain(echo.StdOutLines, l => l.Contains(" before ", StringComparison.Ordinal));

        // The inside host connects to TCP 7070 and holds the connection: the trigger is active.
        var until = Path.Combine(lab.WorkDirectory, "trigger-release");
        using var hold = lab.StartIn(lab.InsideNs, "/usr/bin/python3", Script, "tcp-hold", "--dst", outside, "--port", "7070", "--until", until, "--lifetime", "90");
        var connected = hold.WaitForLine(l => l.StartsWith("connected from ", StringComparison.Ordinal), Step);
        Assert.NotNull(connected);
        int triggerPort = int.Parse(connected.Split(':')[1], System.Globalization.CultureInfo.InvariantCulture);
        Assert.NotNull(server.WaitForLine(l => l.StartsWith($"accepted from {external}:", StringComparison.Ordinal), Step));

        // Any outside address may now send to the open range, on the inside host's same ports; its
        // answers leave from the external address and the same port.
        Assert.Equal((3, 0), Send(lab, outside, external, 6970, "first"));
        Assert.Equal((3, 0), Send(lab, second, external, 6970, "second"));
        Assert.Equal((3, 0), Send(lab, outside, external, 7100, "third"));
        Assert.NotNull(echo.WaitForLine(l => l.StartsWith($"got 6970 from {outside}:", StringComparison.Ordinal) && l.EndsWith(" first 1", StringComparison.Ordinal), Step));
        Assert.NotNull(echo.WaitForLine(l => l.StartsWith($"got 6970 from {second}:", StringComparison.Ordinal) && l.EndsWith(" second 1", StringComparison.Ordinal), Step));
        Assert.NotNull(echo.WaitForLine(l => l.StartsWith($"got 7100 from {outside}:", StringComparison.Ordinal) && l.EndsWith(" third 1", StringComparison.Ordinal), Step));

        // natctl's source lists the opened sessions as related to the trigger connection.
        string trigger = $"trigger tcp {inside}:{triggerPort} -> {outside}:7070";
        var rows = Sessions(lab);
        var control = Assert.Single(rows, r => r.GetProperty("protocol").GetString() == "tcp" && r.GetProperty("remotePort").GetInt32() == 7070);
        Assert.Equal(triggerPort, control.GetProperty("insidePort").GetInt32());
        var opened = rows.Where(r => r.GetProperty("protocol").GetString() == "udp").ToList();
        Assert.Equal(3, opened.Count);
        Assert.All(opened, r => Assert.Equal(trigger, r.GetProperty("relatedTo").GetString()));
        Assert.All(opened, r => Assert.Equal(r.GetProperty("insidePort").GetInt32(), r.GetProperty("externalPort").GetInt32()));
        Assert.Equal(
            [$"{outside}:6970", $"{outside}:7100", $"{second}:6970"],
            opened.Select(r => $"{r.GetProperty("remoteAddress").GetString()}:{r.GetProperty("insidePort").GetInt32()}").Order(StringComparer.Ordinal).ToArray());

        // The inside host resets the connection; the engine closes the range when the triggering
        // session leaves the table (a reset session lingers as transitory), so it is deleted.
        File.WriteAllText(until, "");
        Assert.NotNull(hold.WaitForLine(l => l == "reset", Step));
        Assert.NotNull(server.WaitForLine(l => l.StartsWith($"closed {external}:", StringComparison.Ordinal), Step));
        var deleted = lab.RunIn(lab.GatewayNs, "curl", "-s", "-X", "POST", "--data",
            $$"""{"protocol": "tcp", "inside": "{{inside}}:{{triggerPort}}"}""", "http://127.0.0.1:9180/sessions/delete").StdOut;
        output.WriteLine("POST /sessions/delete: " + deleted);
        using (var doc = JsonDocument.Parse(deleted))
        {
            Assert.Equal(1, doc.RootElement.GetProperty("deleted").GetInt64());
        }

        // A new flow into the range is no longer delivered.
        Assert.Equal((0, 0), Send(lab, outside, external, 7150, "after"));
        Assert.DoesNotContain(echo.StdOutLines, l => l.Contains(" after ", StringComparison.Ordinal));
        Assert.DoesNotContain(Sessions(lab), r => r.GetProperty("protocol").GetString() == "udp" && r.GetProperty("insidePort").GetInt32() == 7150);
        scenario.Pass();
    }

    /// <summary>
    /// Port blocks over two external addresses with the realaudio trigger: each host's UDP pairs its
    /// subscriber in the shard that owns it, and its trigger connection (TCP 7070, which shard 0
    /// carries with two workers) leaves from that same address (RFC 4787 REQ-2). Before shard 0
    /// read the owner's pairing it paired the subscriber again by its own least-loaded choice, and
    /// the two-worker row failed about every other run (each engine's tie-break start is random);
    /// <c>PairingAcrossShardsTests</c> holds the deterministic version. Blocks of 64 ports: the
    /// trigger's UDP range reserves whole blocks, which a subscriber's UDP must not be given.
    /// </summary>
    [RootTheory]
    [InlineData("natd")]
    [InlineData("natd-w1")]
    public void With_port_blocks_a_trigger_connection_leaves_from_the_address_the_hosts_udp_left_from(string kind)
    {
        var gateway = new NatdGateway
        {
            ExtraConfig = Create(kind).ExtraConfig,
            Pool = "198.51.100.1, 198.51.100.7",
            NatConfig = ", allocation: port-block, port-block: { size: 64 }",
        };
        using var scenario = Scenario.Start(gateway, output);
        var lab = scenario.Lab;
        string outside = lab.OutsideHost.ToString();
        string[] hosts = ["10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.200", "10.0.0.201", "10.0.0.202", "10.0.0.203"];
        foreach (string host in hosts.Where(h => h != lab.InsideHost.ToString()))
        {
            lab.AddInsideHostAddress(host + "/24");
        }
        using var echo = lab.StartIn(lab.OutsideNs, "/usr/bin/python3", Script, "udp-echo", "--ports", "6000", "--lifetime", "90");
        Assert.NotNull(echo.WaitForLine(l => l == "ready", Step));
        using var server = lab.StartIn(lab.OutsideNs, "/usr/bin/python3", Script, "tcp-server", "--port", "7070", "--lifetime", "90");
        Assert.NotNull(server.WaitForLine(l => l == "ready", Step));
        var until = Path.Combine(lab.WorkDirectory, "trigger-release");
        var holds = new List<LabProcess>();
        try
        {
            var paired = new Dictionary<string, string>();
            for (int i = 0; i < hosts.Length; i++)
            {
                var r = lab.TryRunIn(lab.InsideNs, Step, "/usr/bin/python3", Script, "udp-send",
                    "--src", hosts[i], "--dst", outside, "--port", "6000", "--tag", $"H{i}", "--count", "1", "--wait", "2");
                Assert.Equal(0, r.ExitCode);
                Assert.Contains($"udp tag=H{i} replies=1 wrong=0", r.StdOut, StringComparison.Ordinal);
                string? got = echo.WaitForLine(l => l.StartsWith("got 6000 from ", StringComparison.Ordinal) && l.EndsWith($" H{i} 1", StringComparison.Ordinal), Step);
                Assert.NotNull(got);
                paired[hosts[i]] = got["got 6000 from ".Length..got.IndexOf(':', StringComparison.Ordinal)];
                output.WriteLine($"{hosts[i]} paired with {paired[hosts[i]]}");
            }
            Assert.Equal(2, paired.Values.Distinct().Count()); // least-loaded pairing spread them over both addresses
            for (int i = 0; i < hosts.Length; i++)
            {
                // One connection at a time, so the server's next "accepted" line is this host's.
                int before = server.StdOutLines.Count(l => l.StartsWith("accepted from ", StringComparison.Ordinal));
                var hold = lab.StartIn(lab.InsideNs, "/usr/bin/python3", Script, "tcp-hold", "--src", hosts[i], "--dst", outside, "--port", "7070", "--until", until, "--lifetime", "90");
                holds.Add(hold);
                Assert.NotNull(hold.WaitForLine(l => l.StartsWith($"connected from {hosts[i]}:", StringComparison.Ordinal), Step));
                var deadline = DateTime.UtcNow + Step;
                List<string> accepts;
                while ((accepts = server.StdOutLines.Where(l => l.StartsWith("accepted from ", StringComparison.Ordinal)).ToList()).Count <= before && DateTime.UtcNow < deadline)
                {
                    Thread.Sleep(20);
                }
                Assert.True(accepts.Count == before + 1, $"{accepts.Count - before} connections accepted for {hosts[i]}'s one");
                string accepted = accepts[before];
                output.WriteLine($"{hosts[i]}: {accepted}");
                Assert.StartsWith($"accepted from {paired[hosts[i]]}:", accepted, StringComparison.Ordinal);
            }
        }
        finally
        {
            File.WriteAllText(until, "");
            foreach (var h in holds)
            {
                h.Dispose();
            }
        }
        scenario.Pass();
    }

    /// <summary>Runs udp-send from <paramref name="src"/> (3 datagrams, 0.5 s each); returns (replies, wrong).</summary>
    private (int Replies, int Wrong) Send(LabTopology lab, string src, string dst, int port, string tag)
    {
        var r = lab.TryRunIn(lab.OutsideNs, Step, "/usr/bin/python3", Script, "udp-send",
            "--src", src, "--dst", dst, "--port", port.ToString(System.Globalization.CultureInfo.InvariantCulture), "--tag", tag);
        output.WriteLine($"udp-send {tag} from {src} to {dst}:{port}: exit {r.ExitCode}\n{r.Combined}");
        Assert.Equal(0, r.ExitCode);
        var m = ResultLine().Match(r.StdOut);
        Assert.True(m.Success, r.Combined);
        return (int.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture),
            int.Parse(m.Groups[2].Value, System.Globalization.CultureInfo.InvariantCulture));
    }

    private List<JsonElement> Sessions(LabTopology lab)
    {
        var text = lab.RunIn(lab.GatewayNs, "curl", "-s", "http://127.0.0.1:9180/sessions").StdOut;
        output.WriteLine("GET /sessions: " + text);
        using var doc = JsonDocument.Parse(text);
        return doc.RootElement.EnumerateArray().Select(e => e.Clone()).ToList();
    }

    [GeneratedRegex(@"udp tag=\S+ replies=(\d+) wrong=(\d+)")]
    private static partial Regex ResultLine();
}
