using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;

namespace Natd.Benchmarks.Support;

/// <summary>
/// The allocation budget of the fast path, checked after a run: every benchmark in category
/// <see cref="Categories.FastPath"/> must allocate 0 bytes per operation, and every benchmark of the
/// run must have produced results. Garnet gates allocation budgets in CI the same way.
/// </summary>
public static class AllocationGate
{
    /// <summary>True when the benchmark's category puts it under the zero-allocation rule.</summary>
    public static bool IsGated(BenchmarkCase benchmarkCase)
        => Array.IndexOf(benchmarkCase.Descriptor.Categories, Categories.FastPath) >= 0;

    /// <summary>
    /// Bytes allocated per operation as measured by MemoryDiagnoser, or null when not measured. Not
    /// rounded: BenchmarkDotNet's own per-operation figure rounds, so 32 bytes over 4096 operations
    /// would print as 0 B; the gate must see them.
    /// </summary>
    public static double? BytesPerOperation(BenchmarkReport report)
    {
        long? total = report.GcStats.GetTotalAllocatedBytes(excludeAllocationQuantumSideEffects: false);
        long ops = report.GcStats.TotalOperations;
        return total is null || ops <= 0 ? null : (double)total.Value / ops;
    }

    /// <summary>Formats a per-operation byte count: integers as is, fractions with 3 decimals, null as "?".</summary>
    public static string Format(double? bytes)
        => bytes is null ? "?" : bytes.Value.ToString(bytes.Value == Math.Floor(bytes.Value) ? "0" : "0.###", System.Globalization.CultureInfo.InvariantCulture);

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
                double? bytes = BytesPerOperation(report);
                if (bytes is null)
                {
                    problems.Add($"{name}: allocation not measured (MemoryDiagnoser missing?)");
                }
                else if (bytes > 0)
                {
                    problems.Add($"{name}: allocates {Format(bytes)} B/op ({report.GcStats.GetTotalAllocatedBytes(false)} B over {report.GcStats.TotalOperations} operations) on the {Categories.FastPath} (must be 0)");
                }
            }
        }
        return problems;
    }
}
