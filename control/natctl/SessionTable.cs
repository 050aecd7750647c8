using System.Globalization;
using System.Net;
using System.Text;

namespace Natd.Ctl;

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
/// "related to ftp tcp 10.0.0.2:40300 -> 198.51.100.2:21" (its control connection).
/// </summary>
internal static class SessionTable
{
    private const int AddressWidth = 16;

    /// <summary>Renders the sessions sorted by protocol (tcp, udp, icmp, then others), inside address, inside port.</summary>
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

        var sb = new StringBuilder(64 * (rows.Count + 2));
        sb.Append("IP masquerading entries\n");
        sb.Append("prot ").Append("expire".PadRight(expireWidth)).Append(' ')
          .Append("source".PadRight(AddressWidth)).Append(' ')
          .Append("destination".PadRight(AddressWidth)).Append(' ')
          .Append("ports\n");
        for (int i = 0; i < rows.Count; i++)
        {
            var r = rows[i];
            sb.Append(r.Protocol.PadRight(4)).Append(' ')
              .Append(expires[i].PadLeft(expireWidth)).Append(' ')
              .Append(r.InsideAddress.PadRight(AddressWidth)).Append(' ')
              .Append(r.RemoteAddress.PadRight(AddressWidth)).Append(' ');
            sb.Append(CultureInfo.InvariantCulture, $"{r.InsidePort} ({r.ExternalPort})");
            if (r.Protocol != "icmp")
            {
                sb.Append(CultureInfo.InvariantCulture, $" -> {r.RemotePort}");
            }
            if (r.Alg is not null)
            {
                sb.Append(" alg ").Append(r.Alg);
            }
            if (r.RelatedTo is not null)
            {
                sb.Append(" related to ").Append(r.RelatedTo);
            }
            sb.Append('\n');
        }
        return sb.ToString();
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

    private static int ProtocolRank(string protocol) => protocol switch
    {
        "tcp" => 0,
        "udp" => 1,
        "icmp" => 2,
        _ => 3,
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
