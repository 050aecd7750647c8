namespace Natd.Dataplane.Actors;

/// <summary>
/// A handle on an actor (Akka.NET's <c>IActorRef</c>): the only way to reach it. Thread-safe.
/// Two references are equal when their <see cref="Path"/>s are equal (ordinal), so a restarted actor
/// keeps its identity.
/// </summary>
public interface IActorRef
{
    /// <summary>The actor's address, e.g. <c>akka://natd/user/alg-ftp</c>.</summary>
    string Path { get; }

    /// <summary>
    /// Queues <paramref name="message"/> for the actor and returns at once (fire and forget).
    /// Messages from one sender thread arrive in the order they were told. When the actor's bounded
    /// mailbox is full the message is dropped and counted (<see cref="ActorSystem.MailboxDropCount"/>);
    /// when the actor is stopped it goes to dead letters.
    /// </summary>
    /// <param name="message">Any non-null object; treat it as immutable once sent.</param>
    /// <param name="sender">Who the receiver sees as <see cref="ActorBase.Sender"/>; null means none (dead letters).</param>
    /// <exception cref="ArgumentNullException">message is null.</exception>
    void Tell(object message, IActorRef? sender = null);

    /// <summary>
    /// Sends <paramref name="message"/> with a temporary reply reference as sender and waits for the
    /// first reply the actor sends with <c>Sender.Tell(reply)</c>. Never block on the result from inside
    /// an actor: await it or pipe it back.
    /// </summary>
    /// <typeparam name="T">Expected reply type.</typeparam>
    /// <param name="message">The request.</param>
    /// <param name="timeout">How long to wait for the reply; measured on the system's <see cref="TimeProvider"/>.</param>
    /// <param name="ct">Cancels the wait.</param>
    /// <returns>The reply.</returns>
    /// <exception cref="AskTimeoutException">No reply within <paramref name="timeout"/>.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="ct"/> was cancelled.</exception>
    /// <exception cref="InvalidCastException">The reply is not a <typeparamref name="T"/>.</exception>
    /// <remarks>A reply of <see cref="Status.Failure"/> faults the task with its <see cref="Status.Failure.Cause"/>.</remarks>
    Task<T> Ask<T>(object message, TimeSpan timeout, CancellationToken ct = default);
}
