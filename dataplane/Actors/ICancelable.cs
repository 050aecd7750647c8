namespace Natd.Dataplane.Actors;

/// <summary>A handle on a scheduled delivery (Akka.NET's <c>ICancelable</c>).</summary>
public interface ICancelable
{
    /// <summary>True once <see cref="Cancel"/> was called.</summary>
    bool IsCancellationRequested { get; }

    /// <summary>
    /// Stops future deliveries. Idempotent and thread-safe. A delivery already being handed to the
    /// receiver on the timer thread may still arrive once.
    /// </summary>
    void Cancel();
}
