namespace Natd.Dataplane.Actors;

/// <summary>
/// An actor that owns a dedicated background thread and does work between messages, such as a packet
/// poller. Its thread loops: handle up to <see cref="Props.Throughput"/> mailbox messages (system
/// messages first), call <see cref="RunOnce"/>, and when that did no work and the mailbox is empty,
/// call <see cref="Idle"/>. Exceptions from <see cref="RunOnce"/> or <see cref="Idle"/> go through
/// supervision like any failure. Stopping ends the loop; the supervisor joins the thread (bounded).
/// </summary>
public abstract class LoopActor : ActorBase
{
    /// <summary>Longest time one <see cref="Idle"/> call may wait; 10 ms unless set by the subclass.</summary>
    protected TimeSpan IdleWait { get; set; } = TimeSpan.FromMilliseconds(10);

    /// <summary>Does one batch of work (e.g. one RX burst).</summary>
    /// <returns>True if it did work, so the loop runs again at once; false lets the loop idle.</returns>
    protected abstract bool RunOnce();

    /// <summary>
    /// Waits when there was no work. The default sleeps until a message arrives or
    /// <paramref name="maxWait"/> passes. A poller overrides it to block in poll(2) for at most
    /// <paramref name="maxWait"/>; messages then wait for that timeout, so keep it short.
    /// </summary>
    /// <param name="maxWait">Upper bound on the wait (<see cref="IdleWait"/>).</param>
    protected virtual void Idle(TimeSpan maxWait) => WaitForMailbox(maxWait);

    /// <summary>Blocks until a message (user or system) is queued or <paramref name="maxWait"/> passes.</summary>
    /// <param name="maxWait">Upper bound on the wait.</param>
    /// <returns>True if woken by a message.</returns>
    protected bool WaitForMailbox(TimeSpan maxWait) => Cell.WaitForMailbox(maxWait);

    internal bool InvokeRunOnce() => RunOnce();

    internal void InvokeIdle() => Idle(IdleWait);
}
