using System.Runtime.CompilerServices;
using BenchmarkDotNet.Attributes;
using Natd.Benchmarks.Support;
using Natd.Dataplane.Io;
using Natd.Dataplane.Nat;

namespace Natd.Benchmarks;

/// <summary>
/// The slow path: each operation translates the first frame of 64 new UDP flows, each from a new
/// inside endpoint, so each costs a miss in the session index, a mapping look-up, a port
/// allocation, a mapping and a session (both directions indexed, rewrite precomputed). One method
/// per <c>nat.allocation</c>, each on its own engine and the same frames, so one run prints all
/// three with their ratio to dynamic (the baseline): <see cref="NewUdpSessions"/> (dynamic, RFC 6056
/// over the whole range), <see cref="NewUdpSessionsPortBlock"/> (RFC 6056 inside the subscriber's
/// block, a block taken on the subscriber's first flow) and <see cref="NewUdpSessionsDeterministic"/>
/// (RFC 7422: inside the subscriber's fixed range). Frames are pregenerated; the table is flushed
/// before every iteration so it never fills, and holds at most <see cref="FlowsPerIteration"/>
/// sessions. The 64-byte frame copy into the slot is included, and each batch is parsed once and
/// prefetched as the poller does it (a new flow's mapping and subscriber slots load in stage two).
/// </summary>
[BenchmarkCategory(Categories.SlowPath)]
[OperationUnit("session")]
[InvocationCount(InvocationsPerIteration, 1)]
public class SessionSetupBenchmarks
{
    /// <summary>Invocations (batches of 64 new flows) per iteration.</summary>
    public const int InvocationsPerIteration = 4096;

    /// <summary>New sessions per iteration.</summary>
    public const int FlowsPerIteration = InvocationsPerIteration * BenchLab.BatchSize;

    private NatEngine _engine = null!;
    private FrameBatch _slots = null!;
    private readonly ParsedFrame[] _parsed = new ParsedFrame[BenchLab.BatchSize];
    private byte[] _frames = null!;
    private int _next;
    private int _notForwarded;

    [GlobalSetup(Target = nameof(NewUdpSessions))]
    public void SetupDynamic() => Setup(PortAllocation.Dynamic);

    [GlobalSetup(Target = nameof(NewUdpSessionsPortBlock))]
    public void SetupPortBlock() => Setup(PortAllocation.PortBlock);

    [GlobalSetup(Target = nameof(NewUdpSessionsDeterministic))]
    public void SetupDeterministic() => Setup(PortAllocation.Deterministic);

    private void Setup(PortAllocation allocation)
    {
        _engine = BenchLab.Engine(FlowsPerIteration, allocation);
        _frames = new byte[FlowsPerIteration * BenchLab.Stride];
        for (int i = 0; i < FlowsPerIteration; i++)
        {
            BenchLab.WriteIn2Out(_frames.AsSpan(i * BenchLab.Stride), i);
        }
        _slots = new FrameBatch(BenchLab.BatchSize);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _slots.Dispose();
        _engine = null!;
        _frames = null!;
    }

    /// <summary>
    /// Empties the table. With port blocks, a subscriber's emptied block rests in quarantine
    /// (<c>nat.port-reuse-delay</c>, the engine clock stands still) still held by it, so later
    /// iterations reuse it: the block take is in the first iteration only, as in a subscriber's
    /// steady state, where one block serves hundreds of sessions.
    /// </summary>
    [IterationSetup]
    public void Flush()
    {
        _engine.Flush();
        _next = 0;
        _notForwarded = 0;
    }

    [IterationCleanup]
    public void Check()
    {
        // Each frame must have made a session: otherwise the figure would mix in drops.
        if (_notForwarded != 0 || _engine.Table.Count != _next)
        {
            throw new InvalidOperationException($"{_notForwarded} new flows not forwarded; {_engine.Table.Count} sessions for {_next} flows (drops: {BenchLab.Drops(_engine)})");
        }
    }

    /// <summary>Creates 64 sessions with dynamic allocation (the baseline); returns frames forwarded.</summary>
    [Benchmark(Baseline = true, OperationsPerInvoke = BenchLab.BatchSize)]
    public int NewUdpSessions() => Run();

    /// <summary>Creates 64 sessions with <c>nat.allocation: port-block</c> (blocks of <see cref="BenchLab.BlockSize"/>); returns frames forwarded.</summary>
    [Benchmark(OperationsPerInvoke = BenchLab.BatchSize)]
    public int NewUdpSessionsPortBlock() => Run();

    /// <summary>Creates 64 sessions with <c>nat.allocation: deterministic</c> (4096 subscribers, 504 ports each); returns frames forwarded.</summary>
    [Benchmark(OperationsPerInvoke = BenchLab.BatchSize)]
    public int NewUdpSessionsDeterministic() => Run();

    [MethodImpl(MethodImplOptions.NoInlining)] // a method of its own, as the poller's batch loop is (EstablishedBenchmarks.Run)
    private int Run()
    {
        NatEngine engine = _engine;
        FrameBatch slots = _slots;
        int first = _next;
        if (first + BenchLab.BatchSize > FlowsPerIteration)
        {
            first = 0; // only if BenchmarkDotNet ever runs more invocations than declared
        }
        ReadOnlySpan<byte> src = _frames.AsSpan(first * BenchLab.Stride, BenchLab.BatchSize * BenchLab.Stride);
        ParsedFrame[] parsed = _parsed;
        ulong seed = engine.Table.HashSeed;
        int forwarded = 0;
        // As the poller does (PollerActor.RunBatch): receive the batch, parse each frame once, then
        // prefetch (two stages, NatEngine.PrefetchBatch and PrefetchAhead) and translate.
        for (int i = 0; i < BenchLab.BatchSize; i++)
        {
            Span<byte> slot = slots.Slot(i);
            src.Slice(i * BenchLab.Stride, BenchLab.FrameLength).CopyTo(slot);
            FrameParser.Parse(slot[..BenchLab.FrameLength], Side.Inside, seed, out parsed[i]);
        }
        ReadOnlySpan<ParsedFrame> batch = parsed.AsSpan(0, BenchLab.BatchSize);
        engine.PrefetchBatch(batch);
        for (int i = 0; i < BenchLab.BatchSize; i++)
        {
            engine.PrefetchAhead(batch, i);
            Span<byte> slot = slots.Slot(i);
            int len = BenchLab.FrameLength;
            var ctx = new PacketContext(engine.Counters, BenchLab.StartMs);
            if (engine.Process(slot, ref len, Side.Inside, FrameFlags.None, parsed[i], ref ctx) == Verdict.ToOutside)
            {
                forwarded++;
            }
        }
        _next = first + BenchLab.BatchSize;
        _notForwarded += BenchLab.BatchSize - forwarded;
        return forwarded;
    }
}
