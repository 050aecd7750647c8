using Natd.Dataplane.Packets;
using Natd.Dataplane.Sessions;

namespace Natd.Dataplane.Alg.Ftp;

/// <summary>
/// FTP ALG (like Linux <c>ip_masq_ftp</c> / <c>nf_conntrack_ftp</c>).
/// <para>Inside client, remote server (the connection opened from inside): in2out <c>PORT</c>
/// (RFC 959) and <c>EPRT |1|</c> (RFC 2428) naming the inside host are rewritten to the external
/// address and the reserved external port, with an inbound expectation from the server to the
/// inside port. Out2in <c>227</c> and <c>229</c> replies open an outbound expectation to the
/// server's data port (no rewrite: the server's address is public).</para>
/// <para>Server inside behind a port forward, remote client (the connection opened from outside),
/// as netfilter's FTP helper does for a DNATed server: in2out <c>227</c> naming the server's own
/// inside address and <c>229</c> are rewritten to the external address (227) and the reserved
/// external port, with an inbound expectation from the client to the server's data port. Out2in
/// <c>PORT</c>/<c>EPRT</c> naming the client open an outbound expectation marking the server's
/// active data connection related (no rewrite: the client's address is public).</para>
/// <para>When the handshake was not seen (the helper restarted) both roles are tried on each line.
/// Anything naming another host (a third party), IPv6, bad numbers or an overlong line is refused:
/// passed unchanged, nothing opened, counted. A command or reply split across segments is held
/// until complete (<see cref="TcpLineAlgHandler"/>).</para>
/// </summary>
public sealed class FtpHandler : TcpLineAlgHandler
{
    /// <inheritdoc />
    public override AlgKind Kind => AlgKind.Ftp;

    /// <inheritdoc />
    protected override LineDecision Decide(in AlgConnection connection, AlgDirection direction, ConnectionOpener opener, ReadOnlySpan<byte> line,
        ushort reservedPort, Span<byte> replacement)
    {
        LineDecision d = default;
        if (opener != ConnectionOpener.Outside)
        {
            d = direction == AlgDirection.In2Out
                ? DecideCommand(connection, line, reservedPort, replacement)
                : DecideReply(connection, line);
        }
        if (d.Verdict == LineVerdict.Ignore && opener != ConnectionOpener.Inside)
        {
            d = direction == AlgDirection.In2Out
                ? DecideServerReply(connection, line, reservedPort, replacement)
                : DecideClientCommand(connection, line);
        }
        return d;
    }

    /// <inheritdoc />
    protected override bool LooksInteresting(AlgDirection direction, ReadOnlySpan<byte> start)
        => direction == AlgDirection.In2Out
            ? AsciiText.StartsWithIgnoreCase(start, "PORT"u8) || AsciiText.StartsWithIgnoreCase(start, "EPRT"u8)
                || start.StartsWith("227"u8) || start.StartsWith("229"u8)
            : start.StartsWith("227"u8) || start.StartsWith("229"u8);

    /// <inheritdoc />
    /// <remarks>
    /// PORT/EPRT and 227/229 in the directions <see cref="Decide"/> looks for them (per opener):
    /// the rewritten ones must go out whole, and the others are held too so their pinhole is opened.
    /// </remarks>
    protected override bool MayNeedRewrite(AlgDirection direction, ConnectionOpener opener, ReadOnlySpan<byte> partial)
    {
        bool clientInside = opener != ConnectionOpener.Outside, serverInside = opener != ConnectionOpener.Inside;
        bool commands = direction == AlgDirection.In2Out ? clientInside : serverInside;
        bool replies = direction == AlgDirection.In2Out ? serverInside : clientInside;
        return (commands && (AsciiText.CouldStartWith(partial, "PORT"u8) || AsciiText.CouldStartWith(partial, "EPRT"u8)))
            || (replies && (AsciiText.CouldStartWith(partial, "227"u8) || AsciiText.CouldStartWith(partial, "229"u8)));
    }

    private static readonly LineDecision Refuse = new() { Verdict = LineVerdict.Refuse };

    /// <summary>Inside client: its PORT/EPRT names the inside host; the server must reach the external address and the reserved port.</summary>
    private static LineDecision DecideCommand(in AlgConnection connection, ReadOnlySpan<byte> line, ushort reservedPort, Span<byte> replacement)
    {
        FtpParser.Match m = ParseActive(line, out var ep, out bool extended);
        if (m == FtpParser.Match.None)
        {
            return default;
        }
        // A PORT naming another host would make natd open a pinhole for a third party (FTP bounce).
        if (m != FtpParser.Match.Ok || ep.Address != connection.InsideAddress || reservedPort == 0)
        {
            return Refuse;
        }
        int n = 0;
        bool written = extended
            ? AsciiText.TryWriteByte(replacement, ref n, ep.Delimiter) && AsciiText.TryWriteByte(replacement, ref n, (byte)'1')
                && AsciiText.TryWriteByte(replacement, ref n, ep.Delimiter)
                && AsciiText.TryWriteAddress(replacement, ref n, connection.ExternalAddress, (byte)'.')
                && AsciiText.TryWriteByte(replacement, ref n, ep.Delimiter)
                && AsciiText.TryWriteDecimal(replacement, ref n, reservedPort)
                && AsciiText.TryWriteByte(replacement, ref n, ep.Delimiter)
            : TryWriteCommaEndpoint(replacement, ref n, connection.ExternalAddress, reservedPort);
        // The server connects from any port (20 by RFC 959, but vsftpd and others vary).
        return written ? RewriteAndExpectInbound(connection, ep, n, reservedPort) : Refuse;
    }

    /// <summary>Inside client: a 227/229 reply names the server's data port; the client's connection to it is marked related.</summary>
    private static LineDecision DecideReply(in AlgConnection connection, ReadOnlySpan<byte> line)
    {
        FtpParser.Match m = ParsePassive(line, out var ep, out bool extended);
        if (m == FtpParser.Match.None)
        {
            return default;
        }
        // 229 carries no address: the data connection goes to the control connection's server.
        if (m != FtpParser.Match.Ok || (!extended && ep.Address != connection.RemoteAddress))
        {
            return Refuse;
        }
        return ExpectOutbound(connection, ep);
    }

    /// <summary>
    /// Server inside: its passive reply names its own inside address (227) or only a port (229);
    /// the client outside must connect to the external address and the reserved port instead.
    /// </summary>
    private static LineDecision DecideServerReply(in AlgConnection connection, ReadOnlySpan<byte> line, ushort reservedPort, Span<byte> replacement)
    {
        FtpParser.Match m = ParsePassive(line, out var ep, out bool extended);
        if (m == FtpParser.Match.None)
        {
            return default;
        }
        // A 227 naming another host would let the client reach a third party through natd.
        if (m != FtpParser.Match.Ok || (!extended && ep.Address != connection.InsideAddress) || reservedPort == 0)
        {
            return Refuse;
        }
        int n = 0;
        bool written = extended
            ? AsciiText.TryWriteByte(replacement, ref n, (byte)'(')
                && AsciiText.TryWriteByte(replacement, ref n, ep.Delimiter) && AsciiText.TryWriteByte(replacement, ref n, ep.Delimiter)
                && AsciiText.TryWriteByte(replacement, ref n, ep.Delimiter)
                && AsciiText.TryWriteDecimal(replacement, ref n, reservedPort)
                && AsciiText.TryWriteByte(replacement, ref n, ep.Delimiter) && AsciiText.TryWriteByte(replacement, ref n, (byte)')')
            : TryWriteCommaEndpoint(replacement, ref n, connection.ExternalAddress, reservedPort);
        // The client connects from any port of its own address (the control connection's remote).
        return written ? RewriteAndExpectInbound(connection, ep, n, reservedPort) : Refuse;
    }

    /// <summary>
    /// Client outside: its PORT/EPRT names its own public address, which the server inside reaches
    /// through plain masquerading; the expectation only marks that connection related. One naming
    /// another host is the server's to refuse (vsftpd does): natd opens nothing for it either way.
    /// </summary>
    private static LineDecision DecideClientCommand(in AlgConnection connection, ReadOnlySpan<byte> line)
    {
        FtpParser.Match m = ParseActive(line, out var ep, out _);
        return m == FtpParser.Match.Ok && ep.Address == connection.RemoteAddress ? ExpectOutbound(connection, ep) : default;
    }

    /// <summary>PORT (RFC 959), else EPRT (RFC 2428; <paramref name="extended"/> true).</summary>
    private static FtpParser.Match ParseActive(ReadOnlySpan<byte> line, out FtpParser.Endpoint ep, out bool extended)
    {
        FtpParser.Match m = FtpParser.ParsePort(line, out ep);
        extended = m == FtpParser.Match.None;
        return extended ? FtpParser.ParseEprt(line, out ep) : m;
    }

    /// <summary>227 (RFC 959), else 229 (RFC 2428; <paramref name="extended"/> true).</summary>
    private static FtpParser.Match ParsePassive(ReadOnlySpan<byte> line, out FtpParser.Endpoint ep, out bool extended)
    {
        FtpParser.Match m = FtpParser.Parse227(line, out ep);
        extended = m == FtpParser.Match.None;
        return extended ? FtpParser.Parse229(line, out ep) : m;
    }

    /// <summary>"h1,h2,h3,h4,p1,p2" (RFC 959 host-port).</summary>
    private static bool TryWriteCommaEndpoint(Span<byte> to, ref int n, uint address, ushort port)
        => AsciiText.TryWriteAddress(to, ref n, address, (byte)',')
            && AsciiText.TryWriteByte(to, ref n, (byte)',')
            && AsciiText.TryWriteDecimal(to, ref n, (ulong)(port >> 8))
            && AsciiText.TryWriteByte(to, ref n, (byte)',')
            && AsciiText.TryWriteDecimal(to, ref n, (ulong)(port & 0xFF));

    /// <summary>The endpoint's text becomes the replacement; the remote may connect once to the reserved port, to the advertised inside port.</summary>
    private static LineDecision RewriteAndExpectInbound(in AlgConnection connection, in FtpParser.Endpoint ep, int replacementLength, ushort reservedPort)
        => new()
        {
            Verdict = LineVerdict.RewriteAndExpect,
            EditOffset = ep.Start,
            EditLength = ep.End - ep.Start,
            ReplacementLength = replacementLength,
            Expectation = new ExpectationRequest(ExpectationKind.Inbound, IpProtocol.Tcp, connection.RemoteAddress, 0,
                reservedPort, connection.InsideAddress, (ushort)ep.Port, UsesReservedPort: true),
        };

    /// <summary>The inside host's connection to the remote's advertised port is marked related.</summary>
    private static LineDecision ExpectOutbound(in AlgConnection connection, in FtpParser.Endpoint ep)
        => new()
        {
            Verdict = LineVerdict.Expect,
            Expectation = new ExpectationRequest(ExpectationKind.Outbound, IpProtocol.Tcp, connection.RemoteAddress, (ushort)ep.Port,
                0, connection.InsideAddress, 0, UsesReservedPort: false),
        };
}
