using System.Diagnostics;
using System.Globalization;
using Natd.Benchmarks.Support;
using Natd.Dataplane.Nat;

namespace Natd.Benchmarks;

/// <summary>
/// New-session cost of each <c>nat.allocation</c> mode against dynamic, interleaved in one process
/// (<c>--allocation</c>): the three engines of <see cref="SessionSetupBenchmarks"/> (same frames,
/// same work per iteration) take turns, one iteration each per round, the order rotating every
/// round. BenchmarkDotNet runs each mode in its own process, minutes apart; on a shared machine
/// whose speed drifts between runs (this one's by up to a third) the ratio of two such runs says
/// more about the machine than about the modes. Here every round measures all three in the same
/// second, and the figure is the median over rounds of each round's ratio. Target (issue:
/// carrier-grade NAT): port-block and deterministic each at least 0.9x dynamic's sessions per second.
/// </summary>
public static class AllocationRatios
{
    /// <summary>The target: sessions per second of a carrier-grade mode over dynamic's.</summary>
    public const double Target = 0.9;

    private const int WarmupRounds = 5;

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
        for (int r = 0; r < WarmupRounds + rounds; r++)
        {
            for (int j = 0; j < modes.Length; j++)
            {
                int k = (r + j) % modes.Length;
                double perSession = Iteration(benches[k], modes[k]);
                if (r >= WarmupRounds)
                {
                    ns[k][r - WarmupRounds] = perSession;
                }
            }
        }
        foreach (var b in benches)
        {
            b.Cleanup();
        }

        Console.WriteLine($"## New sessions by allocation mode, interleaved in one process ({rounds} rounds of {SessionSetupBenchmarks.FlowsPerIteration:N0} sessions per mode)");
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

    // One iteration as BenchmarkDotNet runs it: flush (not timed), the invocations, the check.
    private static double Iteration(SessionSetupBenchmarks b, PortAllocation mode)
    {
        b.Flush();
        long start = Stopwatch.GetTimestamp();
        for (int i = 0; i < SessionSetupBenchmarks.InvocationsPerIteration; i++)
        {
            _ = mode switch
            {
                PortAllocation.PortBlock => b.NewUdpSessionsPortBlock(),
                PortAllocation.Deterministic => b.NewUdpSessionsDeterministic(),
                _ => b.NewUdpSessions(),
            };
        }
        double elapsedNs = Stopwatch.GetElapsedTime(start).TotalNanoseconds;
        b.Check();
        return elapsedNs / SessionSetupBenchmarks.FlowsPerIteration;
    }

    private static double Median(double[] values)
    {
        var sorted = (double[])values.Clone();
        Array.Sort(sorted);
        return sorted[sorted.Length / 2];
    }
}
