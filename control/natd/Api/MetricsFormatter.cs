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
    private static readonly string[] FragmentOutcomes = ["translated", "held", "released", "routed"];
    private static readonly string[] PcpResults = [.. Enum.GetValues<Natd.Dataplane.Pcp.PcpOutcome>().Select(Natd.Dataplane.Pcp.PcpOutcomes.Label)];
    private static readonly string[] States = ["tcp-established", "tcp-transitory", "udp", "icmp"];

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

        Family(sb, "natd_sessions_swept_total", "counter", "Sessions deleted by the sweeper's expiry slices since start (part of natd_sessions_deleted_total).");
        Sample(sb, "natd_sessions_swept_total", null, null, stats.SessionsSwept);

        Family(sb, "natd_sessions_by_state", "gauge", "Sessions in the table now, by expiry class (TCP established or transitory, UDP, ICMP).");
        foreach (string state in States)
        {
            Sample(sb, "natd_sessions_by_state", "state", state, stats.SessionsByState.GetValueOrDefault(state));
        }
        foreach (var (state, value) in Extras(stats.SessionsByState, s => Array.IndexOf(States, s) >= 0))
        {
            Sample(sb, "natd_sessions_by_state", "state", state, value);
        }

        Family(sb, "natd_ports_in_use", "gauge", "External ports (ICMP identifiers for icmp) allocated, by external address and protocol.");
        foreach (var u in SortedPorts(stats.PortUsage))
        {
            Sample2(sb, "natd_ports_in_use", "address", u.ExternalAddress, "protocol", u.Protocol, u.InUse);
        }

        Family(sb, "natd_ports_capacity", "gauge", "External ports (ICMP identifiers for icmp) in the configured range, by external address and protocol.");
        foreach (var u in SortedPorts(stats.PortUsage))
        {
            Sample2(sb, "natd_ports_capacity", "address", u.ExternalAddress, "protocol", u.Protocol, u.Capacity);
        }

        Family(sb, "natd_port_blocks_in_use", "gauge", "Port blocks held by subscribers (nat.allocation: port-block), by external address.");
        foreach (var b in stats.PortBlocks)
        {
            Sample(sb, "natd_port_blocks_in_use", "external", b.ExternalAddress, b.InUse);
        }

        Family(sb, "natd_port_blocks_capacity", "gauge", "Port blocks an external address has (all shards), by external address.");
        foreach (var b in stats.PortBlocks)
        {
            Sample(sb, "natd_port_blocks_capacity", "external", b.ExternalAddress, b.Capacity);
        }

        Family(sb, "natd_subscribers", "gauge", "Subscribers with carrier-grade NAT state (port blocks, spill pairing or per-subscriber limits).");
        Sample(sb, "natd_subscribers", null, null, stats.Subscribers);

        SubscriberPortsHistogram(sb, stats);

        Family(sb, "natd_rule_hits_total", "counter", "New flows that matched each forward rule, by rule name.");
        foreach (var (rule, value) in Extras(stats.RuleHits, static _ => false))
        {
            Sample(sb, "natd_rule_hits_total", "rule", rule, value);
        }

        Family(sb, "natd_alg_events_total", "counter", "Application-level gateway events by ALG and event: frames handed to the helper, payload rewrites, refused commands, frames lost with a failed helper, helper restarts.");
        foreach (var (key, value) in Extras(stats.AlgEvents, static _ => false))
        {
            int slash = key.IndexOf('/', StringComparison.Ordinal);
            Sample2(sb, "natd_alg_events_total", "alg", key[..slash], "event", key[(slash + 1)..], value);
        }

        Family(sb, "natd_expectations_total", "counter", "ALG expectations (pinholes for related connections) by event: created, used, expired, refused.");
        foreach (var (name, value) in Extras(stats.Expectations, static k => k == "pending"))
        {
            Sample(sb, "natd_expectations_total", "event", name, value);
        }
        Family(sb, "natd_expectations_pending", "gauge", "ALG expectations waiting for their connection.");
        Sample(sb, "natd_expectations_pending", null, null, stats.Expectations.GetValueOrDefault("pending"));

        Family(sb, "natd_fragments_total", "counter", "IPv4 fragments by outcome (RFC 4787 REQ-14): translated, held until their datagram's first fragment, released when it came, routed to the shard owning the flow; dropped ones are in natd_drops_total (fragment-* reasons).");
        foreach (string outcome in FragmentOutcomes)
        {
            Sample(sb, "natd_fragments_total", "outcome", outcome, stats.Fragments.GetValueOrDefault(outcome));
        }

        Family(sb, "natd_pcp_requests_total", "counter", "Datagrams to the PCP server (RFC 6887, NAT-PMP RFC 6886) by result: the PCP result code sent (success, unsupp-version, not-authorized, malformed-request, unsupp-opcode, unsupp-option, malformed-option, network-failure, no-resources, unsupp-protocol, user-ex-quota, cannot-provide-external, address-mismatch, excessive-remote-peers), the NAT-PMP one (natpmp-success, natpmp-not-authorized, natpmp-out-of-resources, natpmp-unsupp-opcode), or silence (rate-limited, dropped, natpmp-malformed).");
        foreach (string result in PcpResults)
        {
            Sample(sb, "natd_pcp_requests_total", "result", result, stats.PcpRequests.GetValueOrDefault(result));
        }

        Family(sb, "natd_handoffs_total", "counter", "Frames handed from the poller that received them to the poller that owns their flow.");
        Sample(sb, "natd_handoffs_total", null, null, stats.Handoffs);

        Family(sb, "natd_handoff_drops_total", "counter", "Frames a poller could not hand to the shard that owns their flow (its ring was full).");
        Sample(sb, "natd_handoff_drops_total", null, null, stats.HandoffDrops);

        Family(sb, "natd_port_rx_dropped_total", "counter", "Frames the kernel dropped before natd read them (receive ring full), by interface.");
        foreach (var port in stats.Ports)
        {
            Sample(sb, "natd_port_rx_dropped_total", "interface", port.Interface, port.RxDropped);
        }

        Family(sb, "natd_port_tx_dropped_total", "counter", "Frames natd could not queue on a full transmit ring, by interface.");
        foreach (var port in stats.Ports)
        {
            Sample(sb, "natd_port_tx_dropped_total", "interface", port.Interface, port.TxDropped);
        }

        Family(sb, "natd_poller_busy_ratio", "gauge", "Share of wall time the pollers spent on batches with frames since start (0 to 1), averaged over pollers.");
        SampleDouble(sb, "natd_poller_busy_ratio", stats.PollerBusyRatio);

        Family(sb, "natd_nat_events_dropped_total", "counter", "NAT events (session create/delete, exhaustion) lost because the event queue was full.");
        Sample(sb, "natd_nat_events_dropped_total", null, null, stats.EventsDropped);

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

    /// <summary>
    /// natd_subscriber_ports: subscribers by external ports held, as a Prometheus histogram over the
    /// fixed bounds of <see cref="Dataplane.Nat.SubscriberPorts.PortBuckets"/> (cumulative
    /// "le" buckets, +Inf, _sum, _count): a few series whatever the number of subscribers.
    /// </summary>
    private static void SubscriberPortsHistogram(StringBuilder sb, StatsSnapshot stats)
    {
        const string name = "natd_subscriber_ports";
        int[] bounds = Dataplane.Nat.SubscriberPorts.PortBuckets;
        Family(sb, name, "histogram", "External ports held per subscriber (subscribers with carrier-grade NAT state).");
        long cumulative = 0;
        for (int i = 0; i <= bounds.Length; i++)
        {
            cumulative += i < stats.SubscriberPorts.Count ? stats.SubscriberPorts[i] : 0;
            string le = i < bounds.Length ? bounds[i].ToString(CultureInfo.InvariantCulture) : "+Inf";
            Sample(sb, name + "_bucket", "le", le, cumulative);
        }
        Sample(sb, name + "_sum", null, null, stats.SubscriberPortsSum);
        Sample(sb, name + "_count", null, null, cumulative);
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

    /// <summary>Port usage in (address, protocol) order so the output is stable; one series per pair.</summary>
    private static List<PortUsage> SortedPorts(IReadOnlyList<PortUsage> usage)
    {
        var merged = new Dictionary<(string, string), PortUsage>();
        foreach (var u in usage)
        {
            // Several shards may report the same address and protocol: their ports add up, the range is shared.
            merged[(u.ExternalAddress, u.Protocol)] = merged.TryGetValue((u.ExternalAddress, u.Protocol), out var m)
                ? m with { InUse = m.InUse + u.InUse }
                : u;
        }
        var list = new List<PortUsage>(merged.Values);
        list.Sort(static (a, b) =>
        {
            int c = string.CompareOrdinal(a.ExternalAddress, b.ExternalAddress);
            return c != 0 ? c : string.CompareOrdinal(a.Protocol, b.Protocol);
        });
        return list;
    }

    private static void Sample2(StringBuilder sb, string name, string label1, string value1, string label2, string value2, long sample)
    {
        sb.Append(name).Append('{').Append(label1).Append("=\"");
        AppendEscapedLabelValue(sb, value1);
        sb.Append("\",").Append(label2).Append("=\"");
        AppendEscapedLabelValue(sb, value2);
        sb.Append("\"} ").Append(sample.ToString(CultureInfo.InvariantCulture)).Append('\n');
    }

    private static void SampleDouble(StringBuilder sb, string name, double sample)
    {
        string text = double.IsNaN(sample) ? "NaN"
            : double.IsPositiveInfinity(sample) ? "+Inf"
            : double.IsNegativeInfinity(sample) ? "-Inf"
            : sample.ToString("R", CultureInfo.InvariantCulture);
        sb.Append(name).Append(' ').Append(text).Append('\n');
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
