using Natd.Dataplane.Counters;
using Natd.Dataplane.Nat;
using Prometheus;

namespace Natd.Control.Api;

/// <summary>
/// natd's /metrics: every natd family on a private prometheus-net <see cref="CollectorRegistry"/>
/// (one per control server, so servers in one process share nothing), set from one
/// <see cref="StatsSnapshot"/> per scrape, plus the process (<c>process_*</c>, <c>dotnet_*</c>:
/// prometheus-net's <see cref="DotNetStats"/>) and runtime (<c>system_runtime_dotnet_*</c>: the
/// .NET <c>System.Runtime</c> meter through prometheus-net's <see cref="MeterAdapter"/>) metrics.
/// Names, labels and values of the natd families are those of the Prometheus text format 0.0.4
/// the control API has always served (docs/architecture.md, "Counters"); every drop reason,
/// protocol, expiry class and fragment outcome is a series from the start, at zero.
/// <para>
/// The shards' counters are absolute totals since start; a prometheus-net counter only goes up,
/// so each series is raised to the total (<c>IncTo</c>). A total below what was published (not
/// seen inside one process: flush deletes sessions but no counter; rule hits follow their rule
/// by name across reloads; restarts start a new process) replaces the series, which Prometheus
/// reads as a counter reset, so <c>rate()</c> stays right instead of flat until the old value is
/// passed. A series whose label value left the snapshot (a rule, pool address or interface
/// removed by a reload) is removed. Histograms are rebuilt from the shards' fixed buckets at every
/// scrape (<see cref="HistogramTotals"/>): the bucket counts and <c>_sum</c> are exact.
/// </para>
/// <para>
/// Not thread-safe on its own: the HTTP pipeline (<see cref="ControlServer"/>) publishes and
/// exports inside one gate, so a scrape never reads a histogram another scrape is rebuilding.
/// </para>
/// </summary>
public sealed class MetricsExporter : IDisposable
{
    private static readonly string[] Protocols = ["tcp", "udp", "icmp"];
    private static readonly string[] FragmentOutcomes = ["translated", "held", "released", "routed", "made"];
    private static readonly string[] EventLogSinks = ["file", "syslog", "ipfix"];
    private static readonly string[] States = ["tcp-established", "tcp-transitory", "udp", "icmp"];
    private static readonly string[] PcpResults = PcpResultLabels();

    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly IDisposable? _meterAdapter;

    private readonly Series<Counter> _pcpRequests;
    private readonly Series<Counter> _packets, _bytes, _framesReceived, _framesTransmitted, _drops;
    private readonly Series<Gauge> _sessions;
    private readonly Series<Counter> _sessionsCreated, _sessionsDeleted, _sessionsSwept;
    private readonly Series<Gauge> _byState, _portsInUse, _portsCapacity, _blocksInUse, _blocksCapacity, _subscribers, _draining;
    private readonly Histogram _subscriberPorts;
    private readonly Series<Counter> _ruleHits, _algEvents, _expectations;
    private readonly Series<Gauge> _expectationsPending;
    private readonly Series<Counter> _fragments, _handoffs, _handoffDrops, _rxDropped, _rxFillRingEmpty, _txDropped, _txKicks, _txKickDeferred, _txKickErrors, _rxOversize;
    private readonly Series<Gauge> _busy;
    private readonly Histogram _batchReceived, _batchTransmitted, _batchLatency;
    private readonly Series<Counter> _eventsDropped, _gateway, _eventLogRecords, _eventLogRotations, _eventLogIpfixMessages;
    private readonly HistogramTotals _subscriberPortTotals;

    /// <summary>Creates the registry and every natd family (at zero).</summary>
    /// <param name="processMetrics">Also publish the process and runtime metrics (off in tests that compare natd families only).</param>
    public MetricsExporter(bool processMetrics = true)
    {
        Registry = Metrics.NewCustomRegistry();
        MetricFactory f = Metrics.WithCustomRegistry(Registry);

        _packets = Counters(f, "natd_packets_total", "Packets translated, by direction.", "direction", "in2out", "out2in");
        _bytes = Counters(f, "natd_bytes_total", "IPv4 bytes translated, by direction.", "direction", "in2out", "out2in");
        _framesReceived = Counters(f, "natd_frames_received_total", "Frames received on all ports.");
        _framesTransmitted = Counters(f, "natd_frames_transmitted_total", "Frames transmitted on all ports.");
        string[] reasons = new string[DropReasons.Count];
        for (int i = 0; i < reasons.Length; i++)
        {
            reasons[i] = DropReasons.Label((DropReason)i);
        }
        _drops = Counters(f, "natd_drops_total", "Frames dropped, by reason.", "reason", reasons);
        _sessions = Gauges(f, "natd_sessions", "Sessions in the table now, by protocol.", "protocol", Protocols);
        _sessionsCreated = Counters(f, "natd_sessions_created_total", "Sessions created since start.");
        _sessionsDeleted = Counters(f, "natd_sessions_deleted_total", "Sessions deleted (expired or closed) since start.");
        _sessionsSwept = Counters(f, "natd_sessions_swept_total", "Sessions deleted by the sweeper's expiry slices since start (part of natd_sessions_deleted_total).");
        _byState = Gauges(f, "natd_sessions_by_state", "Sessions in the table now, by expiry class (TCP established or transitory, UDP, ICMP).", "state", States);
        _portsInUse = new Series<Gauge>(f.CreateGauge("natd_ports_in_use", "External ports (ICMP identifiers for icmp) allocated, by external address and protocol.", ["address", "protocol"]));
        _portsCapacity = new Series<Gauge>(f.CreateGauge("natd_ports_capacity", "External ports (ICMP identifiers for icmp) in the configured range, by external address and protocol.", ["address", "protocol"]));
        _draining = Gauges(f, "natd_pool_address_draining", "1 for an external address in nat.drain (no new pairing goes to it; watch natd_ports_in_use and natd_port_blocks_in_use fall to 0 before removing it from the pool), 0 for the others, by external address.", "address");
        _blocksInUse = Gauges(f, "natd_port_blocks_in_use", "Port blocks held by subscribers (nat.allocation: port-block), by external address.", "external");
        _blocksCapacity = Gauges(f, "natd_port_blocks_capacity", "Port blocks an external address has (all shards), by external address.", "external");
        _subscribers = Gauges(f, "natd_subscribers", "Subscribers with carrier-grade NAT state (port blocks, spill pairing or per-subscriber limits), over all pollers: one whose port-less or trigger traffic poller 0 carries while another owns its TCP and UDP counts once.");
        long[] portBounds = Array.ConvertAll(SubscriberPorts.PortBuckets, static b => (long)b);
        _subscriberPortTotals = new HistogramTotals(portBounds, 1);
        _subscriberPorts = f.CreateHistogram("natd_subscriber_ports", "External ports held per subscriber (subscribers with carrier-grade NAT state).",
            new HistogramConfiguration { Buckets = _subscriberPortTotals.Bounds });
        _ruleHits = Counters(f, "natd_rule_hits_total", "New flows that matched each forward rule, by rule name.", "rule");
        _algEvents = new Series<Counter>(f.CreateCounter("natd_alg_events_total", "Application-level gateway events by ALG and event: frames handed to the helper, payload rewrites, refused commands, frames lost with a failed helper, helper restarts.", ["alg", "event"]));
        _expectations = Counters(f, "natd_expectations_total", "ALG expectations (pinholes for related connections) by event: created, used, expired, refused.", "event");
        _expectationsPending = Gauges(f, "natd_expectations_pending", "ALG expectations waiting for their connection.");
        _fragments = Counters(f, "natd_fragments_total", "IPv4 fragments by outcome (RFC 4787 REQ-14): translated, held until their datagram's first fragment, released when it came, routed to the shard owning the flow, made by natd of datagrams larger than the egress MTU (RFC 791); dropped ones are in natd_drops_total (fragment-* reasons).", "outcome", FragmentOutcomes);
        _pcpRequests = Counters(f, "natd_pcp_requests_total", "Datagrams to the PCP server (RFC 6887, NAT-PMP RFC 6886) by result: the PCP result code sent (success, unsupp-version, not-authorized, malformed-request, unsupp-opcode, unsupp-option, malformed-option, network-failure, no-resources, unsupp-protocol, user-ex-quota, cannot-provide-external, address-mismatch, excessive-remote-peers), the NAT-PMP one (natpmp-success, natpmp-not-authorized, natpmp-out-of-resources, natpmp-unsupp-opcode), or silence (rate-limited, dropped, natpmp-malformed).", "result", PcpResults);
        _handoffs = Counters(f, "natd_handoffs_total", "Frames handed from the poller that received them to the poller that owns their flow.");
        _handoffDrops = Counters(f, "natd_handoff_drops_total", "Frames a poller could not hand to the shard that owns their flow (its ring was full).");
        _rxDropped = Counters(f, "natd_port_rx_dropped_total", "Frames the kernel dropped before natd read them (AF_PACKET: receive ring full; AF_XDP: RX ring full or no free frame on the fill ring, see dataplane.xdp-fill-ring), by interface.", "interface");
        _rxFillRingEmpty = Counters(f, "natd_port_rx_fill_ring_empty_total", "AF_XDP: frames the kernel dropped for want of a free frame on a socket's fill ring (XDP_STATISTICS rx_fill_ring_empty_descs; part of natd_port_rx_dropped_total): climbing while the pollers have CPU to spare, dataplane.xdp-fill-ring is too shallow. By interface.", "interface");
        _rxOversize = Counters(f, "natd_port_rx_oversize_total", "Frames received too large for natd's frame slot (2048 bytes) and dropped: an interface MTU above 2030, or frames the kernel coalesced (GRO, LRO, which natd turns off where it can). By interface.", "interface");
        _txDropped = Counters(f, "natd_port_tx_dropped_total", "Frames natd could not queue on a full transmit ring, by interface.", "interface");
        _txKicks = Counters(f, "natd_port_tx_kicks_total", "sendto(2) calls that handed queued frames to the kernel (AF_PACKET's transmit ring, AF_XDP in copy mode), by interface: frames transmitted over kicks is the frames a kick.", "interface");
        _txKickDeferred = Counters(f, "natd_port_tx_kick_deferred_total", "Transmit kicks the kernel answered with backpressure (EAGAIN, EBUSY, ENOBUFS); their frames went with a later kick. By interface.", "interface");
        _txKickErrors = Counters(f, "natd_port_tx_kick_errors_total", "Transmit kicks that failed with another errno (the interface down or gone, say); their frames stayed queued, and while it climbs the interface sends nothing. By interface.", "interface");
        _busy = Gauges(f, "natd_poller_busy_ratio", "Share of wall time the pollers spent on batches with frames since start (0 to 1), averaged over pollers.");
        var frames = BatchHistograms.NewFrameTotals();
        var latency = BatchHistograms.NewLatencyTotals();
        _batchReceived = f.CreateHistogram("natd_poller_batch_received_frames", "Frames received per poll (both ports), one sample per batch that carried frames, all pollers.",
            new HistogramConfiguration { Buckets = frames.Bounds });
        _batchTransmitted = f.CreateHistogram("natd_poller_batch_transmitted_frames", "Frames queued for transmission per batch, one sample per batch that carried frames, all pollers.",
            new HistogramConfiguration { Buckets = frames.Bounds });
        _batchLatency = f.CreateHistogram("natd_poller_batch_latency_seconds", "Time from a batch's poll to its transmit flush, one sample per batch that carried frames, all pollers.",
            new HistogramConfiguration { Buckets = latency.Bounds });
        _eventsDropped = Counters(f, "natd_nat_events_dropped_total", "NAT events (session create/delete, exhaustion) lost because the event queue was full.");
        _eventLogRecords = new Series<Counter>(f.CreateCounter("natd_event_log_records_total", "NAT event records by event log sink (file: JSON lines, syslog, ipfix: data records) and outcome: written, or error (lost: the file could not be written, the datagram not sent).", ["sink", "outcome"]));
        _eventLogRotations = Counters(f, "natd_event_log_file_rotations_total", "Times the JSON lines event file was rotated.");
        _eventLogIpfixMessages = Counters(f, "natd_event_log_ipfix_messages_total", "IPFIX messages sent (data and template-only).");
        _gateway = Counters(f, "natd_gateway_events_total", "Packets natd answered or generated itself (ARP, ICMP), by event.", "event");

        if (processMetrics)
        {
            DotNetStats.Register(Registry);
            // The factory must be the registry's too: the adapter's default factory writes to prometheus-net's global registry.
            // The runtime's "*.count" instruments would become gauges named *_count, a suffix Prometheus keeps for
            // histograms and summaries (promtool refuses them); process_num_threads stands in for the thread count.
            _meterAdapter = MeterAdapter.StartListening(new MeterAdapterOptions
            {
                Registry = Registry,
                MetricFactory = f,
                InstrumentFilterPredicate = static i => i.Meter.Name == "System.Runtime" && !i.Name.EndsWith(".count", StringComparison.Ordinal),
            });
        }
    }

    /// <summary>The registry every family lives in (what the HTTP pipeline serializes).</summary>
    public CollectorRegistry Registry { get; }

    /// <summary>Enters the scrape gate (one publish-and-export at a time); dispose the result to leave it.</summary>
    internal async Task<IDisposable> EnterAsync(CancellationToken ct)
    {
        await _gate.WaitAsync(ct).ConfigureAwait(false);
        return new Exit(_gate);
    }

    /// <summary>
    /// Sets every natd series from <paramref name="stats"/>. Callers hold the gate
    /// (<see cref="EnterAsync"/>) or own the exporter alone.
    /// </summary>
    public void Publish(StatsSnapshot stats)
    {
        ArgumentNullException.ThrowIfNull(stats);
        _packets.Set("in2out", stats.PacketsIn2Out);
        _packets.Set("out2in", stats.PacketsOut2In);
        _bytes.Set("in2out", stats.BytesIn2Out);
        _bytes.Set("out2in", stats.BytesOut2In);
        _framesReceived.Set(stats.FramesReceived);
        _framesTransmitted.Set(stats.FramesTransmitted);
        _drops.SetAll(stats.Drops);
        _sessions.SetAll(stats.Sessions);
        _sessionsCreated.Set(stats.SessionsCreated);
        _sessionsDeleted.Set(stats.SessionsDeleted);
        _sessionsSwept.Set(stats.SessionsSwept);
        _byState.SetAll(stats.SessionsByState);

        _portsInUse.BeginSweep();
        _portsCapacity.BeginSweep();
        // Several shards may report one address and protocol: their ports add up, the range is shared.
        var merged = new Dictionary<(string, string), (long InUse, long Capacity)>();
        foreach (var u in stats.PortUsage)
        {
            merged[(u.ExternalAddress, u.Protocol)] = merged.TryGetValue((u.ExternalAddress, u.Protocol), out var m) ? (m.InUse + u.InUse, m.Capacity) : (u.InUse, u.Capacity);
        }
        foreach (var ((address, protocol), (inUse, capacity)) in merged)
        {
            _portsInUse.Set(address, protocol, inUse);
            _portsCapacity.Set(address, protocol, capacity);
        }
        _portsInUse.EndSweep();
        _portsCapacity.EndSweep();
        _draining.BeginSweep();
        foreach (var u in stats.PortUsage)
        {
            _draining.Set(u.ExternalAddress, u.Draining ? 1 : 0);
        }
        _draining.EndSweep();

        _blocksInUse.BeginSweep();
        _blocksCapacity.BeginSweep();
        foreach (var b in stats.PortBlocks)
        {
            _blocksInUse.Set(b.ExternalAddress, b.InUse);
            _blocksCapacity.Set(b.ExternalAddress, b.Capacity);
        }
        _blocksInUse.EndSweep();
        _blocksCapacity.EndSweep();
        _subscribers.Set(stats.Subscribers);
        PublishSubscriberPorts(stats);

        _ruleHits.SetAll(stats.RuleHits);
        _algEvents.BeginSweep();
        foreach (var (key, value) in stats.AlgEvents)
        {
            int slash = key.IndexOf('/', StringComparison.Ordinal);
            _algEvents.Set(key[..slash], key[(slash + 1)..], value);
        }
        _algEvents.EndSweep();
        _expectations.BeginSweep();
        foreach (var (name, value) in stats.Expectations)
        {
            if (name != "pending")
            {
                _expectations.Set(name, value);
            }
        }
        _expectations.EndSweep();
        _expectationsPending.Set(stats.Expectations.GetValueOrDefault("pending"));
        foreach (string outcome in FragmentOutcomes)
        {
            _fragments.Set(outcome, stats.Fragments.GetValueOrDefault(outcome));
        }
        foreach (string result in PcpResults)
        {
            _pcpRequests.Set(result, stats.PcpRequests.GetValueOrDefault(result));
        }
        foreach (string sink in EventLogSinks)
        {
            // Every sink's two series exist (zero when it is not configured), as every drop reason's does.
            _eventLogRecords.Set(sink, "written", stats.EventLog.GetValueOrDefault(sink + "/written"));
            _eventLogRecords.Set(sink, "error", stats.EventLog.GetValueOrDefault(sink + "/errors"));
        }
        _eventLogRotations.Set(stats.EventLog.GetValueOrDefault("file/rotations"));
        _eventLogIpfixMessages.Set(stats.EventLog.GetValueOrDefault("ipfix/messages"));
        _handoffs.Set(stats.Handoffs);
        _handoffDrops.Set(stats.HandoffDrops);
        _rxDropped.BeginSweep();
        _rxFillRingEmpty.BeginSweep();
        _txDropped.BeginSweep();
        _txKicks.BeginSweep();
        _txKickDeferred.BeginSweep();
        _txKickErrors.BeginSweep();
        _rxOversize.BeginSweep();
        foreach (var port in stats.Ports)
        {
            _rxDropped.Set(port.Interface, port.RxDropped);
            _rxFillRingEmpty.Set(port.Interface, port.RxFillRingEmpty);
            _txDropped.Set(port.Interface, port.TxDropped);
            _txKicks.Set(port.Interface, port.TxKicks);
            _txKickDeferred.Set(port.Interface, port.TxKickDeferred);
            _txKickErrors.Set(port.Interface, port.TxKickErrors);
            _rxOversize.Set(port.Interface, port.RxOversize);
        }
        _rxDropped.EndSweep();
        _rxFillRingEmpty.EndSweep();
        _txDropped.EndSweep();
        _txKicks.EndSweep();
        _txKickDeferred.EndSweep();
        _txKickErrors.EndSweep();
        _rxOversize.EndSweep();
        _busy.Set(stats.PollerBusyRatio);
        Rebuild(_batchReceived, stats.BatchReceived);
        Rebuild(_batchTransmitted, stats.BatchTransmitted);
        Rebuild(_batchLatency, stats.BatchLatency);
        _eventsDropped.Set(stats.EventsDropped);
        _gateway.SetAll(stats.Gateway);
    }

    /// <summary>Stops the runtime meter listener (the registry itself holds no resources).</summary>
    public void Dispose()
    {
        _meterAdapter?.Dispose();
        _gate.Dispose();
    }

    /// <summary>
    /// natd_subscriber_ports: a distribution of now (it goes down as subscribers leave), rebuilt
    /// from the shards' bucket counts and their one total. Per-bucket sums are not kept, so they
    /// are spread inside each bucket's range; only the buckets and the total are exported, and those
    /// are exact.
    /// </summary>
    private void PublishSubscriberPorts(StatsSnapshot stats)
    {
        HistogramTotals t = _subscriberPortTotals;
        Array.Clear(t.Counts);
        Array.Clear(t.Sums);
        for (int i = 0; i < t.Counts.Length && i < stats.SubscriberPorts.Count; i++)
        {
            t.Counts[i] = stats.SubscriberPorts[i];
        }
        SpreadSum(t, stats.SubscriberPortsSum);
        Rebuild(_subscriberPorts, t);
    }

    /// <summary>
    /// Fills <paramref name="t"/>'s per-bucket sums so they add up to <paramref name="total"/> with
    /// every bucket's samples inside its range: each bucket starts at its samples' least possible
    /// sum, then the rest goes to the open +Inf bucket, else to the others up to their most.
    /// </summary>
    internal static void SpreadSum(HistogramTotals t, long total)
    {
        long rest = total;
        for (int i = 0; i < t.Counts.Length; i++)
        {
            t.Sums[i] = t.Counts[i] * Low(t.RawBounds, i);
            rest -= t.Sums[i];
        }
        for (int i = t.Counts.Length - 1; i >= 0 && rest > 0; i--)
        {
            if (t.Counts[i] == 0)
            {
                continue;
            }
            long room = i == t.Counts.Length - 1 ? rest : t.Counts[i] * (t.RawBounds[i] - Low(t.RawBounds, i));
            long add = Math.Min(rest, room);
            t.Sums[i] += add;
            rest -= add;
        }
    }

    /// <summary>Least raw value of bucket <paramref name="i"/>: 0 for the first, else one above the bound below (values are whole numbers).</summary>
    private static long Low(long[] bounds, int i) => i == 0 ? 0 : bounds[i - 1] + 1;

    /// <summary>
    /// Replaces a histogram's content by <paramref name="t"/>: prometheus-net cannot take buckets
    /// as such, so each bucket's samples are observed again as at most two values inside the
    /// bucket (the mean rounded down and up, in raw units), which reproduces the bucket counts and
    /// the sum exactly. A bucket sum read ahead of its count (a scrape racing a batch) is clamped
    /// into the bucket's range.
    /// </summary>
    internal static void Rebuild(Histogram h, HistogramTotals t)
    {
        h.RemoveLabelled(); // the unlabelled child: a fresh one with zero buckets
        for (int i = 0; i < t.Counts.Length; i++)
        {
            long n = t.Counts[i];
            if (n <= 0)
            {
                continue;
            }
            long low = Low(t.RawBounds, i);
            long high = i < t.RawBounds.Length ? t.RawBounds[i] : long.MaxValue / n;
            long sum = Math.Clamp(t.Sums[i], n * low, n * high);
            long q = sum / n, r = sum % n;
            h.Observe(q / t.RawPerUnit, n - r);
            if (r > 0)
            {
                h.Observe((q + 1) / t.RawPerUnit, r);
            }
        }
        h.Publish(); // an idle histogram still shows its zero buckets
    }

    private static Series<Counter> Counters(MetricFactory f, string name, string help, string? label = null, params string[] pinned)
        => new(label is null ? f.CreateCounter(name, help) : f.CreateCounter(name, help, [label]), pinned);

    private static Series<Gauge> Gauges(MetricFactory f, string name, string help, string? label = null, params string[] pinned)
        => new(label is null ? f.CreateGauge(name, help) : f.CreateGauge(name, help, [label]), pinned);

    private sealed class Exit(SemaphoreSlim gate) : IDisposable
    {
        private SemaphoreSlim? _gate = gate;

        public void Dispose() => Interlocked.Exchange(ref _gate, null)?.Release();
    }

    /// <summary>
    /// The series of one family by label values: pinned ones (created at zero, always shown),
    /// others while the snapshot has them (<see cref="BeginSweep"/> .. <see cref="EndSweep"/>
    /// removes the ones a snapshot no longer names).
    /// </summary>
    private sealed class Series<T> where T : Collector
    {
        private readonly T _family;
        private readonly Dictionary<string, Entry> _children = new(StringComparer.Ordinal);
        private readonly List<string> _stale = [];
        private int _generation;

        public Series(T family, params string[] pinned)
        {
            _family = family;
            foreach (string p in pinned)
            {
                Child([p], p).Pinned = true;
            }
            if (family.LabelNames.Length == 0)
            {
                Child([], string.Empty).Pinned = true;
            }
        }

        public void Set(long value) => Set(string.Empty, [], value);

        public void Set(double value) => Apply(Child([], string.Empty), value);

        public void Set(string label, long value) => Set(label, [label], value);

        public void Set(string label1, string label2, long value) => Set(label1 + "\0" + label2, [label1, label2], value);

        /// <summary>Every pinned series from <paramref name="values"/> (zero when missing), plus the other keys it has; the rest removed.</summary>
        public void SetAll(IReadOnlyDictionary<string, long> values)
        {
            BeginSweep();
            foreach (var (key, entry) in _children)
            {
                if (entry.Pinned)
                {
                    Apply(entry, values.GetValueOrDefault(key));
                }
            }
            foreach (var (key, value) in values)
            {
                Set(key, value);
            }
            EndSweep();
        }

        public void BeginSweep() => _generation++;

        public void EndSweep()
        {
            foreach (var (key, entry) in _children)
            {
                if (!entry.Pinned && entry.Generation != _generation)
                {
                    _stale.Add(key);
                }
            }
            foreach (string key in _stale)
            {
                Remove(_children[key].Labels);
                _children.Remove(key);
            }
            _stale.Clear();
        }

        private void Set(string key, string[] labels, long value)
        {
            if (!_children.TryGetValue(key, out Entry? entry))
            {
                entry = Child(labels, key);
            }
            Apply(entry, value);
        }

        private Entry Child(string[] labels, string key)
        {
            var entry = new Entry(labels, Create(labels)) { Generation = _generation };
            _children[key] = entry;
            return entry;
        }

        private void Apply(Entry entry, double value)
        {
            entry.Generation = _generation;
            switch (entry.Child)
            {
                case Gauge.Child g:
                    g.Set(value);
                    break;
                case Counter.Child c:
                    if (value < c.Value)
                    {
                        // Below what was published: a new series, which Prometheus reads as a reset.
                        Remove(entry.Labels);
                        entry.Child = c = (Counter.Child)Create(entry.Labels);
                    }
                    c.IncTo(value);
                    break;
            }
        }

        private ChildBase Create(string[] labels) => _family switch
        {
            Counter c => c.WithLabels(labels),
            Gauge g => g.WithLabels(labels),
            _ => throw new InvalidOperationException($"{_family.Name}: not a counter or gauge"),
        };

        private void Remove(string[] labels)
        {
            switch (_family)
            {
                case Counter c: c.RemoveLabelled(labels); break;
                case Gauge g: g.RemoveLabelled(labels); break;
            }
        }

        private sealed class Entry(string[] labels, ChildBase child)
        {
            public string[] Labels { get; } = labels;
            public ChildBase Child { get; set; } = child;
            public int Generation { get; set; }
            public bool Pinned { get; set; }
        }
    }

    private static string[] PcpResultLabels()
    {
        var outcomes = Enum.GetValues<Natd.Dataplane.Pcp.PcpOutcome>();
        var labels = new string[outcomes.Length];
        for (int i = 0; i < outcomes.Length; i++)
        {
            labels[i] = Natd.Dataplane.Pcp.PcpOutcomes.Label(outcomes[i]);
        }
        return labels;
    }
}
