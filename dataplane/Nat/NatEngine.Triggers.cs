namespace Natd.Dataplane.Nat;

// Port triggers live in TriggerTable; the engine keeps their counters' public names.
public sealed partial class NatEngine
{
    /// <summary>Trigger counters: activations, refusals (the range is another host's), inbound sessions opened.</summary>
    public long TriggersActivated => _triggers.Activated;

    /// <inheritdoc cref="TriggersActivated"/>
    public long TriggersRefused => _triggers.Refused;

    /// <inheritdoc cref="TriggersActivated"/>
    public long TriggerSessions => _triggers.Sessions;
}
