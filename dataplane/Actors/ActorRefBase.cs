using System.Runtime.ExceptionServices;

namespace Natd.Dataplane.Actors;

/// <summary>Shared plumbing of the built-in references: path equality and Ask.</summary>
internal abstract class ActorRefBase(ActorSystem system, string path) : IActorRef, IEquatable<IActorRef>
{
    public ActorSystem System { get; } = system;

    public string Path { get; } = path;

    public abstract void Tell(object message, IActorRef? sender = null);

    public Task<T> Ask<T>(object message, TimeSpan timeout, CancellationToken ct = default) =>
        AskCore<T>(this, System, message, timeout, ct);

    public bool Equals(IActorRef? other) => other is not null && string.Equals(Path, other.Path, StringComparison.Ordinal);

    public override bool Equals(object? obj) => obj is IActorRef other && Equals(other);

    public override int GetHashCode() => StringComparer.Ordinal.GetHashCode(Path);

    public override string ToString() => Path;

    /// <summary>Ask through a one-shot promise reference that the reply completes.</summary>
    internal static async Task<T> AskCore<T>(IActorRef target, ActorSystem system, object message, TimeSpan timeout, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(message);
        var promise = new PromiseActorRef(system);
        target.Tell(message, promise);
        object reply;
        try
        {
            reply = await promise.Task.WaitAsync(timeout, system.TimeProvider, ct).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            throw new AskTimeoutException($"Ask to {target.Path} timed out after {timeout.TotalMilliseconds} ms ({message.GetType().Name}).");
        }
        finally
        {
            promise.Close();
        }

        if (reply is Status.Failure failure)
        {
            ExceptionDispatchInfo.Capture(failure.Cause).Throw();
        }

        return reply is T typed
            ? typed
            : throw new InvalidCastException($"Ask to {target.Path} expected {typeof(T).Name} but got {reply.GetType().Name}.");
    }
}

/// <summary>Reference to a live (or stopped) actor cell.</summary>
internal sealed class LocalActorRef(ActorCell cell) : ActorRefBase(cell.System, cell.Path)
{
    public ActorCell Cell { get; } = cell;

    public override void Tell(object message, IActorRef? sender = null)
    {
        ArgumentNullException.ThrowIfNull(message);
        Cell.SendUser(message, sender);
    }
}

/// <summary>Sink for messages nobody can handle: counted, otherwise discarded.</summary>
internal sealed class DeadLetterActorRef(ActorSystem system) : ActorRefBase(system, $"akka://{system.Name}/deadLetters")
{
    public override void Tell(object message, IActorRef? sender = null)
    {
        ArgumentNullException.ThrowIfNull(message);
        System.OnDeadLetter();
    }
}

/// <summary>Temporary reply address of one Ask: the first message told to it completes the task.</summary>
internal sealed class PromiseActorRef : ActorRefBase
{
    private static long s_next;
    private readonly TaskCompletionSource<object> _tcs = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public PromiseActorRef(ActorSystem system)
        : base(system, $"akka://{system.Name}/temp/${Interlocked.Increment(ref s_next)}")
    {
    }

    public Task<object> Task => _tcs.Task;

    public override void Tell(object message, IActorRef? sender = null)
    {
        ArgumentNullException.ThrowIfNull(message);
        if (!_tcs.TrySetResult(message))
        {
            // A second reply, or a reply after the asker gave up.
            System.OnDeadLetter();
        }
    }

    /// <summary>Marks the promise done so late replies count as dead letters.</summary>
    public void Close() => _tcs.TrySetCanceled();
}
