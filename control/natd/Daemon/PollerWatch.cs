using Akka.Actor;
using Natd.Dataplane.Workers;

namespace Natd.Control.Daemon;

/// <summary>
/// Watches the pollers for the daemon: a poller that stops while the daemon runs (past
/// <see cref="PollerSupervision.MaxRestarts"/> restarts in <see cref="PollerSupervision.Window"/>)
/// leaves its shard without a thread, so the daemon must stop rather than run on half blind.
/// Completes <see cref="NatDaemon.Faulted"/> with the reason, once; a stop the daemon asked for is not a fault.
/// </summary>
internal sealed class PollerWatch : ReceiveActor
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

    /// <summary>Watches <paramref name="pollers"/>; <paramref name="faulted"/> receives the first unexpected stop's reason.</summary>
    public PollerWatch(IReadOnlyList<IActorRef> pollers, TaskCompletionSource<string> faulted)
    {
        foreach (var p in pollers)
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
                    + $"{PollerSupervision.Window.TotalSeconds:0} s (the errors above say why); its shard forwards nothing, so natd stops");
            }
        });
    }
}
