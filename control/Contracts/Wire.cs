using System.Text.Json.Serialization;

namespace Natd.Contracts;

// The control API's JSON (camelCase, source-generated): natd serialises these records and natctl
// deserialises the same ones, so the two cannot drift apart. Property order is the wire order.

/// <summary>
/// One session as GET /sessions returns it: the dataplane's SessionInfo with the addresses as
/// dotted-quad strings; protocol "tcp", "udp", "icmp", "isakmp", "esp" or "gre"; ports host order
/// (ICMP: the identifier); packets and IPv4 bytes per direction; state the TCP state or "active".
/// </summary>
internal sealed record SessionRow
{
    public string Protocol { get; init; } = "";
    public string InsideAddress { get; init; } = "";
    public int InsidePort { get; init; }
    public string ExternalAddress { get; init; } = "";
    public int ExternalPort { get; init; }
    public string RemoteAddress { get; init; } = "";
    public int RemotePort { get; init; }
    /// <summary>Seconds until the session expires if idle.</summary>
    public double ExpiresInSeconds { get; init; }
    public string State { get; init; } = "";
    public long PacketsIn2Out { get; init; }
    public long PacketsOut2In { get; init; }
    public long BytesIn2Out { get; init; }
    public long BytesOut2In { get; init; }
    /// <summary>The ALG handling this control connection ("ftp", ...); absent otherwise.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Alg { get; init; }
    /// <summary>The control connection of an expected (related) connection; absent otherwise.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? RelatedTo { get; init; }
}

/// <summary>
/// One pending ALG expectation as GET /expectations returns it: alg "ftp", "irc", "tftp" or "pptp";
/// kind "inbound" (a pinhole) or "outbound"; endpoints "a.b.c.d:port" (port 0: any; remote "*" for
/// any address; external empty for outbound); control "inside:port -> remote:port".
/// </summary>
internal sealed record ExpectationRow
{
    public string Alg { get; init; } = "";
    public string Kind { get; init; } = "";
    public string Protocol { get; init; } = "";
    public string Inside { get; init; } = "";
    public string External { get; init; } = "";
    public string Remote { get; init; } = "";
    /// <summary>Seconds left.</summary>
    public double ExpiresInSeconds { get; init; }
    public string Control { get; init; } = "";
}

/// <summary>GET /stats: the dataplane's StatsSnapshot (counters summed over shards at one instant).</summary>
internal sealed record StatsRow
{
    public long PacketsIn2Out { get; init; }
    public long PacketsOut2In { get; init; }
    public long BytesIn2Out { get; init; }
    public long BytesOut2In { get; init; }
    public long FramesReceived { get; init; }
    public long FramesTransmitted { get; init; }
    public Dictionary<string, long> Drops { get; init; } = [];
    public Dictionary<string, long> Sessions { get; init; } = [];
    public long SessionsCreated { get; init; }
    public long SessionsDeleted { get; init; }
    public Dictionary<string, long> Gateway { get; init; } = [];
    /// <summary>Sessions by expiry class (tcp-established, tcp-transitory, udp, icmp).</summary>
    public Dictionary<string, long> SessionsByState { get; init; } = [];
    public PortUsageRow[] PortUsage { get; init; } = [];
    public Dictionary<string, long> RuleHits { get; init; } = [];
    /// <summary>0..1.</summary>
    public double PollerBusyRatio { get; init; }
    public long Handoffs { get; init; }
    public long HandoffDrops { get; init; }
    public long SessionsSwept { get; init; }
    public long EventsDropped { get; init; }
    /// <summary>ALG events keyed "alg/event".</summary>
    public Dictionary<string, long> AlgEvents { get; init; } = [];
    /// <summary>Expectations by event, and "pending".</summary>
    public Dictionary<string, long> Expectations { get; init; } = [];
    /// <summary>Fragments by outcome: translated, held, released, routed.</summary>
    public Dictionary<string, long> Fragments { get; init; } = [];
    /// <summary>Subscribers with state now (port blocks, spill pairing or per-subscriber limits).</summary>
    public long Subscribers { get; init; }
    /// <summary>Port blocks per external address (port-block allocation).</summary>
    public PortBlocksRow[] PortBlocks { get; init; } = [];
    /// <summary>Per interface: frames received, transmitted, dropped by the kernel (ring full; AF_XDP: also for want of a fill frame, counted apart too) and refused by a full transmit ring; transmit kicks (sendto calls), those deferred by backpressure and those failed.</summary>
    public PortCountersRow[] Ports { get; init; } = [];
    /// <summary>PCP and NAT-PMP requests by result (natd_pcp_requests_total's labels).</summary>
    public Dictionary<string, long> PcpRequests { get; init; } = [];
    /// <summary>The NAT event log's sinks keyed "sink/outcome" (file/written, file/errors, file/rotations, syslog/written, syslog/errors, ipfix/written, ipfix/errors, ipfix/messages).</summary>
    public Dictionary<string, long> EventLog { get; init; } = [];
}

/// <summary>Counters of one interface, summed over its pollers' ports.</summary>
internal sealed record PortCountersRow
{
    public string Interface { get; init; } = "";
    public long RxFrames { get; init; }
    public long TxFrames { get; init; }
    public long RxDropped { get; init; }
    public long TxDropped { get; init; }
    public long RxFillRingEmpty { get; init; }
    public long TxKicks { get; init; }
    public long TxKickDeferred { get; init; }
    public long TxKickErrors { get; init; }
    public long RxOversize { get; init; }
}

/// <summary>Port blocks held and in all on one external address.</summary>
internal sealed record PortBlocksRow
{
    public string ExternalAddress { get; init; } = "";
    public long InUse { get; init; }
    public long Capacity { get; init; }
}

/// <summary>Port utilisation of one external address and protocol.</summary>
internal sealed record PortUsageRow
{
    public string ExternalAddress { get; init; } = "";
    public string Protocol { get; init; } = "";
    public long InUse { get; init; }
    public long Capacity { get; init; }
    public bool Draining { get; init; }
}

/// <summary>POST /flush and POST /sessions/delete answers.</summary>
internal sealed record DeletedRow
{
    public long Deleted { get; init; }
}

/// <summary>POST /reload and PUT /timeouts answers; <see cref="Timeouts"/> (seconds by natd.yaml key) only from the latter.</summary>
internal sealed record OutcomeRow
{
    public bool Ok { get; init; }
    public string[] Messages { get; init; } = [];
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public Dictionary<string, long>? Timeouts { get; init; }
}

/// <summary>
/// A deterministic NAT lookup's answer (RFC 7422; natd lookup, GET /lookup): the subscriber
/// ("a.b.c.d", or "a.b.c.d/len" when nat.subscriber-prefix is below 32), its external address and
/// port range (host order, inclusive). The JSON names are the CSV header's (natd lookup --table)
/// and the port-block log's, so one script reads all three.
/// </summary>
internal sealed record LookupRow
{
    public string Inside { get; init; } = "";
    public string External { get; init; } = "";
    [JsonPropertyName("port-low")]
    public int PortLow { get; init; }
    [JsonPropertyName("port-high")]
    public int PortHigh { get; init; }

    /// <summary>The CSV header of <see cref="Csv"/> rows.</summary>
    public const string CsvHeader = "inside,external,port-low,port-high";

    /// <summary>The one-line form for scripts: <c>INSIDE EXTERNAL:LOW-HIGH</c>.</summary>
    public string Line() => string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{Inside} {External}:{PortLow}-{PortHigh}");

    /// <summary>One CSV row under <see cref="CsvHeader"/>.</summary>
    public string Csv() => string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{Inside},{External},{PortLow},{PortHigh}");
}

/// <summary>
/// One subscriber as GET /subscribers returns it (natctl subscribers): the subscriber ("a.b.c.d",
/// or "a.b.c.d/len" when nat.subscriber-prefix is below 32), its paired external address ("" while
/// it holds no port), its port blocks as "LOW-HIGH" ("LOW-HIGH/STEP" when the shards interleave,
/// RFC 8158 portRangeStepSize), ports and sessions held and their limits (0 = unlimited), and the
/// flows each limit refused. Kebab-case names, as natd lookup's.
/// </summary>
internal sealed record SubscriberRow
{
    public string Subscriber { get; init; } = "";
    public string External { get; init; } = "";
    public string[] Blocks { get; init; } = [];
    public long Ports { get; init; }
    [JsonPropertyName("port-limit")]
    public long PortLimit { get; init; }
    public long Sessions { get; init; }
    [JsonPropertyName("session-limit")]
    public long SessionLimit { get; init; }
    /// <summary>Refused flows by limit: "sessions", "ports", "rate" (new sessions per second), "blocks" (all its blocks full).</summary>
    [JsonPropertyName("limit-hits")]
    public Dictionary<string, long> LimitHits { get; init; } = [];
}

/// <summary>GET /subscribers: the first <see cref="Subscribers"/> (by address) of <see cref="Total"/>.</summary>
internal sealed record SubscribersAnswer
{
    public long Total { get; init; }
    public SubscriberRow[] Subscribers { get; init; } = [];
}

/// <summary>
/// One held port block as GET /blocks returns it (natctl blocks): external address, ports
/// (host order, inclusive; <see cref="PortStep"/> between consecutive ports), "LOW-HIGH[/STEP]" as
/// one string, the holder, mappings in it now and when it was allocated (UTC, ISO 8601).
/// </summary>
internal sealed record BlockRow
{
    public string External { get; init; } = "";
    public string Block { get; init; } = "";
    [JsonPropertyName("port-low")]
    public int PortLow { get; init; }
    [JsonPropertyName("port-high")]
    public int PortHigh { get; init; }
    [JsonPropertyName("port-step")]
    public int PortStep { get; init; }
    public string Subscriber { get; init; } = "";
    [JsonPropertyName("ports-in-use")]
    public long PortsInUse { get; init; }
    [JsonPropertyName("allocated-at")]
    public string AllocatedAt { get; init; } = "";
}

/// <summary>GET /blocks: the first <see cref="Blocks"/> (by address and port) of <see cref="Total"/>.</summary>
internal sealed record BlocksAnswer
{
    public long Total { get; init; }
    public BlockRow[] Blocks { get; init; } = [];
}

/// <summary>
/// One PCP or NAT-PMP mapping as GET /mappings returns it (natctl mappings): protocol ("tcp",
/// "udp"), internal and external endpoints ("a.b.c.d:port"), seconds of lifetime left, its FILTERs
/// as "PREFIX/LEN" or "PREFIX/LEN:PORT" (empty: every remote may use it; RFC 6887 section 13.3),
/// the nonce of the request that made or last refreshed it (24 hex digits, section 11.1) and how it
/// was made ("pcp" or "nat-pmp", whose mappings carry no nonce: zeros). An all-ports mapping
/// (<c>pcp.all-ports</c>) has "all-ports": true, protocol "tcp", "udp" or "all" (TCP and UDP),
/// internal "a.b.c.d:*" and external "a.b.c.d:LOW-HIGH" with the subscriber's ports now (its
/// deterministic range, or its blocks as "LOW-HIGH/STEP" joined by commas; "-" when it holds none).
/// </summary>
internal sealed record MappingRow
{
    public string Protocol { get; init; } = "";
    public string Internal { get; init; } = "";
    public string External { get; init; } = "";
    [JsonPropertyName("lifetime-left")]
    public long LifetimeLeft { get; init; }
    public string[] Filters { get; init; } = [];
    public string Nonce { get; init; } = "";
    public string Via { get; init; } = "";
    [JsonPropertyName("all-ports")]
    public bool AllPorts { get; init; }
}

/// <summary>GET /mappings: the first <see cref="Mappings"/> (by internal address and port) of <see cref="Total"/>.</summary>
internal sealed record MappingsAnswer
{
    public long Total { get; init; }
    public MappingRow[] Mappings { get; init; } = [];
}

/// <summary>The source-generated serialiser of every wire record (GET /timeouts is the Dictionary).</summary>
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase)]
[JsonSerializable(typeof(SessionRow[]))]
[JsonSerializable(typeof(ExpectationRow[]))]
[JsonSerializable(typeof(StatsRow))]
[JsonSerializable(typeof(DeletedRow))]
[JsonSerializable(typeof(OutcomeRow))]
[JsonSerializable(typeof(LookupRow))]
[JsonSerializable(typeof(SubscribersAnswer))]
[JsonSerializable(typeof(BlocksAnswer))]
[JsonSerializable(typeof(MappingsAnswer))]
[JsonSerializable(typeof(Dictionary<string, long>))]
internal sealed partial class WireJsonContext : JsonSerializerContext;
