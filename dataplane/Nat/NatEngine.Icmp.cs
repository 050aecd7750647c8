using Natd.Dataplane.Packets;
using Natd.Dataplane.Sessions;

namespace Natd.Dataplane.Nat;

public sealed partial class NatEngine
{
    private const int IcmpQuoteBytes = 8; // RFC 792: IP header + first 64 bits of the datagram
    private int _icmpTokens;
    private long _icmpRefillMs;

    /// <summary>
    /// RFC 5508 REQ-3/4: an ICMP error from outside about a packet natd sent (its embedded header has
    /// the external address as source) goes to the inside host with the outer destination, the
    /// embedded source address and port, and every checksum rewritten. It never refreshes or
    /// deletes the session: errors must not keep a mapping alive.
    /// </summary>
    private Verdict IcmpErrorOut2In(Span<byte> slot, ref int length, Span<byte> ipSpan, int ihl)
    {
        var ip = new Ipv4Header(ipSpan);
        Span<byte> icmp = ipSpan[ihl..];
        if (!TryEmbeddedKey(icmp, outbound: true, out FlowKey key, out int embIhl))
        {
            return Drop(DropReason.IcmpErrorNoSession);
        }
        int s = LookupOut2In(key);
        if (s < 0 || ip.Destination != key.Destination)
        {
            return Drop(DropReason.IcmpErrorNoSession);
        }
        if (ip.Ttl <= 1)
        {
            return TimeExceeded(slot, ref length, Side.Outside, ipSpan, ihl);
        }
        ref Session ses = ref Table.Sessions[s];
        uint inside = ses.In2Out.Source;
        ushort iport = ses.In2Out.SourcePort;

        ip.Destination = inside;
        ip.ChecksumRaw = Checksum.ApplyDelta(ip.ChecksumRaw, ses.IpDeltaOut2In);
        ip.DecrementTtl();

        Span<byte> emb = icmp[Icmp.HeaderLength..];
        var eip = new Ipv4Header(emb);
        eip.Source = inside;
        eip.ChecksumRaw = Checksum.ApplyDelta(eip.ChecksumRaw, ses.IpDeltaOut2In);
        RewriteEmbeddedL4(emb[embIhl..], key.Protocol, sourceSide: true, iport, ses.L4DeltaOut2In);
        FinishIcmp(icmp);
        Counters.IcmpErrorsTranslated++;
        Counters.PacketsOut2In++;
        Counters.BytesOut2In += ipSpan.Length;
        return SendTo(Side.Inside, slot[..length], NextHopInside(inside));
    }

    /// <summary>An ICMP error from an inside host about a packet it received through natd (e.g. port unreachable): the mirror of <see cref="IcmpErrorOut2In"/>.</summary>
    private Verdict IcmpErrorIn2Out(Span<byte> slot, ref int length, Span<byte> ipSpan, int ihl)
    {
        var ip = new Ipv4Header(ipSpan);
        Span<byte> icmp = ipSpan[ihl..];
        if (!TryEmbeddedKey(icmp, outbound: false, out FlowKey key, out int embIhl))
        {
            return Drop(DropReason.IcmpErrorNoSession);
        }
        int s = LookupIn2Out(key);
        if (s < 0 || ip.Source != key.Source)
        {
            return Drop(DropReason.IcmpErrorNoSession);
        }
        ref Session ses = ref Table.Sessions[s];
        uint external = ses.Out2In.Destination;
        uint nextHop = NextHopOutside(ses.Out2In.Source);
        if (nextHop == 0)
        {
            return Drop(DropReason.NoRoute);
        }
        ip.Source = external;
        ip.ChecksumRaw = Checksum.ApplyDelta(ip.ChecksumRaw, ses.IpDeltaIn2Out);
        ip.DecrementTtl();

        Span<byte> emb = icmp[Icmp.HeaderLength..];
        var eip = new Ipv4Header(emb);
        eip.Destination = external;
        eip.ChecksumRaw = Checksum.ApplyDelta(eip.ChecksumRaw, ses.IpDeltaIn2Out);
        RewriteEmbeddedL4(emb[embIhl..], key.Protocol, sourceSide: false, ses.Out2In.DestinationPort, ses.L4DeltaIn2Out);
        FinishIcmp(icmp);
        Counters.IcmpErrorsTranslated++;
        Counters.PacketsIn2Out++;
        Counters.BytesIn2Out += ipSpan.Length;
        return SendTo(Side.Outside, slot[..length], nextHop);
    }

    /// <summary>
    /// Reads the embedded datagram of an ICMP error and returns the session key a reply to it would
    /// carry: for an error arriving from outside (<paramref name="outbound"/>: the embedded packet
    /// is one natd sent out) the out2in key, otherwise the in2out key. False when malformed.
    /// </summary>
    private static bool TryEmbeddedKey(Span<byte> icmp, bool outbound, out FlowKey key, out int embIhl)
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
        if (eip.Version != 4 || embIhl < Ipv4Header.MinLength || emb.Length < embIhl + IcmpQuoteBytes || eip.FragmentOffset != 0)
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
    /// checksum is patched only when the quote holds it (TCP's sits beyond the first 8 bytes).
    /// </summary>
    private static void RewriteEmbeddedL4(Span<byte> l4, byte proto, bool sourceSide, ushort newPortRaw, ushort delta)
    {
        int portOffset = proto == IpProtocol.Icmp ? Icmp.IdentifierOffset : sourceSide ? 0 : 2;
        Checksum.WriteRaw16(l4, portOffset, newPortRaw);
        int csum = proto == IpProtocol.Tcp ? Tcp.ChecksumOffset : proto == IpProtocol.Udp ? Udp.ChecksumOffset : Icmp.ChecksumOffset;
        if (l4.Length < csum + 2)
        {
            return;
        }
        ushort c = Checksum.ReadRaw16(l4, csum);
        if (proto == IpProtocol.Udp && c == 0)
        {
            return;
        }
        c = Checksum.ApplyDelta(c, delta);
        Checksum.WriteRaw16(l4, csum, proto == IpProtocol.Udp && c == 0 ? (ushort)0xFFFF : c);
    }

    /// <summary>Recomputes an ICMP message's checksum over the whole message.</summary>
    private static void FinishIcmp(Span<byte> icmp)
    {
        Checksum.WriteRaw16(icmp, Icmp.ChecksumOffset, 0);
        Checksum.WriteRaw16(icmp, Icmp.ChecksumOffset, Checksum.Compute(icmp));
    }

    /// <summary>
    /// A packet addressed to natd itself: an ICMP echo request is answered (natd owns the address,
    /// the kernel holds none); anything else is dropped and counted.
    /// </summary>
    private Verdict ToGateway(Span<byte> slot, ref int length, Side ingress, Span<byte> ipSpan, int ihl)
    {
        var ip = new Ipv4Header(ipSpan);
        Span<byte> icmp = ipSpan[ihl..];
        if (ip.Protocol != IpProtocol.Icmp || icmp.Length < Icmp.HeaderLength || icmp[0] != Icmp.EchoRequest
            || !Checksum.Verify(icmp))
        {
            return Drop(DropReason.ToGateway);
        }
        uint me = ip.Destination;
        ip.Destination = ip.Source;
        ip.Source = me;
        ip.Ttl = 64;
        ip.UpdateChecksum();
        icmp[0] = Icmp.EchoReply;
        icmp[1] = 0;
        FinishIcmp(icmp);
        var eth = new EthernetHeader(slot);
        eth.Destination = eth.Source;
        eth.Source = ingress == Side.Inside ? InsideMac : OutsideMac;
        Counters.EchoRepliesSent++;
        return ingress == Side.Inside ? Verdict.ToInside : Verdict.ToOutside;
    }

    /// <summary>
    /// RFC 1812 5.3.1: a packet whose TTL would reach zero is dropped and answered with ICMP time
    /// exceeded (code 0).
    /// </summary>
    private Verdict TimeExceeded(Span<byte> slot, ref int length, Side ingress, Span<byte> ipSpan, int ihl)
        => IcmpReply(slot, ref length, ingress, ipSpan, ihl, Icmp.TimeExceeded, 0, DropReason.TtlExpired);

    /// <summary>
    /// Drops a packet with <paramref name="reason"/> and answers its sender with an ICMP error
    /// (<paramref name="type"/>, <paramref name="code"/>) quoting the IP header and 8 bytes,
    /// rate-limited (RFC 1812 4.3.2.8) and never about an ICMP error (4.3.2.7). The reply is built
    /// in the frame's own slot and sent back out of the ingress side.
    /// </summary>
    private Verdict IcmpReply(Span<byte> slot, ref int length, Side ingress, Span<byte> ipSpan, int ihl, byte type, byte code, DropReason reason)
    {
        _drop = reason;
        Counters.Drops[(int)reason]++;
        var ip = new Ipv4Header(ipSpan);
        if (ip.Protocol == IpProtocol.Icmp && (ipSpan.Length <= ihl || Icmp.IsError(ipSpan[ihl])))
        {
            return Verdict.Drop;
        }
        if (!TakeIcmpToken())
        {
            return Verdict.Drop;
        }
        int quote = Math.Min(ipSpan.Length, ihl + IcmpQuoteBytes);
        Span<byte> saved = stackalloc byte[60 + IcmpQuoteBytes];
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
        oip.Source = ingress == Side.Inside ? _insideAddress : _outsideAddress;
        oip.Destination = origSrc;
        oip.UpdateChecksum();
        Span<byte> icmp = outIp[Ipv4Header.MinLength..];
        icmp[0] = type;
        icmp[1] = code;
        saved[..quote].CopyTo(icmp[Icmp.HeaderLength..]);
        FinishIcmp(icmp);
        eth.Destination = back;
        eth.Source = ingress == Side.Inside ? InsideMac : OutsideMac;
        eth.EtherType = EtherType.Ipv4;
        length = EthernetHeader.Length + total;
        Counters.IcmpErrorsSent++;
        return ingress == Side.Inside ? Verdict.ToInside : Verdict.ToOutside;
    }

    private bool TakeIcmpToken()
    {
        int rate = _options.IcmpErrorRate;
        if (_now - _icmpRefillMs >= 1000)
        {
            _icmpRefillMs = _now;
            _icmpTokens = rate;
        }
        if (_icmpTokens <= 0)
        {
            return false;
        }
        _icmpTokens--;
        return true;
    }
}
