using System.Text.Json;
using Microsoft.Extensions.Logging.Abstractions;
using Natd.Control.Config;
using Natd.Control.Daemon;
using Natd.Dataplane.Packets;
using Natd.Tests.Support;
using static Natd.Tests.Support.Frames;

namespace Natd.Tests.Logging;

public class DaemonEventLogTests
{
    [Fact]
    public async Task The_daemon_logs_a_session_created_by_its_poller_and_drains_on_stop()
    {
        var dir = Directory.CreateTempSubdirectory("natd-evlog-");
        try
        {
            string file = Path.Combine(dir.FullName, "events.jsonl");
            var config = ConfigLoader.Parse($"log:\n  events:\n    queue: 128\n    file: {{ path: '{file}' }}\n", "t.yaml");
            config = config with
            {
                Nat = config.Nat with
                {
                    Inside = config.Nat.Inside with { Neighbours = [new(Ipv4.Parse(EngineHarness.InsideHost), MacAddress.Read(InsideHostMac))] },
                    Outside = config.Nat.Outside with { Neighbours = [new(Ipv4.Parse("198.51.100.254"), MacAddress.Read(EngineHarness.RouterMac))] },
                },
            };
            var inside = new ConcurrentPort("in", new MacAddress(0x020000000001));
            var outside = new ConcurrentPort("out", new MacAddress(0x020000000002));
            var d = await NatDaemon.StartAsync(config, inside, outside, NullLoggerFactory.Instance, startControl: false, CancellationToken.None);
            try
            {
                Assert.NotNull(d.Engine.Table.Events); // attached before the poller started
                inside.Inject(Udp(EngineHarness.InsideHost, 40000, EngineHarness.OutsideHost, 53));
                var deadline = DateTime.UtcNow.AddSeconds(10);
                while (Volatile.Read(ref d.EventLogStats.FileWritten) < 1 && DateTime.UtcNow < deadline)
                {
                    await Task.Delay(50);
                }
                Assert.Equal(1, Volatile.Read(ref d.EventLogStats.FileWritten));
            }
            finally
            {
                await d.DisposeAsync();
            }
            string line = Assert.Single(File.ReadAllLines(file));
            using var doc = JsonDocument.Parse(line);
            Assert.Equal("session-create", doc.RootElement.GetProperty("event").GetString());
            Assert.Equal("10.0.0.2:40000", doc.RootElement.GetProperty("inside").GetString());
            var when = doc.RootElement.GetProperty("time").GetDateTime().ToUniversalTime();
            Assert.InRange(when, DateTime.UtcNow.AddMinutes(-1), DateTime.UtcNow.AddSeconds(1)); // wall clock from the tick offset
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }
}
