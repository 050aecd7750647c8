using System.Diagnostics;
using Natd.Dataplane.Actors;
using Natd.Dataplane.Io;
using Natd.Dataplane.Nat;

namespace Natd.Dataplane.Workers;

/// <summary>Tunables of a poller.</summary>
public sealed record PollerOptions
{
    /// <summary>Frames received per port per batch (VPP-style vector size).</summary>
    public int BatchSize { get; init; } = 64;

    /// <summary>Longest wait in poll(2) when idle, so mailbox messages are seen promptly (milliseconds).</summary>
    public int IdleWaitMilliseconds { get; init; } = 10;
}

/// <summary>
/// The per-core packet loop, as an actor with a dedicated thread (DESIGN.md sections 4 and 6):
/// receive a batch from each port, read the clock once, classify and translate each frame in place
/// with the shard's <see cref="NatEngine"/>, queue it to the egress port, flush each port once per
/// batch. Between batches it drains its mailbox (sweeps, session listings, settings swaps); when no
/// frame arrives it blocks in poll(2) on both ports instead of spinning, so the kernel's own
/// packet work on a shared core is not starved (adaptive polling). It is the only thread that
/// touches its engine, so the session table needs no lock.
/// </summary>
public sealed class PollerActor : LoopActor, IFrameSink
{
    private readonly NatEngine _engine;
    private readonly IPacketPort _inside;
    private readonly IPacketPort _outside;
    private readonly FrameBatch _batch;
    private readonly PollerOptions _options;
    private readonly PollerStats _stats;

    /// <summary>Creates a poller over an engine and its two ports (all owned by the caller, used only from this actor's thread once started).</summary>
    public PollerActor(NatEngine engine, IPacketPort inside, IPacketPort outside, PollerOptions options, PollerStats stats)
    {
        _engine = engine;
        _inside = inside;
        _outside = outside;
        _options = options;
        _stats = stats;
        _batch = new FrameBatch(options.BatchSize);
        IdleWait = TimeSpan.FromMilliseconds(options.IdleWaitMilliseconds);
        engine.AttachSink(this);
    }

    /// <summary>Monotonic milliseconds, the engine's clock in live operation.</summary>
    public static long NowMs => Environment.TickCount64;

    /// <inheritdoc />
    protected override bool RunOnce()
    {
        long start = Stopwatch.GetTimestamp();
        long now = NowMs;
        int n = RunPort(_inside, Side.Inside, now) + RunPort(_outside, Side.Outside, now);
        _inside.Flush();
        _outside.Flush();
        if (n > 0)
        {
            _stats.BusyTicks += Stopwatch.GetTimestamp() - start;
            _stats.Batches++;
        }
        return n > 0;
    }

    private int RunPort(IPacketPort port, Side side, long now)
    {
        FrameBatch batch = _batch;
        batch.Clear();
        int n = port.Receive(batch);
        for (int i = 0; i < n; i++)
        {
            int len = batch.Lengths[i];
            Span<byte> slot = batch.Slot(i);
            Verdict v = _engine.Process(slot, ref len, side, batch.Flags[i], now);
            if (v == Verdict.ToOutside)
            {
                Transmit(_outside, slot[..len]);
            }
            else if (v == Verdict.ToInside)
            {
                Transmit(_inside, slot[..len]);
            }
        }
        _stats.FramesReceived += n;
        return n;
    }

    private void Transmit(IPacketPort port, ReadOnlySpan<byte> frame)
    {
        if (port.TrySend(frame))
        {
            _stats.FramesTransmitted++;
        }
        else
        {
            _engine.Counters.Drops[(int)DropReason.TxFull]++;
        }
    }

    /// <inheritdoc />
    bool IFrameSink.Send(Side side, ReadOnlySpan<byte> frame)
    {
        IPacketPort port = side == Side.Inside ? _inside : _outside;
        if (!port.TrySend(frame))
        {
            return false;
        }
        _stats.FramesTransmitted++;
        return true;
    }

    /// <inheritdoc />
    protected override void Idle(TimeSpan maxWait)
    {
        _stats.IdleWaits++;
        PortPoller.Wait(_inside, _outside, (int)maxWait.TotalMilliseconds);
    }

    /// <inheritdoc />
    protected override void OnReceive(object message)
    {
        switch (message)
        {
            case GetSessions:
                var list = new List<SessionInfo>(_engine.Table.Count);
                _engine.CollectSessions(list, NowMs);
                Sender.Tell(list);
                break;
            case SweepSlice sweep:
                int deleted = _engine.Sweep(NowMs, sweep.Budget);
                Sender.Tell(deleted);
                break;
            case DeleteSession d:
                Sender.Tell(_engine.DeleteSessions(d.Protocol, d.InsideAddress, d.InsidePort, d.RemoteAddress, d.RemotePort));
                break;
            case ExportState:
                var records = new List<SessionRecord>(_engine.Table.Count);
                _engine.ExportSessions(records, NowMs);
                Sender.Tell(new ShardState(records, _engine.Neighbours(Side.Inside), _engine.Neighbours(Side.Outside)));
                break;
            case FlushSessions:
                Sender.Tell(_engine.Flush());
                break;
            case ApplySettings apply:
                string? why = _engine.UpdateSettings(apply.Settings);
                Sender.Tell(new ApplyResult(why is null, why));
                break;
            default:
                Unhandled(message);
                break;
        }
    }

    /// <inheritdoc />
    protected override void PostStop()
    {
        _batch.Dispose();
        base.PostStop();
    }
}

/// <summary>Counters of one poller (single writer: its thread).</summary>
public sealed class PollerStats
{
    /// <summary>Stopwatch timestamp when the poller was created (the busy ratio's denominator starts here).</summary>
    public long StartedTicks = Stopwatch.GetTimestamp();
    /// <summary>Frames received from both ports.</summary>
    public long FramesReceived;
    /// <summary>Frames queued for transmission on both ports.</summary>
    public long FramesTransmitted;
    /// <summary>Batches that carried at least one frame.</summary>
    public long Batches;
    /// <summary>Stopwatch ticks spent on batches with frames (busy ratio = BusyTicks / elapsed).</summary>
    public long BusyTicks;
    /// <summary>Times the poller blocked in poll(2) for lack of frames.</summary>
    public long IdleWaits;
}
