using System.Buffers.Binary;
using Natd.Dataplane.Nat;
using Natd.Dataplane.Packets;
using Natd.Dataplane.Sessions;

namespace Natd.Control.Logging;

/// <summary>
/// Builds IPFIX messages (RFC 7011 section 3) carrying NAT events with the information elements of
/// RFC 8158; natEvent values from the IANA "NAT Event Type" registry, natQuotaExceededEvent and
/// natThresholdEvent values from their IANA registries. Six templates:
/// <list type="bullet">
/// <item>256, for natEvent 4 (NAT44 session create), 5 (NAT44 session delete) and 12 (NAT ports
/// exhausted): observationTimeMilliseconds (323), natEvent (230), protocolIdentifier (4),
/// sourceIPv4Address (8), sourceTransportPort (7), postNATSourceIPv4Address (225),
/// postNAPTSourceTransportPort (227); 22 bytes a record. For port exhaustion the post-NAT
/// port is 0 and the address is the pool address that had no port left (RFC 8158's minimal
/// exhaustion record has only the address; the inside endpoint is added so the subscriber is known).</item>
/// <item>256 also carries PCP and NAT-PMP mappings (RFC 6887): natEvent 8 (NAT44 BIB create) for a
/// create and for each refresh (as an interim port-block record repeats its allocation code), 9
/// (NAT44 BIB delete) for a delete, with the mapping's internal and external endpoints. A BIB entry
/// (RFC 6146 section 3.1's binding of an internal to an external transport address) is what a
/// PCP mapping is; no natEvent names PCP itself.</item>
/// <item>257, for natEvent 13 (quota exceeded) with natQuotaExceededEvent (466) = 1 (maximum session
/// entries) and maxSessionEntries (471), as RFC 8158 section 4.4 lists for that event;
/// observationTimeMilliseconds, natEvent, natQuotaExceededEvent, maxSessionEntries; 17 bytes.</item>
/// <item>258, RFC 8158's port-block record for natEvent 16 (port block allocation; also each interim
/// record of a held block) and 17 (port block de-allocation): observationTimeMilliseconds, natEvent,
/// protocolIdentifier (0 when the block serves every protocol), sourceIPv4Address (the subscriber),
/// postNATSourceIPv4Address, portRangeStart (361), portRangeEnd (362), portRangeStepSize (363),
/// portRangeNumPorts (364); 26 bytes.</item>
/// <item>259, for natEvent 13 with natQuotaExceededEvent 3 (maximum entries per user): observationTimeMilliseconds,
/// natEvent, natQuotaExceededEvent, maxEntriesPerUser (473), sourceIPv4Address (the subscriber); 21
/// bytes. maxEntriesPerUser is the limit that was hit: limits.per-subscriber.sessions, .ports or
/// .new-sessions-per-second (entries a second), or for a subscriber whose blocks are all full
/// port-block.per-subscriber x port-block.size ports.</item>
/// <item>260, for natEvent 18 (threshold reached) with natThresholdEvent (467) = 3 (address and port
/// mapping high threshold): observationTimeMilliseconds, natEvent, natThresholdEvent,
/// postNATSourceIPv4Address (the external address that passed it), addressPortMappingHighThreshold
/// (478) holding the utilisation in percent; 21 bytes.</item>
/// <item>261, for natEvent 14 (address binding create) when a subscriber spills to another external
/// address (nat.pairing: spill): observationTimeMilliseconds, natEvent, sourceIPv4Address,
/// postNATSourceIPv4Address; 17 bytes.</item>
/// </list>
/// No destination is exported (RFC 6888 section 4). All integers are network byte order. The
/// sequence number counts data records sent before the message (RFC 7011 section 3.1).
/// </summary>
internal sealed class IpfixEncoder
{
    /// <summary>IPFIX version number.</summary>
    public const ushort Version = 10;

    /// <summary>Template of the session and port-exhaustion records.</summary>
    public const ushort SessionTemplateId = 256;

    /// <summary>Template of the quota-exceeded records (maximum session entries).</summary>
    public const ushort QuotaTemplateId = 257;

    /// <summary>Template of the port-block allocation and de-allocation records (RFC 8158).</summary>
    public const ushort PortBlockTemplateId = 258;

    /// <summary>Template of the per-subscriber quota-exceeded records (maximum entries per user).</summary>
    public const ushort SubscriberQuotaTemplateId = 259;

    /// <summary>Template of the threshold-reached records.</summary>
    public const ushort ThresholdTemplateId = 260;

    /// <summary>Template of the address-binding records (a subscriber's extra external address).</summary>
    public const ushort AddressBindingTemplateId = 261;

    /// <summary>natEvent codes (IANA "NAT Event Type" registry, RFC 8158).</summary>
    public const byte NatEventSessionCreate = 4, NatEventSessionDelete = 5, NatEventBibCreate = 8, NatEventBibDelete = 9,
        NatEventPortsExhausted = 12, NatEventQuotaExceeded = 13,
        NatEventAddressBindingCreate = 14, NatEventPortBlockAllocation = 16, NatEventPortBlockDeallocation = 17, NatEventThresholdReached = 18;

    /// <summary>RFC 8158 natQuotaExceededEvent code "Maximum session entries".</summary>
    public const uint QuotaMaxSessionEntries = 1;

    /// <summary>RFC 8158 natQuotaExceededEvent code "Maximum entries per user".</summary>
    public const uint QuotaMaxEntriesPerUser = 3;

    /// <summary>RFC 8158 natThresholdEvent code "Address and port mapping high threshold event".</summary>
    public const uint ThresholdAddressPortMappingHigh = 3;

    internal const int HeaderBytes = 16;
    internal const int SetHeaderBytes = 4;
    internal const int SessionRecordBytes = 8 + 1 + 1 + 4 + 2 + 4 + 2;
    internal const int QuotaRecordBytes = 8 + 1 + 4 + 4;
    internal const int PortBlockRecordBytes = 8 + 1 + 1 + 4 + 4 + 2 + 2 + 2 + 2;
    internal const int SubscriberQuotaRecordBytes = 8 + 1 + 4 + 4 + 4;
    internal const int ThresholdRecordBytes = 8 + 1 + 4 + 4 + 4;
    internal const int AddressBindingRecordBytes = 8 + 1 + 4 + 4;

    // (information element, length) of each template, in record order.
    private static readonly (ushort Ie, ushort Length)[] s_sessionFields =
        [(323, 8), (230, 1), (4, 1), (8, 4), (7, 2), (225, 4), (227, 2)];
    private static readonly (ushort Ie, ushort Length)[] s_quotaFields =
        [(323, 8), (230, 1), (466, 4), (471, 4)];
    private static readonly (ushort Ie, ushort Length)[] s_portBlockFields =
        [(323, 8), (230, 1), (4, 1), (8, 4), (225, 4), (361, 2), (362, 2), (363, 2), (364, 2)];
    private static readonly (ushort Ie, ushort Length)[] s_subscriberQuotaFields =
        [(323, 8), (230, 1), (466, 4), (473, 4), (8, 4)];
    private static readonly (ushort Ie, ushort Length)[] s_thresholdFields =
        [(323, 8), (230, 1), (467, 4), (225, 4), (478, 4)];
    private static readonly (ushort Ie, ushort Length)[] s_addressBindingFields =
        [(323, 8), (230, 1), (8, 4), (225, 4)];

    private readonly byte[] _buffer;
    private readonly uint _domain;
    private readonly uint _maxSessions;
    private readonly Func<CgnatSettings> _cgnat;
    private int _length;
    private int _setStart = -1;     // offset of the open data set's header, -1 when none
    private ushort _setTemplate;
    private uint _sequence;

    /// <summary>Creates an encoder.</summary>
    /// <param name="domain">Observation Domain ID.</param>
    /// <param name="maxSessions">Value of maxSessionEntries in quota-exceeded records (the session table capacity).</param>
    /// <param name="maxMessageBytes">Largest message built (bytes, at least 256 so the template set fits); 1400 keeps a datagram under a 1500-byte MTU.</param>
    /// <param name="cgnat">The carrier-grade settings in force, read for each per-subscriber quota record (its maxEntriesPerUser); null: the defaults.</param>
    public IpfixEncoder(uint domain, uint maxSessions, int maxMessageBytes = 1400, Func<CgnatSettings>? cgnat = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxMessageBytes, 256);
        _buffer = new byte[maxMessageBytes];
        _domain = domain;
        _maxSessions = maxSessions;
        _cgnat = cgnat ?? (static () => s_defaultCgnat);
    }

    private static readonly CgnatSettings s_defaultCgnat = new();

    /// <summary>True while a message is open.</summary>
    public bool IsOpen { get; private set; }

    /// <summary>Data records in the open message.</summary>
    public int Records { get; private set; }

    /// <summary>True when the open message carries the template set.</summary>
    public bool HasTemplates { get; private set; }

    /// <summary>Data records completed so far (the next message's sequence number, modulo 2^32).</summary>
    public uint Sequence => _sequence;

    /// <summary>The natEvent code of an event (IANA "NAT Event Type"); an interim port-block record repeats the allocation code.</summary>
    public static byte NatEventCode(NatEventType type) => type switch
    {
        NatEventType.SessionCreated => NatEventSessionCreate,
        NatEventType.SessionDeleted => NatEventSessionDelete,
        NatEventType.PortExhausted => NatEventPortsExhausted,
        NatEventType.PortBlockAllocated or NatEventType.PortBlockInterim => NatEventPortBlockAllocation,
        NatEventType.PortBlockReleased => NatEventPortBlockDeallocation,
        NatEventType.PoolThreshold => NatEventThresholdReached,
        NatEventType.PairingSpill or NatEventType.PairingMoved => NatEventAddressBindingCreate,
        NatEventType.PcpMappingCreated or NatEventType.PcpMappingRefreshed => NatEventBibCreate,
        NatEventType.PcpMappingDeleted => NatEventBibDelete,
        _ => NatEventQuotaExceeded, // SessionLimit, SubscriberLimit
    };

    /// <summary>The template an event's record uses.</summary>
    public static ushort TemplateOf(NatEventType type) => type switch
    {
        NatEventType.SessionLimit => QuotaTemplateId,
        NatEventType.PortBlockAllocated or NatEventType.PortBlockReleased or NatEventType.PortBlockInterim => PortBlockTemplateId,
        NatEventType.SubscriberLimit => SubscriberQuotaTemplateId,
        NatEventType.PoolThreshold => ThresholdTemplateId,
        NatEventType.PairingSpill or NatEventType.PairingMoved => AddressBindingTemplateId,
        _ => SessionTemplateId,
    };

    /// <summary>Bytes of one data record of a template.</summary>
    public static int RecordBytes(ushort template) => template switch
    {
        QuotaTemplateId => QuotaRecordBytes,
        PortBlockTemplateId => PortBlockRecordBytes,
        SubscriberQuotaTemplateId => SubscriberQuotaRecordBytes,
        ThresholdTemplateId => ThresholdRecordBytes,
        AddressBindingTemplateId => AddressBindingRecordBytes,
        _ => SessionRecordBytes,
    };

    /// <summary>Opens a message, with the template set first when <paramref name="withTemplates"/>.</summary>
    public void Begin(bool withTemplates)
    {
        _length = HeaderBytes;
        _setStart = -1;
        Records = 0;
        IsOpen = true;
        HasTemplates = withTemplates;
        if (withTemplates)
        {
            int set = _length;
            _length += SetHeaderBytes;
            WriteTemplate(SessionTemplateId, s_sessionFields);
            WriteTemplate(QuotaTemplateId, s_quotaFields);
            WriteTemplate(PortBlockTemplateId, s_portBlockFields);
            WriteTemplate(SubscriberQuotaTemplateId, s_subscriberQuotaFields);
            WriteTemplate(ThresholdTemplateId, s_thresholdFields);
            WriteTemplate(AddressBindingTemplateId, s_addressBindingFields);
            WriteSetHeader(set, 2, _length - set);
        }
    }

    /// <summary>Adds one data record; false when it does not fit in the open message (nothing written).</summary>
    /// <param name="e">The event.</param>
    /// <param name="unixMs">Its time, milliseconds since 1970-01-01 UTC.</param>
    public bool TryAppend(in NatEvent e, long unixMs)
    {
        ushort template = TemplateOf(e.Type);
        int recordBytes = RecordBytes(template);
        bool newSet = _setStart < 0 || _setTemplate != template;
        int need = recordBytes + (newSet ? SetHeaderBytes : 0);
        if (_length + need > _buffer.Length)
        {
            return false;
        }
        if (newSet)
        {
            CloseSet();
            _setStart = _length;
            _setTemplate = template;
            _length += SetHeaderBytes;
        }
        Span<byte> r = _buffer.AsSpan(_length, recordBytes);
        BinaryPrimitives.WriteUInt64BigEndian(r, (ulong)unixMs);
        r[8] = NatEventCode(e.Type);
        switch (template)
        {
            case SessionTemplateId:
                r[9] = e.Protocol;
                BinaryPrimitives.WriteUInt32BigEndian(r[10..], Ipv4.ToHostOrder(e.InsideAddress));
                BinaryPrimitives.WriteUInt16BigEndian(r[14..], e.InsidePort);
                BinaryPrimitives.WriteUInt32BigEndian(r[16..], Ipv4.ToHostOrder(e.ExternalAddress));
                BinaryPrimitives.WriteUInt16BigEndian(r[20..], e.ExternalPort);
                break;
            case QuotaTemplateId:
                BinaryPrimitives.WriteUInt32BigEndian(r[9..], QuotaMaxSessionEntries);
                BinaryPrimitives.WriteUInt32BigEndian(r[13..], _maxSessions);
                break;
            case PortBlockTemplateId:
                r[9] = e.Protocol;
                BinaryPrimitives.WriteUInt32BigEndian(r[10..], Ipv4.ToHostOrder(e.InsideAddress));
                BinaryPrimitives.WriteUInt32BigEndian(r[14..], Ipv4.ToHostOrder(e.ExternalAddress));
                BinaryPrimitives.WriteUInt16BigEndian(r[18..], e.ExternalPort);
                BinaryPrimitives.WriteUInt16BigEndian(r[20..], e.PortHigh);
                BinaryPrimitives.WriteUInt16BigEndian(r[22..], StepOf(in e));
                BinaryPrimitives.WriteUInt16BigEndian(r[24..], PortsIn(in e));
                break;
            case SubscriberQuotaTemplateId:
                BinaryPrimitives.WriteUInt32BigEndian(r[9..], QuotaMaxEntriesPerUser);
                BinaryPrimitives.WriteUInt32BigEndian(r[13..], LimitValue(_cgnat(), (NatLimitKind)e.Detail));
                BinaryPrimitives.WriteUInt32BigEndian(r[17..], Ipv4.ToHostOrder(e.InsideAddress));
                break;
            case ThresholdTemplateId:
                BinaryPrimitives.WriteUInt32BigEndian(r[9..], ThresholdAddressPortMappingHigh);
                BinaryPrimitives.WriteUInt32BigEndian(r[13..], Ipv4.ToHostOrder(e.ExternalAddress));
                BinaryPrimitives.WriteUInt32BigEndian(r[17..], e.Detail);
                break;
            default: // AddressBindingTemplateId
                BinaryPrimitives.WriteUInt32BigEndian(r[9..], Ipv4.ToHostOrder(e.InsideAddress));
                BinaryPrimitives.WriteUInt32BigEndian(r[13..], Ipv4.ToHostOrder(e.ExternalAddress));
                break;
        }
        _length += recordBytes;
        Records++;
        return true;
    }

    /// <summary>portRangeStepSize: 1 for consecutive ports (an event with no step set means consecutive).</summary>
    internal static ushort StepOf(in NatEvent e) => e.PortStep == 0 ? (ushort)1 : e.PortStep;

    /// <summary>portRangeNumPorts: the ports from low to high, every step-th one (0 when high is below low).</summary>
    internal static ushort PortsIn(in NatEvent e)
        => e.PortHigh < e.ExternalPort ? (ushort)0 : (ushort)((e.PortHigh - e.ExternalPort) / StepOf(in e) + 1);

    /// <summary>maxEntriesPerUser for a limit: the configured value of the limit that was hit.</summary>
    internal static uint LimitValue(CgnatSettings c, NatLimitKind kind) => kind switch
    {
        NatLimitKind.Sessions => (uint)c.Limits.Sessions,
        NatLimitKind.Ports => (uint)c.Limits.Ports,
        NatLimitKind.Rate => (uint)c.Limits.NewSessionsPerSecond,
        NatLimitKind.Blocks => (uint)(c.PortBlock.PerSubscriber * c.PortBlock.Size),
        _ => 0,
    };

    /// <summary>
    /// Closes the open message and returns its bytes (valid until the next <see cref="Begin"/>); the
    /// sequence number advances by its records whether or not the caller manages to send it, so a
    /// collector sees a lost message as a gap.
    /// </summary>
    /// <param name="exportUnixSeconds">Export time, seconds since 1970-01-01 UTC.</param>
    public ReadOnlySpan<byte> Complete(long exportUnixSeconds)
    {
        CloseSet();
        Span<byte> h = _buffer;
        BinaryPrimitives.WriteUInt16BigEndian(h, Version);
        BinaryPrimitives.WriteUInt16BigEndian(h[2..], (ushort)_length);
        BinaryPrimitives.WriteUInt32BigEndian(h[4..], (uint)exportUnixSeconds);
        BinaryPrimitives.WriteUInt32BigEndian(h[8..], _sequence);
        BinaryPrimitives.WriteUInt32BigEndian(h[12..], _domain);
        _sequence += (uint)Records;
        IsOpen = false;
        return _buffer.AsSpan(0, _length);
    }

    private void CloseSet()
    {
        if (_setStart >= 0)
        {
            WriteSetHeader(_setStart, _setTemplate, _length - _setStart);
            _setStart = -1;
        }
    }

    private void WriteSetHeader(int at, ushort setId, int length)
    {
        BinaryPrimitives.WriteUInt16BigEndian(_buffer.AsSpan(at), setId);
        BinaryPrimitives.WriteUInt16BigEndian(_buffer.AsSpan(at + 2), (ushort)length);
    }

    private void WriteTemplate(ushort id, (ushort Ie, ushort Length)[] fields)
    {
        Span<byte> t = _buffer.AsSpan(_length);
        BinaryPrimitives.WriteUInt16BigEndian(t, id);
        BinaryPrimitives.WriteUInt16BigEndian(t[2..], (ushort)fields.Length);
        int o = 4;
        foreach (var (ie, len) in fields)
        {
            BinaryPrimitives.WriteUInt16BigEndian(t[o..], ie);
            BinaryPrimitives.WriteUInt16BigEndian(t[(o + 2)..], len);
            o += 4;
        }
        _length += o;
    }
}
