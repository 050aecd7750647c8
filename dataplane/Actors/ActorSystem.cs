namespace Natd.Dataplane.Actors;

/// <summary>
/// A tree of actors under one user guardian, with a scheduler, dead letters and supervision counters
/// (Akka.NET's <c>ActorSystem</c>). Thread-safe. Actors run on the thread pool unless their
/// <see cref="Props"/> ask for a dedicated thread.
/// </summary>
public sealed class ActorSystem : IDisposable, IAsyncDisposable
{
    private static readonly TimeSpan s_disposeTimeout = TimeSpan.FromSeconds(10);

    private readonly ActorCell _guardian;
    private readonly TimerScheduler _scheduler;
    private readonly TaskCompletionSource _whenTerminated = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private long _deadLetters;
    private long _mailboxDrops;
    private int _terminateStarted;

    private ActorSystem(string name, ActorSystemOptions options)
    {
        Name = name;
        TimeProvider = options.TimeProvider ?? TimeProvider.System;
        ThreadJoinTimeout = options.ThreadJoinTimeout;
        DeadLetters = new DeadLetterActorRef(this);
        _scheduler = new TimerScheduler(TimeProvider, Publish);
        Props guardianProps = Props.Create(static () => new GuardianActor())
            .WithSupervisorStrategy(options.GuardianStrategy ?? SupervisorStrategy.DefaultStrategy);
        _guardian = new ActorCell(this, null, guardianProps, "user", $"akka://{name}/user");
        _guardian.Start();
    }

    /// <summary>
    /// Raised with one line per noteworthy event: a failure and the directive applied, a restart limit
    /// hit, an exception in PostStop, a thread that would not exit. Called on actor threads; keep
    /// handlers short. Exceptions thrown by handlers are ignored.
    /// </summary>
    public event Action<string>? Log;

    /// <summary>The system's name, the first segment of every path (<c>akka://name/user/...</c>).</summary>
    public string Name { get; }

    /// <summary>Clock used by the scheduler, restart windows and Ask.</summary>
    public TimeProvider TimeProvider { get; }

    /// <summary>Delayed and periodic message delivery.</summary>
    public IScheduler Scheduler => _scheduler;

    /// <summary>Where undeliverable and unhandled messages go; they are counted in <see cref="DeadLetterCount"/>.</summary>
    public IActorRef DeadLetters { get; }

    /// <summary>Failure, restart, resume, stop and escalation counters.</summary>
    public SupervisionStats Stats { get; } = new();

    /// <summary>Messages sent to stopped actors, unhandled messages and late Ask replies.</summary>
    public long DeadLetterCount => Volatile.Read(ref _deadLetters);

    /// <summary>User messages refused because the receiver's bounded mailbox was full.</summary>
    public long MailboxDropCount => Volatile.Read(ref _mailboxDrops);

    /// <summary>Completes when <see cref="Terminate"/> has stopped every actor.</summary>
    public Task WhenTerminated => _whenTerminated.Task;

    internal TimeSpan ThreadJoinTimeout { get; }

    /// <summary>Creates a running system with default options.</summary>
    /// <param name="name">System name: letters, digits and <c>-_.:@+=~</c>.</param>
    /// <returns>The system; dispose or <see cref="Terminate"/> it.</returns>
    /// <exception cref="InvalidActorNameException">The name is malformed.</exception>
    public static ActorSystem Create(string name) => Create(name, null);

    /// <summary>Creates a running system.</summary>
    /// <param name="name">System name: letters, digits and <c>-_.:@+=~</c>.</param>
    /// <param name="options">Clock, guardian strategy, join timeout; null for defaults.</param>
    /// <returns>The system; dispose or <see cref="Terminate"/> it.</returns>
    /// <exception cref="InvalidActorNameException">The name is malformed.</exception>
    public static ActorSystem Create(string name, ActorSystemOptions? options)
    {
        ActorCell.ValidateName(name);
        return new ActorSystem(name, options ?? new ActorSystemOptions());
    }

    /// <summary>Creates and starts a top-level actor under the user guardian (<c>akka://name/user/{name}</c>).</summary>
    /// <param name="props">Recipe.</param>
    /// <param name="name">Unique among top-level actors.</param>
    /// <returns>The actor's reference; it starts asynchronously.</returns>
    /// <exception cref="InvalidActorNameException">The name is malformed or taken.</exception>
    /// <exception cref="InvalidOperationException">The system is terminating.</exception>
    public IActorRef ActorOf(Props props, string name) => _guardian.ActorOf(props, name);

    /// <summary>
    /// Stops an actor of this system asynchronously, before it handles any further user message
    /// (queued ones go to dead letters). To stop after the queued messages, tell <see cref="PoisonPill"/>.
    /// </summary>
    /// <param name="actor">The actor.</param>
    /// <exception cref="ArgumentException">Not an actor of this system.</exception>
    public void Stop(IActorRef actor)
    {
        ArgumentNullException.ThrowIfNull(actor);
        if (actor is not LocalActorRef local || local.System != this || local.Cell == _guardian)
        {
            throw new ArgumentException($"{actor.Path} is not a user actor of system {Name}.", nameof(actor));
        }

        local.Cell.RequestStop();
    }

    /// <summary>
    /// Stops every actor, children before parents, running each PostStop and joining dedicated threads,
    /// then stops the scheduler. Idempotent; every call returns the same task. An actor stuck in a
    /// handler or RunOnce delays completion, so callers bound the wait.
    /// </summary>
    /// <returns><see cref="WhenTerminated"/>.</returns>
    public Task Terminate()
    {
        if (Interlocked.Exchange(ref _terminateStarted, 1) == 0)
        {
            _guardian.RequestStop();
            _guardian.Terminated.ContinueWith(
                static (_, state) =>
                {
                    var system = (ActorSystem)state!;
                    system._scheduler.Dispose();
                    system._whenTerminated.TrySetResult();
                },
                this,
                CancellationToken.None,
                TaskContinuationOptions.ExecuteSynchronously,
                TaskScheduler.Default);
        }

        return _whenTerminated.Task;
    }

    /// <summary>Terminates and waits up to 10 s; a timeout is reported through <see cref="Log"/>.</summary>
    public void Dispose()
    {
        if (!Terminate().Wait(s_disposeTimeout))
        {
            Publish($"akka://{Name}: actors still running {s_disposeTimeout.TotalSeconds} s after Dispose");
        }
    }

    /// <summary>Terminates and waits up to 10 s; a timeout is reported through <see cref="Log"/>.</summary>
    /// <returns>A task that completes when terminated or the wait timed out.</returns>
    public async ValueTask DisposeAsync()
    {
        Task terminated = Terminate();
        if (await Task.WhenAny(terminated, Task.Delay(s_disposeTimeout)).ConfigureAwait(false) != terminated)
        {
            Publish($"akka://{Name}: actors still running {s_disposeTimeout.TotalSeconds} s after DisposeAsync");
        }
    }

    /// <summary>Completes when the actor has fully stopped; for tests and <see cref="ActorRefExtensions.GracefulStop"/>.</summary>
    internal static Task WhenStopped(IActorRef actor) =>
        actor is LocalActorRef local
            ? local.Cell.Terminated
            : throw new ArgumentException($"{actor.Path} is not a local actor.", nameof(actor));

    internal void Publish(string line)
    {
        try
        {
            Log?.Invoke(line);
        }
        catch (Exception)
        {
            // A broken log sink must not take down the actor that reported.
        }
    }

    internal void OnDeadLetter() => Interlocked.Increment(ref _deadLetters);

    internal void OnMailboxDrop() => Interlocked.Increment(ref _mailboxDrops);

    /// <summary>The actor behind /user: owns top-level actors, handles no messages itself.</summary>
    private sealed class GuardianActor : ActorBase
    {
        protected override void OnReceive(object message) => Unhandled(message);
    }
}
