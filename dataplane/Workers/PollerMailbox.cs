using Akka.Actor;
using Akka.Configuration;
using Akka.Dispatch;
using Akka.Dispatch.MessageQueues;
using Natd.Dataplane.Io;

namespace Natd.Dataplane.Workers;

/// <summary>
/// The mailbox of a poller (docs/architecture.md, "Actors"): Akka's unbounded queue whose enqueue
/// also signals the poller's eventfd, the <see cref="Wakeup"/> already in its poll(2) set, so a
/// poller asleep on idle rings wakes at once for a reload, a sweep slice, a listing or an ALG
/// frame instead of at its idle timeout. Configured as <c>natd.poller-mailbox</c>
/// (<see cref="PollerActor.Hocon"/>).
/// </summary>
/// <remarks>
/// Finding the eventfd: the poller hands it to its own queue in PreStart (<see cref="PollerMessageQueue.Attach"/>),
/// so no registry by actor path is needed and a restarted poller re-attaches the same one. Messages
/// queued before that need no signal: the poller drains its mailbox before its first poll.
/// </remarks>
public sealed class PollerMailbox : MailboxType, IProducesMessageQueue<PollerMessageQueue>
{
    /// <summary>Created by Akka from the <c>natd.poller-mailbox</c> section.</summary>
    /// <param name="settings">The actor system's settings.</param>
    /// <param name="config">The mailbox section.</param>
    public PollerMailbox(Settings settings, Config config) : base(settings, config)
    {
    }

    /// <inheritdoc />
    public override IMessageQueue Create(IActorRef owner, ActorSystem system) => new PollerMessageQueue();
}

/// <summary>
/// Akka's <see cref="UnboundedMessageQueue"/>, wrapped so that each enqueue also writes the attached
/// eventfd. The poller's own end-of-batch message (<see cref="PollerActor.RunBatch"/>) is told from
/// the poller's thread, which is awake by definition, so it costs no system call.
/// </summary>
public sealed class PollerMessageQueue : IMessageQueue, IUnboundedMessageQueueSemantics
{
    private readonly UnboundedMessageQueue _queue = new();
    private Wakeup? _wake;

    /// <summary>Sets the eventfd to signal (the poller's, from its PreStart); thread-safe.</summary>
    /// <param name="wake">The poller's wakeup; it must outlive the actor (the daemon or the shard links own it).</param>
    public void Attach(Wakeup wake) => Volatile.Write(ref _wake, wake);

    /// <inheritdoc />
    public bool HasMessages => _queue.HasMessages;

    /// <inheritdoc />
    public int Count => _queue.Count;

    /// <inheritdoc />
    public void Enqueue(IActorRef receiver, Envelope envelope)
    {
        _queue.Enqueue(receiver, envelope);
        // After the enqueue: the poller drains the eventfd after poll(2) returns and only then tells
        // itself the next batch, so this message is handled before it sleeps again.
        if (!ReferenceEquals(envelope.Message, PollerActor.RunBatch.Instance))
        {
            Volatile.Read(ref _wake)?.Signal();
        }
    }

    /// <inheritdoc />
    public bool TryDequeue(out Envelope envelope) => _queue.TryDequeue(out envelope);

    /// <inheritdoc />
    public void CleanUp(IActorRef owner, IMessageQueue deadletters) => _queue.CleanUp(owner, deadletters);
}
