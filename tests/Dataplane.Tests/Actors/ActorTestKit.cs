using System.Collections.Concurrent;
using System.Threading.Channels;
using Natd.Dataplane.Actors;

namespace Natd.Tests.Actors;

/// <summary>Bounded waits: every test wait ends in at most <see cref="Timeout"/>.</summary>
internal static class Within
{
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);

    public static Task<T> Of<T>(Task<T> task) => task.WaitAsync(Timeout);

    public static Task Of(Task task) => task.WaitAsync(Timeout);

    public static void Acquire(SemaphoreSlim gate) =>
        Assert.True(gate.Wait(Timeout), "timed out waiting for the semaphore");

    public static Task Stopped(IActorRef actor) => ActorSystem.WhenStopped(actor).WaitAsync(Timeout);
}

/// <summary>
/// An <see cref="IActorRef"/> that records what is told to it synchronously, so tests can both await
/// messages and check that none arrived (the scheduler tells on the caller's thread with a manual clock).
/// </summary>
internal sealed class Probe(string name = "probe") : IActorRef
{
    private readonly Channel<object> _messages = Channel.CreateUnbounded<object>();

    public string Path { get; } = $"test://{name}/{Guid.NewGuid():N}";

    public void Tell(object message, IActorRef? sender = null) => _messages.Writer.TryWrite(message);

    public Task<T> Ask<T>(object message, TimeSpan timeout, CancellationToken ct = default) =>
        throw new NotSupportedException();

    /// <summary>Next message, failing the test after <see cref="Within.Timeout"/>.</summary>
    public async Task<object> Receive()
    {
        using var cts = new CancellationTokenSource(Within.Timeout);
        try
        {
            return await _messages.Reader.ReadAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            Assert.Fail($"no message within {Within.Timeout}");
            throw;
        }
    }

    public async Task<T> Expect<T>() => Assert.IsType<T>(await Receive());

    public async Task Expect(object expected) => Assert.Equal(expected, await Receive());

    /// <summary>Messages already received and not yet consumed.</summary>
    public int Pending => _messages.Reader.Count;

    public bool TryReceive(out object? message)
    {
        bool ok = _messages.Reader.TryRead(out object? m);
        message = m;
        return ok;
    }
}

/// <summary>
/// A TimeProvider the test moves by hand. Timers fire synchronously inside <see cref="Advance"/>,
/// in deadline order.
/// </summary>
internal sealed class ManualTimeProvider : TimeProvider
{
    private readonly object _lock = new();
    private readonly List<ManualTimer> _timers = [];
    private long _now;

    public override long TimestampFrequency => TimeSpan.TicksPerSecond;

    public override long GetTimestamp()
    {
        lock (_lock)
        {
            return _now;
        }
    }

    public override DateTimeOffset GetUtcNow() => new DateTimeOffset(2000, 1, 1, 0, 0, 0, TimeSpan.Zero).AddTicks(GetTimestamp());

    public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
    {
        var timer = new ManualTimer(this, callback, state);
        lock (_lock)
        {
            _timers.Add(timer);
        }

        timer.Change(dueTime, period);
        return timer;
    }

    /// <summary>Moves the clock without firing timers: a stalled timer thread. The next Advance fires what is late.</summary>
    public void Jump(TimeSpan by)
    {
        lock (_lock)
        {
            _now += by.Ticks;
        }
    }

    public void Advance(TimeSpan by)
    {
        long target;
        lock (_lock)
        {
            target = _now + by.Ticks;
        }

        for (int guard = 0; guard < 100_000; guard++)
        {
            ManualTimer? next = null;
            lock (_lock)
            {
                foreach (ManualTimer t in _timers)
                {
                    if (t.Due <= target && (next is null || t.Due < next.Due))
                    {
                        next = t;
                    }
                }

                if (next is null)
                {
                    _now = target;
                    return;
                }

                // Time moves to the timer's deadline, as it would in reality.
                _now = Math.Max(_now, next.Due);
                next.Due = next.Period > 0 ? next.Due + next.Period : long.MaxValue;
            }

            next.Callback(next.State);
        }

        throw new InvalidOperationException("timer storm in ManualTimeProvider.Advance");
    }

    private sealed class ManualTimer(ManualTimeProvider owner, TimerCallback callback, object? state) : ITimer
    {
        public TimerCallback Callback { get; } = callback;

        public object? State { get; } = state;

        public long Due { get; set; } = long.MaxValue;

        public long Period { get; private set; }

        public bool Change(TimeSpan dueTime, TimeSpan period)
        {
            lock (owner._lock)
            {
                Due = dueTime == Timeout.InfiniteTimeSpan ? long.MaxValue : owner._now + dueTime.Ticks;
                Period = period == Timeout.InfiniteTimeSpan ? 0 : period.Ticks;
            }

            return true;
        }

        public void Dispose()
        {
            lock (owner._lock)
            {
                owner._timers.Remove(this);
            }
        }

        public ValueTask DisposeAsync()
        {
            Dispose();
            return ValueTask.CompletedTask;
        }
    }
}

/// <summary>Thread-safe event log shared by the actors of one test.</summary>
internal sealed class Events
{
    private readonly ConcurrentQueue<string> _events = new();

    public void Add(string e) => _events.Enqueue(e);

    public string[] All => _events.ToArray();

    public int IndexOf(string e) => Array.IndexOf(All, e);

    public int Count(string e) => All.Count(x => x == e);
}

/// <summary>Replies to every message with the same message, and to "self" with its own reference.</summary>
internal sealed class EchoActor : ActorBase
{
    protected override void OnReceive(object message) => Sender.Tell(message is "self" ? Self : message, Self);
}

/// <summary>Handles nothing: everything goes to dead letters.</summary>
internal sealed class SilentActor : ActorBase
{
    protected override void OnReceive(object message) => Unhandled(message);
}

/// <summary>Forwards every message to a probe.</summary>
internal sealed class ForwardActor(IActorRef target) : ActorBase
{
    protected override void OnReceive(object message) => target.Tell(message, Self);
}

/// <summary>
/// A counter that reports its lifecycle: "inc" adds one, "get" replies (instance, count), "boom"
/// throws, anything else is recorded. Instance numbers are shared through <see cref="InstanceCounter"/>.
/// </summary>
internal sealed class CounterActor : ActorBase
{
    private readonly Events _events;
    private readonly IActorRef? _probe;
    private readonly int _instance;
    private int _count;

    public CounterActor(InstanceCounter instances, Events events, IActorRef? probe = null)
    {
        _instance = instances.Next();
        _events = events;
        _probe = probe;
    }

    protected override void PreStart()
    {
        _events.Add($"PreStart {_instance}");
        _probe?.Tell($"started {_instance}");
    }

    protected override void PostStop()
    {
        _events.Add($"PostStop {_instance}");
        _probe?.Tell($"stopped {_instance}");
    }

    protected override void PreRestart(Exception reason, object? message)
    {
        _events.Add($"PreRestart {_instance} {reason.Message} {message ?? "null"}");
        base.PreRestart(reason, message);
    }

    protected override void PostRestart(Exception reason)
    {
        _events.Add($"PostRestart {_instance} {reason.Message}");
        base.PostRestart(reason);
    }

    protected override void OnReceive(object message)
    {
        _events.Add($"receive {_instance} {message}");
        switch (message)
        {
            case "inc":
                _count++;
                break;
            case "get":
                Sender.Tell((_instance, _count));
                break;
            case "boom":
                throw new InvalidOperationException("boom");
            default:
                Sender.Tell(message);
                break;
        }
    }
}

internal sealed class InstanceCounter
{
    private int _n;

    public int Next() => Interlocked.Increment(ref _n);

    public int Count => Volatile.Read(ref _n);
}
