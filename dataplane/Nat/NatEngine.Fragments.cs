using Natd.Dataplane.Counters;
using Natd.Dataplane.Io;
using Natd.Dataplane.Packets;

namespace Natd.Dataplane.Nat;

// Fragments (RFC 4787 REQ-14) by virtual reassembly (docs/architecture.md, "Fragments"): the first
// fragment takes the normal path on its ports; every other fragment of its datagram gets the same
// address rewrite, in the IP header only, and is forwarded as it is. The transport checksum lives
// in the first fragment and covers the whole datagram, so the first fragment's incremental update
// keeps it right and later fragments need no transport change.
public sealed partial class NatEngine
{
    private FragmentTable _fragments = null!;
    private IFrameSink? _sink;

    /// <summary>The shard's virtual reassembly state (read by tests and the read view).</summary>
    public FragmentTable Fragments => _fragments;

    private void CreateFragments(NatSettings settings) => _fragments = new FragmentTable(settings.Fragments, Counters);

    /// <summary>An in2out fragment of a TCP, UDP or ICMP datagram, after the ingress checks.</summary>
    private Verdict FragmentIn2Out(Span<byte> slot, ref int length, Span<byte> ipSpan, in ParsedFrame p, FrameFlags flags, ref PacketContext ctx)
    {
        int d = _fragments.Track(p, _now, out DropReason why);
        if (d < 0)
        {
            return ctx.Drop(why);
        }
        Verdict v;
        if (p.IsLaterFragment)
        {
            v = LaterFragment(slot, ref length, ipSpan, p, d, flags, ref ctx);
        }
        else if (p.Protocol == IpProtocol.Icmp && p.IcmpType != Icmp.EchoRequest)
        {
            _fragments.SetDropped(d);
            v = ctx.Drop(DropReason.Fragment); // only echo is followed in fragments
        }
        else
        {
            v = In2Out(slot, ref length, ipSpan, p, flags, hairpin: false, ref ctx);
            // Translated means it left (or waits for ARP, or visits its ALG) toward the outside; a
            // reject's ICMP answer goes back inside instead. The address is read off the rewritten
            // header, whichever opener translated it (a session, ISAKMP by cookies, an accept rule).
            bool translated = v is Verdict.ToOutside or Verdict.Consumed or Verdict.ToHelper;
            FirstDone(d, translated, translated ? Checksum.ReadRaw32(ipSpan, 12) : 0, Side.Inside, ref ctx);
        }
        Settle(d);
        return v;
    }

    /// <summary>An out2in fragment to natd's own address, after the ingress checks.</summary>
    private Verdict FragmentOut2In(Span<byte> slot, ref int length, Span<byte> ipSpan, in ParsedFrame p, FrameFlags flags, ref PacketContext ctx)
    {
        int d = _fragments.Track(p, _now, out DropReason why);
        if (d < 0)
        {
            return ctx.Drop(why);
        }
        Verdict v;
        if (p.IsLaterFragment)
        {
            v = LaterFragment(slot, ref length, ipSpan, p, d, flags, ref ctx);
        }
        else
        {
            // Every fragment of the datagram met here (ShardMap.OwnerOfDatagram); the first one's
            // ports name the flow's owner. A fragment that owner already received from us is its own.
            int owner = (flags & FrameFlags.FragmentRouted) != 0 ? -1 : _shardMap.OwnerOfFlow(p, slot[..length]);
            if (p.Protocol == IpProtocol.Icmp && p.IcmpType != Icmp.EchoReply)
            {
                _fragments.SetDropped(d);
                v = ctx.Drop(DropReason.Fragment); // a ping of natd itself is not answered in fragments
            }
            else if (owner >= 0 && owner != _options.Shard)
            {
                _fragments.SetRouted(d, owner);
                Counters[ShardCounter.FragmentsRouted]++;
                ReleaseHeld(d, Side.Outside, ref ctx);
                ctx.Shard = owner;
                v = Verdict.ToShard;
            }
            else
            {
                v = Out2In(slot, ref length, ipSpan, p, flags, transit: false, hairpin: false, ref ctx);
                bool translated = v is Verdict.ToInside or Verdict.Consumed or Verdict.ToHelper; // not a time exceeded back out
                FirstDone(d, translated, translated ? Checksum.ReadRaw32(ipSpan, 16) : 0, Side.Outside, ref ctx);
            }
        }
        Settle(d);
        return v;
    }

    /// <summary>Records the first fragment's outcome and releases (or drops) the fragments that waited for it.</summary>
    private void FirstDone(int d, bool translated, uint newAddress, Side ingress, ref PacketContext ctx)
    {
        if (!translated)
        {
            _fragments.SetDropped(d);
            return;
        }
        _fragments.SetTranslated(d, newAddress);
        Counters[ShardCounter.FragmentsTranslated]++;
        ReleaseHeld(d, ingress, ref ctx);
    }

    /// <summary>A datagram whose every byte passed is forgotten at once; the others wait for the timeout.</summary>
    private void Settle(int d)
    {
        if (_fragments.IsComplete(d))
        {
            _fragments.Remove(d);
        }
    }

    /// <summary>
    /// A fragment after the first (no transport header): the datagram's rewrite, its routing, or a
    /// place in the held pool until the first fragment comes.
    /// </summary>
    private Verdict LaterFragment(Span<byte> slot, ref int length, Span<byte> ipSpan, in ParsedFrame p, int d, FrameFlags flags, ref PacketContext ctx)
    {
        switch (_fragments.StateOf(d))
        {
            case FragmentState.Translated:
                return RewriteLater(slot, ref length, ipSpan, p, _fragments.NewAddressOf(d), ref ctx);
            case FragmentState.Routed:
                Counters[ShardCounter.FragmentsRouted]++;
                ctx.Shard = _fragments.ShardOf(d);
                return Verdict.ToShard;
            case FragmentState.Pending:
                if (!_fragments.Hold(d, slot[..length], flags, ctx.HoldTag))
                {
                    _fragments.SetDropped(d); // it could never be completed
                    return ctx.Drop(DropReason.FragmentHoldFull);
                }
                Counters[ShardCounter.FragmentsHeld]++;
                return Verdict.Consumed;
            default:
                return ctx.Drop(DropReason.FragmentOfDroppedDatagram);
        }
    }

    /// <summary>
    /// Rewrites a later fragment's address, the IP header only (source in2out, destination out2in),
    /// with the IP checksum updated incrementally (RFC 1624), and sends it on.
    /// </summary>
    private Verdict RewriteLater(Span<byte> slot, ref int length, Span<byte> ipSpan, in ParsedFrame p, uint newAddress, ref PacketContext ctx)
    {
        var ip = new Ipv4Header(ipSpan);
        if (p.Ingress == Side.Inside)
        {
            uint nextHop = _addresses.NextHopOutside(p.Destination);
            if (nextHop == 0)
            {
                return ctx.Drop(DropReason.NoRoute);
            }
            ip.ChecksumRaw = Checksum.Update(ip.ChecksumRaw, p.Source, newAddress);
            ip.Source = newAddress;
            ip.DecrementTtl();
            Counters.PacketsIn2Out++;
            Counters.BytesIn2Out += ipSpan.Length;
            Counters[ShardCounter.FragmentsTranslated]++;
            return _neighbours.SendTo(Side.Outside, slot[..length], nextHop, ref ctx);
        }
        if (p.Ttl <= 1)
        {
            return _icmp.TimeExceeded(slot, ref length, Side.Outside, ipSpan, p.Ihl, ref ctx);
        }
        ip.ChecksumRaw = Checksum.Update(ip.ChecksumRaw, p.Destination, newAddress);
        ip.Destination = newAddress;
        ip.DecrementTtl();
        Counters.PacketsOut2In++;
        Counters.BytesOut2In += ipSpan.Length;
        Counters[ShardCounter.FragmentsTranslated]++;
        return _neighbours.SendTo(Side.Inside, slot[..length], _addresses.NextHopInside(newAddress), ref ctx);
    }

    /// <summary>
    /// Sends the fragments held for datagram <paramref name="d"/>, in arrival order, the way its
    /// first fragment went: rewritten, or handed to the owning shard (slow path: once per datagram).
    /// </summary>
    private void ReleaseHeld(int d, Side ingress, ref PacketContext ctx)
    {
        for (int h = _fragments.TakeHeld(d); h >= 0; h = _fragments.TakeHeld(d))
        {
            Span<byte> slot = _fragments.HeldFrame(h);
            int length = _fragments.HeldLength(h);
            FrameFlags flags = _fragments.HeldFlags(h);
            var hctx = new PacketContext(Counters, ctx.NowMs, _fragments.HeldTag(h));
            FrameParser.Parse(slot[..length], ingress, Table.HashSeed, out ParsedFrame p);
            Counters[ShardCounter.FragmentsReleased]++;
            Verdict v = p.IsIpv4 ? LaterFragment(slot, ref length, slot[EthernetHeader.Length..(EthernetHeader.Length + p.TotalLength)], p, d, flags, ref hctx)
                : hctx.Drop(p.Drop);
            bool sent = v switch
            {
                Verdict.ToInside => _sink?.Send(Side.Inside, slot[..length]) ?? false,
                Verdict.ToOutside => _sink?.Send(Side.Outside, slot[..length]) ?? false,
                Verdict.ToShard => _sink?.HandOff(hctx.Shard, ingress, slot[..length], flags | FrameFlags.FragmentRouted) ?? false,
                _ => true, // dropped (counted) or waiting for ARP (copied there)
            };
            if (!sent && v != Verdict.ToShard)
            {
                hctx.Drop(DropReason.TxFull);
                _sink?.Discard(ingress, slot[..length], DropReason.TxFull, hctx.HoldTag);
            }
            else if (sent && v is Verdict.ToInside or Verdict.ToOutside or Verdict.ToShard)
            {
                _sink?.Released(ingress, hctx.HoldTag);
            }
            _fragments.FreeHeld(h);
        }
    }
}
