using Microsoft.Extensions.Logging.Abstractions;
using Natd.Control.Config;
using Natd.Control.Daemon;
using Natd.Dataplane.Nat;
using Natd.Dataplane.Packets;
using Natd.Tests.Support;
using static Natd.Tests.Support.Frames;

namespace Natd.Tests.Daemon;

/// <summary>The daemon's actor tree over test ports: config reload through the ConfigActor, stats through the query.</summary>
public class NatDaemonTests
{
    [Fact]
    public async Task Reload_applies_a_good_file_and_keeps_running_config_on_a_bad_one()
    {
        var dir = Directory.CreateTempSubdirectory("natd-reload-");
        try
        {
            string path = Path.Combine(dir.FullName, "natd.yaml");
            File.WriteAllText(path, "timeouts: { udp: 300 }\n");
            var config = ConfigLoader.LoadFile(path);
            var inside = new ConcurrentPort("in", new MacAddress(0x020000000001));
            var outside = new ConcurrentPort("out", new MacAddress(0x020000000002));
            await using var d = await NatDaemon.StartAsync(config, inside, outside, NullLoggerFactory.Instance, startControl: false, CancellationToken.None);

            File.WriteAllText(path, "timeouts: { udp: 600 }\n");
            var ok = await d.ReloadAsync();
            Assert.True(ok.Ok, string.Join("; ", ok.Messages));
            Assert.Equal(600, d.Engine.Settings.Timeouts.Udp);

            File.WriteAllText(path, "timeouts:\n  udp: 900\n  bogus: 1\n");
            var bad = await d.ReloadAsync();
            Assert.False(bad.Ok);
            Assert.Contains(bad.Messages, m => m.Contains("natd.yaml:3:", StringComparison.Ordinal) && m.Contains("bogus", StringComparison.Ordinal));
            Assert.Equal(600, d.Engine.Settings.Timeouts.Udp);

            File.WriteAllText(path, "limits: { sessions: 1000 }\n");
            var refused = await d.ReloadAsync();
            Assert.False(refused.Ok);
            Assert.Contains(refused.Messages, m => m.Contains("restart", StringComparison.Ordinal));

            var stats = await d.Query.GetStatsAsync();
            Assert.Equal(DropReasons.Count, stats.Drops.Count);
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    [Fact]
    public async Task A_reload_with_a_20000_deep_file_is_refused_and_natd_keeps_forwarding()
    {
        var dir = Directory.CreateTempSubdirectory("natd-reload-");
        try
        {
            string path = Path.Combine(dir.FullName, "natd.yaml");
            File.WriteAllText(path, "timeouts: { udp: 600 }\n");
            var config = ConfigLoader.LoadFile(path);
            config = config with
            {
                Nat = config.Nat with
                {
                    Inside = config.Nat.Inside with { Neighbours = [new(Ipv4.Parse(EngineHarness.InsideHost), MacAddress.Read(InsideHostMac))] },
                    Outside = config.Nat.Outside with { Neighbours = [new(Ipv4.Parse(EngineHarness.OutsideHost), MacAddress.Read(OutsideHostMac))] },
                },
            };
            var inside = new ConcurrentPort("in", new MacAddress(0x020000000001));
            var outside = new ConcurrentPort("out", new MacAddress(0x020000000002));
            await using var d = await NatDaemon.StartAsync(config, inside, outside, NullLoggerFactory.Instance, startControl: false, CancellationToken.None);
            await AssertForwarded(inside, outside, 40000);

            // Before the depth limit this overflowed the stack on the ConfigActor's thread: exit 134.
            File.WriteAllText(path, "nat: {pool: " + new string('[', 20000) + new string(']', 20000) + "}\n");
            var deep = await d.ReloadAsync();
            Assert.False(deep.Ok);
            string message = Assert.Single(deep.Messages);
            Assert.Contains("natd.yaml:1:75: nat.pool[0][0]", message, StringComparison.Ordinal);
            Assert.Contains("nested more than 64 deep", message, StringComparison.Ordinal);
            Assert.Equal(600, d.Engine.Settings.Timeouts.Udp);
            await AssertForwarded(inside, outside, 40001);

            File.WriteAllText(path, "timeouts: { udp: 900 }\n");
            var ok = await d.ReloadAsync();
            Assert.True(ok.Ok, string.Join("; ", ok.Messages));
            Assert.Equal(900, d.Engine.Settings.Timeouts.Udp);
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    /// <summary>A new UDP flow from inside leaves on the outside port, from the external address, within 10 s.</summary>
    private static async Task AssertForwarded(ConcurrentPort inside, ConcurrentPort outside, int sourcePort)
    {
        inside.Inject(Udp(EngineHarness.InsideHost, sourcePort, EngineHarness.OutsideHost, 53));
        var deadline = DateTime.UtcNow.AddSeconds(10);
        byte[]? frame;
        while (!outside.TryTake(out frame))
        {
            Assert.True(DateTime.UtcNow < deadline, $"nothing left the outside port for inside port {sourcePort}");
            await Task.Delay(20);
        }
        Assert.Equal(Ip(EngineHarness.External), frame[26..30]); // IPv4 source after a 14-byte Ethernet header
    }
}
