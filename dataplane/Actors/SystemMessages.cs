namespace Natd.Dataplane.Actors;

/// <summary>
/// Messages between cells about lifecycle and supervision. They travel in a separate unbounded
/// queue, are never dropped and are handled before any user message.
/// </summary>
internal abstract class SystemMessage;

/// <summary>Build the first instance and run PreStart.</summary>
internal sealed class Create : SystemMessage
{
    public static readonly Create Instance = new();
}

/// <summary>Stop: no more user messages, stop children, then PostStop.</summary>
internal sealed class Terminate : SystemMessage
{
    public static readonly Terminate Instance = new();
}

/// <summary>Supervisor's decision: continue with the current instance.</summary>
internal sealed class Resume : SystemMessage
{
    public static readonly Resume Instance = new();
}

/// <summary>Supervisor's decision: replace the instance.</summary>
internal sealed class Recreate(Exception cause) : SystemMessage
{
    public Exception Cause { get; } = cause;
}

/// <summary>Child to parent: I threw and wait for your decision.</summary>
internal sealed class Failed(ActorCell child, Exception cause) : SystemMessage
{
    public ActorCell Child { get; } = child;

    public Exception Cause { get; } = cause;
}

/// <summary>Child to parent: I am fully stopped (PostStop done).</summary>
internal sealed class ChildTerminated(ActorCell child) : SystemMessage
{
    public ActorCell Child { get; } = child;
}

/// <summary>A user message and who sent it.</summary>
internal readonly record struct Envelope(object Message, IActorRef? Sender);
