using Natd.Dataplane.Nat;
using Natd.Dataplane.Sessions;

namespace Natd.Dataplane.Workers;

/// <summary>Ask a poller for its sessions; the reply is an <see cref="IReadOnlyList{SessionInfo}"/>.</summary>
public sealed record GetSessions
{
    /// <summary>The one instance (the message carries nothing).</summary>
    public static readonly GetSessions Instance = new();
}

/// <summary>Ask a poller for its pending ALG expectations; the reply is a <see cref="List{ExpectationInfo}"/>.</summary>
public sealed record GetExpectations
{
    /// <summary>The one instance.</summary>
    public static readonly GetExpectations Instance = new();
}

/// <summary>Ask a poller for its subscribers; the reply is a <see cref="List{SubscriberInfo}"/> (Natd.Dataplane.Sessions).</summary>
public sealed record GetSubscribers
{
    /// <summary>The one instance.</summary>
    public static readonly GetSubscribers Instance = new();
}

/// <summary>Ask a poller for its held port blocks; the reply is a <see cref="List{BlockInfo}"/> (Natd.Dataplane.Sessions).</summary>
public sealed record GetBlocks
{
    /// <summary>The one instance.</summary>
    public static readonly GetBlocks Instance = new();
}

/// <summary>Ask a poller to delete up to <paramref name="Budget"/> expired sessions; the reply is the count deleted (int).</summary>
/// <param name="Budget">Most sessions to delete in this slice.</param>
public sealed record SweepSlice(int Budget);

/// <summary>
/// Ask a poller to delete every session, or with <paramref name="External"/> only those on that
/// external address (ending a <c>nat.drain</c>); the reply is the count deleted (int).
/// </summary>
/// <param name="External">External (pool) address, network order; 0 for every session.</param>
public sealed record FlushSessions(uint External = 0)
{
    /// <summary>Every session.</summary>
    public static readonly FlushSessions Instance = new();
}

/// <summary>
/// Swap in new settings. Only the parts that need no table rebuild apply live (timeouts,
/// mapping and filtering behaviour, checksum verification); the reply is an <see cref="ApplyResult"/>.
/// </summary>
/// <param name="Settings">The validated new settings.</param>
/// <param name="Id">The reload it belongs to, echoed in the reply (so a late answer to an abandoned reload is recognised).</param>
public sealed record ApplySettings(NatSettings Settings, long Id = 0);

/// <summary>
/// Would <see cref="ApplySettings"/> apply these settings now? The reload's first phase: nothing
/// changes; the reply is an <see cref="ApplyResult"/> (Applied = it would).
/// </summary>
/// <param name="Settings">The validated new settings.</param>
/// <param name="Id">The reload it belongs to, echoed in the reply.</param>
public sealed record CheckSettings(NatSettings Settings, long Id = 0);

/// <summary>
/// The links' MTUs changed while natd runs (<c>ip link set ... mtu</c>, a PPPoE session renegotiated):
/// the engine's egress MTU follows where the configuration names none (<see cref="NatEngine.SetLinkMtus"/>).
/// </summary>
/// <param name="Inside">The inside link's MTU, bytes (0: not known).</param>
/// <param name="Outside">The outside link's MTU, bytes (0: not known).</param>
public sealed record ApplyLinkMtus(int Inside, int Outside);

/// <summary>Outcome of <see cref="ApplySettings"/> or <see cref="CheckSettings"/>.</summary>
/// <param name="Applied">True when the settings are in force.</param>
/// <param name="Reason">Why not, when not.</param>
/// <param name="Id">The <see cref="ApplySettings.Id"/> or <see cref="CheckSettings.Id"/> answered.</param>
public sealed record ApplyResult(bool Applied, string? Reason, long Id = 0);

/// <summary>
/// Ask a poller to delete the session(s) of an inside endpoint, optionally narrowed to one remote
/// endpoint (natctl delete); the reply is the count deleted (int).
/// </summary>
/// <param name="Protocol">IP protocol number.</param>
/// <param name="InsideAddress">Inside address, network order.</param>
/// <param name="InsidePort">Inside port or ICMP identifier, host order.</param>
/// <param name="RemoteAddress">Remote address, network order; 0 for any.</param>
/// <param name="RemotePort">Remote port, host order; 0 for any.</param>
public sealed record DeleteSession(byte Protocol, uint InsideAddress, ushort InsidePort, uint RemoteAddress, ushort RemotePort);

/// <summary>Ask a poller for its state to save across a restart; the reply is a <see cref="ShardState"/>.</summary>
public sealed record ExportState
{
    /// <summary>The one instance.</summary>
    public static readonly ExportState Instance = new();
}

/// <summary>A shard's sessions, learned neighbours and PCP mappings, for the restart snapshot.</summary>
/// <param name="Sessions">Every live session.</param>
/// <param name="InsideNeighbours">Inside neighbours (address network order, MAC).</param>
/// <param name="OutsideNeighbours">Outside neighbours.</param>
/// <param name="PcpMappings">Every live PCP and NAT-PMP mapping (empty with PCP off).</param>
public sealed record ShardState(
    IReadOnlyList<SessionRecord> Sessions,
    IReadOnlyList<KeyValuePair<uint, Packets.MacAddress>> InsideNeighbours,
    IReadOnlyList<KeyValuePair<uint, Packets.MacAddress>> OutsideNeighbours,
    IReadOnlyList<PcpMappingRecord>? PcpMappings = null);

/// <summary>Ask a poller for its PCP and NAT-PMP mappings (natctl mappings); the reply is a <see cref="List{PcpMappingInfo}"/>.</summary>
public sealed record GetPcpMappings
{
    /// <summary>The one instance.</summary>
    public static readonly GetPcpMappings Instance = new();
}

/// <summary>
/// Ask a poller to delete a PCP or NAT-PMP mapping (natctl mappings delete); the reply is the count
/// deleted (int, 0 or 1). See <see cref="NatEngine.DeletePcpMapping(byte, uint, ushort, bool, long)"/>.
/// </summary>
/// <param name="Protocol">IP protocol number (6 tcp, 17 udp).</param>
/// <param name="Address">The mapping's internal address, or its external one when <paramref name="External"/>; network order.</param>
/// <param name="Port">The matching port, host order.</param>
/// <param name="External">True when <paramref name="Address"/> and <paramref name="Port"/> are the external endpoint.</param>
public sealed record DeletePcpMapping(byte Protocol, uint Address, ushort Port, bool External);

/// <summary>PPTP calls an ALG helper saw set up or cleared, for shard 0's GRE translator (no reply).</summary>
/// <param name="Calls">The calls, in order.</param>
public sealed record ApplyGreCalls(IReadOnlyList<Alg.GreCall> Calls);
