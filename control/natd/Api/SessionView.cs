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

/// <summary>
/// One pending ALG expectation as GET /expectations returns it (JSON, camelCase): addresses as
/// dotted quads, "*" for any remote, ports 0 for any.
/// </summary>
/// <param name="Alg">"ftp", "irc", "tftp" or "pptp".</param>
/// <param name="Kind">"inbound" (a pinhole) or "outbound" (marks the inside host's new flow related).</param>
/// <param name="Protocol">"tcp" or "udp".</param>
/// <param name="Inside">Inside endpoint "a.b.c.d:port" (port 0: any).</param>
/// <param name="External">External endpoint (inbound).</param>
/// <param name="Remote">Expected peer "a.b.c.d:port", "*" for any address, port 0 for any port.</param>
/// <param name="ExpiresInSeconds">Seconds left.</param>
/// <param name="Control">The control connection, "inside:port -> remote:port".</param>
public sealed record ExpectationView(string Alg, string Kind, string Protocol, string Inside, string External, string Remote, double ExpiresInSeconds, string Control)
{
    /// <summary>Converts the dataplane's view.</summary>
    public static ExpectationView From(ExpectationInfo e)
    {
        ArgumentNullException.ThrowIfNull(e);
        string remote = e.RemoteAddress == 0 ? "*" : Ipv4.Format(e.RemoteAddress);
        return new ExpectationView(NatEngine.AlgName(e.Alg), e.Kind == Dataplane.Alg.ExpectationKind.Inbound ? "inbound" : "outbound",
            e.Protocol == IpProtocol.Tcp ? "tcp" : "udp",
            $"{Ipv4.Format(e.InsideAddress)}:{e.InsidePort}",
            e.Kind == Dataplane.Alg.ExpectationKind.Inbound ? $"{Ipv4.Format(e.ExternalAddress)}:{e.ExternalPort}" : "",
            $"{remote}:{e.RemotePort}", e.ExpiresInSeconds,
            $"{Ipv4.Format(e.ControlInside)}:{e.ControlInsidePort} -> {Ipv4.Format(e.ControlRemote)}:{e.ControlRemotePort}");
    }
}

/// <summary>Source-generated JSON contract of the control API (camelCase, no reflection).</summary>
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase)]
[JsonSerializable(typeof(SessionView[]))]
[JsonSerializable(typeof(ExpectationView[]))]
[JsonSerializable(typeof(StatsSnapshot))]
internal sealed partial class ControlJsonContext : JsonSerializerContext;
