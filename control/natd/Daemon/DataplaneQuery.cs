using Natd.Dataplane.Actors;
using Natd.Dataplane.Alg;
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
internal sealed class DataplaneQuery(IReadOnlyList<PollerHandle> pollers, ShardLinks? links = null) : IDataplaneQuery
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

    public Task<StatsSnapshot> GetStatsAsync(CancellationToken cancellationToken = default)
    {
        lock (_portGate) // the kernel's ring statistics reset on read: one reader at a time
        {
            return Task.FromResult(Snapshot(pollers, AlgRestarts) with { Handoffs = links?.TotalHandoffs ?? 0, Ports = PortCounters() });
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
                    ? c with { RxFrames = c.RxFrames + st.RxFrames, TxFrames = c.TxFrames + st.TxFrames, RxDropped = c.RxDropped + st.RxDropped, TxDropped = c.TxDropped + st.TxDropped }
                    : new PortCounters(port.Name, st.RxFrames, st.TxFrames, st.RxDropped, st.TxDropped);
            }
        }
        return [.. byName.Values];
    }

    /// <summary>Sums the counters of every shard.</summary>
    public static StatsSnapshot Snapshot(IReadOnlyList<PollerHandle> pollers, Func<AlgKind, long>? algRestarts = null)
    {
        var drops = new Dictionary<string, long>();
        for (int r = 0; r < DropReasons.Count; r++)
        {
            drops[DropReasons.Label((DropReason)r)] = 0;
        }
        long i2o = 0, o2i = 0, bi2o = 0, bo2i = 0, rx = 0, tx = 0, created = 0, deleted = 0, tcp = 0, udp = 0, icmp = 0;
        var ruleHits = new Dictionary<string, long>();
        long refusals = 0, hairpins = 0, protoFwd = 0;
        long esp = 0, isakmp = 0, espAssociated = 0, espToRekeyed = 0, cookiesLearned = 0;
        long est = 0, trans = 0, udpC = 0, icmpC = 0, eventsDropped = 0;
        double busy = 0;
        var ports = new List<PortUsage>();
        var algEvents = new Dictionary<string, long>(StringComparer.Ordinal);
        long expCreated = 0, expUsed = 0, expExpired = 0, expRefused = 0, expPending = 0;
        long arpReplies = 0, arpRequests = 0, icmpErrors = 0, echo = 0, held = 0, csum = 0, icmpXlat = 0;
        long neighEvicted = 0, neighExpired = 0, pendEvicted = 0, pendExpired = 0;
        foreach (var p in pollers)
        {
            NatCounters c = p.Engine.Counters;
            i2o += c.PacketsIn2Out; o2i += c.PacketsOut2In; bi2o += c.BytesIn2Out; bo2i += c.BytesOut2In;
            for (int r = 0; r < DropReasons.Count; r++)
            {
                drops[DropReasons.Label((DropReason)r)] += Volatile.Read(ref c.Drops[r]);
            }
            arpReplies += c.ArpRepliesSent; arpRequests += c.ArpRequestsSent; icmpErrors += c.IcmpErrorsSent;
            echo += c.EchoRepliesSent; held += c.FramesHeld; csum += c.ChecksumsCompleted; icmpXlat += c.IcmpErrorsTranslated;
            neighEvicted += c.NeighboursEvicted; neighExpired += c.NeighboursExpired;
            pendEvicted += c.PendingNeighboursEvicted; pendExpired += c.PendingNeighboursExpired;
            rx += p.Stats.FramesReceived; tx += p.Stats.FramesTransmitted;
            created += p.Engine.Table.Created; deleted += p.Engine.Table.Deleted;
            tcp += p.Engine.Table.CountOf(0); udp += p.Engine.Table.CountOf(1); icmp += p.Engine.Table.CountOf(2);
            est += p.Engine.Table.CountOf(LruClass.TcpEstablished); trans += p.Engine.Table.CountOf(LruClass.TcpTransitory);
            udpC += p.Engine.Table.CountOf(LruClass.Udp); icmpC += p.Engine.Table.CountOf(LruClass.Icmp);
            eventsDropped += p.Engine.Table.EventsDropped;
            var rc = p.Engine.RuleCounters;
            for (int r = 0; r < rc.Names.Length; r++)
            {
                ruleHits[rc.Names[r]] = ruleHits.GetValueOrDefault(rc.Names[r]) + Volatile.Read(ref rc.Hits[r]);
            }
            refusals += c.BackendRefusals; hairpins += c.Hairpinned; protoFwd += c.ProtocolForwarded;
            AlgCounters ac = p.Engine.AlgStats;
            foreach (AlgKind kind in AlgKinds)
            {
                string name = NatEngine.AlgName(kind);
                Add(algEvents, name + "/frames", Volatile.Read(ref ac.Frames[(int)kind]));
                Add(algEvents, name + "/rewrites", Volatile.Read(ref ac.Rewrites[(int)kind]));
                Add(algEvents, name + "/refused", Volatile.Read(ref ac.Refused[(int)kind]));
                Add(algEvents, name + "/lost", Volatile.Read(ref ac.Lost[(int)kind]));
            }
            expCreated += ac.ExpectationsCreated; expUsed += ac.ExpectationsUsed; expExpired += ac.ExpectationsExpired;
            expRefused += ac.ExpectationsRefused; expPending += p.Engine.ExpectationCount;
            var ipsec = p.Engine.Ipsec;
            esp += ipsec.EspCount; isakmp += ipsec.IsakmpCount;
            espAssociated += ipsec.Associated; espToRekeyed += ipsec.AssociatedToRekeyed; cookiesLearned += ipsec.CookiesLearned;
            long elapsed = System.Diagnostics.Stopwatch.GetTimestamp() - p.Stats.StartedTicks;
            busy += elapsed > 0 ? (double)p.Stats.BusyTicks / elapsed : 0;
            var pool = p.Engine.Settings.Pool;
            var alloc = p.Engine.Table.Ports;
            for (int a = 0; a < pool.Count; a++)
            {
                ports.Add(new PortUsage(Ipv4.Format(pool[a]), "tcp", alloc.InUse(a, 0), alloc.RangeSize));
                ports.Add(new PortUsage(Ipv4.Format(pool[a]), "udp", alloc.InUse(a, 1), alloc.RangeSize));
                ports.Add(new PortUsage(Ipv4.Format(pool[a]), "icmp", alloc.InUse(a, 2), alloc.RangeSize));
            }
        }
        return new StatsSnapshot
        {
            PacketsIn2Out = i2o, PacketsOut2In = o2i, BytesIn2Out = bi2o, BytesOut2In = bo2i,
            FramesReceived = rx, FramesTransmitted = tx,
            Drops = drops,
            Sessions = new Dictionary<string, long> { ["tcp"] = tcp, ["udp"] = udp, ["icmp"] = icmp, ["esp"] = esp, ["isakmp"] = isakmp },
            SessionsCreated = created, SessionsDeleted = deleted,
            Gateway = new Dictionary<string, long>
            {
                ["arp-replies-sent"] = arpReplies, ["arp-requests-sent"] = arpRequests, ["icmp-errors-sent"] = icmpErrors,
                ["echo-replies-sent"] = echo, ["frames-held-for-arp"] = held, ["checksums-completed"] = csum,
                ["icmp-errors-translated"] = icmpXlat, ["forward-backend-refusals"] = refusals,
                ["hairpinned"] = hairpins, ["protocol-forwarded"] = protoFwd,
                ["esp-spis-associated"] = espAssociated, ["esp-spis-to-rekeyed-host"] = espToRekeyed,
                ["isakmp-cookies-learned"] = cookiesLearned,
                ["neighbours-evicted"] = neighEvicted, ["neighbours-expired"] = neighExpired,
                ["arp-pending-evicted"] = pendEvicted, ["arp-pending-expired"] = pendExpired,
            },
            RuleHits = ruleHits,
            SessionsByState = new Dictionary<string, long>
            {
                ["tcp-established"] = est, ["tcp-transitory"] = trans, ["udp"] = udpC, ["icmp"] = icmpC,
            },
            PortUsage = ports,
            PollerBusyRatio = pollers.Count == 0 ? 0 : busy / pollers.Count,
            EventsDropped = eventsDropped,
            AlgEvents = WithRestarts(algEvents, algRestarts),
            Expectations = new Dictionary<string, long>
            {
                ["created"] = expCreated, ["used"] = expUsed, ["expired"] = expExpired, ["refused"] = expRefused, ["pending"] = expPending,
            },
        };
    }

    private static readonly AlgKind[] AlgKinds = [AlgKind.Ftp, AlgKind.Irc, AlgKind.Tftp, AlgKind.Pptp];

    private static void Add(Dictionary<string, long> d, string key, long value) => d[key] = d.GetValueOrDefault(key) + value;

    /// <summary>Restarts of each ALG helper (its supervisor's count), when the daemon told us where to read them.</summary>
    public Func<AlgKind, long>? AlgRestarts { get; set; }

    private static Dictionary<string, long> WithRestarts(Dictionary<string, long> events, Func<AlgKind, long>? restarts)
    {
        foreach (AlgKind kind in AlgKinds)
        {
            events[NatEngine.AlgName(kind) + "/restarts"] = restarts?.Invoke(kind) ?? 0;
        }
        return events;
    }
}

/// <summary>A running poller: its actor, its engine (for counter reads) and its stats.</summary>
internal sealed record PollerHandle(IActorRef Actor, NatEngine Engine, PollerStats Stats, Dataplane.Io.IPacketPort? Inside = null, Dataplane.Io.IPacketPort? Outside = null);
