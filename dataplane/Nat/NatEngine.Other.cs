using Natd.Dataplane.Packets;
using Natd.Dataplane.Sessions;

namespace Natd.Dataplane.Nat;

public sealed partial class NatEngine
{
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
        SetClock(ctx.NowMs);
        return ProcessHairpinnedFrame(slot, ref length, ref ctx);
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
    /// An inside packet of a protocol without ports (GRE, ESP, ...), routed here and translated by
    /// <see cref="PortlessProtocols.In2Out"/> (PPTP GRE, protocol forward, IPsec, rules).
    /// </summary>
    private Verdict OtherIn2Out(Span<byte> slot, ref int length, Span<byte> ipSpan, ref PacketContext ctx)
    {
        var ip = new Ipv4Header(ipSpan);
        uint nextHop = _addresses.NextHopOutside(ip.Destination);
        if (nextHop == 0)
        {
            return ctx.Drop(DropReason.NoRoute);
        }
        if (ip.TotalLength > _outsideMtu && ip.DontFragment)
        {
            // RFC 1191, before the tunnel rewrites it (ESP and GRE senders discover the path MTU too).
            return _icmp.FragmentationNeeded(slot, ref length, Side.Inside, ipSpan, ip.HeaderLength, _outsideMtu, ref ctx);
        }
        int hold = ip.Protocol is IpProtocol.Esp or IpProtocol.Ah ? _settings.Algs.Ipsec.EspTimeout : _settings.Timeouts.Udp; // GRE and others live as UDP does
        TunnelVerdict t = _portless.In2Out(ipSpan, PairedAddress(ip.Source, hold), ref ctx);
        return Finish(t, slot, ref length, ipSpan, ip.HeaderLength, nextHop, ref ctx);
    }

    /// <summary>An outside packet of a protocol without ports to natd's address: <see cref="PortlessProtocols.Out2In"/>.</summary>
    private Verdict OtherOut2In(Span<byte> slot, ref int length, Span<byte> ipSpan, int ihl, ref PacketContext ctx)
    {
        if (ipSpan.Length > _insideMtu && new Ipv4Header(ipSpan).DontFragment)
        {
            return _icmp.FragmentationNeeded(slot, ref length, Side.Outside, ipSpan, ihl, _insideMtu, ref ctx);
        }
        TunnelVerdict t = _portless.Out2In(ipSpan, ihl, _addresses.PoolIndexOf(new Ipv4Header(ipSpan).Destination) >= 0, ref ctx);
        return Finish(t, slot, ref length, ipSpan, ihl, 0, ref ctx);
    }

    /// <summary>
    /// Turns what a tunnel or port-less component did into the frame's verdict: sends it (inside to
    /// the next hop of its new destination), answers ICMP, or reports the drop the component counted.
    /// </summary>
    private Verdict Finish(TunnelVerdict t, Span<byte> slot, ref int length, Span<byte> ipSpan, int ihl, uint nextHopOutside, ref PacketContext ctx)
    {
        switch (t)
        {
            case TunnelVerdict.ToOutside:
                return _neighbours.SendTo(Side.Outside, slot[..length], nextHopOutside, ref ctx);
            case TunnelVerdict.ToInside:
                return _neighbours.SendTo(Side.Inside, slot[..length], _addresses.NextHopInside(new Ipv4Header(ipSpan).Destination), ref ctx);
            case TunnelVerdict.TimeExceeded:
                return _icmp.TimeExceeded(slot, ref length, Side.Outside, ipSpan, ihl, ref ctx);
            case TunnelVerdict.Reject:
                return _icmp.IcmpReply(slot, ref length, Side.Inside, ipSpan, ihl, Icmp.DestinationUnreachable, 13, DropReason.RuleReject, ref ctx);
            default:
                return Verdict.Drop; // recorded and counted by the component
        }
    }
}
