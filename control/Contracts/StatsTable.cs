using System.Globalization;
using System.Text;

namespace Natd.Contracts;

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
        lines.Add(new("sessions swept", s.SessionsSwept));
        lines.Add(new("subscribers", s.Subscribers));
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
        // Like drops, ALG counters are listed once they are not zero (the idle ALGs would be 20 lines of 0).
        foreach (var kv in Sorted(s.AlgEvents))
        {
            if (kv.Value != 0)
            {
                lines.Add(new("alg " + kv.Key.Replace('/', ' '), kv.Value));
            }
        }
        if (s.Expectations.GetValueOrDefault("created") != 0 || s.Expectations.GetValueOrDefault("refused") != 0)
        {
            foreach (var kv in Sorted(s.Expectations))
            {
                lines.Add(new("expectations " + kv.Key, kv.Value));
            }
        }
        foreach (var kv in Sorted(s.Fragments))
        {
            if (kv.Value != 0)
            {
                lines.Add(new("fragments " + kv.Key, kv.Value));
            }
        }
        // PCP results, like drops, once they are not zero (a gateway without PCP shows none).
        foreach (var kv in Sorted(s.PcpRequests))
        {
            if (kv.Value != 0)
            {
                lines.Add(new("pcp " + kv.Key, kv.Value));
            }
        }
        // The event log's sinks, once they have written or failed (a gateway without a log shows none):
        // a lawful-intercept record that did not reach its sink must show somewhere.
        foreach (var kv in Sorted(s.EventLog))
        {
            if (kv.Value != 0)
            {
                lines.Add(new("event log " + kv.Key.Replace('/', ' '), kv.Value));
            }
        }
        lines.Add(new("handoffs", s.Handoffs));
        lines.Add(new("handoff drops", s.HandoffDrops));
        lines.Add(new("nat events dropped", s.EventsDropped));
        foreach (var p in s.Ports)
        {
            // Where frames were lost before or after natd's own work: the kernel's ring, a frame too
            // large for a slot, a full transmit ring.
            lines.Add(new($"interface {p.Interface} rx frames", p.RxFrames));
            lines.Add(new($"interface {p.Interface} tx frames", p.TxFrames));
            lines.Add(new($"interface {p.Interface} rx dropped", p.RxDropped));
            lines.Add(new($"interface {p.Interface} rx oversize", p.RxOversize));
            lines.Add(new($"interface {p.Interface} tx dropped", p.TxDropped));
        }

        // Ratios and utilisation are not counters but read the same way: a name and a right-aligned value.
        var rows = new List<KeyValuePair<string, string>>(lines.Count + s.PortUsage.Length + s.PortBlocks.Length + 1);
        foreach (var kv in lines)
        {
            rows.Add(new(kv.Key, kv.Value.ToString(CultureInfo.InvariantCulture)));
        }
        rows.Add(new("poller busy", string.Create(CultureInfo.InvariantCulture, $"{s.PollerBusyRatio * 100:0.0}%")));
        foreach (var u in s.PortUsage)
        {
            double pct = u.Capacity > 0 ? 100.0 * u.InUse / u.Capacity : 0;
            rows.Add(new($"ports {u.ExternalAddress} {u.Protocol}",
                string.Create(CultureInfo.InvariantCulture, $"{u.InUse}/{u.Capacity} ({pct:0.0}%){(u.Draining ? " draining" : "")}")));
        }
        foreach (var b in s.PortBlocks)
        {
            double pct = b.Capacity > 0 ? 100.0 * b.InUse / b.Capacity : 0;
            rows.Add(new($"port blocks {b.ExternalAddress}",
                string.Create(CultureInfo.InvariantCulture, $"{b.InUse}/{b.Capacity} ({pct:0.0}%)")));
        }

        int nameWidth = 0, valueWidth = 0;
        foreach (var r in rows)
        {
            nameWidth = Math.Max(nameWidth, r.Key.Length);
            valueWidth = Math.Max(valueWidth, r.Value.Length);
        }
        var sb = new StringBuilder();
        foreach (var r in rows)
        {
            sb.Append(r.Key.PadRight(nameWidth)).Append("  ").Append(r.Value.PadLeft(valueWidth)).Append('\n');
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
