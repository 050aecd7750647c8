using System.Buffers.Binary;
using System.Runtime.InteropServices;
using Natd.Dataplane.Io;
using Natd.Dataplane.Packets;
using Natd.Dataplane.Pcp;
using Natd.Dataplane.Sessions;

namespace Natd.Dataplane.Nat;

// The Port Control Protocol server (RFC 6887, with NAT-PMP, RFC 6886, on the same port) in the
// shard's slow path (docs/architecture.md, "Port Control Protocol"): a datagram to UDP 5351 of
// natd's inside address reaches the shard owning its sender (ShardMap.OwnerOfInside), as that
// subscriber's sessions do, so its mappings, ports, blocks and limits need no lock. The reply is
// built over the request in the frame's own slot and leaves by the inside port.
public sealed partial class NatEngine
{
    private static readonly ushort PcpPortRaw = FlowKey.PortToRaw(PcpWire.ServerPort);
    private static readonly ushort PcpClientPortRaw = FlowKey.PortToRaw(PcpWire.ClientPort);
    private static readonly MacAddress AllHostsMac = MacAddress.Parse("01:00:5e:00:00:01");

    /// <summary>Announcements sent after a start or an epoch reset (RFC 6886 section 3.2.1's schedule, which RFC 6887 14.1.3 follows).</summary>
    private const int AnnounceCount = 10;

    /// <summary>Request buckets kept per subscriber before stale ones must be swept (a flood of many sources is refused, not remembered).</summary>
    private const int RateBucketLimit = 65536;

    private PcpMappings? _pcp;
    private long _pcpEpochMs = -1;
    private int _announcesLeft;
    private long _nextAnnounceMs;
    private int _announceGapMs;
    private readonly Dictionary<uint, RateBucket> _pcpRate = [];
    private byte[]? _pcpScratch;

    private struct RateBucket
    {
        public long RefillMs;
        public int Tokens;
    }

    /// <summary>The shard's PCP mappings; null while <c>pcp.enabled</c> has never been on.</summary>
    internal PcpMappings? PcpTable => _pcp;

    /// <summary>Requests by outcome (indexed by <see cref="PcpOutcome"/>).</summary>
    private Span<long> PcpResults => Counters.Table.Range(NatCounters.PcpBase, PcpOutcomes.Count);

    /// <summary>Makes the mapping table when PCP is on (construction, or a reload that turns it on) and starts the epoch's announcements.</summary>
    private void CreatePcp(NatSettings settings)
    {
        if (!settings.Pcp.Enabled || _pcp is not null)
        {
            if (_pcp is not null)
            {
                _pcp.Cgnat = settings.Cgnat;
            }
            return;
        }
        _pcp = new PcpMappings(Table, settings.Cgnat, Math.Clamp(Table.Capacity / 16, 64, 16384));
        _pcpScratch ??= new byte[EthernetHeader.Length + Ipv4Header.MinLength + Udp.Length + PcpWire.HeaderLength];
        StartEpoch(_options.StartedMs ?? -1);
    }

    /// <summary>A new epoch (start, or state lost on reload): its time counts from <paramref name="nowMs"/> (-1: the first clock seen) and the ANNOUNCEs start over.</summary>
    private void StartEpoch(long nowMs)
    {
        _pcpEpochMs = nowMs;
        _announcesLeft = _options.Shard == 0 ? AnnounceCount : 0; // one shard speaks for natd
        _nextAnnounceMs = nowMs < 0 ? 0 : nowMs;
        _announceGapMs = 250;
    }

    /// <summary>Seconds since the epoch began (RFC 6887 section 8.5), read off the engine clock.</summary>
    private uint PcpEpoch()
    {
        if (_pcpEpochMs < 0)
        {
            _pcpEpochMs = _now;
        }
        return (uint)Math.Max(0, (_now - _pcpEpochMs) / 1000);
    }

    /// <summary>True for a datagram natd's PCP server answers: UDP to port 5351 of the inside address, with PCP on.</summary>
    private bool IsPcpRequest(in ParsedFrame p)
        => _pcp is not null && _settings.Pcp.Enabled && p.Protocol == IpProtocol.Udp && p.Destination == _addresses.InsideAddress
           && p.Key.DestinationPort == PcpPortRaw;

    /// <summary>
    /// Answers a PCP or NAT-PMP request in place: the reply (RFC 6887 section 8.3, RFC 6886 section
    /// 3) replaces the request in <paramref name="slot"/> and goes back out of the inside port from
    /// natd's inside address, port 5351. A request the RFC says to ignore, or one over the
    /// subscriber's rate, is dropped (<see cref="DropReason.PcpIgnored"/>, <see cref="DropReason.PcpRateLimited"/>).
    /// Every request is counted by outcome.
    /// </summary>
    private Verdict HandlePcp(Span<byte> slot, ref int length, Span<byte> ipSpan, in ParsedFrame p, FrameFlags flags, ref PacketContext ctx)
    {
        Span<long> results = PcpResults;
        if (p.L4Drop != ParsedFrame.None || SettleL4(ipSpan, p, flags) is var bad && bad != Ok)
        {
            results[(int)PcpOutcome.Dropped]++;
            return ctx.Drop(p.L4Drop != ParsedFrame.None ? p.L4Drop : DropReason.BadL4Checksum);
        }
        uint src = p.Source;
        if (!TakePcpToken(src))
        {
            results[(int)PcpOutcome.RateLimited]++;
            return ctx.Drop(DropReason.PcpRateLimited);
        }
        // The reply is written where a 20-byte IP header's payload begins (the request's options, if any, are dropped).
        int payload = EthernetHeader.Length + Ipv4Header.MinLength + Udp.Length;
        int requestOffset = EthernetHeader.Length + p.Ihl + Udp.Length;
        int requestLength = length - requestOffset;
        if (slot.Length - payload < PcpWire.MaxLength || requestLength < 0)
        {
            results[(int)PcpOutcome.Dropped]++;
            return ctx.Drop(DropReason.Truncated);
        }
        if (requestOffset != payload)
        {
            slot.Slice(requestOffset, requestLength).CopyTo(slot[payload..]);
        }
        Span<byte> msg = slot[payload..];
        int reply = AnswerPcp(msg, requestLength, src, out PcpOutcome outcome);
        results[(int)outcome]++;
        if (reply < 0)
        {
            return ctx.Drop(DropReason.PcpIgnored);
        }
        var eth = new EthernetHeader(slot);
        length = WriteUdpHeaders(slot, eth.Source, _addresses.InsideAddress, src, PcpPortRaw, p.Key.SourcePort, reply);
        return Verdict.ToInside;
    }

    /// <summary>
    /// The server itself, over a UDP payload: <paramref name="msg"/> holds the request's
    /// <paramref name="requestLength"/> bytes and room for the reply, which is written over it.
    /// Returns the reply's length, or -1 for silence; <paramref name="outcome"/> is what to count.
    /// Public to the tests through <see cref="AnswerPcpForTest"/>.
    /// </summary>
    private int AnswerPcp(Span<byte> msg, int requestLength, uint source, out PcpOutcome outcome)
    {
        Span<byte> request = msg[..requestLength];
        uint epoch = PcpEpoch(); // the first datagram starts the epoch when nothing else did
        switch (PcpCodec.ParseRequest(request, out PcpRequest rq, out PcpResultCode error))
        {
            case PcpCodec.Parse.Silent:
                outcome = PcpOutcome.Dropped;
                return -1;
            case PcpCodec.Parse.NatPmp:
                return AnswerNatPmp(msg, requestLength, source, epoch, out outcome);
            case PcpCodec.Parse.Error:
                outcome = PcpOutcomes.Of(error);
                return PcpCodec.WriteResponse(msg, requestLength, rq.Opcode, error, 0, epoch);
        }
        int body = rq.Opcode == PcpWire.OpMap ? PcpWire.MapLength : rq.Opcode == PcpWire.OpPeer ? PcpWire.PeerLength : PcpWire.HeaderLength;
        int echoed = body + rq.OptionsLength;
        PcpResultCode code = AuthorizePcp(ref rq, source, out uint inside);
        uint lifetime = 0, external = 0;
        ushort externalPort = 0;
        bool assigned = false;
        if (code == PcpResultCode.Success)
        {
            switch (rq.Opcode)
            {
                case PcpWire.OpMap:
                    code = PcpMap(ref rq, request.Slice(PcpWire.HeaderLength, PcpWire.NonceLength), inside, out external, out externalPort, out lifetime, out assigned);
                    break;
                case PcpWire.OpPeer:
                    code = PcpPeer(ref rq, inside, out external, out externalPort, out lifetime);
                    assigned = code == PcpResultCode.Success;
                    break;
            }
        }
        outcome = PcpOutcomes.Of(code);
        int n = PcpCodec.WriteResponse(msg, echoed, rq.Opcode, code, lifetime, epoch);
        if (assigned && code == PcpResultCode.Success)
        {
            PcpCodec.WriteAssigned(msg, externalPort, external);
        }
        return n;
    }

    /// <summary>
    /// Who may ask: a sender inside the inside networks (else NOT_AUTHORIZED), whose client address
    /// field is its source (else ADDRESS_MISMATCH, RFC 6887 section 8.3: a NAT between client and
    /// server); THIRD_PARTY only with <c>pcp.third-party</c>, for an inside host this shard owns.
    /// </summary>
    private PcpResultCode AuthorizePcp(ref PcpRequest rq, uint source, out uint inside)
    {
        inside = source;
        if (!_addresses.InInsideNetworks(source))
        {
            return PcpResultCode.NotAuthorized;
        }
        if (!rq.ClientIsIpv4 || rq.ClientAddress != source)
        {
            return PcpResultCode.AddressMismatch;
        }
        if (rq.HasThirdParty)
        {
            // With several workers a third party's state lives in its own shard: only one this shard owns is served.
            if (!_settings.Pcp.ThirdParty || !_addresses.InInsideNetworks(rq.ThirdPartyAddress)
                || _shardMap.OwnerOfInside(rq.ThirdPartyAddress) != _options.Shard)
            {
                return PcpResultCode.NotAuthorized;
            }
            inside = rq.ThirdPartyAddress;
        }
        return PcpResultCode.Success;
    }

    /// <summary>One request of the subscriber of <paramref name="inside"/> against <c>pcp.requests-per-second</c>.</summary>
    private bool TakePcpToken(uint inside)
    {
        int rate = _settings.Pcp.RequestsPerSecond;
        uint key = _settings.Cgnat.SubscriberOf(inside);
        if (_pcpRate.Count >= RateBucketLimit && !_pcpRate.ContainsKey(key))
        {
            return false; // too many senders since the last sweep: refuse rather than grow
        }
        ref RateBucket b = ref CollectionsMarshal.GetValueRefOrAddDefault(_pcpRate, key, out bool existed);
        if (!existed || _now - b.RefillMs >= 1000)
        {
            b.RefillMs = _now;
            b.Tokens = rate;
        }
        if (b.Tokens <= 0)
        {
            return false;
        }
        b.Tokens--;
        return true;
    }

    /// <summary>
    /// MAP (RFC 6887 section 11): create, refresh or (lifetime 0) delete the mapping of (protocol,
    /// <paramref name="inside"/>, internal port). A delete of a mapping that does not exist succeeds
    /// (section 15). Protocol 0 (all protocols) and internal port 0 (all ports) make an all-ports
    /// mapping with <c>pcp.all-ports</c> (<see cref="PcpMapAllPorts"/>); without it protocol 0 is
    /// UNSUPP_PROTOCOL, as is any protocol but TCP and UDP, and internal port 0 NOT_AUTHORIZED.
    /// The nonce: see <see cref="NonceAllows"/>.
    /// </summary>
    private PcpResultCode PcpMap(ref PcpRequest rq, ReadOnlySpan<byte> nonce, uint inside, out uint external, out ushort externalPort,
        out uint lifetime, out bool assigned)
    {
        external = 0;
        externalPort = 0;
        lifetime = 0;
        assigned = false;
        PcpMappings table = _pcp!;
        uint n0 = Checksum.ReadRaw32(nonce, 0), n1 = Checksum.ReadRaw32(nonce, 4), n2 = Checksum.ReadRaw32(nonce, 8);
        byte proto = rq.Protocol;
        if (rq.Lifetime == 0)
        {
            return PcpDelete(table, proto, inside, rq.InternalPortRaw, n0, n1, n2, rq.HasThirdParty, out external, out externalPort, out assigned);
        }
        if (_settings.Pcp.AllPorts && (proto == 0 || (rq.InternalPortRaw == 0 && proto is IpProtocol.Tcp or IpProtocol.Udp)))
        {
            // Protocol 0 with a nonzero internal port never gets here: the codec answers MALFORMED_REQUEST.
            PcpResultCode all = PcpMapAllPorts(ref rq, n0, n1, n2, inside, out external, out lifetime);
            assigned = all == PcpResultCode.Success;
            return all;
        }
        if (proto is not (IpProtocol.Tcp or IpProtocol.Udp))
        {
            return PcpResultCode.UnsuppProtocol;
        }
        if (rq.InternalPortRaw == 0)
        {
            return PcpResultCode.NotAuthorized; // "all ports" is not offered
        }
        PcpSettings ps = _settings.Pcp;
        lifetime = Math.Clamp(rq.Lifetime, (uint)ps.MinLifetime, (uint)ps.MaxLifetime);
        ushort suggested = FlowKey.PortToHost(rq.SuggestedPortRaw);
        int m = table.FindInternal(proto, inside, rq.InternalPortRaw);
        if (m >= 0 && !table.Live(m, _now))
        {
            table.Remove(m, _now, PcpDeleteCause.Expired);
            m = -1;
        }
        if (m >= 0)
        {
            ref PcpMapping e = ref table[m];
            if (!NonceAllows(ref e, n0, n1, n2, rq.HasThirdParty))
            {
                lifetime = 0;
                return PcpResultCode.NotAuthorized; // another client's mapping (section 11.3)
            }
            if (rq.PreferFailure && suggested != 0 && rq.SuggestedPortRaw != e.ExternalPortRaw)
            {
                lifetime = 0;
                return PcpResultCode.CannotProvideExternal;
            }
            table.Refresh(m, lifetime, _now, n0, n1, n2);
            table.SetFilters(m, ((ReadOnlySpan<PcpFilter>)rq.Filters)[..rq.FilterCount]);
            (external, externalPort, assigned) = (e.External, e.ExternalPortRaw, true);
            return PcpResultCode.Success;
        }
        PcpResultCode code = NewPcpMapping(table, proto, inside, rq.InternalPortRaw, suggested, rq.SuggestedAddress, rq.PreferFailure, natPmp: false, out m);
        if (code != PcpResultCode.Success)
        {
            lifetime = 0;
            return code;
        }
        table.Refresh(m, lifetime, _now, n0, n1, n2);
        table.SetFilters(m, ((ReadOnlySpan<PcpFilter>)rq.Filters)[..rq.FilterCount]);
        (external, externalPort, assigned) = (table[m].External, table[m].ExternalPortRaw, true);
        return PcpResultCode.Success;
    }

    /// <summary>
    /// Whether a refresh or delete of mapping <paramref name="e"/> with nonce (n0, n1, n2) may go
    /// on. RFC 6887 section 11.3 asks for the nonce that made the mapping; natd asks it of a
    /// THIRD_PARTY request (or a NAT-PMP-made mapping's PCP refresh, which has none to show), and
    /// takes a request from the mapping's own internal host (its address proven by the source
    /// check and ADDRESS_MISMATCH, its internal port bound by one application) with any nonce,
    /// which then becomes the mapping's. Why: a client that lost its nonce (libpcp's pcpnatpmpc
    /// draws one per run; an application that restarted) could otherwise neither refresh nor
    /// delete its own mapping, only wait for it to lapse; draft-cheshire-pcp-unsupp-family
    /// ("Updates to the PCP Specification") drops the server's nonce check for that reason.
    /// </summary>
    private static bool NonceAllows(ref PcpMapping e, uint n0, uint n1, uint n2, bool thirdParty)
        => (e.Nonce0 == n0 && e.Nonce1 == n1 && e.Nonce2 == n2) || (!thirdParty && !e.NatPmp);

    /// <summary>A MAP with lifetime 0 (RFC 6887 section 15): one mapping, or with protocol or port 0 every mapping of the host that carries the nonce.</summary>
    private PcpResultCode PcpDelete(PcpMappings table, byte proto, uint inside, ushort portRaw, uint n0, uint n1, uint n2, bool thirdParty,
        out uint external, out ushort externalPort, out bool assigned)
    {
        external = 0;
        externalPort = 0;
        assigned = false;
        if (proto == 0 || portRaw == 0)
        {
            for (int k = 0; k < table.Capacity; k++)
            {
                ref PcpMapping e = ref table[k];
                if (e.InUse && e.Internal == inside && (proto == 0 || e.Protocol == proto) && e.Nonce0 == n0 && e.Nonce1 == n1 && e.Nonce2 == n2)
                {
                    table.Remove(k, _now, PcpDeleteCause.Client);
                }
            }
            return PcpResultCode.Success;
        }
        int m = table.FindInternal(proto, inside, portRaw);
        if (m < 0)
        {
            return PcpResultCode.Success;
        }
        ref PcpMapping found = ref table[m];
        if (!NonceAllows(ref found, n0, n1, n2, thirdParty))
        {
            return PcpResultCode.NotAuthorized;
        }
        (external, externalPort, assigned) = (found.External, found.ExternalPortRaw, true);
        table.Remove(m, _now, PcpDeleteCause.Client);
        return PcpResultCode.Success;
    }

    /// <summary>
    /// A new mapping's external endpoint: the implicit mapping the host already has for this
    /// endpoint (RFC 6887 section 11.3: its port is kept), else the suggested port when it is free,
    /// in <c>pcp.allowed-ports</c>, on the subscriber's paired address, owned by this shard and (with
    /// port blocks or deterministic ranges) the subscriber's, else an assigned one; PREFER_FAILURE
    /// with the suggestion unavailable is CANNOT_PROVIDE_EXTERNAL (section 13.2). Quota:
    /// USER_EX_QUOTA; a full table or no port: NO_RESOURCES. A NAT-PMP mapping
    /// (<paramref name="natPmp"/>) is only ever on the address the client was told
    /// (<see cref="PcpPoolIndex"/>), since its reply cannot name another (RFC 6886 section 3.3):
    /// an implicit mapping elsewhere is not taken over, and a port that spilled to another address
    /// (<c>nat.pairing: spill</c>) is given back, NO_RESOURCES (NAT-PMP: out of resources).
    /// </summary>
    private PcpResultCode NewPcpMapping(PcpMappings table, byte proto, uint inside, ushort insidePortRaw, ushort suggested, uint suggestedAddress,
        bool preferFailure, bool natPmp, out int m)
    {
        m = -1;
        if (table.CountOf(inside) >= _settings.Pcp.MappingsPerSubscriber)
        {
            return PcpResultCode.UserExQuota;
        }
        if (table.Full)
        {
            return PcpResultCode.NoResources;
        }
        int told = natPmp ? PcpPoolIndex(inside) : -1;
        int implicitMapping = Table.FindMappingByInside(inside, insidePortRaw, proto);
        if (implicitMapping >= 0 && Table.Mappings[implicitMapping] is { InUse: true, StaticPort: false, PoolIndex: >= 0 } im
            && (!natPmp || im.PoolIndex == told))
        {
            if (preferFailure && suggested != 0 && FlowKey.PortToRaw(suggested) != im.ExternalPort)
            {
                return PcpResultCode.CannotProvideExternal;
            }
            // The mapping takes the port over; the implicit mapping keeps using it without owning it.
            Table.Mappings[implicitMapping].StaticPort = true;
            m = table.Add(proto, inside, insidePortRaw, im.ExternalAddress, im.ExternalPort, im.PoolIndex, natPmp);
            return PcpResultCode.Success;
        }
        if (!natPmp)
        {
            told = PcpPoolIndex(inside); // NAT-PMP asked once, above
        }
        int port = TakePcpPort(proto, inside, told, suggested, suggestedAddress, preferFailure, out int poolIndex, out PcpResultCode why);
        if (port < 0)
        {
            return why;
        }
        if (natPmp && poolIndex != told)
        {
            FreeAny(inside, poolIndex, SessionTable.ProtocolClass(proto), port);
            return PcpResultCode.NoResources;
        }
        m = table.Add(proto, inside, insidePortRaw, _addresses.Pool[poolIndex], FlowKey.PortToRaw((ushort)port), poolIndex, natPmp);
        return PcpResultCode.Success;
    }

    /// <summary>
    /// The pool index of <paramref name="inside"/>'s external address: its deterministic range's;
    /// with subscriber state its subscriber's pairing, made now when it has none and held for
    /// <c>pcp.min-lifetime</c> (<see cref="SubscriberPorts.HoldPairing"/>), so that the address a
    /// NAT-PMP client is told (RFC 6886 section 3.2, which its mapping replies do not repeat) is
    /// the one its mappings and flows then take, not the hash while its first port later pairs it
    /// with the least loaded; else the hash.
    /// </summary>
    private int PcpPoolIndex(uint inside)
    {
        if (_deterministic is not null && _deterministic.TryForward(inside, out DeterministicRange range))
        {
            return range.PoolIndex;
        }
        int paired = Subscribers?.HoldPairing(inside, _now, _settings.Pcp.MinLifetime * 1000L) ?? -1;
        return paired >= 0 ? paired : _addresses.PoolIndexFor(inside);
    }

    /// <summary>
    /// Takes an external port for a new PCP mapping (see <see cref="NewPcpMapping"/>), starting from
    /// <paramref name="pairedIndex"/> (<see cref="PcpPoolIndex"/>); -1 with the result code when none.
    /// </summary>
    private int TakePcpPort(byte proto, uint inside, int pairedIndex, ushort suggested, uint suggestedAddress, bool preferFailure, out int poolIndex, out PcpResultCode why)
    {
        why = PcpResultCode.Success;
        int cls = SessionTable.ProtocolClass(proto);
        poolIndex = pairedIndex;
        PortRange allowed = _settings.Pcp.AllowedPorts;
        Table.NowMs = _now;
        if (suggested != 0)
        {
            uint address = _addresses.Pool[poolIndex];
            if ((suggestedAddress == 0 || suggestedAddress == address) && allowed.Contains(suggested)
                && OwnsArrival(proto, address, suggested) && TryTakeSpecific(inside, poolIndex, cls, suggested))
            {
                return suggested;
            }
            if (preferFailure)
            {
                why = PcpResultCode.CannotProvideExternal;
                return -1;
            }
        }
        // Assigned: the allocator's pick (subscriber's block, deterministic range), kept only if
        // allowed and arriving here; a few tries, the refused picks given back after.
        Span<int> refused = stackalloc int[8];
        int nRefused = 0, port = -1;
        int pool = poolIndex;
        while (nRefused < refused.Length)
        {
            int p = AllocateAny(inside, cls, ref pool, out why);
            if (p < 0)
            {
                break;
            }
            if (allowed.Contains((ushort)p) && OwnsArrival(proto, _addresses.Pool[pool], (ushort)p))
            {
                port = p;
                break;
            }
            refused[nRefused++] = p;
        }
        for (int k = 0; k < nRefused; k++)
        {
            FreeAny(inside, pool, cls, refused[k]);
        }
        if (port < 0 && why == PcpResultCode.Success)
        {
            why = PcpResultCode.NoResources;
        }
        poolIndex = pool;
        return port;
    }

    /// <summary>True when an inbound packet to (<paramref name="address"/>, <paramref name="port"/>) reaches this shard (not a forward's, trigger's or another shard's port).</summary>
    private bool OwnsArrival(byte proto, uint address, ushort port)
        => (_options.Shards == 1 || _shardMap.OwnerOfArrival(proto, address, FlowKey.PortToRaw(port)) == _options.Shard)
           && !_forwards.IsForwardPort(proto, address, FlowKey.PortToRaw(port));

    private bool TryTakeSpecific(uint inside, int poolIndex, int cls, ushort port)
    {
        if (_deterministic is not null)
        {
            return _deterministic.TryForward(inside, out DeterministicRange r) && r.PoolIndex == poolIndex && port >= r.Low && port <= r.High
                && Table.Ports.TryReserve(poolIndex, cls, port);
        }
        if (Subscribers is { } sp)
        {
            return sp.TryTake(inside, poolIndex, cls, port, _now);
        }
        return Table.Ports.TryReserve(poolIndex, cls, port);
    }

    /// <summary>
    /// Takes a restored mapping's port (an explicit mapping's, or an all-ports mapping's anchor)
    /// when no restored session brought its block back: the free block is claimed for the
    /// subscriber again, paired with its address, as a restored session's port claims its block
    /// (<see cref="SubscriberPorts.Adopt"/>: the same holding, logged by the run that took it, so
    /// no new <c>port-block-allocate</c>).
    /// False without port blocks, or when the block is held (by another subscriber: the restored
    /// record never takes it over) or the port taken.
    /// </summary>
    private bool AdoptBlockPort(uint inside, int poolIndex, int cls, int port)
    {
        if (Subscribers is not { Blocks: { } blocks } sp)
        {
            return false;
        }
        int b = blocks.BlockOf(poolIndex, port);
        if (b < 0 || blocks.IsHeld(b) || !Table.Ports.TryReserve(poolIndex, cls, port))
        {
            return false;
        }
        sp.Adopt(inside, poolIndex, cls, port, _now, restored: true);
        return true;
    }

    private int AllocateAny(uint inside, int cls, ref int poolIndex, out PcpResultCode why)
    {
        why = PcpResultCode.Success;
        int port;
        if (_deterministic is not null)
        {
            if (!_deterministic.TryForward(inside, out DeterministicRange r))
            {
                why = PcpResultCode.NotAuthorized; // not a subscriber of the map: it gets no port at all
                return -1;
            }
            poolIndex = r.PoolIndex;
            port = Table.Ports.AllocateInRange(r.PoolIndex, cls, r.Low, r.High);
        }
        else if (Subscribers is { } sp)
        {
            port = sp.Allocate(inside, cls, privileged: false, _now, out poolIndex, out DropReason reason);
            if (port < 0 && reason == DropReason.SubscriberPortLimit)
            {
                why = PcpResultCode.UserExQuota; // the subscriber's port limit counts PCP's ports too
            }
        }
        else
        {
            port = Table.Ports.Allocate(poolIndex, cls, privileged: false);
        }
        if (port < 0 && why == PcpResultCode.Success)
        {
            why = PcpResultCode.NoResources;
        }
        return port;
    }

    private void FreeAny(uint inside, int poolIndex, int cls, int port)
    {
        if (_deterministic is not null)
        {
            Table.Ports.Free(poolIndex, cls, port);
        }
        else
        {
            Table.FreeUnusedPort(inside, poolIndex, cls, port);
        }
    }

    /// <summary>
    /// PEER (RFC 6887 section 12): the outbound mapping of the flow (protocol, internal
    /// endpoint, remote peer): an existing session is touched, a new one created as the slow path
    /// would (the rules must masquerade it, else NOT_AUTHORIZED). Reports its external endpoint and
    /// the lifetime left, at most the flow's idle timeout. Lifetime 0 only reports.
    /// </summary>
    private PcpResultCode PcpPeer(ref PcpRequest rq, uint inside, out uint external, out ushort externalPort, out uint lifetime)
    {
        external = 0;
        externalPort = 0;
        lifetime = 0;
        byte proto = rq.Protocol;
        if (proto is not (IpProtocol.Tcp or IpProtocol.Udp))
        {
            return PcpResultCode.UnsuppProtocol;
        }
        var key = new FlowKey(inside, rq.PeerAddress, rq.InternalPortRaw, rq.PeerPortRaw, proto);
        int s = LookupIn2Out(key);
        if (s < 0)
        {
            if (rq.Lifetime == 0)
            {
                return PcpResultCode.Success; // nothing to extend, nothing made
            }
            if (DecideQuietly(key) != RuleAction.Masquerade || _addresses.NextHopOutside(rq.PeerAddress) == 0)
            {
                return PcpResultCode.NotAuthorized;
            }
            s = CreateIn2Out(key, out DropReason reason);
            if (s < 0)
            {
                return reason is DropReason.SubscriberSessionLimit or DropReason.SubscriberPortLimit or DropReason.SubscriberRateLimit
                    ? PcpResultCode.UserExQuota : PcpResultCode.NoResources;
            }
            Table.Sessions[s].Alg = _settings.Algs.Classify(proto, FlowKey.PortToHost(rq.PeerPortRaw));
        }
        ref Session ses = ref Table.Sessions[s];
        if (rq.Lifetime != 0)
        {
            Table.Touch(s, _now);
        }
        long leftMs = _timeoutMs[(int)ses.Class] - (_now - ses.LastSeenMs);
        lifetime = (uint)Math.Clamp(Math.Min(rq.Lifetime, leftMs / 1000), 0, uint.MaxValue);
        external = ses.ExternalAddress;
        externalPort = ses.ExternalPort;
        return PcpResultCode.Success;
    }

    /// <summary>
    /// A NAT-PMP request (RFC 6886, reached by RFC 6887 Appendix A's version negotiation): the
    /// external address (opcode 0), or a UDP (1) or TCP (2) mapping, which is a PCP mapping without
    /// a nonce. Lifetime 0 deletes; with internal port 0 too, every mapping of the host for that
    /// protocol (section 3.4).
    /// </summary>
    private int AnswerNatPmp(Span<byte> msg, int requestLength, uint source, uint epoch, out PcpOutcome outcome)
    {
        switch (NatPmpCodec.ParseRequest(msg[..requestLength], out NatPmpRequest rq))
        {
            case NatPmpCodec.Parse.Silent:
                outcome = PcpOutcome.Dropped;
                return -1;
            case NatPmpCodec.Parse.Malformed:
                outcome = PcpOutcome.NatPmpMalformed;
                return -1;
            case NatPmpCodec.Parse.UnsupportedOpcode:
                outcome = PcpOutcome.NatPmpUnsuppOpcode;
                return NatPmpCodec.WriteError(msg, rq.Opcode, NatPmpResultCode.UnsupportedOpcode, epoch);
        }
        bool inside = _addresses.InInsideNetworks(source);
        if (rq.Opcode == PcpWire.NatPmpOpAddress)
        {
            NatPmpResultCode r = inside ? NatPmpResultCode.Success : NatPmpResultCode.NotAuthorized;
            outcome = PcpOutcomes.Of(r);
            return NatPmpCodec.WriteAddress(msg, r, epoch, inside ? _addresses.Pool[PcpPoolIndex(source)] : 0);
        }
        ushort externalPort = 0;
        uint lifetime = 0;
        NatPmpResultCode code = inside ? NatPmpMap(ref rq, source, out externalPort, out lifetime) : NatPmpResultCode.NotAuthorized;
        if (code != NatPmpResultCode.Success)
        {
            externalPort = 0;
            lifetime = 0;
        }
        outcome = PcpOutcomes.Of(code);
        return NatPmpCodec.WriteMapping(msg, rq.Opcode, code, epoch, rq.InternalPortRaw, externalPort, lifetime);
    }

    private NatPmpResultCode NatPmpMap(ref NatPmpRequest rq, uint inside, out ushort externalPort, out uint lifetime)
    {
        externalPort = 0;
        lifetime = 0;
        PcpMappings table = _pcp!;
        byte proto = rq.Protocol;
        int m = rq.InternalPortRaw == 0 ? -1 : table.FindInternal(proto, inside, rq.InternalPortRaw);
        if (rq.Lifetime == 0)
        {
            // A PCP client's mapping (it has a nonce) is not NAT-PMP's to delete.
            if (rq.InternalPortRaw != 0)
            {
                if (m >= 0 && table[m].NatPmp)
                {
                    table.Remove(m, _now, PcpDeleteCause.Client);
                }
                return NatPmpResultCode.Success;
            }
            for (int k = 0; k < table.Capacity; k++)
            {
                ref PcpMapping e = ref table[k];
                if (e.InUse && e.Internal == inside && e.Protocol == proto && e.NatPmp)
                {
                    table.Remove(k, _now, PcpDeleteCause.Client);
                }
            }
            return NatPmpResultCode.Success;
        }
        if (rq.InternalPortRaw == 0)
        {
            return NatPmpResultCode.NotAuthorized;
        }
        PcpSettings ps = _settings.Pcp;
        lifetime = Math.Clamp(rq.Lifetime, (uint)ps.MinLifetime, (uint)ps.MaxLifetime);
        if (m >= 0 && !table.Live(m, _now))
        {
            table.Remove(m, _now, PcpDeleteCause.Expired);
            m = -1;
        }
        if (m >= 0)
        {
            if (!table[m].NatPmp)
            {
                return NatPmpResultCode.NotAuthorized; // a PCP client holds it
            }
        }
        else
        {
            PcpResultCode code = NewPcpMapping(table, proto, inside, rq.InternalPortRaw, FlowKey.PortToHost(rq.SuggestedPortRaw), 0, preferFailure: false, natPmp: true, out m);
            if (code != PcpResultCode.Success)
            {
                return code is PcpResultCode.NotAuthorized ? NatPmpResultCode.NotAuthorized : NatPmpResultCode.OutOfResources;
            }
            table.SetFilters(m, []);
        }
        table.Refresh(m, lifetime, _now, 0, 0, 0);
        externalPort = table[m].ExternalPortRaw;
        return NatPmpResultCode.Success;
    }

    /// <summary>
    /// Out2in flow opener: a packet to a live PCP mapping's external endpoint from a remote its
    /// FILTERs admit (all, without filters) opens a session to the internal host, after the inbound
    /// rules (<c>in: outside</c>), a TCP one only with a SYN, within the subscriber's limits.
    /// </summary>
    /// <returns>False when no live mapping has the destination; true when handled (opened, or dropped with the reason in <paramref name="ctx"/>).</returns>
    private bool TryOpenPcp(in FlowKey key, byte tcpFlags, ref PacketContext ctx, out int session)
    {
        session = -1;
        PcpMappings table = _pcp!;
        int m = table.FindExternal(key.Protocol, key.Destination, key.DestinationPort);
        if (!table.Live(m, _now))
        {
            return false;
        }
        ref PcpMapping e = ref table[m];
        DropReason reason = PcpInboundRefusal(table, m, key, tcpFlags);
        if (reason == Ok)
        {
            session = OpenOnPcpMapping(ref e, key, out reason);
        }
        if (session < 0)
        {
            ctx.Drop(reason);
        }
        return true;
    }

    /// <summary>
    /// Why mapping <paramref name="m"/> refuses a new inbound flow <paramref name="key"/>, or
    /// <see cref="Ok"/>: its FILTERs (PcpFiltered), the inbound rules (RuleDeny), and for TCP
    /// anything but a SYN (NoSession). Explicit and all-ports mappings alike.
    /// </summary>
    private DropReason PcpInboundRefusal(PcpMappings table, int m, in FlowKey key, byte tcpFlags)
    {
        if (!table.Admits(m, key.Source, key.SourcePort))
        {
            return DropReason.PcpFiltered;
        }
        if (!InboundAllowed(key))
        {
            return DropReason.RuleDeny;
        }
        return key.Protocol == IpProtocol.Tcp && (tcpFlags & (Tcp.Syn | Tcp.Ack | Tcp.Rst)) != Tcp.Syn ? DropReason.NoSession : Ok;
    }

    private int OpenOnPcpMapping(ref PcpMapping e, in FlowKey out2in, out DropReason reason)
    {
        if (Table.Count >= Table.Capacity)
        {
            reason = DropReason.SessionLimit;
            return -1;
        }
        if (Subscribers is { } sp && !sp.Admit(e.Internal, _now, out reason))
        {
            return -1; // a session on a PCP mapping counts against its subscriber too
        }
        int sm = PcpSessionMapping(ref e);
        if (sm < 0)
        {
            reason = DropReason.SessionLimit;
            return -1;
        }
        var in2out = new FlowKey(e.Internal, out2in.Source, e.InternalPortRaw, out2in.SourcePort, e.Protocol);
        int s = Table.AddSession(sm, in2out, out2in, InitialClass(e.Protocol), _now);
        if (s < 0)
        {
            if (Table.Mappings[sm].SessionCount == 0)
            {
                Table.RemoveMapping(sm);
            }
            reason = DropReason.SessionLimit;
            return -1;
        }
        Table.Sessions[s].Origin = SessionOrigin.Inbound;
        reason = Ok;
        return s;
    }

    /// <summary>
    /// The session table's mapping for PCP mapping <paramref name="e"/>'s endpoints: the live one
    /// of the internal endpoint when it has the same external endpoint, else a new one whose port
    /// the PCP mapping owns (static: the session table never frees it). -1 when the table is full.
    /// </summary>
    private int PcpSessionMapping(ref PcpMapping e)
    {
        bool eim = _settings.Mapping == MappingBehaviour.EndpointIndependent;
        int sm = eim ? Table.FindMappingByInside(e.Internal, e.InternalPortRaw, e.Protocol) : -1;
        if (sm >= 0 && Table.Mappings[sm].ExternalAddress == e.External && Table.Mappings[sm].ExternalPort == e.ExternalPortRaw)
        {
            return sm;
        }
        return Table.AddMapping(e.Internal, e.InternalPortRaw, e.External, e.ExternalPortRaw, e.Protocol, -1, eim && sm < 0);
    }

    /// <summary>In2out: the session table's mapping a new flow from a PCP-mapped internal endpoint uses (endpoint-independent: the PCP mapping's external port), or -1.</summary>
    private int PcpIn2OutMapping(in FlowKey key)
    {
        int m = _pcp!.FindInternal(key.Protocol, key.Source, key.SourcePort);
        return _pcp.Live(m, _now) ? PcpSessionMapping(ref _pcp[m]) : -1;
    }

    /// <summary>Sweeper's slice for PCP: expired mappings, stale rate buckets, and shard 0's announcements.</summary>
    private void SweepPcp(long nowMs, int budget)
    {
        if (_pcp is null)
        {
            return;
        }
        _pcp.Expire(nowMs, budget);
        if (_pcpRate.Count > 0)
        {
            foreach (var (key, bucket) in _pcpRate)
            {
                if (nowMs - bucket.RefillMs >= 2000)
                {
                    _pcpRate.Remove(key); // a full bucket again: nothing to remember
                }
            }
        }
        if (_announcesLeft > 0 && _settings.Pcp.Enabled && _sink is not null && nowMs >= _nextAnnounceMs)
        {
            if (_pcpEpochMs < 0)
            {
                _pcpEpochMs = nowMs;
            }
            Announce(nowMs);
        }
    }

    /// <summary>
    /// Multicasts an unsolicited ANNOUNCE (RFC 6887 section 14.1.3: SUCCESS, lifetime 0, the epoch)
    /// to 224.0.0.1:5350 on the inside, and with a one-address pool NAT-PMP's external address
    /// announcement (RFC 6886 section 3.2.1) too, so clients that lost state learn the epoch reset
    /// and map again. Ten times, the gap doubling from 250 ms (at the sweeper's pace).
    /// </summary>
    private void Announce(long nowMs)
    {
        _now = nowMs;
        byte[] frame = _pcpScratch!;
        int payload = EthernetHeader.Length + Ipv4Header.MinLength + Udp.Length;
        uint group = Checksum.ReadRaw32(PcpWire.AllHosts, 0);
        int n = PcpCodec.WriteAnnounce(frame.AsSpan(payload), PcpEpoch());
        int len = WriteUdpHeaders(frame, AllHostsMac, _addresses.InsideAddress, group, PcpPortRaw, PcpClientPortRaw, n);
        _sink!.Send(Side.Inside, frame.AsSpan(0, len));
        if (_addresses.Pool.Length == 1)
        {
            n = NatPmpCodec.WriteAddress(frame.AsSpan(payload), NatPmpResultCode.Success, PcpEpoch(), _addresses.Pool[0]);
            len = WriteUdpHeaders(frame, AllHostsMac, _addresses.InsideAddress, group, PcpPortRaw, PcpClientPortRaw, n);
            _sink.Send(Side.Inside, frame.AsSpan(0, len));
        }
        _announcesLeft--;
        _nextAnnounceMs = nowMs + _announceGapMs;
        _announceGapMs *= 2;
    }

    /// <summary>
    /// Writes Ethernet (to <paramref name="dstMac"/> from natd's inside MAC), a 20-byte IPv4 header
    /// (TTL 64) and UDP headers before the <paramref name="payloadLength"/> bytes already at offset
    /// 42 of <paramref name="frame"/>, with the UDP checksum. Returns the frame's length.
    /// </summary>
    private int WriteUdpHeaders(Span<byte> frame, MacAddress dstMac, uint source, uint destination, ushort sourcePortRaw, ushort destinationPortRaw, int payloadLength)
    {
        var eth = new EthernetHeader(frame);
        eth.Destination = dstMac;
        eth.Source = InsideMac;
        eth.EtherType = EtherType.Ipv4;
        int udpLength = Udp.Length + payloadLength;
        int total = Ipv4Header.MinLength + udpLength;
        Span<byte> ipSpan = frame.Slice(EthernetHeader.Length, total);
        ipSpan[..Ipv4Header.MinLength].Clear();
        ipSpan[0] = 0x45;
        var ip = new Ipv4Header(ipSpan);
        ip.TotalLength = total;
        ip.Ttl = 64;
        ip.Protocol = IpProtocol.Udp;
        ip.Source = source;
        ip.Destination = destination;
        ip.UpdateChecksum();
        Span<byte> udp = ipSpan[Ipv4Header.MinLength..];
        Checksum.WriteRaw16(udp, 0, sourcePortRaw);
        Checksum.WriteRaw16(udp, 2, destinationPortRaw);
        BinaryPrimitives.WriteUInt16BigEndian(udp[4..], (ushort)udpLength);
        Checksum.WriteRaw16(udp, Udp.ChecksumOffset, 0);
        ushort c = Checksum.Compute(udp, Checksum.PseudoHeaderSum(source, destination, IpProtocol.Udp, udpLength));
        Checksum.WriteRaw16(udp, Udp.ChecksumOffset, c == 0 ? (ushort)0xFFFF : c);
        return EthernetHeader.Length + total;
    }

    /// <summary>A reload: new policy for new requests; a changed pool, port range or carrier-grade setting forgets the mappings and starts a new epoch.</summary>
    private void ReloadPcp(NatSettings cur, NatSettings next, bool poolChanged)
    {
        if (_pcp is not null)
        {
            bool lost = poolChanged || cur.Cgnat != next.Cgnat || !next.Pcp.Enabled;
            if (lost && _pcp.Count > 0)
            {
                if (poolChanged)
                {
                    _pcp.Clear(_now); // their ports were the old allocator's
                }
                else
                {
                    RemoveAllPcp();
                }
            }
            else if (cur.Pcp.AllPorts && !next.Pcp.AllPorts && _pcp.HasAllPorts)
            {
                RemoveAllPortsMappings(); // all-ports turned off: those mappings go, their sessions run on
            }
            if (lost && next.Pcp.Enabled)
            {
                StartEpoch(-1); // counts from the next clock the engine sees (a reload carries none)
            }
        }
        CreatePcp(next);
    }

    private void RemoveAllPcp()
    {
        for (int m = 0; m < _pcp!.Capacity; m++)
        {
            if (_pcp[m].InUse)
            {
                _pcp.Remove(m, _now, PcpDeleteCause.Reload);
            }
        }
    }

    /// <summary>
    /// Adds this shard's live PCP and NAT-PMP mappings to <paramref name="into"/> (protocol,
    /// internal and external endpoints, lifetime left at <paramref name="nowMs"/>, filters, nonce):
    /// the read side of <c>natctl mappings</c>. The engine's thread only (a poller message); allocates.
    /// </summary>
    public void CollectPcpMappings(List<PcpMappingInfo> into, long nowMs)
    {
        ArgumentNullException.ThrowIfNull(into);
        int from = into.Count;
        _pcp?.Collect(into, nowMs);
        DescribeAllPorts(into, from);
    }

    /// <summary>
    /// The operator's delete (natctl mappings delete): removes the PCP or NAT-PMP mapping of
    /// (<paramref name="protocol"/>, <paramref name="address"/> network order, <paramref name="port"/>
    /// host order), the address and port being the mapping's internal endpoint, or its external one
    /// when <paramref name="external"/>; internal port 0 names the host's all-ports mapping of the
    /// protocol (0: the TCP-and-UDP one). No nonce is asked. As a client's delete (RFC 6887 section
    /// 15), it ends the mapping's inbound reachability: no new flow opens on it; sessions in progress
    /// go on under their own timeouts. Logged as a delete with cause operator. The engine's thread only.
    /// </summary>
    /// <returns>True when such a mapping was live (an expired one is removed as expired and not counted).</returns>
    public bool DeletePcpMapping(byte protocol, uint address, ushort port, bool external, long nowMs)
    {
        if (_pcp is null)
        {
            return false;
        }
        ushort raw = FlowKey.PortToRaw(port);
        int m = external ? _pcp.FindExternal(protocol, address, raw) : _pcp.FindInternal(protocol, address, raw);
        if (m < 0)
        {
            return false;
        }
        SetClock(nowMs);
        bool live = _pcp.Live(m, nowMs);
        _pcp.Remove(m, nowMs, live ? PcpDeleteCause.Operator : PcpDeleteCause.Expired);
        return live;
    }

    /// <summary>The operator's delete of the mapping of an internal endpoint (<see cref="DeletePcpMapping(byte, uint, ushort, bool, long)"/>).</summary>
    /// <returns>True when such a mapping was live.</returns>
    public bool DeletePcpMapping(byte protocol, uint inside, ushort insidePort, long nowMs)
        => DeletePcpMapping(protocol, inside, insidePort, external: false, nowMs);

    /// <summary>
    /// Adds this shard's live PCP and NAT-PMP mappings to <paramref name="into"/> for the restart
    /// snapshot (<c>natd run --state</c>): endpoints, lifetime granted and left, filters, nonce. The
    /// engine's thread only; allocates.
    /// </summary>
    public void ExportPcpMappings(List<PcpMappingRecord> into, long nowMs) => _pcp?.Export(into, nowMs);

    /// <summary>
    /// Restores saved PCP mappings (before the poller starts) with the lifetime they had left
    /// (<see cref="PcpMappingRecord.LifetimeLeftMs"/>, the time natd was down already taken off).
    /// Each takes its external port back (from the restored session mapping of the same endpoints
    /// when there is one, else from the allocator, the subscriber's block or range); one that has
    /// expired, whose address left the pool, whose port is taken or now arrives at another shard, or
    /// with PCP off, is dropped. Not logged: the mapping was logged when made. The epoch is this
    /// run's (RFC 6887 section 8.5: a restart resets it), so clients learn of the restart from the
    /// ANNOUNCE or their next reply and refresh, keeping the same external port.
    /// </summary>
    /// <returns>Mappings restored.</returns>
    public int ImportPcpMappings(IEnumerable<PcpMappingRecord> records, long nowMs)
    {
        if (_pcp is null || !_settings.Pcp.Enabled)
        {
            return 0;
        }
        SetClock(nowMs);
        Table.NowMs = nowMs;
        int n = 0;
        foreach (PcpMappingRecord r in records)
        {
            if (ImportPcpMapping(r, nowMs))
            {
                n++;
            }
        }
        return n;
    }

    private bool ImportPcpMapping(PcpMappingRecord r, long nowMs)
    {
        PcpMappings table = _pcp!;
        ushort iraw = FlowKey.PortToRaw(r.InternalPort), eraw = FlowKey.PortToRaw(r.ExternalPort);
        int poolIndex = _addresses.PoolIndexOf(r.External);
        if (r.InternalPort == 0)
        {
            return r.LifetimeLeftMs > 0 && poolIndex >= 0 && !table.Full && _addresses.InInsideNetworks(r.Internal)
                && r.Filters.Count <= PcpRequest.MaxFilters && PcpMappingRecord.TryParseNonce(r.Nonce, out uint a0, out uint a1, out uint a2)
                && ImportAllPorts(r, poolIndex, a0, a1, a2);
        }
        if (r.LifetimeLeftMs <= 0 || r.Protocol is not (IpProtocol.Tcp or IpProtocol.Udp) || poolIndex < 0 || table.Full
            || !_addresses.InInsideNetworks(r.Internal) || table.FindInternal(r.Protocol, r.Internal, iraw) >= 0
            || table.FindExternal(r.Protocol, r.External, eraw) >= 0 || !OwnsArrival(r.Protocol, r.External, r.ExternalPort)
            || r.Filters.Count > PcpRequest.MaxFilters || !PcpMappingRecord.TryParseNonce(r.Nonce, out uint n0, out uint n1, out uint n2))
        {
            return false;
        }
        int sm = Table.FindMappingByInside(r.Internal, iraw, r.Protocol);
        int m;
        if (sm >= 0)
        {
            // A restored session of the same endpoint: the mapping takes its port over, as a new one would (NewPcpMapping).
            ref Mapping im = ref Table.Mappings[sm];
            if (!im.InUse || im.StaticPort || im.PoolIndex < 0 || im.ExternalAddress != r.External || im.ExternalPort != eraw)
            {
                return false;
            }
            im.StaticPort = true;
            m = table.Add(r.Protocol, r.Internal, iraw, r.External, eraw, im.PoolIndex, r.NatPmp);
        }
        else
        {
            int cls = SessionTable.ProtocolClass(r.Protocol);
            // With port blocks the subscriber holds no block yet when no restored session used
            // this one: the mapping's port claims it back (as an all-ports anchor does).
            if (!TryTakeSpecific(r.Internal, poolIndex, cls, r.ExternalPort) && !AdoptBlockPort(r.Internal, poolIndex, cls, r.ExternalPort))
            {
                return false;
            }
            m = table.Add(r.Protocol, r.Internal, iraw, r.External, eraw, poolIndex, r.NatPmp);
        }
        if (m < 0)
        {
            return false;
        }
        RestorePcpState(table, m, r, nowMs, n0, n1, n2);
        return true;
    }

    /// <summary>Gives a restored mapping (explicit or all-ports) its saved FILTERs, lifetime, remaining time and nonce.</summary>
    private static void RestorePcpState(PcpMappings table, int m, PcpMappingRecord r, long nowMs, uint n0, uint n1, uint n2)
    {
        Span<PcpFilter> filters = stackalloc PcpFilter[PcpRequest.MaxFilters];
        for (int k = 0; k < r.Filters.Count; k++)
        {
            filters[k] = r.Filters[k];
        }
        table.SetFilters(m, filters[..r.Filters.Count]);
        table.SetState(m, r.Lifetime, nowMs + r.LifetimeLeftMs, n0, n1, n2);
    }

    /// <summary>
    /// Runs the PCP/NAT-PMP server over a bare UDP payload from <paramref name="source"/> (network
    /// order) at <paramref name="nowMs"/>, as <see cref="HandlePcp"/> does for a frame, without the
    /// rate limit: the protocol tests' entry. <paramref name="msg"/> holds the request and room for
    /// the reply (1100 bytes). Returns the reply's length, or -1 for silence.
    /// </summary>
    internal int AnswerPcpForTest(Span<byte> msg, int requestLength, uint source, long nowMs, out PcpOutcome outcome)
    {
        SetClock(nowMs);
        int n = AnswerPcp(msg, requestLength, source, out outcome);
        PcpResults[(int)outcome]++;
        return n;
    }
}
