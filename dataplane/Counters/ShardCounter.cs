namespace Natd.Dataplane.Counters;

/// <summary>
/// The scalar counters of a shard, each a slot of its <see cref="CounterTable"/> (the slot is the
/// enum's value). Declared once, with name and help, in <see cref="ShardCounters.Declarations"/>;
/// the dataplane's other layers (session table, IPsec, ALG bridge, poller) count into the same
/// table. Array-like groups (drops by reason, ALG events by kind) follow these slots; their layout
/// is the engine's (<c>NatCounters</c>).
/// </summary>
public enum ShardCounter
{
    /// <summary>Packets translated inside to outside.</summary>
    PacketsIn2Out,
    /// <summary>Packets translated outside to inside.</summary>
    PacketsOut2In,
    /// <summary>IPv4 bytes (total length) translated inside to outside.</summary>
    BytesIn2Out,
    /// <summary>IPv4 bytes translated outside to inside.</summary>
    BytesOut2In,

    /// <summary>ARP replies natd sent for its own addresses.</summary>
    ArpRepliesSent,
    /// <summary>ARP requests natd sent to resolve next hops.</summary>
    ArpRequestsSent,
    /// <summary>ICMP errors natd generated.</summary>
    IcmpErrorsSent,
    /// <summary>ICMP echo replies natd sent for its own addresses.</summary>
    EchoRepliesSent,
    /// <summary>Frames held while their next hop's MAC was resolved.</summary>
    FramesHeld,
    /// <summary>TCP/UDP checksums completed in software (sender used checksum offload).</summary>
    ChecksumsCompleted,
    /// <summary>ICMP errors translated (RFC 5508 embedded header rewrite).</summary>
    IcmpErrorsTranslated,
    /// <summary>Port-forward backends marked down after refusing a connection.</summary>
    BackendRefusals,
    /// <summary>Packets translated by protocol forwards (both directions).</summary>
    ProtocolForwarded,
    /// <summary>Packets hairpinned (RFC 4787 REQ-9).</summary>
    Hairpinned,
    /// <summary>GRE version 1 packets of PPTP calls translated by Call ID (RFC 2637).</summary>
    PptpGreTranslated,
    /// <summary>Learned neighbours removed to make room in a full table.</summary>
    NeighboursEvicted,
    /// <summary>Learned neighbours removed after going unused and unconfirmed for the stale time.</summary>
    NeighboursExpired,
    /// <summary>Pending ARP resolutions given up to make room.</summary>
    PendingNeighboursEvicted,
    /// <summary>Pending ARP resolutions that got no reply in time.</summary>
    PendingNeighboursExpired,
    /// <summary>ESP SPIs associated with an inside host (both directions known).</summary>
    EspSpisAssociated,
    /// <summary>ESP SPIs associated with a host other than the one that started the exchange (a rekey from the other side).</summary>
    EspSpisToRekeyed,
    /// <summary>ISAKMP initiator cookies learned.</summary>
    IsakmpCookiesLearned,

    /// <summary>Sessions created.</summary>
    SessionsCreated,
    /// <summary>Sessions deleted (any cause).</summary>
    SessionsDeleted,
    /// <summary>Sessions deleted by the sweeper's slices (a subset of <see cref="SessionsDeleted"/>).</summary>
    SessionsSwept,
    /// <summary>NAT events lost because the event queue was full.</summary>
    NatEventsDropped,
    /// <summary>Sessions in the table now: TCP (gauge).</summary>
    SessionsTcp,
    /// <summary>Sessions in the table now: UDP (gauge).</summary>
    SessionsUdp,
    /// <summary>Sessions in the table now: ICMP (gauge).</summary>
    SessionsIcmp,
    /// <summary>TCP sessions established (gauge).</summary>
    SessionsTcpEstablished,
    /// <summary>TCP sessions opening or closing (gauge).</summary>
    SessionsTcpTransitory,
    /// <summary>UDP sessions (gauge; same as <see cref="SessionsUdp"/>, by expiry class).</summary>
    SessionsUdpClass,
    /// <summary>ICMP sessions (gauge; by expiry class).</summary>
    SessionsIcmpClass,

    /// <summary>ALG expectations opened.</summary>
    ExpectationsCreated,
    /// <summary>ALG expectations a related connection used.</summary>
    ExpectationsUsed,
    /// <summary>ALG expectations that expired unused.</summary>
    ExpectationsExpired,
    /// <summary>ALG expectations refused (the shard's expectation table was full).</summary>
    ExpectationsRefused,
    /// <summary>ALG expectations waiting for their connection (gauge).</summary>
    ExpectationsPending,
    /// <summary>In2out ALG frames for which no external port could be reserved.</summary>
    AlgPortsExhausted,
    /// <summary>Deleted ALG connections left to their helper's idle expiry because the list of closed connections was full.</summary>
    AlgForgetsDeferred,

    /// <summary>Fragments translated with their datagram's translation (the first included); RFC 4787 REQ-14.</summary>
    FragmentsTranslated,
    /// <summary>Fragments held because they came before their datagram's first fragment.</summary>
    FragmentsHeld,
    /// <summary>Held fragments released when their datagram's first fragment came.</summary>
    FragmentsReleased,
    /// <summary>Inbound fragments handed from the shard where their datagram meets to the shard that owns its flow.</summary>
    FragmentsRouted,
    /// <summary>Fragments natd made of datagrams larger than the egress MTU (RFC 791 section 3.2).</summary>
    FragmentsMade,
    /// <summary>Datagrams natd split into fragments for the egress MTU.</summary>
    DatagramsFragmented,
    /// <summary>TCP SYNs whose MSS option natd lowered to <c>nat.mss-clamp</c> (RFC 6691).</summary>
    MssClamped,

    /// <summary>Frames received from both ports.</summary>
    FramesReceived,
    /// <summary>Frames queued for transmission on both ports.</summary>
    FramesTransmitted,
    /// <summary>Batches that carried at least one frame.</summary>
    Batches,
    /// <summary>Stopwatch ticks spent on batches with frames.</summary>
    BusyTicks,
    /// <summary>Times the poller blocked in poll(2) for lack of frames.</summary>
    IdleWaits,
    /// <summary>Frames this shard handed to the shard that owns their flow.</summary>
    Handoffs,
    /// <summary>Frames this shard could not hand off: the owner's ring was full.</summary>
    HandoffDrops,
}

/// <summary>The name table of <see cref="ShardCounter"/>: group, label and help of each slot.</summary>
public static class ShardCounters
{
    /// <summary>Number of scalar slots (array-like groups start here).</summary>
    public const int Count = (int)ShardCounter.HandoffDrops + 1;

    private static CounterDeclaration D(ShardCounter c, string group, string name, string help, CounterKind kind = CounterKind.Counter)
        => new((int)c, group, name, help, kind);

    /// <summary>Every scalar slot, declared once (group and name are what <c>natctl stats</c> and <c>/metrics</c> show).</summary>
    public static readonly IReadOnlyList<CounterDeclaration> Declarations =
    [
        D(ShardCounter.PacketsIn2Out, "packets", "in2out", "Packets translated inside to outside."),
        D(ShardCounter.PacketsOut2In, "packets", "out2in", "Packets translated outside to inside."),
        D(ShardCounter.BytesIn2Out, "bytes", "in2out", "IPv4 bytes translated inside to outside."),
        D(ShardCounter.BytesOut2In, "bytes", "out2in", "IPv4 bytes translated outside to inside."),
        D(ShardCounter.ArpRepliesSent, "gateway", "arp-replies-sent", "ARP replies natd sent for its own addresses."),
        D(ShardCounter.ArpRequestsSent, "gateway", "arp-requests-sent", "ARP requests natd sent to resolve next hops."),
        D(ShardCounter.IcmpErrorsSent, "gateway", "icmp-errors-sent", "ICMP errors natd generated."),
        D(ShardCounter.EchoRepliesSent, "gateway", "echo-replies-sent", "ICMP echo replies natd sent for its own addresses."),
        D(ShardCounter.FramesHeld, "gateway", "frames-held-for-arp", "Frames held while their next hop was resolved."),
        D(ShardCounter.ChecksumsCompleted, "gateway", "checksums-completed", "Transport checksums completed in software (checksum offload)."),
        D(ShardCounter.IcmpErrorsTranslated, "gateway", "icmp-errors-translated", "ICMP errors translated with their embedded header (RFC 5508)."),
        D(ShardCounter.BackendRefusals, "gateway", "forward-backend-refusals", "Port-forward backends marked down after refusing a connection."),
        D(ShardCounter.ProtocolForwarded, "gateway", "protocol-forwarded", "Packets translated by protocol forwards."),
        D(ShardCounter.Hairpinned, "gateway", "hairpinned", "Packets hairpinned (RFC 4787 REQ-9)."),
        D(ShardCounter.PptpGreTranslated, "gateway", "pptp-gre-translated", "PPTP GRE packets translated by Call ID (RFC 2637)."),
        D(ShardCounter.NeighboursEvicted, "gateway", "neighbours-evicted", "Learned neighbours removed to make room."),
        D(ShardCounter.NeighboursExpired, "gateway", "neighbours-expired", "Learned neighbours expired unused."),
        D(ShardCounter.PendingNeighboursEvicted, "gateway", "arp-pending-evicted", "Pending ARP resolutions given up to make room."),
        D(ShardCounter.PendingNeighboursExpired, "gateway", "arp-pending-expired", "Pending ARP resolutions that got no reply in time."),
        D(ShardCounter.EspSpisAssociated, "gateway", "esp-spis-associated", "ESP SPIs associated with an inside host."),
        D(ShardCounter.EspSpisToRekeyed, "gateway", "esp-spis-to-rekeyed-host", "ESP SPIs associated with the host that rekeyed."),
        D(ShardCounter.IsakmpCookiesLearned, "gateway", "isakmp-cookies-learned", "ISAKMP initiator cookies learned."),
        D(ShardCounter.SessionsCreated, "sessions", "created", "Sessions created."),
        D(ShardCounter.SessionsDeleted, "sessions", "deleted", "Sessions deleted, any cause."),
        D(ShardCounter.SessionsSwept, "sessions", "swept", "Sessions deleted by the sweeper's expiry slices."),
        D(ShardCounter.NatEventsDropped, "sessions", "events-dropped", "NAT events lost to a full event queue."),
        D(ShardCounter.SessionsTcp, "sessions-now", "tcp", "TCP sessions in the table.", CounterKind.Gauge),
        D(ShardCounter.SessionsUdp, "sessions-now", "udp", "UDP sessions in the table.", CounterKind.Gauge),
        D(ShardCounter.SessionsIcmp, "sessions-now", "icmp", "ICMP sessions in the table.", CounterKind.Gauge),
        D(ShardCounter.SessionsTcpEstablished, "state", "tcp-established", "TCP sessions established.", CounterKind.Gauge),
        D(ShardCounter.SessionsTcpTransitory, "state", "tcp-transitory", "TCP sessions opening or closing.", CounterKind.Gauge),
        D(ShardCounter.SessionsUdpClass, "state", "udp", "UDP sessions.", CounterKind.Gauge),
        D(ShardCounter.SessionsIcmpClass, "state", "icmp", "ICMP sessions.", CounterKind.Gauge),
        D(ShardCounter.ExpectationsCreated, "expectations", "created", "ALG expectations opened."),
        D(ShardCounter.ExpectationsUsed, "expectations", "used", "ALG expectations a related connection used."),
        D(ShardCounter.ExpectationsExpired, "expectations", "expired", "ALG expectations that expired unused."),
        D(ShardCounter.ExpectationsRefused, "expectations", "refused", "ALG expectations refused: the shard's table was full."),
        D(ShardCounter.ExpectationsPending, "expectations", "pending", "ALG expectations waiting for their connection.", CounterKind.Gauge),
        D(ShardCounter.AlgPortsExhausted, "gateway", "alg-ports-exhausted", "In2out ALG frames for which no external port could be reserved."),
        D(ShardCounter.AlgForgetsDeferred, "gateway", "alg-forgets-deferred", "Deleted ALG connections left to their helper's idle expiry: the closed-connection list was full."),
        D(ShardCounter.FragmentsTranslated, "fragments", "translated", "Fragments translated with their datagram's translation (RFC 4787 REQ-14)."),
        D(ShardCounter.FragmentsHeld, "fragments", "held", "Fragments held until their datagram's first fragment came."),
        D(ShardCounter.FragmentsReleased, "fragments", "released", "Held fragments released when their datagram's first fragment came."),
        D(ShardCounter.FragmentsRouted, "fragments", "routed", "Inbound fragments handed to the shard that owns their datagram's flow."),
        D(ShardCounter.FragmentsMade, "fragments", "made", "Fragments natd made of datagrams larger than the egress MTU (RFC 791)."),
        D(ShardCounter.DatagramsFragmented, "gateway", "datagrams-fragmented", "Datagrams natd split into fragments for the egress MTU (RFC 791)."),
        D(ShardCounter.MssClamped, "gateway", "mss-clamped", "TCP SYNs whose MSS option natd lowered to nat.mss-clamp (RFC 6691)."),
        D(ShardCounter.FramesReceived, "poller", "frames-received", "Frames received from both ports."),
        D(ShardCounter.FramesTransmitted, "poller", "frames-transmitted", "Frames queued for transmission on both ports."),
        D(ShardCounter.Batches, "poller", "batches", "Batches that carried at least one frame."),
        D(ShardCounter.BusyTicks, "poller", "busy-ticks", "Stopwatch ticks spent on batches with frames."),
        D(ShardCounter.IdleWaits, "poller", "idle-waits", "Times the poller blocked in poll(2) for lack of frames."),
        D(ShardCounter.Handoffs, "poller", "handoffs", "Frames handed to the shard that owns their flow."),
        D(ShardCounter.HandoffDrops, "poller", "handoff-drops", "Frames that could not be handed off: the owner's ring was full."),
    ];
}
