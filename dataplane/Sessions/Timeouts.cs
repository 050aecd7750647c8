namespace Natd.Dataplane.Sessions;

/// <summary>Session timeouts in seconds (RFC 5382 REQ-5, RFC 4787 REQ-5, RFC 5508 REQ-1, RFC 7857).</summary>
/// <param name="TcpEstablished">TCP established idle timeout; at least 7440 s by RFC 5382.</param>
/// <param name="TcpTransitory">TCP before establishment and after FIN/RST; 240 s by RFC 5382.</param>
/// <param name="Udp">UDP idle timeout; never below 120 s by RFC 4787 REQ-5, 300 s recommended.</param>
/// <param name="Icmp">ICMP query idle timeout; 60 s by RFC 5508 REQ-1.</param>
public sealed record Timeouts(int TcpEstablished = 7440, int TcpTransitory = 240, int Udp = 300, int Icmp = 60)
{
    /// <summary>
    /// UDP idle timeouts of their own for well-known server ports (RFC 4787 REQ-5a; a DNS
    /// query's session need not hold its port for <see cref="Udp"/>); none by default.
    /// </summary>
    public UdpPortTimeouts UdpPorts { get; init; } = UdpPortTimeouts.None;
}
