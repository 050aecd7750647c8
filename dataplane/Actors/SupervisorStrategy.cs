namespace Natd.Dataplane.Actors;

/// <summary>
/// How a supervisor treats a failing child (Akka.NET's <c>SupervisorStrategy</c>): a decider maps the
/// exception to a <see cref="Directive"/>, and a restart budget turns too many restarts into a stop.
/// Immutable and shareable.
/// </summary>
public abstract class SupervisorStrategy
{
    /// <summary>Creates the strategy.</summary>
    /// <param name="maxNrOfRetries">Restarts allowed per child within <paramref name="withinTimeRange"/>; negative means unlimited, 0 means never restart (stop instead).</param>
    /// <param name="withinTimeRange">Window the restarts are counted in; <see cref="Timeout.InfiniteTimeSpan"/> or zero counts over the child's life.</param>
    /// <param name="decider">Maps a child's exception to a directive; an exception thrown by the decider escalates.</param>
    /// <exception cref="ArgumentNullException">decider is null.</exception>
    protected SupervisorStrategy(int maxNrOfRetries, TimeSpan withinTimeRange, Func<Exception, Directive> decider)
    {
        ArgumentNullException.ThrowIfNull(decider);
        MaxNrOfRetries = maxNrOfRetries;
        WithinTimeRange = withinTimeRange;
        Decider = decider;
    }

    /// <summary>
    /// The strategy used when none is set: <see cref="DefaultDecider"/>, at most 10 restarts within one
    /// minute per child, then stop.
    /// </summary>
    public static SupervisorStrategy DefaultStrategy { get; } =
        new OneForOneStrategy(10, TimeSpan.FromMinutes(1), DefaultDecider);

    /// <summary>A strategy that stops any failing child.</summary>
    public static SupervisorStrategy StoppingStrategy { get; } = new OneForOneStrategy(_ => Directive.Stop);

    /// <summary>Restarts in the window before a restart turns into a stop; negative for unlimited.</summary>
    public int MaxNrOfRetries { get; }

    /// <summary>Window for <see cref="MaxNrOfRetries"/>; infinite or zero for no window.</summary>
    public TimeSpan WithinTimeRange { get; }

    /// <summary>Maps a child's exception to a directive.</summary>
    public Func<Exception, Directive> Decider { get; }

    /// <summary>
    /// True when the directive applies to every child (all-for-one) rather than only the one that failed.
    /// </summary>
    public abstract bool AppliesToAllChildren { get; }

    /// <summary>
    /// Akka's default decider: <see cref="ActorInitializationException"/> stops (a constructor or
    /// PreStart that throws would fail again), anything else restarts.
    /// </summary>
    /// <param name="cause">The child's exception.</param>
    /// <returns><see cref="Directive.Stop"/> or <see cref="Directive.Restart"/>.</returns>
    public static Directive DefaultDecider(Exception cause) =>
        cause is ActorInitializationException ? Directive.Stop : Directive.Restart;
}

/// <summary>Applies the directive only to the child that failed (Akka.NET's <c>OneForOneStrategy</c>).</summary>
public sealed class OneForOneStrategy : SupervisorStrategy
{
    /// <summary>Creates the strategy with a restart budget.</summary>
    /// <param name="maxNrOfRetries">Restarts allowed per child within the window; negative for unlimited, 0 for none.</param>
    /// <param name="withinTimeRange">Counting window; infinite or zero for the child's whole life.</param>
    /// <param name="decider">Maps the exception to a directive.</param>
    /// <exception cref="ArgumentNullException">decider is null.</exception>
    public OneForOneStrategy(int maxNrOfRetries, TimeSpan withinTimeRange, Func<Exception, Directive> decider)
        : base(maxNrOfRetries, withinTimeRange, decider) { }

    /// <summary>Creates the strategy with unlimited restarts.</summary>
    /// <param name="decider">Maps the exception to a directive.</param>
    /// <exception cref="ArgumentNullException">decider is null.</exception>
    public OneForOneStrategy(Func<Exception, Directive> decider)
        : base(-1, Timeout.InfiniteTimeSpan, decider) { }

    /// <inheritdoc/>
    public override bool AppliesToAllChildren => false;
}

/// <summary>
/// Applies Restart and Stop to every child of the supervisor, not only the failing one (Akka.NET's
/// <c>AllForOneStrategy</c>); for children that only make sense together. The restart budget is the
/// failing child's.
/// </summary>
public sealed class AllForOneStrategy : SupervisorStrategy
{
    /// <summary>Creates the strategy with a restart budget.</summary>
    /// <param name="maxNrOfRetries">Restarts allowed within the window; negative for unlimited, 0 for none.</param>
    /// <param name="withinTimeRange">Counting window; infinite or zero for no window.</param>
    /// <param name="decider">Maps the exception to a directive.</param>
    /// <exception cref="ArgumentNullException">decider is null.</exception>
    public AllForOneStrategy(int maxNrOfRetries, TimeSpan withinTimeRange, Func<Exception, Directive> decider)
        : base(maxNrOfRetries, withinTimeRange, decider) { }

    /// <inheritdoc/>
    public override bool AppliesToAllChildren => true;
}
