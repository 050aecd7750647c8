using Natd.Dataplane.Actors;
using Natd.Dataplane.Io;
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
    public AlgFrame(byte[] buffer, int length, in AlgPending pending, long requestId, IActorRef replyTo, Wakeup? wake)
    {
        Buffer = buffer;
        Length = length;
        Pending = pending;
        RequestId = requestId;
        ReplyTo = replyTo;
        Wake = wake;
    }

    /// <summary>The frame in its first <see cref="Length"/> bytes, with room to grow.</summary>
    public byte[] Buffer { get; }

    /// <summary>Frame length in bytes (the helper updates it).</summary>
    public int Length { get; set; }

    /// <summary>What the engine recorded when it handed the frame over.</summary>
    public AlgPending Pending { get; }

    /// <summary>The poller's number for this frame (to find it again if the helper fails).</summary>
    public long RequestId { get; }

    /// <summary>The poller to return the frame to.</summary>
    public IActorRef ReplyTo { get; }

    /// <summary>Wakes the poller out of poll(2) so the returned frame goes out at once.</summary>
    public Wakeup? Wake { get; }

    /// <summary>What the helper asks of the shard (filled by the helper).</summary>
    public AlgActions Actions { get; } = new();
}

/// <summary>Ask an ALG helper to drop the state of connections idle for longer than <paramref name="IdleMs"/> (sent by a timer).</summary>
/// <param name="IdleMs">Idle time in milliseconds.</param>
public sealed record ExpireAlgState(long IdleMs);

/// <summary>
/// The helper actor of one ALG (docs/architecture.md, "ALG control connections" and "Actors"): runs its <see cref="IAlgHandler"/>
/// over the frames pollers hand it, one at a time and in arrival order (so a connection's frames
/// keep their order), and returns each frame to its poller. A failure restarts the helper with a
/// fresh handler (its supervisor counts it); the frame in hand is lost, as a dropped packet would
/// be, and the poller frees what it had reserved for it. Packet forwarding never waits on a helper.
/// </summary>
public sealed class AlgHelperActor : ActorBase
{
    private readonly IAlgHandler _handler;

    /// <summary>Creates a helper around a handler (a new one per restart).</summary>
    public AlgHelperActor(IAlgHandler handler) => _handler = handler;

    /// <summary>Frames handled since this incarnation started (tests).</summary>
    public long Handled { get; private set; }

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
    /// <remarks>A stopped or restarting helper's handler is dropped: its cumulation buffers go back to the pool.</remarks>
    protected override void PostStop() => _handler.Dispose();

    /// <inheritdoc />
    protected override void OnReceive(object message)
    {
        switch (message)
        {
            case AlgFrame f:
                f.Length = Run(_handler, f.Pending, f.Buffer, f.Length, f.Actions, Environment.TickCount64);
                Handled++;
                f.ReplyTo.Tell(f, Self);
                f.Wake?.Signal();
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
/// Parent of the ALG helpers: one child per ALG, restarted on every failure, so a crash never
/// reaches the pollers. Restarts are not capped: stopping a helper would switch its ALG off for
/// every subscriber, which a peer that can crash it on purpose would like; a restart costs only the
/// stream state of that ALG's open connections, and every one is counted
/// (natd_alg_events_total{event="restarts"}) for an alert.
/// </summary>
public sealed class AlgSupervisorActor : ActorBase
{
    private readonly IReadOnlyList<(AlgKind Kind, Func<IAlgHandler> Factory)> _algs;
    private readonly IActorRef?[] _helpers;

    /// <summary>Creates the supervisor; <paramref name="helpers"/> (indexed by <see cref="AlgKind"/>) receives the children's refs when it starts.</summary>
    public AlgSupervisorActor(IReadOnlyList<(AlgKind Kind, Func<IAlgHandler> Factory)> algs, IActorRef?[] helpers)
    {
        _algs = algs;
        _helpers = helpers;
    }

    /// <summary>The strategy its children run under.</summary>
    public static SupervisorStrategy Strategy { get; } = new OneForOneStrategy(_ => Directive.Restart);

    /// <inheritdoc />
    protected override void PreStart()
    {
        foreach (var (kind, factory) in _algs)
        {
            var f = factory;
            _helpers[(int)kind] = Context.ActorOf(Props.Create(() => new AlgHelperActor(f())), "alg-" + kind.ToString().ToLowerInvariant());
        }
    }

    /// <inheritdoc />
    protected override void OnReceive(object message)
    {
        if (message is ExpireAlgState e)
        {
            foreach (var h in _helpers)
            {
                h?.Tell(e, Self);
            }
            return;
        }
        Unhandled(message);
    }
}
