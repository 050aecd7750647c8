using Natd.Dataplane.Packets;

namespace Natd.Dataplane.Pcp;

/// <summary>
/// The operator's policy for the Port Control Protocol server (RFC 6887, with NAT-PMP, RFC 6886,
/// on the same port): natd.yaml's <c>pcp</c> section. Immutable; a reload swaps it whole and the
/// new policy applies to the next request (existing mappings keep their granted lifetime).
/// </summary>
public sealed record PcpSettings
{
    /// <summary>Whether natd answers UDP 5351 on its inside address; off, such datagrams are dropped as to-gateway.</summary>
    public bool Enabled { get; init; }

    /// <summary>Longest lifetime granted, seconds (a longer request is cut to it; RFC 6887 section 15).</summary>
    public int MaxLifetime { get; init; } = 86400;

    /// <summary>Shortest lifetime granted to a create or refresh, seconds (a shorter one is raised to it).</summary>
    public int MinLifetime { get; init; } = 120;

    /// <summary>Mappings one subscriber may hold at once; one more is USER_EX_QUOTA (NAT-PMP: out of resources).</summary>
    public int MappingsPerSubscriber { get; init; } = 32;

    /// <summary>External ports a mapping may be given (host order); the suggested port is honoured only inside it.</summary>
    public PortRange AllowedPorts { get; init; } = new(1024, 65535);

    /// <summary>Whether the THIRD_PARTY option is accepted (a host asking for another inside host); refused with NOT_AUTHORIZED otherwise.</summary>
    public bool ThirdParty { get; init; }

    /// <summary>
    /// Whether a MAP for all ports (internal port 0 with TCP or UDP, or protocol 0: TCP and UDP;
    /// RFC 6887 sections 11.1 and 11.3) is granted: the requesting host then receives unsolicited
    /// traffic to every port its subscriber owns (its deterministic range or its port blocks), each
    /// external port to the same internal port. Needs <c>nat.allocation</c> port-block or
    /// deterministic (with dynamic allocation a subscriber owns no ports); off, such a MAP is refused
    /// (protocol 0: UNSUPP_PROTOCOL, port 0: NOT_AUTHORIZED).
    /// </summary>
    public bool AllPorts { get; init; }

    /// <summary>Requests per second one subscriber may send (token bucket); more are dropped silently and counted as rate-limited.</summary>
    public int RequestsPerSecond { get; init; } = 20;
}
