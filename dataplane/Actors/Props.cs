namespace Natd.Dataplane.Actors;

/// <summary>
/// An immutable recipe for an actor (Akka.NET's <c>Props</c>): how to build the instance and how its
/// mailbox and supervision behave. Every <c>With...</c> method returns a new <see cref="Props"/>.
/// </summary>
public sealed class Props
{
    /// <summary>Default mailbox capacity in user messages (see <see cref="WithMailboxCapacity"/>).</summary>
    public const int DefaultMailboxCapacity = 10_000;

    /// <summary>Default number of user messages handled per run before the actor yields its thread.</summary>
    public const int DefaultThroughput = 30;

    private Props(Func<ActorBase> factory, Type actorType)
    {
        Factory = factory;
        ActorType = actorType;
        DedicatedThread = typeof(LoopActor).IsAssignableFrom(actorType);
    }

    private Props(Props other)
    {
        Factory = other.Factory;
        ActorType = other.ActorType;
        SupervisorStrategy = other.SupervisorStrategy;
        MailboxCapacity = other.MailboxCapacity;
        Throughput = other.Throughput;
        DedicatedThread = other.DedicatedThread;
        ThreadSetup = other.ThreadSetup;
    }

    /// <summary>Builds a new instance; called at start and again on every restart.</summary>
    internal Func<ActorBase> Factory { get; }

    /// <summary>The static type the factory returns.</summary>
    public Type ActorType { get; }

    /// <summary>Strategy this actor applies to its children's failures; null means <see cref="Actors.SupervisorStrategy.DefaultStrategy"/>.</summary>
    public SupervisorStrategy? SupervisorStrategy { get; private init; }

    /// <summary>Maximum queued user messages; system messages are never bounded.</summary>
    public int MailboxCapacity { get; private init; } = DefaultMailboxCapacity;

    /// <summary>Maximum user messages per run (thread-pool actors) or per loop turn (<see cref="LoopActor"/>).</summary>
    public int Throughput { get; private init; } = DefaultThroughput;

    /// <summary>True when the actor runs on its own thread instead of the thread pool; always true for a <see cref="LoopActor"/>.</summary>
    public bool DedicatedThread { get; private init; }

    /// <summary>Runs first on the dedicated thread (e.g. to pin it to a CPU); null for none.</summary>
    public Action? ThreadSetup { get; private init; }

    /// <summary>
    /// Creates a recipe from a factory. The factory must construct a new actor each call (it runs at
    /// start and on every restart, on the actor's own thread); it must not return a shared instance.
    /// A <typeparamref name="TActor"/> deriving from <see cref="LoopActor"/> gets a dedicated thread.
    /// </summary>
    /// <typeparam name="TActor">The actor class.</typeparam>
    /// <param name="factory">Constructs the actor, e.g. <c>() =&gt; new FtpHelper(settings)</c>.</param>
    /// <returns>The recipe with default mailbox, throughput and supervision.</returns>
    /// <exception cref="ArgumentNullException">factory is null.</exception>
    public static Props Create<TActor>(Func<TActor> factory) where TActor : ActorBase
    {
        ArgumentNullException.ThrowIfNull(factory);
        return new Props(factory, typeof(TActor));
    }

    /// <summary>Sets the strategy the new actor uses to supervise its children.</summary>
    /// <param name="strategy">The strategy.</param>
    /// <returns>A new recipe.</returns>
    /// <exception cref="ArgumentNullException">strategy is null.</exception>
    public Props WithSupervisorStrategy(SupervisorStrategy strategy)
    {
        ArgumentNullException.ThrowIfNull(strategy);
        return new Props(this) { SupervisorStrategy = strategy };
    }

    /// <summary>
    /// Bounds the user mailbox. When it is full, <see cref="IActorRef.Tell"/> does not block: the
    /// message is dropped and counted in <see cref="ActorSystem.MailboxDropCount"/>. System messages
    /// (stop, restart, failure notices) are never dropped.
    /// </summary>
    /// <param name="capacity">Maximum queued user messages, at least 1.</param>
    /// <returns>A new recipe.</returns>
    /// <exception cref="ArgumentOutOfRangeException">capacity is below 1.</exception>
    public Props WithMailboxCapacity(int capacity)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        return new Props(this) { MailboxCapacity = capacity };
    }

    /// <summary>Caps the user messages handled per run before the thread is given back (fairness between actors).</summary>
    /// <param name="throughput">Messages per run, at least 1.</param>
    /// <returns>A new recipe.</returns>
    /// <exception cref="ArgumentOutOfRangeException">throughput is below 1.</exception>
    public Props WithThroughput(int throughput)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(throughput, 1);
        return new Props(this) { Throughput = throughput };
    }

    /// <summary>
    /// Runs the actor on its own background thread named after its path instead of the thread pool.
    /// Required for <see cref="LoopActor"/>s (pollers), which block or spin.
    /// </summary>
    /// <param name="threadSetup">Runs first on the new thread (e.g. CPU pinning); null for none. An exception fails the actor's start.</param>
    /// <returns>A new recipe.</returns>
    public Props WithDedicatedThread(Action? threadSetup = null) =>
        new(this) { DedicatedThread = true, ThreadSetup = threadSetup };
}
