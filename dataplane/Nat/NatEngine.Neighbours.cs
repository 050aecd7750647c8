using System.Runtime.CompilerServices;
using Natd.Dataplane.Packets;

namespace Natd.Dataplane.Nat;

public sealed partial class NatEngine
{
    private const int HoldSlots = 64;
    private const int HoldMs = 1000;
    private const int ArpRetryMs = 1000;

    /// <summary>A confirmed neighbour is reachable this long, then stale (Linux base_reachable_time, 30 s).</summary>
    internal const long ReachableMs = 30_000;

    /// <summary>A neighbour neither used nor confirmed this long is removed (Linux gc_stale_time, 60 s).</summary>
    internal const long StaleGcMs = 60_000;

    /// <summary>A pending resolution with no request sent and no frame held for this long has failed.</summary>
    internal const long PendingMs = HoldMs > ArpRetryMs ? HoldMs : ArpRetryMs;

    /// <summary>
    /// How stale an entry's place on the age list may get before a use moves it: a list move per
    /// packet would cost the fast path, once a second per neighbour does not.
    /// </summary>
    private const long TouchMs = 1000;

    /// <summary>Entries a sweep looks at per table and slice, so a sweep never stalls forwarding.</summary>
    private const int NeighbourSweepSlice = 256;

    // Static neighbours (configuration) never age and are never evicted; learned ones live in
    // fixed-size tables, as do next hops being resolved (Linux's INCOMPLETE entries).
    private Dictionary<uint, MacAddress> _insideStatic = [];
    private Dictionary<uint, MacAddress> _outsideStatic = [];
    private NeighbourTable _insideNeighbours = null!;
    private NeighbourTable _outsideNeighbours = null!;
    private NeighbourTable _insidePending = null!;
    private NeighbourTable _outsidePending = null!;
    private bool _neighbourClock;
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

    /// <summary>Learned neighbours one side's table holds at most (<see cref="NatSettings.MaxNeighbours"/>).</summary>
    public int NeighbourCapacity => _insideNeighbours.Capacity;

    /// <summary>Learned neighbours on <paramref name="side"/> (static ones not included).</summary>
    public int LearnedNeighbourCount(Side side) => Learned(side).Count;

    /// <summary>Next hops on <paramref name="side"/> being resolved by ARP.</summary>
    public int PendingNeighbourCount(Side side) => Pending(side).Count;

    private void CreateNeighbourTables(NatSettings settings)
    {
        int cap = Math.Max(1, settings.MaxNeighbours);
        _insideNeighbours = new NeighbourTable(cap);
        _outsideNeighbours = new NeighbourTable(cap);
        _insidePending = new NeighbourTable(cap);
        _outsidePending = new NeighbourTable(cap);
        ApplyStaticNeighbours(settings);
    }

    private void ApplyStaticNeighbours(NatSettings settings)
    {
        _insideStatic = StaticOf(settings.Inside.Neighbours, _insideNeighbours);
        _outsideStatic = StaticOf(settings.Outside.Neighbours, _outsideNeighbours);

        static Dictionary<uint, MacAddress> StaticOf(IReadOnlyList<KeyValuePair<uint, MacAddress>> list, NeighbourTable learned)
        {
            var d = new Dictionary<uint, MacAddress>(list.Count);
            foreach (var kv in list)
            {
                d[kv.Key] = kv.Value;
                int i = learned.Find(kv.Key);
                if (i >= 0)
                {
                    learned.Remove(i); // the static entry wins; its learned copy would only take room
                }
            }
            return d;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private NeighbourTable Learned(Side side) => side == Side.Inside ? _insideNeighbours : _outsideNeighbours;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private NeighbourTable Pending(Side side) => side == Side.Inside ? _insidePending : _outsidePending;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private Dictionary<uint, MacAddress> Static(Side side) => side == Side.Inside ? _insideStatic : _outsideStatic;

    /// <summary>
    /// Entries learned before the engine saw its first time (a restored snapshot, an ARP another
    /// shard handed over, tests) carry time 0; they count from the engine's first time instead.
    /// Every real clock (monotonic, capture time) is past 0.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void StartNeighbourClock(long nowMs)
    {
        if (!_neighbourClock)
        {
            _neighbourClock = true;
            _insideNeighbours.Restamp(nowMs);
            _outsideNeighbours.Restamp(nowMs);
        }
    }

    /// <summary>Neighbours known on a side (address network order, MAC): static ones, then learned ones oldest first. Allocates: control path only.</summary>
    public IReadOnlyList<KeyValuePair<uint, MacAddress>> Neighbours(Side side)
    {
        var list = new List<KeyValuePair<uint, MacAddress>>(Static(side));
        Learned(side).CopyTo(list);
        return list;
    }

    /// <summary>
    /// Records a neighbour (from ARP, a restored snapshot or traffic in replay) as confirmed now, and
    /// releases frames held for it. A static neighbour keeps its configured MAC. A full table
    /// evicts its least recently used entry (counted in <see cref="NatCounters.NeighboursEvicted"/>).
    /// </summary>
    public void Learn(Side side, uint address, MacAddress mac) => Learn(side, address, mac, _now);

    /// <inheritdoc cref="Learn(Side, uint, MacAddress)"/>
    /// <param name="side">Side the neighbour is on.</param>
    /// <param name="address">Its IPv4 address, network order.</param>
    /// <param name="mac">Its MAC; multicast, broadcast and zero are ignored.</param>
    /// <param name="nowMs">The engine's time in milliseconds.</param>
    public void Learn(Side side, uint address, MacAddress mac, long nowMs)
    {
        if (mac.IsZero || mac == MacAddress.Broadcast || (mac.Value & 0x0100_0000_0000UL) != 0)
        {
            return; // never learn a multicast or empty MAC
        }
        var statics = Static(side);
        if (statics.Count > 0 && statics.ContainsKey(address))
        {
            return; // like a permanent kernel entry, ARP does not override configuration
        }
        if (nowMs != 0)
        {
            StartNeighbourClock(nowMs);
        }
        NeighbourTable table = Learned(side);
        int i = table.Find(address);
        bool changed;
        if (i >= 0)
        {
            ref NeighbourTable.Entry e = ref table.At(i);
            changed = e.Mac != mac;
            e.Mac = mac;
            e.ConfirmedMs = nowMs;
            if (nowMs - e.TouchedMs >= TouchMs || nowMs < e.TouchedMs)
            {
                table.Touch(i, nowMs);
            }
        }
        else
        {
            i = table.Add(address, nowMs, out uint? evicted);
            table.At(i).Mac = mac;
            if (evicted.HasValue)
            {
                Counters.NeighboursEvicted++;
            }
            changed = true;
        }
        NeighbourTable pending = Pending(side);
        if (pending.Count > 0)
        {
            int p = pending.Find(address);
            if (p >= 0)
            {
                pending.Remove(p); // resolved
            }
        }
        if (changed && _heldCount > 0)
        {
            ReleaseHeld(side, address, mac);
        }
    }

    /// <summary>Sets Ethernet addresses for the egress side, or holds the frame and asks ARP when the next hop is unknown.</summary>
    private Verdict SendTo(Side side, Span<byte> frame, uint nextHop)
    {
        var eth = new EthernetHeader(frame);
        eth.Source = side == Side.Inside ? InsideMac : OutsideMac;
        var statics = Static(side);
        if (statics.Count > 0 && statics.TryGetValue(nextHop, out MacAddress fixedMac))
        {
            eth.Destination = fixedMac;
            return side == Side.Inside ? Verdict.ToInside : Verdict.ToOutside;
        }
        long now = _now;
        StartNeighbourClock(now);
        NeighbourTable table = Learned(side);
        int i = table.Find(nextHop);
        if (i >= 0)
        {
            ref NeighbourTable.Entry e = ref table.At(i);
            // A replayed capture answers no ARP, and its own frames are what confirms a neighbour:
            // learned-from-traffic entries do not age (the table's capacity still bounds them).
            bool fromTraffic = _options.LearnFromTraffic;
            if (fromTraffic || now - Math.Max(e.UsedMs, e.ConfirmedMs) < StaleGcMs)
            {
                e.UsedMs = now;
                if (now - e.TouchedMs >= TouchMs || now < e.TouchedMs)
                {
                    table.Touch(i, now);
                }
                if (!fromTraffic && now - e.ConfirmedMs >= ReachableMs && (now - e.ProbedMs >= ArpRetryMs || now < e.ProbedMs))
                {
                    // Stale: still used, and re-confirmed with a unicast request (the kernel's probe).
                    e.ProbedMs = now;
                    SendArpRequest(side, nextHop, e.Mac);
                }
                eth.Destination = e.Mac;
                return side == Side.Inside ? Verdict.ToInside : Verdict.ToOutside;
            }
            // Unused past gc_stale_time: gone, whatever the sweep's pace; resolve it again.
            table.Remove(i);
            Counters.NeighboursExpired++;
        }
        return Hold(side, frame, nextHop);
    }

    private Verdict Hold(Side side, ReadOnlySpan<byte> frame, uint nextHop)
    {
        ExpireHeld(_now);
        int pending = AskArp(side, nextHop);
        int free = -1;
        for (int i = 0; i < HoldSlots; i++)
        {
            if (!_held[i].Used)
            {
                free = i;
                break;
            }
        }
        if (free < 0 || frame.Length > Io.FrameBatch.SlotSize)
        {
            return Drop(DropReason.NeighbourUnresolved);
        }
        frame.CopyTo(_holdBuffer.AsSpan(free * Io.FrameBatch.SlotSize));
        _held[free] = new HeldFrame { Used = true, Side = side, NextHop = nextHop, Length = frame.Length, SinceMs = _now, Tag = _holdTag };
        _heldCount++;
        Counters.FramesHeld++;
        NeighbourTable table = Pending(side);
        table.At(pending).UsedMs = _now;
        table.Touch(pending, _now);
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
                _sink?.Released(side, h.Tag);
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
                DiscardHeldAt(i);
            }
        }
    }

    /// <summary>Drops the frames held for <paramref name="address"/> on <paramref name="side"/> (its resolution failed or was evicted).</summary>
    private void DiscardHeldFor(Side side, uint address)
    {
        if (_heldCount == 0)
        {
            return;
        }
        for (int i = 0; i < HoldSlots; i++)
        {
            ref HeldFrame h = ref _held[i];
            if (h.Used && h.Side == side && h.NextHop == address)
            {
                DiscardHeldAt(i);
            }
        }
    }

    private void DiscardHeldAt(int i)
    {
        ref HeldFrame h = ref _held[i];
        h.Used = false;
        _heldCount--;
        Counters.Drops[(int)DropReason.NeighbourUnresolved]++;
        _sink?.Discard(h.Side, _holdBuffer.AsSpan(i * Io.FrameBatch.SlotSize, h.Length), DropReason.NeighbourUnresolved, h.Tag);
    }

    /// <summary>
    /// Starts or continues resolving <paramref name="target"/>: broadcasts an ARP request, at most
    /// once a second per address. A full pending table gives up its oldest resolution (its held
    /// frames are dropped as <see cref="DropReason.NeighbourUnresolved"/>).
    /// </summary>
    /// <returns>The pending entry's index.</returns>
    private int AskArp(Side side, uint target)
    {
        NeighbourTable pending = Pending(side);
        long now = _now;
        int i = pending.Find(target);
        if (i >= 0)
        {
            ref NeighbourTable.Entry e = ref pending.At(i);
            if (now - e.ProbedMs < ArpRetryMs && now >= e.ProbedMs)
            {
                return i;
            }
            e.ProbedMs = now;
            pending.Touch(i, now);
        }
        else
        {
            i = pending.Add(target, now, out uint? evicted);
            pending.At(i).ProbedMs = now;
            if (evicted.HasValue)
            {
                Counters.PendingNeighboursEvicted++;
                DiscardHeldFor(side, evicted.Value);
            }
        }
        SendArpRequest(side, target, MacAddress.Broadcast);
        return i;
    }

    /// <summary>Sends an ARP request for <paramref name="target"/> to <paramref name="to"/> (broadcast, or the cached MAC when re-confirming).</summary>
    private void SendArpRequest(Side side, uint target, MacAddress to)
    {
        if (_sink is null)
        {
            return;
        }
        Span<byte> f = _arpScratch;
        var eth = new EthernetHeader(f);
        MacAddress me = side == Side.Inside ? InsideMac : OutsideMac;
        eth.Destination = to;
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
    /// Ages neighbours in a bounded slice: learned entries neither used nor confirmed for
    /// <see cref="StaleGcMs"/> are removed, pending resolutions with no request or held frame for
    /// <see cref="PendingMs"/> fail (their held frames dropped). Looks only at the old end of each
    /// table's age list, so the cost follows what expires. With <see cref="EngineOptions.LearnFromTraffic"/>
    /// (replay) learned entries do not age: nothing in a capture answers ARP.
    /// </summary>
    private void SweepNeighbours(long nowMs)
    {
        StartNeighbourClock(nowMs);
        if (!_options.LearnFromTraffic)
        {
            SweepLearned(_insideNeighbours, nowMs);
            SweepLearned(_outsideNeighbours, nowMs);
        }
        SweepPending(_insidePending, Side.Inside, nowMs);
        SweepPending(_outsidePending, Side.Outside, nowMs);
    }

    private void SweepLearned(NeighbourTable table, long nowMs)
    {
        for (int n = 0; n < NeighbourSweepSlice; n++)
        {
            int i = table.Oldest;
            if (i < 0)
            {
                return;
            }
            ref NeighbourTable.Entry e = ref table.At(i);
            if (nowMs - e.TouchedMs < StaleGcMs)
            {
                return; // the rest were touched later
            }
            long last = Math.Max(e.UsedMs, e.ConfirmedMs);
            if (nowMs - last >= StaleGcMs)
            {
                table.Remove(i);
                Counters.NeighboursExpired++;
            }
            else
            {
                table.Touch(i, last); // used since it was last moved: back in line by its real age
            }
        }
    }

    private void SweepPending(NeighbourTable table, Side side, long nowMs)
    {
        for (int n = 0; n < NeighbourSweepSlice; n++)
        {
            int i = table.Oldest;
            if (i < 0 || nowMs - table.At(i).TouchedMs < PendingMs)
            {
                return;
            }
            uint address = table.At(i).Address;
            table.Remove(i);
            Counters.PendingNeighboursExpired++;
            DiscardHeldFor(side, address);
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
