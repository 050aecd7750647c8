namespace Natd.Dataplane.Actors;

/// <summary>
/// Base class of all actors (Akka.NET's <c>UntypedActor</c>). The runtime calls an actor's handler
/// and hooks one at a time, so its fields need no locks. Instances are built only by a
/// <see cref="Props"/> factory inside <c>ActorOf</c> or a restart; <c>new</c> anywhere else throws.
/// </summary>
public abstract class ActorBase
{
    private readonly ActorCell _cell;

    /// <summary>Binds the instance to the cell that is creating it.</summary>
    /// <exception cref="InvalidOperationException">Constructed outside a <see cref="Props"/> factory run by the actor system.</exception>
    protected ActorBase()
    {
        _cell = ActorCell.TakeCellBeingCreated()
            ?? throw new InvalidOperationException(
                $"{GetType().Name} must be created by ActorOf from Props, not with new (one actor per factory call).");
    }

    internal ActorCell Cell => _cell;

    /// <summary>This actor's context: self, sender, parent, children.</summary>
    protected IActorContext Context => _cell;

    /// <summary>This actor's reference.</summary>
    protected IActorRef Self => _cell.Self;

    /// <summary>Sender of the current message; dead letters when there is none (e.g. inside <c>RunOnce</c>).</summary>
    protected IActorRef Sender => _cell.Sender;

    /// <summary>Handles one user message. An exception fails the actor and its supervisor decides.</summary>
    /// <param name="message">The message.</param>
    protected abstract void OnReceive(object message);

    /// <summary>Called on the actor's thread before the first message, and from the default <see cref="PostRestart"/>.</summary>
    protected virtual void PreStart() { }

    /// <summary>Called once when the actor has stopped (its children are already stopped), and from the default <see cref="PreRestart"/>.</summary>
    protected virtual void PostStop() { }

    /// <summary>
    /// Called on the failed instance before it is replaced. The default stops all children and calls
    /// <see cref="PostStop"/>; the new instance starts after those children are gone.
    /// </summary>
    /// <param name="reason">The exception that caused the restart.</param>
    /// <param name="message">The message being handled when it failed, or null (failure in a hook or <c>RunOnce</c>).</param>
    protected virtual void PreRestart(Exception reason, object? message)
    {
        foreach (IActorRef child in Context.Children)
        {
            Context.Stop(child);
        }

        PostStop();
    }

    /// <summary>Called on the new instance after a restart. The default calls <see cref="PreStart"/>.</summary>
    /// <param name="reason">The exception that caused the restart.</param>
    protected virtual void PostRestart(Exception reason) => PreStart();

    /// <summary>Call for a message the actor does not understand: it goes to dead letters (counted).</summary>
    /// <param name="message">The unhandled message.</param>
    protected virtual void Unhandled(object message) => _cell.System.DeadLetters.Tell(message, _cell.Sender);

    // Entry points for the cell: the hooks stay protected so subclasses in assemblies that see
    // internals (tests) override them with the usual 'protected override'.
    internal void Receive(object message) => OnReceive(message);

    internal void InvokePreStart() => PreStart();

    internal void InvokePostStop() => PostStop();

    internal void InvokePreRestart(Exception reason, object? message) => PreRestart(reason, message);

    internal void InvokePostRestart(Exception reason) => PostRestart(reason);
}
