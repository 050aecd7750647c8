using Natd.Dataplane.Packets;
using Natd.Dataplane.Sessions;

namespace Natd.Dataplane.Alg.Irc;

/// <summary>
/// IRC DCC ALG (like Linux <c>ip_masq_irc</c> / <c>nf_conntrack_irc</c>): an inside client's
/// CTCP <c>DCC SEND</c> or <c>DCC CHAT</c> offer naming its own address is rewritten to the
/// external address and the reserved external port, with an inbound expectation from any host
/// (the peer is another IRC user) to the offered inside port. Passive DCC (port 0), another
/// host's address, bad numbers or overlong lines are refused: unchanged, nothing opened. A PRIVMSG
/// split across segments is held until complete (<see cref="TcpLineAlgHandler"/>).
/// </summary>
public sealed class IrcHandler : TcpLineAlgHandler
{
    /// <inheritdoc />
    public override AlgKind Kind => AlgKind.Irc;

    /// <inheritdoc />
    protected override LineDecision Decide(in AlgConnection connection, AlgDirection direction, ConnectionOpener opener, ReadOnlySpan<byte> line, ushort reservedPort, Span<byte> replacement)
    {
        if (direction != AlgDirection.In2Out)
        {
            return default; // offers from outside need nothing: the inside user connects out
        }
        DccParser.Match m = DccParser.Parse(line, out var offer);
        if (m == DccParser.Match.None)
        {
            return default;
        }
        if (m != DccParser.Match.Ok || offer.Port == 0 || offer.Address != connection.InsideAddress || reservedPort == 0)
        {
            return new LineDecision { Verdict = LineVerdict.Refuse };
        }
        int n = 0;
        if (!AsciiText.TryWriteDecimal(replacement, ref n, Ipv4.ToHostOrder(connection.ExternalAddress))
            || !AsciiText.TryWriteByte(replacement, ref n, (byte)' ')
            || !AsciiText.TryWriteDecimal(replacement, ref n, reservedPort))
        {
            return new LineDecision { Verdict = LineVerdict.Refuse };
        }
        return new LineDecision
        {
            Verdict = LineVerdict.RewriteAndExpect,
            EditOffset = offer.Start,
            EditLength = offer.End - offer.Start,
            ReplacementLength = n,
            Expectation = new ExpectationRequest(ExpectationKind.Inbound, IpProtocol.Tcp, 0, 0,
                reservedPort, connection.InsideAddress, (ushort)offer.Port, UsesReservedPort: true),
        };
    }

    /// <inheritdoc />
    /// <remarks>An inside client's PRIVMSG (after an optional prefix) may carry a DCC offer until its end is seen.</remarks>
    protected override bool MayNeedRewrite(AlgDirection direction, ConnectionOpener opener, ReadOnlySpan<byte> partial)
    {
        if (direction != AlgDirection.In2Out)
        {
            return false;
        }
        if (partial.Length > 0 && partial[0] == (byte)':')
        {
            int space = partial.IndexOf((byte)' ');
            if (space < 0)
            {
                return true; // still in the prefix
            }
            partial = partial[space..].TrimStart((byte)' ');
        }
        return AsciiText.CouldStartWith(partial, "PRIVMSG "u8);
    }

    /// <inheritdoc />
    protected override bool LooksInteresting(AlgDirection direction, ReadOnlySpan<byte> start)
        => direction == AlgDirection.In2Out && AsciiText.IndexOfIgnoreCase(start, "\u0001DCC"u8) >= 0;
}
