using System.Globalization;
using System.Net;
using System.Text;

namespace Natd.Contracts;

/// <summary>
/// The `ipfwadm -M -l -n` listing operators know:
/// <code>
/// IP masquerading entries
/// prot expire    source           destination      ports
/// tcp  123:59.99 10.0.0.2         198.51.100.2     40312 (61001) -> 8080
/// icmp   0:59.00 10.0.0.2         198.51.100.2     1234 (40112)
/// </code>
/// source is the inside host, destination the remote, the masquerade (external) port in parentheses.
/// An ALG's control connection ends with "alg ftp"; a connection it expected ends with
/// "related to ftp tcp 10.0.0.2:40300 -> 198.51.100.2:21" (its control connection). IPsec rows
/// show what tells them apart instead of ports alone:
/// <code>
/// isakmp  59:59.00 10.0.0.2         203.0.113.10     500 (500) -> 500 cookies 0123456789abcdef/c0c0000000000041
/// esp     29:59.00 10.0.0.2         203.0.113.10     spi 00001001/00002001 associated
/// gre      1:59.00 10.0.0.5         203.0.113.10
/// </code>
/// The protocol column is four wide as ipfwadm's, wider only when a name needs it (isakmp).
/// </summary>
internal static class SessionTable
{
    private const int AddressWidth = 16;

    /// <summary>Renders the sessions sorted by protocol (tcp, udp, icmp, isakmp, esp, gre, then others), inside address, inside port.</summary>
    public static string Render(IReadOnlyList<SessionRow> sessions)
    {
        var rows = new List<SessionRow>(sessions);
        rows.Sort(Compare);

        var expires = new string[rows.Count];
        int expireWidth = "expire".Length + 3; // "mmm:ss.ss", as ipfwadm printed it
        for (int i = 0; i < rows.Count; i++)
        {
            expires[i] = FormatExpire(rows[i].ExpiresInSeconds);
            expireWidth = Math.Max(expireWidth, expires[i].Length);
        }

        int protocolWidth = "prot".Length; // ipfwadm's column; widened only for names like "isakmp"
        foreach (var r in rows)
        {
            protocolWidth = Math.Max(protocolWidth, r.Protocol.Length);
        }

        var sb = new StringBuilder(64 * (rows.Count + 2));
        sb.Append("IP masquerading entries\n");
        sb.Append("prot".PadRight(protocolWidth)).Append(' ').Append("expire".PadRight(expireWidth)).Append(' ')
          .Append("source".PadRight(AddressWidth)).Append(' ')
          .Append("destination".PadRight(AddressWidth)).Append(' ')
          .Append("ports\n");
        for (int i = 0; i < rows.Count; i++)
        {
            var r = rows[i];
            sb.Append(r.Protocol.PadRight(protocolWidth)).Append(' ')
              .Append(expires[i].PadLeft(expireWidth)).Append(' ')
              .Append(r.InsideAddress.PadRight(AddressWidth)).Append(' ')
              .Append(r.RemoteAddress.PadRight(AddressWidth)).Append(' ');
            AppendPorts(sb, r);
            if (r.Alg is not null)
            {
                sb.Append(" alg ").Append(r.Alg);
            }
            if (r.RelatedTo is not null)
            {
                sb.Append(" related to ").Append(r.RelatedTo);
            }
            // Trailing blanks left by a row with nothing in the ports column.
            while (sb[^1] == ' ')
            {
                sb.Length--;
            }
            sb.Append('\n');
        }
        return sb.ToString();
    }

    /// <summary>
    /// The ports column: "inside (external) -> remote" for tcp, udp and isakmp (UDP 500, followed by
    /// its "cookies initiator/responder"), "identifier (external)" for icmp, the SPIs and state for
    /// esp ("spi outbound/inbound associated"; natd's State reads "associated spi 00001001/00002001"),
    /// "call inside (external) -> server" Call IDs for a PPTP call's gre row, nothing for other
    /// port-less protocols (gre, ah, a protocol number).
    /// </summary>
    private static void AppendPorts(StringBuilder sb, SessionRow r)
    {
        switch (r.Protocol)
        {
            case "tcp" or "udp":
                sb.Append(CultureInfo.InvariantCulture, $"{r.InsidePort} ({r.ExternalPort}) -> {r.RemotePort}");
                break;
            case "isakmp":
                sb.Append(CultureInfo.InvariantCulture, $"{r.InsidePort} ({r.ExternalPort}) -> {r.RemotePort}");
                if (r.State.Length > 0)
                {
                    sb.Append(' ').Append(r.State);
                }
                break;
            case "icmp":
                sb.Append(CultureInfo.InvariantCulture, $"{r.InsidePort} ({r.ExternalPort})");
                break;
            case "gre" when r.State == "pptp-call":
                // A PPTP call: the client's Call ID, the one natd gave the server, the server's.
                sb.Append(CultureInfo.InvariantCulture, $"call {r.InsidePort} ({r.ExternalPort}) -> {r.RemotePort}");
                break;
            case "esp":
                int spi = r.State.IndexOf("spi ", StringComparison.Ordinal);
                if (spi < 0)
                {
                    sb.Append(r.State);
                    break;
                }
                string state = r.State[..spi].Trim();
                sb.Append(r.State.AsSpan(spi).TrimEnd());
                if (state.Length > 0)
                {
                    sb.Append(' ').Append(state);
                }
                break;
        }
    }

    /// <summary>
    /// Time to expiry as minutes:seconds.hundredths ("124:00.00"), rounded to the nearest
    /// hundredth; minutes are not wrapped into hours. Negative or NaN reads as 0.
    /// </summary>
    public static string FormatExpire(double seconds)
    {
        if (!(seconds > 0))
        {
            seconds = 0;
        }
        long hundredths = (long)Math.Round(seconds * 100, MidpointRounding.AwayFromZero);
        long minutes = hundredths / 6000;
        long rest = hundredths % 6000;
        return string.Create(CultureInfo.InvariantCulture, $"{minutes}:{rest / 100:00}.{rest % 100:00}");
    }

    private static int Compare(SessionRow a, SessionRow b)
    {
        int c = ProtocolRank(a.Protocol).CompareTo(ProtocolRank(b.Protocol));
        if (c == 0) c = string.CompareOrdinal(a.Protocol, b.Protocol);
        if (c == 0) c = CompareAddress(a.InsideAddress, b.InsideAddress);
        if (c == 0) c = a.InsidePort.CompareTo(b.InsidePort);
        if (c == 0) c = a.ExternalPort.CompareTo(b.ExternalPort);
        if (c == 0) c = CompareAddress(a.RemoteAddress, b.RemoteAddress);
        if (c == 0) c = a.RemotePort.CompareTo(b.RemotePort);
        return c;
    }

    /// <summary>tcp, udp, icmp, then IPsec (its key exchange before its data) and PPTP's GRE, then the rest.</summary>
    private static int ProtocolRank(string protocol) => protocol switch
    {
        "tcp" => 0,
        "udp" => 1,
        "icmp" => 2,
        "isakmp" => 3,
        "esp" => 4,
        "gre" => 5,
        _ => 6,
    };

    /// <summary>Numeric order (10.0.0.9 before 10.0.0.10); unparsable text after addresses, ordinally.</summary>
    private static int CompareAddress(string a, string b)
    {
        bool okA = IPAddress.TryParse(a, out var ia);
        bool okB = IPAddress.TryParse(b, out var ib);
        if (okA && okB)
        {
            ReadOnlySpan<byte> ba = ia!.GetAddressBytes(), bb = ib!.GetAddressBytes();
            int c = ba.Length.CompareTo(bb.Length);
            return c != 0 ? c : ba.SequenceCompareTo(bb);
        }
        if (okA != okB)
        {
            return okA ? -1 : 1;
        }
        return string.CompareOrdinal(a, b);
    }
}
