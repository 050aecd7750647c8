using System.Globalization;
using System.Net;

namespace Natd.Control.Config;

/// <summary>
/// A "host:port" listen endpoint where host is an IPv4 literal, a bracketed IPv6 literal or
/// "localhost". Names other than localhost are refused: Kestrel cannot bind to a name exactly and
/// would listen on every address instead, which is not what a control port on 127.0.0.1 wants.
/// </summary>
/// <param name="Address">The IP to bind; null when <see cref="IsLocalhost"/>.</param>
/// <param name="Port">TCP port, 0..65535 (0 picks a free port).</param>
/// <param name="IsLocalhost">True for "localhost" (both loopback addresses).</param>
internal readonly record struct ListenEndpoint(IPAddress? Address, int Port, bool IsLocalhost)
{
    public static bool TryParse(string? text, out ListenEndpoint endpoint)
    {
        endpoint = default;
        if (string.IsNullOrEmpty(text))
        {
            return false;
        }
        int colon = text.LastIndexOf(':');
        if (colon <= 0 || colon == text.Length - 1
            || !int.TryParse(text.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out int port)
            || port > 65535)
        {
            return false;
        }
        string host = text[..colon];
        if (host.Equals("localhost", StringComparison.OrdinalIgnoreCase))
        {
            endpoint = new ListenEndpoint(null, port, true);
            return true;
        }
        if (host.StartsWith('[') && host.EndsWith(']'))
        {
            if (IPAddress.TryParse(host[1..^1], out var v6) && v6.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6)
            {
                endpoint = new ListenEndpoint(v6, port, false);
                return true;
            }
            return false;
        }
        if (Dataplane.Packets.Ipv4.TryParse(host, out _) && IPAddress.TryParse(host, out var v4))
        {
            endpoint = new ListenEndpoint(v4, port, false);
            return true;
        }
        return false;
    }
}
