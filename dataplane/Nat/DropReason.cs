namespace Natd.Dataplane.Nat;

/// <summary>
/// Why the dataplane dropped a frame. Defined once, counted per shard (VPP's error list). The
/// metric label of each is <see cref="DropReasons.Label"/>.
/// </summary>
public enum DropReason : byte
{
    /// <summary>Frame shorter than the headers it announces (Ethernet, IPv4 or L4).</summary>
    Truncated,
    /// <summary>Ethertype other than IPv4 or ARP (IPv6 included: natd is IPv4 NAT44).</summary>
    UnsupportedEthertype,
    /// <summary>IPv4 version field is not 4.</summary>
    BadVersion,
    /// <summary>IPv4 IHL below 5 words or beyond the frame.</summary>
    BadIhl,
    /// <summary>IPv4 total length below the header length or beyond the frame.</summary>
    BadTotalLength,
    /// <summary>IPv4 header checksum does not verify (RFC 1071).</summary>
    BadIpChecksum,
    /// <summary>TCP/UDP/ICMP checksum does not verify.</summary>
    BadL4Checksum,
    /// <summary>TTL would reach zero on forwarding (an ICMP time exceeded is sent, RFC 1812 5.3.1).</summary>
    TtlExpired,
    /// <summary>
    /// IPv4 fragment natd does not follow: of a protocol other than TCP, UDP and ICMP, a fragmented
    /// ICMP error, or one addressed to natd itself, hairpinned or of an untranslated flow. TCP, UDP
    /// and ICMP echo fragments are translated by virtual reassembly (<see cref="FragmentTable"/>).
    /// </summary>
    Fragment,
    /// <summary>IP protocol natd does not translate (GRE, ESP, ... unless a rule allows).</summary>
    UnsupportedProtocol,
    /// <summary>ICMP type that is neither a query natd translates nor a translatable error.</summary>
    UnsupportedIcmp,
    /// <summary>Inbound packet matching no session or mapping: unsolicited (or a partial match refused by filtering).</summary>
    NoSession,
    /// <summary>Inbound packet matched a mapping but filtering (RFC 4787 REQ-8) refused its source.</summary>
    Filtered,
    /// <summary>ICMP error whose embedded packet matches no session, or is malformed.</summary>
    IcmpErrorNoSession,
    /// <summary>No external port free in the range for this subscriber and protocol (RFC 6888 REQ-4: no eviction).</summary>
    PortExhausted,
    /// <summary>The session table is full.</summary>
    SessionLimit,
    /// <summary>Inside packet whose source is not in the inside networks (spoofed or misrouted).</summary>
    NotFromInsideNetwork,
    /// <summary>Outbound TCP packet with no session that is not a SYN (RFC 5382: only SYN creates a mapping).</summary>
    TcpNotSyn,
    /// <summary>Destination is neither routable through natd nor one of its addresses.</summary>
    NoRoute,
    /// <summary>Next hop's MAC is unknown and the ARP hold queue is full.</summary>
    NeighbourUnresolved,
    /// <summary>Transmit ring full.</summary>
    TxFull,
    /// <summary>Frame addressed to another host's MAC (not ours, not broadcast).</summary>
    NotForUs,
    /// <summary>Packet to one of natd's own addresses that natd does not answer.</summary>
    ToGateway,
    /// <summary>
    /// Source or destination is martian (0/8, 127/8, multicast, class E, limited broadcast; RFC 1812
    /// 5.3.7), or, from outside, the source is spoofed: one of natd's own addresses or an inside network (RFC 2827).
    /// </summary>
    Martian,
    /// <summary>ARP packet that is malformed or not for IPv4 over Ethernet.</summary>
    BadArp,
    /// <summary>A forward rule (or the default policy) denied the new flow.</summary>
    RuleDeny,
    /// <summary>A forward rule rejected the new flow (ICMP administratively prohibited sent).</summary>
    RuleReject,
    /// <summary>A port-less protocol to this remote is already masqueraded for another inside host.</summary>
    ProtocolInUse,
    /// <summary>A port forward's backend refused a new connection (RST or unreachable); the backend is skipped for a while.</summary>
    BackendRefused,
    /// <summary>An ALG could not rewrite a frame of its control connection safely (it would not fit the frame).</summary>
    AlgRefused,
    /// <summary>GRE version 1 (PPTP, RFC 2637 section 4.1) whose header is malformed (flags, protocol 0x880B, or shorter than its optional fields).</summary>
    BadGre,
    /// <summary>AH (IP protocol 51) with IPsec masquerading on: its ICV covers the addresses NAT rewrites (RFC 4302), so it is refused.</summary>
    AhRefused,
    /// <summary>ESP with SPI 0, reserved by RFC 4303 section 2.1.</summary>
    EspZeroSpi,
    /// <summary>A new outbound ESP SPI to a remote host while another inside host waits there for its inbound SPI (VPN Masquerade HOWTO 6: serialised init).</summary>
    EspSerialised,
    /// <summary>An outbound ESP SPI ran out of init retries while serialised; refused for the init timeout.</summary>
    EspRefused,
    /// <summary>ESP to a remote host another inside host already has ESP with, parallel sessions off.</summary>
    EspRemoteInUse,
    /// <summary>Inbound ESP with an unknown SPI that no inside host can be associated with.</summary>
    EspNoAssociation,
    /// <summary>Inbound ISAKMP (UDP 500) whose cookies match no inside host.</summary>
    IsakmpNoEntry,
    /// <summary>Outbound ISAKMP with another inside host's initiator cookie to the same remote host, held until that host's responder cookie is known.</summary>
    IsakmpCookieCollision,
    /// <summary>
    /// From outside, a private or special-use source (RFC 1918, RFC 6598, link-local) neither on the
    /// outside link nor allowed (RFC 2827 ingress filtering; <c>interfaces.outside.martian-filter</c>, <c>allowed-sources</c>).
    /// </summary>
    PrivateSource,
    /// <summary>From outside, addressed to natd's inside address: it answers only on the inside.</summary>
    InsideAddressFromOutside,
    /// <summary>A transport header's own length is impossible: UDP length below 8 or not the IP payload's (RFC 768), TCP data offset below 5 words (RFC 9293).</summary>
    BadL4Length,
    /// <summary>A new flow of a subscriber already holding <c>limits.per-subscriber.sessions</c> sessions (RFC 6888 REQ-4).</summary>
    SubscriberSessionLimit,
    /// <summary>A new mapping of a subscriber already holding <c>limits.per-subscriber.ports</c> external ports (RFC 6888 REQ-4).</summary>
    SubscriberPortLimit,
    /// <summary>A new flow of a subscriber over <c>limits.per-subscriber.new-sessions-per-second</c> (RFC 6888 REQ-4).</summary>
    SubscriberRateLimit,
    /// <summary>
    /// The subscriber's paired external address has no free port or block and <c>nat.pairing</c> is
    /// strict, or it already holds <c>nat.port-block.per-subscriber</c> full blocks (RFC 4787 REQ-2, RFC 6888 REQ-6).
    /// </summary>
    PairedAddressFull,
    /// <summary>An inside source outside every <c>nat.deterministic.inside</c> prefix: deterministic NAT has no range for it (RFC 7422).</summary>
    NotDeterministicSubscriber,
    /// <summary>A fragment overlapping another of the same datagram (teardrop, RFC 1858 and RFC 3128).</summary>
    FragmentOverlap,
    /// <summary>A new fragmented datagram while <c>fragments.max-datagrams</c> are being reassembled.</summary>
    FragmentDatagramLimit,
    /// <summary>A fragment beyond <c>fragments.max-per-datagram</c> of its datagram.</summary>
    FragmentPerDatagramLimit,
    /// <summary>A fragment held for its datagram's first fragment, which did not come within <c>fragments.timeout</c>.</summary>
    FragmentTimeout,
    /// <summary>A fragment whose datagram's first fragment was dropped (the first fragment's reason is counted once, on it).</summary>
    FragmentOfDroppedDatagram,
    /// <summary>A fragment that came before its datagram's first while the shard's held-frame pool was full (<see cref="FragmentTable.HeldCapacity"/>); its datagram is refused.</summary>
    FragmentHoldFull,
    /// <summary>A datagram to the PCP server that RFC 6887 section 8.3 (or RFC 6886) says to ignore: shorter than 2 bytes, a response, a NAT-PMP request too short for its opcode, or a bad UDP checksum.</summary>
    PcpIgnored,
    /// <summary>A PCP or NAT-PMP request over the subscriber's <c>pcp.requests-per-second</c>: dropped silently.</summary>
    PcpRateLimited,
    /// <summary>Inbound to a PCP mapping from a remote none of its FILTERs admit (RFC 6887 section 13.3).</summary>
    PcpFiltered,
    /// <summary>
    /// A datagram with don't-fragment set and larger than the egress side's MTU: answered with ICMP
    /// fragmentation-needed and the MTU (RFC 1191, RFC 1812 section 5.2.7.1) when natd can still quote
    /// what the sender sent, rate-limited as every ICMP error natd makes.
    /// </summary>
    FragmentationNeeded,
}

/// <summary>Names for <see cref="DropReason"/>.</summary>
public static class DropReasons
{
    /// <summary>Number of reasons (array size for counters); reasons are numbered from 0 without gaps.</summary>
    public static readonly int Count = Enum.GetValues<DropReason>().Length;

    private static readonly string[] Labels = BuildLabels();

    /// <summary>kebab-case label, e.g. "bad-ip-checksum", used in metrics, logs and pcapng comments.</summary>
    public static string Label(DropReason reason) => Labels[(int)reason];

    private static string[] BuildLabels()
    {
        var labels = new string[Count];
        for (int i = 0; i < Count; i++)
        {
            string name = ((DropReason)i).ToString();
            var sb = new System.Text.StringBuilder(name.Length + 4);
            for (int c = 0; c < name.Length; c++)
            {
                if (char.IsUpper(name[c]) && c > 0)
                {
                    sb.Append('-');
                }
                sb.Append(char.ToLowerInvariant(name[c]));
            }
            labels[i] = sb.ToString();
        }
        return labels;
    }
}
