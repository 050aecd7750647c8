using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Natd.Dataplane.Rings;

namespace Natd.Dataplane.Sessions;

/// <summary>Expiry classes: each has one timeout, so each LRU list is ordered by deadline.</summary>
public enum LruClass : byte
{
    /// <summary>TCP after both SYNs (RFC 5382 established timeout).</summary>
    TcpEstablished,
    /// <summary>TCP before establishment, after FIN in both directions, or after RST (RFC 7857 2.2).</summary>
    TcpTransitory,
    /// <summary>UDP (RFC 4787 REQ-5).</summary>
    Udp,
    /// <summary>ICMP query (RFC 5508 REQ-1).</summary>
    Icmp,
    /// <summary>UDP to or from a well-known port with the first timer of its own (RFC 4787 REQ-5a, <see cref="UdpPortTimeouts"/>).</summary>
    UdpPort0,
    /// <summary>The second timer of <see cref="UdpPortTimeouts"/>.</summary>
    UdpPort1,
    /// <summary>The third timer of <see cref="UdpPortTimeouts"/>.</summary>
    UdpPort2,
    /// <summary>The fourth timer of <see cref="UdpPortTimeouts"/>.</summary>
    UdpPort3,
}

/// <summary>TCP observations of a session (RFC 7857 section 2.2 state tracking).</summary>
[Flags]
public enum TcpSeen : byte
{
    /// <summary>Nothing yet.</summary>
    None = 0,
    /// <summary>SYN from inside.</summary>
    SynIn2Out = 1,
    /// <summary>SYN from outside.</summary>
    SynOut2In = 2,
    /// <summary>FIN from inside.</summary>
    FinIn2Out = 4,
    /// <summary>FIN from outside.</summary>
    FinOut2In = 8,
    /// <summary>RST in either direction.</summary>
    Rst = 16,
    /// <summary>ACK seen from the side that sent the first SYN after the peer's SYN (handshake complete).</summary>
    Established = 32,
}

/// <summary>How a session came to be: decides what a reload re-checks and how a delete treats its port.</summary>
public enum SessionOrigin : byte
{
    /// <summary>An inside host's new flow, masqueraded by a rule (or the built-in rule).</summary>
    Masquerade,
    /// <summary>An inside host's new flow accepted by a rule: routed without translation.</summary>
    Accept,
    /// <summary>An inbound connection to a port forward.</summary>
    Forward,
    /// <summary>An inbound packet admitted on an existing mapping by address-dependent or endpoint-independent filtering.</summary>
    Inbound,
    /// <summary>A port-less protocol (GRE, ESP, ...) masqueraded by a rule: one inside host per remote.</summary>
    PortLess,
    /// <summary>A connection an ALG expected (FTP data, DCC, a TFTP reply) or a port trigger opened.</summary>
    Related,
}

/// <summary>
/// One session: its inside-to-outside 5-tuple, the external endpoint, and the precomputed rewrite.
/// The outside-to-inside key is implied (remote -> external), so it is computed, not stored: 88
/// bytes a session (a test pins it). Sessions live in a preallocated array and refer to each
/// other by index (no references, no allocation). Fields are laid out in this order on purpose:
/// what a translated packet reads or writes (key, external endpoint, deltas, last seen, counters,
/// class and flags) fills the first <see cref="HotBytes"/> bytes, so with the 88-byte stride a hit
/// touches two cache lines (never three) and <see cref="SessionTable.PrefetchSession"/> fetches exactly
/// those; the list links and the mapping (expiry, delete, listing) come last.
/// </summary>
[StructLayout(LayoutKind.Sequential)]
internal struct Session
{
    /// <summary>Bytes from the start that the fast path touches (through <see cref="Alg"/>).</summary>
    public const int HotBytes = 67;

    public FlowKey In2Out;            // key of packets from inside: inside -> remote
    public long LastSeenMs;
    public long BytesIn2Out;
    public long BytesOut2In;
    public uint PacketsIn2Out;
    public uint PacketsOut2In;
    public uint ExternalAddress;      // network order
    public ushort ExternalPort;       // raw (network order in memory); ICMP: the translated identifier
    public ushort L4DeltaIn2Out;      // folded checksum delta for the L4 checksum (address + port)
    public ushort L4DeltaOut2In;
    public ushort IpDeltaIn2Out;      // folded delta for the IPv4 header checksum (address only)
    public ushort IpDeltaOut2In;
    public LruClass Class;
    public TcpSeen Tcp;
    public SessionOrigin Origin;
    public bool InUse;
    public Sessions.AlgKind Alg;           // its frames go through this ALG's helper (None: the fast path)
    // Cold: touched on create, delete, expiry, TCP state change and the LRU move once a second.
    public int LruPrev;
    public int LruNext;
    public int Mapping;
    public int MapPrev;
    public int MapNext;

    /// <summary>Key of packets from outside: remote -> external (ICMP: the reply's identifier as destination port).</summary>
    public readonly FlowKey Out2In
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => new(In2Out.Destination, ExternalAddress, In2Out.DestinationPort, ExternalPort, In2Out.Protocol);
    }
}

/// <summary>
/// An external endpoint lent to an inside endpoint (RFC 4787 "mapping"). Under endpoint-independent
/// mapping every session from the same inside address and port shares one; under
/// address-and-port-dependent mapping each session has its own. 28 bytes (a test pins it).
/// </summary>
[StructLayout(LayoutKind.Sequential)]
internal struct Mapping
{
    public uint InsideAddress;
    public uint ExternalAddress;
    public int SessionCount;
    public int FirstSession;          // when free: the next free mapping
    public int Tag;                   // port forward index << 8 | backend index, for forward mappings
    public ushort InsidePort;         // raw
    public ushort ExternalPort;       // raw
    public short PoolIndex;           // -1: the port is not the allocator's
    public byte Protocol;
    private byte _flags;

    /// <summary>Indexed by inside endpoint (endpoint-independent mapping).</summary>
    public bool IndexedByInside { readonly get => (_flags & 1) != 0; set => _flags = (byte)(value ? _flags | 1 : _flags & ~1); }

    /// <summary>The port is not the allocator's to free (forward ports, identity mappings, an address that left the pool).</summary>
    public bool StaticPort { readonly get => (_flags & 2) != 0; set => _flags = (byte)(value ? _flags | 2 : _flags & ~2); }

    /// <summary>In use (not on the free list).</summary>
    public bool InUse { readonly get => (_flags & 4) != 0; set => _flags = (byte)(value ? _flags | 4 : _flags & ~4); }

    /// <summary>
    /// Its port goes back without the quarantine (<c>nat.port-reuse-delay</c>): a PCP all-ports
    /// session mapping, whose port is the subscriber's and is opened again to the same host and port.
    /// </summary>
    public bool ReuseAtOnce { readonly get => (_flags & 8) != 0; set => _flags = (byte)(value ? _flags | 8 : _flags & ~8); }

    /// <summary>(inside address, 0, inside port, 0, protocol): the endpoint-independent lookup key.</summary>
    public readonly FlowKey InsideKey => new(InsideAddress, 0, InsidePort, 0, Protocol);

    /// <summary>(0, external address, 0, external port, protocol): the external endpoint key.</summary>
    public readonly FlowKey ExternalKey => new(0, ExternalAddress, 0, ExternalPort, Protocol);
}

/// <summary>
/// The session table of one shard: sessions and mappings in preallocated struct arrays, hash
/// indexes for both directions and for mappings, the external port allocator, and one LRU list per
/// <see cref="LruClass"/> for expiry without a timer per session. Single writer (its poller).
/// </summary>
public sealed class SessionTable
{
    /// <summary>Expiry classes (<see cref="LruClass"/>): one LRU list each.</summary>
    public const int ClassCount = 8;

    // Gauges by class: the well-known-port UDP classes count as UDP.
    private const int GaugeClasses = 4;
    private readonly Session[] _sessions;
    private readonly Mapping[] _mappings;
    private readonly HashIndex<In2OutMatcher> _in2out;
    private readonly HashIndex<Out2InMatcher> _out2in;
    private readonly HashIndex<MappingInsideMatcher> _byInside;
    private HashIndex<MappingExternalMatcher>? _byExternal;
    private readonly int[] _lruHead = [-1, -1, -1, -1, -1, -1, -1, -1];
    private readonly int[] _lruTail = [-1, -1, -1, -1, -1, -1, -1, -1];
    private UdpPortTimeouts _udpPorts = UdpPortTimeouts.None;
    // Counts live in the shard's counter table (gauges and counters other threads read through its view).
    private readonly Counters.CounterTable _counters;
    private Span<long> _countByProtocolClass => _counters.Range((int)Counters.ShardCounter.SessionsTcp, PortAllocator.Classes);
    private Span<long> _countByClass => _counters.Range((int)Counters.ShardCounter.SessionsTcpEstablished, GaugeClasses);
    private readonly ulong _seed;
    private int _freeSession;
    private int _freeMapping;

    /// <summary>Creates a table for <paramref name="capacity"/> sessions.</summary>
    /// <param name="capacity">Maximum sessions (and mappings).</param>
    /// <param name="ports">External port allocator this table frees ports into.</param>
    /// <param name="hashSeed">Seed for the flow hash.</param>
    /// <param name="counters">The shard's counter table (sessions created/deleted, events dropped, sessions by class); null: a table of its own.</param>
    public SessionTable(int capacity, PortAllocator ports, ulong hashSeed, Counters.CounterTable? counters = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        _counters = counters ?? new Counters.CounterTable(new Counters.CounterSchema(Counters.ShardCounters.Declarations));
        Capacity = capacity;
        Ports = ports;
        _seed = hashSeed;
        _sessions = LargeArrays.Allocate<Session>(capacity);
        _mappings = new Mapping[capacity];
        for (int i = 0; i < capacity; i++)
        {
            _sessions[i].LruNext = i + 1 < capacity ? i + 1 : -1; // free list threads through LruNext
            _mappings[i].FirstSession = i + 1 < capacity ? i + 1 : -1; // free list threads through FirstSession
        }
        _freeSession = 0;
        _freeMapping = 0;
        _in2out = new HashIndex<In2OutMatcher>(capacity, new In2OutMatcher(_sessions));
        _out2in = new HashIndex<Out2InMatcher>(capacity, new Out2InMatcher(_sessions));
        _byInside = new HashIndex<MappingInsideMatcher>(capacity, new MappingInsideMatcher(_mappings));
    }

    /// <summary>Maximum sessions.</summary>
    public int Capacity { get; }

    /// <summary>Sessions in use.</summary>
    public int Count { get; private set; }

    /// <summary>Mappings in use.</summary>
    public int MappingCount { get; private set; }

    /// <summary>The port allocator (replaced when a reload changes the pool or the range).</summary>
    public PortAllocator Ports { get; internal set; }

    /// <summary>Sessions created since start.</summary>
    public long Created => _counters[(int)Counters.ShardCounter.SessionsCreated];

    /// <summary>Sessions deleted since start.</summary>
    public long Deleted => _counters[(int)Counters.ShardCounter.SessionsDeleted];

    /// <summary>
    /// Subscriber state and subscriber-aware port allocation (port blocks, least-loaded pairing,
    /// per-subscriber limits); null when no CGN feature is configured, so the default path does no
    /// subscriber work. Every session and mapping added or removed is counted here.
    /// </summary>
    public ISubscriberAccounting? Subscribers { get; set; }

    /// <summary>Where session create/delete events go (null: not logged). Written by the owning thread only.</summary>
    public Rings.SpscRing<NatEvent>? Events { get; set; }

    /// <summary>
    /// Whether session create and delete go to <see cref="Events"/> (refusals always do). Off with
    /// port blocks (the block records are the log) and deterministic allocation (RFC 7422: the
    /// configuration's map is the log). Owner's thread only.
    /// </summary>
    public bool SessionEvents { get; set; } = true;

    /// <summary>Events lost because <see cref="Events"/> was full (logging never blocks the poller).</summary>
    public long EventsDropped => _counters[(int)Counters.ShardCounter.NatEventsDropped];

    /// <summary>Timeouts for the amortised expiry done by <see cref="AddSession"/>; null turns it off.</summary>
    public Timeouts? ReclaimOnCreate { get; set; }

    /// <summary>The owner's current time (ms), stamped on events; set once per batch or packet.</summary>
    public long NowMs { get; set; }

    /// <summary>Current sessions in an expiry class (TCP established/transitory, UDP, ICMP); UDP counts the well-known-port classes too.</summary>
    public long CountOf(LruClass cls) => _countByClass[Gauge(cls)];

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int Gauge(LruClass cls) => cls >= LruClass.UdpPort0 ? (int)LruClass.Udp : (int)cls;

    /// <summary>Current sessions of a protocol class (0 TCP, 1 UDP, 2 ICMP).</summary>
    public long CountOf(int protocolClass) => _countByProtocolClass[protocolClass];

    internal Session[] Sessions => _sessions;

    internal Mapping[] Mappings => _mappings;

    /// <summary>Hash of a key with this table's seed.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public uint Hash(in FlowKey key) => key.Hash(_seed);

    /// <summary>Session whose inside-to-outside key is <paramref name="key"/>, or -1.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public int FindIn2Out(in FlowKey key) => _in2out.Find(key, Hash(key));

    /// <summary>
    /// As <see cref="FindIn2Out(in FlowKey)"/> with the key's <see cref="Hash"/> already computed
    /// (by a parse that also prefetched with it), so a packet is hashed once.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public int FindIn2Out(in FlowKey key, uint hash) => _in2out.Find(key, hash);

    /// <summary>Session whose outside-to-inside key is <paramref name="key"/>, or -1.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public int FindOut2In(in FlowKey key) => _out2in.Find(key, Hash(key));

    /// <summary>The seed <see cref="Hash"/> uses, so a frame parser can hash a key once for every lookup.</summary>
    public ulong HashSeed => _seed;

    /// <summary>As <see cref="FindOut2In(in FlowKey)"/> with the key's <see cref="Hash"/> already computed.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public int FindOut2In(in FlowKey key, uint hash) => _out2in.Find(key, hash);

    /// <summary>
    /// Software prefetch for a packet a few frames ahead in the batch (VPP's two-stage prefetch):
    /// stage one pulls the index slot, stage two (a couple of frames later, when the slot is cached)
    /// pulls the session it names. Hints only.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Prefetch(in FlowKey key, bool in2out, bool session) => Prefetch(Hash(key), in2out, session);

    /// <summary><see cref="Prefetch(in FlowKey, bool, bool)"/> with the key's hash already computed (<see cref="Hash"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Prefetch(uint hash, bool in2out, bool session)
    {
        if (session)
        {
            _ = PrefetchSession(hash, in2out);
        }
        else
        {
            PrefetchSlot(hash, in2out);
        }
    }

    /// <summary>Stage one of the prefetch: the index slot (one cache line) of a key whose <see cref="Hash"/> is <paramref name="hash"/>. A hint only.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void PrefetchSlot(uint hash, bool in2out)
    {
        if (in2out)
        {
            _in2out.Prefetch(hash, value: false);
        }
        else
        {
            _out2in.Prefetch(hash, value: false);
        }
    }

    /// <summary>
    /// Stage two: the session named by the home slot of <paramref name="hash"/> when its tag matches
    /// (the slot should be cached by stage one by now), the two cache lines its translation touches.
    /// A hint only: a collision prefetches a harmless other session.
    /// </summary>
    /// <returns>False when the home slot names no session of that tag: the packet probably opens a
    /// new flow, and the caller may prefetch what the slow path reads first.</returns>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public unsafe bool PrefetchSession(uint hash, bool in2out)
    {
        int v = in2out ? _in2out.Prefetch(hash, value: true) : _out2in.Prefetch(hash, value: true);
        if (v < 0)
        {
            return false;
        }
        if (System.Runtime.Intrinsics.X86.Sse.IsSupported)
        {
            // The hot head of the session spans at most two lines: its first byte's and its last's.
            byte* p = (byte*)Unsafe.AsPointer(ref _sessions[v]);
            System.Runtime.Intrinsics.X86.Sse.Prefetch0(p);
            System.Runtime.Intrinsics.X86.Sse.Prefetch0(p + Session.HotBytes - 1);
        }
        return true;
    }

    /// <summary>
    /// Prefetches the out2in index's home line of <paramref name="out2in"/> (remote -> external):
    /// where a new session's second index entry goes. A hint only.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void PrefetchOut2InLine(in FlowKey out2in) => _out2in.Prefetch(Hash(out2in), value: false);

    /// <summary>
    /// Prefetches the index slot of the endpoint-independent mapping of an inside endpoint (what
    /// <see cref="FindMappingByInside"/> reads first), for a packet that probably opens a new flow. A hint only.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void PrefetchMappingByInside(uint insideAddress, ushort insidePortRaw, byte protocol)
    {
        var k = new FlowKey(insideAddress, 0, insidePortRaw, 0, protocol);
        _byInside.Prefetch(Hash(k), value: false);
    }

    /// <summary>Endpoint-independent mapping of an inside endpoint, or -1.</summary>
    public int FindMappingByInside(uint insideAddress, ushort insidePortRaw, byte protocol)
    {
        var k = new FlowKey(insideAddress, 0, insidePortRaw, 0, protocol);
        return _byInside.Find(k, Hash(k));
    }

    /// <summary>Mapping owning an external endpoint, or -1 (always -1 until <see cref="EnableExternalIndex"/>).</summary>
    public int FindMappingByExternal(uint externalAddress, ushort externalPortRaw, byte protocol)
    {
        if (_byExternal is null)
        {
            return -1;
        }
        var k = new FlowKey(0, externalAddress, 0, externalPortRaw, protocol);
        return _byExternal.Find(k, Hash(k));
    }

    /// <summary>True when mappings are indexed by external endpoint.</summary>
    public bool HasExternalIndex => _byExternal is not null;

    /// <summary>
    /// Indexes mappings by external endpoint, which only address-dependent and endpoint-independent
    /// filtering need (an inbound packet on a mapping without an exact session). The default
    /// filtering never looks, so the index (10.7 bytes a mapping) is built only when asked for.
    /// </summary>
    public void EnableExternalIndex()
    {
        if (_byExternal is not null)
        {
            return;
        }
        var index = new HashIndex<MappingExternalMatcher>(Capacity, new MappingExternalMatcher(_mappings));
        for (int m = 0; m < _mappings.Length; m++)
        {
            if (_mappings[m].InUse)
            {
                index.Insert(Hash(_mappings[m].ExternalKey), m);
            }
        }
        _byExternal = index;
    }

    /// <summary>
    /// Records a mapping of an inside endpoint to an external endpoint whose port the caller
    /// already took from <see cref="Ports"/> (or, with <paramref name="poolIndex"/> -1, a port the
    /// allocator does not own: a forward's reserved port or an identity mapping). Returns its
    /// index, or -1 when the table is full.
    /// </summary>
    public int AddMapping(uint insideAddress, ushort insidePortRaw, uint externalAddress, ushort externalPortRaw,
        byte protocol, int poolIndex, bool endpointIndependent)
    {
        int m = _freeMapping;
        if (m < 0)
        {
            return -1;
        }
        _freeMapping = _mappings[m].FirstSession;
        ref Mapping map = ref _mappings[m];
        map.InsideAddress = insideAddress;
        map.InsidePort = insidePortRaw;
        map.ExternalAddress = externalAddress;
        map.ExternalPort = externalPortRaw;
        map.Protocol = protocol;
        map.Tag = 0;
        map.PoolIndex = (short)poolIndex;
        map.SessionCount = 0;
        map.FirstSession = -1;
        map.IndexedByInside = endpointIndependent;
        map.StaticPort = poolIndex < 0;
        map.ReuseAtOnce = false;
        map.InUse = true;
        if (endpointIndependent)
        {
            _byInside.Insert(Hash(map.InsideKey), m);
        }
        _byExternal?.Insert(Hash(map.ExternalKey), m);
        MappingCount++;
        return m;
    }

    /// <summary>
    /// Creates a session on mapping <paramref name="mapping"/>, indexed by both keys, at the tail
    /// of its LRU list. Returns its index, or -1 when the table is full.
    /// </summary>
    public int AddSession(int mapping, in FlowKey in2out, in FlowKey out2in, LruClass cls, long nowMs)
    {
        if (ReclaimOnCreate is { } t)
        {
            // Amortised expiry (VPP's way): each new session first retires up to two expired ones,
            // so the table keeps pace with churn whatever the sweeper's slice size.
            Expire(nowMs, t, 2, mapping);
        }
        int s = _freeSession;
        if (s < 0)
        {
            return -1;
        }
        _freeSession = _sessions[s].LruNext;
        ref Session ses = ref _sessions[s];
        ses = default;
        ses.In2Out = in2out;
        ses.ExternalAddress = out2in.Destination;
        ses.ExternalPort = out2in.DestinationPort;
        System.Diagnostics.Debug.Assert(ses.Out2In == out2in, "out2in must be remote -> external");
        ses.LastSeenMs = nowMs;
        ses.Mapping = mapping;
        if (cls >= LruClass.Udp && cls != LruClass.Icmp && in2out.Protocol == Packets.IpProtocol.Udp)
        {
            cls = _udpPorts.ClassOf(in2out.DestinationPort, out2in.DestinationPort); // RFC 4787 REQ-5a: a well-known port's own timer
        }
        ses.Class = cls;
        ses.InUse = true;
        // Precomputed rewrite (VPP nat_6t_flow): in2out replaces the inside source with the
        // external one; out2in replaces the external destination with the inside one.
        bool icmp = in2out.Protocol == Packets.IpProtocol.Icmp;
        uint inside = in2out.Source, external = out2in.Destination;
        ushort iport = in2out.SourcePort, eport = out2in.DestinationPort;
        ses.IpDeltaIn2Out = Packets.Checksum.Delta(inside, external, 0, 0);
        ses.IpDeltaOut2In = Packets.Checksum.Delta(external, inside, 0, 0);
        // ICMP's checksum has no pseudo-header: only the identifier counts.
        ses.L4DeltaIn2Out = icmp ? Packets.Checksum.Delta(0, 0, iport, eport) : Packets.Checksum.Delta(inside, external, iport, eport);
        ses.L4DeltaOut2In = icmp ? Packets.Checksum.Delta(0, 0, eport, iport) : Packets.Checksum.Delta(external, inside, eport, iport);

        ref Mapping map = ref _mappings[mapping];
        ses.MapPrev = -1;
        ses.MapNext = map.FirstSession;
        if (map.FirstSession >= 0)
        {
            _sessions[map.FirstSession].MapPrev = s;
        }
        map.FirstSession = s;
        map.SessionCount++;

        _in2out.Insert(Hash(in2out), s);
        _out2in.Insert(Hash(out2in), s);
        LruAppend(s, cls);
        _countByClass[Gauge(cls)]++;
        Count++;
        _counters[(int)Counters.ShardCounter.SessionsCreated]++;
        if (Events is not null && SessionEvents)
        {
            Emit(NatEventType.SessionCreated, in ses);
        }
        _countByProtocolClass[ProtocolClass(in2out.Protocol)]++;
        Subscribers?.SessionAdded(map.InsideAddress, nowMs);
        return s;
    }

    /// <summary>
    /// Marks activity: refreshes the deadline, and moves the session to its list's tail at most
    /// once per 1.024 s window (when this packet's window differs from the previous one's).
    /// Relinking touches two neighbouring sessions, cache misses that dominate a big table's cost
    /// per packet; the list stays ordered to within a window, so expiry by slice runs at most a
    /// second late, and lookups refuse an expired session exactly anyway.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Touch(int s, long nowMs)
    {
        ref Session ses = ref _sessions[s];
        long previous = ses.LastSeenMs;
        ses.LastSeenMs = nowMs;
        if ((nowMs >> 10) != (previous >> 10) && _lruTail[(int)ses.Class] != s)
        {
            LruUnlink(s);
            LruAppend(s, ses.Class);
        }
    }

    /// <summary>Moves a session to another expiry class (TCP state change); it becomes that list's newest.</summary>
    public void Reclass(int s, LruClass cls)
    {
        ref Session ses = ref _sessions[s];
        if (ses.Class == cls)
        {
            return;
        }
        LruUnlink(s);
        _countByClass[Gauge(ses.Class)]--;
        ses.Class = cls;
        _countByClass[Gauge(cls)]++;
        LruAppend(s, cls);
    }

    /// <summary>Deletes a session; frees its mapping and external port when it was the mapping's last session.</summary>
    public void Delete(int s)
    {
        ref Session ses = ref _sessions[s];
        if (!ses.InUse)
        {
            return;
        }
        if (Events is not null && SessionEvents)
        {
            Emit(NatEventType.SessionDeleted, in ses);
        }
        if (ses.Alg != AlgKind.None)
        {
            NoteClosedAlg(in ses);
        }
        _in2out.Remove(Hash(ses.In2Out), s);
        _out2in.Remove(Hash(ses.Out2In), s);
        LruUnlink(s);
        int m = ses.Mapping;
        ref Mapping map = ref _mappings[m];
        if (ses.MapPrev >= 0)
        {
            _sessions[ses.MapPrev].MapNext = ses.MapNext;
        }
        else
        {
            map.FirstSession = ses.MapNext;
        }
        if (ses.MapNext >= 0)
        {
            _sessions[ses.MapNext].MapPrev = ses.MapPrev;
        }
        uint inside = map.InsideAddress;
        if (--map.SessionCount == 0)
        {
            RemoveMapping(m);
        }
        Subscribers?.SessionRemoved(inside);
        _countByProtocolClass[ProtocolClass(ses.In2Out.Protocol)]--;
        _countByClass[Gauge(ses.Class)]--;
        ses.InUse = false;
        ses.LruNext = _freeSession;
        _freeSession = s;
        Count--;
        _counters[(int)Counters.ShardCounter.SessionsDeleted]++;
    }

    /// <summary>Frees a mapping that has no session (e.g. session creation failed after it was made).</summary>
    public void RemoveMapping(int m)
    {
        ref Mapping map = ref _mappings[m];
        if (!map.InUse)
        {
            return;
        }
        if (map.IndexedByInside)
        {
            _byInside.Remove(Hash(map.InsideKey), m);
        }
        _byExternal?.Remove(Hash(map.ExternalKey), m);
        if (!map.StaticPort)
        {
            int pclass = ProtocolClass(map.ExternalKey.Protocol);
            int port = FlowKey.PortToHost(map.ExternalKey.DestinationPort);
            if (Subscribers is { } sp)
            {
                sp.Free(map.InsideAddress, map.PoolIndex, pclass, port, quarantine: !map.ReuseAtOnce, NowMs);
            }
            else if (map.ReuseAtOnce)
            {
                Ports.Free(map.PoolIndex, pclass, port);
            }
            else
            {
                Ports.Release(map.PoolIndex, pclass, port, NowMs); // rests in the quarantine (nat.port-reuse-delay)
            }
        }
        map.InUse = false;
        map.FirstSession = _freeMapping;
        _freeMapping = m;
        MappingCount--;
    }

    /// <summary>Seconds of idle time <paramref name="cls"/> allows.</summary>
    public static int TimeoutSeconds(LruClass cls, Timeouts t) => cls switch
    {
        LruClass.TcpEstablished => t.TcpEstablished,
        LruClass.TcpTransitory => t.TcpTransitory,
        LruClass.Udp => t.Udp,
        LruClass.Icmp => t.Icmp,
        _ => t.UdpPorts.Seconds(cls - LruClass.UdpPort0, t.Udp),
    };

    /// <summary>
    /// The well-known ports' UDP timers (RFC 4787 REQ-5a) new UDP sessions are classed by. A
    /// change reclasses every UDP session in the table at once (construction, a reload): a
    /// k-way merge of the UDP lists by last activity, so each list stays ordered by deadline.
    /// O(UDP sessions), no allocation; the owner's thread.
    /// </summary>
    public void SetUdpPorts(UdpPortTimeouts timers)
    {
        ArgumentNullException.ThrowIfNull(timers);
        if (timers.Equals(_udpPorts))
        {
            return;
        }
        _udpPorts = timers;
        // Detach the five UDP lists, then take their oldest head each time and append it to the
        // list of its new class: every list is built oldest first, as Touch keeps them.
        Span<int> heads = stackalloc int[1 + UdpPortTimeouts.MaxTimers];
        heads[0] = _lruHead[(int)LruClass.Udp];
        _lruHead[(int)LruClass.Udp] = _lruTail[(int)LruClass.Udp] = -1;
        for (int t = 0; t < UdpPortTimeouts.MaxTimers; t++)
        {
            int c = (int)LruClass.UdpPort0 + t;
            heads[1 + t] = _lruHead[c];
            _lruHead[c] = _lruTail[c] = -1;
        }
        while (true)
        {
            int pick = -1;
            for (int h = 0; h < heads.Length; h++)
            {
                if (heads[h] >= 0 && (pick < 0 || _sessions[heads[h]].LastSeenMs < _sessions[heads[pick]].LastSeenMs))
                {
                    pick = h;
                }
            }
            if (pick < 0)
            {
                return;
            }
            int s = heads[pick];
            ref Session ses = ref _sessions[s];
            heads[pick] = ses.LruNext;
            // Port-less protocols (GRE, ...) live in the UDP class too; only UDP has ports to class by.
            ses.Class = ses.In2Out.Protocol == Packets.IpProtocol.Udp ? timers.ClassOf(ses.In2Out.DestinationPort, ses.ExternalPort) : LruClass.Udp;
            LruAppend(s, ses.Class);
        }
    }

    /// <summary>The well-known ports' UDP timers in force (<see cref="SetUdpPorts"/>).</summary>
    public UdpPortTimeouts UdpPorts => _udpPorts;

    /// <summary>
    /// Deletes up to <paramref name="budget"/> expired sessions, oldest first, reading timeouts now
    /// (so a timeout change needs no sweep). Cost is bounded by the budget, not the table size:
    /// each list is ordered by last activity, so the scan stops at the first live session.
    /// </summary>
    /// <returns>Sessions deleted.</returns>
    public int Expire(long nowMs, Timeouts timeouts, int budget) => Expire(nowMs, timeouts, budget, -1);

    /// <summary>As <see cref="Expire(long, Timeouts, int)"/>, sparing mapping <paramref name="keepMapping"/> (about to get a session).</summary>
    private int Expire(long nowMs, Timeouts timeouts, int budget, int keepMapping)
    {
        NowMs = nowMs;
        int done = 0;
        for (int c = 0; c < ClassCount && done < budget; c++)
        {
            if (_lruHead[c] < 0)
            {
                continue; // every new session runs this (ReclaimOnCreate): most of the eight lists are empty
            }
            long timeoutMs = TimeoutSeconds((LruClass)c, timeouts) * 1000L;
            while (done < budget)
            {
                int s = _lruHead[c];
                if (s < 0 || nowMs - _sessions[s].LastSeenMs < timeoutMs
                    || (_sessions[s].Mapping == keepMapping && _mappings[keepMapping].SessionCount == 1))
                {
                    break;
                }
                Delete(s);
                done++;
            }
        }
        return done;
    }

    /// <summary>Deleted ALG sessions a <see cref="ClosedAlgSessions"/> list holds at most between two drains; more are counted (<c>alg-forgets-deferred</c>) and left to the helpers' idle expiry.</summary>
    public const int ClosedAlgCapacity = 1024;

    private readonly ClosedAlgSession[] _closedAlg = new ClosedAlgSession[ClosedAlgCapacity];
    private int _closedAlgCount;

    /// <summary>
    /// ALG sessions (FTP, IRC, TFTP, PPTP control connections) deleted since the last
    /// <see cref="ClearClosedAlg"/>, oldest first: the shard tells their ALG helpers, which drop the
    /// connection's state and give back its cumulation buffers at once instead of at the idle expiry.
    /// </summary>
    public ReadOnlySpan<ClosedAlgSession> ClosedAlgSessions => _closedAlg.AsSpan(0, _closedAlgCount);

    /// <summary>Empties <see cref="ClosedAlgSessions"/> (the shard has passed them on).</summary>
    public void ClearClosedAlg() => _closedAlgCount = 0;

    private void NoteClosedAlg(in Session ses)
    {
        if (_closedAlgCount == _closedAlg.Length)
        {
            _counters[(int)Counters.ShardCounter.AlgForgetsDeferred]++;
            return;
        }
        _closedAlg[_closedAlgCount++] = new ClosedAlgSession(ses.Alg, ses.In2Out, ses.ExternalAddress, ses.ExternalPort);
    }

    /// <summary>Deletes every session (natctl flush).</summary>
    public int Clear()
    {
        int n = 0;
        for (int c = 0; c < ClassCount; c++)
        {
            while (_lruHead[c] >= 0)
            {
                Delete(_lruHead[c]);
                n++;
            }
        }
        return n;
    }

    private void Emit(NatEventType type, in Session ses)
    {
        var e = new NatEvent
        {
            TimeMs = NowMs,
            Type = type,
            Protocol = ses.In2Out.Protocol,
            InsideAddress = ses.In2Out.Source,
            InsidePort = FlowKey.PortToHost(ses.In2Out.SourcePort),
            ExternalAddress = ses.Out2In.Destination,
            ExternalPort = FlowKey.PortToHost(ses.Out2In.DestinationPort),
        };
        if (!Events!.TryEnqueue(e))
        {
            _counters[(int)Counters.ShardCounter.NatEventsDropped]++;
        }
    }

    /// <summary>
    /// Takes an external port (host order) for a new mapping (or an ALG's reservation) of inside
    /// host <paramref name="inside"/>: through <see cref="Subscribers"/> when set (pairing, blocks,
    /// the port limit), else from <see cref="Ports"/> on <paramref name="poolIndexHint"/>.
    /// </summary>
    /// <returns>The port and its <paramref name="poolIndex"/>, or -1 (refused or exhausted).</returns>
    public int AllocatePort(uint inside, int protocolClass, bool privileged, int poolIndexHint, out int poolIndex)
    {
        if (Subscribers is { } sp)
        {
            return sp.Allocate(inside, protocolClass, privileged, NowMs, out poolIndex);
        }
        poolIndex = poolIndexHint;
        return Ports.Allocate(poolIndexHint, protocolClass, privileged);
    }

    /// <summary>Gives back a port <see cref="AllocatePort"/> handed out that no mapping ever used (free at once: it carried no traffic).</summary>
    public void FreeUnusedPort(uint inside, int poolIndex, int protocolClass, int port)
    {
        if (Subscribers is { } sp)
        {
            sp.Free(inside, poolIndex, protocolClass, port, quarantine: false, NowMs);
        }
        else
        {
            Ports.Free(poolIndex, protocolClass, port);
        }
    }

    /// <summary>Queues a NAT event (port blocks, limits, pairing); counted as dropped when the queue is full, never blocks.</summary>
    public void EmitEvent(in NatEvent e)
    {
        if (Events is not null && !Events.TryEnqueue(e))
        {
            _counters[(int)Counters.ShardCounter.NatEventsDropped]++;
        }
    }

    /// <summary>Queues an exhaustion event for a flow that got no session.</summary>
    public void EmitRefusal(NatEventType type, in FlowKey in2out, uint externalAddress)
    {
        if (Events is null)
        {
            return;
        }
        var e = new NatEvent
        {
            TimeMs = NowMs,
            Type = type,
            Protocol = in2out.Protocol,
            InsideAddress = in2out.Source,
            InsidePort = FlowKey.PortToHost(in2out.SourcePort),
            ExternalAddress = externalAddress,
        };
        if (!Events.TryEnqueue(e))
        {
            _counters[(int)Counters.ShardCounter.NatEventsDropped]++;
        }
    }

    /// <summary>Protocol class index for the port allocator and counters: 0 TCP, 1 UDP, 2 ICMP (and anything else).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int ProtocolClass(byte protocol) => protocol == Packets.IpProtocol.Tcp ? 0 : protocol == Packets.IpProtocol.Udp ? 1 : 2;

    private void LruAppend(int s, LruClass cls)
    {
        int c = (int)cls;
        ref Session ses = ref _sessions[s];
        ses.LruNext = -1;
        ses.LruPrev = _lruTail[c];
        if (_lruTail[c] >= 0)
        {
            _sessions[_lruTail[c]].LruNext = s;
        }
        else
        {
            _lruHead[c] = s;
        }
        _lruTail[c] = s;
    }

    private void LruUnlink(int s)
    {
        ref Session ses = ref _sessions[s];
        int c = (int)ses.Class;
        if (ses.LruPrev >= 0)
        {
            _sessions[ses.LruPrev].LruNext = ses.LruNext;
        }
        else
        {
            _lruHead[c] = ses.LruNext;
        }
        if (ses.LruNext >= 0)
        {
            _sessions[ses.LruNext].LruPrev = ses.LruPrev;
        }
        else
        {
            _lruTail[c] = ses.LruPrev;
        }
        ses.LruPrev = ses.LruNext = -1;
    }

    private readonly struct In2OutMatcher(Session[] sessions) : IKeyMatcher
    {
        public bool Matches(int value, in FlowKey key) => sessions[value].In2Out.Equals(key);
    }

    private readonly struct Out2InMatcher(Session[] sessions) : IKeyMatcher
    {
        public bool Matches(int value, in FlowKey key)
        {
            ref Session s = ref sessions[value];
            return s.ExternalAddress == key.Destination && s.ExternalPort == key.DestinationPort
                && s.In2Out.Destination == key.Source && s.In2Out.DestinationPort == key.SourcePort && s.In2Out.Protocol == key.Protocol;
        }
    }

    private readonly struct MappingInsideMatcher(Mapping[] mappings) : IKeyMatcher
    {
        public bool Matches(int value, in FlowKey key)
        {
            ref Mapping m = ref mappings[value];
            return m.InsideAddress == key.Source && m.InsidePort == key.SourcePort && m.Protocol == key.Protocol;
        }
    }

    private readonly struct MappingExternalMatcher(Mapping[] mappings) : IKeyMatcher
    {
        public bool Matches(int value, in FlowKey key)
        {
            ref Mapping m = ref mappings[value];
            return m.ExternalAddress == key.Destination && m.ExternalPort == key.DestinationPort && m.Protocol == key.Protocol;
        }
    }
}

/// <summary>An ALG session that was deleted (<see cref="SessionTable.ClosedAlgSessions"/>).</summary>
/// <param name="Alg">Its ALG.</param>
/// <param name="In2Out">Its in2out key (inside -> remote).</param>
/// <param name="ExternalAddress">Its external address, network order.</param>
/// <param name="ExternalPortRaw">Its external port as stored (network order in memory).</param>
public readonly record struct ClosedAlgSession(AlgKind Alg, FlowKey In2Out, uint ExternalAddress, ushort ExternalPortRaw);
