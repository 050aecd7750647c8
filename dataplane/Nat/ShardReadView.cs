using Natd.Dataplane.Counters;
using Natd.Dataplane.Packets;
using Natd.Dataplane.Sessions;

namespace Natd.Dataplane.Nat;

/// <summary>
/// What other threads (the metrics exporter, <c>natctl stats</c>, the sweeper's logs) may read of
/// a shard while its poller runs: the counter table through its read-only view, the rule hit
/// counters, a few gauges and the rule log queue. Everything here is single-writer data read
/// without locks (values may be a batch old); nothing here changes the engine. Session listings
/// and anything that walks the table are asked of the poller instead.
/// </summary>
public sealed class ShardReadView
{
    private readonly NatEngine _engine;

    internal ShardReadView(NatEngine engine) => _engine = engine;

    /// <summary>The shard's counter table, read-only.</summary>
    public CounterView Counters => _engine.Counters.View;

    /// <summary>Rule names and hits (replaced as a whole on reload).</summary>
    public RuleCounters RuleHits => _engine.RuleCounters;

    /// <summary>Packets matched by rules marked <c>log: true</c>, rate-limited by the engine; one reader drains it.</summary>
    public Rings.SpscRing<RuleLogRecord> RuleLog => _engine.RuleLog;

    /// <summary>ESP associations now (gauge).</summary>
    public long EspSessions => _engine.Ipsec.EspCount;

    /// <summary>ISAKMP entries now (gauge).</summary>
    public long IsakmpSessions => _engine.Ipsec.IsakmpCount;

    /// <summary>Subscribers the shard holds state for now (0 unless a CGN feature keeps subscriber state: port blocks, spill pairing or a per-subscriber limit).</summary>
    public long Subscribers => _engine.Subscribers?.Table.Count ?? 0;

    /// <summary>
    /// Of <see cref="Subscribers"/>, those another shard holds too and counts (shard 0's holds for
    /// another shard's subscribers: <see cref="PairingDirectory.PublishedElsewhereToo"/>); 0 in every
    /// other shard, and with one shard. Walks shard 0's published pairings: a scrape's cost, not a
    /// packet's.
    /// </summary>
    public long SubscribersCountedElsewhere => _engine.SubscribersCountedElsewhere();

    /// <summary>Pool addresses (network order) as the shard sees them.</summary>
    public IReadOnlyList<uint> Pool => _engine.Settings.Pool;

    /// <summary>Port blocks per pool address in this shard; 0 without port-block allocation.</summary>
    public long BlocksPerAddress => _engine.Subscribers?.Blocks?.PerAddress ?? 0;

    /// <summary>Port blocks the shard holds on pool address <paramref name="poolIndex"/>; 0 without port-block allocation.</summary>
    public long BlocksInUse(int poolIndex)
        => _engine.Subscribers is { Blocks: { } b } sp && (uint)poolIndex < (uint)b.Addresses ? sp.BlocksHeldOn(poolIndex) : 0;

    /// <summary>True while pool address <paramref name="poolIndex"/> is past <c>nat.pool-threshold</c> in this shard.</summary>
    public bool AboveThreshold(int poolIndex) => _engine.PoolAboveThreshold(poolIndex);

    /// <summary>
    /// Adds the shard's subscribers by ports held into <paramref name="buckets"/> (length
    /// SubscriberPorts.PortBuckets.Length + 1, not cumulative; see SubscriberPorts.AddPortHistogram).
    /// </summary>
    /// <returns>Ports its subscribers hold.</returns>
    public long AddSubscriberPorts(long[] buckets) => _engine.Subscribers?.AddPortHistogram(buckets) ?? 0;

    /// <summary>External ports in use per pool address and protocol (tcp, udp, icmp), appended to <paramref name="into"/>.</summary>
    public void AddPortUsage(List<PortUsage> into)
    {
        ArgumentNullException.ThrowIfNull(into);
        var pool = _engine.Settings.Pool;
        var drain = _engine.Settings.Cgnat.Drain;
        var alloc = _engine.Table.Ports;
        for (int a = 0; a < pool.Count && a < alloc.Addresses; a++)
        {
            string address = Ipv4.Format(pool[a]);
            bool draining = drain.Contains(pool[a]);
            into.Add(new PortUsage(address, "tcp", alloc.InUse(a, 0), alloc.RangeSize, draining));
            into.Add(new PortUsage(address, "udp", alloc.InUse(a, 1), alloc.RangeSize, draining));
            into.Add(new PortUsage(address, "icmp", alloc.InUse(a, 2), alloc.RangeSize, draining));
        }
    }
}
