namespace Natd.Dataplane.Actors;

/// <summary>Helpers on <see cref="IActorRef"/> that Akka.NET also offers as extension methods.</summary>
public static class ActorRefExtensions
{
    /// <summary>
    /// Tells the actor <see cref="PoisonPill"/> (it stops after the messages already queued) and waits
    /// until it has fully stopped: children stopped, PostStop run, dedicated thread joined.
    /// </summary>
    /// <param name="actor">An actor created by this process's <see cref="ActorSystem"/>.</param>
    /// <param name="timeout">How long to wait (real time).</param>
    /// <returns>True if it stopped within <paramref name="timeout"/>; false also when the pill was dropped by a full mailbox.</returns>
    /// <exception cref="ArgumentException">Not a local actor.</exception>
    public static async Task<bool> GracefulStop(this IActorRef actor, TimeSpan timeout)
    {
        ArgumentNullException.ThrowIfNull(actor);
        Task stopped = ActorSystem.WhenStopped(actor);
        actor.Tell(PoisonPill.Instance);
        try
        {
            await stopped.WaitAsync(timeout).ConfigureAwait(false);
            return true;
        }
        catch (TimeoutException)
        {
            return false;
        }
    }
}
