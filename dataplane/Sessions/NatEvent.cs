using System.Runtime.InteropServices;

namespace Natd.Dataplane.Sessions;

/// <summary>What a <see cref="NatEvent"/> records (the natEvent codes of RFC 8158 section 4 map onto these).</summary>
public enum NatEventType : byte
{
    /// <summary>A session was created (RFC 8158 natEvent 4, NAT44 session create).</summary>
    SessionCreated = 1,
    /// <summary>A session was deleted: expired, flushed or closed (RFC 8158 natEvent 5, NAT44 session delete).</summary>
    SessionDeleted = 2,
    /// <summary>No external port was free for a new flow (RFC 8158 natEvent 12, NAT ports exhausted).</summary>
    PortExhausted = 3,
    /// <summary>The session table was full (RFC 8158 natEvent 13, quota exceeded).</summary>
    SessionLimit = 4,
    /// <summary>A subscriber was given a port block (RFC 8158 port block allocation).</summary>
    PortBlockAllocated = 5,
    /// <summary>A subscriber's port block was released after its last mapping ended (RFC 8158 port block de-allocation).</summary>
    PortBlockReleased = 6,
    /// <summary>A held block, logged again every <c>nat.port-block.interim-log</c> seconds (so retention never loses a long-held block).</summary>
    PortBlockInterim = 7,
    /// <summary>A subscriber hit a limit (<see cref="NatEvent.Detail"/> says which: <see cref="NatLimitKind"/>; RFC 8158 quota exceeded); rate limited per subscriber.</summary>
    SubscriberLimit = 8,
    /// <summary>An external address passed the configured utilisation threshold (RFC 8158 threshold reached).</summary>
    PoolThreshold = 9,
    /// <summary>A subscriber's mapping spilled to another external address (<c>nat.pairing: spill</c>).</summary>
    PairingSpill = 10,
    /// <summary>A subscriber made an inbound mapping with PCP MAP or NAT-PMP (RFC 6887 section 11; IPFIX natEvent 8, NAT44 BIB create).</summary>
    PcpMappingCreated = 11,
    /// <summary>A PCP or NAT-PMP mapping was refreshed with a new lifetime (IPFIX natEvent 8 again, as an interim port-block record repeats its allocation).</summary>
    PcpMappingRefreshed = 12,
    /// <summary>A PCP or NAT-PMP mapping ended (<see cref="NatEvent.Detail"/> says why: <see cref="PcpDeleteCause"/>; IPFIX natEvent 9, NAT44 BIB delete).</summary>
    PcpMappingDeleted = 13,
    /// <summary>A subscriber paired with a draining address (<c>nat.drain</c>) was paired with another for its new flows (IPFIX natEvent 14, address binding create); its live sessions keep the old one until they end.</summary>
    PairingMoved = 14,
}

/// <summary>Why a <see cref="NatEventType.PcpMappingDeleted"/> event's mapping ended.</summary>
public enum PcpDeleteCause : byte
{
    /// <summary>Its client deleted it (PCP MAP or NAT-PMP request with lifetime 0).</summary>
    Client = 0,
    /// <summary>Its lifetime ran out without a refresh.</summary>
    Expired = 1,
    /// <summary>The operator deleted it (natctl mappings delete, POST /mappings/delete).</summary>
    Operator = 2,
    /// <summary>A reload changed the pool, the carrier-grade settings or turned PCP off.</summary>
    Reload = 3,
}

/// <summary>Which limit a <see cref="NatEventType.SubscriberLimit"/> event reports.</summary>
public enum NatLimitKind : byte
{
    /// <summary>No limit (other events).</summary>
    None = 0,
    /// <summary><c>limits.per-subscriber.sessions</c>.</summary>
    Sessions = 1,
    /// <summary><c>limits.per-subscriber.ports</c>.</summary>
    Ports = 2,
    /// <summary><c>limits.per-subscriber.new-sessions-per-second</c>.</summary>
    Rate = 3,
    /// <summary><c>nat.port-block.per-subscriber</c> blocks all full.</summary>
    Blocks = 4,
}

/// <summary>
/// One NAT event for compliance logging, queued by the owning poller without blocking and drained
/// by the control plane's event logger. Carries the inside and external endpoints but no remote
/// endpoint: RFC 6888 (section 4, logging) warns that logging destinations is a privacy and volume burden. Addresses network order,
/// ports host order, time in the engine's clock (milliseconds; monotonic in live operation).
/// </summary>
[StructLayout(LayoutKind.Sequential)]
public struct NatEvent
{
    /// <summary>When, in the engine's clock (ms).</summary>
    public long TimeMs;
    /// <summary>Inside address, network order.</summary>
    public uint InsideAddress;
    /// <summary>External address, network order (0 when exhaustion left none).</summary>
    public uint ExternalAddress;
    /// <summary>Inside port or ICMP identifier.</summary>
    public ushort InsidePort;
    /// <summary>External port or ICMP identifier (0 when none was allocated).</summary>
    public ushort ExternalPort;
    /// <summary>Kind of event.</summary>
    public NatEventType Type;
    /// <summary>IP protocol.</summary>
    public byte Protocol;
    /// <summary>Port blocks: the block's highest port (host order); <see cref="ExternalPort"/> is its lowest. 0 otherwise.</summary>
    public ushort PortHigh;
    /// <summary>Port blocks: ports between consecutive ports of the block (RFC 8158 portRangeStepSize; the shard count), 0 otherwise.</summary>
    public byte PortStep;
    /// <summary>Event detail: the <see cref="NatLimitKind"/> of a limit event; the utilisation percent of a threshold event; the <see cref="PcpDeleteCause"/> of a PCP mapping delete.</summary>
    public byte Detail;
    /// <summary>PCP mapping create and refresh: the lifetime granted (seconds). 0 otherwise.</summary>
    public uint Lifetime;
}
