using Natd.Dataplane.Packets;

namespace Natd.Dataplane.Nat;

/// <summary>How external ports are handed to subscribers (<c>nat.allocation</c>).</summary>
public enum PortAllocation
{
    /// <summary>One port per mapping, drawn at random from the whole range (RFC 6056); one log record per session.</summary>
    Dynamic,

    /// <summary>
    /// Port-block allocation (PBA): a subscriber's first flow takes a block of ports on its paired
    /// external address, its mappings draw ports at random inside its blocks; one log record per
    /// block (RFC 6888 section 5, RFC 8158 port-block records).
    /// </summary>
    PortBlock,

    /// <summary>
    /// Deterministic NAT (RFC 7422): every subscriber of <c>nat.deterministic.inside</c> owns a fixed
    /// external address and port range computed from the configuration alone; nothing is logged per
    /// session or block (the mapping is the log).
    /// </summary>
    Deterministic,
}

/// <summary>What a subscriber gets when its paired external address is full (<c>nat.pairing</c>; RFC 4787 REQ-2, RFC 6888 REQ-6).</summary>
public enum Pairing
{
    /// <summary>Refuse and count: a subscriber never appears behind two external addresses.</summary>
    Strict,

    /// <summary>Take a port or block on another external address, and log that the subscriber spilled.</summary>
    Spill,
}

/// <summary>Port-block allocation's shape (<c>nat.port-block</c>).</summary>
/// <param name="Size">Ports in one block (16..32768). With several shards a block's ports are
/// every shard-th port from its low port (RFC 8158 portRangeStepSize = shard count), so each port
/// stays owned by one shard.</param>
/// <param name="PerSubscriber">Blocks a subscriber may hold at once (1..1024).</param>
/// <param name="InterimLogSeconds">Seconds between interim records of a held block; 0 = none.</param>
public sealed record PortBlockSettings(int Size = 512, int PerSubscriber = 8, int InterimLogSeconds = 0);

/// <summary>Deterministic NAT's inputs (<c>nat.deterministic</c>, RFC 7422).</summary>
/// <param name="Inside">Inside prefixes whose every address is a subscriber (with <c>nat.subscriber-prefix</c> 32); ordered as configured.</param>
/// <param name="Ports">Ports per subscriber; 0 = derived (the usable range divided evenly, rounded down).</param>
public sealed record DeterministicSettings(IReadOnlyList<Ipv4Prefix> Inside, int Ports = 0);

/// <summary>Per-subscriber limits (<c>limits.per-subscriber</c>; RFC 6888 REQ-3, REQ-4). 0 means unlimited.</summary>
/// <param name="Sessions">Live sessions a subscriber may hold.</param>
/// <param name="Ports">External ports (mappings) a subscriber may hold at once, all protocols together.</param>
/// <param name="NewSessionsPerSecond">New sessions a subscriber may open per second (a token bucket with one second of burst).</param>
public sealed record SubscriberLimits(int Sessions = 0, int Ports = 0, int NewSessionsPerSecond = 0)
{
    /// <summary>True when no limit is set.</summary>
    public bool None => Sessions == 0 && Ports == 0 && NewSessionsPerSecond == 0;
}

/// <summary>IPv4 fragment handling (<c>fragments</c>; RFC 4787 REQ-14): virtual reassembly per shard.</summary>
/// <param name="MaxDatagrams">Datagrams being reassembled at once per shard (1..1,048,576).</param>
/// <param name="MaxPerDatagram">Fragments of one datagram natd holds or tracks (2..1024).</param>
/// <param name="TimeoutSeconds">Seconds a datagram's state lives after its first fragment arrived (1..60).</param>
public sealed record FragmentSettings(int MaxDatagrams = 1024, int MaxPerDatagram = 64, int TimeoutSeconds = 2);

/// <summary>
/// The carrier-grade NAT settings (RFC 6888): subscribers, port allocation, pairing, port
/// quarantine and per-subscriber limits. The defaults reproduce natd before CGN: every inside
/// address is a subscriber, dynamic per-session ports, strict pairing.
/// </summary>
public sealed record CgnatSettings
{
    /// <summary>Prefix length (1..32) that makes an inside address a subscriber: 32 is one address, 30 a small-business /30.</summary>
    public int SubscriberPrefix { get; init; } = 32;

    /// <summary>Port allocation mode.</summary>
    public PortAllocation Allocation { get; init; } = PortAllocation.Dynamic;

    /// <summary>Block shape for <see cref="PortAllocation.PortBlock"/>.</summary>
    public PortBlockSettings PortBlock { get; init; } = new();

    /// <summary>Inputs of <see cref="PortAllocation.Deterministic"/>; null in the other modes.</summary>
    public DeterministicSettings? Deterministic { get; init; }

    /// <summary>What happens when a subscriber's paired address is full.</summary>
    public Pairing Pairing { get; init; } = Pairing.Strict;

    /// <summary>Seconds a released port or block rests before it is handed out again (0..3600).</summary>
    public int PortReuseDelaySeconds { get; init; } = 120;

    /// <summary>Per-subscriber limits.</summary>
    public SubscriberLimits Limits { get; init; } = new();

    /// <summary>
    /// Utilisation (percent, 1..100; 0 = off) of an external address's ports, or of its blocks with
    /// port-block allocation, at which its shard emits a PoolThreshold event (RFC 8158 "threshold
    /// reached"); re-armed once the use falls <see cref="PoolThresholdHysteresis"/> points below.
    /// </summary>
    public int PoolThresholdPercent { get; init; } = 90;

    /// <summary>Points below <see cref="PoolThresholdPercent"/> an address must fall before it can raise the event again.</summary>
    public const int PoolThresholdHysteresis = 5;

    /// <summary>
    /// Pool addresses being taken out of service (<c>nat.drain</c>): no new pairing goes to them, and
    /// a subscriber paired with one moves to a serving address at its next new mapping, its live
    /// sessions keeping their ports until they end. Empty by default; never every pool address, and
    /// not with deterministic allocation (the configuration fixes each subscriber's address).
    /// </summary>
    public DrainingAddresses Drain { get; init; } = DrainingAddresses.None;

    /// <summary>The subscriber an inside address (network order) belongs to: the address with its host bits below <see cref="SubscriberPrefix"/> cleared (network order).</summary>
    public uint SubscriberOf(uint insideAddress)
        => SubscriberPrefix >= 32 ? insideAddress : Ipv4.FromHostOrder(Ipv4.ToHostOrder(insideAddress) & (uint)(0xFFFF_FFFFUL << (32 - SubscriberPrefix)));
}

/// <summary>
/// A set of external addresses (network order) compared by content, so that a reload that keeps
/// <c>nat.drain</c> as it was leaves <see cref="CgnatSettings"/> equal to the running one.
/// </summary>
public sealed class DrainingAddresses : IEquatable<DrainingAddresses>
{
    /// <summary>No address drains.</summary>
    public static readonly DrainingAddresses None = new([]);

    private readonly uint[] _sorted;

    /// <summary>The set of <paramref name="addresses"/> (network order; duplicates count once).</summary>
    public DrainingAddresses(IEnumerable<uint> addresses)
    {
        ArgumentNullException.ThrowIfNull(addresses);
        var set = new SortedSet<uint>(addresses);
        _sorted = [.. set];
    }

    /// <summary>Addresses in the set.</summary>
    public int Count => _sorted.Length;

    /// <summary>The addresses (network order), ordered by their value as a network-order integer (not by address: see <see cref="ToString"/>).</summary>
    public IReadOnlyList<uint> Addresses => _sorted;

    /// <summary>True when <paramref name="address"/> (network order) drains.</summary>
    public bool Contains(uint address) => Array.BinarySearch(_sorted, address) >= 0;

    /// <summary>A flag per pool index: true where <paramref name="pool"/>'s address drains.</summary>
    public bool[] Mask(IReadOnlyList<uint> pool)
    {
        ArgumentNullException.ThrowIfNull(pool);
        var mask = new bool[pool.Count];
        for (int i = 0; i < mask.Length; i++)
        {
            mask[i] = Contains(pool[i]);
        }
        return mask;
    }

    /// <inheritdoc/>
    public bool Equals(DrainingAddresses? other) => other is not null && _sorted.AsSpan().SequenceEqual(other._sorted);

    /// <inheritdoc/>
    public override bool Equals(object? obj) => Equals(obj as DrainingAddresses);

    /// <inheritdoc/>
    public override int GetHashCode()
    {
        var h = new HashCode();
        foreach (uint a in _sorted)
        {
            h.Add(a);
        }
        return h.ToHashCode();
    }

    /// <summary>The addresses as natd.yaml writes them, in address order: <c>[198.51.100.7, 198.51.100.9]</c>.</summary>
    public override string ToString()
    {
        var byAddress = new uint[_sorted.Length];
        for (int i = 0; i < byAddress.Length; i++)
        {
            byAddress[i] = Ipv4.ToHostOrder(_sorted[i]);
        }
        Array.Sort(byAddress);
        var parts = new string[byAddress.Length];
        for (int i = 0; i < parts.Length; i++)
        {
            parts[i] = Ipv4.Format(Ipv4.FromHostOrder(byAddress[i]));
        }
        return "[" + string.Join(", ", parts) + "]";
    }
}
