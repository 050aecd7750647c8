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
}
