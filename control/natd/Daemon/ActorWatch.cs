using Akka.Actor;
using Natd.Dataplane.Workers;

namespace Natd.Control.Daemon;

/// <summary>
/// Watches the actors the daemon cannot run without (the pollers, the config actor, the sweeper,
/// the event logger): one that stops while the daemon runs (past
/// <see cref="PollerSupervision.MaxRestarts"/> restarts in <see cref="PollerSupervision.Window"/>)
/// leaves a shard without its thread, reloads or expiry undone, or NAT events unlogged, so the
/// daemon must stop rather than run on half blind.
/// Completes <see cref="NatDaemon.Faulted"/> with the reason, once; a stop the daemon asked for is not a fault.
/// </summary>
internal sealed class ActorWatch : ReceiveActor
{
    /// <summary>Tells the watch that the daemon is stopping: pollers that end from now on are expected.</summary>
    public sealed class Stopping
    {
        /// <summary>The one instance.</summary>
        public static readonly Stopping Instance = new();

        private Stopping()
        {
        }
    }

    private bool _stopping;

    /// <summary>Watches <paramref name="actors"/>; <paramref name="faulted"/> receives the first unexpected stop's reason.</summary>
    public ActorWatch(IReadOnlyList<IActorRef> actors, TaskCompletionSource<string> faulted)
    {
        foreach (var p in actors)
        {
            Context.Watch(p);
        }
        Receive<Stopping>(_ =>
        {
            _stopping = true;
            Sender.Tell(Akka.Done.Instance);
        });
        Receive<Terminated>(t =>
        {
            if (!_stopping)
            {
                faulted.TrySetResult($"{t.ActorRef.Path.Name} stopped after {PollerSupervision.MaxRestarts} restarts within "
                    + $"{PollerSupervision.Window.TotalSeconds:0} s (the errors above say why); natd cannot run without it, so it stops");
            }
        });
    }
}
