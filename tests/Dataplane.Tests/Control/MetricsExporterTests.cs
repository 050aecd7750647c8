using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using System.Diagnostics;
using Natd.Control.Api;
using Natd.Dataplane.Counters;
using Natd.Dataplane.Nat;

namespace Natd.Tests.Control;

public partial class MetricsExporterTests
{
    private static readonly string[] BatchHistogramNames =
        ["natd_poller_batch_received_frames", "natd_poller_batch_transmitted_frames", "natd_poller_batch_latency_seconds"];

    private sealed record Family(string Name, string Type, string Help, List<(Dictionary<string, string> Labels, double Value)> Samples);

    [GeneratedRegex("""^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (-?[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?|NaN|[+-]Inf)$""")]
    private static partial Regex SampleLine();

    [GeneratedRegex("""^([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(,|$)""")]
    private static partial Regex LabelPair();

    /// <summary>
    /// A strict reader of the exposition format 0.0.4: every family starts with HELP then TYPE,
    /// appears once, and all its samples follow directly and carry its name.
    /// </summary>
    private static Dictionary<string, Family> ParseExposition(string text)
    {
        Assert.EndsWith("\n", text, StringComparison.Ordinal);
        Assert.DoesNotContain("\r", text, StringComparison.Ordinal);
        var families = new Dictionary<string, Family>();
        Family? current = null;
        string? pendingHelpName = null, pendingHelp = null;
        foreach (string line in text[..^1].Split('\n'))
        {
            if (line.StartsWith("# HELP ", StringComparison.Ordinal))
            {
                Assert.Null(pendingHelpName);
                string[] parts = line.Split(' ', 4);
                pendingHelpName = parts[2];
                pendingHelp = parts[3];
                Assert.False(string.IsNullOrWhiteSpace(pendingHelp));
                continue;
            }
            if (line.StartsWith("# TYPE ", StringComparison.Ordinal))
            {
                string[] parts = line.Split(' ');
                Assert.Equal(4, parts.Length);
                Assert.Equal(pendingHelpName, parts[2]); // HELP comes first, for the same family
                Assert.Contains(parts[3], (string[])["counter", "gauge", "histogram"]);
                Assert.False(families.ContainsKey(parts[2]), $"family {parts[2]} appears twice");
                current = new Family(parts[2], parts[3], pendingHelp!, []);
                families.Add(current.Name, current);
                pendingHelpName = null;
                continue;
            }
            Assert.Null(pendingHelpName);
            var m = SampleLine().Match(line);
            Assert.True(m.Success, $"not a sample line: '{line}'");
            Assert.NotNull(current);
            // A histogram's samples are its name with _bucket, _sum or _count.
            Assert.Equal(current!.Name, current.Type == "histogram" ? HistogramBase(m.Groups[1].Value) : m.Groups[1].Value);
            var labels = new Dictionary<string, string>();
            if (m.Groups[2].Success)
            {
                string rest = m.Groups[3].Value;
                while (rest.Length > 0)
                {
                    var lm = LabelPair().Match(rest);
                    Assert.True(lm.Success, $"bad label syntax in '{line}'");
                    labels.Add(lm.Groups[1].Value, Unescape(lm.Groups[2].Value));
                    rest = rest[lm.Length..];
                }
            }
            current.Samples.Add((labels, double.Parse(m.Groups[4].Value, CultureInfo.InvariantCulture)));
        }
        return families;
    }

    private static string HistogramBase(string sample)
    {
        foreach (string suffix in (string[])["_bucket", "_sum", "_count"])
        {
            if (sample.EndsWith(suffix, StringComparison.Ordinal))
            {
                return sample[..^suffix.Length];
            }
        }
        return sample;
    }

    private static string Unescape(string v)
    {
        var sb = new StringBuilder();
        for (int i = 0; i < v.Length; i++)
        {
            if (v[i] == '\\')
            {
                i++;
                sb.Append(v[i] == 'n' ? '\n' : v[i]);
            }
            else
            {
                sb.Append(v[i]);
            }
        }
        return sb.ToString();
    }

    private static long Value(Dictionary<string, Family> f, string name, string? label = null, string? value = null)
    {
        double v = DoubleValue(f, name, label, value);
        Assert.True(v == Math.Floor(v), $"{name}: {v} is not a whole number");
        return (long)v;
    }

    private static double DoubleValue(Dictionary<string, Family> f, string name, string? label = null, string? value = null)
    {
        Assert.True(f.ContainsKey(name), $"missing family {name}");
        var matches = f[name].Samples.Where(s => label is null ? s.Labels.Count == 0 : s.Labels.GetValueOrDefault(label) == value).ToList();
        Assert.True(matches.Count == 1, $"{name}{{{label}=\"{value}\"}}: {matches.Count} samples");
        return matches[0].Value;
    }

    [Fact]
    public void Every_sample_equals_the_snapshot()
    {
        var s = FakeDataplaneQuery.SampleStats();
        var f = ParseExposition(MetricsText.Of(s));

        Assert.Equal(s.PacketsIn2Out, Value(f, "natd_packets_total", "direction", "in2out"));
        Assert.Equal(s.PacketsOut2In, Value(f, "natd_packets_total", "direction", "out2in"));
        Assert.Equal(s.BytesIn2Out, Value(f, "natd_bytes_total", "direction", "in2out"));
        Assert.Equal(s.BytesOut2In, Value(f, "natd_bytes_total", "direction", "out2in"));
        Assert.Equal(s.FramesReceived, Value(f, "natd_frames_received_total"));
        Assert.Equal(s.FramesTransmitted, Value(f, "natd_frames_transmitted_total"));
        Assert.Equal(DropReasons.Count, f["natd_drops_total"].Samples.Count);
        for (int i = 0; i < DropReasons.Count; i++)
        {
            string label = DropReasons.Label((DropReason)i);
            Assert.Equal(s.Drops[label], Value(f, "natd_drops_total", "reason", label));
        }
        foreach (string p in (string[])["tcp", "udp", "icmp"])
        {
            Assert.Equal(s.Sessions[p], Value(f, "natd_sessions", "protocol", p));
        }
        Assert.Equal(s.SessionsCreated, Value(f, "natd_sessions_created_total"));
        Assert.Equal(s.SessionsDeleted, Value(f, "natd_sessions_deleted_total"));
        Assert.Equal(s.Gateway.Count, f["natd_gateway_events_total"].Samples.Count);
        foreach (var (k, v) in s.Gateway)
        {
            Assert.Equal(v, Value(f, "natd_gateway_events_total", "event", k));
        }

        foreach (var (state, v) in s.SessionsByState)
        {
            Assert.Equal(v, Value(f, "natd_sessions_by_state", "state", state));
        }
        Assert.Equal(s.PortUsage.Count, f["natd_ports_in_use"].Samples.Count);
        Assert.Equal(s.PortUsage.Count, f["natd_ports_capacity"].Samples.Count);
        foreach (var u in s.PortUsage)
        {
            Assert.Contains(f["natd_ports_in_use"].Samples, x => x.Labels["address"] == u.ExternalAddress && x.Labels["protocol"] == u.Protocol && x.Value == u.InUse);
            Assert.Contains(f["natd_ports_capacity"].Samples, x => x.Labels["address"] == u.ExternalAddress && x.Labels["protocol"] == u.Protocol && x.Value == u.Capacity);
        }
        // One draining series per external address, 1 where it drains.
        var addresses = s.PortUsage.Select(u => u.ExternalAddress).Distinct().ToList();
        Assert.Equal(addresses.Count, f["natd_pool_address_draining"].Samples.Count);
        foreach (var u in s.PortUsage)
        {
            Assert.Equal(u.Draining ? 1 : 0, Value(f, "natd_pool_address_draining", "address", u.ExternalAddress));
        }
        foreach (var (rule, v) in s.RuleHits)
        {
            Assert.Equal(v, Value(f, "natd_rule_hits_total", "rule", rule));
        }
        Assert.Equal(s.AlgEvents.Count, f["natd_alg_events_total"].Samples.Count);
        foreach (var (key, v) in s.AlgEvents)
        {
            string[] parts = key.Split('/');
            Assert.Contains(f["natd_alg_events_total"].Samples, x => x.Labels["alg"] == parts[0] && x.Labels["event"] == parts[1] && x.Value == v);
        }
        foreach (var (ev, v) in s.Expectations)
        {
            Assert.Equal(v, ev == "pending" ? Value(f, "natd_expectations_pending") : Value(f, "natd_expectations_total", "event", ev));
        }
        Assert.Equal(s.Handoffs, Value(f, "natd_handoffs_total"));
        Assert.Equal(s.EventsDropped, Value(f, "natd_nat_events_dropped_total"));
        Assert.Equal(s.PollerBusyRatio, DoubleValue(f, "natd_poller_busy_ratio"));

        string[] gauges = ["natd_sessions", "natd_sessions_by_state", "natd_ports_in_use", "natd_ports_capacity", "natd_poller_busy_ratio", "natd_expectations_pending",
            "natd_port_blocks_in_use", "natd_port_blocks_capacity", "natd_subscribers", "natd_pool_address_draining"];
        foreach (var fam in f.Values)
        {
            if (fam.Name == "natd_subscriber_ports" || BatchHistogramNames.Contains(fam.Name))
            {
                Assert.Equal("histogram", fam.Type);
            }
            else if (gauges.Contains(fam.Name))
            {
                Assert.Equal("gauge", fam.Type);
                Assert.DoesNotContain("_total", fam.Name, StringComparison.Ordinal);
            }
            else
            {
                Assert.Equal("counter", fam.Type);
                Assert.EndsWith("_total", fam.Name, StringComparison.Ordinal);
            }
        }
    }

    [Fact]
    public void Port_blocks_are_one_series_per_address_and_ports_per_subscriber_a_fixed_histogram()
    {
        var s = FakeDataplaneQuery.SampleStats() with
        {
            Subscribers = 6,
            PortBlocks = [new PortBlockUsage("198.51.100.1", 120, 126), new PortBlockUsage("198.51.100.2", 3, 126)],
            SubscriberPorts = [1, 2, 0, 1, 0, 0, 0, 2],
            SubscriberPortsSum = 40_100,
        };
        var f = ParseExposition(MetricsText.Of(s));
        Assert.Equal(6, Value(f, "natd_subscribers"));
        Assert.Equal(2, f["natd_port_blocks_in_use"].Samples.Count);
        Assert.Equal(120, Value(f, "natd_port_blocks_in_use", "external", "198.51.100.1"));
        Assert.Equal(3, Value(f, "natd_port_blocks_in_use", "external", "198.51.100.2"));
        Assert.Equal(126, Value(f, "natd_port_blocks_capacity", "external", "198.51.100.2"));
        // Cumulative "le" buckets over the fixed bounds, then +Inf = _count.
        var buckets = f["natd_subscriber_ports"].Samples.Where(x => x.Labels.ContainsKey("le")).ToList();
        Assert.Equal(["0", "16", "64", "256", "1024", "4096", "16384", "+Inf"], buckets.Select(b => b.Labels["le"]));
        Assert.Equal([1.0, 3, 3, 4, 4, 4, 4, 6], buckets.Select(b => b.Value));
        string text = MetricsText.Of(s);
        Assert.Contains("\nnatd_subscriber_ports_sum 40100\n", text, StringComparison.Ordinal);
        Assert.Contains("\nnatd_subscriber_ports_count 6\n", text, StringComparison.Ordinal);
        // The per-subscriber limits' refusals are drop reasons like any other.
        foreach (string reason in (string[])["subscriber-session-limit", "subscriber-port-limit", "subscriber-rate-limit", "paired-address-full"])
        {
            Assert.Equal(s.Drops[reason], Value(f, "natd_drops_total", "reason", reason));
        }
    }

    [Fact]
    public void Missing_reasons_and_protocols_read_zero()
    {
        var s = new StatsSnapshot
        {
            Drops = new Dictionary<string, long> { ["no-session"] = 4 },
            Sessions = new Dictionary<string, long>(),
            Gateway = new Dictionary<string, long>(),
        };
        var f = ParseExposition(MetricsText.Of(s));
        Assert.Equal(DropReasons.Count, f["natd_drops_total"].Samples.Count);
        Assert.Equal(4, Value(f, "natd_drops_total", "reason", "no-session"));
        Assert.Equal(0, Value(f, "natd_drops_total", "reason", "bad-ip-checksum"));
        Assert.Equal(0, Value(f, "natd_sessions", "protocol", "icmp"));
        Assert.Empty(f["natd_gateway_events_total"].Samples);
    }

    [Fact]
    public void Label_values_are_escaped_and_extras_kept()
    {
        var s = new StatsSnapshot
        {
            Drops = new Dictionary<string, long> { ["odd\"reason\\x\ny"] = 2 },
            Sessions = new Dictionary<string, long> { ["gre"] = 3 },
            Gateway = new Dictionary<string, long> { ["a\"b"] = 1 },
        };
        string text = MetricsText.Of(s);
        Assert.Contains("natd_drops_total{reason=\"odd\\\"reason\\\\x\\ny\"} 2\n", text, StringComparison.Ordinal);
        var f = ParseExposition(text);
        Assert.Equal(2, Value(f, "natd_drops_total", "reason", "odd\"reason\\x\ny"));
        Assert.Equal(3, Value(f, "natd_sessions", "protocol", "gre"));
        Assert.Equal(1, Value(f, "natd_gateway_events_total", "event", "a\"b"));
    }

    [Fact]
    public void Large_values_are_plain_digits()
    {
        var s = FakeDataplaneQuery.SampleStats() with { BytesIn2Out = 1_234_567_890_123 };
        Assert.Contains("natd_bytes_total{direction=\"in2out\"} 1234567890123\n", MetricsText.Of(s), StringComparison.Ordinal);
    }

    /// <summary>Cumulative (le, count) pairs of a histogram family, in the order served.</summary>
    private static List<(string Le, double Count)> Buckets(Dictionary<string, Family> f, string name)
        => f[name].Samples.Where(x => x.Labels.ContainsKey("le")).Select(x => (x.Labels["le"], x.Value)).ToList();

    [Fact]
    public void Batch_histograms_have_exact_buckets_sum_and_count()
    {
        var rng = new Random(7);
        var shards = new[] { new BatchHistograms(new CounterTable(NatCounters.Schema)), new BatchHistograms(new CounterTable(NatCounters.Schema)) };
        var received = new List<long>();
        var latency = new List<long>();
        for (int i = 0; i < 5000; i++)
        {
            long rx = rng.Next(0, 4) == 0 ? rng.Next(0, 3) : rng.Next(0, 700); // many small batches, some above 512
            long ticks = (long)Math.Exp(rng.NextDouble() * Math.Log(Stopwatch.Frequency / 5.0)); // 1 tick .. 200 ms
            shards[i % 2].Record(rx, rx / 2, ticks);
            received.Add(rx);
            latency.Add(ticks);
        }
        var snap = FakeDataplaneQuery.SampleStats() with
        {
            BatchReceived = BatchHistograms.NewFrameTotals(),
            BatchTransmitted = BatchHistograms.NewFrameTotals(),
            BatchLatency = BatchHistograms.NewLatencyTotals(),
        };
        foreach (var h in shards)
        {
            h.AddTo(snap.BatchReceived, snap.BatchTransmitted, snap.BatchLatency);
        }
        string text = MetricsText.Of(snap);
        var f = ParseExposition(text);

        var rxBuckets = Buckets(f, "natd_poller_batch_received_frames");
        Assert.Equal(BatchHistograms.FrameBounds.Select(b => b.ToString(CultureInfo.InvariantCulture)).Append("+Inf"), rxBuckets.Select(b => b.Le));
        for (int i = 0; i < BatchHistograms.FrameBounds.Length; i++)
        {
            Assert.Equal(received.Count(v => v <= BatchHistograms.FrameBounds[i]), rxBuckets[i].Count);
        }
        Assert.Equal(received.Count, rxBuckets[^1].Count);
        Assert.Contains($"\nnatd_poller_batch_received_frames_sum {received.Sum()}\n", text, StringComparison.Ordinal);
        Assert.Contains($"\nnatd_poller_batch_received_frames_count {received.Count}\n", text, StringComparison.Ordinal);
        Assert.Contains($"\nnatd_poller_batch_transmitted_frames_sum {received.Sum(v => v / 2)}\n", text, StringComparison.Ordinal);

        var latencyBuckets = Buckets(f, "natd_poller_batch_latency_seconds");
        Assert.Equal(["1e-06", "2.5e-06", "5e-06", "1e-05", "2.5e-05", "5e-05", "0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.1", "+Inf"],
            latencyBuckets.Select(b => b.Le));
        for (int i = 0; i < BatchHistograms.LatencyTickBounds.Length; i++)
        {
            Assert.Equal(latency.Count(v => v <= BatchHistograms.LatencyTickBounds[i]), latencyBuckets[i].Count);
        }
        var sum = Regex.Match(text, @"\nnatd_poller_batch_latency_seconds_sum (\S+)\n");
        Assert.Equal((double)latency.Sum() / Stopwatch.Frequency, double.Parse(sum.Groups[1].Value, CultureInfo.InvariantCulture), 9);
    }

    [Fact]
    public void A_total_below_the_published_one_restarts_the_series_instead_of_freezing_it()
    {
        using var exporter = new MetricsExporter(processMetrics: false);
        var s = FakeDataplaneQuery.SampleStats();
        exporter.Publish(s with { PacketsIn2Out = 1000 });
        Assert.Equal(1000, Value(ParseExposition(MetricsText.Export(exporter)), "natd_packets_total", "direction", "in2out"));
        exporter.Publish(s with { PacketsIn2Out = 40 });
        Assert.Equal(40, Value(ParseExposition(MetricsText.Export(exporter)), "natd_packets_total", "direction", "in2out"));
        exporter.Publish(s with { PacketsIn2Out = 45 });
        Assert.Equal(45, Value(ParseExposition(MetricsText.Export(exporter)), "natd_packets_total", "direction", "in2out"));
    }

    [Fact]
    public void Series_whose_label_left_the_snapshot_are_removed_and_pinned_ones_stay()
    {
        using var exporter = new MetricsExporter(processMetrics: false);
        var s = FakeDataplaneQuery.SampleStats();
        exporter.Publish(s);
        var before = ParseExposition(MetricsText.Export(exporter));
        Assert.Equal(2, before["natd_rule_hits_total"].Samples.Count);
        Assert.Equal(4, before["natd_ports_in_use"].Samples.Count);

        // A reload removed rule-2 and pool address .3; the snapshot no longer names a drop reason at all.
        exporter.Publish(s with
        {
            RuleHits = new Dictionary<string, long> { ["vpn-isakmp"] = 13 },
            PortUsage = [.. s.PortUsage.Where(u => u.ExternalAddress != "198.51.100.3")],
            Drops = new Dictionary<string, long>(),
            Sessions = new Dictionary<string, long>(),
        });
        var after = ParseExposition(MetricsText.Export(exporter));
        Assert.Equal(13, Value(after, "natd_rule_hits_total", "rule", "vpn-isakmp"));
        Assert.Single(after["natd_rule_hits_total"].Samples);
        Assert.Equal(3, after["natd_ports_in_use"].Samples.Count);
        Assert.Equal(3, after["natd_ports_capacity"].Samples.Count);
        Assert.Equal(DropReasons.Count, after["natd_drops_total"].Samples.Count);
        Assert.Equal(0, Value(after, "natd_sessions", "protocol", "tcp"));
    }

    [Fact]
    public void Subscriber_ports_follow_the_snapshot_down()
    {
        using var exporter = new MetricsExporter(processMetrics: false);
        var s = FakeDataplaneQuery.SampleStats();
        exporter.Publish(s with { Subscribers = 6, SubscriberPorts = [1, 2, 0, 1, 0, 0, 0, 2], SubscriberPortsSum = 40_100 });
        exporter.Publish(s with { Subscribers = 1, SubscriberPorts = [0, 1, 0, 0, 0, 0, 0, 0], SubscriberPortsSum = 9 });
        string text = MetricsText.Export(exporter);
        var f = ParseExposition(text);
        Assert.Equal([0.0, 1, 1, 1, 1, 1, 1, 1], Buckets(f, "natd_subscriber_ports").Select(b => b.Count));
        Assert.Contains("\nnatd_subscriber_ports_sum 9\n", text, StringComparison.Ordinal);
        Assert.Contains("\nnatd_subscriber_ports_count 1\n", text, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(new long[] { 1, 2, 0, 1, 0, 0, 0, 2 }, 40_100)]
    [InlineData(new long[] { 0, 3, 0, 0, 0, 0, 0, 0 }, 48)]
    [InlineData(new long[] { 0, 3, 0, 0, 0, 0, 0, 0 }, 3)]
    [InlineData(new long[] { 5, 0, 7, 0, 0, 1, 0, 0 }, 7 * 17 + 1025)]
    [InlineData(new long[] { 5, 0, 7, 0, 0, 1, 0, 0 }, 7 * 64 + 4096)]
    public void A_total_spreads_over_buckets_keeping_each_sample_in_its_bucket(long[] counts, long total)
    {
        var t = new HistogramTotals(Array.ConvertAll(SubscriberPorts.PortBuckets, b => (long)b), 1);
        counts.CopyTo(t.Counts, 0);
        MetricsExporter.SpreadSum(t, total);
        Assert.Equal(total, t.Sums.Sum());
        for (int i = 0; i < counts.Length; i++)
        {
            long low = i == 0 ? 0 : t.RawBounds[i - 1] + 1;
            long most = counts[i] == 0 ? 0 : i < t.RawBounds.Length ? counts[i] * t.RawBounds[i] : long.MaxValue; // +Inf has no top
            Assert.InRange(t.Sums[i], counts[i] * low, most);
        }
    }
}
