using Natd.Dataplane.Counters;
using Natd.Dataplane.Packets;

namespace Natd.Dataplane.Nat;

/// <summary>
/// One NAT session as the control plane lists it (`natctl sessions`). Addresses in network order
/// (see <see cref="Ipv4"/>), ports host order.
/// </summary>
/// <param name="Protocol">"tcp", "udp" or "icmp".</param>
/// <param name="InsideAddress">Inside host address.</param>
/// <param name="InsidePort">Inside port, or ICMP echo identifier.</param>
/// <param name="ExternalAddress">External (pool) address.</param>
/// <param name="ExternalPort">External port, or translated ICMP identifier.</param>
/// <param name="RemoteAddress">Remote (outside) address.</param>
/// <param name="RemotePort">Remote port (0 for ICMP).</param>
/// <param name="ExpiresInSeconds">Seconds until the session expires if idle.</param>
/// <param name="State">TCP state ("syn-sent", "established", "fin-wait", "closing", "rst") or "active".</param>
/// <param name="PacketsIn2Out">Packets translated inside to outside.</param>
/// <param name="PacketsOut2In">Packets translated outside to inside.</param>
/// <param name="BytesIn2Out">IPv4 bytes translated inside to outside.</param>
/// <param name="BytesOut2In">IPv4 bytes translated outside to inside.</param>
public sealed record SessionInfo(
    string Protocol,
    uint InsideAddress,
    ushort InsidePort,
    uint ExternalAddress,
    ushort ExternalPort,
    uint RemoteAddress,
    ushort RemotePort,
    double ExpiresInSeconds,
    string State,
    long PacketsIn2Out,
    long PacketsOut2In,
    long BytesIn2Out,
    long BytesOut2In)
{
    /// <summary>The ALG whose helper sees this session's frames ("ftp", "irc", "tftp", "pptp"), or null.</summary>
    public string? Alg { get; init; }

    /// <summary>
    /// For a connection an ALG expected or a trigger opened: its control connection, as
    /// "ftp tcp 10.0.0.2:40312 -> 198.51.100.2:21"; null otherwise.
    /// </summary>
    public string? RelatedTo { get; init; }
}

/// <summary>Counters of the whole dataplane (summed over shards) at one instant.</summary>
public sealed record StatsSnapshot
{
    /// <summary>Packets translated inside to outside.</summary>
    public long PacketsIn2Out { get; init; }
    /// <summary>Packets translated outside to inside.</summary>
    public long PacketsOut2In { get; init; }
    /// <summary>IPv4 bytes translated inside to outside.</summary>
    public long BytesIn2Out { get; init; }
    /// <summary>IPv4 bytes translated outside to inside.</summary>
    public long BytesOut2In { get; init; }
    /// <summary>Frames received on all ports.</summary>
    public long FramesReceived { get; init; }
    /// <summary>Frames transmitted on all ports.</summary>
    public long FramesTransmitted { get; init; }
    /// <summary>Drops by reason label (every reason present, zero included).</summary>
    public required IReadOnlyDictionary<string, long> Drops { get; init; }
    /// <summary>Current sessions by protocol ("tcp", "udp", "icmp").</summary>
    public required IReadOnlyDictionary<string, long> Sessions { get; init; }
    /// <summary>Sessions created since start.</summary>
    public long SessionsCreated { get; init; }
    /// <summary>Sessions deleted (expired or closed) since start.</summary>
    public long SessionsDeleted { get; init; }
    /// <summary>ARP requests answered, ARP requests sent, ICMP errors generated and echo replies sent by natd itself.</summary>
    public required IReadOnlyDictionary<string, long> Gateway { get; init; }
    /// <summary>Current sessions by expiry class: "tcp-established", "tcp-transitory", "udp", "icmp".</summary>
    public IReadOnlyDictionary<string, long> SessionsByState { get; init; } = new Dictionary<string, long>();
    /// <summary>External ports in use per external address and protocol.</summary>
    public IReadOnlyList<PortUsage> PortUsage { get; init; } = [];
    /// <summary>Packets that matched each forward rule (by rule name), on the slow path.</summary>
    public IReadOnlyDictionary<string, long> RuleHits { get; init; } = new Dictionary<string, long>();
    /// <summary>Share of wall time the pollers spent on batches with frames (0..1), averaged over pollers since start.</summary>
    public double PollerBusyRatio { get; init; }
    /// <summary>Frames handed from the poller that received them to the shard that owns their flow.</summary>
    public long Handoffs { get; init; }
    /// <summary>Frames a poller could not hand to the shard that owns their flow (that shard's ring was full).</summary>
    public long HandoffDrops { get; init; }
    /// <summary>Sessions deleted by the sweeper's expiry slices since start (a part of <see cref="SessionsDeleted"/>).</summary>
    public long SessionsSwept { get; init; }
    /// <summary>NAT events lost because the event queue was full.</summary>
    public long EventsDropped { get; init; }
    /// <summary>
    /// ALG events keyed "alg/event" (e.g. "ftp/rewrites"): frames handed to the helper, payload
    /// rewrites, refused commands, frames lost with a failed helper, helper restarts.
    /// </summary>
    public IReadOnlyDictionary<string, long> AlgEvents { get; init; } = new Dictionary<string, long>();
    /// <summary>Expectations: "created", "used", "expired", "refused" (counters) and "pending" (now).</summary>
    public IReadOnlyDictionary<string, long> Expectations { get; init; } = new Dictionary<string, long>();
    /// <summary>
    /// Fragments by outcome: "translated", "held", "released", "routed" (drops are in <see cref="Drops"/>,
    /// the fragment-* reasons).
    /// </summary>
    public IReadOnlyDictionary<string, long> Fragments { get; init; } = new Dictionary<string, long>();
    /// <summary>Subscribers with state now (0 unless port blocks, spill pairing or a per-subscriber limit keep subscriber state).</summary>
    public long Subscribers { get; init; }
    /// <summary>Port blocks held per pool address (empty without port-block allocation).</summary>
    public IReadOnlyList<PortBlockUsage> PortBlocks { get; init; } = [];
    /// <summary>
    /// Subscribers by ports held: [i] those with at most <see cref="Nat.SubscriberPorts.PortBuckets"/>[i]
    /// ports (and more than the bound before), the last those above every bound; not cumulative.
    /// </summary>
    public IReadOnlyList<long> SubscriberPorts { get; init; } = [];
    /// <summary>Ports held by all subscribers (the histogram's sum).</summary>
    public long SubscriberPortsSum { get; init; }
    /// <summary>Per interface: frames the kernel dropped before natd read them (ring full) and frames natd could not queue for transmission.</summary>
    public IReadOnlyList<PortCounters> Ports { get; init; } = [];
    /// <summary>Frames received per poll (both ports), one sample per batch that carried frames, summed over pollers since start.</summary>
    public HistogramTotals BatchReceived { get; init; } = BatchHistograms.NewFrameTotals();
    /// <summary>Frames transmitted per batch, one sample per batch that carried frames, summed over pollers since start.</summary>
    public HistogramTotals BatchTransmitted { get; init; } = BatchHistograms.NewFrameTotals();
    /// <summary>Poll-to-transmit latency per batch (seconds; raw units Stopwatch ticks), summed over pollers since start.</summary>
    public HistogramTotals BatchLatency { get; init; } = BatchHistograms.NewLatencyTotals();
    /// <summary>PCP and NAT-PMP requests by result label (<see cref="Pcp.PcpOutcomes.Label"/>: "success", "user-ex-quota", "natpmp-success", "rate-limited", ...), every label present.</summary>
    public IReadOnlyDictionary<string, long> PcpRequests { get; init; } = new Dictionary<string, long>();
    /// <summary>
    /// The NAT event log's sinks keyed "sink/outcome": "file/written", "file/errors",
    /// "file/rotations", "syslog/written", "syslog/errors", "ipfix/written", "ipfix/errors" (data
    /// records) and "ipfix/messages"; filled by the daemon, which owns the log (empty otherwise).
    /// </summary>
    public IReadOnlyDictionary<string, long> EventLog { get; init; } = new Dictionary<string, long>();
}

/// <summary>Counters of one interface, summed over its pollers' ports.</summary>
/// <param name="Interface">Interface name.</param>
/// <param name="RxFrames">Frames received.</param>
/// <param name="TxFrames">Frames transmitted.</param>
/// <param name="RxDropped">Frames lost before natd read them, as the kernel reports (AF_PACKET: receive ring full; AF_XDP: RX ring full or fill ring empty).</param>
/// <param name="TxDropped">Frames refused by a full transmit ring.</param>
/// <param name="RxFillRingEmpty">AF_XDP: frames dropped for want of a free frame on a fill ring (part of <paramref name="RxDropped"/>); 0 for AF_PACKET.</param>
/// <param name="TxKicks">sendto(2) calls that handed queued frames to the kernel (<see cref="Io.PortStats.TxKicks"/>).</param>
/// <param name="TxKickDeferred">Kicks answered with backpressure (EAGAIN, EBUSY, ENOBUFS): retried with the next batch.</param>
/// <param name="TxKickErrors">Kicks that failed with another errno: their frames stayed queued.</param>
/// <param name="RxOversize">Frames received too large for a slot and dropped (<see cref="Io.PortStats.RxOversize"/>).</param>
public sealed record PortCounters(string Interface, long RxFrames, long TxFrames, long RxDropped, long TxDropped, long RxFillRingEmpty = 0,
    long TxKicks = 0, long TxKickDeferred = 0, long TxKickErrors = 0, long RxOversize = 0);

/// <summary>Port blocks of one external address (port-block allocation).</summary>
/// <param name="ExternalAddress">Dotted-quad external address.</param>
/// <param name="InUse">Blocks held by subscribers (all shards).</param>
/// <param name="Capacity">Blocks the address has (all shards).</param>
public sealed record PortBlockUsage(string ExternalAddress, long InUse, long Capacity);

/// <summary>Port utilisation of one external address and protocol.</summary>
/// <param name="ExternalAddress">Dotted-quad external address.</param>
/// <param name="Protocol">"tcp", "udp" or "icmp".</param>
/// <param name="InUse">Ports (or ICMP identifiers) allocated.</param>
/// <param name="Capacity">Ports in the configured range.</param>
/// <param name="Draining">True when the address is in <c>nat.drain</c>: it takes no new pairing, and its ports in use fall as its sessions end.</param>
public sealed record PortUsage(string ExternalAddress, string Protocol, long InUse, long Capacity, bool Draining = false);

/// <summary>
/// What the control plane may ask of a running dataplane. Implementations marshal the request to
/// the poller that owns the data (the session table has a single writer), so the answers are
/// consistent snapshots, never torn reads.
/// </summary>
public interface IDataplaneQuery
{
    /// <summary>All sessions now, in no particular order.</summary>
    Task<IReadOnlyList<SessionInfo>> GetSessionsAsync(CancellationToken cancellationToken = default);

    /// <summary>Counters now.</summary>
    Task<StatsSnapshot> GetStatsAsync(CancellationToken cancellationToken = default);

    /// <summary>Pending ALG expectations now, in no particular order.</summary>
    Task<IReadOnlyList<ExpectationInfo>> GetExpectationsAsync(CancellationToken cancellationToken = default);

    /// <summary>Every shard's subscribers now, in no particular order (empty unless a CGN feature keeps subscriber state).</summary>
    Task<IReadOnlyList<Nat.SubscriberInfo>> GetSubscribersAsync(CancellationToken cancellationToken = default);

    /// <summary>Every shard's held port blocks now, in no particular order (empty unless <c>nat.allocation: port-block</c>).</summary>
    Task<IReadOnlyList<Nat.BlockInfo>> GetBlocksAsync(CancellationToken cancellationToken = default);

    /// <summary>Every shard's live PCP and NAT-PMP mappings now, in no particular order (empty unless <c>pcp.enabled</c>).</summary>
    Task<IReadOnlyList<PcpMappingInfo>> GetPcpMappingsAsync(CancellationToken cancellationToken = default)
        => Task.FromResult<IReadOnlyList<PcpMappingInfo>>([]);
}
