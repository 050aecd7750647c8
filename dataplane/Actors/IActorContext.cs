namespace Natd.Dataplane.Actors;

/// <summary>
/// The actor's view of itself and its place in the tree (Akka.NET's <c>IActorContext</c>).
/// Use it only from the actor's own thread, i.e. inside its handlers and lifecycle hooks.
/// </summary>
public interface IActorContext
{
    /// <summary>This actor's reference.</summary>
    IActorRef Self { get; }

    /// <summary>Sender of the message being handled; <see cref="ActorSystem.DeadLetters"/> when there is none.</summary>
    IActorRef Sender { get; }

    /// <summary>The supervisor; for a top-level actor, the user guardian.</summary>
    IActorRef Parent { get; }

    /// <summary>The system this actor belongs to.</summary>
    ActorSystem System { get; }

    /// <summary>The recipe this actor was created from.</summary>
    Props Props { get; }

    /// <summary>Live children (stopping children included until they are gone), as a snapshot.</summary>
    IReadOnlyList<IActorRef> Children { get; }

    /// <summary>Creates and starts a child supervised by this actor.</summary>
    /// <param name="props">Recipe of the child.</param>
    /// <param name="name">Unique among siblings; letters, digits and <c>-_.:@</c>, not starting with <c>$</c>.</param>
    /// <returns>The child's reference; the child starts asynchronously.</returns>
    /// <exception cref="InvalidActorNameException">The name is malformed or taken.</exception>
    /// <exception cref="InvalidOperationException">This actor is stopping.</exception>
    IActorRef ActorOf(Props props, string name);

    /// <summary>Finds a child by name.</summary>
    /// <param name="name">The child's name.</param>
    /// <returns>The child, or null.</returns>
    IActorRef? Child(string name);

    /// <summary>
    /// Stops <see cref="Self"/> or a child asynchronously: the actor handles no further user message,
    /// its children stop first, then its <see cref="ActorBase.PostStop"/> runs.
    /// </summary>
    /// <param name="actor">Self or one of this actor's children (a child already stopped is ignored).</param>
    /// <exception cref="ArgumentException">The actor is neither self nor a child.</exception>
    void Stop(IActorRef actor);
}
