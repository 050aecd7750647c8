using Microsoft.Extensions.Logging.Abstractions;
using Natd.Control.Config;
using Natd.Control.Daemon;
using Natd.Dataplane.Nat;
using Natd.Dataplane.Packets;
using Natd.Tests.Support;

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
}
