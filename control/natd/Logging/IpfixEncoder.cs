using System.Buffers.Binary;
using Natd.Dataplane.Nat;
using Natd.Dataplane.Packets;
using Natd.Dataplane.Sessions;

namespace Natd.Control.Logging;

/// <summary>
/// Builds IPFIX messages (RFC 7011 section 3) carrying NAT events with the information elements of
/// RFC 8158. Two templates:
/// <list type="bullet">
/// <item>256, for natEvent 4 (NAT44 session create), 5 (NAT44 session delete) and 12 (NAT ports
/// exhausted): observationTimeMilliseconds (323), natEvent (230), protocolIdentifier (4),
/// sourceIPv4Address (8), sourceTransportPort (7), postNATSourceIPv4Address (225),
/// postNAPTSourceTransportPort (227); 22 bytes a record. For port exhaustion the post-NAT
/// port is 0 and the address is the pool address that had no port left (RFC 8158's minimal
/// exhaustion record has only the address; the inside endpoint is added so the subscriber is known).</item>
/// <item>257, for natEvent 13 (quota exceeded) with natQuotaExceededEvent (466) = 1 (maximum session
/// entries) and maxSessionEntries (471), as RFC 8158 section 4.4 lists for that event;
/// observationTimeMilliseconds, natEvent, natQuotaExceededEvent, maxSessionEntries; 17 bytes.</item>
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

    /// <summary>Template of the quota-exceeded records.</summary>
    public const ushort QuotaTemplateId = 257;

    /// <summary>RFC 8158 natEvent codes.</summary>
    public const byte NatEventSessionCreate = 4, NatEventSessionDelete = 5, NatEventPortsExhausted = 12, NatEventQuotaExceeded = 13;

    /// <summary>RFC 8158 natQuotaExceededEvent code "Maximum session entries".</summary>
    public const uint QuotaMaxSessionEntries = 1;

    internal const int HeaderBytes = 16;
    internal const int SetHeaderBytes = 4;
    internal const int SessionRecordBytes = 8 + 1 + 1 + 4 + 2 + 4 + 2;
    internal const int QuotaRecordBytes = 8 + 1 + 4 + 4;

    // (information element, length) of each template, in record order.
    private static readonly (ushort Ie, ushort Length)[] s_sessionFields =
        [(323, 8), (230, 1), (4, 1), (8, 4), (7, 2), (225, 4), (227, 2)];
    private static readonly (ushort Ie, ushort Length)[] s_quotaFields =
        [(323, 8), (230, 1), (466, 4), (471, 4)];

    private readonly byte[] _buffer;
    private readonly uint _domain;
    private readonly uint _maxSessions;
    private int _length;
    private int _setStart = -1;     // offset of the open data set's header, -1 when none
    private ushort _setTemplate;
    private uint _sequence;

    /// <summary>Creates an encoder.</summary>
    /// <param name="domain">Observation Domain ID.</param>
    /// <param name="maxSessions">Value of maxSessionEntries in quota-exceeded records (the session table capacity).</param>
    /// <param name="maxMessageBytes">Largest message built (bytes); 1400 keeps a datagram under a 1500-byte MTU.</param>
    public IpfixEncoder(uint domain, uint maxSessions, int maxMessageBytes = 1400)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxMessageBytes, 128);
        _buffer = new byte[maxMessageBytes];
        _domain = domain;
        _maxSessions = maxSessions;
    }

    /// <summary>True while a message is open.</summary>
    public bool IsOpen { get; private set; }

    /// <summary>Data records in the open message.</summary>
    public int Records { get; private set; }

    /// <summary>True when the open message carries the template set.</summary>
    public bool HasTemplates { get; private set; }

    /// <summary>Data records completed so far (the next message's sequence number, modulo 2^32).</summary>
    public uint Sequence => _sequence;

    /// <summary>The RFC 8158 natEvent code of an event.</summary>
    public static byte NatEventCode(NatEventType type) => type switch
    {
        NatEventType.SessionCreated => NatEventSessionCreate,
        NatEventType.SessionDeleted => NatEventSessionDelete,
        NatEventType.PortExhausted => NatEventPortsExhausted,
        _ => NatEventQuotaExceeded,
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
            WriteSetHeader(set, 2, _length - set);
        }
    }

    /// <summary>Adds one data record; false when it does not fit in the open message (nothing written).</summary>
    /// <param name="e">The event.</param>
    /// <param name="unixMs">Its time, milliseconds since 1970-01-01 UTC.</param>
    public bool TryAppend(in NatEvent e, long unixMs)
    {
        ushort template = e.Type == NatEventType.SessionLimit ? QuotaTemplateId : SessionTemplateId;
        int recordBytes = template == SessionTemplateId ? SessionRecordBytes : QuotaRecordBytes;
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
        if (template == SessionTemplateId)
        {
            r[9] = e.Protocol;
            BinaryPrimitives.WriteUInt32BigEndian(r[10..], Ipv4.ToHostOrder(e.InsideAddress));
            BinaryPrimitives.WriteUInt16BigEndian(r[14..], e.InsidePort);
            BinaryPrimitives.WriteUInt32BigEndian(r[16..], Ipv4.ToHostOrder(e.ExternalAddress));
            BinaryPrimitives.WriteUInt16BigEndian(r[20..], e.ExternalPort);
        }
        else
        {
            BinaryPrimitives.WriteUInt32BigEndian(r[9..], QuotaMaxSessionEntries);
            BinaryPrimitives.WriteUInt32BigEndian(r[13..], _maxSessions);
        }
        _length += recordBytes;
        Records++;
        return true;
    }

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
