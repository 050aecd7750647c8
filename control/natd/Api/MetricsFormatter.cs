using System.Globalization;
using System.Text;
using Natd.Dataplane.Nat;

namespace Natd.Control.Api;

/// <summary>
/// Renders a <see cref="StatsSnapshot"/> in the Prometheus text exposition format 0.0.4: each
/// family once, "# HELP" then "# TYPE" then its samples, values in invariant culture. Every drop
/// reason and every protocol appears even at zero, so a rate() over a counter that starts later
/// does not miss its first increments.
/// </summary>
public static class MetricsFormatter
{
    /// <summary>The HTTP Content-Type of <see cref="Format"/>'s output.</summary>
    public const string ContentType = "text/plain; version=0.0.4; charset=utf-8";

    private static readonly string[] Protocols = ["tcp", "udp", "icmp"];

    /// <summary>Formats every natd metric family from one snapshot.</summary>
    /// <param name="stats">Counters read at one instant.</param>
    /// <returns>The exposition text, '\n' line endings, ending with a newline.</returns>
    public static string Format(StatsSnapshot stats)
    {
        ArgumentNullException.ThrowIfNull(stats);
        var sb = new StringBuilder(4096);

        Family(sb, "natd_packets_total", "counter", "Packets translated, by direction.");
        Sample(sb, "natd_packets_total", "direction", "in2out", stats.PacketsIn2Out);
        Sample(sb, "natd_packets_total", "direction", "out2in", stats.PacketsOut2In);

        Family(sb, "natd_bytes_total", "counter", "IPv4 bytes translated, by direction.");
        Sample(sb, "natd_bytes_total", "direction", "in2out", stats.BytesIn2Out);
        Sample(sb, "natd_bytes_total", "direction", "out2in", stats.BytesOut2In);

        Family(sb, "natd_frames_received_total", "counter", "Frames received on all ports.");
        Sample(sb, "natd_frames_received_total", null, null, stats.FramesReceived);

        Family(sb, "natd_frames_transmitted_total", "counter", "Frames transmitted on all ports.");
        Sample(sb, "natd_frames_transmitted_total", null, null, stats.FramesTransmitted);

        Family(sb, "natd_drops_total", "counter", "Frames dropped, by reason.");
        for (int i = 0; i < DropReasons.Count; i++)
        {
            string label = DropReasons.Label((DropReason)i);
            Sample(sb, "natd_drops_total", "reason", label, stats.Drops.GetValueOrDefault(label));
        }
        foreach (var (label, value) in Extras(stats.Drops, IsKnownDropLabel))
        {
            Sample(sb, "natd_drops_total", "reason", label, value);
        }

        Family(sb, "natd_sessions", "gauge", "Sessions in the table now, by protocol.");
        foreach (string protocol in Protocols)
        {
            Sample(sb, "natd_sessions", "protocol", protocol, stats.Sessions.GetValueOrDefault(protocol));
        }
        foreach (var (protocol, value) in Extras(stats.Sessions, p => Array.IndexOf(Protocols, p) >= 0))
        {
            Sample(sb, "natd_sessions", "protocol", protocol, value);
        }

        Family(sb, "natd_sessions_created_total", "counter", "Sessions created since start.");
        Sample(sb, "natd_sessions_created_total", null, null, stats.SessionsCreated);

        Family(sb, "natd_sessions_deleted_total", "counter", "Sessions deleted (expired or closed) since start.");
        Sample(sb, "natd_sessions_deleted_total", null, null, stats.SessionsDeleted);

        Family(sb, "natd_gateway_events_total", "counter", "Packets natd answered or generated itself (ARP, ICMP), by event.");
        foreach (var (name, value) in Extras(stats.Gateway, static _ => false))
        {
            Sample(sb, "natd_gateway_events_total", "event", name, value);
        }

        return sb.ToString();
    }

    private static bool IsKnownDropLabel(string label)
    {
        for (int i = 0; i < DropReasons.Count; i++)
        {
            if (DropReasons.Label((DropReason)i) == label)
            {
                return true;
            }
        }
        return false;
    }

    /// <summary>Entries not already emitted, in ordinal key order so the output is stable.</summary>
    private static List<KeyValuePair<string, long>> Extras(IReadOnlyDictionary<string, long> values, Func<string, bool> known)
    {
        var list = new List<KeyValuePair<string, long>>();
        foreach (var kv in values)
        {
            if (!known(kv.Key))
            {
                list.Add(kv);
            }
        }
        list.Sort(static (a, b) => string.CompareOrdinal(a.Key, b.Key));
        return list;
    }

    private static void Family(StringBuilder sb, string name, string type, string help)
        => sb.Append("# HELP ").Append(name).Append(' ').Append(help).Append('\n')
             .Append("# TYPE ").Append(name).Append(' ').Append(type).Append('\n');

    private static void Sample(StringBuilder sb, string name, string? label, string? value, long sample)
    {
        sb.Append(name);
        if (label is not null)
        {
            sb.Append('{').Append(label).Append("=\"");
            AppendEscapedLabelValue(sb, value!);
            sb.Append("\"}");
        }
        sb.Append(' ').Append(sample.ToString(CultureInfo.InvariantCulture)).Append('\n');
    }

    /// <summary>Label values escape backslash, double quote and line feed (exposition format 0.0.4).</summary>
    private static void AppendEscapedLabelValue(StringBuilder sb, string value)
    {
        foreach (char c in value)
        {
            switch (c)
            {
                case '\\': sb.Append(@"\\"); break;
                case '"': sb.Append("\\\""); break;
                case '\n': sb.Append(@"\n"); break;
                default: sb.Append(c); break;
            }
        }
    }
}
