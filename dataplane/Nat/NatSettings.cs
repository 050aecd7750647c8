using Natd.Dataplane.Packets;
using Natd.Dataplane.Sessions;

namespace Natd.Dataplane.Nat;

/// <summary>RFC 4787 section 4.1 mapping behaviour: what decides whether a new flow reuses an external port.</summary>
public enum MappingBehaviour
{
    /// <summary>Same inside address and port always map to the same external address and port (REQ-1).</summary>
    EndpointIndependent,
    /// <summary>A new mapping for every remote address and port.</summary>
    AddressAndPortDependent,
}

/// <summary>RFC 4787 section 5 filtering behaviour: which inbound sources a mapping accepts.</summary>
public enum FilteringBehaviour
{
    /// <summary>Only the exact remote address and port of a session (the safe default).</summary>
    AddressAndPortDependent,
    /// <summary>Any port of a remote address the mapping has sent to.</summary>
    AddressDependent,
    /// <summary>Any remote at all (full cone). Opt-in only.</summary>
    EndpointIndependent,
}

/// <summary>How strictly sources arriving on the outside are filtered (RFC 1812 section 5.3.7, RFC 2827 / BCP 38).</summary>
public enum MartianFilter
{
    /// <summary>
    /// Also drop private and special-use sources (RFC 1918, RFC 6598 100.64/10, link-local
    /// 169.254/16) unless they are on the outside link or in <see cref="NatSettings.AllowedOutsideSources"/>.
    /// </summary>
    Strict,
    /// <summary>
    /// Only the always-invalid sources (0/8, 127/8, multicast, class E, limited broadcast) and
    /// spoofed ones (natd's own addresses, the inside networks): for labs and private upstreams.
    /// </summary>
    Off,
}

/// <summary>The sources <see cref="MartianFilter.Strict"/> drops from outside, written once for the engine and the configuration check.</summary>
public static class PrivateSources
{
    /// <summary>RFC 1918 (10/8, 172.16/12, 192.168/16), RFC 6598 shared address space (100.64/10) and link-local (169.254/16, RFC 3927).</summary>
    public static IReadOnlyList<Ipv4Prefix> Ranges { get; } =
    [
        Ipv4Prefix.Parse("10.0.0.0/8"),
        Ipv4Prefix.Parse("172.16.0.0/12"),
        Ipv4Prefix.Parse("192.168.0.0/16"),
        Ipv4Prefix.Parse("100.64.0.0/10"),
        Ipv4Prefix.Parse("169.254.0.0/16"),
    ];
}

/// <summary>One side of the gateway as the dataplane sees it.</summary>
/// <param name="Name">Interface name (e.g. "natin").</param>
/// <param name="Address">natd's own address on this side and the on-link prefix.</param>
/// <param name="Networks">Networks reached through this side (inside: the subscribers).</param>
/// <param name="Gateway">Next hop for destinations off-link on this side, network order; 0 for none.</param>
/// <param name="Mac">MAC to use as source; null means the port's own.</param>
/// <param name="Neighbours">Static neighbours (address network order, MAC), e.g. for replay.</param>
public sealed record InterfaceSettings(
    string Name,
    Ipv4Prefix Address,
    IReadOnlyList<Ipv4Prefix> Networks,
    uint Gateway,
    MacAddress? Mac,
    IReadOnlyList<KeyValuePair<uint, MacAddress>> Neighbours)
{
    /// <summary>
    /// The largest IPv4 datagram natd sends out of this side, bytes (<c>interfaces.*.mtu</c>,
    /// 68..2030); 0 (the default): the link's MTU as read at start (<see cref="EngineOptions.InsideLinkMtu"/>),
    /// or no limit where there is no link (replay). Larger datagrams are fragmented, or answered with
    /// fragmentation-needed when they forbid it (RFC 791, RFC 1191).
    /// </summary>
    public int Mtu { get; init; }
}

/// <summary>
/// The immutable configuration one dataplane instance runs with. Built by the control plane from
/// natd.yaml (or the built-in lab defaults) and swapped whole; never mutated in place.
/// </summary>
public sealed record NatSettings
{
    /// <summary>Inside side (subscribers).</summary>
    public required InterfaceSettings Inside { get; init; }

    /// <summary>Outside side (the Internet).</summary>
    public required InterfaceSettings Outside { get; init; }

    /// <summary>External addresses, network order; at least one.</summary>
    public required IReadOnlyList<uint> Pool { get; init; }

    /// <summary>Lowest external port (or ICMP identifier) to allocate, host order.</summary>
    public ushort PortMin { get; init; } = 1024;

    /// <summary>Highest external port to allocate, host order.</summary>
    public ushort PortMax { get; init; } = 65535;

    /// <summary>Mapping behaviour, default endpoint-independent (RFC 4787 REQ-1).</summary>
    public MappingBehaviour Mapping { get; init; } = MappingBehaviour.EndpointIndependent;

    /// <summary>Filtering behaviour, default address-and-port-dependent.</summary>
    public FilteringBehaviour Filtering { get; init; } = FilteringBehaviour.AddressAndPortDependent;

    /// <summary>Idle timeouts.</summary>
    public Timeouts Timeouts { get; init; } = new();

    /// <summary>Session table capacity (sessions, each indexed in both directions).</summary>
    public int MaxSessions { get; init; } = 262_144;

    /// <summary>
    /// Neighbour table capacity: learned neighbours each shard keeps per side, and separately next
    /// hops it may be resolving by ARP at once per side. Static neighbours do not count.
    /// </summary>
    public int MaxNeighbours { get; init; } = 4096;

    /// <summary>
    /// Ordered forward rules; null means the built-in set: masquerade what comes from the inside
    /// networks and leaves through the outside interface. The first match decides; no match means
    /// <see cref="DefaultPolicy"/>.
    /// </summary>
    public IReadOnlyList<ForwardRule>? Rules { get; init; }

    /// <summary>What happens to a packet no rule matches: deny by default.</summary>
    public RuleAction DefaultPolicy { get; init; } = RuleAction.Deny;

    /// <summary>Inbound port forwards.</summary>
    public IReadOnlyList<PortForward> Forwards { get; init; } = [];

    /// <summary>Inbound protocol forwards.</summary>
    public IReadOnlyList<ProtocolForward> ProtocolForwards { get; init; } = [];

    /// <summary>Application-level gateways, their ports, IPsec masquerading and port triggers.</summary>
    public Alg.AlgSettings Algs { get; init; } = new();

    /// <summary>
    /// TCP MSS clamping (RFC 6691, RFC 879): the largest MSS option a SYN keeps through natd, bytes,
    /// either way; 0 (the default) leaves it alone; <see cref="MssClampAuto"/> clamps to the smaller
    /// egress MTU less 40 (the IPv4 and TCP headers without options). For hosts behind a path whose
    /// ICMP fragmentation-needed never reaches them (a PPPoE or tunnel uplink with filtered ICMP).
    /// </summary>
    public int MssClamp { get; init; }

    /// <summary><see cref="MssClamp"/> value meaning "the smaller egress MTU less 40" (<c>nat.mss-clamp: auto</c>).</summary>
    public const int MssClampAuto = -1;

    /// <summary>Whether to verify the TCP/UDP/ICMP checksum of received packets (costs a pass over the payload).</summary>
    public bool VerifyL4Checksums { get; init; } = true;

    /// <summary>Ingress filtering of outside sources; strict by default.</summary>
    public MartianFilter MartianFilter { get; init; } = MartianFilter.Strict;

    /// <summary>
    /// Private or special-use prefixes accepted as sources from outside despite the strict filter
    /// (a lab, a private upstream beyond the outside link). The outside on-link prefix needs no entry.
    /// </summary>
    public IReadOnlyList<Ipv4Prefix> AllowedOutsideSources { get; init; } = [];

    /// <summary>Carrier-grade NAT: subscribers, port allocation mode, pairing, port quarantine, per-subscriber limits (RFC 6888).</summary>
    public CgnatSettings Cgnat { get; init; } = new();

    /// <summary>Fragment handling: virtual reassembly bounds (RFC 4787 REQ-14).</summary>
    public FragmentSettings Fragments { get; init; } = new();

    /// <summary>The Port Control Protocol server's policy (RFC 6887, NAT-PMP RFC 6886); off by default.</summary>
    public Pcp.PcpSettings Pcp { get; init; } = new();
}
