namespace Natd.Dataplane.Actors;

/// <summary>
/// <see cref="IScheduler"/> over a single <see cref="ITimer"/> from the system's <see cref="TimeProvider"/>,
/// always armed for the earliest deadline of a min-heap. Cancellation is lazy: a cancelled entry is
/// discarded when it reaches the top. Deadlines are in ticks since the scheduler started.
/// </summary>
internal sealed class TimerScheduler : IScheduler, IDisposable
{
    // ITimer.Change accepts at most ~49 days; a longer wait re-arms on the way.
    private static readonly long s_maxArmTicks = TimeSpan.FromDays(1).Ticks;

    private readonly TimeProvider _time;
    private readonly Action<string> _publish;
    private readonly long _origin;
    private readonly object _lock = new();
    private readonly PriorityQueue<Entry, long> _queue = new();
    private readonly ITimer _timer;
    private long _armedFor = long.MaxValue;
    private bool _disposed;

    public TimerScheduler(TimeProvider time, Action<string> publish)
    {
        _time = time;
        _publish = publish;
        _origin = time.GetTimestamp();
        _timer = time.CreateTimer(static state => ((TimerScheduler)state!).OnTimer(), this, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
    }

    private long Now => _time.GetElapsedTime(_origin).Ticks;

    public ICancelable ScheduleTellOnce(TimeSpan delay, IActorRef receiver, object message, IActorRef? sender = null)
    {
        ArgumentNullException.ThrowIfNull(receiver);
        ArgumentNullException.ThrowIfNull(message);
        var entry = new Entry(receiver, message, sender, 0);
        if (delay <= TimeSpan.Zero)
        {
            receiver.Tell(message, sender);
            entry.Cancel();
            return entry;
        }

        return Add(entry, delay.Ticks);
    }

    public ICancelable ScheduleTellRepeatedly(TimeSpan initialDelay, TimeSpan interval, IActorRef receiver, object message, IActorRef? sender = null)
    {
        ArgumentNullException.ThrowIfNull(receiver);
        ArgumentNullException.ThrowIfNull(message);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(interval, TimeSpan.Zero);
        return Add(new Entry(receiver, message, sender, interval.Ticks), Math.Max(0, initialDelay.Ticks));
    }

    public void Dispose()
    {
        lock (_lock)
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            while (_queue.TryDequeue(out Entry? entry, out _))
            {
                entry.Cancel();
            }
        }

        _timer.Dispose();
    }

    private Entry Add(Entry entry, long delayTicks)
    {
        lock (_lock)
        {
            if (_disposed)
            {
                entry.Cancel();
                return entry;
            }

            long now = Now;
            long due = delayTicks > long.MaxValue - now ? long.MaxValue : now + delayTicks;
            _queue.Enqueue(entry, due);
            ArmLocked(now);
        }

        return entry;
    }

    /// <summary>Arms the timer for the earliest deadline if it is not armed for that or earlier already.</summary>
    private void ArmLocked(long now)
    {
        if (!_queue.TryPeek(out _, out long due) || due >= _armedFor)
        {
            return;
        }

        _armedFor = due;
        long wait = Math.Clamp(due - now, 0, s_maxArmTicks);
        _timer.Change(TimeSpan.FromTicks(wait), Timeout.InfiniteTimeSpan);
    }

    private void OnTimer()
    {
        List<Entry>? fire = null;
        lock (_lock)
        {
            if (_disposed)
            {
                return;
            }

            _armedFor = long.MaxValue;
            long now = Now;
            while (_queue.TryPeek(out Entry? entry, out long due) && due <= now)
            {
                _queue.Dequeue();
                if (entry.IsCancellationRequested)
                {
                    continue;
                }

                (fire ??= []).Add(entry);
                if (entry.IntervalTicks > 0)
                {
                    // Next tick one interval after this one; after a stall, one interval from now (no burst).
                    long next = due + entry.IntervalTicks;
                    _queue.Enqueue(entry, next > now ? next : now + entry.IntervalTicks);
                }
            }

            ArmLocked(now);
        }

        if (fire is null)
        {
            return;
        }

        // Outside the lock: Tell may run arbitrary receiver code (a test probe, a promise).
        foreach (Entry entry in fire)
        {
            if (entry.IsCancellationRequested)
            {
                continue;
            }

            try
            {
                entry.Receiver.Tell(entry.Message, entry.Sender);
            }
            catch (Exception ex)
            {
                // A foreign IActorRef that throws must not kill the timer thread (and the process).
                _publish($"scheduler: Tell to {entry.Receiver.Path} threw {ex.GetType().Name}: {ex.Message}");
            }
        }
    }

    private sealed class Entry(IActorRef receiver, object message, IActorRef? sender, long intervalTicks) : ICancelable
    {
        private volatile bool _cancelled;

        public IActorRef Receiver { get; } = receiver;

        public object Message { get; } = message;

        public IActorRef? Sender { get; } = sender;

        public long IntervalTicks { get; } = intervalTicks;

        public bool IsCancellationRequested => _cancelled;

        public void Cancel() => _cancelled = true;
    }
}
