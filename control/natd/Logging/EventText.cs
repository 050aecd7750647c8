using System.Globalization;
using System.Text.Unicode;
using Natd.Dataplane.Nat;
using Natd.Dataplane.Packets;
using Natd.Dataplane.Sessions;

namespace Natd.Control.Logging;

/// <summary>
/// Text pieces shared by the JSON and syslog sinks, written as UTF-8 straight into a caller's
/// buffer (no string per event). Every piece is plain ASCII with no character that JSON or an
/// RFC 5424 PARAM-VALUE would need to escape.
/// </summary>
internal static class EventText
{
    private static readonly string[] s_protocols = BuildProtocols();

    /// <summary>
    /// The event's name: session-create, session-delete, port-exhausted, session-limit,
    /// port-block-allocate, port-block-release, port-block-interim, subscriber-limit,
    /// pool-threshold, pairing-spill, pairing-move, pcp-mapping-create, pcp-mapping-refresh, pcp-mapping-delete.
    /// </summary>
    public static string Name(NatEventType type) => type switch
    {
        NatEventType.SessionCreated => "session-create",
        NatEventType.SessionDeleted => "session-delete",
        NatEventType.PortExhausted => "port-exhausted",
        NatEventType.SessionLimit => "session-limit",
        NatEventType.PortBlockAllocated => "port-block-allocate",
        NatEventType.PortBlockReleased => "port-block-release",
        NatEventType.PortBlockInterim => "port-block-interim",
        NatEventType.SubscriberLimit => "subscriber-limit",
        NatEventType.PoolThreshold => "pool-threshold",
        NatEventType.PairingSpill => "pairing-spill",
        NatEventType.PairingMoved => "pairing-move",
        NatEventType.PcpMappingCreated => "pcp-mapping-create",
        NatEventType.PcpMappingRefreshed => "pcp-mapping-refresh",
        NatEventType.PcpMappingDeleted => "pcp-mapping-delete",
        _ => "unknown",
    };

    /// <summary>How an event's fields are laid out in every sink.</summary>
    public static EventShape Shape(NatEventType type) => type switch
    {
        NatEventType.PortBlockAllocated or NatEventType.PortBlockReleased or NatEventType.PortBlockInterim => EventShape.PortBlock,
        NatEventType.SubscriberLimit => EventShape.SubscriberLimit,
        NatEventType.PoolThreshold => EventShape.PoolThreshold,
        NatEventType.PairingSpill or NatEventType.PairingMoved => EventShape.Pairing,
        NatEventType.PcpMappingCreated or NatEventType.PcpMappingRefreshed or NatEventType.PcpMappingDeleted => EventShape.PcpMapping,
        _ => EventShape.Session,
    };

    /// <summary>Why a PCP mapping was deleted: client, expired, operator, reload.</summary>
    public static string Cause(byte detail) => (PcpDeleteCause)detail switch
    {
        PcpDeleteCause.Client => "client",
        PcpDeleteCause.Expired => "expired",
        PcpDeleteCause.Operator => "operator",
        PcpDeleteCause.Reload => "reload",
        _ => "unknown",
    };

    /// <summary>The limit a subscriber-limit event names: sessions, ports, rate, blocks (the config key's word).</summary>
    public static string Limit(byte detail) => (NatLimitKind)detail switch
    {
        NatLimitKind.Sessions => "sessions",
        NatLimitKind.Ports => "ports",
        NatLimitKind.Rate => "rate",
        NatLimitKind.Blocks => "blocks",
        _ => "unknown",
    };

    /// <summary>Lower-case protocol name (tcp, udp, icmp, gre, esp) or the decimal protocol number.</summary>
    public static string Protocol(byte protocol) => s_protocols[protocol];

    /// <summary>True when the event carries an external endpoint (exhaustion may have none).</summary>
    public static bool HasExternal(in NatEvent e) => e.ExternalAddress != 0;

    private static string[] BuildProtocols()
    {
        var names = new string[256];
        for (int i = 0; i < names.Length; i++)
        {
            names[i] = i.ToString(CultureInfo.InvariantCulture);
        }
        names[IpProtocol.Icmp] = "icmp";
        names[IpProtocol.Tcp] = "tcp";
        names[IpProtocol.Udp] = "udp";
        names[IpProtocol.Gre] = "gre";
        names[IpProtocol.Esp] = "esp";
        return names;
    }
}

/// <summary>Field layouts of the events (<see cref="EventText.Shape"/>).</summary>
internal enum EventShape
{
    /// <summary>Per-session events and exhaustion: protocol, inside endpoint, external endpoint when there is one.</summary>
    Session,

    /// <summary>Port-block allocate, release, interim: inside (subscriber) address, external address, port-low, port-high, port-step.</summary>
    PortBlock,

    /// <summary>A subscriber hit a limit: inside (subscriber) address and which limit.</summary>
    SubscriberLimit,

    /// <summary>An external address passed the utilisation threshold: external address and percent.</summary>
    PoolThreshold,

    /// <summary>A subscriber spilled to another external address: inside and the new external address.</summary>
    Pairing,

    /// <summary>A PCP or NAT-PMP mapping: protocol, internal and external endpoints, then the lifetime granted (create, refresh) or the cause (delete).</summary>
    PcpMapping,
}

/// <summary>An IPv4 address formatted as "a.b.c.d" (UTF-8, no allocation).</summary>
/// <param name="NetworkOrderAddress">Address, network order.</param>
internal readonly record struct AddressText(uint NetworkOrderAddress) : IUtf8SpanFormattable
{
    public bool TryFormat(Span<byte> utf8Destination, out int bytesWritten, ReadOnlySpan<char> format, IFormatProvider? provider)
    {
        uint a = Ipv4.ToHostOrder(NetworkOrderAddress);
        return Utf8.TryWrite(utf8Destination, CultureInfo.InvariantCulture,
            $"{a >> 24}.{(a >> 16) & 0xFF}.{(a >> 8) & 0xFF}.{a & 0xFF}", out bytesWritten);
    }

    public override string ToString()
    {
        Span<byte> b = stackalloc byte[16];
        return TryFormat(b, out int n, default, null) ? System.Text.Encoding.ASCII.GetString(b[..n]) : "";
    }
}

/// <summary>An IPv4 endpoint formatted as "a.b.c.d:port" (UTF-8, no allocation).</summary>
/// <param name="NetworkOrderAddress">Address, network order.</param>
/// <param name="Port">Port, host order.</param>
internal readonly record struct EndpointText(uint NetworkOrderAddress, ushort Port) : IUtf8SpanFormattable
{
    public bool TryFormat(Span<byte> utf8Destination, out int bytesWritten, ReadOnlySpan<char> format, IFormatProvider? provider)
    {
        uint a = Ipv4.ToHostOrder(NetworkOrderAddress);
        return Utf8.TryWrite(utf8Destination, CultureInfo.InvariantCulture,
            $"{a >> 24}.{(a >> 16) & 0xFF}.{(a >> 8) & 0xFF}.{a & 0xFF}:{Port}", out bytesWritten);
    }

    public override string ToString()
    {
        Span<byte> b = stackalloc byte[24];
        return TryFormat(b, out int n, default, null) ? System.Text.Encoding.ASCII.GetString(b[..n]) : "";
    }
}

/// <summary>An RFC 3339 UTC time with milliseconds, e.g. 2026-11-21T13:47:01.123Z (the RFC 5424 TIMESTAMP form).</summary>
/// <param name="UnixMs">Milliseconds since 1970-01-01 UTC.</param>
internal readonly record struct TimeText(long UnixMs) : IUtf8SpanFormattable
{
    public bool TryFormat(Span<byte> utf8Destination, out int bytesWritten, ReadOnlySpan<char> format, IFormatProvider? provider)
        => DateTime.UnixEpoch.AddMilliseconds(UnixMs)
            .TryFormat(utf8Destination, out bytesWritten, "yyyy'-'MM'-'dd'T'HH':'mm':'ss'.'fff'Z'", CultureInfo.InvariantCulture);
}
