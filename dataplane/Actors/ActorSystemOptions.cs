namespace Natd.Dataplane.Actors;

/// <summary>Optional settings for <see cref="ActorSystem.Create(string, ActorSystemOptions?)"/>.</summary>
public sealed class ActorSystemOptions
{
    /// <summary>Clock for the scheduler, restart windows and Ask timeouts; null means <see cref="TimeProvider.System"/>. Tests inject a manual one.</summary>
    public TimeProvider? TimeProvider { get; init; }

    /// <summary>Strategy the user guardian applies to top-level actors; null means <see cref="SupervisorStrategy.DefaultStrategy"/>.</summary>
    public SupervisorStrategy? GuardianStrategy { get; init; }

    /// <summary>How long a supervisor waits for a stopped actor's dedicated thread to exit; default 5 s.</summary>
    public TimeSpan ThreadJoinTimeout { get; init; } = TimeSpan.FromSeconds(5);
}
