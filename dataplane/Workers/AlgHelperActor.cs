using Akka.Actor;
using Natd.Dataplane.Nat;
using Natd.Dataplane.Alg;
using Natd.Dataplane.Sessions;

namespace Natd.Dataplane.Workers;

/// <summary>
/// One frame of an ALG connection on its way to the ALG's helper and back to the poller that owns
/// the connection (the same object makes the round trip). Its buffer is rented: the poller returns
/// it when done.
/// </summary>
public sealed class AlgFrame
{
    /// <summary>
    /// Extra bytes a frame may grow by when a helper rewrites it: longer addresses and ports in
    /// commands, and a held partial line (up to <see cref="TcpLineAlgHandler.MaxLineLength"/>) put
    /// back in front of the rest (docs/architecture.md, "ALG control streams").
    /// </summary>
    public const int Headroom = TcpLineAlgHandler.MaxLineLength + 512;

    /// <summary>Creates a frame message.</summary>
    public AlgFrame(byte[] buffer, int length, in AlgPending pending, long requestId, IActorRef replyTo)
    {
        Buffer = buffer;
        Length = length;
        Pending = pending;
        RequestId = requestId;
        ReplyTo = replyTo;
    }

    /// <summary>The frame in its first <see cref="Length"/> bytes, with room to grow.</summary>
    public byte[] Buffer { get; }

    /// <summary>Frame length in bytes (the helper updates it).</summary>
    public int Length { get; set; }

    /// <summary>What the engine recorded when it handed the frame over.</summary>
    public AlgPending Pending { get; }

    /// <summary>The poller's number for this frame (to find it again if the helper fails).</summary>
    public long RequestId { get; }

    /// <summary>The poller to return the frame to (its mailbox wakes it out of poll(2), so the frame goes out at once).</summary>
    public IActorRef ReplyTo { get; }

    /// <summary>What the helper asks of the shard (filled by the helper).</summary>
    public AlgActions Actions { get; } = new();
}

/// <summary>Tells an ALG helper that a connection's session was deleted: it drops the connection's state (<see cref="IAlgHandler.Forget"/>).</summary>
/// <param name="Connection">The connection, as the helper's frames named it.</param>
public sealed record ForgetAlgConnection(AlgConnection Connection);

/// <summary>Ask an ALG helper to drop the state of connections idle for longer than <paramref name="IdleMs"/> (sent by a timer).</summary>
/// <param name="IdleMs">Idle time in milliseconds.</param>
public sealed record ExpireAlgState(long IdleMs);

/// <summary>Restarts of each ALG's helper (natd_alg_events_total{event="restarts"}): written by the helpers, read by /metrics.</summary>
public sealed class AlgRestarts
{
    private readonly long[] _counts = new long[Enum.GetValues<AlgKind>().Length];

    /// <summary>Restarts of <paramref name="kind"/>'s helper since start.</summary>
    public long Of(AlgKind kind) => Volatile.Read(ref _counts[(int)kind]);

    internal void Count(AlgKind kind) => Interlocked.Increment(ref _counts[(int)kind]);
}

/// <summary>
/// The helper actor of one ALG (docs/architecture.md, "ALG control connections" and "Actors"): runs its <see cref="IAlgHandler"/>
/// over the frames pollers hand it, one at a time and in arrival order (so a connection's frames
/// keep their order), and returns each frame to its poller. A failure restarts the helper with a
/// fresh handler (its supervisor's strategy; counted in <see cref="AlgRestarts"/>); the frame in
/// hand is lost, as a dropped packet would be, and the poller gives it up after its ALG timeout,
/// freeing what it had reserved for it. Packet forwarding never waits on a helper.
/// </summary>
public sealed class AlgHelperActor : UntypedActor
{
    private readonly IAlgHandler _handler;
    private readonly AlgKind _kind;
    private readonly AlgRestarts? _restarts;

    /// <summary>Creates a helper around a new handler from <paramref name="handlers"/> (called again on every restart).</summary>
    /// <param name="kind">The ALG.</param>
    /// <param name="handlers">Makes the handler.</param>
    /// <param name="restarts">Where restarts are counted; null: not counted.</param>
    public AlgHelperActor(AlgKind kind, Func<IAlgHandler> handlers, AlgRestarts? restarts)
    {
        _kind = kind;
        _handler = handlers();
        _restarts = restarts;
    }

    /// <summary>
    /// What a helper does with each frame: clears <paramref name="actions"/> and runs
    /// <paramref name="handler"/> over the frame <paramref name="pending"/> describes. `natd replay`
    /// calls it inline, in file order, where live mode goes through a helper actor; either way the
    /// frame is then finished by <see cref="NatEngine.CompleteAlg"/>.
    /// </summary>
    /// <param name="handler">The ALG's handler (single threaded: one caller at a time).</param>
    /// <param name="pending">What the engine recorded when it handed the frame over (<see cref="PacketContext.Alg"/>).</param>
    /// <param name="buffer">The frame in its first <paramref name="length"/> bytes, with room to grow (<see cref="AlgFrame.Headroom"/>).</param>
    /// <param name="length">Frame length in bytes.</param>
    /// <param name="actions">Receives the expectations, GRE calls and counts the handler asks for.</param>
    /// <param name="nowMs">Monotonic milliseconds (the capture clock in replay).</param>
    /// <returns>The frame's new length in bytes.</returns>
    public static int Run(IAlgHandler handler, in AlgPending pending, Span<byte> buffer, int length, AlgActions actions, long nowMs)
    {
        actions.Clear();
        return handler.Handle(pending.Connection, pending.Direction, buffer, length, pending.ReservedPort, actions, nowMs);
    }

    /// <inheritdoc />
    protected override void PostRestart(Exception reason)
    {
        _restarts?.Count(_kind);
        base.PostRestart(reason);
    }

    /// <inheritdoc />
    /// <remarks>A stopped or restarting helper's handler is dropped: its cumulation buffers go back to the pool.</remarks>
    protected override void PostStop() => _handler.Dispose();

    /// <inheritdoc />
    protected override void OnReceive(object message)
    {
        switch (message)
        {
            case AlgFrame f:
                f.Length = Run(_handler, f.Pending, f.Buffer, f.Length, f.Actions, Environment.TickCount64);
                f.ReplyTo.Tell(f, Self);
                break;
            case ForgetAlgConnection fc:
                _handler.Forget(fc.Connection);
                break;
            case ExpireAlgState e:
                _handler.Expire(Environment.TickCount64, e.IdleMs);
                break;
            default:
                Unhandled(message);
                break;
        }
    }
}

/// <summary>
/// Parent of the ALG helpers: one child per ALG (<c>alg-ftp</c>, ...), restarted on every failure,
/// so a crash never reaches the pollers. Restarts are not capped: stopping a helper would switch
/// its ALG off for every subscriber, which a peer that can crash it on purpose would like; a
/// restart costs only the stream state of that ALG's open connections, and every one is counted
/// (natd_alg_events_total{event="restarts"}) for an alert.
/// Messages: <see cref="ExpireAlgState"/> (passed to every helper) and <see cref="GetHelpers"/>.
/// </summary>
public sealed class AlgSupervisorActor : UntypedActor
{
    private readonly IReadOnlyList<(AlgKind Kind, Func<IAlgHandler> Factory)> _algs;
    private readonly AlgRestarts _restarts;
    private readonly IActorRef?[] _helpers = new IActorRef?[Enum.GetValues<AlgKind>().Length];

    /// <summary>Ask for the helpers; the reply is an <see cref="IReadOnlyList{T}"/> of refs indexed by <see cref="AlgKind"/> (null: that ALG is off).</summary>
    public sealed class GetHelpers
    {
        /// <summary>The one instance.</summary>
        public static readonly GetHelpers Instance = new();

        private GetHelpers()
        {
        }
    }

    /// <summary>Creates the supervisor of the given ALGs.</summary>
    /// <param name="algs">Each ALG with the factory of its handler.</param>
    /// <param name="restarts">Counts each helper's restarts.</param>
    public AlgSupervisorActor(IReadOnlyList<(AlgKind Kind, Func<IAlgHandler> Factory)> algs, AlgRestarts restarts)
    {
        _algs = algs;
        _restarts = restarts;
    }

    /// <summary>The strategy its children run under: restart, whatever the exception, without a cap.</summary>
    public static SupervisorStrategy Strategy { get; } = new OneForOneStrategy(-1, Timeout.InfiniteTimeSpan, _ => Directive.Restart);

    /// <inheritdoc />
    protected override SupervisorStrategy SupervisorStrategy() => Strategy;

    /// <inheritdoc />
    protected override void PreStart()
    {
        foreach (var (kind, factory) in _algs)
        {
            _helpers[(int)kind] = Context.ActorOf(
                Props.Create(() => new AlgHelperActor(kind, factory, _restarts)), "alg-" + kind.ToString().ToLowerInvariant());
        }
    }

    /// <inheritdoc />
    protected override void OnReceive(object message)
    {
        switch (message)
        {
            case ExpireAlgState e:
                foreach (var h in _helpers)
                {
                    h?.Tell(e, Self);
                }
                break;
            case GetHelpers:
                Sender.Tell((IReadOnlyList<IActorRef?>)_helpers.ToArray());
                break;
            default:
                Unhandled(message);
                break;
        }
    }
}
