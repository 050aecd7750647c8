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
    private Verdict Hairpin(Span<byte> slot, ref int length, Span<byte> ipSpan, int ihl, Io.FrameFlags flags)
    {
        Verdict v = In2Out(slot, ref length, ipSpan, ihl, flags, hairpin: true);
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
        if (_shardMap.OwnerOfArrival(ip.Protocol, ip.Destination, Checksum.ReadRaw16(ipSpan[ihl..], 2)) != _options.Shard)
        {
            return Verdict.Loopback;
        }
        return HairpinArrival(slot, ref length, ipSpan, ihl);
    }

    /// <summary>
    /// Finishes a hairpinned TCP or UDP frame another shard masqueraded and handed over after it
    /// answered <see cref="Verdict.Loopback"/>: translates it as an outside arrival to natd's
    /// external endpoint (RFC 4787 REQ-9) and addresses it to the inside host. The frame is the one
    /// that shard produced (IPv4, checksums valid, source natd's own address); one that is not is
    /// dropped as <see cref="DropReason.Truncated"/> or <see cref="DropReason.BadIhl"/>, never thrown on.
    /// </summary>
    /// <param name="slot">The frame's buffer; the frame is its first <paramref name="length"/> bytes.</param>
    /// <param name="length">Frame length in bytes; updated to the length to transmit.</param>
    /// <param name="nowMs">Current time in milliseconds, as for <see cref="Process"/>.</param>
    /// <returns><see cref="Verdict.ToInside"/>, <see cref="Verdict.Consumed"/> (held for ARP) or <see cref="Verdict.Drop"/>.</returns>
    public Verdict ProcessHairpinned(Span<byte> slot, ref int length, long nowMs)
    {
        _now = nowMs;
        Table.NowMs = nowMs;
        if ((uint)length > (uint)slot.Length || length < EthernetHeader.Length + Ipv4Header.MinLength)
        {
            return Drop(DropReason.Truncated);
        }
        Span<byte> ipSpan = slot[EthernetHeader.Length..length];
        var ip = new Ipv4Header(ipSpan);
        int ihl = ip.HeaderLength;
        if (ihl < Ipv4Header.MinLength || ihl > ipSpan.Length)
        {
            return Drop(DropReason.BadIhl);
        }
        if (ip.Protocol is not (IpProtocol.Tcp or IpProtocol.Udp) || ipSpan.Length < ihl + Udp.Length)
        {
            return Drop(DropReason.Truncated);
        }
        return HairpinArrival(slot, ref length, ipSpan, ihl);
    }

    /// <summary>The second half of a hairpin, on the shard owning the destination: out2in, addressed to the inside host.</summary>
    private Verdict HairpinArrival(Span<byte> slot, ref int length, Span<byte> ipSpan, int ihl)
        => Out2In(slot, ref length, ipSpan, ihl, Io.FrameFlags.None, transit: false, hairpin: true);

    /// <summary>
    /// An inside packet of a protocol without ports (GRE, ESP, ...), routed here and translated by
    /// <see cref="PortlessProtocols.In2Out"/> (PPTP GRE, protocol forward, IPsec, rules).
    /// </summary>
    private Verdict OtherIn2Out(Span<byte> slot, ref int length, Span<byte> ipSpan)
    {
        var ip = new Ipv4Header(ipSpan);
        uint nextHop = _addresses.NextHopOutside(ip.Destination);
        if (nextHop == 0)
        {
            return Drop(DropReason.NoRoute);
        }
        var ctx = new PacketContext(Counters, _now, HoldTag);
        TunnelVerdict t = _portless.In2Out(ipSpan, _addresses.Pool[_addresses.PoolIndexFor(ip.Source)], ref ctx);
        return Finish(t, slot, ref length, ipSpan, ip.HeaderLength, nextHop, ctx);
    }

    /// <summary>An outside packet of a protocol without ports to natd's address: <see cref="PortlessProtocols.Out2In"/>.</summary>
    private Verdict OtherOut2In(Span<byte> slot, ref int length, Span<byte> ipSpan, int ihl)
    {
        var ctx = new PacketContext(Counters, _now, HoldTag);
        TunnelVerdict t = _portless.Out2In(ipSpan, ihl, _addresses.PoolIndexOf(new Ipv4Header(ipSpan).Destination) >= 0, ref ctx);
        return Finish(t, slot, ref length, ipSpan, ihl, 0, ctx);
    }

    /// <summary>
    /// Turns what a tunnel or port-less component did into the frame's verdict: sends it (inside to
    /// the next hop of its new destination), answers ICMP, or reports the drop the component counted.
    /// </summary>
    private Verdict Finish(TunnelVerdict t, Span<byte> slot, ref int length, Span<byte> ipSpan, int ihl, uint nextHopOutside, in PacketContext ctx)
    {
        switch (t)
        {
            case TunnelVerdict.ToOutside:
                return SendTo(Side.Outside, slot[..length], nextHopOutside);
            case TunnelVerdict.ToInside:
                return SendTo(Side.Inside, slot[..length], _addresses.NextHopInside(new Ipv4Header(ipSpan).Destination));
            case TunnelVerdict.TimeExceeded:
                return TimeExceeded(slot, ref length, Side.Outside, ipSpan, ihl);
            case TunnelVerdict.Reject:
                return IcmpReply(slot, ref length, Side.Inside, ipSpan, ihl, Icmp.DestinationUnreachable, 13, DropReason.RuleReject);
            default:
                return Dropped(ctx);
        }
    }
}
