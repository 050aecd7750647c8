using System.Runtime.CompilerServices;
using Natd.Dataplane.Io;
using Natd.Dataplane.Packets;
using Natd.Dataplane.Sessions;

namespace Natd.Dataplane.Nat;

/// <summary>A side of the gateway.</summary>
public enum Side : byte
{
    /// <summary>The inside (subscriber) network.</summary>
    Inside,
    /// <summary>The outside (Internet) network.</summary>
    Outside,
}

/// <summary>What to do with a processed frame.</summary>
public enum Verdict : byte
{
    /// <summary>Dropped; <see cref="PacketContext.DropReason"/> says why (already counted).</summary>
    Drop,
    /// <summary>Transmit the rewritten frame on the inside port.</summary>
    ToInside,
    /// <summary>Transmit the rewritten frame on the outside port.</summary>
    ToOutside,
    /// <summary>
    /// Hairpinned (RFC 4787 REQ-9): the frame was masqueraded and its destination (external address,
    /// port) belongs to another shard (<see cref="ShardMap.OwnerOfArrival"/>). The caller hands it,
    /// marked <see cref="FrameFlags.Hairpinned"/>, to that shard, which finishes it with
    /// <see cref="NatEngine.ProcessHairpinned"/>. Never returned with one shard.
    /// </summary>
    Loopback,
    /// <summary>Handled with nothing to transmit now (ARP learned, or frame held until its next hop resolves).</summary>
    Consumed,
    /// <summary>
    /// Translated, but it belongs to an ALG's control connection: the caller gives a copy to the
    /// ALG's helper with <see cref="PacketContext.Alg"/> and finishes it with
    /// <see cref="NatEngine.CompleteAlg"/> when the helper returns it.
    /// </summary>
    ToHelper,
    /// <summary>
    /// An inbound fragment whose datagram's flow another shard owns: the caller hands it to shard
    /// <see cref="PacketContext.Shard"/>, marked <see cref="FrameFlags.FragmentRouted"/>. Never returned with one shard.
    /// </summary>
    ToShard,
}

/// <summary>Where an engine sends frames it makes on its own (ARP requests, frames released from the ARP hold queue). Slow path only.</summary>
public interface IFrameSink
{
    /// <summary>Transmits <paramref name="frame"/> on <paramref name="side"/>; false when it could not be queued.</summary>
    bool Send(Side side, ReadOnlySpan<byte> frame);

    /// <summary>
    /// A frame the engine had kept (waiting for ARP) and now gives up, already counted under
    /// <paramref name="reason"/>. <paramref name="holdTag"/> is the <see cref="PacketContext.HoldTag"/>
    /// the frame was processed with, so a driver can report the frame as it was
    /// received (replay writes it to its drops file). Default: nothing.
    /// </summary>
    void Discard(Side side, ReadOnlySpan<byte> frame, DropReason reason, long holdTag)
    {
    }

    /// <summary>
    /// A frame the engine had kept (waiting for ARP) has just been given to <see cref="Send"/>: its
    /// next hop answered. <paramref name="holdTag"/> as for <see cref="Discard"/>, so a driver can
    /// forget what it kept about the frame. Default: nothing.
    /// </summary>
    void Released(Side side, long holdTag)
    {
    }

    /// <summary>
    /// Hands <paramref name="frame"/>, received on <paramref name="side"/>, to shard <paramref name="shard"/>
    /// with <paramref name="flags"/> (held inbound fragments released to the shard owning their flow);
    /// false when it could not be queued. Default: false (one shard never asks).
    /// </summary>
    bool HandOff(int shard, Side side, ReadOnlySpan<byte> frame, FrameFlags flags) => false;
}

/// <summary>Options of an engine that are not configuration: they depend on how it is driven.</summary>
public sealed record EngineOptions
{
    /// <summary>Accept frames whatever their destination MAC (replay of captures taken elsewhere).</summary>
    public bool Promiscuous { get; init; }

    /// <summary>
    /// Learn neighbours from IPv4 traffic as well as ARP: an on-link source teaches its MAC, and on the
    /// outside an off-link source teaches the gateway's. Meant for replay, where no ARP is answered:
    /// such entries do not age by time (only the table's capacity evicts them) and are never probed.
    /// </summary>
    public bool LearnFromTraffic { get; init; }

    /// <summary>Seed for port randomisation and hashing; null draws from the OS CSPRNG (live use).</summary>
    public ulong? Seed { get; init; }

    /// <summary>ICMP errors natd may generate per second (token bucket, RFC 1812 4.3.2.8).</summary>
    public int IcmpErrorRate { get; init; } = 100;

    /// <summary>This engine's shard index (0-based).</summary>
    public int Shard { get; init; }

    /// <summary>Number of shards; each owns a disjoint slice of the external ports (<see cref="ShardMap.OwnerOfPort"/>).</summary>
    public int Shards { get; init; } = 1;

    /// <summary>The <see cref="ShardMap"/> seed the pollers steer inside hosts with (the engine's map must agree with theirs).</summary>
    public ulong ShardSeed { get; init; } = ShardMap.DefaultSeed;

    /// <summary>
    /// When natd started, on the engines' clock (ms): the PCP epoch (RFC 6887 section 8.5) every
    /// shard counts from, so all give one epoch time. Null: the first clock the engine sees.
    /// </summary>
    public long? StartedMs { get; init; }

    /// <summary>
    /// The inside link's MTU in bytes as the driver read it at start; 0 when there is no link (replay,
    /// memory ports). <see cref="InterfaceSettings.Mtu"/> overrides it (<see cref="EgressMtu"/>).
    /// </summary>
    public int InsideLinkMtu { get; init; }

    /// <summary>The outside link's MTU in bytes, as <see cref="InsideLinkMtu"/>.</summary>
    public int OutsideLinkMtu { get; init; }

    /// <summary>
    /// The pairings all shards of this natd publish (<see cref="PairingDirectory"/>), shared by their
    /// engines: this engine publishes its subscribers' pairing in its own table and reads the other
    /// shards' for its port-less flows (RFC 4787 REQ-2). Null with one shard, or where no other
    /// engine runs beside it (replay, tests of one shard).
    /// </summary>
    public PairingDirectory? Pairings { get; init; }
}

/// <summary>
/// The NAT44 translator of one shard: classifies a frame, validates it (each failure a counted
/// <see cref="DropReason"/>), and applies NAPT in place: in2out masquerades the inside source,
/// out2in restores the inside destination, ICMP errors are translated with their embedded header
/// (RFC 5508), TTL is decremented (RFC 1812) and Ethernet addresses set for the egress side.
/// Sessions follow RFC 4787 (UDP), RFC 5382 and RFC 7857 (TCP), RFC 5508 (ICMP). Single
/// threaded: one poller owns an engine. No allocation, lock or exception per packet. The engine
/// coordinates the steps of the packet path and its components own their state; the path, step
/// by step with the file of each, is in docs/architecture.md ("One packet, ring to ring").
/// </summary>
public sealed partial class NatEngine
{
    private NatSettings _settings;
    private ShardMap _shardMap;

    // The allocator's slice of the port space comes from the shard map, the one owner-of rule.
    private int OwnerOfPort(int port) => _shardMap.OwnerOfExternalPort(port);
    private readonly EngineOptions _options;
    private readonly AddressPlan _addresses;
    private readonly Neighbours _neighbours;
    private readonly EgressMtu _mtu;
    private readonly IcmpResponder _icmp;
    private readonly IcmpErrorTranslator _icmpErrors;
    private readonly ulong _seed;

    /// <summary>Creates an engine.</summary>
    /// <param name="settings">Configuration (immutable).</param>
    /// <param name="insideMac">Source MAC for frames sent inside.</param>
    /// <param name="outsideMac">Source MAC for frames sent outside.</param>
    /// <param name="options">Driving options; null for live defaults.</param>
    /// <exception cref="ArgumentException">Empty pool or impossible port range.</exception>
    public NatEngine(NatSettings settings, MacAddress insideMac, MacAddress outsideMac, EngineOptions? options = null)
    {
        _settings = settings;
        _options = options ?? new EngineOptions();
        if (settings.Pool.Count == 0)
        {
            throw new ArgumentException("the external address pool is empty", nameof(settings));
        }
        InsideMac = settings.Inside.Mac ?? insideMac;
        OutsideMac = settings.Outside.Mac ?? outsideMac;
        ulong seed = _options.Seed ?? BitConverter.ToUInt64(System.Security.Cryptography.RandomNumberGenerator.GetBytes(8));
        _seed = seed;
        _addresses = new AddressPlan(settings, seed);
        _shardMap = new ShardMap(settings, _options.Shards, _options.ShardSeed);
        // limits.sessions is the whole dataplane's; each shard holds its share.
        int capacity = Math.Max(1, (settings.MaxSessions + _options.Shards - 1) / _options.Shards);
        var ports = NewPorts(settings, seed ^ 0x5DEECE66DUL);
        Table = new SessionTable(capacity, ports, seed, Counters.Table);
        RebuildSubscribers();
        AlgBridge = new AlgBridge(Table, settings, Counters);
        Walker = new SessionWalker(Table, AlgBridge, settings);
        CreatePolicy(settings);
        ApplyDeterministic(settings);
        ReserveForwardPorts();
        RefreshTimeouts();
        if (settings.Filtering != FilteringBehaviour.AddressAndPortDependent || settings.Pcp.AllPorts)
        {
            Table.EnableExternalIndex(); // all-ports: an inbound port's holder is found by its external endpoint
        }
        _mtu = new EgressMtu(settings, _options.InsideLinkMtu, _options.OutsideLinkMtu, Counters);
        RefreshEgress();
        _neighbours = new Neighbours(settings, _addresses, InsideMac, OutsideMac, Counters, _options.LearnFromTraffic, _mtu);
        _icmp = new IcmpResponder(_addresses, InsideMac, OutsideMac, Counters, _options.IcmpErrorRate);
        _icmpErrors = new IcmpErrorTranslator(Table, _timeoutMs, _addresses, _neighbours, _icmp, Counters);
        CreateFragments(settings);
        CreatePcp(settings);
        ReadView = new ShardReadView(this);
    }

    /// <summary>The configuration this engine runs.</summary>
    public NatSettings Settings => _settings;

    /// <summary>MAC used as source inside.</summary>
    public MacAddress InsideMac { get; }

    /// <summary>MAC used as source outside.</summary>
    public MacAddress OutsideMac { get; }

    /// <summary>The session table (owned by this engine's thread).</summary>
    public SessionTable Table { get; }

    /// <summary>Counters (single writer: this engine's thread).</summary>
    public NatCounters Counters { get; } = new();

    /// <summary>What other threads may read of this shard (counters, gauges, rule log) without reaching into the engine.</summary>
    public ShardReadView ReadView { get; }

    /// <summary>Sets where self-made frames go (ARP requests, released held frames).</summary>
    public void AttachSink(IFrameSink sink)
    {
        _sink = sink;
        _neighbours.Attach(sink);
    }

    /// <summary>
    /// Processes one received frame in place: parses it (<see cref="FrameParser"/>) and runs
    /// <see cref="Process(Span{byte}, ref int, Side, FrameFlags, in ParsedFrame, ref PacketContext)"/>.
    /// </summary>
    /// <param name="slot">The frame's buffer; the frame is its first <paramref name="length"/> bytes and may grow up to the slot's size.</param>
    /// <param name="length">Frame length in bytes; updated to the length to transmit.</param>
    /// <param name="ingress">Side the frame arrived on.</param>
    /// <param name="flags">Receive flags (checksum offload state).</param>
    /// <param name="ctx">The packet's context: time in, drop reason and ALG hand-off out.</param>
    /// <returns>Where the (rewritten) frame goes.</returns>
    public Verdict Process(Span<byte> slot, ref int length, Side ingress, FrameFlags flags, ref PacketContext ctx)
    {
        if ((uint)length > (uint)slot.Length)
        {
            return ctx.Drop(DropReason.Truncated);
        }
        FrameParser.Parse(slot[..length], ingress, Table.HashSeed, out ParsedFrame p);
        return Process(slot, ref length, ingress, flags, p, ref ctx);
    }

    /// <summary>
    /// Processes one received frame in place, already parsed by the caller (the poller parses each
    /// frame once for prefetch, shard routing and translation).
    /// </summary>
    /// <param name="slot">The frame's buffer; the frame is its first <paramref name="length"/> bytes and may grow up to the slot's size.</param>
    /// <param name="length">Frame length in bytes; updated to the length to transmit.</param>
    /// <param name="ingress">Side the frame arrived on.</param>
    /// <param name="flags">Receive flags (checksum offload state).</param>
    /// <param name="frame">The frame's headers (<see cref="FrameParser.Parse"/> of the first <paramref name="length"/> bytes, this table's seed).</param>
    /// <param name="ctx">The packet's context: time in (<see cref="PacketContext.NowMs"/>, read once per batch), drop reason and ALG hand-off out.</param>
    /// <returns>Where the (rewritten) frame goes.</returns>
    public Verdict Process(Span<byte> slot, ref int length, Side ingress, FrameFlags flags, in ParsedFrame frame, ref PacketContext ctx)
    {
        SetClock(ctx.NowMs);
        return ProcessFrame(slot, ref length, ingress, flags, frame, ref ctx);
    }

    /// <summary>The engine's clock is the packet's (read once per batch by the poller; capture time in replay).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void SetClock(long nowMs)
    {
        _now = nowMs;
        Table.NowMs = nowMs;
    }

    private Verdict ProcessFrame(Span<byte> slot, ref int length, Side ingress, FrameFlags flags, in ParsedFrame p, ref PacketContext ctx)
    {
        if ((uint)length > (uint)slot.Length || length < EthernetHeader.Length)
        {
            return ctx.Drop(DropReason.Truncated);
        }
        Span<byte> frame = slot[..length];
        var eth = new EthernetHeader(frame);
        MacAddress ourMac = ingress == Side.Inside ? InsideMac : OutsideMac;
        if (!_options.Promiscuous)
        {
            MacAddress dmac = eth.Destination;
            if (dmac != ourMac && dmac != MacAddress.Broadcast)
            {
                return ctx.Drop(DropReason.NotForUs);
            }
        }
        if (p.EtherType == EtherType.Arp)
        {
            return _neighbours.HandleArp(frame, ref length, ingress, ref ctx);
        }
        if (p.Drop != ParsedFrame.None)
        {
            // Ethertype, then the IPv4 header (version, IHL, total length, checksum), then martian
            // addresses and fragments: the parser checked them in that order.
            return ctx.Drop(p.Drop);
        }

        // Ethernet padding is not part of the datagram: never checksum or forward it.
        length = EthernetHeader.Length + p.TotalLength;
        Span<byte> ipSpan = slot[EthernetHeader.Length..length];
        int ihl = p.Ihl;
        uint src = p.Source;
        uint dst = p.Destination;
        byte proto = p.Protocol;
        bool ported = proto is IpProtocol.Tcp or IpProtocol.Udp or IpProtocol.Icmp;
        if (ingress == Side.Inside)
        {
            if (_addresses.IsOwnAddress(dst))
            {
                if (p.IsFragment)
                {
                    return ctx.Drop(DropReason.Fragment); // hairpinned or to natd itself: not followed
                }
                if (IsPcpRequest(p))
                {
                    return HandlePcp(slot, ref length, ipSpan, p, flags, ref ctx); // the PCP server (NatEngine.Pcp.cs)
                }
                if ((proto is IpProtocol.Tcp or IpProtocol.Udp) && _addresses.InInsideNetworks(src) && (_addresses.PoolIndexOf(dst) >= 0 || _forwards.HasForwardOn(dst)))
                {
                    return Hairpin(slot, ref length, ipSpan, p, flags, ref ctx);
                }
                return _icmp.ToGateway(slot, ref length, ingress, ipSpan, ihl, ref ctx);
            }
            if (!_addresses.InInsideNetworks(src))
            {
                return ctx.Drop(DropReason.NotFromInsideNetwork);
            }
            if (_options.LearnFromTraffic && _addresses.OnInsideLink(src))
            {
                Learn(Side.Inside, src, eth.Source);
            }
            if (_addresses.InInsideNetworks(dst) || _addresses.OnInsideLink(dst))
            {
                // natd translates between inside and outside only; inside-to-inside is not its job
                // (and must never be masqueraded: the ipfwadm "-W" lesson).
                return ctx.Drop(DropReason.NoRoute);
            }
            if (p.Ttl <= 1)
            {
                return _icmp.TimeExceeded(slot, ref length, ingress, ipSpan, ihl, ref ctx);
            }
            if (p.IsFragment)
            {
                return FragmentIn2Out(slot, ref length, ipSpan, p, flags, ref ctx);
            }
            return ported ? In2Out(slot, ref length, ipSpan, p, flags, hairpin: false, ref ctx) : OtherIn2Out(slot, ref length, ipSpan, ref ctx);
        }

        if (_options.LearnFromTraffic)
        {
            if (_addresses.OnOutsideLink(src))
            {
                Learn(Side.Outside, src, eth.Source);
            }
            else if (_settings.Outside.Gateway != 0)
            {
                Learn(Side.Outside, _settings.Outside.Gateway, eth.Source);
            }
        }
        if (_addresses.IsOwnAddress(dst))
        {
            if (dst == _addresses.InsideAddress && dst != _addresses.OutsideAddress && _addresses.PoolIndexOf(dst) < 0)
            {
                // The inside address is reachable from inside only: never answer (or leak it) outside.
                return ctx.Drop(DropReason.InsideAddressFromOutside);
            }
            if ((flags & FrameFlags.Hairpinned) == 0 && _addresses.CheckOutsideSource(src) is var bad && bad != Ok)
            {
                return ctx.Drop(bad);
            }
            if (p.IsFragment)
            {
                return FragmentOut2In(slot, ref length, ipSpan, p, flags, ref ctx);
            }
            return ported ? Out2In(slot, ref length, ipSpan, p, flags, transit: false, hairpin: false, ref ctx) : OtherOut2In(slot, ref length, ipSpan, ihl, ref ctx);
        }
        if (_rules.HasAcceptRules && ported && !p.IsFragment)
        {
            if (_addresses.CheckOutsideSource(src) is var bad && bad != Ok)
            {
                return ctx.Drop(bad);
            }
            // Replies to flows a rule accepted (routed untranslated) are addressed to the inside host.
            return Out2In(slot, ref length, ipSpan, p, flags, transit: true, hairpin: false, ref ctx);
        }
        // Not for natd: dropped whatever its source (the source filter guards what natd would act on).
        return ctx.Drop(DropReason.NoRoute);
    }

    /// <summary>
    /// Swaps in new settings (a reload), on the engine's thread, between batches. Everything but the
    /// interface names, MAC overrides and the session table size applies live:
    /// <list type="bullet">
    /// <item>timeouts, mapping/filtering behaviour, checksum verification, the outside source filter: at once (expiry reads timeouts at check time);</item>
    /// <item>pool or port range (a dynamic external address, ip_dynaddr): sessions on addresses no
    /// longer in the pool are closed at once, the others keep their ports; new flows use the new pool;</item>
    /// <item>rules, forwards, protocol forwards: every existing session is checked against the new
    /// set; one the new set would not create the same way (its rule now denies, rejects or changed
    /// action, or its forward or backend is gone) is closed. The rest keep flowing.</item>
    /// <item>carrier-grade settings: subscribers, their blocks (quarantined ones included) and
    /// pairing carry over without new block records; a new block size applies to new blocks only.
    /// A change that would strand a live block or mapping is refused (<see cref="CheckCarrierGradeReload"/>).</item>
    /// </list>
    /// Returns null when applied, else why not (nothing changed).
    /// </summary>
    public string? UpdateSettings(NatSettings next)
    {
        NatSettings cur = _settings;
        if (Refusal(next, out BlockGeometry? legacy) is { } refused)
        {
            return refused;
        }
        SubscriberPorts? carried = Subscribers;
        uint[] oldPool = _addresses.Pool;
        bool poolChanged = !next.Pool.SequenceEqual(cur.Pool) || next.PortMin != cur.PortMin || next.PortMax != cur.PortMax
            || !SameDeterministic(cur.Cgnat, next.Cgnat); // a new map moves ranges: mappings outside theirs close
        bool rulesChanged = !SameRules(cur, next);
        if (next.Fragments != cur.Fragments)
        {
            CreateFragments(next); // datagrams in flight are forgotten (their later fragments time out)
        }
        _settings = next;
        _addresses.Update(next);
        _shardMap = new ShardMap(next, _options.Shards, _options.ShardSeed);
        ApplyDeterministic(next);
        _neighbours.Update(next);
        _mtu.Update(next);
        RefreshEgress();
        CompileRules(next);
        RefreshTimeouts();
        _ipsecTunnels.Update(next);
        AlgBridge.Update(next);
        Walker.Update(next);
        if (next.Filtering != FilteringBehaviour.AddressAndPortDependent || next.Pcp.AllPorts)
        {
            Table.EnableExternalIndex();
        }
        Table.Ports.ReuseDelayMs = next.Cgnat.PortReuseDelaySeconds * 1000L;
        if (poolChanged)
        {
            RebuildPorts(next);
            ResetPoolThreshold();
            _gre.DropOffPool(_addresses.Pool);
        }
        else
        {
            ReserveForwardPorts(); // forwards or trigger ranges may have changed
        }
        if (rulesChanged || poolChanged)
        {
            RecheckSessions();
        }
        ReloadPcp(cur, next, poolChanged);
        if (poolChanged || next.Cgnat != cur.Cgnat)
        {
            RebuildSubscribers(carried, oldPool, legacy);
        }
        return null;
    }

    /// <summary>
    /// Whether <see cref="UpdateSettings"/> would apply <paramref name="next"/> now, without changing
    /// anything: the reload's first phase, asked of every shard before any applies, so a refusal
    /// that depends on one shard's live state (<see cref="CheckCarrierGradeReload"/>) leaves every
    /// shard on the running configuration. Returns null or the refusal.
    /// </summary>
    public string? CheckSettings(NatSettings next) => Refusal(next, out _);

    private string? Refusal(NatSettings next, out BlockGeometry? legacy)
    {
        legacy = null;
        NatSettings cur = _settings;
        if (next.Inside.Name != cur.Inside.Name || next.Outside.Name != cur.Outside.Name
            || next.Inside.Mac != cur.Inside.Mac || next.Outside.Mac != cur.Outside.Mac || next.MaxSessions != cur.MaxSessions
            || next.MaxNeighbours != cur.MaxNeighbours)
        {
            return "interface names, MAC overrides, limits.sessions and limits.neighbours need a restart";
        }
        if (DeterministicMap.Validate(next) is { } noMap)
        {
            return noMap;
        }
        return CheckCarrierGradeReload(next, out legacy);
    }

    private static bool SameDeterministic(CgnatSettings a, CgnatSettings b)
        => (a.Allocation == PortAllocation.Deterministic) == (b.Allocation == PortAllocation.Deterministic)
           && (a.Allocation != PortAllocation.Deterministic
               || (a.SubscriberPrefix == b.SubscriberPrefix && a.Deterministic!.Ports == b.Deterministic!.Ports
                   && a.Deterministic.Inside.SequenceEqual(b.Deterministic.Inside)));

    private static bool SameRules(NatSettings a, NatSettings b)
        => a.DefaultPolicy == b.DefaultPolicy
           && (a.Rules is null ? b.Rules is null : b.Rules is not null && a.Rules.SequenceEqual(b.Rules, RuleComparer.Instance))
           && a.Forwards.SequenceEqual(b.Forwards, ForwardComparer.Instance)
           && a.ProtocolForwards.SequenceEqual(b.ProtocolForwards);

    /// <summary>New allocator for a new pool or range; mappings on kept addresses keep their ports, the rest close.</summary>
    private void RebuildPorts(NatSettings next)
    {
        var ports = NewPorts(next, _seed ^ (ulong)_now);
        AlgBridge.Clear(); // their reserved ports were the old allocator's
        Table.Ports = ports;
        var mappings = Table.Mappings;
        for (int m = 0; m < mappings.Length; m++)
        {
            ref Mapping map = ref mappings[m];
            if (!map.InUse || map.StaticPort)
            {
                continue;
            }
            int idx = _addresses.PoolIndexOf(map.ExternalKey.Destination);
            int port = FlowKey.PortToHost(map.ExternalKey.DestinationPort);
            if (idx >= 0 && InDeterministicRange(ref map) && ports.TryReserve(idx, SessionTable.ProtocolClass(map.ExternalKey.Protocol), port))
            {
                map.PoolIndex = (short)idx;
                continue;
            }
            // The address left the pool (or its port is now a forward's): close its sessions at once.
            map.StaticPort = true; // its port belongs to no allocator any more
            while (map.InUse && map.FirstSession >= 0)
            {
                Table.Delete(map.FirstSession);
            }
        }
        ReserveForwardPorts();
    }

    /// <summary>
    /// The shard's port allocator for <paramref name="settings"/>, with the port quarantine
    /// (<c>nat.port-reuse-delay</c>): its ring can hold every port of the shard (no port ever leaves
    /// early) up to 1 Mi ports (14 bytes each) for large pools, where a churn faster than that lets
    /// the oldest port go early (counted: QuarantineOverflows). Sized by the port space, not the
    /// session table.
    /// </summary>
    private PortAllocator NewPorts(NatSettings settings, ulong seed)
    {
        long shardPorts = (long)_addresses.Pool.Length * PortAllocator.Classes * (65536 / _options.Shards + 1);
        int quarantine = (int)Math.Min(shardPorts, 1 << 20);
        return new PortAllocator(_addresses.Pool.Length, settings.PortMin, settings.PortMax, seed, _options.Shard, _options.Shards, OwnerOfPort, quarantine)
        {
            ReuseDelayMs = settings.Cgnat.PortReuseDelaySeconds * 1000L,
        };
    }

    /// <summary>
    /// The external address of inside host <paramref name="inside"/>'s port-less flows (GRE, ESP,
    /// ISAKMP, port triggers), the one its TCP and UDP leave from (RFC 4787 REQ-2): with
    /// deterministic NAT the address of its RFC 7422 range (the configuration fixes it for every
    /// shard); else its subscriber's paired address, from this shard's subscriber state or, for a
    /// subscriber of another shard, from the pairing that shard publishes
    /// (<see cref="EngineOptions.Pairings"/>; port-less state lives in shard 0), else a pairing made
    /// now and held while these flows live (<see cref="SubscriberPorts.HoldPairing"/>), which its
    /// first port then takes; without subscriber state the hash of its subscriber.
    /// </summary>
    /// <param name="inside">The inside host (network order).</param>
    /// <param name="holdSeconds">The idle timeout of the flow asking (seconds): with subscriber state its pairing is held that long after this frame.</param>
    private uint PairedAddress(uint inside, int holdSeconds)
    {
        if (_deterministic is not null && _deterministic.TryForward(inside, out DeterministicRange range))
        {
            return range.External;
        }
        // This shard's pairing, else the one another shard publishes, else a new one (least loaded)
        // that the subscriber's first port will take too.
        int i = Subscribers?.HoldPairing(inside, _now, holdSeconds * 1000L) ?? -1;
        return _addresses.Pool[i >= 0 ? i : _addresses.PoolIndexFor(inside)];
    }

    /// <summary>
    /// This shard's subscriber state (pairing, port blocks, per-subscriber limits), the session
    /// table's <see cref="SessionTable.Subscribers"/>; null when no CGN feature needs it.
    /// </summary>
    public SubscriberPorts? Subscribers => Table.Subscribers as SubscriberPorts;

    // ShardReadView.SubscribersCountedElsewhere: only shard 0 holds other shards' subscribers (their
    // port-less flows), and then both shards publish them. Any thread: reads the shared directory only.
    internal long SubscribersCountedElsewhere()
        => _options.Shard == 0 && _options.Pairings is { } d && Subscribers is not null ? d.PublishedElsewhereToo(0) : 0;

    /// <summary>
    /// True when a CGN feature needs per-subscriber state: port blocks, spill pairing, a
    /// per-subscriber limit, or a draining address (a subscriber there must be found and moved).
    /// </summary>
    private static bool NeedsSubscribers(NatSettings s)
        => s.Cgnat.Allocation == PortAllocation.PortBlock || s.Cgnat.Pairing == Pairing.Spill || !s.Cgnat.Limits.None
            || s.Cgnat.Drain.Count > 0;

    /// <summary>
    /// (Re)builds the subscriber state from the table (construction, a snapshot restore, a reload that
    /// changed the pool or the CGN settings): each live mapping's port is adopted by its subscriber
    /// (pairing, block) and each session counted. A reload passes the running state as
    /// <paramref name="carried"/> (indexed by <paramref name="oldPool"/>): its subscribers and blocks,
    /// quarantined ones included, carry over without new allocation records, a block with another
    /// cut than the new one as a legacy block of <paramref name="legacy"/>. Bounded by the table's
    /// and the blocks' size; never per packet.
    /// </summary>
    internal void RebuildSubscribers(SubscriberPorts? carried = null, uint[]? oldPool = null, BlockGeometry? legacy = null)
    {
        PairingTable? published = _options.Pairings?.Of(_options.Shard);
        if (!NeedsSubscribers(_settings))
        {
            Table.Subscribers = null;
            published?.Reconcile(static _ => 0);
            return;
        }
        var sp = new SubscriberPorts(Table, _settings.Cgnat, _addresses.Pool, _seed, _options.Shard, _options.Shards, Table.Capacity, legacy, _options.Pairings);
        if (carried is not null)
        {
            sp.CarryFrom(carried, oldPool!, _now);
        }
        Table.Subscribers = null; // counted below, not by the table's hooks
        var mappings = Table.Mappings;
        for (int m = 0; m < mappings.Length; m++)
        {
            ref Mapping map = ref mappings[m];
            if (map.InUse && !map.StaticPort)
            {
                sp.Adopt(map.InsideAddress, map.PoolIndex, SessionTable.ProtocolClass(map.Protocol), FlowKey.PortToHost(map.ExternalPort), _now);
            }
        }
        var sessions = Table.Sessions;
        for (int i = 0; i < sessions.Length; i++)
        {
            if (sessions[i].InUse)
            {
                sp.SessionAdded(mappings[sessions[i].Mapping].InsideAddress, _now);
            }
        }
        if (carried is not null)
        {
            sp.FinishCarry(_now);
        }
        Table.Subscribers = sp;
        published?.Reconcile(sp.PairedAddressOf); // subscribers the rebuild dropped or moved
    }

    /// <summary>Closes sessions the current rules and forwards would not create the same way.</summary>
    private void RecheckSessions()
    {
        var sessions = Table.Sessions;
        for (int i = 0; i < sessions.Length; i++)
        {
            ref Session s = ref sessions[i];
            if (!s.InUse)
            {
                continue;
            }
            bool keep = s.Origin switch
            {
                SessionOrigin.Forward => ForwardStillHas(s.In2Out, s.Out2In),
                SessionOrigin.Inbound => true, // follows its mapping, which followed the rule that made it
                SessionOrigin.Related => true, // follows its control connection, checked on its own
                SessionOrigin.Accept => DecideQuietly(s.In2Out) == RuleAction.Accept,
                _ => DecideQuietly(s.In2Out) == RuleAction.Masquerade,
            };
            if (!keep)
            {
                Table.Delete(i);
            }
        }
    }

    /// <summary>The rules' decision for a key without counting a hit or logging.</summary>
    private RuleAction DecideQuietly(in FlowKey key) => _rules.DecideQuietly(key);

    /// <summary>True when a forward still sends the session's external endpoint to its inside endpoint.</summary>
    private bool ForwardStillHas(in FlowKey in2out, in FlowKey out2in) => _forwards.StillHas(in2out, out2in);

    private sealed class RuleComparer : IEqualityComparer<ForwardRule>
    {
        public static readonly RuleComparer Instance = new();

        public bool Equals(ForwardRule? a, ForwardRule? b)
            => a is not null && b is not null && a.Name == b.Name && a.Protocol == b.Protocol && a.In == b.In && a.Out == b.Out
               && a.Action == b.Action && a.Log == b.Log && a.Sources.SequenceEqual(b.Sources) && a.Destinations.SequenceEqual(b.Destinations)
               && a.SourcePorts.SequenceEqual(b.SourcePorts) && a.DestinationPorts.SequenceEqual(b.DestinationPorts);

        public int GetHashCode(ForwardRule r) => r.Name.GetHashCode(StringComparison.Ordinal);
    }

    private sealed class ForwardComparer : IEqualityComparer<PortForward>
    {
        public static readonly ForwardComparer Instance = new();

        public bool Equals(PortForward? a, PortForward? b)
            => a is not null && b is not null && a.Protocol == b.Protocol && a.ExternalAddress == b.ExternalAddress
               && a.ExternalPorts == b.ExternalPorts && a.Balance == b.Balance && a.Backends.SequenceEqual(b.Backends);

        public int GetHashCode(PortForward f) => HashCode.Combine(f.Protocol, f.ExternalAddress, f.ExternalPorts);
    }

    /// <summary>Deletes up to <paramref name="budget"/> expired sessions (a bounded slice, so forwarding never stalls).</summary>
    /// <returns>Sessions deleted.</returns>
    public int Sweep(long nowMs, int budget)
    {
        _neighbours.Sweep(nowMs);
        AlgBridge.Sweep(nowMs);
        _gre.Sweep(nowMs, budget);
        _fragments.Sweep(nowMs, budget);
        int n = Table.Expire(nowMs, _settings.Timeouts, budget);
        Table.Ports.DrainQuarantine(nowMs, budget);
        Subscribers?.Sweep(nowMs, budget);
        CheckPoolThreshold(nowMs, budget);
        SweepPcp(nowMs, budget);
        n += _ipsec.Expire(nowMs, Math.Max(0, budget - n));
        Counters.SessionsSwept += n;
        return n;
    }

    private long _now;

    /// <summary>
    /// Session lookups treat a session past its idle timeout as gone (and delete it), so expiry is
    /// exact whatever the sweeper's pace: a reply one second late never revives a closed mapping.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private int LookupIn2Out(in FlowKey key) => Live(Table.FindIn2Out(key));

    /// <inheritdoc cref="LookupIn2Out(in FlowKey)"/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private int LookupOut2In(in FlowKey key) => Live(Table.FindOut2In(key));

    /// <inheritdoc cref="LookupIn2Out(in FlowKey)"/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private int LookupIn2Out(in FlowKey key, uint hash) => Live(Table.FindIn2Out(key, hash));

    /// <inheritdoc cref="LookupIn2Out(in FlowKey)"/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private int LookupOut2In(in FlowKey key, uint hash) => Live(Table.FindOut2In(key, hash));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private int Live(int s) => _live.Live(s, _now);

    private readonly long[] _timeoutMs = new long[SessionTable.ClassCount];

    private void RefreshTimeouts()
    {
        var t = _settings.Timeouts;
        Table.ReclaimOnCreate = t;
        Table.SetUdpPorts(t.UdpPorts); // a change reclasses the UDP sessions already in the table
        for (int c = 0; c < _timeoutMs.Length; c++)
        {
            _timeoutMs[c] = SessionTable.TimeoutSeconds((LruClass)c, t) * 1000L;
        }
    }
}
