namespace Natd.Dataplane.Actors;

/// <summary>
/// What a supervisor does with a child that threw (Akka.NET's <c>Directive</c>).
/// </summary>
public enum Directive
{
    /// <summary>Keep the instance and its state; the failing message is dropped and processing goes on.</summary>
    Resume,

    /// <summary>Replace the instance with a fresh one from <see cref="Props"/>; the mailbox is kept, the failing message dropped.</summary>
    Restart,

    /// <summary>Stop the child (and its children); queued messages go to dead letters.</summary>
    Stop,

    /// <summary>Fail the supervisor itself with the same exception, so its own parent decides.</summary>
    Escalate,
}
