namespace Natd.Dataplane.Actors;

/// <summary>
/// Delivers messages to actors later or periodically (Akka.NET's <c>IScheduler</c> tell methods).
/// All schedules share one timer from the system's <see cref="TimeProvider"/>; there is no Task or
/// timer per schedule. Deliveries call <see cref="IActorRef.Tell"/> on the timer thread.
/// </summary>
public interface IScheduler
{
    /// <summary>
    /// Tells <paramref name="message"/> to <paramref name="receiver"/> once, after <paramref name="delay"/>.
    /// A zero or negative delay tells at once on the calling thread.
    /// After the system terminated, nothing is scheduled and an already cancelled handle is returned.
    /// </summary>
    /// <param name="delay">Time until delivery.</param>
    /// <param name="receiver">Destination actor.</param>
    /// <param name="message">Message delivered (the same instance every time).</param>
    /// <param name="sender">Sender the receiver sees, or null for none (dead letters).</param>
    /// <returns>A handle that cancels the delivery.</returns>
    /// <exception cref="ArgumentNullException">receiver or message is null.</exception>
    ICancelable ScheduleTellOnce(TimeSpan delay, IActorRef receiver, object message, IActorRef? sender = null);

    /// <summary>
    /// Tells <paramref name="message"/> to <paramref name="receiver"/> after <paramref name="initialDelay"/>
    /// and then every <paramref name="interval"/> until cancelled or the system terminates. Missed
    /// ticks (a stalled clock or timer thread) are not replayed in a burst: the next tick is one interval
    /// after the late one.
    /// </summary>
    /// <param name="initialDelay">Time until the first delivery; zero or negative means at the next timer tick.</param>
    /// <param name="interval">Period between deliveries; must be positive.</param>
    /// <param name="receiver">Destination actor.</param>
    /// <param name="message">Message delivered (the same instance every time).</param>
    /// <param name="sender">Sender the receiver sees, or null for none (dead letters).</param>
    /// <returns>A handle that cancels all future deliveries.</returns>
    /// <exception cref="ArgumentNullException">receiver or message is null.</exception>
    /// <exception cref="ArgumentOutOfRangeException">interval is zero or negative.</exception>
    ICancelable ScheduleTellRepeatedly(TimeSpan initialDelay, TimeSpan interval, IActorRef receiver, object message, IActorRef? sender = null);
}
