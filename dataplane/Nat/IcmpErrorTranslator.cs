using Natd.Dataplane.Packets;
using Natd.Dataplane.Sessions;

namespace Natd.Dataplane.Nat;

/// <summary>
/// RFC 5508 ICMP error translation (REQ-3/4): an ICMP error about a packet of a live session is
/// translated with its embedded header (addresses, port or identifier, every checksum) and sent
/// on like the session's own traffic. Owns no state: it reads the session table (never refreshing
/// or deleting a live session: errors must not keep a mapping alive), routes through the address
/// plan and sends through the neighbours; an error whose TTL runs out is answered by the
/// responder. No allocation.
/// </summary>
internal sealed class IcmpErrorTranslator
{
    /// <summary>Bytes of the offending datagram an ICMP error quotes beyond its IP header (RFC 792: the first 64 bits).</summary>
    public const int QuoteBytes = 8;

    private readonly SessionTable _table;
    private readonly LiveSessions _live;
    private readonly AddressPlan _addresses;
    private readonly Neighbours _neighbours;
    private readonly IcmpResponder _responder;
    private readonly NatCounters _counters;

    /// <summary>Creates a translator.</summary>
    /// <param name="table">The shard's session table.</param>
    /// <param name="idleTimeoutMs">Idle timeout per <see cref="LruClass"/>, milliseconds: the engine's array, refreshed in place on reload, read at lookup time.</param>
    /// <param name="addresses">The engine's address plan (next hops).</param>
    /// <param name="neighbours">Sends the translated error (or holds it for ARP).</param>
    /// <param name="responder">Answers an error whose TTL runs out with time exceeded.</param>
    /// <param name="counters">The shard's counters.</param>
    public IcmpErrorTranslator(SessionTable table, long[] idleTimeoutMs, AddressPlan addresses, Neighbours neighbours, IcmpResponder responder, NatCounters counters)
    {
        _table = table;
        _live = new LiveSessions(table, idleTimeoutMs); // the one idle-aware lookup rule
        _addresses = addresses;
        _neighbours = neighbours;
        _responder = responder;
        _counters = counters;
    }

    /// <summary>
    /// An ICMP error from outside about a packet natd sent (its embedded header has the external
    /// address as source) goes to the inside host with the outer destination, the embedded source
    /// address and port, and every checksum rewritten.
    /// </summary>
    /// <returns>The egress verdict, or a drop (<see cref="DropReason.IcmpErrorNoSession"/>, or time exceeded).</returns>
    public Verdict IcmpErrorOut2In(Span<byte> slot, ref int length, Span<byte> ipSpan, int ihl, ref PacketContext ctx)
    {
        var ip = new Ipv4Header(ipSpan);
        Span<byte> icmp = ipSpan[ihl..];
        if (!TryEmbeddedKey(icmp, outbound: true, out FlowKey key, out int embIhl))
        {
            return ctx.Drop(DropReason.IcmpErrorNoSession);
        }
        int s = _live.Out2In(key, ctx.NowMs);
        if (s < 0 || ip.Destination != key.Destination)
        {
            return ctx.Drop(DropReason.IcmpErrorNoSession);
        }
        if (ip.Ttl <= 1)
        {
            return _responder.TimeExceeded(slot, ref length, Side.Outside, ipSpan, ihl, ref ctx);
        }
        ref Session ses = ref _table.Sessions[s];
        uint inside = ses.In2Out.Source;
        ushort iport = ses.In2Out.SourcePort;

        ip.Destination = inside;
        ip.DecrementTtl(ses.IpDeltaOut2In); // the address's precomputed delta and the TTL in one checksum update

        Span<byte> emb = icmp[Icmp.HeaderLength..];
        var eip = new Ipv4Header(emb);
        eip.Source = inside;
        eip.ChecksumRaw = Checksum.ApplyDelta(eip.ChecksumRaw, ses.IpDeltaOut2In);
        RewriteEmbeddedL4(emb[embIhl..], key.Protocol, sourceSide: true, iport, ses.L4DeltaOut2In);
        FinishIcmp(icmp);
        _counters.IcmpErrorsTranslated++;
        _counters.PacketsOut2In++;
        _counters.BytesOut2In += ipSpan.Length;
        return _neighbours.SendTo(Side.Inside, slot[..length], _addresses.NextHopInside(inside), ref ctx);
    }

    /// <summary>An ICMP error from an inside host about a packet it received through natd (e.g. port unreachable): the mirror of <see cref="IcmpErrorOut2In"/>.</summary>
    /// <returns>The egress verdict, or a drop (<see cref="DropReason.IcmpErrorNoSession"/>, <see cref="DropReason.NoRoute"/>).</returns>
    public Verdict IcmpErrorIn2Out(Span<byte> slot, ref int length, Span<byte> ipSpan, int ihl, ref PacketContext ctx)
    {
        var ip = new Ipv4Header(ipSpan);
        Span<byte> icmp = ipSpan[ihl..];
        if (!TryEmbeddedKey(icmp, outbound: false, out FlowKey key, out int embIhl))
        {
            return ctx.Drop(DropReason.IcmpErrorNoSession);
        }
        int s = _live.In2Out(key, ctx.NowMs);
        if (s < 0 || ip.Source != key.Source)
        {
            return ctx.Drop(DropReason.IcmpErrorNoSession);
        }
        ref Session ses = ref _table.Sessions[s];
        uint external = ses.Out2In.Destination;
        uint nextHop = _addresses.NextHopOutside(ses.Out2In.Source);
        if (nextHop == 0)
        {
            return ctx.Drop(DropReason.NoRoute);
        }
        ip.Source = external;
        ip.DecrementTtl(ses.IpDeltaIn2Out); // the address's precomputed delta and the TTL in one checksum update

        Span<byte> emb = icmp[Icmp.HeaderLength..];
        var eip = new Ipv4Header(emb);
        eip.Destination = external;
        eip.ChecksumRaw = Checksum.ApplyDelta(eip.ChecksumRaw, ses.IpDeltaIn2Out);
        RewriteEmbeddedL4(emb[embIhl..], key.Protocol, sourceSide: false, ses.Out2In.DestinationPort, ses.L4DeltaIn2Out);
        FinishIcmp(icmp);
        _counters.IcmpErrorsTranslated++;
        _counters.PacketsIn2Out++;
        _counters.BytesIn2Out += ipSpan.Length;
        return _neighbours.SendTo(Side.Outside, slot[..length], nextHop, ref ctx);
    }

    /// <summary>
    /// Reads the embedded datagram of an ICMP error and returns the session key a reply to it would
    /// carry: for an error arriving from outside (<paramref name="outbound"/>: the embedded packet
    /// is one natd sent out) the out2in key, otherwise the in2out key. False when malformed.
    /// </summary>
    internal static bool TryEmbeddedKey(Span<byte> icmp, bool outbound, out FlowKey key, out int embIhl)
    {
        key = default;
        embIhl = 0;
        Span<byte> emb = icmp[Icmp.HeaderLength..];
        if (emb.Length < Ipv4Header.MinLength)
        {
            return false;
        }
        var eip = new Ipv4Header(emb);
        embIhl = eip.HeaderLength;
        if (eip.Version != 4 || embIhl < Ipv4Header.MinLength || emb.Length < embIhl + QuoteBytes || eip.FragmentOffset != 0)
        {
            return false;
        }
        Span<byte> l4 = emb[embIhl..];
        byte proto = eip.Protocol;
        uint src = eip.Source, dst = eip.Destination;
        if (proto is IpProtocol.Tcp or IpProtocol.Udp)
        {
            // The embedded packet travelled the other way: its destination is the session's source.
            key = new FlowKey(dst, src, Checksum.ReadRaw16(l4, 2), Checksum.ReadRaw16(l4, 0), proto);
            return true;
        }
        if (proto == IpProtocol.Icmp)
        {
            byte type = l4[0];
            ushort id = Checksum.ReadRaw16(l4, Icmp.IdentifierOffset);
            if (outbound && type == Icmp.EchoRequest)
            {
                key = new FlowKey(dst, src, 0, id, proto); // the echo reply's out2in key
                return true;
            }
            if (!outbound && type == Icmp.EchoReply)
            {
                key = new FlowKey(dst, src, id, 0, proto); // the echo request's in2out key
                return true;
            }
        }
        return false;
    }

    /// <summary>
    /// Rewrites the port (or identifier) of the embedded transport header: the source port when the
    /// embedded packet went out through natd, the destination port when it came in. The embedded
    /// checksum is patched (RFC 1624 delta) only when the quote holds it (TCP's sits beyond the first 8 bytes).
    /// </summary>
    internal static void RewriteEmbeddedL4(Span<byte> l4, byte proto, bool sourceSide, ushort newPortRaw, ushort delta)
        => NaptRewrite.EmbeddedPort(l4, proto, sourceSide, newPortRaw, delta);

    /// <summary>Recomputes an ICMP message's checksum over the whole message.</summary>
    internal static void FinishIcmp(Span<byte> icmp) => NaptRewrite.IcmpChecksum(icmp);
}
