using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using Microsoft.Extensions.Logging.Abstractions;
using Natd.Control.Logging;
using Natd.Control.Config;
using Natd.Control.Daemon;
using Natd.Dataplane.Packets;
using Natd.Dataplane.Sessions;
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

    [Fact]
    public async Task A_subscriber_quota_record_exports_the_limit_in_force_after_a_reload()
    {
        using var collector = new UdpClient(new IPEndPoint(IPAddress.Loopback, 0));
        int port = ((IPEndPoint)collector.Client.LocalEndPoint!).Port;
        var dir = Directory.CreateTempSubdirectory("natd-evlog-");
        try
        {
            string path = Path.Combine(dir.FullName, "natd.yaml");
            string File(int sessions) =>
                $"limits:\n  per-subscriber: {{ sessions: {sessions} }}\nlog:\n  events:\n    ipfix: {{ collector: 127.0.0.1:{port} }}\n";
            System.IO.File.WriteAllText(path, File(100));
            var config = ConfigLoader.LoadFile(path);
            var inside = new ConcurrentPort("in", new MacAddress(0x020000000001));
            var outside = new ConcurrentPort("out", new MacAddress(0x020000000002));
            var d = await NatDaemon.StartAsync(config, inside, outside, NullLoggerFactory.Instance, startControl: false, CancellationToken.None);
            try
            {
                // No traffic reaches the poller, so this thread is the ring's only producer.
                var ring = d.Engine.Table.Events!;
                var hit = new NatEvent { Type = NatEventType.SubscriberLimit, InsideAddress = Ipv4.Parse("10.0.0.2"), Detail = (byte)NatLimitKind.Sessions };
                Assert.True(ring.TryEnqueue(hit));
                await WaitForRecords(d, 1);
                System.IO.File.WriteAllText(path, File(200));
                var ok = await d.ReloadAsync();
                Assert.True(ok.Ok, string.Join("; ", ok.Messages));
                Assert.True(ring.TryEnqueue(hit));
                await WaitForRecords(d, 2);
            }
            finally
            {
                await d.DisposeAsync();
            }
            var datagrams = LoggingTestSupport.ReceiveAll(collector, TimeSpan.FromMilliseconds(300));
            string pcap = Path.Combine(dir.FullName, "quota.pcap");
            LoggingTestSupport.WritePcap(pcap, datagrams, 4739);
            using var doc = JsonDocument.Parse(LoggingTestSupport.Tshark("-r", pcap, "-d", "udp.port==4739,cflow", "-T", "json"));
            var flows = IpfixTests.DecodedFlows(doc.RootElement, out _);
            Assert.Equal(["100", "200"], flows.Select(f => f["cflow.max_entries_per_user"]));
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    private static async Task WaitForRecords(NatDaemon d, long records)
    {
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (Volatile.Read(ref d.EventLogStats.IpfixWritten) < records && DateTime.UtcNow < deadline)
        {
            await Task.Delay(50);
        }
        Assert.Equal(records, Volatile.Read(ref d.EventLogStats.IpfixWritten));
    }
}
