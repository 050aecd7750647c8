using Natd.Dataplane.Counters;
using System.Buffers;
using System.Diagnostics;
using Akka.Actor;
using Akka.Configuration;
using Natd.Dataplane.Alg;
using Natd.Dataplane.Io;
using Natd.Dataplane.Nat;
using Natd.Dataplane.Packets;
using Natd.Dataplane.Sessions;

namespace Natd.Dataplane.Workers;

/// <summary>Tunables of a poller.</summary>
public sealed record PollerOptions
{
    /// <summary>Frames received per port per batch (VPP-style vector size).</summary>
    public int BatchSize { get; init; } = 64;

    /// <summary>
    /// Longest wait in poll(2) when idle (milliseconds). Messages do not wait for it (the mailbox
    /// signals <see cref="Wakeup"/>); it bounds how late a system message (e.g. a stop that is not
    /// a PoisonPill) is seen, and a port without a descriptor caps it at 1 ms anyway.
    /// </summary>
    public int IdleWaitMilliseconds { get; init; } = 10;

    /// <summary>
    /// The eventfd in this poller's poll set that its mailbox signals on every message; null: the
    /// shard links' wakeup of <see cref="Shard"/>. One of the two is required. Owned by the caller
    /// (it outlives restarts of the actor).
    /// </summary>
    public Wakeup? Wakeup { get; init; }

    /// <summary>CPU the poller's pinned thread is bound to in PreStart (sched_setaffinity); null: not pinned.</summary>
    public int? Cpu { get; init; }

    /// <summary>Runs in PreStart on the poller's pinned thread, after the affinity (benchmarks record the thread's id); null for none.</summary>
    public Action? OnThreadStart { get; init; }

    /// <summary>This poller's shard index.</summary>
    public int Shard { get; init; }

    /// <summary>Links to the other shards (null: a single poller).</summary>
    public ShardLinks? Links { get; init; }

    /// <summary>ALG helper actors indexed by <see cref="AlgKind"/> (null entries: that ALG is off; frames of its sessions pass untouched).</summary>
    public IReadOnlyList<IActorRef?> AlgHelpers { get; init; } = [];

    /// <summary>How long a frame may stay with an ALG helper before the poller gives it up (a helper that failed lost it), milliseconds.</summary>
    public int AlgTimeoutMilliseconds { get; init; } = (int)AlgBridge.DefaultHelperTimeoutMs;

    /// <summary>Shard 0's poller, where PPTP calls are registered with the GRE translator (null: this is shard 0).</summary>
    public IActorRef? GreOwner { get; init; }
}

/// <summary>
/// The per-core packet loop, as an Akka actor on its own pinned thread (docs/architecture.md, "One packet, ring to ring" and "Actors"):
/// receive a batch from each port, read the clock once, classify and translate each frame in place
/// with the shard's <see cref="NatEngine"/>, queue it to the egress port, flush each port once per
/// batch. Each batch is one <see cref="RunBatch"/> message that ends by telling itself the next, so
/// sweeps, session listings, settings swaps and ALG frames interleave with batches through the
/// ordinary mailbox. When no frame arrives it blocks in poll(2) on both ports and its eventfd
/// instead of spinning, so the kernel's own packet work on a shared core is not starved (adaptive
/// polling); its mailbox (<see cref="PollerMailbox"/>) signals that eventfd, so a message never waits
/// for the poll timeout. It is the only thread that touches its engine, so the session table needs
/// no lock.
/// </summary>
/// <remarks>
/// Create it with <see cref="Props(NatEngine, IPacketPort, IPacketPort, PollerOptions, PollerStats)"/> in a system whose
/// configuration includes <see cref="Hocon"/>. The engine, the ports, the stats and the wakeup come
/// from the recipe, not from the instance: an exception restarts the actor (<see cref="PollerSupervision"/>:
/// at most 10 times a minute, then it stops) with the same engine, so its sessions, port allocations
/// and in-flight ALG frames survive.
/// </remarks>
public sealed class PollerActor : UntypedActor, IFrameSink
{
    /// <summary>
    /// What a system running pollers must configure: <c>natd.poller-dispatcher</c>, a
    /// PinnedDispatcher (one thread per poller; Akka's pinned dispatchers run on fork-join-executor),
    /// and <c>natd.poller-mailbox</c>. Throughput is high because every batch is a message; fairness
    /// between actors does not apply on a thread of its own.
    /// </summary>
    public const string Hocon = """
        natd.poller-dispatcher {
          type = PinnedDispatcher
          executor = fork-join-executor
          throughput = 256
        }
        natd.poller-mailbox {
          mailbox-type = "Natd.Dataplane.Workers.PollerMailbox, Natd.Dataplane"
        }
        """;

    /// <summary><see cref="Hocon"/> parsed, with the bounded restarts of <see cref="PollerSupervision"/> for the system's top-level actors.</summary>
    public static Config Config { get; } = ConfigurationFactory.ParseString(Hocon + "\n" + PollerSupervision.Hocon);

    /// <summary>The end-of-batch message a poller tells itself: the next batch. One instance, so a batch allocates nothing.</summary>
    public sealed class RunBatch
    {
        /// <summary>The one instance.</summary>
        public static readonly RunBatch Instance = new();

        private RunBatch()
        {
        }
    }

    private readonly NatEngine _engine;
    private readonly IPacketPort _inside;
    private readonly IPacketPort _outside;
    private readonly FrameBatch _batch;
    private readonly PollerOptions _options;
    private readonly PollerStats _stats;
    private readonly ShardLinks? _links;
    private readonly int _me;
    private readonly byte[] _scratch = new byte[FrameBatch.SlotSize];
    private readonly ParsedFrame[] _parsed;
    private readonly bool[] _signal;
    private PollerMessageQueue? _queue; // this poller's own mailbox queue (set in PreStart)
    private readonly int _idleWaitMs;
    private readonly Wakeup _wake;
    private ShardMap? _map;
    private long _now;
    private IActorRef _self = ActorRefs.Nobody;
    private static readonly AlgActions NoActions = new();

    /// <summary>Creates a poller over an engine and its two ports (all owned by the caller, used only from this actor's thread once started).</summary>
    /// <exception cref="ArgumentException">Neither <see cref="PollerOptions.Wakeup"/> nor <see cref="PollerOptions.Links"/> is set.</exception>
    public PollerActor(NatEngine engine, IPacketPort inside, IPacketPort outside, PollerOptions options, PollerStats stats)
    {
        _engine = engine;
        _inside = inside;
        _outside = outside;
        _options = options;
        _stats = stats;
        _batch = new FrameBatch(options.BatchSize);
        _parsed = new ParsedFrame[_batch.Capacity];
        _idleWaitMs = options.IdleWaitMilliseconds;
        _links = options.Links;
        _me = options.Shard;
        _signal = new bool[_links?.Shards ?? 1];
        _wake = options.Wakeup ?? _links?.WakeupOf(_me)
            ?? throw new ArgumentException("a poller needs a wakeup: PollerOptions.Wakeup or PollerOptions.Links", nameof(options));
        engine.AttachSink(this);
        engine.AlgBridge.HelperTimeoutMs = options.AlgTimeoutMilliseconds;
    }

    /// <summary>
    /// The recipe of a poller: its pinned dispatcher, its waking mailbox, and the engine, ports and
    /// stats every incarnation (the first and each restart) runs over.
    /// </summary>
    /// <param name="engine">The shard's engine.</param>
    /// <param name="inside">Inside port.</param>
    /// <param name="outside">Outside port.</param>
    /// <param name="options">Tunables, shard links, ALG helpers, wakeup.</param>
    /// <param name="stats">The shard's poller counters.</param>
    /// <returns>The props; the actor system must include <see cref="Hocon"/>.</returns>
    public static Props Props(NatEngine engine, IPacketPort inside, IPacketPort outside, PollerOptions options, PollerStats stats) =>
        Akka.Actor.Props.Create(() => new PollerActor(engine, inside, outside, options, stats))
            .WithDispatcher("natd.poller-dispatcher")
            .WithMailbox("natd.poller-mailbox");

    /// <summary>Monotonic milliseconds, the engine's clock in live operation.</summary>
    public static long NowMs => Environment.TickCount64;

    /// <summary>
    /// One <see cref="RunBatch"/>: a batch from each port (and the hand-off rings), or, when none
    /// came, one wait in poll(2); then the next batch goes to the back of the mailbox, behind
    /// whatever control message arrived meanwhile.
    /// </summary>
    private void OnRunBatch()
    {
        // Batches follow each other in one message while frames keep coming and nothing waits in
        // the mailbox (checked after every batch, so a control message still waits at most one
        // batch): a message round trip per batch costs most when batches are small, which is when
        // frames arrive about as fast as the poller handles them.
        if (_engine.AlgBridge.ClosedCount > 0)
        {
            ForgetClosedAlgConnections(); // sessions deleted by the last batch, a sweep, a delete or a flush
        }
        PollerMessageQueue? queue = _queue;
        for (int k = 0; k < BatchesPerMessage; k++)
        {
            if (!RunOnce())
            {
                if (k == 0)
                {
                    Idle();
                }
                break;
            }
            if (queue is null || queue.HasMessages)
            {
                break;
            }
        }
        _self.Tell(RunBatch.Instance, ActorRefs.NoSender);
    }

    /// <summary>Most batches one <see cref="RunBatch"/> runs while frames keep coming and the mailbox stays empty.</summary>
    public const int BatchesPerMessage = 16;

    /// <summary>Receives, translates and transmits one batch; true when it carried frames.</summary>
    private bool RunOnce()
    {
        long start = _stats.Histograms.Begin();
        _now = NowMs;
        _map = _links?.Map;
        int n = RunPort(_inside, Side.Inside) + RunPort(_outside, Side.Outside);
        if (_links is not null)
        {
            n += DrainHandoffs();
            SignalOwners();
        }
        _inside.Flush();
        _outside.Flush();
        if (n > 0)
        {
            long end = Stopwatch.GetTimestamp();
            _stats.BusyTicks += end - start;
            _stats.Batches++;
            _stats.Histograms.End(start, end);
        }
        return n > 0;
    }

    private int RunPort(IPacketPort port, Side side)
    {
        FrameBatch batch = _batch;
        batch.Clear();
        int n = port.Receive(batch);
        ShardMap? map = _map;
        ParsedFrame[] parsed = _parsed;
        ulong seed = _engine.Table.HashSeed;
        // Parse once per frame: prefetch, routing and translation all read these headers.
        for (int i = 0; i < n; i++)
        {
            FrameParser.Parse(batch.Slot(i)[..batch.Lengths[i]], side, seed, out parsed[i]);
        }
        // Two-stage prefetch (index slot, then session, frames ahead of translation): hides the
        // cache misses of a table bigger than the caches, as VPP's frame loops do.
        ReadOnlySpan<ParsedFrame> frames = parsed.AsSpan(0, n);
        _engine.PrefetchBatch(frames);
        for (int i = 0; i < n; i++)
        {
            _engine.PrefetchAhead(frames, i);
            int len = batch.Lengths[i];
            Span<byte> slot = batch.Slot(i);
            if (map is not null)
            {
                ReadOnlySpan<byte> frame = slot[..len];
                if (parsed[i].EtherType == EtherType.Arp)
                {
                    // Every shard keeps its own neighbour table: let the others learn from ARP too.
                    Broadcast(frame, side);
                }
                else
                {
                    int owner = map.Owner(parsed[i], frame);
                    if (owner >= 0 && owner != _me)
                    {
                        HandOff(owner, frame, side, learnOnly: false, batch.Flags[i]);
                        continue;
                    }
                }
            }
            ProcessLocal(slot, len, side, batch.Flags[i], in parsed[i], batch, i);
        }
        _stats.FramesReceived += n;
        // Frames lent by an AF_XDP pair and not transmitted (dropped, held, handed off, given to a
        // helper: those copied) go back to the UMEM now, not at the next receive.
        batch.Clear();
        return n;
    }

    /// <summary>Parses and translates a frame that did not come from a receive batch (a hand-off's copy).</summary>
    private void ProcessLocal(Span<byte> slot, int len, Side side, FrameFlags flags)
    {
        FrameParser.Parse(slot[..len], side, _engine.Table.HashSeed, out ParsedFrame p);
        ProcessLocal(slot, len, side, flags, in p);
    }

    /// <summary>Translates one parsed frame in place and transmits it; <paramref name="batch"/> is where it lives (null: a copy, e.g. a hand-off), so a port can forward the buffer itself.</summary>
    private void ProcessLocal(Span<byte> slot, int len, Side side, FrameFlags flags, in ParsedFrame parsed, FrameBatch? batch = null, int index = 0)
    {
        var ctx = new PacketContext(_engine.Counters, _now);
        // A hairpinned frame another shard masqueraded is finished as an outside arrival, not re-run through Process.
        Verdict v = (flags & FrameFlags.Hairpinned) != 0
            ? _engine.ProcessHairpinned(slot, ref len, ref ctx)
            : _engine.Process(slot, ref len, side, flags, parsed, ref ctx);
        if (v == Verdict.Loopback)
        {
            // Hairpinned, and its destination (external address, port) is another shard's: the same
            // hairpin path runs there. A map swapped by a reload since the engine decided may name us.
            int owner = _map?.Owner(slot[..len], Side.Outside) ?? -1;
            if (owner >= 0 && owner != _me)
            {
                HandOff(owner, slot[..len], Side.Outside, learnOnly: false, FrameFlags.Hairpinned);
                return;
            }
            v = _engine.ProcessHairpinned(slot, ref len, ref ctx);
        }
        if (v == Verdict.ToOutside)
        {
            Forward(_outside, slot, len, batch, index);
        }
        else if (v == Verdict.ToInside)
        {
            Forward(_inside, slot, len, batch, index);
        }
        else if (v == Verdict.ToHelper)
        {
            ToHelper(slot[..len], ctx.Alg);
        }
        else if (v == Verdict.ToShard)
        {
            // An inbound fragment: its datagram met here, its first fragment named the owner.
            HandOff(ctx.Shard, slot[..len], side, learnOnly: false, flags | FrameFlags.FragmentRouted);
        }
    }

    /// <summary>Gives a translated ALG frame to its helper (slow path: one copy into a rented buffer).</summary>
    private void ToHelper(ReadOnlySpan<byte> frame, in AlgPending p)
    {
        IActorRef? helper = (int)p.Kind < _options.AlgHelpers.Count ? _options.AlgHelpers[(int)p.Kind] : null;
        if (helper is null)
        {
            // The ALG is not running here: the frame goes as translated.
            Span<byte> copy = _scratch.AsSpan(0, frame.Length);
            frame.CopyTo(copy);
            var ctx = new PacketContext(_engine.Counters, _now);
            Finish(_engine.CompleteAlg(_scratch, frame.Length, p, NoActions, ref ctx), _scratch.AsSpan(), frame.Length);
            return;
        }
        if (_engine.AlgBridge.ClosedCount > 0)
        {
            ForgetClosedAlgConnections(); // first: this frame may open a new connection on a closed one's ports
        }
        byte[] buffer = ArrayPool<byte>.Shared.Rent(frame.Length + AlgFrame.Headroom);
        frame.CopyTo(buffer);
        long id = _engine.AlgBridge.Begin(p, _now);
        helper.Tell(new AlgFrame(buffer, frame.Length, p, id, _self), _self);
    }

    /// <summary>Tells each deleted ALG session's helper to drop the connection (slow path: a message per closed ALG connection).</summary>
    private void ForgetClosedAlgConnections()
    {
        AlgBridge bridge = _engine.AlgBridge;
        for (int i = 0; i < bridge.ClosedCount; i++)
        {
            AlgConnection c = bridge.Closed(i, out AlgKind kind);
            IActorRef? helper = (int)kind < _options.AlgHelpers.Count ? _options.AlgHelpers[(int)kind] : null;
            helper?.Tell(new ForgetAlgConnection(c), _self);
        }
        bridge.ClearClosed();
    }

    /// <summary>A frame back from its helper: open what it asked for and transmit.</summary>
    private void FromHelper(AlgFrame f)
    {
        try
        {
            if (!_engine.AlgBridge.End(f.RequestId))
            {
                return; // given up on already (it took longer than the timeout): its reservations are gone
            }
            int len = f.Length;
            var ctx = new PacketContext(_engine.Counters, NowMs);
            Finish(_engine.CompleteAlg(f.Buffer, len, f.Pending, f.Actions, ref ctx), f.Buffer, len);
            if (f.Actions.GreCalls.Count > 0)
            {
                ForwardGreCalls(f.Actions.GreCalls);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(f.Buffer);
        }
    }

    private void Finish(Verdict v, Span<byte> buffer, int len)
    {
        if (v == Verdict.ToOutside)
        {
            Transmit(_outside, buffer[..len]);
        }
        else if (v == Verdict.ToInside)
        {
            Transmit(_inside, buffer[..len]);
        }
    }

    /// <summary>PPTP calls go to the GRE translator, which lives in shard 0 with the other port-less protocols.</summary>
    private void ForwardGreCalls(List<GreCall> calls)
    {
        if (_options.GreOwner is null || _me == 0)
        {
            foreach (GreCall c in calls)
            {
                _engine.ApplyGreCall(c, NowMs);
            }
            return;
        }
        _options.GreOwner.Tell(new ApplyGreCalls([.. calls]), _self); // its mailbox wakes it
    }

    private unsafe bool HandOff(int owner, ReadOnlySpan<byte> frame, Side side, bool learnOnly, FrameFlags flags)
    {
        if (_links is null || (uint)owner >= (uint)_links.Shards || owner == _me)
        {
            _stats.HandoffDrops++;
            return false;
        }
        var ring = _links!.Ring(_me, owner);
        HandoffFrame h;
        h.Length = frame.Length;
        h.Side = side;
        h.LearnOnly = learnOnly ? (byte)1 : (byte)0;
        h.Flags = flags;
        frame.CopyTo(new Span<byte>(h.Data, FrameBatch.SlotSize));
        if (ring.TryEnqueue(h))
        {
            _stats.Handoffs++;
            _signal[owner] = true;
            return true;
        }
        _stats.HandoffDrops++;
        return false;
    }

    private void Broadcast(ReadOnlySpan<byte> frame, Side side)
    {
        for (int j = 0; j < _links!.Shards; j++)
        {
            if (j != _me)
            {
                HandOff(j, frame, side, learnOnly: true, FrameFlags.None);
            }
        }
    }

    private unsafe int DrainHandoffs()
    {
        int total = 0;
        int budget = _batch.Capacity;
        for (int j = 0; j < _links!.Shards; j++)
        {
            if (j == _me)
            {
                continue;
            }
            var ring = _links.Ring(j, _me);
            for (int k = 0; k < budget && ring.TryDequeue(out HandoffFrame h); k++)
            {
                var src = new ReadOnlySpan<byte>(h.Data, h.Length);
                if (h.LearnOnly != 0)
                {
                    _engine.LearnFromArp(src, h.Side);
                    continue;
                }
                src.CopyTo(_scratch);
                ProcessLocal(_scratch, h.Length, h.Side, h.Flags);
                total++;
            }
        }
        return total;
    }

    private void SignalOwners()
    {
        for (int j = 0; j < _signal.Length; j++)
        {
            if (_signal[j])
            {
                _signal[j] = false;
                _links!.WakeupOf(j).Signal();
            }
        }
    }

    /// <summary>Transmits a translated frame: from its batch slot with TryForward (an AF_XDP pair sends the UMEM buffer itself), else as a copy.</summary>
    private void Forward(IPacketPort port, Span<byte> slot, int len, FrameBatch? batch, int index)
    {
        if (batch is null)
        {
            Transmit(port, slot[..len]);
        }
        else if (port.TryForward(batch, index, len))
        {
            _stats.FramesTransmitted++;
        }
        else
        {
            _engine.Counters.Drops[(int)DropReason.TxFull]++;
        }
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
    bool IFrameSink.HandOff(int shard, Side side, ReadOnlySpan<byte> frame, FrameFlags flags) => HandOff(shard, frame, side, learnOnly: false, flags);

    /// <summary>
    /// Blocks in poll(2) on both ports and the eventfd for at most the idle wait; the eventfd is
    /// drained after the wait, before the next batch is told, so a message queued meanwhile is
    /// either ahead of that batch or signals again.
    /// </summary>
    private void Idle()
    {
        _stats.IdleWaits++;
        PortPoller.Wait(_inside, _outside, _wake.Descriptor, _idleWaitMs);
        _wake.Drain();
    }

    /// <inheritdoc />
    protected override void PreStart()
    {
        if (_options.Cpu is int cpu)
        {
            CpuAffinity.PinCurrentThread(cpu); // a refused CPU leaves the thread unpinned, as before
        }
        _options.OnThreadStart?.Invoke();
        _self = Self;
        if (Context is not ActorCell { Mailbox.MessageQueue: PollerMessageQueue queue })
        {
            throw new InvalidOperationException($"{Self.Path} needs mailbox natd.poller-mailbox (create it with PollerActor.Props)");
        }
        queue.Attach(_wake);
        _queue = queue;
        // Start (or, after a restart, resume) the loop. A restart caused by a control message
        // leaves the old RunBatch queued as well; the two then take turns, which changes nothing
        // but the order of idle waits.
        _self.Tell(RunBatch.Instance, ActorRefs.NoSender);
    }

    /// <inheritdoc />
    protected override void OnReceive(object message)
    {
        if (ReferenceEquals(message, RunBatch.Instance))
        {
            OnRunBatch();
            return;
        }
        switch (message)
        {
            case GetSessions:
                var list = new List<SessionInfo>(_engine.Table.Count);
                _engine.CollectSessions(list, NowMs);
                Sender.Tell(list);
                break;
            case AlgFrame f:
                FromHelper(f);
                break;
            case GetSubscribers:
                var subscribers = new List<SubscriberInfo>();
                _engine.CollectSubscribers(subscribers);
                Sender.Tell(subscribers);
                break;
            case GetBlocks:
                var blocks = new List<BlockInfo>();
                _engine.CollectBlocks(blocks, NowMs);
                Sender.Tell(blocks);
                break;
            case GetExpectations:
                var expectations = new List<ExpectationInfo>(_engine.ExpectationCount);
                _engine.CollectExpectations(expectations, NowMs);
                Sender.Tell(expectations);
                break;
            case ApplyGreCalls g:
                foreach (GreCall c in g.Calls)
                {
                    _engine.ApplyGreCall(c, NowMs);
                }
                break;
            case SweepSlice sweep:
                // The engine's sweep gives up frames a helper kept too long (AlgBridge.Sweep).
                int deleted = _engine.Sweep(NowMs, sweep.Budget);
                Sender.Tell(deleted);
                break;
            case DeleteSession d:
                Sender.Tell(_engine.DeleteSessions(d.Protocol, d.InsideAddress, d.InsidePort, d.RemoteAddress, d.RemotePort));
                break;
            case ExportState:
                var records = new List<SessionRecord>(_engine.Table.Count);
                _engine.ExportSessions(records, NowMs);
                var pcp = new List<PcpMappingRecord>();
                _engine.ExportPcpMappings(pcp, NowMs);
                Sender.Tell(new ShardState(records, _engine.Neighbours(Side.Inside), _engine.Neighbours(Side.Outside), pcp));
                break;
            case GetPcpMappings:
                var mappings = new List<PcpMappingInfo>();
                _engine.CollectPcpMappings(mappings, NowMs);
                Sender.Tell(mappings);
                break;
            case DeletePcpMapping dm:
                Sender.Tell(_engine.DeletePcpMapping(dm.Protocol, dm.Address, dm.Port, dm.External, NowMs) ? 1 : 0);
                break;
            case FlushSessions flush:
                Sender.Tell(flush.External == 0 ? _engine.Flush() : _engine.FlushExternal(flush.External));
                break;
            case CheckSettings check:
                string? no = _engine.CheckSettings(check.Settings);
                Sender.Tell(new ApplyResult(no is null, no, check.Id));
                break;
            case ApplyLinkMtus mtus:
                _engine.SetLinkMtus(mtus.Inside, mtus.Outside);
                break;
            case ApplySettings apply:
                string? why = _engine.UpdateSettings(apply.Settings);
                if (why is null && _links is not null && _me == 0)
                {
                    // Forwards and the pool steer traffic: the map follows the new settings (same seed: subscribers stay put).
                    _links.Map = new ShardMap(apply.Settings, _links.Shards, _links.Map.Seed);
                }
                Sender.Tell(new ApplyResult(why is null, why, apply.Id));
                break;
            default:
                Unhandled(message);
                break;
        }
    }

    /// <inheritdoc />
    protected override void PostStop()
    {
        // The wakeup, the engine and the ports are the recipe's: a restart runs on over them.
        _batch.Dispose();
        base.PostStop();
    }
}

/// <summary>
/// The poller's slots of its shard's counter table (single writer: its thread): a view, the
/// values live in the one table (<see cref="NatCounters"/>), read by other threads through its view.
/// </summary>
public sealed class PollerStats
{
    private readonly CounterTable _t;

    /// <summary>Stats over a table of their own (tests, tools).</summary>
    public PollerStats() : this(new CounterTable(new CounterSchema(ShardCounters.Declarations)))
    {
    }

    /// <summary>Stats over the shard's table (the engine's <see cref="NatCounters.Table"/>).</summary>
    public PollerStats(CounterTable table)
    {
        _t = table;
        Histograms = new BatchHistograms(table);
    }

    /// <summary>Per-batch distributions: frames received and transmitted, poll-to-transmit latency.</summary>
    public BatchHistograms Histograms { get; }

    /// <summary>Stopwatch timestamp when the poller was created (the busy ratio's denominator starts here).</summary>
    public long StartedTicks = Stopwatch.GetTimestamp();
    /// <summary>Frames received from both ports.</summary>
    public ref long FramesReceived => ref _t[(int)ShardCounter.FramesReceived];
    /// <summary>Frames queued for transmission on both ports.</summary>
    public ref long FramesTransmitted => ref _t[(int)ShardCounter.FramesTransmitted];
    /// <summary>Batches that carried at least one frame.</summary>
    public ref long Batches => ref _t[(int)ShardCounter.Batches];
    /// <summary>Stopwatch ticks spent on batches with frames (busy ratio = BusyTicks / elapsed).</summary>
    public ref long BusyTicks => ref _t[(int)ShardCounter.BusyTicks];
    /// <summary>Times the poller blocked in poll(2) for lack of frames.</summary>
    public ref long IdleWaits => ref _t[(int)ShardCounter.IdleWaits];
    /// <summary>Frames handed to the poller that owns their flow.</summary>
    public ref long Handoffs => ref _t[(int)ShardCounter.Handoffs];
    /// <summary>Frames that could not be handed off (the owner's ring was full).</summary>
    public ref long HandoffDrops => ref _t[(int)ShardCounter.HandoffDrops];
}
