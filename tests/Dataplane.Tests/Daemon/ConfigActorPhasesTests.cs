using System.Collections.Concurrent;
using Microsoft.Extensions.Logging.Abstractions;
using Natd.Control.Config;
using Natd.Control.Daemon;
using Natd.Dataplane.Actors;
using Natd.Dataplane.Workers;
using Natd.Tests.Support;

namespace Natd.Tests.Daemon;

/// <summary>
/// A reload reaches every shard in two phases: all check, then all apply. A refusal that depends on
/// one shard's live state (its port blocks) must leave every shard on the running configuration.
/// </summary>
public class ConfigActorPhasesTests
{
    private static readonly TimeSpan Limit = TimeSpan.FromSeconds(10);

    /// <summary>A poller stand-in: records what it was asked, refuses when told to, as an engine would on check and on apply alike.</summary>
    private sealed class FakePoller(string? refusal, ConcurrentQueue<string> seen) : ActorBase
    {
        protected override void OnReceive(object message)
        {
            switch (message)
            {
                case CheckSettings:
                    seen.Enqueue("check");
                    Sender.Tell(new ApplyResult(refusal is null, refusal));
                    break;
                case ApplySettings:
                    seen.Enqueue("apply");
                    Sender.Tell(new ApplyResult(refusal is null, refusal));
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
            await using var system = ActorSystem.Create("t");
            var view = new EngineHarness().Engine.ReadView;
            var seen0 = new ConcurrentQueue<string>();
            var seen1 = new ConcurrentQueue<string>();
            const string Why = "nat.allocation: cannot change port-block to dynamic while shard 0 holds 1 port block(s)";
            var p0 = system.ActorOf(Props.Create(() => new FakePoller(refuse ? Why : null, seen0)), "p0");
            var p1 = system.ActorOf(Props.Create(() => new FakePoller(null, seen1)), "p1");
            var handles = new[] { new PollerHandle(p0, view, new PollerStats()), new PollerHandle(p1, view, new PollerStats()) };
            var config1 = system.ActorOf(Props.Create(() => new ConfigActor(config, handles, NullLogger.Instance, null)), "config");

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
}
