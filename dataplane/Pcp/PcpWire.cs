namespace Natd.Dataplane.Pcp;

/// <summary>PCP result codes (RFC 6887 section 7.4), as carried in byte 3 of a response.</summary>
public enum PcpResultCode : byte
{
    /// <summary>Success.</summary>
    Success = 0,
    /// <summary>The version is not one this server speaks (long lifetime error).</summary>
    UnsuppVersion = 1,
    /// <summary>Disabled for this client or against the server's policy (long).</summary>
    NotAuthorized = 2,
    /// <summary>The request could not be parsed (long).</summary>
    MalformedRequest = 3,
    /// <summary>Unsupported opcode (long).</summary>
    UnsuppOpcode = 4,
    /// <summary>A mandatory-to-process option the server does not know (long).</summary>
    UnsuppOption = 5,
    /// <summary>An option of the wrong length, repeated, or not valid for the opcode (long).</summary>
    MalformedOption = 6,
    /// <summary>The server or the device it controls has a network failure (short).</summary>
    NetworkFailure = 7,
    /// <summary>No resources to create the mapping, e.g. the table is full (short).</summary>
    NoResources = 8,
    /// <summary>The protocol is not supported (long).</summary>
    UnsuppProtocol = 9,
    /// <summary>The subscriber's mapping quota is used up (short).</summary>
    UserExQuota = 10,
    /// <summary>The suggested external address/port cannot be given and PREFER_FAILURE was asked (short).</summary>
    CannotProvideExternal = 11,
    /// <summary>The client address field is not the packet's source (long).</summary>
    AddressMismatch = 12,
    /// <summary>Too many remote peers (FILTER options) (long).</summary>
    ExcessiveRemotePeers = 13,
}

/// <summary>NAT-PMP result codes (RFC 6886 section 3.5), a 16-bit field at bytes 2-3 of a response.</summary>
public enum NatPmpResultCode : ushort
{
    /// <summary>Success.</summary>
    Success = 0,
    /// <summary>Unsupported version.</summary>
    UnsupportedVersion = 1,
    /// <summary>Not authorized or refused.</summary>
    NotAuthorized = 2,
    /// <summary>Network failure.</summary>
    NetworkFailure = 3,
    /// <summary>Out of resources (no ports left, or the quota used up).</summary>
    OutOfResources = 4,
    /// <summary>Unsupported opcode.</summary>
    UnsupportedOpcode = 5,
}

/// <summary>
/// What became of one datagram to UDP 5351: the label of <c>natd_pcp_requests_total{result=...}</c>.
/// The PCP values mirror <see cref="PcpResultCode"/> (a reply with that code was sent); the
/// NAT-PMP values the RFC 6886 codes; <see cref="RateLimited"/>, <see cref="Dropped"/> and
/// <see cref="NatPmpMalformed"/> were answered with silence. Add new outcomes at the end.
/// </summary>
public enum PcpOutcome : byte
{
    /// <summary>PCP SUCCESS sent.</summary>
    Success,
    /// <summary>PCP UNSUPP_VERSION sent (a version neither 0, NAT-PMP, nor 2).</summary>
    UnsuppVersion,
    /// <summary>PCP NOT_AUTHORIZED sent.</summary>
    NotAuthorized,
    /// <summary>PCP MALFORMED_REQUEST sent.</summary>
    MalformedRequest,
    /// <summary>PCP UNSUPP_OPCODE sent.</summary>
    UnsuppOpcode,
    /// <summary>PCP UNSUPP_OPTION sent.</summary>
    UnsuppOption,
    /// <summary>PCP MALFORMED_OPTION sent.</summary>
    MalformedOption,
    /// <summary>PCP NETWORK_FAILURE sent.</summary>
    NetworkFailure,
    /// <summary>PCP NO_RESOURCES sent.</summary>
    NoResources,
    /// <summary>PCP UNSUPP_PROTOCOL sent.</summary>
    UnsuppProtocol,
    /// <summary>PCP USER_EX_QUOTA sent.</summary>
    UserExQuota,
    /// <summary>PCP CANNOT_PROVIDE_EXTERNAL sent.</summary>
    CannotProvideExternal,
    /// <summary>PCP ADDRESS_MISMATCH sent.</summary>
    AddressMismatch,
    /// <summary>PCP EXCESSIVE_REMOTE_PEERS sent.</summary>
    ExcessiveRemotePeers,
    /// <summary>The subscriber sent more than <see cref="PcpSettings.RequestsPerSecond"/>: dropped silently.</summary>
    RateLimited,
    /// <summary>Ignored as the RFC says: shorter than 2 bytes, a response (R bit or NAT-PMP opcode &gt;= 128), or a bad UDP checksum.</summary>
    Dropped,
    /// <summary>NAT-PMP success sent.</summary>
    NatPmpSuccess,
    /// <summary>NAT-PMP "not authorized/refused" sent.</summary>
    NatPmpNotAuthorized,
    /// <summary>NAT-PMP "out of resources" sent.</summary>
    NatPmpOutOfResources,
    /// <summary>NAT-PMP "unsupported opcode" sent.</summary>
    NatPmpUnsuppOpcode,
    /// <summary>A NAT-PMP request too short for its opcode: dropped silently (RFC 6886 defines no reply).</summary>
    NatPmpMalformed,
}

/// <summary>Labels of <see cref="PcpOutcome"/> (the metric's <c>result</c> values) and the result-to-outcome maps.</summary>
public static class PcpOutcomes
{
    /// <summary>Number of outcomes (counter slots).</summary>
    public static readonly int Count = Enum.GetValues<PcpOutcome>().Length;

    private static readonly string[] Labels =
    [
        "success", "unsupp-version", "not-authorized", "malformed-request", "unsupp-opcode", "unsupp-option",
        "malformed-option", "network-failure", "no-resources", "unsupp-protocol", "user-ex-quota",
        "cannot-provide-external", "address-mismatch", "excessive-remote-peers", "rate-limited", "dropped",
        "natpmp-success", "natpmp-not-authorized", "natpmp-out-of-resources", "natpmp-unsupp-opcode", "natpmp-malformed",
    ];

    /// <summary>The label of <paramref name="outcome"/>, e.g. "user-ex-quota".</summary>
    public static string Label(PcpOutcome outcome) => Labels[(int)outcome];

    /// <summary>The outcome counted for a PCP reply with <paramref name="code"/> (the first 14 outcomes follow the codes).</summary>
    public static PcpOutcome Of(PcpResultCode code) => (PcpOutcome)(byte)code;

    /// <summary>The outcome counted for a NAT-PMP reply with <paramref name="code"/>.</summary>
    public static PcpOutcome Of(NatPmpResultCode code) => code switch
    {
        NatPmpResultCode.Success => PcpOutcome.NatPmpSuccess,
        NatPmpResultCode.NotAuthorized => PcpOutcome.NatPmpNotAuthorized,
        NatPmpResultCode.UnsupportedOpcode => PcpOutcome.NatPmpUnsuppOpcode,
        _ => PcpOutcome.NatPmpOutOfResources,
    };
}

/// <summary>Wire constants of PCP (RFC 6887 sections 7, 11, 12, 13, 14) and NAT-PMP (RFC 6886).</summary>
public static class PcpWire
{
    /// <summary>The server's UDP port (RFC 6887 section 19.1; NAT-PMP's too).</summary>
    public const ushort ServerPort = 5351;
    /// <summary>The port unsolicited responses (ANNOUNCE) are multicast to (RFC 6887 section 14.1.3).</summary>
    public const ushort ClientPort = 5350;
    /// <summary>All-hosts multicast group ANNOUNCE goes to (224.0.0.1, network order bytes).</summary>
    public static ReadOnlySpan<byte> AllHosts => [224, 0, 0, 1];
    /// <summary>The PCP version natd speaks.</summary>
    public const byte Version = 2;
    /// <summary>NAT-PMP's version (RFC 6886; RFC 6887 Appendix A).</summary>
    public const byte NatPmpVersion = 0;
    /// <summary>Longest PCP message (RFC 6887 section 7).</summary>
    public const int MaxLength = 1100;
    /// <summary>The common request and response header.</summary>
    public const int HeaderLength = 24;
    /// <summary>Header plus the MAP opcode's 36 bytes.</summary>
    public const int MapLength = 60;
    /// <summary>Header plus the PEER opcode's 56 bytes.</summary>
    public const int PeerLength = 80;
    /// <summary>Nonce length of MAP and PEER.</summary>
    public const int NonceLength = 12;
    /// <summary>The R bit of byte 1: set in responses.</summary>
    public const byte ResponseBit = 0x80;

    /// <summary>ANNOUNCE opcode.</summary>
    public const byte OpAnnounce = 0;
    /// <summary>MAP opcode.</summary>
    public const byte OpMap = 1;
    /// <summary>PEER opcode.</summary>
    public const byte OpPeer = 2;

    /// <summary>THIRD_PARTY option (16 bytes: the internal address).</summary>
    public const byte OptThirdParty = 1;
    /// <summary>PREFER_FAILURE option (no data).</summary>
    public const byte OptPreferFailure = 2;
    /// <summary>FILTER option (20 bytes: reserved, prefix length, port, address).</summary>
    public const byte OptFilter = 3;

    /// <summary>Lifetime of a long-lifetime error response, seconds (how long the client should not retry as is).</summary>
    public const uint LongErrorLifetime = 1800;
    /// <summary>Lifetime of a short-lifetime error response, seconds.</summary>
    public const uint ShortErrorLifetime = 30;

    /// <summary>NAT-PMP opcode: external address.</summary>
    public const byte NatPmpOpAddress = 0;
    /// <summary>NAT-PMP opcode: map UDP.</summary>
    public const byte NatPmpOpUdp = 1;
    /// <summary>NAT-PMP opcode: map TCP.</summary>
    public const byte NatPmpOpTcp = 2;
    /// <summary>NAT-PMP mapping request length.</summary>
    public const int NatPmpMapRequestLength = 12;
    /// <summary>NAT-PMP external address response length.</summary>
    public const int NatPmpAddressResponseLength = 12;
    /// <summary>NAT-PMP mapping response length.</summary>
    public const int NatPmpMapResponseLength = 16;
    /// <summary>NAT-PMP error response length (version, opcode, result, epoch), as for an unsupported opcode.</summary>
    public const int NatPmpErrorResponseLength = 8;

    /// <summary>True for the codes RFC 6887 section 7.4 calls short-lifetime errors (transient: retry soon).</summary>
    public static bool IsShortLifetime(PcpResultCode code)
        => code is PcpResultCode.NetworkFailure or PcpResultCode.NoResources or PcpResultCode.UserExQuota or PcpResultCode.CannotProvideExternal;
}
