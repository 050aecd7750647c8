using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;

namespace Natd.Benchmarks.Support;

/// <summary>
/// The allocation budget of the fast path, checked after a run: every benchmark in category
/// <see cref="Categories.FastPath"/> must allocate nothing, and every benchmark of the run must have
/// produced results (Garnet gates allocation budgets in CI the same way).
/// </summary>
/// <remarks>
/// MemoryDiagnoser reads <c>GC.GetTotalAllocatedBytes(precise: true)</c>, which is process-wide:
/// the runtime's own background work adds a few hundred bytes to a few KB to every measurement
/// whatever the benchmark does (seen here: 64 B to 9 KB over millions of operations). So a
/// benchmark allocates when either (a) it allocates at least half a byte per operation (what
/// BenchmarkDotNet prints as 1 B or more), or (b) it allocates at least
/// <see cref="BytesPerInvocationLimit"/> bytes per invocation: the smallest object is 24 bytes, so
/// one allocation per batch of 64 packets (0.375 B/packet, which BenchmarkDotNet rounds to 0) is caught,
/// while the runtime's fixed few KB spread over thousands of invocations is not.
/// </remarks>
public static class AllocationGate
{
    /// <summary>Bytes per benchmark invocation at or above which a fast-path benchmark fails (half the smallest object).</summary>
    public const double BytesPerInvocationLimit = 12;

    /// <summary>True when the benchmark's category puts it under the zero-allocation rule.</summary>
    public static bool IsGated(BenchmarkCase benchmarkCase)
        => Array.IndexOf(benchmarkCase.Descriptor.Categories, Categories.FastPath) >= 0;

    /// <summary>
    /// Bytes allocated per operation as measured by MemoryDiagnoser, unrounded, or null when not measured.
    /// </summary>
    public static double? BytesPerOperation(BenchmarkReport report)
    {
        long? total = report.GcStats.GetTotalAllocatedBytes(excludeAllocationQuantumSideEffects: false);
        long ops = report.GcStats.TotalOperations;
        return total is null || ops <= 0 ? null : (double)total.Value / ops;
    }

    /// <summary>Bytes per operation as BenchmarkDotNet prints them (rounded), or null when not measured.</summary>
    public static long? DisplayedBytesPerOperation(BenchmarkReport report)
        => report.GcStats.GetBytesAllocatedPerOperation(report.BenchmarkCase);

    /// <summary>Whether a measured benchmark breaks the zero-allocation rule (see the remarks); null when not measured.</summary>
    public static bool? Allocates(BenchmarkReport report)
    {
        double? perOp = BytesPerOperation(report);
        if (perOp is null)
        {
            return null;
        }
        double perInvocation = perOp.Value * report.BenchmarkCase.Descriptor.OperationsPerInvoke;
        return perOp.Value >= 0.5 || perInvocation >= BytesPerInvocationLimit;
    }

    /// <summary>Lists the problems of a run (empty when it passes): failed benchmarks, fast-path allocations.</summary>
    public static List<string> Check(IEnumerable<Summary> summaries)
    {
        var problems = new List<string>();
        foreach (Summary summary in summaries)
        {
            if (summary.HasCriticalValidationErrors)
            {
                foreach (var error in summary.ValidationErrors)
                {
                    problems.Add($"validation: {error.Message}");
                }
            }
            foreach (BenchmarkCase benchmarkCase in summary.BenchmarksCases)
            {
                string name = CompactReport.Name(benchmarkCase);
                BenchmarkReport? report = summary[benchmarkCase];
                if (report is null || !report.Success || report.ResultStatistics is null)
                {
                    problems.Add($"{name}: failed, no results");
                    continue;
                }
                if (!IsGated(benchmarkCase))
                {
                    continue;
                }
                bool? allocates = Allocates(report);
                if (allocates is null)
                {
                    problems.Add($"{name}: allocation not measured (MemoryDiagnoser missing?)");
                }
                else if (allocates.Value)
                {
                    long total = report.GcStats.GetTotalAllocatedBytes(false) ?? 0;
                    double perOp = BytesPerOperation(report) ?? 0;
                    problems.Add(string.Format(System.Globalization.CultureInfo.InvariantCulture,
                        "{0}: allocates {1:0.###} B/op ({2:0.#} B per invocation of {3} ops; {4} B over {5} ops) in a {6} benchmark, which must allocate nothing",
                        name, perOp, perOp * benchmarkCase.Descriptor.OperationsPerInvoke, benchmarkCase.Descriptor.OperationsPerInvoke,
                        total, report.GcStats.TotalOperations, Categories.FastPath));
                }
            }
        }
        return problems;
    }
}
