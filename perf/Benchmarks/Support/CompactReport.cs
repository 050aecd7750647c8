using System.Globalization;
using System.Reflection;
using System.Text;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;

namespace Natd.Benchmarks.Support;

/// <summary>
/// The one table worth pasting: per benchmark, ns per unit (packet, session, buffer...), units per
/// second (1e9 / ns), bytes allocated per operation (rounded, as BenchmarkDotNet prints them), the ratio to its class's baseline in the same
/// run and params, and for classes whose baseline is a copy, the cost net of that copy.
/// Printed as Markdown so it goes into perf/README.md as is.
/// </summary>
public static class CompactReport
{
    /// <summary>"Class.Method" plus params, e.g. "EstablishedBenchmarks.In2Out(Sessions=1000)".</summary>
    public static string Name(BenchmarkCase c)
    {
        string p = Params(c);
        string n = $"{c.Descriptor.Type.Name}.{c.Descriptor.WorkloadMethod.Name}";
        return p.Length == 0 ? n : $"{n}({p})";
    }

    private static string Params(BenchmarkCase c)
    {
        var sb = new StringBuilder();
        foreach (var item in c.Parameters.Items)
        {
            if (sb.Length > 0)
            {
                sb.Append(", ");
            }
            sb.Append(item.Name).Append('=').Append(Convert.ToString(item.Value, CultureInfo.InvariantCulture));
        }
        return sb.ToString();
    }

    /// <summary>Renders the table for every report of <paramref name="summaries"/>.</summary>
    public static string Render(IEnumerable<Summary> summaries)
    {
        var sb = new StringBuilder();
        sb.AppendLine("| Benchmark | Params | ns/unit | units/s | B/op | vs baseline | net of baseline ns | net units/s |");
        sb.AppendLine("|---|---|---:|---:|---:|---:|---:|---:|");
        foreach (Summary summary in summaries)
        {
            foreach (BenchmarkCase c in summary.BenchmarksCases)
            {
                BenchmarkReport? r = summary[c];
                string unit = c.Descriptor.Type.GetCustomAttribute<OperationUnitAttribute>()?.Unit ?? "op";
                string method = $"{c.Descriptor.Type.Name.Replace("Benchmarks", "", StringComparison.Ordinal)}.{c.Descriptor.WorkloadMethod.Name}";
                string p = Params(c);
                if (r?.ResultStatistics is null)
                {
                    sb.AppendLine(CultureInfo.InvariantCulture, $"| {method} | {p} | failed | | | | | |");
                    continue;
                }
                double ns = r.ResultStatistics.Mean;
                long? bytes = AllocationGate.DisplayedBytesPerOperation(r);
                double? baseNs = BaselineNs(summary, c);
                string ratio = "-", net = "-", netRate = "-";
                if (c.Descriptor.Baseline)
                {
                    ratio = "baseline";
                }
                else if (baseNs is double b && b > 0)
                {
                    ratio = (ns / b).ToString("0.00", CultureInfo.InvariantCulture) + "x";
                    if (IsCopyBaseline(c))
                    {
                        double d = ns - b;
                        net = d.ToString("0.0", CultureInfo.InvariantCulture);
                        netRate = d > 0 ? Rate(1e9 / d) : "-";
                    }
                }
                sb.AppendLine(CultureInfo.InvariantCulture,
                    $"| {method} | {p} | {ns.ToString("0.0", CultureInfo.InvariantCulture)} ns/{unit} | {Rate(1e9 / ns)} | {(bytes is null ? "?" : bytes.Value.ToString(CultureInfo.InvariantCulture))} | {ratio} | {net} | {netRate} |");
            }
        }
        return sb.ToString();
    }

    /// <summary>Method-name suffixes of the carrier-grade variants, each compared with the same method without it (dynamic allocation).</summary>
    private static readonly string[] AllocationSuffixes = ["PortBlock", "Deterministic"];

    /// <summary>
    /// Issue 11's comparison: each carrier-grade variant (a method named after its dynamic twin plus
    /// <c>PortBlock</c> or <c>Deterministic</c>) against that twin in the same run and params, as a
    /// ratio of units per second (variant / dynamic), with the target it is read against: new
    /// sessions at least 0.9x, established packets within 5%. Figures only: nothing fails on them
    /// (a loaded machine moves them; the coordinator measures on a quiet one). Empty when no
    /// variant ran.
    /// </summary>
    public static string RenderAllocation(IEnumerable<Summary> summaries)
    {
        var sb = new StringBuilder();
        foreach (Summary summary in summaries)
        {
            foreach (BenchmarkCase c in summary.BenchmarksCases)
            {
                string name = c.Descriptor.WorkloadMethod.Name;
                string? suffix = Array.Find(AllocationSuffixes, x => name.EndsWith(x, StringComparison.Ordinal) && name.Length > x.Length);
                if (suffix is null)
                {
                    continue;
                }
                string twin = name[..^suffix.Length];
                BenchmarkCase? d = null;
                foreach (BenchmarkCase other in summary.BenchmarksCases)
                {
                    if (other.Descriptor.Type == c.Descriptor.Type && other.Descriptor.WorkloadMethod.Name == twin && Params(other) == Params(c) && other.Job == c.Job)
                    {
                        d = other;
                    }
                }
                double? ns = summary[c]?.ResultStatistics?.Mean;
                double? dns = d is null ? null : summary[d]?.ResultStatistics?.Mean;
                if (sb.Length == 0)
                {
                    sb.AppendLine("| Benchmark | Params | allocation | ns/unit | dynamic ns/unit | units/s vs dynamic | target |");
                    sb.AppendLine("|---|---|---|---:|---:|---:|---|");
                }
                string cls = c.Descriptor.Type.Name.Replace("Benchmarks", "", StringComparison.Ordinal);
                bool setup = c.Descriptor.Type == typeof(SessionSetupBenchmarks);
                string target;
                string ratio = "-";
                if (ns is double v && dns is double b && v > 0)
                {
                    double r = b / v;
                    ratio = r.ToString("0.00", CultureInfo.InvariantCulture) + "x";
                    bool met = setup ? r >= 0.9 : r >= 0.95 && r <= 1.05;
                    target = (setup ? ">= 0.9x" : "1.00x +- 5%") + (met ? ": met" : ": not met");
                }
                else
                {
                    target = "no figure";
                }
                sb.AppendLine(CultureInfo.InvariantCulture,
                    $"| {cls}.{twin} | {Params(c)} | {(suffix == "PortBlock" ? "port-block" : "deterministic")} | {Ns(ns)} | {Ns(dns)} | {ratio} | {target} |");
            }
        }
        return sb.ToString();
    }

    private static string Ns(double? ns) => ns is double v ? v.ToString("0.0", CultureInfo.InvariantCulture) : "-";

    /// <summary>Mean ns of the baseline of <paramref name="c"/>'s class with the same params, in the same run.</summary>
    private static double? BaselineNs(Summary summary, BenchmarkCase c)
    {
        string p = Params(c);
        foreach (BenchmarkCase other in summary.BenchmarksCases)
        {
            if (other.Descriptor.Baseline && other.Descriptor.Type == c.Descriptor.Type && Params(other) == p && other.Job == c.Job)
            {
                return summary[other]?.ResultStatistics?.Mean;
            }
        }
        return null;
    }

    /// <summary>Baselines named Copy* measure overhead to subtract, not an alternative to compare with.</summary>
    private static bool IsCopyBaseline(BenchmarkCase c)
    {
        foreach (MethodInfo m in c.Descriptor.Type.GetMethods())
        {
            var a = m.GetCustomAttribute<BenchmarkDotNet.Attributes.BenchmarkAttribute>();
            if (a is { Baseline: true } && m.Name.StartsWith("Copy", StringComparison.Ordinal))
            {
                return true;
            }
        }
        return false;
    }

    private static string Rate(double perSecond) => perSecond switch
    {
        >= 1e9 => (perSecond / 1e9).ToString("0.00", CultureInfo.InvariantCulture) + " G",
        >= 1e6 => (perSecond / 1e6).ToString("0.00", CultureInfo.InvariantCulture) + " M",
        >= 1e3 => (perSecond / 1e3).ToString("0.00", CultureInfo.InvariantCulture) + " k",
        _ => perSecond.ToString("0", CultureInfo.InvariantCulture),
    };
}
