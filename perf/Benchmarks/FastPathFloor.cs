using System.Diagnostics;
using System.Globalization;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics.X86;
using Natd.Benchmarks.Support;
using Natd.Dataplane.Io;
using Natd.Dataplane.Nat;
using Natd.Dataplane.Sessions;

namespace Natd.Benchmarks;

/// <summary>
/// Where an established frame's time goes, and what this machine's memory allows (<c>--floor</c>).
/// Three tables, all measured in one process:
/// <list type="number">
/// <item>TLB reach: a pointer chase over N cache lines, each on its own 4 KiB page of memory
/// allocated the way the session table's is (<c>LargeArrays</c>: pinned, MADV_HUGEPAGE). With 2 MiB
/// translations in the TLB the cost stays flat as N grows; where it climbs past a couple of thousand
/// pages, the TLB holds 4 KiB translations (a hypervisor backing guest memory with small pages) and
/// every random access to a big table is also a page walk.</item>
/// <item>Random pages a frame: frames each touching 1 or 2 random lines on distinct pages (as a
/// look-up touches an index line and a session), prefetched 12 frames ahead as the engine does,
/// over 2 MiB (cached) and 128 MiB: the extra nanoseconds are the memory's floor under a table
/// bigger than the caches.</item>
/// <item>The established path in stages, a batch of 64 as <see cref="EstablishedBenchmarks"/>
/// runs it: copy into the slots; + parse; + session look-up without the prefetch pipeline; +
/// prefetch pipeline and look-up; + translation (the whole path). Each column's difference from
/// the one before is that stage's cost (the look-up without prefetch against parse alone).</item>
/// </list>
/// Figures are medians of five windows, ns per load or per frame; each stage first runs 0.5 s untimed.
/// </summary>
public static class FastPathFloor
{
    private const int Batch = BenchLab.BatchSize;
    private const int Batches = 1024;
    private const int WarmUpMillis = 500;

    /// <summary>
    /// Runs the mode. Arguments: <c>[--sessions N[,N...]]</c> (default 1000,1000000),
    /// <c>[--millis M]</c> per window (default 300).
    /// </summary>
    /// <returns>0 when every row ran, 2 on a bad argument.</returns>
    public static int Run(IReadOnlyList<string> args)
    {
        int[] sessions = [1_000, 1_000_000];
        int millis = 300;
        for (int i = 0; i < args.Count; i++)
        {
            string value = i + 1 < args.Count ? args[i + 1] : "";
            if (args[i] == "--sessions" && TryCounts(value, out int[] s))
            {
                sessions = s;
                i++;
            }
            else if (args[i] == "--millis" && int.TryParse(value, CultureInfo.InvariantCulture, out int m) && m > 0)
            {
                millis = m;
                i++;
            }
            else
            {
                Console.Error.WriteLine($"--floor: unknown or malformed argument '{args[i]}' (--sessions N[,N], --millis M)");
                return 2;
            }
        }
        Console.WriteLine($"## Fast-path floor: {Environment.ProcessorCount} cores, .NET {Environment.Version}, medians of 5 windows of {millis} ms");
        Console.WriteLine();
        TlbReach(millis);
        Console.WriteLine();
        RandomPages(millis);
        Console.WriteLine();
        Console.WriteLine("| Sessions | Direction | copy | + parse | + look-up, no prefetch | + prefetch, look-up | + translation (whole path) |");
        Console.WriteLine("|---:|---|---:|---:|---:|---:|---:|");
        foreach (int n in sessions)
        {
            var path = new StagedPath(n);
            foreach (Side side in new[] { Side.Inside, Side.Outside })
            {
                double[] t = new double[5];
                for (int stage = 0; stage < t.Length; stage++)
                {
                    // Untimed first: tiered compilation needs some hundreds of milliseconds of calls
                    // before a stage runs its tier-1 code (short windows alone measured tier 0).
                    path.Run(side, stage, WarmUpMillis);
                    t[stage] = Median(() => path.Run(side, stage, millis));
                }
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"| {n:N0} | {(side == Side.Inside ? "in2out" : "out2in")} | {t[0]:F1} | {t[1]:F1} | {t[4]:F1} | {t[2]:F1} | {t[3]:F1} |"));
            }
        }
        return 0;
    }

    private static bool TryCounts(string value, out int[] counts)
    {
        string[] parts = value.Split(',');
        counts = new int[parts.Length];
        for (int i = 0; i < parts.Length; i++)
        {
            if (!int.TryParse(parts[i], CultureInfo.InvariantCulture, out counts[i]) || counts[i] <= 0)
            {
                return false;
            }
        }
        return parts.Length > 0;
    }

    private static double Median(Func<double> window)
    {
        double[] w = new double[5];
        for (int i = 0; i < w.Length; i++)
        {
            w[i] = window();
        }
        Array.Sort(w);
        return w[w.Length / 2];
    }

    private static unsafe void TlbReach(int millis)
    {
        const int Page = 4096;
        int[] counts = [512, 1024, 2048, 4096, 8192, 16384];
        byte[] memory = LargeArrays.AllocatePinned<byte>(counts[^1] * Page + LargeArrays.HugePage);
        Console.WriteLine("| Lines chased | packed (ns/load) | one per 4 KiB page (ns/load) | pages spanned (MiB) |");
        Console.WriteLine("|---:|---:|---:|---:|");
        fixed (byte* start = memory)
        {
            // From a 2 MiB boundary, where the huge-page advice took.
            byte* b = (byte*)(((nint)start + LargeArrays.HugePage - 1) & ~(nint)(LargeArrays.HugePage - 1));
            foreach (int n in counts)
            {
                double packed = Median(() => Chase(b, n, 64, millis));
                // Vary the line within the page so the lines spread over the cache's sets.
                double spread = Median(() => Chase(b, n, Page, millis));
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| {n:N0} | {packed:F1} | {spread:F1} | {n * (long)Page >> 20} |"));
            }
        }
    }

    /// <summary>A dependent chase over <paramref name="n"/> lines <paramref name="stride"/> bytes apart, in a random cycle.</summary>
    private static unsafe double Chase(byte* b, int n, int stride, int millis)
    {
        var rng = new Random(7);
        int[] order = new int[n];
        for (int i = 0; i < n; i++)
        {
            order[i] = i;
        }
        rng.Shuffle(order);
        for (int i = 0; i < n; i++)
        {
            *(nint*)Line(b, order[i], stride) = (nint)Line(b, order[(i + 1) % n], stride);
        }
        nint p = (nint)Line(b, order[0], stride);
        for (int i = 0; i < 4 * n; i++)
        {
            p = *(nint*)p;
        }
        long loads = 0;
        var sw = Stopwatch.StartNew();
        while (sw.ElapsedMilliseconds < millis)
        {
            for (int i = 0; i < 100_000; i++)
            {
                p = *(nint*)p;
            }
            loads += 100_000;
        }
        GC.KeepAlive(p);
        return sw.Elapsed.TotalNanoseconds / loads;
    }

    private static unsafe byte* Line(byte* b, int i, int stride)
        => stride == 64 ? b + i * 64L : b + i * (long)stride + (i / 32 % 64) * 64L;

    private static unsafe void RandomPages(int millis)
    {
        const int Small = 2 << 20, Large = 128 << 20;
        byte[] memory = LargeArrays.AllocatePinned<byte>(Large + LargeArrays.HugePage);
        Console.WriteLine("| Random lines a frame | 2 MiB (ns/frame) | 128 MiB (ns/frame) | floor (ns/frame) |");
        Console.WriteLine("|---:|---:|---:|---:|");
        fixed (byte* start = memory)
        {
            byte* b = (byte*)(((nint)start + LargeArrays.HugePage - 1) & ~(nint)(LargeArrays.HugePage - 1));
            for (int k = 1; k <= 2; k++)
            {
                int lines = k;
                double cached = Median(() => Frames(b, Small, lines, millis));
                double big = Median(() => Frames(b, Large, lines, millis));
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| {k} | {cached:F1} | {big:F1} | {big - cached:F1} |"));
            }
        }
    }

    /// <summary>Frames of <paramref name="lines"/> random lines each (distinct pages), each prefetched 12 frames ahead, then read.</summary>
    private static unsafe double Frames(byte* b, long span, int lines, int millis)
    {
        const int Distance = 12, N = 1 << 16;
        var rng = new Random(11);
        long[] at = new long[N * lines];
        for (int i = 0; i < at.Length; i++)
        {
            at[i] = rng.NextInt64(span / 64) * 64;
        }
        long frames = 0;
        ulong sum = 0;
        var sw = Stopwatch.StartNew();
        while (sw.ElapsedMilliseconds < millis)
        {
            for (int f = 0; f < N; f++)
            {
                if (f + Distance < N)
                {
                    for (int j = 0; j < lines; j++)
                    {
                        Sse.Prefetch0(b + at[(f + Distance) * lines + j]);
                    }
                }
                for (int j = 0; j < lines; j++)
                {
                    sum += *(ulong*)(b + at[f * lines + j]);
                }
                sum = Mix(sum);
            }
            frames += N;
        }
        GC.KeepAlive(sum);
        return sw.Elapsed.TotalNanoseconds / frames;
    }

    // A few nanoseconds of dependent work a frame, standing in for a translation.
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static ulong Mix(ulong x)
    {
        for (int i = 0; i < 5; i++)
        {
            x = (x * 0x9E3779B97F4A7C15UL) ^ (x >> 29);
        }
        return x;
    }

    /// <summary>The benchmark's engine and frames, run a stage at a time.</summary>
    private sealed class StagedPath
    {
        private readonly NatEngine _engine;
        private readonly FrameBatch _slots = new(Batch);
        private readonly ParsedFrame[] _parsed = new ParsedFrame[Batch];
        private readonly byte[] _in2out;
        private readonly byte[] _out2in;

        public StagedPath(int sessions)
        {
            _engine = BenchLab.Engine(sessions);
            var replies = new byte[sessions * BenchLab.Stride];
            BenchLab.Fill(_engine, sessions, BenchLab.StartMs, replies);
            BenchLab.EstablishedFrames(sessions, Batches * Batch, replies, out _in2out, out _out2in);
        }

        /// <summary>
        /// ns per frame of stages 0..<paramref name="stage"/> (copy, parse, prefetch and look-up,
        /// translation), or with <paramref name="stage"/> 4 of copy, parse and look-up without the prefetch pipeline.
        /// </summary>
        public double Run(Side side, int stage, int millis) => (stage, side) switch
        {
            (0, Side.Inside) => Window<Copy, In>(millis),
            (1, Side.Inside) => Window<Parse, In>(millis),
            (2, Side.Inside) => Window<LookUp, In>(millis),
            (3, Side.Inside) => Window<Translate, In>(millis),
            (4, Side.Inside) => Window<LookUpOnly, In>(millis),
            (0, _) => Window<Copy, Out>(millis),
            (1, _) => Window<Parse, Out>(millis),
            (2, _) => Window<LookUp, Out>(millis),
            (4, _) => Window<LookUpOnly, Out>(millis),
            _ => Window<Translate, Out>(millis),
        };

        // Each stage and direction is its own instantiation over structs, so its own JIT code with its
        // own tiered-PGO profile: one method shared by all eight would be compiled for their mix.
        private double Window<TStage, TSide>(int millis)
            where TStage : struct, IStage
            where TSide : struct, IDirection
        {
            byte[] src = default(TSide).Side == Side.Inside ? _in2out : _out2in;
            long frames = 0;
            long sink = 0;
            var sw = Stopwatch.StartNew();
            while (sw.ElapsedMilliseconds < millis)
            {
                for (int b = 0; b < Batches; b++)
                {
                    sink += RunBatch<TStage, TSide>(src.AsSpan(b * Batch * BenchLab.Stride, Batch * BenchLab.Stride));
                }
                frames += Batches * Batch;
            }
            GC.KeepAlive(sink);
            return sw.Elapsed.TotalNanoseconds / frames;
        }

        [MethodImpl(MethodImplOptions.NoInlining)]
        private long RunBatch<TStage, TSide>(ReadOnlySpan<byte> src)
            where TStage : struct, IStage
            where TSide : struct, IDirection
        {
            int stage = default(TStage).Stage;
            Side side = default(TSide).Side;
            NatEngine engine = _engine;
            SessionTable table = engine.Table;
            ulong seed = table.HashSeed;
            long sink = 0;
            // Copy and parse as EstablishedBenchmarks.Run does.
            for (int i = 0; i < Batch; i++)
            {
                Span<byte> slot = _slots.Slot(i);
                src.Slice(i * BenchLab.Stride, BenchLab.FrameLength).CopyTo(slot);
                if (stage >= 1)
                {
                    FrameParser.Parse(slot[..BenchLab.FrameLength], side, seed, out _parsed[i]);
                }
                sink += slot[23];
            }
            if (stage < 2)
            {
                return sink + _parsed[0].Hash;
            }
            ReadOnlySpan<ParsedFrame> batch = _parsed;
            if (stage != 4)
            {
                engine.PrefetchBatch(batch);
            }
            for (int i = 0; i < Batch; i++)
            {
                if (stage != 4)
                {
                    engine.PrefetchAhead(batch, i);
                }
                ref readonly ParsedFrame p = ref _parsed[i];
                if (stage != 3)
                {
                    sink += side == Side.Inside ? table.FindIn2Out(p.Key, p.Hash) : table.FindOut2In(p.Key, p.Hash);
                    continue;
                }
                int len = BenchLab.FrameLength;
                var ctx = new PacketContext(engine.Counters, BenchLab.StartMs);
                sink += (int)engine.Process(_slots.Slot(i), ref len, side, FrameFlags.None, p, ref ctx);
            }
            return sink;
        }
    }

    private interface IStage
    {
        int Stage { get; }
    }

    private struct Copy : IStage
    {
        public readonly int Stage => 0;
    }

    private struct Parse : IStage
    {
        public readonly int Stage => 1;
    }

    private struct LookUp : IStage
    {
        public readonly int Stage => 2;
    }

    private struct Translate : IStage
    {
        public readonly int Stage => 3;
    }

    private struct LookUpOnly : IStage
    {
        public readonly int Stage => 4;
    }

    private interface IDirection
    {
        Side Side { get; }
    }

    private struct In : IDirection
    {
        public readonly Side Side => Side.Inside;
    }

    private struct Out : IDirection
    {
        public readonly Side Side => Side.Outside;
    }
}
