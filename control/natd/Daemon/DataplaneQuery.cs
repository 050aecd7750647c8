using Akka.Actor;
using Natd.Dataplane.Alg;
using Natd.Dataplane.Counters;
using Natd.Dataplane.Nat;
using Natd.Dataplane.Packets;
using Natd.Dataplane.Sessions;
using Natd.Dataplane.Workers;

namespace Natd.Control.Daemon;

/// <summary>
/// Answers the control API from the running pollers: session listings are asked of each poller
/// (the only thread that may walk its table), counters are summed from the shards' single-writer
/// counter blocks, which other threads may read.
/// </summary>
internal sealed class DataplaneQuery(IReadOnlyList<PollerHandle> pollers) : IDataplaneQuery
{
    private static readonly TimeSpan AskTimeout = TimeSpan.FromSeconds(5);

    public async Task<IReadOnlyList<SessionInfo>> GetSessionsAsync(CancellationToken cancellationToken = default)
    {
        var all = new List<SessionInfo>();
        foreach (var p in pollers)
        {
            all.AddRange(await p.Actor.Ask<List<SessionInfo>>(GetSessions.Instance, AskTimeout, cancellationToken).ConfigureAwait(false));
        }
        return all;
    }

    public async Task<IReadOnlyList<ExpectationInfo>> GetExpectationsAsync(CancellationToken cancellationToken = default)
    {
        var all = new List<ExpectationInfo>();
        foreach (var p in pollers)
        {
            all.AddRange(await p.Actor.Ask<List<ExpectationInfo>>(GetExpectations.Instance, AskTimeout, cancellationToken).ConfigureAwait(false));
        }
        return all;
    }

    public async Task<IReadOnlyList<SubscriberInfo>> GetSubscribersAsync(CancellationToken cancellationToken = default)
    {
        var all = new List<SubscriberInfo>();
        foreach (var p in pollers)
        {
            all.AddRange(await p.Actor.Ask<List<SubscriberInfo>>(GetSubscribers.Instance, AskTimeout, cancellationToken).ConfigureAwait(false));
        }
        return SubscriberInfo.MergeShards(all); // one row per subscriber, whichever shards hold its flows
    }

    public async Task<IReadOnlyList<BlockInfo>> GetBlocksAsync(CancellationToken cancellationToken = default)
    {
        var all = new List<BlockInfo>();
        foreach (var p in pollers)
        {
            all.AddRange(await p.Actor.Ask<List<BlockInfo>>(GetBlocks.Instance, AskTimeout, cancellationToken).ConfigureAwait(false));
        }
        return all;
    }

    public async Task<IReadOnlyList<PcpMappingInfo>> GetPcpMappingsAsync(CancellationToken cancellationToken = default)
    {
        var all = new List<PcpMappingInfo>();
        foreach (var p in pollers)
        {
            all.AddRange(await p.Actor.Ask<List<PcpMappingInfo>>(GetPcpMappings.Instance, AskTimeout, cancellationToken).ConfigureAwait(false));
        }
        return all;
    }

    public Task<StatsSnapshot> GetStatsAsync(CancellationToken cancellationToken = default)
    {
        lock (_portGate) // the kernel's ring statistics reset on read: one reader at a time
        {
            return Task.FromResult(Snapshot(pollers, AlgRestarts) with { Ports = PortCounters(), EventLog = EventLog?.Invoke() ?? new Dictionary<string, long>() });
        }
    }

    private readonly object _portGate = new();

    private List<PortCounters> PortCounters()
    {
        var byName = new Dictionary<string, PortCounters>();
        foreach (var p in pollers)
        {
            foreach (var port in new[] { p.Inside, p.Outside })
            {
                if (port is null)
                {
                    continue;
                }
                var st = port.Stats;
                byName[port.Name] = byName.TryGetValue(port.Name, out var c)
                    ? c with
                    {
                        RxFrames = c.RxFrames + st.RxFrames, TxFrames = c.TxFrames + st.TxFrames, RxDropped = c.RxDropped + st.RxDropped,
                        TxDropped = c.TxDropped + st.TxDropped, RxFillRingEmpty = c.RxFillRingEmpty + st.RxFillRingEmpty,
                        TxKicks = c.TxKicks + st.TxKicks, TxKickDeferred = c.TxKickDeferred + st.TxKickDeferred, TxKickErrors = c.TxKickErrors + st.TxKickErrors,
                        RxOversize = c.RxOversize + st.RxOversize,
                    }
                    : new PortCounters(port.Name, st.RxFrames, st.TxFrames, st.RxDropped, st.TxDropped, st.RxFillRingEmpty, st.TxKicks, st.TxKickDeferred, st.TxKickErrors, st.RxOversize);
            }
        }
        return [.. byName.Values];
    }

    /// <summary>
    /// Sums every shard's counter table slot by slot (the tables share one name table) and sorts
    /// the sums into the snapshot's groups by their declared group and name; reads only each
    /// shard's <see cref="ShardReadView"/>, never an engine.
    /// </summary>
    public static StatsSnapshot Snapshot(IReadOnlyList<PollerHandle> pollers, Func<AlgKind, long>? algRestarts = null)
    {
        CounterSchema schema = NatCounters.Schema;
        var sums = new long[schema.Count];
        var ruleHits = new Dictionary<string, long>();
        var ports = new List<PortUsage>();
        long esp = 0, isakmp = 0, subscribers = 0, subscriberPortsSum = 0;
        var subscriberPorts = new long[SubscriberPorts.PortBuckets.Length + 1];
        var blocksInUse = new Dictionary<uint, (long InUse, long Capacity)>();
        var blockOrder = new List<uint>();
        double busy = 0;
        HistogramTotals batchReceived = BatchHistograms.NewFrameTotals(), batchTransmitted = BatchHistograms.NewFrameTotals();
        HistogramTotals batchLatency = BatchHistograms.NewLatencyTotals();
        foreach (var p in pollers)
        {
            p.Stats.Histograms.AddTo(batchReceived, batchTransmitted, batchLatency);
            CounterView view = p.View.Counters;
            for (int i = 0; i < sums.Length; i++)
            {
                sums[i] += view[i];
            }
            var rc = p.View.RuleHits;
            for (int r = 0; r < rc.Names.Length; r++)
            {
                ruleHits[rc.Names[r]] = ruleHits.GetValueOrDefault(rc.Names[r]) + Volatile.Read(ref rc.Hits[r]);
            }
            esp += p.View.EspSessions;
            isakmp += p.View.IsakmpSessions;
            long elapsed = System.Diagnostics.Stopwatch.GetTimestamp() - p.Stats.StartedTicks;
            busy += elapsed > 0 ? (double)view[(int)ShardCounter.BusyTicks] / elapsed : 0;
            p.View.AddPortUsage(ports);
            // A subscriber held by two shards counts once: shard 0's hold for its port-less flows
            // (no port of its own there, so in the 0 bucket) is taken off.
            long twice = p.View.SubscribersCountedElsewhere;
            subscribers += p.View.Subscribers - twice;
            subscriberPortsSum += p.View.AddSubscriberPorts(subscriberPorts);
            subscriberPorts[0] = Math.Max(0, subscriberPorts[0] - twice);
            AddBlocks(p.View, blocksInUse, blockOrder);
        }
        var drops = new Dictionary<string, long>();
        var gateway = new Dictionary<string, long>();
        var byState = new Dictionary<string, long>();
        var sessions = new Dictionary<string, long>();
        var expectations = new Dictionary<string, long>();
        var fragments = new Dictionary<string, long>();
        var algEvents = new Dictionary<string, long>(StringComparer.Ordinal);
        var pcp = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (CounterDeclaration d in schema.Declarations)
        {
            long v = sums[d.Index];
            switch (d.Group)
            {
                case "drops": drops[d.Name] = v; break;
                case "gateway": gateway[d.Name] = v; break;
                case "state": byState[d.Name] = v; break;
                case "sessions-now": sessions[d.Name] = v; break;
                case "expectations": expectations[d.Name] = v; break;
                case "fragments": fragments[d.Name] = v; break;
                case "pcp": pcp[d.Name] = v; break;
                case "alg" when !d.Name.StartsWith("none/", StringComparison.Ordinal): algEvents[d.Name] = v; break;
            }
        }
        sessions["esp"] = esp;
        sessions["isakmp"] = isakmp;
        long Sum(ShardCounter c) => sums[(int)c];
        return new StatsSnapshot
        {
            PacketsIn2Out = Sum(ShardCounter.PacketsIn2Out), PacketsOut2In = Sum(ShardCounter.PacketsOut2In),
            BytesIn2Out = Sum(ShardCounter.BytesIn2Out), BytesOut2In = Sum(ShardCounter.BytesOut2In),
            FramesReceived = Sum(ShardCounter.FramesReceived), FramesTransmitted = Sum(ShardCounter.FramesTransmitted),
            Drops = drops,
            Sessions = sessions,
            SessionsCreated = Sum(ShardCounter.SessionsCreated), SessionsDeleted = Sum(ShardCounter.SessionsDeleted),
            SessionsSwept = Sum(ShardCounter.SessionsSwept),
            Gateway = gateway,
            RuleHits = ruleHits,
            SessionsByState = byState,
            PortUsage = ports,
            PollerBusyRatio = pollers.Count == 0 ? 0 : busy / pollers.Count,
            Handoffs = Sum(ShardCounter.Handoffs),
            HandoffDrops = Sum(ShardCounter.HandoffDrops),
            EventsDropped = Sum(ShardCounter.NatEventsDropped),
            AlgEvents = WithRestarts(algEvents, algRestarts),
            Expectations = expectations,
            Fragments = fragments,
            PcpRequests = pcp,
            Subscribers = subscribers,
            SubscriberPorts = subscriberPorts,
            SubscriberPortsSum = subscriberPortsSum,
            PortBlocks = blockOrder.ConvertAll(a => new PortBlockUsage(Ipv4.Format(a), blocksInUse[a].InUse, blocksInUse[a].Capacity)),
            BatchReceived = batchReceived,
            BatchTransmitted = batchTransmitted,
            BatchLatency = batchLatency,
        };
    }

    /// <summary>Adds a shard's blocks held and blocks per pool address (the shards' shares of an address add up).</summary>
    private static void AddBlocks(ShardReadView view, Dictionary<uint, (long InUse, long Capacity)> sums, List<uint> order)
    {
        long per = view.BlocksPerAddress;
        if (per == 0)
        {
            return;
        }
        var pool = view.Pool;
        for (int a = 0; a < pool.Count; a++)
        {
            if (!sums.TryGetValue(pool[a], out var s))
            {
                order.Add(pool[a]);
            }
            sums[pool[a]] = (s.InUse + view.BlocksInUse(a), s.Capacity + per);
        }
    }

    private static readonly AlgKind[] AlgKinds = [AlgKind.Ftp, AlgKind.Irc, AlgKind.Tftp, AlgKind.Pptp];

    /// <summary>Restarts of each ALG helper (its supervisor's count), when the daemon told us where to read them.</summary>
    public Func<AlgKind, long>? AlgRestarts { get; set; }

    /// <summary>The NAT event log's sink counters (<see cref="StatsSnapshot.EventLog"/>), or null without a log.</summary>
    public Func<IReadOnlyDictionary<string, long>>? EventLog { get; set; }

    private static Dictionary<string, long> WithRestarts(Dictionary<string, long> events, Func<AlgKind, long>? restarts)
    {
        foreach (AlgKind kind in AlgKinds)
        {
            events[NatEngine.AlgName(kind) + "/restarts"] = restarts?.Invoke(kind) ?? 0;
        }
        return events;
    }
}

/// <summary>A running poller: its actor, what other threads may read of its shard, and its stats' start time.</summary>
internal sealed record PollerHandle(IActorRef Actor, ShardReadView View, PollerStats Stats, Dataplane.Io.IPacketPort? Inside = null, Dataplane.Io.IPacketPort? Outside = null);
