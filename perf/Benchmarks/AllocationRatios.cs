using System.Diagnostics;
using System.Globalization;
using Natd.Benchmarks.Support;
using Natd.Dataplane.Nat;

namespace Natd.Benchmarks;

/// <summary>
/// New-session cost of each <c>nat.allocation</c> mode against dynamic, interleaved in one process
/// (<c>--allocation</c>): the three engines of <see cref="SessionSetupBenchmarks"/> (same frames,
/// same work per iteration) take turns. BenchmarkDotNet runs each mode in its own process, minutes
/// apart; on a shared machine whose speed drifts between runs (this one's by up to a third) the
/// ratio of two such runs says more about the machine than about the modes. Here a round is one
/// iteration of each mode (flushed before, checked after), cut into chunks of
/// <see cref="ChunkInvocations"/> batches (4,096 new sessions, a few milliseconds) that the modes
/// run in turn, the order rotating every chunk: the host's slow spells, which last tens of
/// milliseconds, fall on all three alike. (One whole iteration per turn, as this mode first did,
/// put a round's ratio anywhere from 0.6 to 1.5.) The figure is the median over rounds of each
/// round's ratio of summed times. Target (issue: carrier-grade NAT): port-block and deterministic
/// each at least 0.9x dynamic's sessions per second.
/// </summary>
public static class AllocationRatios
{
    /// <summary>The target: sessions per second of a carrier-grade mode over dynamic's.</summary>
    public const double Target = 0.9;

    private const int WarmupRounds = 5;

    /// <summary>Batches of 64 new flows each mode runs per turn (4,096 sessions).</summary>
    public const int ChunkInvocations = 64;

    /// <summary>Runs the mode. Arguments: <c>[--rounds N]</c> (default 30, after 5 unmeasured).</summary>
    /// <returns>0 when both modes meet the target, 1 when one misses it, 2 on an argument error.</returns>
    public static int Run(IReadOnlyList<string> args)
    {
        int rounds = 30;
        if (!ModeArguments.TryCount(args, "--allocation", "--rounds", ref rounds))
        {
            return 2;
        }
        PortAllocation[] modes = [PortAllocation.Dynamic, PortAllocation.PortBlock, PortAllocation.Deterministic];
        var benches = new SessionSetupBenchmarks[modes.Length];
        for (int k = 0; k < modes.Length; k++)
        {
            benches[k] = new SessionSetupBenchmarks();
            switch (modes[k])
            {
                case PortAllocation.PortBlock:
                    benches[k].SetupPortBlock();
                    break;
                case PortAllocation.Deterministic:
                    benches[k].SetupDeterministic();
                    break;
                default:
                    benches[k].SetupDynamic();
                    break;
            }
        }
        var ns = new double[modes.Length][];
        for (int k = 0; k < modes.Length; k++)
        {
            ns[k] = new double[rounds];
        }
        var elapsed = new double[modes.Length];
        for (int r = 0; r < WarmupRounds + rounds; r++)
        {
            Array.Clear(elapsed);
            foreach (var b in benches)
            {
                b.Flush();
            }
            for (int c = 0; c < SessionSetupBenchmarks.InvocationsPerIteration / ChunkInvocations; c++)
            {
                for (int j = 0; j < modes.Length; j++)
                {
                    int k = (r + c + j) % modes.Length;
                    elapsed[k] += Chunk(benches[k], modes[k]);
                }
            }
            foreach (var b in benches)
            {
                b.Check();
            }
            if (r >= WarmupRounds)
            {
                for (int k = 0; k < modes.Length; k++)
                {
                    ns[k][r - WarmupRounds] = elapsed[k] / SessionSetupBenchmarks.FlowsPerIteration;
                }
            }
        }
        foreach (var b in benches)
        {
            b.Cleanup();
        }

        Console.WriteLine($"## New sessions by allocation mode, interleaved in one process ({rounds} rounds of {SessionSetupBenchmarks.FlowsPerIteration:N0} sessions per mode, in turns of {ChunkInvocations * BenchLab.BatchSize:N0})");
        Console.WriteLine();
        Console.WriteLine("| allocation | median ns/session | median sessions/s | units/s vs dynamic (median of per-round ratios) | range over rounds | target |");
        Console.WriteLine("|---|---:|---:|---:|---|---|");
        bool met = true;
        for (int k = 0; k < modes.Length; k++)
        {
            var ratios = new double[rounds];
            for (int r = 0; r < rounds; r++)
            {
                ratios[r] = ns[0][r] / ns[k][r];
            }
            double median = Median(ns[k]);
            string vs = k == 0 ? "baseline" : $"{Median(ratios):F3}x";
            string range = k == 0 ? "-" : $"{ratios.Min():F3}-{ratios.Max():F3}";
            string target = k == 0 ? "-" : Median(ratios) >= Target ? $">= {Target}x: met" : $">= {Target}x: NOT met";
            met &= k == 0 || Median(ratios) >= Target;
            Console.WriteLine($"| {Support.BenchLab.Name(modes[k])} | {median:F1} | {1e9 / median / 1e6:F2} M | {vs} | {range} | {target} |");
        }
        return met ? 0 : 1;
    }

    // One turn: ChunkInvocations invocations as BenchmarkDotNet runs them (the flush before and the
    // check after the iteration are the caller's, untimed); returns nanoseconds.
    private static double Chunk(SessionSetupBenchmarks b, PortAllocation mode)
    {
        long start = Stopwatch.GetTimestamp();
        for (int i = 0; i < ChunkInvocations; i++)
        {
            _ = mode switch
            {
                PortAllocation.PortBlock => b.NewUdpSessionsPortBlock(),
                PortAllocation.Deterministic => b.NewUdpSessionsDeterministic(),
                _ => b.NewUdpSessions(),
            };
        }
        return Stopwatch.GetElapsedTime(start).TotalNanoseconds;
    }

    private static double Median(double[] values)
    {
        var sorted = (double[])values.Clone();
        Array.Sort(sorted);
        return sorted[sorted.Length / 2];
    }
}
