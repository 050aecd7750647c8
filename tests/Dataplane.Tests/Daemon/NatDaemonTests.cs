using Akka.Actor;
using Microsoft.Extensions.Logging.Abstractions;
using Natd.Control.Config;
using Natd.Control.Daemon;
using Natd.Dataplane.Nat;
using Natd.Dataplane.Packets;
using Natd.Dataplane.Workers;
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

            // A setting read only at start: the reload applies the rest and says when it takes effect.
            File.WriteAllText(path, "timeouts: { udp: 600 }\ndataplane: { xdp-fill-ring: 4096 }\n");
            var later = await d.ReloadAsync();
            Assert.True(later.Ok, string.Join("; ", later.Messages));
            Assert.Contains(later.Messages, m => m.Contains("dataplane.xdp-fill-ring", StringComparison.Ordinal) && m.Contains("next restart", StringComparison.Ordinal));
            var running = await d.ConfigActor.Ask<NatdConfig>(ConfigActor.GetConfig.Instance, TimeSpan.FromSeconds(10));
            Assert.Null(running.XdpFillRing); // the sockets keep the depth they were opened with

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
            var config = WithHostNeighbours(ConfigLoader.LoadFile(path));
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

    /// <summary>The configuration with the test hosts as static neighbours, so frames go out without ARP.</summary>
    private static NatdConfig WithHostNeighbours(NatdConfig config) => config with
    {
        Nat = config.Nat with
        {
            Inside = config.Nat.Inside with { Neighbours = [new(Ipv4.Parse(EngineHarness.InsideHost), MacAddress.Read(InsideHostMac))] },
            Outside = config.Nat.Outside with { Neighbours = [new(Ipv4.Parse(EngineHarness.OutsideHost), MacAddress.Read(OutsideHostMac))] },
        },
    };

    [Fact]
    public async Task A_poller_that_keeps_failing_faults_the_daemon_and_a_normal_stop_does_not()
    {
        var config = WithHostNeighbours(ConfigLoader.Parse("timeouts: { udp: 300 }\n", "natd.yaml"));
        var inside = new ConcurrentPort("in", new MacAddress(0x020000000001));
        var outside = new ConcurrentPort("out", new MacAddress(0x020000000002));
        var healthy = await NatDaemon.StartAsync(config, inside, outside, NullLoggerFactory.Instance, startControl: false, CancellationToken.None);
        await AssertForwarded(inside, outside, 40000);
        await healthy.DisposeAsync();
        await Task.Delay(200);
        Assert.False(healthy.Faulted.IsCompleted); // the pollers' ends on a requested stop are no fault

        var broken = new ThrowingPort("in", new MacAddress(0x020000000001));
        await using var d = await NatDaemon.StartAsync(config, broken, new ConcurrentPort("out", new MacAddress(0x020000000002)),
            NullLoggerFactory.Instance, startControl: false, CancellationToken.None);
        var done = await Task.WhenAny(d.Faulted, Task.Delay(TimeSpan.FromSeconds(20)));
        Assert.Same(d.Faulted, done);
        Assert.Equal($"poller-0 stopped after {PollerSupervision.MaxRestarts} restarts within 60 s (the errors above say why); natd cannot run without it, so it stops",
            await d.Faulted);
        Assert.Equal(PollerSupervision.MaxRestarts + 1, broken.Receives);
    }

    /// <summary>A port whose every receive throws (a ring that broke for good).</summary>
    private sealed class ThrowingPort(string name, MacAddress mac) : Natd.Dataplane.Io.IPacketPort
    {
        private int _receives;

        public int Receives => Volatile.Read(ref _receives);
        public string Name { get; } = name;
        public MacAddress Mac { get; } = mac;
        public int PollDescriptor => -1;
        public Natd.Dataplane.Io.PortStats Stats => default;

        public int Receive(Natd.Dataplane.Io.FrameBatch batch)
        {
            Interlocked.Increment(ref _receives);
            throw new IOException("ring broke for good");
        }

        public bool TrySend(ReadOnlySpan<byte> f) => true;

        public void Flush()
        {
        }

        public void Dispose()
        {
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
