using Natd.Dataplane.Packets;

namespace Natd.Dataplane.Nat;

/// <summary>What a forward rule does with a packet it matches (ipchains' targets).</summary>
public enum RuleAction : byte
{
    /// <summary>Translate the source to an external address (only when leaving the outside interface).</summary>
    Masquerade,
    /// <summary>Route without translation (registered-address hosts).</summary>
    Accept,
    /// <summary>Drop silently.</summary>
    Deny,
    /// <summary>Drop and answer ICMP destination unreachable (administratively prohibited, RFC 1812 5.2.7.1).</summary>
    Reject,
}

/// <summary>Which interface a rule matches on.</summary>
public enum RuleInterface : byte
{
    /// <summary>Either side.</summary>
    Any,
    /// <summary>The inside interface.</summary>
    Inside,
    /// <summary>The outside interface.</summary>
    Outside,
}

/// <summary>
/// One forward rule, matched in order on the slow path only (a session, once made, carries the
/// decision): every non-empty criterion must match. Empty lists mean "any".
/// </summary>
public sealed record ForwardRule
{
    /// <summary>Name used in logs and metrics (rule_hits_total{rule=...}); defaults to "rule-N".</summary>
    public required string Name { get; init; }
    /// <summary>Source prefixes.</summary>
    public IReadOnlyList<Ipv4Prefix> Sources { get; init; } = [];
    /// <summary>Destination prefixes.</summary>
    public IReadOnlyList<Ipv4Prefix> Destinations { get; init; } = [];
    /// <summary>IP protocol number, or null for any.</summary>
    public byte? Protocol { get; init; }
    /// <summary>Source port ranges (TCP/UDP only).</summary>
    public IReadOnlyList<PortRange> SourcePorts { get; init; } = [];
    /// <summary>Destination port ranges (TCP/UDP only).</summary>
    public IReadOnlyList<PortRange> DestinationPorts { get; init; } = [];
    /// <summary>Ingress interface.</summary>
    public RuleInterface In { get; init; } = RuleInterface.Any;
    /// <summary>Egress interface.</summary>
    public RuleInterface Out { get; init; } = RuleInterface.Any;
    /// <summary>Action.</summary>
    public RuleAction Action { get; init; }
    /// <summary>Log matching packets (rate limited), as ipfwadm -o did.</summary>
    public bool Log { get; init; }
}

/// <summary>How a port forward picks a backend for a new connection.</summary>
public enum Balance : byte
{
    /// <summary>Hash of the remote source address: one client sticks to one backend.</summary>
    SourceHash,
    /// <summary>Each new connection to the next backend.</summary>
    RoundRobin,
}

/// <summary>
/// An inbound port forward (ipportfw): connections to an external address and port (or range)
/// go to one of the inside backends. A backend that refuses (RST or ICMP unreachable) is skipped
/// for a while.
/// </summary>
public sealed record PortForward
{
    /// <summary>TCP or UDP.</summary>
    public required byte Protocol { get; init; }
    /// <summary>External address, network order (must be in the pool or the outside address).</summary>
    public required uint ExternalAddress { get; init; }
    /// <summary>External ports, host order.</summary>
    public required PortRange ExternalPorts { get; init; }
    /// <summary>Backends (address network order, port host order; port 0 means "same as the external port").</summary>
    public required IReadOnlyList<KeyValuePair<uint, ushort>> Backends { get; init; }
    /// <summary>Backend choice.</summary>
    public Balance Balance { get; init; } = Balance.SourceHash;
}

/// <summary>
/// A protocol forward (ipfwd --masq): inbound packets of an IP protocol without ports (e.g. GRE 47,
/// ESP 50) to an external address go to one inside server, and that server's packets of the
/// protocol are masqueraded to the same external address.
/// </summary>
/// <param name="Protocol">IP protocol number.</param>
/// <param name="ExternalAddress">External address, network order.</param>
/// <param name="InsideServer">Inside server address, network order.</param>
public sealed record ProtocolForward(byte Protocol, uint ExternalAddress, uint InsideServer);
