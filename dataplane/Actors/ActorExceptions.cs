namespace Natd.Dataplane.Actors;

/// <summary>Thrown by <see cref="IActorRef.Ask{T}"/> when no reply arrived in time.</summary>
public sealed class AskTimeoutException : TimeoutException
{
    /// <summary>Creates the exception with a message naming the target and the timeout.</summary>
    /// <param name="message">Human-readable description.</param>
    public AskTimeoutException(string message) : base(message) { }
}

/// <summary>
/// Wraps an exception thrown while creating or starting an actor: by the <see cref="Props"/> factory,
/// the constructor, <see cref="ActorBase.PreStart"/> or <see cref="ActorBase.PostRestart"/>. The default
/// supervisor strategy stops an actor that fails this way instead of restarting it in a loop.
/// </summary>
public sealed class ActorInitializationException : Exception
{
    /// <summary>Creates the exception.</summary>
    /// <param name="path">Path of the actor that failed to start.</param>
    /// <param name="message">What went wrong.</param>
    /// <param name="inner">The original exception, if any.</param>
    public ActorInitializationException(string path, string message, Exception? inner = null)
        : base($"{path}: {message}", inner) => ActorPath = path;

    /// <summary>Path of the actor that failed to start.</summary>
    public string ActorPath { get; }
}

/// <summary>Thrown by <c>ActorOf</c> for a name that is empty, malformed, reserved or already taken among siblings.</summary>
public sealed class InvalidActorNameException : ArgumentException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="message">Why the name was refused.</param>
    public InvalidActorNameException(string message) : base(message) { }
}
