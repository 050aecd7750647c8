using BenchmarkDotNet.Attributes;
using Natd.Benchmarks.Support;
using Natd.Dataplane.Io;
using Natd.Dataplane.Nat;

namespace Natd.Benchmarks;

/// <summary>
/// The slow path: each operation translates the first frame of 64 new UDP flows, each from a new
/// inside endpoint, so each costs a miss in the session index, a mapping look-up, an RFC 6056 port
/// allocation, a mapping and a session (both directions indexed, rewrite precomputed). Frames are
/// pregenerated; the table is flushed before every iteration so it never fills, and holds at most
/// <see cref="FlowsPerIteration"/> sessions. The 64-byte frame copy into the slot is included.
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
    private byte[] _frames = null!;
    private int _next;
    private int _notForwarded;

    [GlobalSetup]
    public void Setup()
    {
        _engine = new NatEngine(Configure(BenchLab.Settings(FlowsPerIteration)), BenchLab.InsideMac, BenchLab.OutsideMac, new EngineOptions { Seed = 0x5eed });
        _frames = new byte[FlowsPerIteration * BenchLab.Stride];
        for (int i = 0; i < FlowsPerIteration; i++)
        {
            BenchLab.WriteIn2Out(_frames.AsSpan(i * BenchLab.Stride), i);
        }
        _slots = new FrameBatch(BenchLab.BatchSize);
    }

    /// <summary>The variant's settings: the lab's as they are (dynamic allocation) here.</summary>
    protected virtual NatSettings Configure(NatSettings settings) => settings;

    [GlobalCleanup]
    public void Cleanup()
    {
        _slots.Dispose();
        _engine = null!;
        _frames = null!;
    }

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

    /// <summary>Creates 64 sessions; returns frames forwarded.</summary>
    [Benchmark(OperationsPerInvoke = BenchLab.BatchSize)]
    public int NewUdpSessions()
    {
        NatEngine engine = _engine;
        FrameBatch slots = _slots;
        int first = _next;
        if (first + BenchLab.BatchSize > FlowsPerIteration)
        {
            first = 0; // only if BenchmarkDotNet ever runs more invocations than declared
        }
        ReadOnlySpan<byte> src = _frames.AsSpan(first * BenchLab.Stride, BenchLab.BatchSize * BenchLab.Stride);
        int forwarded = 0;
        for (int i = 0; i < BenchLab.BatchSize; i++)
        {
            Span<byte> slot = slots.Slot(i);
            src.Slice(i * BenchLab.Stride, BenchLab.FrameLength).CopyTo(slot);
            int len = BenchLab.FrameLength;
            var ctx = new PacketContext(engine.Counters, BenchLab.StartMs);
            if (engine.Process(slot, ref len, Side.Inside, FrameFlags.None, ref ctx) == Verdict.ToOutside)
            {
                forwarded++;
            }
        }
        _next = first + BenchLab.BatchSize;
        _notForwarded += BenchLab.BatchSize - forwarded;
        return forwarded;
    }
}

/// <summary>
/// <see cref="SessionSetupBenchmarks"/> with deterministic allocation (RFC 7422) on the same
/// traffic: the 4096 inside hosts (10.16.0.0/20) are the subscribers, 128 per pool address and
/// 504 ports each, so each new flow costs a prefix walk and a range-limited RFC 6056 allocation
/// instead of a whole-range one. Every flow must still get a session (checked per iteration).
/// </summary>
[BenchmarkCategory(Categories.SlowPath)]
[OperationUnit("session")]
[InvocationCount(InvocationsPerIteration, 1)]
public class DeterministicSessionSetupBenchmarks : SessionSetupBenchmarks
{
    /// <inheritdoc />
    protected override NatSettings Configure(NatSettings settings) => settings with
    {
        Cgnat = new CgnatSettings
        {
            Allocation = PortAllocation.Deterministic,
            Deterministic = new DeterministicSettings([Natd.Dataplane.Packets.Ipv4Prefix.Parse("10.16.0.0/20")]),
        },
    };
}
