using Natd.Dataplane.Packets;

namespace Natd.Dataplane.Alg.Ftp;

/// <summary>
/// FTP ALG (like Linux <c>ip_masq_ftp</c> / <c>nf_conntrack_ftp</c>) for an inside client and a
/// remote server. In2out <c>PORT</c> (RFC 959) and <c>EPRT |1|</c> (RFC 2428) naming the inside
/// host are rewritten to the external address and the reserved external port, with an inbound
/// expectation from the server to the inside port. Out2in <c>227</c> and <c>229</c> replies open an
/// outbound expectation to the server's data port (no rewrite: the server's address is public).
/// Anything naming another host (a third party), IPv6, bad numbers, a split or overlong command is
/// refused: passed unchanged, nothing opened, counted.
/// </summary>
public sealed class FtpHandler : TcpLineAlgHandler
{
    /// <inheritdoc />
    public override AlgKind Kind => AlgKind.Ftp;

    /// <inheritdoc />
    protected override LineDecision Decide(in AlgConnection connection, AlgDirection direction, ReadOnlySpan<byte> line, ushort reservedPort, Span<byte> replacement)
    {
        return direction == AlgDirection.In2Out
            ? DecideCommand(connection, line, reservedPort, replacement)
            : DecideReply(connection, line);
    }

    /// <inheritdoc />
    protected override bool LooksInteresting(AlgDirection direction, ReadOnlySpan<byte> start)
        => direction == AlgDirection.In2Out
            ? AsciiText.StartsWithIgnoreCase(start, "PORT"u8) || AsciiText.StartsWithIgnoreCase(start, "EPRT"u8)
            : start.StartsWith("227"u8) || start.StartsWith("229"u8);

    private static LineDecision DecideCommand(in AlgConnection connection, ReadOnlySpan<byte> line, ushort reservedPort, Span<byte> replacement)
    {
        var refuse = new LineDecision { Verdict = LineVerdict.Refuse };
        FtpParser.Match m = FtpParser.ParsePort(line, out var ep);
        bool extended = false;
        if (m == FtpParser.Match.None)
        {
            m = FtpParser.ParseEprt(line, out ep);
            extended = true;
        }
        if (m == FtpParser.Match.None)
        {
            return default;
        }
        // A PORT naming another host would make natd open a pinhole for a third party (FTP bounce).
        if (m != FtpParser.Match.Ok || ep.Address != connection.InsideAddress || reservedPort == 0)
        {
            return refuse;
        }
        int n = 0;
        bool written = extended
            ? AsciiText.TryWriteByte(replacement, ref n, ep.Delimiter) && AsciiText.TryWriteByte(replacement, ref n, (byte)'1')
                && AsciiText.TryWriteByte(replacement, ref n, ep.Delimiter)
                && AsciiText.TryWriteAddress(replacement, ref n, connection.ExternalAddress, (byte)'.')
                && AsciiText.TryWriteByte(replacement, ref n, ep.Delimiter)
                && AsciiText.TryWriteDecimal(replacement, ref n, reservedPort)
                && AsciiText.TryWriteByte(replacement, ref n, ep.Delimiter)
            : AsciiText.TryWriteAddress(replacement, ref n, connection.ExternalAddress, (byte)',')
                && AsciiText.TryWriteByte(replacement, ref n, (byte)',')
                && AsciiText.TryWriteDecimal(replacement, ref n, (ulong)(reservedPort >> 8))
                && AsciiText.TryWriteByte(replacement, ref n, (byte)',')
                && AsciiText.TryWriteDecimal(replacement, ref n, (ulong)(reservedPort & 0xFF));
        if (!written)
        {
            return refuse;
        }
        return new LineDecision
        {
            Verdict = LineVerdict.RewriteAndExpect,
            EditOffset = ep.Start,
            EditLength = ep.End - ep.Start,
            ReplacementLength = n,
            // The server connects from any port (20 by RFC 959, but vsftpd and others vary).
            Expectation = new ExpectationRequest(ExpectationKind.Inbound, IpProtocol.Tcp, connection.RemoteAddress, 0,
                reservedPort, connection.InsideAddress, (ushort)ep.Port, UsesReservedPort: true),
        };
    }

    private static LineDecision DecideReply(in AlgConnection connection, ReadOnlySpan<byte> line)
    {
        FtpParser.Match m = FtpParser.Parse227(line, out var ep);
        bool extended = false;
        if (m == FtpParser.Match.None)
        {
            m = FtpParser.Parse229(line, out ep);
            extended = true;
        }
        if (m == FtpParser.Match.None)
        {
            return default;
        }
        // 229 carries no address: the data connection goes to the control connection's server.
        if (m != FtpParser.Match.Ok || (!extended && ep.Address != connection.RemoteAddress))
        {
            return new LineDecision { Verdict = LineVerdict.Refuse };
        }
        return new LineDecision
        {
            Verdict = LineVerdict.Expect,
            Expectation = new ExpectationRequest(ExpectationKind.Outbound, IpProtocol.Tcp, connection.RemoteAddress, (ushort)ep.Port,
                0, connection.InsideAddress, 0, UsesReservedPort: false),
        };
    }
}
