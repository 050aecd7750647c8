using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Diagnosers;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using BenchmarkDotNet.Toolchains.InProcess.Emit;
using Perfolizer.Horology;

namespace Natd.Benchmarks.Support;

/// <summary>
/// The suite's configuration: the default columns and exporters, <see cref="MemoryDiagnoser"/>,
/// the categories column and an "Alloc gate" column that flags any <see cref="Categories.FastPath"/>
/// benchmark allocating per operation. <see cref="AllocationGate"/> turns such a flag into a failed
/// run after the benchmarks finish. Artifacts go under the build output, never the repository root.
/// </summary>
public sealed class NoAllocationConfig : ManualConfig
{
    /// <summary>Creates the configuration.</summary>
    /// <param name="quick">A short job (about 2 minutes for the suite on 2 cores) instead of the default job.</param>
    /// <remarks>
    /// The default job runs each benchmark in its own process (best isolation); the quick job runs in
    /// process to save the build of a host per benchmark.
    /// </remarks>
    public NoAllocationConfig(bool quick)
    {
        Add(DefaultConfig.Instance);
        AddDiagnoser(MemoryDiagnoser.Default);
        AddColumn(CategoriesColumn.Default, new AllocationGateColumn());
        ArtifactsPath = Path.Combine(AppContext.BaseDirectory, "BenchmarkDotNet.Artifacts");
        Job job = quick
            ? Job.ShortRun
                .WithToolchain(InProcessEmitToolchain.Instance)
                .WithIterationTime(TimeInterval.FromMilliseconds(250))
                .WithId("Quick")
            : Job.Default
                .WithId("Default");
        AddJob(job);
    }
}

/// <summary>"Alloc gate" column: ok, or ALLOCATES for a fast-path benchmark allocating per operation; "-" elsewhere.</summary>
public sealed class AllocationGateColumn : IColumn
{
    /// <inheritdoc />
    public string Id => nameof(AllocationGateColumn);

    /// <inheritdoc />
    public string ColumnName => "Alloc gate";

    /// <inheritdoc />
    public bool AlwaysShow => true;

    /// <inheritdoc />
    public ColumnCategory Category => ColumnCategory.Metric;

    /// <inheritdoc />
    public int PriorityInCategory => 100;

    /// <inheritdoc />
    public bool IsNumeric => false;

    /// <inheritdoc />
    public UnitType UnitType => UnitType.Dimensionless;

    /// <inheritdoc />
    public string Legend => $"'{Categories.FastPath}' benchmarks must allocate nothing (< 0.5 B/op and < {AllocationGate.BytesPerInvocationLimit} B per invocation); ALLOCATES fails the run";

    /// <inheritdoc />
    public string GetValue(Summary summary, BenchmarkCase benchmarkCase) => GetValue(summary, benchmarkCase, summary.Style);

    /// <inheritdoc />
    public string GetValue(Summary summary, BenchmarkCase benchmarkCase, SummaryStyle style)
    {
        if (!AllocationGate.IsGated(benchmarkCase))
        {
            return "-";
        }
        BenchmarkReport? report = summary[benchmarkCase];
        return (report is null ? null : AllocationGate.Allocates(report)) switch
        {
            null => "no data",
            false => "ok",
            true => "ALLOCATES",
        };
    }

    /// <inheritdoc />
    public bool IsAvailable(Summary summary) => true;

    /// <inheritdoc />
    public bool IsDefault(Summary summary, BenchmarkCase benchmarkCase) => false;
}
