using System.Runtime.CompilerServices;
using Natd.Dataplane.Packets;

namespace Natd.Dataplane.Nat;

/// <summary>
/// IPv4 neighbour resolution for both sides of one engine (RFC 826 ARP; ageing modelled on Linux's
/// neighbour table): owns the static neighbours (configuration, never aged), the learned and
/// pending tables per side (bounded by <see cref="NatSettings.MaxNeighbours"/>), the hold queue of
/// frames waiting for a next hop to resolve (<see cref="HoldSlots"/> frames of at most
/// <see cref="Io.FrameBatch.SlotSize"/> bytes, given up after <see cref="HoldMs"/>), and the
/// ARP requests it sends through the attached <see cref="IFrameSink"/>. Times are the engine's
/// milliseconds; addresses network order. Single writer (the engine's thread); the per-packet
/// path (<see cref="SendTo"/>) is one compare when the next hop is the side's last static one (a
/// gateway's usual case), else one hash probe, and never allocates.
/// </summary>
internal sealed class Neighbours
{
    /// <summary>Frames the hold queue keeps at most (all next hops, both sides).</summary>
    public const int HoldSlots = 64;

    /// <summary>How long a held frame waits for its next hop before it is dropped.</summary>
    public const int HoldMs = 1000;

    private const int ArpRetryMs = 1000;

    /// <summary>A confirmed neighbour is reachable this long, then stale (Linux base_reachable_time, 30 s).</summary>
    public const long ReachableMs = 30_000;

    /// <summary>A neighbour neither used nor confirmed this long is removed (Linux gc_stale_time, 60 s).</summary>
    public const long StaleGcMs = 60_000;

    /// <summary>A pending resolution with no request sent and no frame held for this long has failed.</summary>
    public const long PendingMs = HoldMs > ArpRetryMs ? HoldMs : ArpRetryMs;

    /// <summary>
    /// How stale an entry's place on the age list may get before a use moves it: a list move per
    /// packet would cost the fast path, once a second per neighbour does not.
    /// </summary>
    private const long TouchMs = 1000;

    /// <summary>Entries a sweep looks at per table and slice, so a sweep never stalls forwarding.</summary>
    private const int SweepSlice = 256;

    private readonly AddressPlan _addresses;
    private readonly NatCounters _counters;
    private readonly MacAddress _insideMac;
    private readonly MacAddress _outsideMac;
    private readonly bool _learnFromTraffic;
    private IFrameSink? _sink;
    private readonly EgressMtu _mtu;

    // Static neighbours (configuration) never age and are never evicted; learned ones live in
    // fixed-size tables, as do next hops being resolved (Linux's INCOMPLETE entries).
    private Dictionary<uint, MacAddress> _insideStatic = [];
    private Dictionary<uint, MacAddress> _outsideStatic = [];
    // The static neighbour each side last sent to: a gateway takes nearly every frame of a side,
    // and comparing one address beats hashing it into the dictionary per packet.
    private StaticHit _insideLastStatic;
    private StaticHit _outsideLastStatic;
    private readonly NeighbourTable _insideLearned;
    private readonly NeighbourTable _outsideLearned;
    private readonly NeighbourTable _insidePending;
    private readonly NeighbourTable _outsidePending;
    private bool _clockStarted;

    private readonly byte[] _holdBuffer = new byte[HoldSlots * Io.FrameBatch.SlotSize];
    private readonly HeldFrame[] _held = new HeldFrame[HoldSlots];
    private readonly byte[] _arpScratch = new byte[EthernetHeader.Length + ArpPacket.Length];
    private int _heldCount;
    private long _holdSeq;

    /// <summary>A static neighbour's address (network order; 0: none) and MAC.</summary>
    private struct StaticHit
    {
        public uint Address;
        public MacAddress Mac;
    }

    private struct HeldFrame
    {
        public bool Used;
        public Side Side;
        public uint NextHop;
        public int Length;
        public long SinceMs;
        public long Tag;
        /// <summary>Arrival order: slots are reused in any order, frames leave in the order they came.</summary>
        public long Seq;
    }

    /// <summary>Creates empty tables and applies <paramref name="settings"/>' static neighbours.</summary>
    /// <param name="settings">Configuration: <see cref="NatSettings.MaxNeighbours"/> (per table, at least 1) and each side's static neighbours.</param>
    /// <param name="addresses">The engine's address plan (own addresses, on-link prefixes, pool): which ARP is for natd and whom to learn.</param>
    /// <param name="insideMac">natd's MAC inside (source of frames sent inside).</param>
    /// <param name="outsideMac">natd's MAC outside.</param>
    /// <param name="counters">The shard's counters (ARP, hold and neighbour counters, drops).</param>
    /// <param name="learnFromTraffic">Replay: learned entries never age and are never probed (<see cref="EngineOptions.LearnFromTraffic"/>).</param>
    /// <param name="mtu">The egress MTUs: a larger frame is split (or dropped with DF) on its way out; null: those of <paramref name="settings"/> alone.</param>
    public Neighbours(NatSettings settings, AddressPlan addresses, MacAddress insideMac, MacAddress outsideMac, NatCounters counters, bool learnFromTraffic,
        EgressMtu? mtu = null)
    {
        _mtu = mtu ?? new EgressMtu(settings, 0, 0, counters);
        _addresses = addresses;
        _counters = counters;
        _insideMac = insideMac;
        _outsideMac = outsideMac;
        _learnFromTraffic = learnFromTraffic;
        int cap = Math.Max(1, settings.MaxNeighbours);
        _insideLearned = new NeighbourTable(cap);
        _outsideLearned = new NeighbourTable(cap);
        _insidePending = new NeighbourTable(cap);
        _outsidePending = new NeighbourTable(cap);
        Update(settings);
    }

    /// <summary>Sets where ARP requests and released frames go; without one, nothing is sent.</summary>
    public void Attach(IFrameSink sink) => _sink = sink;

    /// <summary>Learned neighbours one side's table holds at most.</summary>
    public int Capacity => _insideLearned.Capacity;

    /// <summary>Frames waiting in the hold queue.</summary>
    public int HeldCount => _heldCount;

    /// <summary>Learned neighbours on <paramref name="side"/> (static ones not included).</summary>
    public int LearnedCount(Side side) => Learned(side).Count;

    /// <summary>Next hops on <paramref name="side"/> being resolved.</summary>
    public int PendingCount(Side side) => Pending(side).Count;

    /// <summary>Applies a reload's static neighbours (a static entry replaces a learned one). The table size needs a restart.</summary>
    public void Update(NatSettings next)
    {
        _insideStatic = StaticOf(next.Inside.Neighbours, _insideLearned);
        _outsideStatic = StaticOf(next.Outside.Neighbours, _outsideLearned);
        _insideLastStatic = default;
        _outsideLastStatic = default;

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
    private NeighbourTable Learned(Side side) => side == Side.Inside ? _insideLearned : _outsideLearned;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private NeighbourTable Pending(Side side) => side == Side.Inside ? _insidePending : _outsidePending;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private Dictionary<uint, MacAddress> Static(Side side) => side == Side.Inside ? _insideStatic : _outsideStatic;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private MacAddress OwnMac(Side side) => side == Side.Inside ? _insideMac : _outsideMac;

    /// <summary>
    /// Entries learned before the engine saw its first time (a restored snapshot, an ARP another
    /// shard handed over, tests) carry time 0; they count from the engine's first time instead.
    /// Every real clock (monotonic, capture time) is past 0.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void StartClock(long nowMs)
    {
        if (!_clockStarted)
        {
            _clockStarted = true;
            _insideLearned.Restamp(nowMs);
            _outsideLearned.Restamp(nowMs);
        }
    }

    /// <summary>Neighbours known on a side (address, MAC): static ones, then learned ones oldest first. Allocates: control path only.</summary>
    public IReadOnlyList<KeyValuePair<uint, MacAddress>> List(Side side)
    {
        var list = new List<KeyValuePair<uint, MacAddress>>(Static(side));
        Learned(side).CopyTo(list);
        return list;
    }

    /// <summary>
    /// Records a neighbour as confirmed at <paramref name="nowMs"/> and releases the frames held for
    /// it, in the order they were held. A static neighbour keeps its configured MAC. A full table
    /// evicts its least recently used entry (<see cref="NatCounters.NeighboursEvicted"/>).
    /// </summary>
    /// <param name="side">Side the neighbour is on.</param>
    /// <param name="address">Its IPv4 address, network order.</param>
    /// <param name="mac">Its MAC; multicast, broadcast and zero are ignored.</param>
    /// <param name="nowMs">The engine's time in milliseconds (0: before the engine's clock started).</param>
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
            StartClock(nowMs);
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
                _counters.NeighboursEvicted++;
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

    /// <summary>
    /// Sets the Ethernet addresses of <paramref name="frame"/> for egress on <paramref name="side"/>
    /// towards <paramref name="nextHop"/>, or holds a copy and asks ARP when the next hop is unknown
    /// (a stale entry is used and re-confirmed with a unicast request, the kernel's probe). A frame
    /// larger than the side's egress MTU leaves as fragments, or is dropped with DF set
    /// (<see cref="SendOversize"/>).
    /// </summary>
    /// <returns><see cref="Verdict.ToInside"/>/<see cref="Verdict.ToOutside"/>; <see cref="Verdict.Consumed"/> when held or sent as fragments;
    /// <see cref="Verdict.Drop"/> (<see cref="DropReason.NeighbourUnresolved"/>) when the hold queue is full or the frame too long,
    /// (<see cref="DropReason.FragmentationNeeded"/>) when it is too large and may not be fragmented.</returns>
    public Verdict SendTo(Side side, Span<byte> frame, uint nextHop, ref PacketContext ctx)
    {
        if (!_mtu.Fits(side, frame.Length))
        {
            return SendOversize(side, frame, nextHop, ref ctx);
        }
        return Resolve(side, frame, nextHop, ref ctx); // inlined: one call per frame, as before the MTU
    }

    /// <summary>
    /// A frame larger than <paramref name="side"/>'s egress MTU (<see cref="EgressMtu"/>): with DF set
    /// it is dropped (<see cref="DropReason.FragmentationNeeded"/>; the engine answers the datagrams
    /// it can quote before translating them, these are the rest: an ALG's grown payload, a
    /// translated ICMP error); else its next hop is resolved as for any frame and it leaves as
    /// fragments through the sink (<see cref="Verdict.Consumed"/>), or waits for ARP whole and is
    /// split when released.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private Verdict SendOversize(Side side, Span<byte> frame, uint nextHop, ref PacketContext ctx)
    {
        if (frame.Length < EthernetHeader.Length + Ipv4Header.MinLength || new Ipv4Header(frame[EthernetHeader.Length..]).DontFragment)
        {
            return ctx.Drop(DropReason.FragmentationNeeded);
        }
        Verdict v = Resolve(side, frame, nextHop, ref ctx);
        if (v is not (Verdict.ToInside or Verdict.ToOutside))
        {
            return v; // held (split when released) or dropped
        }
        return _mtu.SendFragments(_sink, side, frame) ? Verdict.Consumed : ctx.Drop(DropReason.FragmentationNeeded);
    }

    /// <summary>Sends a frame released from the hold queue, split first when larger than the side's MTU.</summary>
    private bool Transmit(Side side, ReadOnlySpan<byte> frame)
        => _sink is not null && (_mtu.Fits(side, frame.Length) ? _sink.Send(side, frame) : _mtu.SendFragments(_sink, side, frame));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private Verdict Resolve(Side side, Span<byte> frame, uint nextHop, ref PacketContext ctx)
    {
        var eth = new EthernetHeader(frame);
        eth.Source = OwnMac(side);
        ref StaticHit last = ref side == Side.Inside ? ref _insideLastStatic : ref _outsideLastStatic;
        if (last.Address == nextHop && nextHop != 0)
        {
            eth.Destination = last.Mac;
            return side == Side.Inside ? Verdict.ToInside : Verdict.ToOutside;
        }
        var statics = Static(side);
        if (statics.Count > 0 && statics.TryGetValue(nextHop, out MacAddress fixedMac))
        {
            last.Address = nextHop;
            last.Mac = fixedMac;
            eth.Destination = fixedMac;
            return side == Side.Inside ? Verdict.ToInside : Verdict.ToOutside;
        }
        long now = ctx.NowMs;
        StartClock(now);
        NeighbourTable table = Learned(side);
        int i = table.Find(nextHop);
        if (i >= 0)
        {
            ref NeighbourTable.Entry e = ref table.At(i);
            // A replayed capture answers no ARP, and its own frames are what confirms a neighbour:
            // learned-from-traffic entries do not age (the table's capacity still bounds them).
            bool fromTraffic = _learnFromTraffic;
            if (fromTraffic || now - Math.Max(e.UsedMs, e.ConfirmedMs) < StaleGcMs)
            {
                e.UsedMs = now;
                if (now - e.TouchedMs >= TouchMs || now < e.TouchedMs)
                {
                    table.Touch(i, now);
                }
                if (!fromTraffic && now - e.ConfirmedMs >= ReachableMs && (now - e.ProbedMs >= ArpRetryMs || now < e.ProbedMs))
                {
                    e.ProbedMs = now;
                    SendArpRequest(side, nextHop, e.Mac);
                }
                eth.Destination = e.Mac;
                return side == Side.Inside ? Verdict.ToInside : Verdict.ToOutside;
            }
            // Unused past gc_stale_time: gone, whatever the sweep's pace; resolve it again.
            table.Remove(i);
            _counters.NeighboursExpired++;
        }
        return Hold(side, frame, nextHop, ref ctx);
    }

    private Verdict Hold(Side side, ReadOnlySpan<byte> frame, uint nextHop, ref PacketContext ctx)
    {
        long now = ctx.NowMs;
        ExpireHeld(now);
        int pending = AskArp(side, nextHop, now);
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
            return ctx.Drop(DropReason.NeighbourUnresolved);
        }
        frame.CopyTo(_holdBuffer.AsSpan(free * Io.FrameBatch.SlotSize));
        _held[free] = new HeldFrame { Used = true, Side = side, NextHop = nextHop, Length = frame.Length, SinceMs = now, Tag = ctx.HoldTag, Seq = _holdSeq++ };
        _heldCount++;
        _counters.FramesHeld++;
        NeighbourTable table = Pending(side);
        table.At(pending).UsedMs = now;
        table.Touch(pending, now);
        return Verdict.Consumed;
    }

    /// <summary>Sends the frames held for <paramref name="address"/>, oldest first (what the sender sent first arrives first).</summary>
    private void ReleaseHeld(Side side, uint address, MacAddress mac)
    {
        while (true)
        {
            int next = -1;
            for (int i = 0; i < HoldSlots; i++)
            {
                ref HeldFrame c = ref _held[i];
                if (c.Used && c.Side == side && c.NextHop == address && (next < 0 || c.Seq < _held[next].Seq))
                {
                    next = i;
                }
            }
            if (next < 0)
            {
                return;
            }
            ref HeldFrame h = ref _held[next];
            Span<byte> f = _holdBuffer.AsSpan(next * Io.FrameBatch.SlotSize, h.Length);
            new EthernetHeader(f).Destination = mac;
            if (!Transmit(side, f))
            {
                _counters.Drops[(int)DropReason.TxFull]++;
            }
            h.Used = false;
            _heldCount--;
            _sink?.Released(side, h.Tag);
        }
    }

    /// <summary>Gives up every frame still held (end of a replay, shutdown): each is counted and handed to the sink's Discard.</summary>
    public void DiscardHeld() => ExpireHeld(long.MaxValue);

    /// <summary>Drops held frames held for <see cref="HoldMs"/> or longer at <paramref name="nowMs"/> (their next hop never answered).</summary>
    public void ExpireHeld(long nowMs)
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
        _counters.Drops[(int)DropReason.NeighbourUnresolved]++;
        _sink?.Discard(h.Side, _holdBuffer.AsSpan(i * Io.FrameBatch.SlotSize, h.Length), DropReason.NeighbourUnresolved, h.Tag);
    }

    /// <summary>
    /// Starts or continues resolving <paramref name="target"/>: broadcasts an ARP request, at most
    /// once a second per address. A full pending table gives up its oldest resolution (its held
    /// frames are dropped as <see cref="DropReason.NeighbourUnresolved"/>).
    /// </summary>
    /// <returns>The pending entry's index.</returns>
    private int AskArp(Side side, uint target, long now)
    {
        NeighbourTable pending = Pending(side);
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
                _counters.PendingNeighboursEvicted++;
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
        MacAddress me = OwnMac(side);
        eth.Destination = to;
        eth.Source = me;
        eth.EtherType = EtherType.Arp;
        var arp = new ArpPacket(f[EthernetHeader.Length..]);
        arp.WriteFixed();
        arp.Operation = ArpPacket.OpRequest;
        arp.SenderMac = me;
        arp.SenderIp = side == Side.Inside ? _addresses.InsideAddress : _addresses.OutsideAddress;
        arp.TargetMac = MacAddress.Zero;
        arp.TargetIp = target;
        if (_sink.Send(side, f))
        {
            _counters.ArpRequestsSent++;
        }
    }

    /// <summary>
    /// Ages neighbours in a bounded slice: held frames past <see cref="HoldMs"/> are dropped,
    /// learned entries neither used nor confirmed for <see cref="StaleGcMs"/> are removed, pending
    /// resolutions with no request or held frame for <see cref="PendingMs"/> fail (their held
    /// frames dropped). Looks only at the old end of each table's age list, so the cost follows
    /// what expires. In replay (learn from traffic) learned entries do not age: nothing in a
    /// capture answers ARP.
    /// </summary>
    public void Sweep(long nowMs)
    {
        ExpireHeld(nowMs);
        StartClock(nowMs);
        if (!_learnFromTraffic)
        {
            SweepLearned(_insideLearned, nowMs);
            SweepLearned(_outsideLearned, nowMs);
        }
        SweepPending(_insidePending, Side.Inside, nowMs);
        SweepPending(_outsidePending, Side.Outside, nowMs);
    }

    private void SweepLearned(NeighbourTable table, long nowMs)
    {
        for (int n = 0; n < SweepSlice; n++)
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
                _counters.NeighboursExpired++;
            }
            else
            {
                table.Touch(i, last); // used since it was last moved: back in line by its real age
            }
        }
    }

    private void SweepPending(NeighbourTable table, Side side, long nowMs)
    {
        for (int n = 0; n < SweepSlice; n++)
        {
            int i = table.Oldest;
            if (i < 0 || nowMs - table.At(i).TouchedMs < PendingMs)
            {
                return;
            }
            uint address = table.At(i).Address;
            table.Remove(i);
            _counters.PendingNeighboursExpired++;
            DiscardHeldFor(side, address);
        }
    }

    /// <summary>True when an ARP with this target is about natd: its own address on the side, or (outside) an external address.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool IsForUs(Side side, uint target)
        => side == Side.Inside ? target == _addresses.InsideAddress : target == _addresses.OutsideAddress || _addresses.PoolIndexOf(target) >= 0;

    /// <summary>
    /// Learns from an ARP frame another shard received and answered (same rules as
    /// <see cref="HandleArp"/>: only senders on the side's prefix that asked or answered natd).
    /// Malformed frames are ignored (the receiving shard counted them).
    /// </summary>
    public void LearnFromArp(ReadOnlySpan<byte> frame, Side side, long nowMs)
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
        Ipv4Prefix prefix = side == Side.Inside ? _addresses.InsidePrefix : _addresses.OutsidePrefix;
        if (IsForUs(side, target) && sender != 0 && prefix.Contains(sender))
        {
            Learn(side, sender, arp.SenderMac, nowMs);
        }
    }

    /// <summary>
    /// ARP (RFC 826) for the addresses natd owns: requests for them are answered in place (the
    /// frame becomes the reply, <paramref name="length"/> its length) and teach the asker's MAC;
    /// replies teach the sender's MAC and release held frames. Only senders on the side's own
    /// prefix are learned, so a stray ARP cannot point an address elsewhere.
    /// </summary>
    /// <returns>The reply's side, <see cref="Verdict.Consumed"/> for a learned reply, or a drop
    /// (<see cref="DropReason.BadArp"/>, <see cref="DropReason.NotForUs"/>).</returns>
    public Verdict HandleArp(Span<byte> frame, ref int length, Side ingress, ref PacketContext ctx)
    {
        if (frame.Length < EthernetHeader.Length + ArpPacket.Length)
        {
            return ctx.Drop(DropReason.BadArp);
        }
        var arp = new ArpPacket(frame[EthernetHeader.Length..]);
        if (!arp.IsEthernetIpv4)
        {
            return ctx.Drop(DropReason.BadArp);
        }
        Ipv4Prefix prefix = ingress == Side.Inside ? _addresses.InsidePrefix : _addresses.OutsidePrefix;
        uint sender = arp.SenderIp;
        uint target = arp.TargetIp;
        MacAddress senderMac = arp.SenderMac;
        bool forUs = IsForUs(ingress, target);
        ushort op = arp.Operation;
        if (op == ArpPacket.OpRequest)
        {
            if (!forUs)
            {
                return ctx.Drop(DropReason.NotForUs);
            }
            if (sender != 0 && prefix.Contains(sender))
            {
                Learn(ingress, sender, senderMac, ctx.NowMs);
            }
            MacAddress me = OwnMac(ingress);
            arp.Operation = ArpPacket.OpReply;
            arp.TargetMac = senderMac;
            arp.TargetIp = sender;
            arp.SenderMac = me;
            arp.SenderIp = target;
            var eth = new EthernetHeader(frame);
            eth.Destination = senderMac;
            eth.Source = me;
            length = EthernetHeader.Length + ArpPacket.Length;
            _counters.ArpRepliesSent++;
            return ingress == Side.Inside ? Verdict.ToInside : Verdict.ToOutside;
        }
        if (op == ArpPacket.OpReply)
        {
            if (forUs && prefix.Contains(sender))
            {
                Learn(ingress, sender, senderMac, ctx.NowMs);
                return Verdict.Consumed;
            }
            return ctx.Drop(DropReason.NotForUs);
        }
        return ctx.Drop(DropReason.BadArp);
    }
}
