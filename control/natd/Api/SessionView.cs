using System.Text.Json.Serialization;
using Natd.Dataplane.Nat;
using Natd.Dataplane.Packets;

namespace Natd.Control.Api;

/// <summary>
/// One session as GET /sessions returns it (JSON, camelCase): <see cref="SessionInfo"/> with the
/// addresses as dotted-quad strings instead of network-order integers.
/// </summary>
/// <param name="Protocol">"tcp", "udp" or "icmp".</param>
/// <param name="InsideAddress">Inside host address, dotted quad.</param>
/// <param name="InsidePort">Inside port or ICMP identifier.</param>
/// <param name="ExternalAddress">External (pool) address, dotted quad.</param>
/// <param name="ExternalPort">External port or translated ICMP identifier.</param>
/// <param name="RemoteAddress">Remote address, dotted quad.</param>
/// <param name="RemotePort">Remote port (0 for ICMP).</param>
/// <param name="ExpiresInSeconds">Seconds until the session expires if idle.</param>
/// <param name="State">TCP state or "active".</param>
/// <param name="PacketsIn2Out">Packets translated inside to outside.</param>
/// <param name="PacketsOut2In">Packets translated outside to inside.</param>
/// <param name="BytesIn2Out">IPv4 bytes translated inside to outside.</param>
/// <param name="BytesOut2In">IPv4 bytes translated outside to inside.</param>
public sealed record SessionView(
    string Protocol,
    string InsideAddress,
    int InsidePort,
    string ExternalAddress,
    int ExternalPort,
    string RemoteAddress,
    int RemotePort,
    double ExpiresInSeconds,
    string State,
    long PacketsIn2Out,
    long PacketsOut2In,
    long BytesIn2Out,
    long BytesOut2In)
{
    /// <summary>The ALG whose helper handles this connection ("ftp", ...), absent otherwise.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Alg { get; init; }

    /// <summary>The control connection of an expected (related) connection, absent otherwise.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? RelatedTo { get; init; }

    /// <summary>Converts the dataplane's view.</summary>
    public static SessionView From(SessionInfo s)
    {
        ArgumentNullException.ThrowIfNull(s);
        return new SessionView(s.Protocol, Ipv4.Format(s.InsideAddress), s.InsidePort,
            Ipv4.Format(s.ExternalAddress), s.ExternalPort, Ipv4.Format(s.RemoteAddress), s.RemotePort,
            s.ExpiresInSeconds, s.State, s.PacketsIn2Out, s.PacketsOut2In, s.BytesIn2Out, s.BytesOut2In)
        {
            Alg = s.Alg,
            RelatedTo = s.RelatedTo,
        };
    }
}

/// <summary>Source-generated JSON contract of the control API (camelCase, no reflection).</summary>
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase)]
[JsonSerializable(typeof(SessionView[]))]
[JsonSerializable(typeof(StatsSnapshot))]
internal sealed partial class ControlJsonContext : JsonSerializerContext;
