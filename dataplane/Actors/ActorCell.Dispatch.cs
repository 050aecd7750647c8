namespace Natd.Dataplane.Actors;

/// <summary>Mailbox plumbing: enqueue, scheduling on the thread pool or a dedicated thread, the run loop.</summary>
internal sealed partial class ActorCell : IThreadPoolWorkItem
{
    // Wait used when a dedicated-thread actor has no RunOnce to call; any message wakes it sooner.
    private static readonly TimeSpan s_parkedWait = TimeSpan.FromMilliseconds(100);

    private readonly Thread? _thread;
    private readonly ManualResetEventSlim? _signal;
    private Exception? _threadSetupError;

    // 1 while a thread-pool run is queued or running: guarantees one message at a time.
    private int _scheduled;
    private volatile bool _mailboxClosed;
    private long _runCount;
    private long _droppedCount;

    /// <summary>Mailbox runs so far (one per thread-pool work item or loop turn); for throughput tests.</summary>
    internal long RunCount => Volatile.Read(ref _runCount);

    /// <summary>User messages this actor's full mailbox refused.</summary>
    internal long DroppedCount => Volatile.Read(ref _droppedCount);

    /// <summary>The dedicated thread, or null for a thread-pool actor.</summary>
    internal Thread? DedicatedThread => _thread;

    private bool CanProcessUserMessages => !_suspended && !_terminating && _actor is not null;

    /// <summary>Queues creation of the first instance and starts the thread, if any.</summary>
    internal void Start()
    {
        SendSystem(Create.Instance);
        _thread?.Start();
    }

    internal void SendUser(object message, IActorRef? sender)
    {
        if (_userMailbox.Writer.TryWrite(new Envelope(message, sender)))
        {
            Schedule();
            return;
        }

        if (_mailboxClosed)
        {
            System.OnDeadLetter();
            return;
        }

        Interlocked.Increment(ref _droppedCount);
        System.OnMailboxDrop();
    }

    internal void SendSystem(SystemMessage message)
    {
        // Unbounded: never fails, so stop and supervision notices are never lost.
        _systemMailbox.Writer.TryWrite(message);
        Schedule();
    }

    internal bool WaitForMailbox(TimeSpan maxWait) => _signal is not null && _signal.Wait(maxWait);

    private void Schedule()
    {
        if (_signal is not null)
        {
            _signal.Set();
            return;
        }

        if (Interlocked.CompareExchange(ref _scheduled, 1, 0) == 0)
        {
            ThreadPool.UnsafeQueueUserWorkItem(this, preferLocal: false);
        }
    }

    void IThreadPoolWorkItem.Execute()
    {
        try
        {
            RunMailbox();
        }
        finally
        {
            // Full fence before re-checking the queues, pairing with the CAS in Schedule: either the
            // producer sees 0 and schedules, or this check sees its message.
            Interlocked.Exchange(ref _scheduled, 0);
            if (HasPendingWork())
            {
                Schedule();
            }
        }
    }

    private bool HasPendingWork() =>
        _systemMailbox.Reader.TryPeek(out _) || (CanProcessUserMessages && _userMailbox.Reader.TryPeek(out _));

    /// <summary>One run: all system messages, then up to Throughput user messages, system messages first before each.</summary>
    private void RunMailbox()
    {
        Interlocked.Increment(ref _runCount);
        ProcessSystemMessages();
        int budget = Props.Throughput;
        while (budget > 0 && CanProcessUserMessages && _userMailbox.Reader.TryRead(out Envelope envelope))
        {
            budget--;
            Invoke(envelope);
            ProcessSystemMessages();
        }
    }

    private void ProcessSystemMessages()
    {
        while (_systemMailbox.Reader.TryRead(out SystemMessage? message))
        {
            if (_terminated)
            {
                continue;
            }

            try
            {
                HandleSystem(message);
            }
            catch (Exception ex)
            {
                // Handlers catch actor exceptions themselves; this is a runtime bug, keep the cell alive.
                System.Publish($"{Path}: internal error handling {message.GetType().Name}: {ex}");
            }
        }
    }

    private void Invoke(Envelope envelope)
    {
        _current = envelope;
        try
        {
            if (envelope.Message is PoisonPill)
            {
                BeginTerminate();
            }
            else
            {
                _actor!.Receive(envelope.Message);
            }
        }
        catch (Exception ex)
        {
            HandleFailure(ex, envelope.Message);
        }
        finally
        {
            _current = default;
        }
    }

    /// <summary>Body of a dedicated thread: mailbox, RunOnce, Idle, until the actor has stopped.</summary>
    private void LoopThreadMain()
    {
        if (Props.ThreadSetup is { } setup)
        {
            try
            {
                setup();
            }
            catch (Exception ex)
            {
                // Reported as a creation failure so the supervisor decides.
                _threadSetupError = ex;
            }
        }

        ManualResetEventSlim signal = _signal!;
        while (!_terminated)
        {
            // Reset before draining: a message queued after the drain sets it again, so Idle cannot sleep on it.
            signal.Reset();
            RunMailbox();
            if (_terminated)
            {
                break;
            }

            LoopActor? loop = CanProcessUserMessages ? _actor as LoopActor : null;
            bool didWork = false;
            if (loop is not null)
            {
                try
                {
                    didWork = loop.InvokeRunOnce();
                }
                catch (Exception ex)
                {
                    HandleFailure(ex, null);
                    continue;
                }
            }

            if (didWork || HasPendingWork())
            {
                continue;
            }

            if (loop is not null)
            {
                try
                {
                    loop.InvokeIdle();
                }
                catch (Exception ex)
                {
                    HandleFailure(ex, null);
                }
            }
            else
            {
                signal.Wait(s_parkedWait);
            }
        }
    }
}
