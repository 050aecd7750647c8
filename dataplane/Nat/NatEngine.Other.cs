using Natd.Dataplane.Packets;
using Natd.Dataplane.Sessions;

namespace Natd.Dataplane.Nat;

public sealed partial class NatEngine
{
    private bool _hasAcceptRules;

    /// <summary>True when a port forward listens on <paramref name="address"/>.</summary>
    private bool HasForwardOn(uint address)
    {
        foreach (var f in _forwards)
        {
            if (f.ExternalAddress == address)
            {
                return true;
            }
        }
        return false;
    }

    /// <summary>
    /// RFC 4787 REQ-9 / RFC 5382 REQ-8 hairpinning: an inside host sends to an external address and
    /// port of natd (a forward, or another inside host's mapping). The packet is masqueraded as if
    /// leaving, then translated as if arriving, and goes back inside: both hosts see each other's
    /// external endpoints, never the inside addresses. One path for 1..N shards: once masqueraded,
    /// the frame is an outside arrival for the owner of its destination (<see cref="ShardMap.OwnerOfArrival"/>),
    /// finished here by <see cref="HairpinArrival"/> when that is this shard, else returned as
    /// <see cref="Verdict.Loopback"/> for the caller to hand to the owner, which runs the same method
    /// through <see cref="ProcessHairpinned"/>.
    /// </summary>
    private Verdict Hairpin(Span<byte> slot, ref int length, Span<byte> ipSpan, in ParsedFrame p, Io.FrameFlags flags, ref PacketContext ctx)
    {
        Verdict v = In2Out(slot, ref length, ipSpan, p, flags, hairpin: true, ref ctx);
        if (v != Verdict.ToOutside)
        {
            return v;
        }
        Counters.Hairpinned++;
        // The frame now travels as if natd had sent it to itself on the outside: never with the
        // inside MACs it arrived with (another shard must not take it for someone else's frame).
        var eth = new EthernetHeader(slot);
        eth.Source = OutsideMac;
        eth.Destination = OutsideMac;
        var ip = new Ipv4Header(ipSpan);
        if (_shardMap.OwnerOfArrival(ip.Protocol, ip.Destination, Checksum.ReadRaw16(ipSpan[p.Ihl..], 2)) != _options.Shard)
        {
            return Verdict.Loopback;
        }
        return HairpinArrival(slot, ref length, ref ctx);
    }

    /// <summary>
    /// Finishes a hairpinned TCP or UDP frame another shard masqueraded and handed over after it
    /// answered <see cref="Verdict.Loopback"/>: translates it as an outside arrival to natd's
    /// external endpoint (RFC 4787 REQ-9) and addresses it to the inside host. The frame is the one
    /// that shard produced (IPv4, checksums valid, source natd's own address); one that is not is
    /// dropped with the reason <see cref="FrameParser"/> gives (<see cref="DropReason.Truncated"/>,
    /// <see cref="DropReason.BadIhl"/>, ...), never thrown on.
    /// </summary>
    /// <param name="slot">The frame's buffer; the frame is its first <paramref name="length"/> bytes.</param>
    /// <param name="length">Frame length in bytes; updated to the length to transmit.</param>
    /// <param name="ctx">The frame's context, as for <see cref="Process(Span{byte}, ref int, Side, Io.FrameFlags, ref PacketContext)"/>.</param>
    /// <returns><see cref="Verdict.ToInside"/>, <see cref="Verdict.Consumed"/> (held for ARP) or <see cref="Verdict.Drop"/>.</returns>
    public Verdict ProcessHairpinned(Span<byte> slot, ref int length, ref PacketContext ctx)
    {
        Begin(ref ctx);
        Verdict v = ProcessHairpinnedFrame(slot, ref length, ref ctx);
        End(ref ctx);
        return v;
    }

    private Verdict ProcessHairpinnedFrame(Span<byte> slot, ref int length, ref PacketContext ctx)
    {
        if ((uint)length > (uint)slot.Length || length < EthernetHeader.Length + Ipv4Header.MinLength)
        {
            return ctx.Drop(DropReason.Truncated);
        }
        Span<byte> ipSpan = slot[EthernetHeader.Length..length];
        var ip = new Ipv4Header(ipSpan);
        int ihl = ip.HeaderLength;
        if (ihl < Ipv4Header.MinLength || ihl > ipSpan.Length)
        {
            return ctx.Drop(DropReason.BadIhl);
        }
        if (ip.Protocol is not (IpProtocol.Tcp or IpProtocol.Udp) || ipSpan.Length < ihl + Udp.Length)
        {
            return ctx.Drop(DropReason.Truncated);
        }
        return HairpinArrival(slot, ref length, ref ctx);
    }

    /// <summary>
    /// The second half of a hairpin, on the shard owning the destination: out2in, addressed to the
    /// inside host. The frame was rewritten by the first half, so it is parsed again as it is now.
    /// </summary>
    private Verdict HairpinArrival(Span<byte> slot, ref int length, ref PacketContext ctx)
    {
        FrameParser.Parse(slot[..length], Side.Outside, Table.HashSeed, out ParsedFrame p);
        if (p.Drop != ParsedFrame.None || !p.IsIpv4)
        {
            return ctx.Drop(p.Drop == ParsedFrame.None ? DropReason.Truncated : p.Drop);
        }
        length = EthernetHeader.Length + p.TotalLength;
        return Out2In(slot, ref length, slot[EthernetHeader.Length..length], p, Io.FrameFlags.None, transit: false, hairpin: true, ref ctx);
    }

    /// <summary>
    /// An inside packet of a protocol without ports (GRE, ESP, ...): a protocol forward's server is
    /// translated to the forward's external address; otherwise a rule may masquerade it with one
    /// session per (inside host, remote), or accept it untranslated. With no rules configured it is
    /// dropped as unsupported, as before any rule existed.
    /// </summary>
    private Verdict OtherIn2Out(Span<byte> slot, ref int length, Span<byte> ipSpan)
    {
        var ip = new Ipv4Header(ipSpan);
        byte proto = ip.Protocol;
        uint src = ip.Source, dst = ip.Destination;
        uint nextHop = NextHopOutside(dst);
        if (nextHop == 0)
        {
            return Drop(DropReason.NoRoute);
        }
        if (proto == IpProtocol.Gre)
        {
            // PPTP calls the ALG registered are translated by Call ID before any port-less rule.
            GreMatch g = PptpGreIn2Out(slot, length, ipSpan, ip.HeaderLength, nextHop, out Verdict gv);
            if (g != GreMatch.None)
            {
                return g == GreMatch.Sent ? gv : Drop(DropReason.BadGre);
            }
        }
        int pf = FindProtocolForwardByServer(proto, src);
        if (pf >= 0)
        {
            uint ext = _protocolForwards[pf].ExternalAddress;
            ip.Source = ext;
            ip.ChecksumRaw = Checksum.Update(ip.ChecksumRaw, src, ext);
            ip.DecrementTtl();
            Counters.ProtocolForwarded++;
            Counters.PacketsIn2Out++;
            Counters.BytesIn2Out += ipSpan.Length;
            return SendTo(Side.Outside, slot[..length], nextHop);
        }
        if (proto is IpProtocol.Esp or IpProtocol.Ah && IpsecOn && TryIpsecIn2Out(slot, ref length, ipSpan, nextHop, out Verdict ipsec))
        {
            return ipsec;
        }
        var key = new FlowKey(src, dst, 0, 0, proto);
        int s = LookupIn2Out(key);
        if (s < 0)
        {
            if (_builtInRules)
            {
                return Drop(DropReason.UnsupportedProtocol);
            }
            DropReason r;
            switch (Decide(key, RuleInterface.Inside, RuleInterface.Outside))
            {
                case RuleAction.Deny:
                    return Drop(DropReason.RuleDeny);
                case RuleAction.Reject:
                    return IcmpReply(slot, ref length, Side.Inside, ipSpan, ip.HeaderLength, Icmp.DestinationUnreachable, 13, DropReason.RuleReject);
                case RuleAction.Accept:
                    s = CreateIdentity(key, out r);
                    break;
                default:
                    s = CreatePortLess(key, out r);
                    break;
            }
            if (s < 0)
            {
                return Drop(r);
            }
        }
        ref Session ses = ref Table.Sessions[s];
        ip.Source = ses.Out2In.Destination;
        ip.ChecksumRaw = Checksum.ApplyDelta(ip.ChecksumRaw, ses.IpDeltaIn2Out);
        ip.DecrementTtl();
        ses.PacketsIn2Out++;
        ses.BytesIn2Out += ipSpan.Length;
        Table.Touch(s, _now);
        Counters.PacketsIn2Out++;
        Counters.BytesIn2Out += ipSpan.Length;
        return SendTo(Side.Outside, slot[..length], nextHop);
    }

    /// <summary>An outside packet of a protocol without ports to natd's address: a port-less session's reply, or a protocol forward.</summary>
    private Verdict OtherOut2In(Span<byte> slot, ref int length, Span<byte> ipSpan, int ihl)
    {
        var ip = new Ipv4Header(ipSpan);
        byte proto = ip.Protocol;
        uint src = ip.Source, dst = ip.Destination;
        if (proto == IpProtocol.Gre)
        {
            // A PPTP call's GRE goes to the client that owns its Call ID; an unknown Call ID falls through.
            GreMatch g = PptpGreOut2In(slot, ref length, ipSpan, ihl, out Verdict gv);
            if (g != GreMatch.None)
            {
                return g == GreMatch.Sent ? gv : Drop(DropReason.BadGre);
            }
        }
        if (proto is IpProtocol.Esp or IpProtocol.Ah && IpsecOn && TryIpsecOut2In(slot, ref length, ipSpan, ihl, out Verdict ipsec))
        {
            return ipsec;
        }
        int s = LookupOut2In(new FlowKey(src, dst, 0, 0, proto));
        uint inside;
        if (s >= 0)
        {
            if (ip.Ttl <= 1)
            {
                return TimeExceeded(slot, ref length, Side.Outside, ipSpan, ihl);
            }
            ref Session ses = ref Table.Sessions[s];
            inside = ses.In2Out.Source;
            ip.Destination = inside;
            ip.ChecksumRaw = Checksum.ApplyDelta(ip.ChecksumRaw, ses.IpDeltaOut2In);
            ses.PacketsOut2In++;
            ses.BytesOut2In += ipSpan.Length;
            Table.Touch(s, _now);
        }
        else
        {
            int pf = FindProtocolForwardByExternal(proto, dst);
            if (pf < 0)
            {
                return Drop(PoolIndexOf(dst) >= 0 ? DropReason.NoSession : DropReason.ToGateway);
            }
            if (ip.Ttl <= 1)
            {
                return TimeExceeded(slot, ref length, Side.Outside, ipSpan, ihl);
            }
            inside = _protocolForwards[pf].InsideServer;
            ip.Destination = inside;
            ip.ChecksumRaw = Checksum.Update(ip.ChecksumRaw, dst, inside);
            Counters.ProtocolForwarded++;
        }
        ip.DecrementTtl();
        Counters.PacketsOut2In++;
        Counters.BytesOut2In += ipSpan.Length;
        return SendTo(Side.Inside, slot[..length], NextHopInside(inside));
    }

    /// <summary>Masquerades a port-less protocol: one inside host per (remote, external address), since nothing else tells replies apart.</summary>
    private int CreatePortLess(in FlowKey key, out DropReason reason)
    {
        if (Table.Count >= Table.Capacity)
        {
            reason = DropReason.SessionLimit;
            return -1;
        }
        uint ext = _pool[PoolIndexFor(key.Source)];
        var out2in = new FlowKey(key.Destination, ext, 0, 0, key.Protocol);
        if (LookupOut2In(out2in) >= 0)
        {
            reason = DropReason.ProtocolInUse;
            return -1;
        }
        int m = Table.AddMapping(key.Source, 0, ext, 0, key.Protocol, -1, endpointIndependent: false);
        if (m < 0)
        {
            reason = DropReason.SessionLimit;
            return -1;
        }
        int s = Table.AddSession(m, key, out2in, LruClass.Udp, _now);
        if (s < 0)
        {
            Table.RemoveMapping(m);
            reason = DropReason.SessionLimit;
            return -1;
        }
        Table.Sessions[s].Origin = SessionOrigin.PortLess;
        reason = Ok;
        return s;
    }
}
