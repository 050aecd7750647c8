using System.Collections.Concurrent;
using Microsoft.Extensions.Logging.Abstractions;
using Natd.Control.Config;
using Natd.Control.Daemon;
using Akka.Actor;
using Akka.TestKit.Xunit2;
using Natd.Dataplane.Workers;
using Natd.Tests.Support;

namespace Natd.Tests.Daemon;

/// <summary>
/// A reload reaches every shard in two phases: all check, then all apply. A refusal that depends on
/// one shard's live state (its port blocks) must leave every shard on the running configuration.
/// </summary>
public class ConfigActorPhasesTests : TestKit
{
    private static readonly TimeSpan Limit = TimeSpan.FromSeconds(10);

    /// <summary>A poller stand-in: records what it was asked, refuses when told to, as an engine would on check and on apply alike.</summary>
    private sealed class FakePoller(string? refusal, ConcurrentQueue<string> seen) : UntypedActor
    {
        protected override void OnReceive(object message)
        {
            switch (message)
            {
                case CheckSettings c:
                    seen.Enqueue("check");
                    Sender.Tell(new ApplyResult(refusal is null, refusal, c.Id));
                    break;
                case ApplySettings a:
                    seen.Enqueue("apply");
                    Sender.Tell(new ApplyResult(refusal is null, refusal, a.Id));
                    break;
                default:
                    Unhandled(message);
                    break;
            }
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task No_shard_applies_a_reload_another_shard_refuses(bool refuse)
    {
        var dir = Directory.CreateTempSubdirectory("natd-phases-");
        try
        {
            string path = Path.Combine(dir.FullName, "natd.yaml");
            File.WriteAllText(path, "nat: { allocation: port-block }\n");
            var config = ConfigLoader.LoadFile(path);
            var view = new EngineHarness().Engine.ReadView;
            var seen0 = new ConcurrentQueue<string>();
            var seen1 = new ConcurrentQueue<string>();
            const string Why = "nat.allocation: cannot change port-block to dynamic while shard 0 holds 1 port block(s)";
            var p0 = Sys.ActorOf(FactoryProps.Of(() => new FakePoller(refuse ? Why : null, seen0)), "p0");
            var p1 = Sys.ActorOf(FactoryProps.Of(() => new FakePoller(null, seen1)), "p1");
            var handles = new[] { new PollerHandle(p0, view, new PollerStats()), new PollerHandle(p1, view, new PollerStats()) };
            var config1 = Sys.ActorOf(FactoryProps.Of(() => new ConfigActor(config, handles, NullLogger.Instance, null, null)), "config");

            File.WriteAllText(path, "nat: { allocation: dynamic }\n");
            var r = await config1.Ask<ConfigActor.ReloadResult>(new ConfigActor.Reload(path), Limit);

            Assert.Equal(!refuse, r.Ok);
            if (refuse)
            {
                Assert.Equal([Why], r.Messages);
                Assert.Equal(["check"], seen1); // never told to apply what shard 0 refused
                Assert.Equal(["check"], seen0);
                var running = await config1.Ask<NatdConfig>(ConfigActor.GetConfig.Instance, Limit);
                Assert.Equal(Natd.Dataplane.Nat.PortAllocation.PortBlock, running.Nat.Cgnat.Allocation);
            }
            else
            {
                Assert.Equal(["check", "apply"], seen0);
                Assert.Equal(["check", "apply"], seen1);
            }
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    /// <summary>
    /// A poller that never answers (dead: its messages go to dead letters) fails the reload with its
    /// name after the answer timeout, leaves the running configuration in force, and does not hold
    /// the reloads that follow ("a reload is already in progress" forever, before the timeout existed).
    /// </summary>
    [Fact]
    public async Task A_reload_waiting_on_a_dead_poller_times_out_with_its_name_and_later_reloads_still_work()
    {
        var dir = Directory.CreateTempSubdirectory("natd-dead-");
        try
        {
            string path = Path.Combine(dir.FullName, "natd.yaml");
            File.WriteAllText(path, "timeouts: { udp: 300 }\n");
            var config = ConfigLoader.LoadFile(path);
            var view = new EngineHarness().Engine.ReadView;
            var seen0 = new ConcurrentQueue<string>();
            var p0 = Sys.ActorOf(FactoryProps.Of(() => new FakePoller(null, seen0)), "poller-0");
            var p1 = Sys.ActorOf(FactoryProps.Of(() => new FakePoller(null, new ConcurrentQueue<string>())), "poller-1");
            var handles = new[] { new PollerHandle(p0, view, new PollerStats()), new PollerHandle(p1, view, new PollerStats()) };
            var timeout = TimeSpan.FromMilliseconds(500);
            var configActor = Sys.ActorOf(FactoryProps.Of(() => new ConfigActor(config, handles, NullLogger.Instance, null, timeout)), "config");
            Watch(p1);
            Sys.Stop(p1);
            ExpectTerminated(p1);

            File.WriteAllText(path, "timeouts: { udp: 600 }\n");
            var first = await configActor.Ask<ConfigActor.ReloadResult>(new ConfigActor.Reload(path), Limit);
            Assert.False(first.Ok);
            string error = Assert.Single(first.Messages);
            Assert.StartsWith("poller-1 did not answer within 0.5 s", error, StringComparison.Ordinal);
            Assert.Contains("running configuration stays", error, StringComparison.Ordinal);
            Assert.Equal(["check"], seen0); // nothing applied anywhere
            var running = await configActor.Ask<NatdConfig>(ConfigActor.GetConfig.Instance, Limit);
            Assert.Equal(300, running.Nat.Timeouts.Udp);

            // The next reload is not refused as "already in progress": it runs, and fails the same clear way.
            var second = await configActor.Ask<ConfigActor.ReloadResult>(new ConfigActor.Reload(path), Limit);
            Assert.False(second.Ok);
            Assert.StartsWith("poller-1 did not answer within 0.5 s", Assert.Single(second.Messages), StringComparison.Ordinal);
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }
}
