using Natd.Dataplane.Packets;

namespace Natd.Dataplane.Nat;

public sealed partial class NatEngine
{
    private const int HoldSlots = 64;
    private const int HoldMs = 1000;
    private const int ArpRetryMs = 1000;
    private readonly Dictionary<uint, MacAddress> _insideNeighbours = new(64);
    private readonly Dictionary<uint, MacAddress> _outsideNeighbours = new(64);
    private readonly Dictionary<uint, long> _arpAsked = new(64);
    private readonly byte[] _holdBuffer = new byte[HoldSlots * Io.FrameBatch.SlotSize];
    private readonly HeldFrame[] _held = new HeldFrame[HoldSlots];
    private readonly byte[] _arpScratch = new byte[EthernetHeader.Length + ArpPacket.Length];
    private int _heldCount;

    private struct HeldFrame
    {
        public bool Used;
        public Side Side;
        public uint NextHop;
        public int Length;
        public long SinceMs;
        public long Tag;
    }

    /// <summary>Neighbours known on a side (address network order, MAC). Allocates: control path only.</summary>
    public IReadOnlyList<KeyValuePair<uint, MacAddress>> Neighbours(Side side)
        => [.. (side == Side.Inside ? _insideNeighbours : _outsideNeighbours)];

    /// <summary>Records a neighbour (from ARP, configuration or a replay pre-scan) and releases frames held for it.</summary>
    public void Learn(Side side, uint address, MacAddress mac)
    {
        if (mac.IsZero || mac == MacAddress.Broadcast || (mac.Value & 0x0100_0000_0000UL) != 0)
        {
            return; // never learn a multicast or empty MAC
        }
        var table = side == Side.Inside ? _insideNeighbours : _outsideNeighbours;
        ref MacAddress slot = ref System.Runtime.InteropServices.CollectionsMarshal.GetValueRefOrAddDefault(table, address, out bool existed);
        bool changed = !existed || slot != mac;
        slot = mac;
        if (changed && _heldCount > 0)
        {
            ReleaseHeld(side, address, mac);
        }
    }

    /// <summary>Sets Ethernet addresses for the egress side, or holds the frame and asks ARP when the next hop is unknown.</summary>
    private Verdict SendTo(Side side, Span<byte> frame, uint nextHop)
    {
        var table = side == Side.Inside ? _insideNeighbours : _outsideNeighbours;
        var eth = new EthernetHeader(frame);
        eth.Source = side == Side.Inside ? InsideMac : OutsideMac;
        if (table.TryGetValue(nextHop, out MacAddress mac))
        {
            eth.Destination = mac;
            return side == Side.Inside ? Verdict.ToInside : Verdict.ToOutside;
        }
        return Hold(side, frame, nextHop);
    }

    private Verdict Hold(Side side, ReadOnlySpan<byte> frame, uint nextHop)
    {
        ExpireHeld(_now);
        int free = -1;
        for (int i = 0; i < HoldSlots; i++)
        {
            if (!_held[i].Used)
            {
                free = i;
                break;
            }
        }
        AskArp(side, nextHop);
        if (free < 0 || frame.Length > Io.FrameBatch.SlotSize)
        {
            return Drop(DropReason.NeighbourUnresolved);
        }
        frame.CopyTo(_holdBuffer.AsSpan(free * Io.FrameBatch.SlotSize));
        _held[free] = new HeldFrame { Used = true, Side = side, NextHop = nextHop, Length = frame.Length, SinceMs = _now, Tag = HoldTag };
        _heldCount++;
        Counters.FramesHeld++;
        return Verdict.Consumed;
    }

    private void ReleaseHeld(Side side, uint address, MacAddress mac)
    {
        for (int i = 0; i < HoldSlots; i++)
        {
            ref HeldFrame h = ref _held[i];
            if (h.Used && h.Side == side && h.NextHop == address)
            {
                Span<byte> f = _holdBuffer.AsSpan(i * Io.FrameBatch.SlotSize, h.Length);
                new EthernetHeader(f).Destination = mac;
                if (_sink is null || !_sink.Send(side, f))
                {
                    Counters.Drops[(int)DropReason.TxFull]++;
                }
                h.Used = false;
                _heldCount--;
            }
        }
    }

    /// <summary>Gives up every frame still waiting for ARP (end of a replay, shutdown): each is counted and handed to the sink's Discard.</summary>
    public void DiscardHeld() => ExpireHeld(long.MaxValue);

    /// <summary>Drops held frames older than the hold time (their next hop never answered).</summary>
    private void ExpireHeld(long nowMs)
    {
        if (_heldCount == 0)
        {
            return;
        }
        for (int i = 0; i < HoldSlots; i++)
        {
            ref HeldFrame h = ref _held[i];
            if (h.Used && (nowMs - h.SinceMs >= HoldMs || nowMs == long.MaxValue))
            {
                h.Used = false;
                _heldCount--;
                Counters.Drops[(int)DropReason.NeighbourUnresolved]++;
                _sink?.Discard(h.Side, _holdBuffer.AsSpan(i * Io.FrameBatch.SlotSize, h.Length), DropReason.NeighbourUnresolved, h.Tag);
            }
        }
    }

    /// <summary>Broadcasts an ARP request for <paramref name="target"/>, at most once a second per address.</summary>
    private void AskArp(Side side, uint target)
    {
        uint key = target ^ (side == Side.Inside ? 0u : 1u); // sides rarely share addresses; keep them apart anyway
        if (_arpAsked.TryGetValue(key, out long last) && _now - last < ArpRetryMs && _now >= last)
        {
            return;
        }
        _arpAsked[key] = _now;
        if (_sink is null)
        {
            return;
        }
        Span<byte> f = _arpScratch;
        var eth = new EthernetHeader(f);
        MacAddress me = side == Side.Inside ? InsideMac : OutsideMac;
        eth.Destination = MacAddress.Broadcast;
        eth.Source = me;
        eth.EtherType = EtherType.Arp;
        var arp = new ArpPacket(f[EthernetHeader.Length..]);
        arp.WriteFixed();
        arp.Operation = ArpPacket.OpRequest;
        arp.SenderMac = me;
        arp.SenderIp = side == Side.Inside ? _insideAddress : _outsideAddress;
        arp.TargetMac = MacAddress.Zero;
        arp.TargetIp = target;
        if (_sink.Send(side, f))
        {
            Counters.ArpRequestsSent++;
        }
    }

    /// <summary>
    /// Learns from an ARP frame another shard received and answered (same rules as
    /// <see cref="HandleArp"/>: only senders on the side's prefix that asked or answered natd).
    /// </summary>
    public void LearnFromArp(ReadOnlySpan<byte> frame, Side side)
    {
        if (frame.Length < EthernetHeader.Length + ArpPacket.Length)
        {
            return;
        }
        Span<byte> copy = stackalloc byte[ArpPacket.Length];
        frame.Slice(EthernetHeader.Length, ArpPacket.Length).CopyTo(copy);
        var arp = new ArpPacket(copy);
        if (!arp.IsEthernetIpv4)
        {
            return;
        }
        uint target = arp.TargetIp, sender = arp.SenderIp;
        Ipv4Prefix prefix = side == Side.Inside ? _insidePrefix : _outsidePrefix;
        bool forUs = side == Side.Inside ? target == _insideAddress : target == _outsideAddress || PoolIndexOf(target) >= 0;
        if (forUs && sender != 0 && prefix.Contains(sender))
        {
            Learn(side, sender, arp.SenderMac);
        }
    }

    /// <summary>
    /// ARP (RFC 826) for the addresses natd owns: requests for them are answered in place and teach
    /// the asker's MAC; replies teach the sender's MAC and release held frames. Only senders on the
    /// side's own prefix are learned, so a stray ARP cannot point an address elsewhere.
    /// </summary>
    private Verdict HandleArp(Span<byte> frame, ref int length, Side ingress)
    {
        if (frame.Length < EthernetHeader.Length + ArpPacket.Length)
        {
            return Drop(DropReason.BadArp);
        }
        var arp = new ArpPacket(frame[EthernetHeader.Length..]);
        if (!arp.IsEthernetIpv4)
        {
            return Drop(DropReason.BadArp);
        }
        Ipv4Prefix prefix = ingress == Side.Inside ? _insidePrefix : _outsidePrefix;
        uint sender = arp.SenderIp;
        uint target = arp.TargetIp;
        MacAddress senderMac = arp.SenderMac;
        bool forUs = ingress == Side.Inside ? target == _insideAddress : target == _outsideAddress || PoolIndexOf(target) >= 0;
        ushort op = arp.Operation;
        if (op == ArpPacket.OpRequest)
        {
            if (!forUs)
            {
                return Drop(DropReason.NotForUs);
            }
            if (sender != 0 && prefix.Contains(sender))
            {
                Learn(ingress, sender, senderMac);
            }
            MacAddress me = ingress == Side.Inside ? InsideMac : OutsideMac;
            arp.Operation = ArpPacket.OpReply;
            arp.TargetMac = senderMac;
            arp.TargetIp = sender;
            arp.SenderMac = me;
            arp.SenderIp = target;
            var eth = new EthernetHeader(frame);
            eth.Destination = senderMac;
            eth.Source = me;
            length = EthernetHeader.Length + ArpPacket.Length;
            Counters.ArpRepliesSent++;
            return ingress == Side.Inside ? Verdict.ToInside : Verdict.ToOutside;
        }
        if (op == ArpPacket.OpReply)
        {
            if (forUs && prefix.Contains(sender))
            {
                Learn(ingress, sender, senderMac);
                return Verdict.Consumed;
            }
            return Drop(DropReason.NotForUs);
        }
        return Drop(DropReason.BadArp);
    }
}
