namespace Natd.Dataplane.Actors;

/// <summary>Lifecycle: creation, failure, supervision decisions, restart and stop (Akka's ActorCell.FaultHandling).</summary>
internal sealed partial class ActorCell
{
    // Set while the actor waits for its supervisor's decision or for a restart to finish: no user messages.
    private bool _suspended;
    private volatile bool _stopRequested;
    private volatile bool _terminating;
    private volatile bool _terminated;
    private object? _failedMessage;

    // Non-null while a restart waits for the old instance's children to stop.
    private Exception? _recreateCause;

    // Children whose failure this actor escalated; resumed with it.
    private List<ActorCell>? _escalatedChildren;

    private readonly TaskCompletionSource _terminatedTcs = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Completes when the actor has stopped: children stopped, PostStop ran, dedicated thread joined.</summary>
    internal Task Terminated => _terminatedTcs.Task;

    /// <summary>True once a stop was requested or has begun.</summary>
    internal bool IsStopping => _stopRequested || _terminating;

    /// <summary>Asks the actor to stop; handled before any further user message.</summary>
    internal void RequestStop()
    {
        _stopRequested = true;
        SendSystem(Terminate.Instance);
    }

    private void HandleSystem(SystemMessage message)
    {
        switch (message)
        {
            case Create:
                HandleCreate();
                break;
            case Terminate:
                BeginTerminate();
                break;
            case Resume:
                HandleResume();
                break;
            case Recreate recreate:
                FaultRecreate(recreate.Cause);
                break;
            case Failed failed:
                HandleChildFailure(failed.Child, failed.Cause);
                break;
            case ChildTerminated terminated:
                HandleChildTerminated(terminated.Child);
                break;
        }
    }

    private void HandleCreate()
    {
        if (_terminating || _actor is not null)
        {
            return;
        }

        try
        {
            _actor = NewActor();
            _actor.InvokePreStart();
        }
        catch (Exception ex)
        {
            _actor = null;
            HandleFailure(AsInitializationFailure(ex, "PreStart"), null);
        }
    }

    private ActorInitializationException AsInitializationFailure(Exception ex, string hook) =>
        ex as ActorInitializationException ?? new ActorInitializationException(Path, $"{hook} failed: {ex.Message}", ex);

    /// <summary>Actor code threw: suspend and ask the supervisor. The failing message is not retried.</summary>
    private void HandleFailure(Exception cause, object? message)
    {
        System.Stats.OnFailure();
        if (_terminating)
        {
            System.Publish($"{Path}: exception while stopping: {Describe(cause)}");
            return;
        }

        _suspended = true;
        _failedMessage = message;
        if (_parent is null)
        {
            System.Publish($"{Path}: guardian failed: {Describe(cause)}");
            return;
        }

        _parent.SendSystem(new Failed(this, cause));
    }

    private void HandleResume()
    {
        if (_terminating)
        {
            return;
        }

        if (_actor is null)
        {
            // Nothing to resume (creation failed): the only way forward is a fresh instance.
            FaultRecreate(new ActorInitializationException(Path, "resumed without a started instance"));
            return;
        }

        _suspended = false;
        _failedMessage = null;
        if (_escalatedChildren is { } escalated)
        {
            _escalatedChildren = null;
            foreach (ActorCell child in escalated)
            {
                if (!child.IsStopping)
                {
                    child.SendSystem(Resume.Instance);
                }
            }
        }
    }

    /// <summary>Restart step 1: PreRestart on the old instance, then wait for the children it stopped.</summary>
    private void FaultRecreate(Exception cause)
    {
        if (_terminating)
        {
            return;
        }

        _suspended = true;
        if (_actor is not null)
        {
            try
            {
                _actor.InvokePreRestart(cause, _failedMessage);
            }
            catch (Exception ex)
            {
                System.Publish($"{Path}: PreRestart threw: {Describe(ex)}");
            }
        }
        else
        {
            // No instance ran PreRestart: stop its children as the default would.
            foreach (ActorCell child in ChildCells())
            {
                child.RequestStop();
            }
        }

        _actor = null;
        _recreateCause = cause;
        if (!AnyChildStopping())
        {
            FinishRecreate();
        }
    }

    /// <summary>Restart step 2: new instance from Props, PostRestart, resume; children that survived restart too.</summary>
    private void FinishRecreate()
    {
        Exception cause = _recreateCause!;
        _recreateCause = null;
        _escalatedChildren = null;

        // Children the old instance kept; taken before PostRestart so new children are not restarted.
        ActorCell[] survivors = ChildCells();
        try
        {
            _actor = NewActor();
            _actor.InvokePostRestart(cause);
        }
        catch (Exception ex)
        {
            _actor = null;
            HandleFailure(AsInitializationFailure(ex, "PostRestart"), null);
            return;
        }

        _suspended = false;
        _failedMessage = null;
        foreach (ActorCell child in survivors)
        {
            if (!child.IsStopping)
            {
                System.Stats.OnRestart(child.Path);
                child.SendSystem(new Recreate(cause));
            }
        }
    }

    /// <summary>Stop step 1: close the mailbox (queued messages become dead letters), stop children.</summary>
    private void BeginTerminate()
    {
        ActorCell[] children;
        lock (_childrenLock)
        {
            if (_terminating)
            {
                return;
            }

            // Under the lock so a concurrent ActorOf either sees it or its child is in the snapshot.
            _terminating = true;
            _stopRequested = true;
            children = ChildCells();
        }

        _recreateCause = null;
        _mailboxClosed = true;
        _userMailbox.Writer.TryComplete();
        while (_userMailbox.Reader.TryRead(out _))
        {
            System.OnDeadLetter();
        }

        foreach (ActorCell child in children)
        {
            child.RequestStop();
        }

        if (ChildCount == 0)
        {
            FinishTerminate();
        }
    }

    /// <summary>Stop step 2, once all children are gone: PostStop, then tell the parent.</summary>
    private void FinishTerminate()
    {
        if (_terminated)
        {
            return;
        }

        if (_actor is not null)
        {
            try
            {
                _actor.InvokePostStop();
            }
            catch (Exception ex)
            {
                System.Stats.OnFailure();
                System.Publish($"{Path}: PostStop threw: {Describe(ex)}");
            }
        }

        _actor = null;
        _terminated = true;
        if (_parent is not null)
        {
            _parent.SendSystem(new ChildTerminated(this));
        }
        else
        {
            CompleteTermination();
        }
    }

    private void CompleteTermination() => _terminatedTcs.TrySetResult();

    private void HandleChildTerminated(ActorCell child)
    {
        RemoveChild(child);
        if (child._thread is { } thread && !thread.Join(System.ThreadJoinTimeout))
        {
            System.Publish($"{child.Path}: dedicated thread did not exit within {System.ThreadJoinTimeout.TotalMilliseconds} ms");
        }

        child.CompleteTermination();
        _escalatedChildren?.Remove(child);
        if (_terminating)
        {
            if (ChildCount == 0)
            {
                FinishTerminate();
            }
        }
        else if (_recreateCause is not null && !AnyChildStopping())
        {
            FinishRecreate();
        }
    }

    /// <summary>A child threw: apply this actor's supervisor strategy.</summary>
    private void HandleChildFailure(ActorCell child, Exception cause)
    {
        if (_terminating || child.IsStopping || FindChild(child) is not { } record)
        {
            // Stale notice: the child is going away anyway.
            return;
        }

        SupervisorStrategy strategy = Props.SupervisorStrategy ?? SupervisorStrategy.DefaultStrategy;
        Directive directive;
        try
        {
            directive = strategy.Decider(cause);
        }
        catch (Exception ex)
        {
            System.Publish($"{Path}: supervisor decider threw {Describe(ex)}; escalating");
            directive = Directive.Escalate;
        }

        switch (directive)
        {
            case Directive.Resume:
                System.Publish($"{child.Path} failed: {Describe(cause)}; resuming");
                System.Stats.OnResume();
                child.SendSystem(Resume.Instance);
                break;

            case Directive.Restart when record.RequestRestartPermission(strategy, System.TimeProvider):
                System.Publish($"{child.Path} failed: {Describe(cause)}; restarting");
                if (strategy.AppliesToAllChildren)
                {
                    foreach (ActorCell sibling in ChildCells())
                    {
                        if (!sibling.IsStopping)
                        {
                            System.Stats.OnRestart(sibling.Path);
                            sibling.SendSystem(new Recreate(cause));
                        }
                    }
                }
                else
                {
                    System.Stats.OnRestart(child.Path);
                    child.SendSystem(new Recreate(cause));
                }

                break;

            case Directive.Restart:
                System.Publish($"{child.Path} failed: {Describe(cause)}; more than {strategy.MaxNrOfRetries} restarts within {strategy.WithinTimeRange}, stopping");
                StopForSupervision(strategy, child);
                break;

            case Directive.Stop:
                System.Publish($"{child.Path} failed: {Describe(cause)}; stopping");
                StopForSupervision(strategy, child);
                break;

            default:
                System.Publish($"{child.Path} failed: {Describe(cause)}; escalating to {Path}");
                System.Stats.OnEscalate();
                Escalate(child, cause);
                break;
        }
    }

    private void StopForSupervision(SupervisorStrategy strategy, ActorCell child)
    {
        if (!strategy.AppliesToAllChildren)
        {
            System.Stats.OnStop();
            child.RequestStop();
            return;
        }

        foreach (ActorCell sibling in ChildCells())
        {
            if (!sibling.IsStopping)
            {
                System.Stats.OnStop();
                sibling.RequestStop();
            }
        }
    }

    /// <summary>Fails this actor with the child's exception so the grandparent decides about both.</summary>
    private void Escalate(ActorCell child, Exception cause)
    {
        if (_parent is null)
        {
            // Nobody above the user guardian: stop the top-level actor rather than take the system down.
            System.Publish($"{Path}: escalation reached the user guardian; stopping {child.Path}");
            System.Stats.OnStop();
            child.RequestStop();
            return;
        }

        (_escalatedChildren ??= []).Add(child);
        if (!_suspended)
        {
            _suspended = true;
            _failedMessage = null;
            _parent.SendSystem(new Failed(this, cause));
        }
    }

    private static string Describe(Exception ex) => $"{ex.GetType().Name}: {ex.Message}";
}
