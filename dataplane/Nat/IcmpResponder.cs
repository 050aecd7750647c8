using Natd.Dataplane.Packets;

namespace Natd.Dataplane.Nat;

/// <summary>
/// The ICMP natd originates itself: echo replies for its own addresses (it owns them, the kernel
/// holds none; RFC 792) and the errors it generates (time exceeded, RFC 1812 section 5.3.1; a
/// rule's reject as destination unreachable). Owns the one token bucket every generated ICMP error
/// takes from (RFC 1812 section 4.3.2.8, <see cref="EngineOptions.IcmpErrorRate"/> per second).
/// Replies are built in the frame's own slot and go back out of the ingress side: no allocation.
/// </summary>
internal sealed class IcmpResponder
{
    private readonly AddressPlan _addresses;
    private readonly NatCounters _counters;
    private readonly MacAddress _insideMac;
    private readonly MacAddress _outsideMac;
    private readonly TokenBucket _errors;

    /// <summary>Creates a responder.</summary>
    /// <param name="addresses">The engine's address plan (an error's source is natd's address on the ingress side).</param>
    /// <param name="insideMac">natd's MAC inside.</param>
    /// <param name="outsideMac">natd's MAC outside.</param>
    /// <param name="counters">The shard's counters (echo replies, errors sent, drops).</param>
    /// <param name="errorRate">ICMP errors allowed per second (<see cref="EngineOptions.IcmpErrorRate"/>).</param>
    public IcmpResponder(AddressPlan addresses, MacAddress insideMac, MacAddress outsideMac, NatCounters counters, int errorRate)
    {
        _addresses = addresses;
        _counters = counters;
        _insideMac = insideMac;
        _outsideMac = outsideMac;
        _errors = new TokenBucket(errorRate);
    }

    /// <summary>
    /// A packet addressed to natd itself: an ICMP echo request (with a valid checksum) is answered
    /// in place; anything else is dropped as <see cref="DropReason.ToGateway"/>.
    /// </summary>
    /// <param name="slot">The frame's buffer (Ethernet header first).</param>
    /// <param name="length">Frame length in bytes (unchanged: the reply is as long as the request).</param>
    /// <param name="ingress">Side the frame arrived on (the reply leaves there).</param>
    /// <param name="ipSpan">The IPv4 datagram inside <paramref name="slot"/>.</param>
    /// <param name="ihl">Its header length in bytes.</param>
    /// <param name="ctx">The packet's context (drops are recorded there).</param>
    public Verdict ToGateway(Span<byte> slot, ref int length, Side ingress, Span<byte> ipSpan, int ihl, ref PacketContext ctx)
    {
        var ip = new Ipv4Header(ipSpan);
        Span<byte> icmp = ipSpan[ihl..];
        if (ip.Protocol != IpProtocol.Icmp || icmp.Length < Icmp.HeaderLength || icmp[0] != Icmp.EchoRequest
            || !Checksum.Verify(icmp))
        {
            return ctx.Drop(DropReason.ToGateway);
        }
        uint me = ip.Destination;
        ip.Destination = ip.Source;
        ip.Source = me;
        ip.Ttl = 64;
        ip.UpdateChecksum();
        icmp[0] = Icmp.EchoReply;
        icmp[1] = 0;
        IcmpErrorTranslator.FinishIcmp(icmp);
        var eth = new EthernetHeader(slot);
        eth.Destination = eth.Source;
        eth.Source = ingress == Side.Inside ? _insideMac : _outsideMac;
        _counters.EchoRepliesSent++;
        return ingress == Side.Inside ? Verdict.ToInside : Verdict.ToOutside;
    }

    /// <summary>
    /// RFC 1812 5.3.1: a packet whose TTL would reach zero is dropped (<see cref="DropReason.TtlExpired"/>)
    /// and answered with ICMP time exceeded (code 0), as <see cref="IcmpReply"/>.
    /// </summary>
    public Verdict TimeExceeded(Span<byte> slot, ref int length, Side ingress, Span<byte> ipSpan, int ihl, ref PacketContext ctx)
        => IcmpReply(slot, ref length, ingress, ipSpan, ihl, Icmp.TimeExceeded, 0, DropReason.TtlExpired, ref ctx);

    /// <summary>
    /// RFC 1191 section 4 (RFC 1812 section 5.2.7.1): a datagram with don't-fragment set, larger than
    /// <paramref name="mtu"/> (bytes), the egress side's MTU, is dropped
    /// (<see cref="DropReason.FragmentationNeeded"/>) and answered with destination unreachable,
    /// fragmentation needed (code 4), carrying that MTU, as <see cref="IcmpReply"/>. Called before
    /// the datagram is translated, so the quote is what its sender sent.
    /// </summary>
    public Verdict FragmentationNeeded(Span<byte> slot, ref int length, Side ingress, Span<byte> ipSpan, int ihl, int mtu, ref PacketContext ctx)
        => IcmpReply(slot, ref length, ingress, ipSpan, ihl, Icmp.DestinationUnreachable, Icmp.FragmentationNeededCode, DropReason.FragmentationNeeded, ref ctx, (ushort)mtu);

    /// <summary>
    /// Drops a packet with <paramref name="reason"/> (recorded and counted in <paramref name="ctx"/>)
    /// and answers its sender with an ICMP error (<paramref name="type"/>, <paramref name="code"/>;
    /// <paramref name="nextHopMtu"/> in bytes 6-7 for a fragmentation-needed, RFC 1191, else 0)
    /// quoting the IP header and 8 bytes (RFC 792), rate-limited (RFC 1812 4.3.2.8) and never about
    /// an ICMP error (4.3.2.7). The reply is built in the frame's own slot (<paramref name="length"/>
    /// becomes its length) and sent back out of the ingress side.
    /// </summary>
    /// <returns>The ingress side's verdict when a reply is sent (the drop stays counted), else <see cref="Verdict.Drop"/>.</returns>
    public Verdict IcmpReply(Span<byte> slot, ref int length, Side ingress, Span<byte> ipSpan, int ihl, byte type, byte code, DropReason reason, ref PacketContext ctx,
        ushort nextHopMtu = 0)
    {
        ctx.Drop(reason);
        var ip = new Ipv4Header(ipSpan);
        if (ip.Protocol == IpProtocol.Icmp && (ipSpan.Length <= ihl || Icmp.IsError(ipSpan[ihl])))
        {
            return Verdict.Drop;
        }
        if (!_errors.TryTake(ctx.NowMs))
        {
            return Verdict.Drop;
        }
        int quote = Math.Min(ipSpan.Length, ihl + IcmpErrorTranslator.QuoteBytes);
        Span<byte> saved = stackalloc byte[60 + IcmpErrorTranslator.QuoteBytes];
        ipSpan[..quote].CopyTo(saved);
        uint origSrc = ip.Source;
        var eth = new EthernetHeader(slot);
        MacAddress back = eth.Source;

        int total = Ipv4Header.MinLength + Icmp.HeaderLength + quote;
        Span<byte> outIp = slot.Slice(EthernetHeader.Length, total);
        outIp.Clear();
        outIp[0] = 0x45;
        var oip = new Ipv4Header(outIp);
        oip.TotalLength = total;
        oip.Ttl = 64;
        oip.Protocol = IpProtocol.Icmp;
        oip.Source = ingress == Side.Inside ? _addresses.InsideAddress : _addresses.OutsideAddress;
        oip.Destination = origSrc;
        oip.UpdateChecksum();
        Span<byte> icmp = outIp[Ipv4Header.MinLength..];
        icmp[0] = type;
        icmp[1] = code;
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(icmp[6..], nextHopMtu);
        saved[..quote].CopyTo(icmp[Icmp.HeaderLength..]);
        IcmpErrorTranslator.FinishIcmp(icmp);
        eth.Destination = back;
        eth.Source = ingress == Side.Inside ? _insideMac : _outsideMac;
        eth.EtherType = EtherType.Ipv4;
        length = EthernetHeader.Length + total;
        _counters.IcmpErrorsSent++;
        return ingress == Side.Inside ? Verdict.ToInside : Verdict.ToOutside;
    }
}
