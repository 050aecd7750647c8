using System.Globalization;
using System.Text;

namespace Natd.Ctl;

/// <summary>
/// `natctl stats` as aligned "name value" lines: traffic, frames, sessions, then drops and
/// gateway events (only the non-zero drop reasons, after their total).
/// </summary>
internal static class StatsTable
{
    public static string Render(StatsRow s)
    {
        var lines = new List<KeyValuePair<string, long>>
        {
            new("packets in2out", s.PacketsIn2Out),
            new("packets out2in", s.PacketsOut2In),
            new("bytes in2out", s.BytesIn2Out),
            new("bytes out2in", s.BytesOut2In),
            new("frames received", s.FramesReceived),
            new("frames transmitted", s.FramesTransmitted),
        };
        foreach (string p in (string[])["tcp", "udp", "icmp"])
        {
            lines.Add(new("sessions " + p, s.Sessions.GetValueOrDefault(p)));
        }
        foreach (var kv in Sorted(s.Sessions))
        {
            if (kv.Key is not ("tcp" or "udp" or "icmp"))
            {
                lines.Add(new("sessions " + kv.Key, kv.Value));
            }
        }
        lines.Add(new("sessions created", s.SessionsCreated));
        lines.Add(new("sessions deleted", s.SessionsDeleted));
        long dropTotal = 0;
        foreach (var kv in s.Drops)
        {
            dropTotal += kv.Value;
        }
        lines.Add(new("drops total", dropTotal));
        foreach (var kv in Sorted(s.Drops))
        {
            if (kv.Value != 0)
            {
                lines.Add(new("drops " + kv.Key, kv.Value));
            }
        }
        foreach (var kv in Sorted(s.Gateway))
        {
            lines.Add(new("gateway " + kv.Key, kv.Value));
        }
        foreach (var kv in Sorted(s.SessionsByState))
        {
            lines.Add(new("state " + kv.Key, kv.Value));
        }
        foreach (var kv in Sorted(s.RuleHits))
        {
            lines.Add(new("rule " + kv.Key, kv.Value));
        }
        lines.Add(new("handoffs", s.Handoffs));
        lines.Add(new("nat events dropped", s.EventsDropped));

        int nameWidth = 0, valueWidth = 0;
        var values = new string[lines.Count];
        for (int i = 0; i < lines.Count; i++)
        {
            values[i] = lines[i].Value.ToString(CultureInfo.InvariantCulture);
            nameWidth = Math.Max(nameWidth, lines[i].Key.Length);
            valueWidth = Math.Max(valueWidth, values[i].Length);
        }
        var sb = new StringBuilder();
        for (int i = 0; i < lines.Count; i++)
        {
            sb.Append(lines[i].Key.PadRight(nameWidth)).Append("  ").Append(values[i].PadLeft(valueWidth)).Append('\n');
        }
        // Ratios and utilisation are not counters; they follow the aligned block in their own form.
        sb.Append(CultureInfo.InvariantCulture, $"poller busy {s.PollerBusyRatio * 100:0.0}%\n");
        foreach (var u in s.PortUsage)
        {
            double pct = u.Capacity > 0 ? 100.0 * u.InUse / u.Capacity : 0;
            sb.Append(CultureInfo.InvariantCulture, $"ports {u.ExternalAddress} {u.Protocol} {u.InUse}/{u.Capacity} ({pct:0.0}%)\n");
        }
        return sb.ToString();
    }

    private static List<KeyValuePair<string, long>> Sorted(Dictionary<string, long> d)
    {
        var list = new List<KeyValuePair<string, long>>(d);
        list.Sort(static (a, b) => string.CompareOrdinal(a.Key, b.Key));
        return list;
    }
}
