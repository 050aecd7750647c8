using System.Runtime.CompilerServices;
using BenchmarkDotNet.Attributes;
using Natd.Benchmarks.Support;
using Natd.Dataplane.Io;
using Natd.Dataplane.Nat;

namespace Natd.Benchmarks;

/// <summary>
/// The fast path: translation of established UDP flows, a batch of 64 frames per operation, with
/// the session table holding <see cref="Sessions"/> sessions. Each operation takes the next of
/// 1024 precomputed batches whose flows were drawn at random over the whole table (so with 1M
/// sessions the look-ups miss the CPU caches as real traffic over a big table would), copies the
/// frames into the slots of a <see cref="FrameBatch"/> (translation is in place) and translates
/// them. <see cref="CopyOnly"/> does the copy alone: NAT cost per packet = total - copy.
/// <see cref="In2OutPortBlock"/> and <see cref="Out2InPortBlock"/> do the same on an engine with
/// <c>nat.allocation: port-block</c> (filled the same way, each subscriber's ports in its block):
/// the established fast path must not see the allocation mode.
/// </summary>
[BenchmarkCategory(Categories.FastPath)]
[OperationUnit("packet")]
public class EstablishedBenchmarks
{
    private const int Batches = 1024;
    private NatEngine _engine = null!;
    private FrameBatch _slots = null!;
    private readonly ParsedFrame[] _parsed = new ParsedFrame[BenchLab.BatchSize];
    private byte[] _in2out = null!;
    private byte[] _out2in = null!;
    private int _next;

    /// <summary>Sessions in the table.</summary>
    [Params(1_000, 1_000_000)]
    public int Sessions { get; set; }

    [GlobalSetup(Targets = [nameof(CopyOnly), nameof(In2Out), nameof(Out2In)])]
    public void SetupDynamic() => Setup(PortAllocation.Dynamic);

    [GlobalSetup(Targets = [nameof(In2OutPortBlock), nameof(Out2InPortBlock)])]
    public void SetupPortBlock() => Setup(PortAllocation.PortBlock);

    private void Setup(PortAllocation allocation)
    {
        _engine = BenchLab.Engine(Sessions, allocation);
        var replies = new byte[Sessions * BenchLab.Stride];
        BenchLab.Fill(_engine, Sessions, BenchLab.StartMs, replies);

        BenchLab.EstablishedFrames(Sessions, Batches * BenchLab.BatchSize, replies, out _in2out, out _out2in);
        _slots = new FrameBatch(BenchLab.BatchSize);

        // Every precomputed frame must be forwarded, or the figures would time drops.
        for (int b = 0; b < Batches; b++)
        {
            int a = In2Out(), z = Out2In();
            if (a != BenchLab.BatchSize || z != BenchLab.BatchSize)
            {
                throw new InvalidOperationException($"batch {b}: {a} in2out and {z} out2in of {BenchLab.BatchSize} forwarded (drops: {BenchLab.Drops(_engine)})");
            }
        }
        if (_engine.Table.Count != Sessions)
        {
            throw new InvalidOperationException($"the table holds {_engine.Table.Count} sessions, expected {Sessions}");
        }
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _slots.Dispose();
        _engine = null!;
        _in2out = _out2in = null!;
    }

    /// <summary>Copies a batch into the slots, nothing else: the baseline to subtract.</summary>
    [Benchmark(Baseline = true, OperationsPerInvoke = BenchLab.BatchSize)]
    public int CopyOnly()
    {
        ReadOnlySpan<byte> src = NextBatch(_in2out);
        FrameBatch slots = _slots;
        int bytes = 0;
        for (int i = 0; i < BenchLab.BatchSize; i++)
        {
            Span<byte> slot = slots.Slot(i);
            src.Slice(i * BenchLab.Stride, BenchLab.FrameLength).CopyTo(slot);
            bytes += slot[23]; // read back (as Process would) so the copy is not elided
        }
        return bytes;
    }

    /// <summary>Copies and translates a batch of established in2out frames; returns frames forwarded.</summary>
    [Benchmark(OperationsPerInvoke = BenchLab.BatchSize)]
    public int In2Out() => Run(NextBatch(_in2out), Side.Inside, Verdict.ToOutside);

    /// <summary>Copies and translates a batch of replies (out2in) to established sessions; returns frames forwarded.</summary>
    [Benchmark(OperationsPerInvoke = BenchLab.BatchSize)]
    public int Out2In() => Run(NextBatch(_out2in), Side.Outside, Verdict.ToInside);

    /// <summary><see cref="In2Out"/> with port-block allocation.</summary>
    [Benchmark(OperationsPerInvoke = BenchLab.BatchSize)]
    public int In2OutPortBlock() => Run(NextBatch(_in2out), Side.Inside, Verdict.ToOutside);

    /// <summary><see cref="Out2In"/> with port-block allocation.</summary>
    [Benchmark(OperationsPerInvoke = BenchLab.BatchSize)]
    public int Out2InPortBlock() => Run(NextBatch(_out2in), Side.Outside, Verdict.ToInside);

    private ReadOnlySpan<byte> NextBatch(byte[] frames)
    {
        int b = _next;
        _next = b + 1 == Batches ? 0 : b + 1;
        return frames.AsSpan(b * BenchLab.BatchSize * BenchLab.Stride, BenchLab.BatchSize * BenchLab.Stride);
    }

    // Not inlined, as the poller's batch loop (PollerActor.RunPort) is a method of its own: inlined
    // into each benchmark method, the loop and the engine's code took layouts from tiered PGO that
    // made copies of the same build measure 77-104 ns/packet (perf/README.md).
    [MethodImpl(MethodImplOptions.NoInlining)]
    private int Run(ReadOnlySpan<byte> src, Side ingress, Verdict expected)
    {
        NatEngine engine = _engine;
        FrameBatch slots = _slots;
        ParsedFrame[] parsed = _parsed;
        ulong seed = engine.Table.HashSeed;
        int forwarded = 0;
        // As the poller does: receive the batch, parse each frame once, then prefetch (two stages,
        // NatEngine.PrefetchBatch and PrefetchAhead) and translate.
        for (int i = 0; i < BenchLab.BatchSize; i++)
        {
            Span<byte> slot = slots.Slot(i);
            src.Slice(i * BenchLab.Stride, BenchLab.FrameLength).CopyTo(slot);
            FrameParser.Parse(slot[..BenchLab.FrameLength], ingress, seed, out parsed[i]);
        }
        ReadOnlySpan<ParsedFrame> batch = parsed.AsSpan(0, BenchLab.BatchSize);
        engine.PrefetchBatch(batch);
        for (int i = 0; i < BenchLab.BatchSize; i++)
        {
            engine.PrefetchAhead(batch, i);
            Span<byte> slot = slots.Slot(i);
            int len = BenchLab.FrameLength;
            var ctx = new PacketContext(engine.Counters, BenchLab.StartMs);
            if (engine.Process(slot, ref len, ingress, FrameFlags.None, parsed[i], ref ctx) == expected)
            {
                forwarded++;
            }
        }
        return forwarded;
    }
}
