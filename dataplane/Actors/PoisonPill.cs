namespace Natd.Dataplane.Actors;

/// <summary>
/// A user message that stops the receiver when it reaches the head of the mailbox, i.e. after the
/// messages queued before it (Akka.NET's <c>PoisonPill</c>). Compare <see cref="IActorContext.Stop"/>,
/// which stops before any further user message.
/// </summary>
public sealed class PoisonPill
{
    /// <summary>The single instance.</summary>
    public static PoisonPill Instance { get; } = new();

    private PoisonPill() { }

    /// <inheritdoc/>
    public override string ToString() => "PoisonPill";
}
