namespace Natd.Dataplane.Actors;

/// <summary>Reply messages with a meaning to <see cref="IActorRef.Ask{T}"/> (Akka.NET's <c>Status</c>).</summary>
public static class Status
{
    /// <summary>A reply that faults the asker's task with <see cref="Cause"/>.</summary>
    /// <param name="cause">The error to surface to the asker.</param>
    public sealed class Failure(Exception cause)
    {
        /// <summary>The error the asker's task faults with.</summary>
        public Exception Cause { get; } = cause ?? throw new ArgumentNullException(nameof(cause));

        /// <inheritdoc/>
        public override string ToString() => $"Failure: {Cause.GetType().Name}: {Cause.Message}";
    }
}
