using System.Text;
using Natd.Control.Api;
using Natd.Dataplane.Nat;

namespace Natd.Tests.Control;

/// <summary>What /metrics serves for a snapshot, for tests that read the text.</summary>
internal static class MetricsText
{
    /// <summary>The natd families of <paramref name="stats"/> in the Prometheus text format 0.0.4 (no process or runtime metrics).</summary>
    public static string Of(StatsSnapshot stats)
    {
        using var exporter = new MetricsExporter(processMetrics: false);
        exporter.Publish(stats);
        return Export(exporter);
    }

    /// <summary>The exporter's registry as text, as it stands.</summary>
    public static string Export(MetricsExporter exporter)
    {
        using var stream = new MemoryStream();
        exporter.Registry.CollectAndExportAsTextAsync(stream).GetAwaiter().GetResult();
        return Encoding.UTF8.GetString(stream.ToArray());
    }

    /// <summary>
    /// The natd lines of an exposition (HELP, TYPE and samples of natd_* families) in ordinal order:
    /// what two scrapes of the same counters share whatever the order of families and series and
    /// whatever the process metrics read.
    /// </summary>
    public static List<string> NatdLines(string text)
    {
        var lines = new List<string>();
        foreach (string line in text.Split('\n'))
        {
            if (line.StartsWith("natd_", StringComparison.Ordinal) || line.StartsWith("# HELP natd_", StringComparison.Ordinal)
                || line.StartsWith("# TYPE natd_", StringComparison.Ordinal))
            {
                lines.Add(line);
            }
        }
        lines.Sort(StringComparer.Ordinal);
        return lines;
    }
}
