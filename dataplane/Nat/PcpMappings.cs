using Natd.Dataplane.Packets;
using Natd.Dataplane.Pcp;
using Natd.Dataplane.Sessions;

namespace Natd.Dataplane.Nat;

/// <summary>
/// One explicit mapping a subscriber asked for with PCP MAP or NAT-PMP (RFC 6887 section 11, RFC
/// 6886 section 3.3): (protocol, internal address:port) to (external address:port) until
/// <see cref="ExpiresMs"/>. The external port is this entry's: taken from the allocator (or the
/// subscriber's block or range) or adopted from the implicit mapping the host already had.
/// An all-ports mapping (<c>pcp.all-ports</c>; RFC 6887 section 11.1) has internal port 0 and
/// protocol 6, 17 or 0 (TCP and UDP): it opens every port its subscriber owns on
/// <see cref="External"/> to the same port of <see cref="Internal"/>. Its
/// <see cref="ExternalPortRaw"/> is 0, or with port blocks its anchor: one port of a block the
/// entry holds so the subscriber keeps a block (and its ports) while the mapping lives.
/// </summary>
internal struct PcpMapping
{
    public uint Internal;             // network order
    public uint External;             // network order
    public long ExpiresMs;
    public uint Lifetime;             // seconds granted by the last create or refresh
    public uint Nonce0, Nonce1, Nonce2; // RFC 6887 11.1 nonce as read (NAT-PMP: zero)
    public ushort InternalPortRaw;
    public ushort ExternalPortRaw;
    public short PoolIndex;
    public byte Protocol;
    public byte FilterCount;
    public bool InUse;
    public bool NatPmp;

    /// <summary>True for an all-ports mapping (internal port 0).</summary>
    public readonly bool AllPorts => InternalPortRaw == 0;

    /// <summary>While free: the next free entry (the free list threads through <see cref="ExpiresMs"/>).</summary>
    public readonly int NextFree => (int)ExpiresMs;

    /// <summary>Marks a free entry with the next free index.</summary>
    public void FirstFree(int next) => ExpiresMs = next;
}

/// <summary>A PCP mapping as other threads see it (a listing, natctl mappings): addresses network order, ports host order.</summary>
/// <param name="Protocol">IP protocol (6 TCP, 17 UDP).</param>
/// <param name="Internal">Internal address.</param>
/// <param name="InternalPort">Internal port.</param>
/// <param name="External">External address.</param>
/// <param name="ExternalPort">External port.</param>
/// <param name="LifetimeLeftSeconds">Seconds until it expires unless refreshed.</param>
/// <param name="Filters">Its FILTERs (empty: every remote may use it).</param>
/// <param name="Nonce">The nonce of the request that made it, 24 hex digits (NAT-PMP: zeros).</param>
/// <param name="NatPmp">Made by NAT-PMP rather than PCP.</param>
public sealed record PcpMappingInfo(byte Protocol, uint Internal, ushort InternalPort, uint External, ushort ExternalPort,
    long LifetimeLeftSeconds, IReadOnlyList<PcpFilter> Filters, string Nonce, bool NatPmp)
{
    /// <summary>An all-ports mapping (<c>pcp.all-ports</c>): internal and external port 0, protocol 0 for TCP and UDP.</summary>
    public bool AllPorts => InternalPort == 0;

    /// <summary>An all-ports mapping's external ports now (host order, inclusive; every <see cref="PortStep"/>-th): the deterministic range, or the subscriber's blocks on its address. Empty otherwise.</summary>
    public IReadOnlyList<(int Low, int High)> Ports { get; init; } = [];

    /// <summary>Ports between consecutive ports of <see cref="Ports"/> (RFC 8158 portRangeStepSize; 1 but for port blocks with several shards).</summary>
    public int PortStep { get; init; } = 1;
}

/// <summary>
/// A PCP or NAT-PMP mapping in the restart snapshot (<c>natd run --state</c>): addresses network
/// order, ports host order (an all-ports mapping: internal port 0, external port its anchor or 0), the lifetime last granted (seconds) and what was left of it (ms; the
/// snapshot's reader takes the time natd was down off), its FILTERs and nonce (24 hex digits, wire
/// order; NAT-PMP: zeros).
/// </summary>
public sealed record PcpMappingRecord(byte Protocol, uint Internal, ushort InternalPort, uint External, ushort ExternalPort,
    uint Lifetime, long LifetimeLeftMs, IReadOnlyList<PcpFilter> Filters, string Nonce, bool NatPmp)
{
    /// <summary>Reads a nonce written by <see cref="PcpMappings"/> (24 hex digits) back into the three raw words.</summary>
    public static bool TryParseNonce(string hex, out uint n0, out uint n1, out uint n2)
    {
        n0 = n1 = n2 = 0;
        Span<byte> b = stackalloc byte[12];
        if (hex is not { Length: 24 } || Convert.FromHexString(hex, b, out _, out int written) != System.Buffers.OperationStatus.Done || written != 12)
        {
            return false;
        }
        n0 = Checksum.ReadRaw32(b, 0);
        n1 = Checksum.ReadRaw32(b, 4);
        n2 = Checksum.ReadRaw32(b, 8);
        return true;
    }
}

/// <summary>
/// The PCP (and NAT-PMP) mappings of one shard: a preallocated table of <see cref="PcpMapping"/>
/// with their filters, indexed by internal endpoint and by external endpoint, counted per
/// subscriber (<c>pcp.mappings-per-subscriber</c>), expired by the sweeper's slices. Owns each
/// mapping's external port and gives it back on removal: to the implicit session mapping that
/// still uses it (so the port lives as long as its sessions) or to the allocator (through the
/// quarantine). Request handling is the engine's (NatEngine.Pcp.cs); this class keeps the state.
/// Single threaded: the shard's poller.
/// </summary>
internal sealed class PcpMappings
{
    private readonly SessionTable _table;
    private readonly PcpMapping[] _entries;
    private readonly PcpFilter[] _filters;
    private readonly Dictionary<FlowKey, int> _byInternal;
    private readonly Dictionary<FlowKey, int> _byExternal;
    private readonly Dictionary<uint, int> _perSubscriber;
    private readonly Dictionary<FlowKey, int> _allPorts; // (subscriber, protocol) -> its all-ports mapping
    private int _free;
    private int _sweepCursor;

    /// <summary>Creates an empty table of <paramref name="capacity"/> mappings over the shard's session table.</summary>
    public PcpMappings(SessionTable table, CgnatSettings cgnat, int capacity)
    {
        _table = table;
        Cgnat = cgnat;
        _entries = new PcpMapping[capacity];
        _filters = new PcpFilter[capacity * PcpRequest.MaxFilters];
        _byInternal = new Dictionary<FlowKey, int>(capacity);
        _byExternal = new Dictionary<FlowKey, int>(capacity);
        _perSubscriber = new Dictionary<uint, int>(Math.Min(capacity, 4096));
        _allPorts = new Dictionary<FlowKey, int>(Math.Min(capacity, 4096));
        for (int i = 0; i < capacity; i++)
        {
            _entries[i].FirstFree(i + 1 < capacity ? i + 1 : -1);
        }
    }

    /// <summary>The subscriber definition (<c>nat.subscriber-prefix</c>) quotas count by; replaced on reload.</summary>
    public CgnatSettings Cgnat { get; set; }

    /// <summary>Mappings in use.</summary>
    public int Count { get; private set; }

    /// <summary>Maximum mappings.</summary>
    public int Capacity => _entries.Length;

    /// <summary>Entry <paramref name="m"/>.</summary>
    public ref PcpMapping this[int m] => ref _entries[m];

    /// <summary>The filters of entry <paramref name="m"/> (its first <see cref="PcpMapping.FilterCount"/>).</summary>
    public ReadOnlySpan<PcpFilter> FiltersOf(int m) => _filters.AsSpan(m * PcpRequest.MaxFilters, _entries[m].FilterCount);

    /// <summary>The mapping of (protocol, internal address, internal port raw), or -1.</summary>
    public int FindInternal(byte protocol, uint inside, ushort portRaw)
        => Count != 0 && _byInternal.TryGetValue(new FlowKey(inside, 0, portRaw, 0, protocol), out int m) ? m : -1;

    /// <summary>The mapping of (protocol, external address, external port raw), or -1.</summary>
    public int FindExternal(byte protocol, uint external, ushort portRaw)
        => Count != 0 && _byExternal.TryGetValue(new FlowKey(0, external, 0, portRaw, protocol), out int m) ? m : -1;

    /// <summary>
    /// The all-ports mapping of subscriber <paramref name="subscriber"/> (<see cref="CgnatSettings.SubscriberOf"/>)
    /// for exactly <paramref name="protocol"/> (6, 17, or 0 for the TCP-and-UDP one), or -1.
    /// </summary>
    public int FindAllPorts(uint subscriber, byte protocol)
        => _allPorts.Count != 0 && _allPorts.TryGetValue(new FlowKey(subscriber, 0, 0, 0, protocol), out int m) ? m : -1;

    /// <summary>True while any all-ports mapping exists (the opener's cheap test).</summary>
    public bool HasAllPorts => _allPorts.Count != 0;

    /// <summary>Mappings the subscriber of <paramref name="inside"/> holds.</summary>
    public int CountOf(uint inside) => _perSubscriber.TryGetValue(Cgnat.SubscriberOf(inside), out int n) ? n : 0;

    /// <summary>True when no entry is free.</summary>
    public bool Full => _free < 0;

    /// <summary>
    /// Records a mapping whose external port the caller has already taken (<paramref name="poolIndex"/>
    /// its pool address). Returns its index, or -1 when the table is full (the caller gives the port back).
    /// </summary>
    public int Add(byte protocol, uint inside, ushort insidePortRaw, uint external, ushort externalPortRaw, int poolIndex, bool natPmp)
    {
        int m = _free;
        if (m < 0)
        {
            return -1;
        }
        ref PcpMapping e = ref _entries[m];
        _free = e.NextFree;
        e = default;
        e.Protocol = protocol;
        e.Internal = inside;
        e.InternalPortRaw = insidePortRaw;
        e.External = external;
        e.ExternalPortRaw = externalPortRaw;
        e.PoolIndex = (short)poolIndex;
        e.NatPmp = natPmp;
        e.InUse = true;
        _byInternal[new FlowKey(inside, 0, insidePortRaw, 0, protocol)] = m;
        uint sub = Cgnat.SubscriberOf(inside);
        if (insidePortRaw == 0)
        {
            _allPorts[new FlowKey(sub, 0, 0, 0, protocol)] = m; // its anchor is no endpoint to look up from outside
        }
        else
        {
            _byExternal[new FlowKey(0, external, 0, externalPortRaw, protocol)] = m;
        }
        _perSubscriber[sub] = (_perSubscriber.TryGetValue(sub, out int n) ? n : 0) + 1;
        Count++;
        return m;
    }

    /// <summary>
    /// Sets entry <paramref name="m"/>'s lifetime (seconds, from <paramref name="nowMs"/>) and nonce,
    /// and logs it: a create for an entry just added, a refresh otherwise.
    /// </summary>
    public void Refresh(int m, uint lifetime, long nowMs, uint n0, uint n1, uint n2)
    {
        ref PcpMapping e = ref _entries[m];
        Emit(ref e, e.Lifetime == 0 ? NatEventType.PcpMappingCreated : NatEventType.PcpMappingRefreshed, lifetime, 0, nowMs);
        SetState(m, lifetime, nowMs + lifetime * 1000L, n0, n1, n2);
    }

    /// <summary>Sets entry <paramref name="m"/>'s lifetime, expiry (engine clock, ms) and nonce without logging (a restored mapping).</summary>
    public void SetState(int m, uint lifetime, long expiresMs, uint n0, uint n1, uint n2)
    {
        ref PcpMapping e = ref _entries[m];
        e.Lifetime = lifetime;
        e.ExpiresMs = expiresMs;
        e.Nonce0 = n0;
        e.Nonce1 = n1;
        e.Nonce2 = n2;
    }

    /// <summary>Replaces entry <paramref name="m"/>'s filters (RFC 6887 section 13.3: a refresh states them anew).</summary>
    public void SetFilters(int m, ReadOnlySpan<PcpFilter> filters)
    {
        filters.CopyTo(_filters.AsSpan(m * PcpRequest.MaxFilters, PcpRequest.MaxFilters));
        _entries[m].FilterCount = (byte)filters.Length;
    }

    /// <summary>True when entry <paramref name="m"/>'s filters admit <paramref name="remote"/> from <paramref name="remotePortRaw"/> (no filter: everyone; RFC 6887 section 13.3).</summary>
    public bool Admits(int m, uint remote, ushort remotePortRaw)
    {
        ReadOnlySpan<PcpFilter> filters = FiltersOf(m);
        if (filters.Length == 0)
        {
            return true;
        }
        foreach (PcpFilter f in filters)
        {
            if (f.Admits(remote, remotePortRaw))
            {
                return true;
            }
        }
        return false;
    }

    /// <summary>
    /// Removes entry <paramref name="m"/> and gives its port back: an implicit session mapping of
    /// the same endpoints that still lives takes the port over (it is freed when its last session
    /// ends); otherwise the port goes back now, through the quarantine (<c>nat.port-reuse-delay</c>).
    /// Live sessions are not closed (RFC 6887 section 15: deleting the mapping stops new inbound
    /// flows, not the ones in progress). Logged as a delete with <paramref name="cause"/>.
    /// </summary>
    public void Remove(int m, long nowMs, PcpDeleteCause cause)
    {
        ref PcpMapping e = ref _entries[m];
        if (!e.InUse)
        {
            return;
        }
        Emit(ref e, NatEventType.PcpMappingDeleted, 0, (byte)cause, nowMs);
        _byInternal.Remove(new FlowKey(e.Internal, 0, e.InternalPortRaw, 0, e.Protocol));
        uint sub = Cgnat.SubscriberOf(e.Internal);
        if (e.AllPorts)
        {
            _allPorts.Remove(new FlowKey(sub, 0, 0, 0, e.Protocol));
        }
        else
        {
            _byExternal.Remove(new FlowKey(0, e.External, 0, e.ExternalPortRaw, e.Protocol));
        }
        if (_perSubscriber.TryGetValue(sub, out int n))
        {
            if (n <= 1)
            {
                _perSubscriber.Remove(sub);
            }
            else
            {
                _perSubscriber[sub] = n - 1;
            }
        }
        if (e.PoolIndex >= 0 && e.ExternalPortRaw != 0)
        {
            GiveBackPort(ref e, nowMs);
        }
        e.InUse = false;
        e.FirstFree(_free);
        _free = m;
        Count--;
    }

    private void GiveBackPort(ref PcpMapping e, long nowMs)
    {
        // An all-ports anchor is used by sessions as (internal host, anchor port), the same port both sides.
        byte protocol = e.AllPorts ? AnchorProtocol(e.Protocol) : e.Protocol;
        int sm = _table.FindMappingByInside(e.Internal, e.AllPorts ? e.ExternalPortRaw : e.InternalPortRaw, protocol);
        if (sm >= 0)
        {
            ref Mapping map = ref _table.Mappings[sm];
            if (map.InUse && map.StaticPort && map.ExternalAddress == e.External && map.ExternalPort == e.ExternalPortRaw)
            {
                map.StaticPort = false; // the implicit mapping owns the port from now on
                map.PoolIndex = e.PoolIndex;
                return;
            }
        }
        int cls = SessionTable.ProtocolClass(protocol);
        int port = FlowKey.PortToHost(e.ExternalPortRaw);
        _table.NowMs = nowMs;
        if (_table.Subscribers is SubscriberPorts sp)
        {
            sp.Free(e.Internal, e.PoolIndex, cls, port, quarantine: true, nowMs);
        }
        else
        {
            _table.Ports.Release(e.PoolIndex, cls, port, nowMs);
        }
    }

    /// <summary>The protocol whose port class an all-ports mapping of <paramref name="protocol"/> holds its anchor in (protocol 0: TCP's).</summary>
    public static byte AnchorProtocol(byte protocol) => protocol == IpProtocol.Udp ? IpProtocol.Udp : IpProtocol.Tcp;

    /// <summary>
    /// Forgets every mapping without giving ports back (the pool or allocator was replaced: the
    /// ports belonged to an allocator that is gone).
    /// </summary>
    public void Clear(long nowMs)
    {
        for (int m = 0; m < _entries.Length; m++)
        {
            if (_entries[m].InUse)
            {
                _entries[m].PoolIndex = -1; // nothing to give back
                Remove(m, nowMs, PcpDeleteCause.Reload);
            }
        }
    }

    /// <summary>Removes up to <paramref name="budget"/> mappings past their lifetime at <paramref name="nowMs"/>, scanning a bounded slice.</summary>
    /// <returns>Mappings removed.</returns>
    public int Expire(long nowMs, int budget)
    {
        if (Count == 0)
        {
            return 0;
        }
        int removed = 0;
        int scan = Math.Min(_entries.Length, Math.Max(budget, 1) * 8);
        for (int k = 0; k < scan && removed < budget; k++)
        {
            int m = _sweepCursor;
            _sweepCursor = m + 1 == _entries.Length ? 0 : m + 1;
            if (_entries[m].InUse && _entries[m].ExpiresMs <= nowMs)
            {
                Remove(m, nowMs, PcpDeleteCause.Expired);
                removed++;
            }
        }
        return removed;
    }

    /// <summary>True when entry <paramref name="m"/> is in use and not past its lifetime at <paramref name="nowMs"/> (expiry is exact whatever the sweeper's pace).</summary>
    public bool Live(int m, long nowMs) => m >= 0 && _entries[m].InUse && _entries[m].ExpiresMs > nowMs;

    /// <summary>
    /// Queues a NAT event for entry <paramref name="e"/> (protocol, internal and external endpoints,
    /// lifetime granted or the delete's cause) to the shard's event sinks. Always logged, whatever
    /// <see cref="SessionTable.SessionEvents"/> says: a block or deterministic record does not say
    /// that a port was opened to inbound traffic.
    /// </summary>
    private void Emit(ref PcpMapping e, NatEventType type, uint lifetime, byte detail, long nowMs)
        => _table.EmitEvent(new NatEvent
        {
            TimeMs = nowMs,
            Type = type,
            Protocol = e.Protocol,
            InsideAddress = e.Internal,
            InsidePort = FlowKey.PortToHost(e.InternalPortRaw),
            ExternalAddress = e.External,
            ExternalPort = e.AllPorts ? (ushort)0 : FlowKey.PortToHost(e.ExternalPortRaw), // all-ports: port 0 means all
            Lifetime = lifetime,
            Detail = detail,
        });

    /// <summary>A nonce as 24 hex digits in wire order (the words were read raw, in network order).</summary>
    private static string NonceHex(uint n0, uint n1, uint n2)
        => string.Create(System.Globalization.CultureInfo.InvariantCulture,
            $"{System.Buffers.Binary.BinaryPrimitives.ReverseEndianness(n0):x8}{System.Buffers.Binary.BinaryPrimitives.ReverseEndianness(n1):x8}{System.Buffers.Binary.BinaryPrimitives.ReverseEndianness(n2):x8}");

    /// <summary>Adds every live mapping to <paramref name="into"/> for the restart snapshot (allocates, never per packet).</summary>
    public void Export(List<PcpMappingRecord> into, long nowMs)
    {
        for (int m = 0; m < _entries.Length; m++)
        {
            ref PcpMapping e = ref _entries[m];
            if (e.InUse && e.ExpiresMs > nowMs)
            {
                into.Add(new PcpMappingRecord(e.Protocol, e.Internal, FlowKey.PortToHost(e.InternalPortRaw), e.External,
                    FlowKey.PortToHost(e.ExternalPortRaw), e.Lifetime, e.ExpiresMs - nowMs, FiltersOf(m).ToArray(),
                    NonceHex(e.Nonce0, e.Nonce1, e.Nonce2), e.NatPmp));
            }
        }
    }

    /// <summary>Adds every live mapping to <paramref name="into"/> (a listing: allocates, never per packet).</summary>
    public void Collect(List<PcpMappingInfo> into, long nowMs)
    {
        for (int m = 0; m < _entries.Length; m++)
        {
            ref PcpMapping e = ref _entries[m];
            if (!e.InUse || e.ExpiresMs <= nowMs)
            {
                continue;
            }
            into.Add(new PcpMappingInfo(e.Protocol, e.Internal, FlowKey.PortToHost(e.InternalPortRaw), e.External,
                e.AllPorts ? (ushort)0 : FlowKey.PortToHost(e.ExternalPortRaw), (e.ExpiresMs - nowMs + 999) / 1000, FiltersOf(m).ToArray(),
                NonceHex(e.Nonce0, e.Nonce1, e.Nonce2),
                e.NatPmp));
        }
    }
}
