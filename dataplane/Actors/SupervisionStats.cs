using System.Collections.Concurrent;

namespace Natd.Dataplane.Actors;

/// <summary>
/// System-wide supervision counters, for the control plane's metrics (e.g. "ALG helper restarts").
/// Monotonic, updated with interlocked operations, readable from any thread.
/// </summary>
public sealed class SupervisionStats
{
    private long _failures;
    private long _restarts;
    private long _resumes;
    private long _stops;
    private long _escalations;
    private readonly ConcurrentDictionary<string, long> _restartsByPath = new(StringComparer.Ordinal);

    /// <summary>Exceptions thrown by actor code (handlers, RunOnce, Idle, start hooks).</summary>
    public long Failures => Volatile.Read(ref _failures);

    /// <summary>Restarts ordered by supervisors (each restarted actor counts once).</summary>
    public long Restarts => Volatile.Read(ref _restarts);

    /// <summary>Resume directives applied.</summary>
    public long Resumes => Volatile.Read(ref _resumes);

    /// <summary>Children stopped by supervision (Stop directive or restart budget exhausted).</summary>
    public long Stops => Volatile.Read(ref _stops);

    /// <summary>Escalate directives applied.</summary>
    public long Escalations => Volatile.Read(ref _escalations);

    /// <summary>Restarts of one actor over the system's life; keeps counting across stop and re-create under the same path.</summary>
    /// <param name="actor">The actor.</param>
    /// <returns>Restart count, 0 if never restarted.</returns>
    public long RestartsOf(IActorRef actor)
    {
        ArgumentNullException.ThrowIfNull(actor);
        return _restartsByPath.TryGetValue(actor.Path, out long n) ? n : 0;
    }

    internal void OnFailure() => Interlocked.Increment(ref _failures);

    internal void OnResume() => Interlocked.Increment(ref _resumes);

    internal void OnStop() => Interlocked.Increment(ref _stops);

    internal void OnEscalate() => Interlocked.Increment(ref _escalations);

    internal void OnRestart(string path)
    {
        Interlocked.Increment(ref _restarts);
        _restartsByPath.AddOrUpdate(path, 1, static (_, n) => n + 1);
    }
}
