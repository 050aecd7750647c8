using Natd.Dataplane.Sessions;

namespace Natd.Dataplane.Nat;

/// <summary>A subscriber as operators see it (natctl subscribers): its address, pairing, blocks and what it holds against its limits.</summary>
/// <param name="Subscriber">The subscriber's address or prefix (network order).</param>
/// <param name="External">Its paired external address (network order), 0 when it holds no port.</param>
/// <param name="Blocks">Its blocks as (low, high) ports, host order; the ports between are every <see cref="PortBlocks.Step"/>-th.</param>
/// <param name="Ports">External ports held.</param>
/// <param name="Sessions">Live sessions.</param>
/// <param name="SessionHits">Flows refused by the session limit.</param>
/// <param name="PortHits">Flows refused by the port limit.</param>
/// <param name="RateHits">Flows refused by the rate limit.</param>
/// <param name="BlockHits">Flows refused with all its blocks full.</param>
public sealed record SubscriberInfo(uint Subscriber, uint External, IReadOnlyList<(int Low, int High)> Blocks, int Ports, int Sessions,
    int SessionHits, int PortHits, int RateHits, int BlockHits)
{
    /// <summary>The subscriber's prefix length (<c>nat.subscriber-prefix</c>; 32 for one address).</summary>
    public int PrefixLength { get; init; } = 32;
    /// <summary>Ports between consecutive ports of a block (RFC 8158 portRangeStepSize: the shard count).</summary>
    public int Step { get; init; } = 1;
    /// <summary>Ports it may hold: <c>limits.per-subscriber.ports</c>, or its blocks' worth with port blocks; 0 = unlimited.</summary>
    public int PortLimit { get; init; }
    /// <summary><c>limits.per-subscriber.sessions</c>; 0 = unlimited.</summary>
    public int SessionLimit { get; init; }

    /// <summary>
    /// One row per subscriber from every shard's rows (natctl subscribers, GET /subscribers). A
    /// subscriber's TCP and UDP live in the shard that owns it, its port-less flows (ESP, GRE),
    /// ISAKMP and port-trigger traffic in shard 0 (docs/architecture.md, "Shards"), so with more
    /// than one shard it may have a row in two. Its ports, sessions, blocks and refusals add up; its
    /// external address is that of a row holding ports (the shards pair it alike,
    /// <see cref="PairingDirectory"/>), else the first non-zero one.
    /// </summary>
    /// <param name="rows">Every shard's rows, in any order.</param>
    /// <returns>The merged rows, in the order each subscriber first appears; blocks sorted by port.
    /// Allocates: control path only.</returns>
    public static List<SubscriberInfo> MergeShards(IEnumerable<SubscriberInfo> rows)
    {
        ArgumentNullException.ThrowIfNull(rows);
        var merged = new List<SubscriberInfo>();
        var at = new Dictionary<(uint Subscriber, int PrefixLength), int>();
        foreach (SubscriberInfo r in rows)
        {
            if (!at.TryGetValue((r.Subscriber, r.PrefixLength), out int i))
            {
                at.Add((r.Subscriber, r.PrefixLength), merged.Count);
                merged.Add(r);
                continue;
            }
            SubscriberInfo m = merged[i];
            var blocks = new List<(int Low, int High)>(m.Blocks.Count + r.Blocks.Count);
            blocks.AddRange(m.Blocks);
            blocks.AddRange(r.Blocks);
            blocks.Sort();
            uint external = m.Ports > 0 && m.External != 0 ? m.External
                : r.Ports > 0 && r.External != 0 ? r.External
                : m.External != 0 ? m.External : r.External;
            merged[i] = m with
            {
                External = external,
                Blocks = blocks,
                Ports = m.Ports + r.Ports,
                Sessions = m.Sessions + r.Sessions,
                SessionHits = m.SessionHits + r.SessionHits,
                PortHits = m.PortHits + r.PortHits,
                RateHits = m.RateHits + r.RateHits,
                BlockHits = m.BlockHits + r.BlockHits,
            };
        }
        return merged;
    }
}

/// <summary>One held port block as operators see it (natctl blocks).</summary>
/// <param name="External">The block's external address (network order).</param>
/// <param name="Low">Lowest port (host order).</param>
/// <param name="High">Highest port (host order).</param>
/// <param name="Step">Ports between consecutive ports of the block (RFC 8158 portRangeStepSize).</param>
/// <param name="Subscriber">The holder (network order).</param>
/// <param name="PortsInUse">Mappings in the block now (all protocols).</param>
/// <param name="AgeSeconds">Seconds since the block was allocated.</param>
public sealed record BlockInfo(uint External, int Low, int High, int Step, uint Subscriber, int PortsInUse, double AgeSeconds);

/// <summary>
/// Subscriber-aware port allocation of one shard (RFC 6888): paired pooling (RFC 4787 REQ-2; a
/// subscriber keeps one external address while it holds any port; the first port picks the
/// least-loaded address), port-block allocation (RFC 6888 section 5: ports drawn at random inside
/// the subscriber's blocks, RFC 6056 within the block), the port-block quarantine and interim
/// records, and the per-subscriber limits (RFC 6888 REQ-3, REQ-4: sessions, ports, new sessions
/// per second). The session table calls it for every session and mapping it adds or removes, so
/// what a subscriber holds is counted in one place. Built only when a CGN feature is configured:
/// the default (dynamic ports, hash pairing, no limits) never gets here. Single threaded; no
/// allocation on the packet path (the tables are preallocated).
/// </summary>
public sealed class SubscriberPorts : ISubscriberAccounting
{
    /// <summary>At most one limit event per subscriber this often (ms), so a subscriber hammering a limit cannot flood the log.</summary>
    public const long LimitEventIntervalMs = 10_000;

    private readonly SessionTable _table;
    private readonly CgnatSettings _cgn;
    private readonly uint[] _pool;
    private readonly PortBlocks? _blocks;
    private readonly DeadlineQueue? _releaseDue;
    private readonly DeadlineQueue? _interimDue;
    private readonly int[] _paired;      // subscribers paired to each address (dynamic mode's load)
    private readonly PairingDirectory? _pairings;
    private readonly PairingTable? _published; // this shard's pairings, which the other shards read (port-less flows live in shard 0)
    private readonly int _shard;
    private int _holds;      // subscribers whose port-less flows hold their pairing (PortlessUntilMs set)
    private int _holdCursor; // where the sweeper's walk for lapsed holds goes on
    private readonly int _tieStart;
    private readonly bool[] _draining;   // per pool index: nat.drain (no new pairing there)
    private readonly int _drainCount;
    private readonly long _delayMs;
    private readonly long _interimMs;
    private ulong _rng;
    private readonly int[] _portBuckets = new int[PortBuckets.Length + 1]; // subscribers by ports held; [0] unused (derived from the count)
    private long _portsHeld;

    /// <summary>
    /// Upper bounds (inclusive) of the ports-per-subscriber histogram (natd_subscriber_ports): a
    /// fixed set, so the metric has the same few series whatever the number of subscribers.
    /// </summary>
    public static readonly int[] PortBuckets = [0, 16, 64, 256, 1024, 4096, 16384];

    /// <summary>Creates the shard's subscriber state.</summary>
    /// <param name="table">The shard's session table (its <see cref="SessionTable.Ports"/> and event queue).</param>
    /// <param name="cgn">The CGN settings.</param>
    /// <param name="pool">External addresses (network order; index = pool index).</param>
    /// <param name="seed">Seed of the block and port choice and of the tie-break between equally loaded addresses.</param>
    /// <param name="shard">This shard.</param>
    /// <param name="shards">Shards.</param>
    /// <param name="capacity">Subscribers the shard may hold (its session capacity: a subscriber holds at least a session, a port or a block).</param>
    /// <param name="legacy">The cut of blocks a reload carries over with another size or start than the new one (<see cref="PortBlocks.Legacy"/>), or null.</param>
    /// <param name="pairings">The pairings every shard publishes (<see cref="PairingDirectory"/>): this shard writes its own table and reads the others', or null with one shard.</param>
    public SubscriberPorts(SessionTable table, CgnatSettings cgn, uint[] pool, ulong seed, int shard, int shards, int capacity, BlockGeometry? legacy = null,
        PairingDirectory? pairings = null)
    {
        _table = table;
        _pairings = pairings;
        _shard = shard;
        _published = pairings?.Of(shard);
        _cgn = cgn;
        _portLimit = cgn.Limits.Ports;
        _rate = cgn.Limits.NewSessionsPerSecond;
        _pool = pool;
        Table = new SubscriberTable(capacity, seed ^ 0x51B5C0DEUL);
        _paired = new int[pool.Length];
        _tieStart = (int)(seed % (ulong)pool.Length);
        _draining = cgn.Drain.Mask(pool);
        foreach (bool d in _draining)
        {
            _drainCount += d ? 1 : 0;
        }
        _rng = seed | 1;
        _delayMs = cgn.PortReuseDelaySeconds * 1000L;
        _interimMs = cgn.PortBlock.InterimLogSeconds * 1000L;
        if (cgn.Allocation == PortAllocation.PortBlock)
        {
            PortAllocator ports = table.Ports;
            _blocks = new PortBlocks(pool.Length, ports.OrdinaryLow, ports.OrdinaryHigh, shard, shards, cgn.PortBlock.Size, legacy);
            _releaseDue = new DeadlineQueue(_blocks.Count);
            _interimDue = _interimMs > 0 ? new DeadlineQueue(_blocks.Count) : null;
        }
    }

    /// <summary>The subscribers.</summary>
    public SubscriberTable Table { get; }

    /// <summary>The shard's blocks (null unless <c>nat.allocation: port-block</c>).</summary>
    public PortBlocks? Blocks => _blocks;

    /// <summary>
    /// The pool index <paramref name="inside"/>'s subscriber is paired with: here, else in the shard
    /// that publishes a pairing for it (<see cref="PairingDirectory"/>); -1 when it holds no port
    /// in any shard.
    /// </summary>
    public int PairedIndexOf(uint inside)
    {
        uint key = _cgn.SubscriberOf(inside);
        int i = Table.Find(key);
        return i >= 0 && Table[i].PoolIndex >= 0 ? Table[i].PoolIndex : PairedElsewhere(key);
    }

    /// <summary>The external address (network order) subscriber <paramref name="subscriber"/> (its key, <see cref="CgnatSettings.SubscriberOf"/>) is paired with here, or 0.</summary>
    public uint PairedAddressOf(uint subscriber)
    {
        int i = Table.Find(subscriber);
        return i < 0 || Table[i].PoolIndex < 0 ? 0 : _pool[Table[i].PoolIndex];
    }

    /// <summary>
    /// The pool index <paramref name="inside"/>'s subscriber is paired with, pairing it when no shard
    /// has yet (the address another shard publishes, else the least loaded), and holding that pairing
    /// for <paramref name="holdMs"/> from <paramref name="nowMs"/> though the subscriber may hold no
    /// port: its first port then takes the same address (RFC 4787 REQ-2), here or, through the
    /// published pairing, in its own shard. For the port-less flows (ESP, GRE, other protocols,
    /// ISAKMP, trigger-opened flows), called for every such frame (the hold follows the flows' idle
    /// timeout), and for the address a PCP or NAT-PMP answer names before any port exists (the hold
    /// is <c>pcp.min-lifetime</c>). -1 when the subscriber table is full (the caller falls back to
    /// the hash).
    /// </summary>
    public int HoldPairing(uint inside, long nowMs, long holdMs)
    {
        uint key = _cgn.SubscriberOf(inside);
        int i = Table.GetOrAdd(key, _rate, nowMs);
        if (i < 0)
        {
            return PairedElsewhere(key);
        }
        ref Subscriber s = ref Table[i];
        if (s.PoolIndex < 0)
        {
            PairFirst(ref s);
        }
        else if (_drainCount > 0)
        {
            MoveOffDraining(ref s, nowMs);
        }
        long until = nowMs + holdMs;
        if (until > s.PortlessUntilMs)
        {
            if (s.PortlessUntilMs == 0)
            {
                _holds++;
            }
            s.PortlessUntilMs = until;
        }
        return s.PoolIndex;
    }

    // The pool index of the address another shard publishes for subscriber key, -1 when none (or
    // not in this pool: a reload half applied across the shards).
    private int PairedElsewhere(uint key)
    {
        uint external = _pairings?.Find(key, except: _shard) ?? 0;
        return external == 0 ? -1 : Array.IndexOf(_pool, external);
    }

    // As PairedElsewhere, but -1 for a draining address: a new pairing never goes there, though
    // another shard may still hold the subscriber on it for flows that have not ended.
    private int ServingElsewhere(uint key)
    {
        int a = PairedElsewhere(key);
        return a >= 0 && _draining[a] ? -1 : a;
    }

    /// <summary>
    /// Moves a subscriber paired with a draining address (<c>nat.drain</c>) to a serving one, for the
    /// new flow asking: its live sessions keep their ports there until they end. Not while port-less
    /// flows hold its pairing (an ESP or GRE tunnel, ISAKMP, trigger traffic, the address a NAT-PMP
    /// client was told would change under them), here or, for a subscriber of another shard, in
    /// shard 0 (which carries them, and publishes the pairing they hold: shard 0 itself moves on its
    /// own holds only, so two shards never wait for each other), and with port blocks not while it
    /// holds all the blocks it may (its blocks there serve it until one is released). Emits PairingMoved.
    /// </summary>
    private void MoveOffDraining(ref Subscriber s, long nowMs)
    {
        int from = s.PoolIndex;
        if (from < 0 || !_draining[from] || s.PortlessUntilMs > nowMs
            || (_blocks is not null && s.Blocks >= _cgn.PortBlock.PerSubscriber)
            || (_shard != 0 && _pairings is not null && PairedElsewhere(s.Key) == from))
        {
            return;
        }
        _paired[from]--;
        s.PoolIndex = -1;
        _published?.Set(s.Key, 0);
        PairFirst(ref s);
        if (s.PoolIndex != from)
        {
            Emit(NatEventType.PairingMoved, s.Key, s.PoolIndex, 0, 0, 0, nowMs);
        }
    }

    // A subscriber's first pairing in this shard: the address another shard publishes for it, else
    // this shard's least loaded, claimed in the directory so that a shard choosing for the same
    // subscriber at the same moment takes the same (PairingDirectory's remarks give the order).
    private void PairFirst(ref Subscriber s)
    {
        int elsewhere = ServingElsewhere(s.Key);
        if (elsewhere >= 0 || _pairings is null)
        {
            Pair(ref s, elsewhere >= 0 ? elsewhere : LeastLoaded(-1));
            return;
        }
        int chosen = LeastLoaded(-1);
        uint claimed = _pairings.Claim(s.Key, _pool[chosen], out bool held);
        // Published beats claimed: a pairing published after the first look was chosen under a claim
        // released before this one was taken or read, so it is the one the claim's holder pairs too.
        elsewhere = claimed != 0 ? ServingElsewhere(s.Key) : -1;
        if (elsewhere >= 0)
        {
            chosen = elsewhere;
        }
        else if (!held && claimed != 0 && Array.IndexOf(_pool, claimed) is var theirs && theirs >= 0 && !_draining[theirs])
        {
            chosen = theirs; // another shard is choosing now: its address (not in this pool: a reload half applied, ours)
        }
        Pair(ref s, chosen);
        if (held)
        {
            _pairings.Release(s.Key, claimed); // after Pair published: the next to claim sees it
        }
    }

    // Every change of a subscriber's pairing goes through here, so the other shards' view of it
    // (the published table) never lags behind this shard's.
    private void Pair(ref Subscriber s, int poolIndex)
    {
        s.PoolIndex = poolIndex;
        _paired[poolIndex]++;
        _published?.Set(s.Key, _pool[poolIndex]);
    }

    /// <summary>
    /// Adds the (low, high) ports (host order) of the blocks <paramref name="inside"/>'s subscriber
    /// holds on pool address <paramref name="poolIndex"/> to <paramref name="into"/> (an all-ports
    /// mapping's listing; allocates, control path only).
    /// </summary>
    public void BlocksOf(uint inside, int poolIndex, List<(int Low, int High)> into)
    {
        ArgumentNullException.ThrowIfNull(into);
        int i = Table.Find(_cgn.SubscriberOf(inside));
        if (_blocks is not { } pb || i < 0)
        {
            return;
        }
        for (int b = Table[i].BlockHead; b >= 0; b = pb.NextOf(b))
        {
            if (pb.AddressOf(b) == poolIndex)
            {
                into.Add((pb.Low(b), pb.High(b)));
            }
        }
        into.Sort();
    }

    /// <summary>Blocks held on each address (index = pool index), for utilisation figures; empty without port blocks.</summary>
    public int BlocksHeldOn(int poolIndex) => _blocks is null ? 0 : _blocks.PerAddress - _blocks.FreeOn(poolIndex);

    private SubscriberLimits Limits => _cgn.Limits;

    // The limits every new flow reads, copied out of the (immutable) settings: two loads fewer on the path.
    private readonly int _portLimit;
    private readonly int _rate;

    /// <summary>Prefetches what a new flow of <paramref name="inside"/> looks up first (its subscriber's index slot). A hint only.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    public void Prefetch(uint inside) => Table.Prefetch(_cgn.SubscriberOf(inside));

    /// <summary>Prefetches the entry of <paramref name="inside"/>'s subscriber, some time after <see cref="Prefetch"/> brought in its index slot. A hint only.</summary>
    public void PrefetchEntry(uint inside) => Table.PrefetchEntry(_cgn.SubscriberOf(inside));

    /// <summary>
    /// Prefetches what a new flow of <paramref name="inside"/>'s subscriber reads next with port
    /// blocks: its first block's count of <paramref name="protocolClass"/> and that block's bitmap
    /// words, some time after <see cref="PrefetchEntry"/> brought in its entry. A hint only.
    /// </summary>
    public void PrefetchBlock(uint inside, int protocolClass)
    {
        if (_blocks is not { } blocks)
        {
            return;
        }
        int slot = Table.Peek(_cgn.SubscriberOf(inside));
        int b = slot >= 0 ? Table[slot].BlockHead : -1;
        if (b >= 0)
        {
            blocks.PrefetchUse(b, protocolClass);
            int a = blocks.AddressOf(b);
            _table.Ports.Prefetch(a, protocolClass, blocks.Low(b));
            _table.Ports.Prefetch(a, protocolClass, blocks.High(b));
        }
    }

    /// <summary>
    /// Admits a new session of inside host <paramref name="inside"/> (network order) at
    /// <paramref name="nowMs"/> against the subscriber's session and rate limits (the rate's token
    /// bucket holds one second of burst, refilled from the engine clock). Existing sessions are
    /// never evicted: a refused flow is dropped with the reason, and a limit event emitted.
    /// </summary>
    /// <returns>False with <paramref name="reason"/> (SubscriberSessionLimit or SubscriberRateLimit) when refused.</returns>
    public bool Admit(uint inside, long nowMs, out DropReason reason)
    {
        reason = default;
        SubscriberLimits l = Limits;
        if (l.Sessions == 0 && l.NewSessionsPerSecond == 0)
        {
            return true;
        }
        uint key = _cgn.SubscriberOf(inside);
        int i = Table.GetOrAdd(key, l.NewSessionsPerSecond, nowMs);
        if (i < 0)
        {
            reason = DropReason.SessionLimit;
            return false;
        }
        ref Subscriber s = ref Table[i];
        if (l.Sessions > 0 && s.Sessions >= l.Sessions)
        {
            s.SessionHits++;
            Refuse(ref s, NatLimitKind.Sessions, nowMs);
            reason = DropReason.SubscriberSessionLimit;
            return false;
        }
        if (l.NewSessionsPerSecond > 0)
        {
            if (nowMs - s.RefillMs >= 1000)
            {
                s.RefillMs = nowMs;
                s.Tokens = l.NewSessionsPerSecond;
            }
            if (s.Tokens <= 0)
            {
                s.RateHits++;
                Refuse(ref s, NatLimitKind.Rate, nowMs);
                reason = DropReason.SubscriberRateLimit;
                return false;
            }
            s.Tokens--;
        }
        return true;
    }

    /// <summary>
    /// Takes an external port (host order) for a new mapping of <paramref name="inside"/> in protocol
    /// class <paramref name="protocolClass"/>: on the subscriber's paired address (the least-loaded
    /// one for its first port), inside its blocks with port-block allocation (privileged ports keep
    /// the per-port allocation, RFC 4787 REQ-3). When the paired address has nothing free, strict
    /// pairing refuses (PairedAddressFull; PortExhausted with a one-address pool) and spill takes
    /// another address and emits a PairingSpill event.
    /// </summary>
    /// <returns>The port, or -1 with <paramref name="reason"/>.</returns>
    public int Allocate(uint inside, int protocolClass, bool privileged, long nowMs, out int poolIndex, out DropReason reason)
    {
        poolIndex = -1;
        reason = default;
        uint key = _cgn.SubscriberOf(inside);
        int i = Table.GetOrAdd(key, _rate, nowMs);
        if (i < 0)
        {
            reason = DropReason.SessionLimit;
            return -1;
        }
        ref Subscriber s = ref Table[i];
        if (_portLimit > 0 && s.Ports >= _portLimit)
        {
            s.PortHits++;
            Refuse(ref s, NatLimitKind.Ports, nowMs);
            reason = DropReason.SubscriberPortLimit;
            return -1;
        }
        if (s.PoolIndex < 0)
        {
            // A subscriber's first port here: the address another shard already pairs it with (shard
            // 0 allocates for its trigger traffic too), else the least loaded.
            PairFirst(ref s);
        }
        else if (_drainCount > 0)
        {
            MoveOffDraining(ref s, nowMs);
        }
        int port = _blocks is not null && !privileged
            ? AllocateInBlocks(ref s, protocolClass, nowMs, out poolIndex, out reason)
            : AllocatePort(ref s, protocolClass, privileged, nowMs, out poolIndex, out reason);
        if (port < 0)
        {
            Settle(key);
            return -1;
        }
        CountPorts(ref s, 1);
        return port;
    }

    private int AllocatePort(ref Subscriber s, int protocolClass, bool privileged, long nowMs, out int poolIndex, out DropReason reason)
    {
        PortAllocator ports = _table.Ports;
        poolIndex = s.PoolIndex;
        int port = ports.Allocate(poolIndex, protocolClass, privileged);
        if (port >= 0)
        {
            reason = default;
            return port;
        }
        if (_cgn.Pairing == Pairing.Spill)
        {
            for (int k = 1; k < _pool.Length; k++)
            {
                int a = (s.PoolIndex + k) % _pool.Length;
                if (_draining[a])
                {
                    continue;
                }
                port = ports.Allocate(a, protocolClass, privileged);
                if (port >= 0)
                {
                    poolIndex = a;
                    Emit(NatEventType.PairingSpill, s.Key, a, port, 0, 0, nowMs);
                    reason = default;
                    return port;
                }
            }
        }
        return Exhausted(ref s, nowMs, out reason);
    }

    private int AllocateInBlocks(ref Subscriber s, int protocolClass, long nowMs, out int poolIndex, out DropReason reason)
    {
        PortBlocks blocks = _blocks!;
        // The random start inside the block (RFC 6056) is drawn first: it does not depend on which
        // block, so it is ready when the chain of loads (subscriber, block, bitmap) comes back.
        ulong random = _table.Ports.NextRandom();
        // Moved off a draining address (nat.drain), the subscriber's blocks there take no new
        // mapping while it can have a block elsewhere; they serve it only as a last resort.
        bool skipDraining = _drainCount > 0 && !_draining[s.PoolIndex];
        for (int b = s.BlockHead; b >= 0; b = blocks.NextOf(b))
        {
            if (blocks.ClassUse(b, protocolClass) < blocks.SizeOf(b) && !(skipDraining && _draining[blocks.AddressOf(b)]))
            {
                int a = blocks.AddressOf(b);
                int p = TakeInBlock(b, a, protocolClass, random);
                if (p >= 0)
                {
                    poolIndex = a;
                    reason = default;
                    return p;
                }
            }
        }
        poolIndex = -1;
        if (s.Blocks >= _cgn.PortBlock.PerSubscriber)
        {
            s.BlockHits++;
            Refuse(ref s, NatLimitKind.Blocks, nowMs);
            reason = DropReason.PairedAddressFull;
            return -1;
        }
        int nb = TakeBlockWithRoom(s.PoolIndex, s.Key, protocolClass, random, out int port);
        if (nb < 0 && _cgn.Pairing == Pairing.Spill)
        {
            int a = LeastLoaded(s.PoolIndex);
            nb = a >= 0 ? TakeBlockWithRoom(a, s.Key, protocolClass, random, out port) : -1;
            if (nb >= 0)
            {
                Emit(NatEventType.PairingSpill, s.Key, a, blocks.Low(nb), blocks.High(nb), (byte)blocks.Step, nowMs);
            }
        }
        if (nb < 0)
        {
            int last = skipDraining ? TakeInOwnBlocks(ref s, protocolClass, random, out poolIndex) : -1;
            if (last >= 0)
            {
                reason = default;
                return last;
            }
            return Exhausted(ref s, nowMs, out reason);
        }
        blocks.SetNext(nb, s.BlockHead);
        s.BlockHead = nb;
        s.Blocks++;
        blocks.EmptySinceMs[nb] = nowMs;
        blocks.AllocatedMs[nb] = nowMs;
        Emit(NatEventType.PortBlockAllocated, s.Key, blocks.AddressOf(nb), blocks.Low(nb), blocks.High(nb), (byte)blocks.Step, nowMs);
        if (_interimDue is not null)
        {
            blocks.NextInterimMs[nb] = nowMs + _interimMs;
            _interimDue.Ensure(nb, nowMs + _interimMs);
        }
        poolIndex = blocks.AddressOf(nb);
        reason = default;
        return port;
    }

    // A port in any of the subscriber's own blocks, draining addresses included: the last resort of
    // a subscriber moved off a draining address when no block elsewhere is to be had.
    private int TakeInOwnBlocks(ref Subscriber s, int protocolClass, ulong random, out int poolIndex)
    {
        PortBlocks blocks = _blocks!;
        for (int b = s.BlockHead; b >= 0; b = blocks.NextOf(b))
        {
            if (blocks.ClassUse(b, protocolClass) < blocks.SizeOf(b))
            {
                int a = blocks.AddressOf(b);
                int p = TakeInBlock(b, a, protocolClass, random);
                if (p >= 0)
                {
                    poolIndex = a;
                    return p;
                }
            }
        }
        poolIndex = -1;
        return -1;
    }

    /// <summary>
    /// Takes a free block of pool address <paramref name="address"/> for <paramref name="key"/> that
    /// has a free port of <paramref name="protocolClass"/>, and that port (host order, drawn with
    /// <paramref name="random"/>): the first such block from a random start, so a block's position
    /// tells nothing of the order subscribers came in. A block whose ports of the class are all
    /// reserved (a forward's range, a trigger's open range) serves this flow nothing, so it is passed
    /// over (it stays free, for the other classes and other flows) rather than handed out and the flow
    /// refused. At most one pass over the address's blocks; -1 when none fits.
    /// </summary>
    private int TakeBlockWithRoom(int address, uint key, int protocolClass, ulong random, out int port)
    {
        PortBlocks blocks = _blocks!;
        port = -1;
        if (blocks.FreeOn(address) == 0)
        {
            return -1;
        }
        int per = blocks.PerAddress;
        int start = (int)(Next() % (ulong)per);
        for (int i = 0; i < per; i++)
        {
            int b = address * per + (start + i) % per;
            if (!blocks.TryTake(b, key))
            {
                continue; // held or pinned
            }
            port = TakeInBlock(b, address, protocolClass, random);
            if (port >= 0)
            {
                return b;
            }
            blocks.Return(b); // taken and given back before anyone saw it: no record
        }
        return -1;
    }

    /// <summary>
    /// RFC 6056 inside the block: a random start, then the next port free in the allocator's bitmap
    /// between the block's low and high port, a word (64 ports) at a time. The ports in between that
    /// are not the block's belong to other shards, which this shard's allocator holds as taken, and
    /// reserved ports (forwards, triggers) are taken too, so the scan yields only the block's free ports.
    /// </summary>
    private int TakeInBlock(int b, int address, int protocolClass, ulong random)
    {
        PortBlocks blocks = _blocks!;
        int low = blocks.Low(b);
        int span = (blocks.SizeOf(b) - 1) * blocks.Step + 1;
        int port = _table.Ports.AllocateInRange(address, protocolClass, low, low + span - 1, PortAllocator.Draw(random, span));
        if (port >= 0)
        {
            blocks.Use(b, protocolClass, 1);
        }
        return port;
    }

    private int Exhausted(ref Subscriber s, long nowMs, out DropReason reason)
    {
        // One address: the pool itself is exhausted; several: strict pairing (or no room anywhere) refuses.
        reason = _pool.Length == 1 ? DropReason.PortExhausted : DropReason.PairedAddressFull;
        Emit(NatEventType.PortExhausted, s.Key, s.PoolIndex, 0, 0, 0, nowMs);
        return -1;
    }

    /// <summary>
    /// Takes the specific external <paramref name="port"/> (host order) on pool address
    /// <paramref name="poolIndex"/> for <paramref name="inside"/>, as a PCP client suggested it
    /// (RFC 6887 section 11.3): only within the subscriber's port limit, on its paired address (or
    /// pairing it there), with port blocks only inside a block it holds, and only when the port is
    /// free. Counted as <see cref="Allocate"/> counts; given back with <see cref="Free"/>.
    /// </summary>
    /// <returns>False (nothing taken) when any condition fails.</returns>
    public bool TryTake(uint inside, int poolIndex, int protocolClass, int port, long nowMs)
    {
        uint key = _cgn.SubscriberOf(inside);
        int i = Table.GetOrAdd(key, Limits.NewSessionsPerSecond, nowMs);
        if (i < 0)
        {
            return false;
        }
        ref Subscriber s = ref Table[i];
        int b = _blocks?.BlockOf(poolIndex, port) ?? -1;
        bool ok = (Limits.Ports == 0 || s.Ports < Limits.Ports)
            && (s.PoolIndex < 0 ? !_draining[poolIndex] : s.PoolIndex == poolIndex)
            && (_blocks is null || (b >= 0 && _blocks.IsHeld(b) && _blocks.OwnerOf(b) == key))
            && _table.Ports.TryReserve(poolIndex, protocolClass, port);
        if (!ok)
        {
            Settle(key);
            return false;
        }
        if (s.PoolIndex < 0)
        {
            Pair(ref s, poolIndex);
        }
        if (b >= 0)
        {
            _blocks!.Use(b, protocolClass, 1);
        }
        CountPorts(ref s, 1);
        return true;
    }

    /// <summary>
    /// Gives back the port of <paramref name="inside"/>'s ended mapping (or unused reservation): into
    /// its block (the block goes after <c>nat.port-reuse-delay</c> once its last mapping ended), else
    /// to the allocator, through the port quarantine when <paramref name="quarantine"/>.
    /// </summary>
    public void Free(uint inside, int poolIndex, int protocolClass, int port, bool quarantine, long nowMs)
    {
        int b = _blocks?.BlockOf(poolIndex, port) ?? -1;
        if (b >= 0)
        {
            _table.Ports.Free(poolIndex, protocolClass, port);
            _blocks!.Use(b, protocolClass, -1);
            if (_blocks.IsHeld(b) && _blocks.Mappings(b) == 0)
            {
                BlockEmptied(b, nowMs);
            }
        }
        else if (quarantine)
        {
            _table.Ports.Release(poolIndex, protocolClass, port, nowMs);
        }
        else
        {
            _table.Ports.Free(poolIndex, protocolClass, port);
        }
        uint key = _cgn.SubscriberOf(inside);
        int i = Table.Find(key);
        if (i >= 0)
        {
            ref Subscriber s = ref Table[i];
            if (s.Ports > 0)
            {
                CountPorts(ref s, -1);
            }
            Settle(key);
        }
    }

    /// <summary>
    /// Counts a port <paramref name="inside"/> already holds (taken outside <see cref="Allocate"/>:
    /// a restored snapshot, or a re-count after a reload), pairing the subscriber with its address
    /// and giving it the port's block when free. A block taken here is logged
    /// (<c>port-block-allocate</c>) unless <paramref name="restored"/>: a restart snapshot's block
    /// goes on with the holding the run that took it logged, so a restart writes no second
    /// allocation record for it (as a reload carries blocks); its interim records start again now.
    /// </summary>
    public void Adopt(uint inside, int poolIndex, int protocolClass, int port, long nowMs, bool restored = false)
    {
        uint key = _cgn.SubscriberOf(inside);
        int i = Table.GetOrAdd(key, Limits.NewSessionsPerSecond, nowMs);
        if (i < 0)
        {
            return;
        }
        ref Subscriber s = ref Table[i];
        CountPorts(ref s, 1);
        if (s.PoolIndex < 0)
        {
            Pair(ref s, poolIndex);
        }
        else if (_draining[s.PoolIndex] && !_draining[poolIndex] && s.PortlessUntilMs <= nowMs)
        {
            // A subscriber already moved off a draining address (nat.drain) holds ports on both:
            // its pairing is the serving one, whichever mapping the rebuild met first.
            _paired[s.PoolIndex]--;
            Pair(ref s, poolIndex);
        }
        int b = _blocks?.BlockOf(poolIndex, port) ?? -1;
        if (b < 0)
        {
            return;
        }
        if (_blocks!.TryTake(b, key))
        {
            _blocks.SetNext(b, s.BlockHead);
            s.BlockHead = b;
            s.Blocks++;
            _blocks.AllocatedMs[b] = nowMs;
            if (!restored)
            {
                Emit(NatEventType.PortBlockAllocated, key, poolIndex, _blocks.Low(b), _blocks.High(b), (byte)_blocks.Step, nowMs);
            }
            if (_interimDue is not null)
            {
                _blocks.NextInterimMs[b] = nowMs + _interimMs;
                _interimDue.Ensure(b, nowMs + _interimMs);
            }
        }
        _blocks.Use(b, protocolClass, 1);
    }

    /// <inheritdoc/>
    int ISubscriberAccounting.Allocate(uint inside, int protocolClass, bool privileged, long nowMs, out int poolIndex)
        => Allocate(inside, protocolClass, privileged, nowMs, out poolIndex, out _);

    /// <summary>
    /// A reload's first step (before the live mappings are adopted): takes over
    /// <paramref name="old"/>'s subscribers (token buckets, limit hits) and every block it holds,
    /// empty ones in quarantine included, with its holder, size, quarantine start and interim
    /// deadline, and without a new allocation record (the block was logged when first taken). A
    /// block keeps its ports: cut as before, it stays a current block; cut otherwise (a new
    /// <c>nat.port-block.size</c>) it is a legacy block until released. <paramref name="oldPool"/> is
    /// the pool <paramref name="old"/> indexed (blocks follow their address's new index). Blocks the
    /// new settings cannot hold (refused by the engine's reload check before) are left out.
    /// Control path; then <see cref="FinishCarry"/> once the mappings are adopted.
    /// </summary>
    public void CarryFrom(SubscriberPorts old, uint[] oldPool, long nowMs)
    {
        for (int i = 0; i < old.Table.Slots; i++)
        {
            ref Subscriber o = ref old.Table[i];
            if (!o.InUse)
            {
                continue;
            }
            int j = Table.GetOrAdd(o.Key, Limits.NewSessionsPerSecond, nowMs);
            if (j < 0)
            {
                continue;
            }
            ref Subscriber s = ref Table[j];
            if (o.PortlessUntilMs > nowMs && o.PoolIndex >= 0 && Array.IndexOf(_pool, oldPool[o.PoolIndex]) is var held && held >= 0)
            {
                // Its port-less flows keep the address they were opened with: so does its pairing.
                Pair(ref s, held);
                s.PortlessUntilMs = o.PortlessUntilMs;
                _holds++;
            }
            s.Tokens = Math.Min(o.Tokens, Math.Max(Limits.NewSessionsPerSecond, 0));
            s.RefillMs = o.RefillMs;
            s.LimitEventMs = o.LimitEventMs;
            (s.SessionHits, s.PortHits, s.RateHits, s.BlockHits) = (o.SessionHits, o.PortHits, o.RateHits, o.BlockHits);
        }
        if (old._blocks is not { } ob || _blocks is not { } nb)
        {
            return;
        }
        for (int b = 0; b < ob.Count; b++)
        {
            if (!ob.IsHeld(b))
            {
                continue;
            }
            int a = Array.IndexOf(_pool, oldPool[ob.AddressOf(b)]);
            BlockGeometry cut = ob.IsLegacy(b) ? ob.Legacy!.Value : ob.Geometry;
            int id = a < 0 ? -1 : nb.IdOf(cut, a, ob.Low(b));
            uint key = ob.OwnerOf(b);
            int i = Table.Find(key);
            if (id < 0 || i < 0 || !nb.TryTake(id, key))
            {
                continue;
            }
            ref Subscriber s = ref Table[i];
            nb.SetNext(id, s.BlockHead);
            s.BlockHead = id;
            s.Blocks++;
            if (s.PoolIndex < 0)
            {
                Pair(ref s, a);
            }
            nb.EmptySinceMs[id] = ob.EmptySinceMs[b];
            if (_interimDue is not null)
            {
                long due = old._interimDue is not null ? ob.NextInterimMs[b] : nowMs + _interimMs;
                nb.NextInterimMs[id] = due;
                _interimDue.Ensure(id, due);
            }
        }
    }

    /// <summary>
    /// A reload's last step (after the live mappings were adopted): a carried block left without a
    /// mapping rests in quarantine from when it emptied (under the new <c>port-reuse-delay</c>), and a
    /// carried subscriber that holds nothing any more is forgotten.
    /// </summary>
    public void FinishCarry(long nowMs)
    {
        if (_blocks is { } nb)
        {
            for (int b = 0; b < nb.Count; b++)
            {
                if (nb.IsHeld(b) && nb.Mappings(b) == 0)
                {
                    if (_delayMs <= 0)
                    {
                        ReleaseBlock(b, nowMs);
                    }
                    else
                    {
                        _releaseDue!.Ensure(b, nb.EmptySinceMs[b] + _delayMs);
                    }
                }
            }
        }
        var idle = new List<uint>();
        for (int i = 0; i < Table.Slots; i++)
        {
            if (Table[i].InUse)
            {
                idle.Add(Table[i].Key);
            }
        }
        foreach (uint key in idle)
        {
            Settle(key);
        }
    }

    /// <summary>A session of <paramref name="inside"/> was added (any origin).</summary>
    public void SessionAdded(uint inside, long nowMs)
    {
        int i = Table.GetOrAdd(_cgn.SubscriberOf(inside), _rate, nowMs);
        if (i >= 0)
        {
            Table[i].Sessions++;
        }
    }

    /// <summary>A session of <paramref name="inside"/> ended.</summary>
    public void SessionRemoved(uint inside)
    {
        uint key = _cgn.SubscriberOf(inside);
        int i = Table.Find(key);
        if (i >= 0)
        {
            ref Subscriber s = ref Table[i];
            s.Sessions = Math.Max(0, s.Sessions - 1);
            Settle(key);
        }
    }

    /// <summary>Forgets a subscriber that holds nothing any more (its pairing ends with its last port).</summary>
    public void Settle(uint key)
    {
        int i = Table.Find(key);
        if (i < 0)
        {
            return;
        }
        ref Subscriber s = ref Table[i];
        if (s.PortlessUntilMs != 0 && s.PortlessUntilMs <= _table.NowMs)
        {
            s.PortlessUntilMs = 0; // the port-less flows' hold has lapsed
            _holds--;
        }
        bool holds = s.Ports != 0 || s.Blocks != 0 || s.PortlessUntilMs != 0;
        if (!holds && s.PoolIndex >= 0)
        {
            _paired[s.PoolIndex]--;
            s.PoolIndex = -1;
            _published?.Set(key, 0);
        }
        if (!holds && s.Sessions == 0)
        {
            Table.Remove(key);
        }
    }

    /// <summary>
    /// The sweeper's slice at <paramref name="nowMs"/>: releases up to <paramref name="budget"/>
    /// blocks empty for <c>nat.port-reuse-delay</c> (PortBlockReleased) and emits the interim
    /// records due (PortBlockInterim). Bounded by the budget, not by the number of blocks.
    /// </summary>
    /// <returns>Blocks released.</returns>
    public int Sweep(long nowMs, int budget)
    {
        int visits = SweepHolds(nowMs, budget);
        if (_blocks is null)
        {
            return 0;
        }
        int released = 0;
        while (visits < budget && _releaseDue!.TryPopDue(nowMs, out int b))
        {
            visits++;
            if (!_blocks.IsHeld(b) || _blocks.Mappings(b) != 0)
            {
                continue; // reused meanwhile: queued again when it empties
            }
            long due = _blocks.EmptySinceMs[b] + _delayMs;
            if (due > nowMs)
            {
                _releaseDue.Push(b, due);
                continue;
            }
            ReleaseBlock(b, nowMs);
            released++;
        }
        while (_interimDue is not null && visits < budget && _interimDue.TryPopDue(nowMs, out int b))
        {
            visits++;
            if (!_blocks.IsHeld(b))
            {
                continue;
            }
            if (_blocks.NextInterimMs[b] > nowMs)
            {
                _interimDue.Push(b, _blocks.NextInterimMs[b]); // re-taken after an earlier holder: its own deadline
                continue;
            }
            Emit(NatEventType.PortBlockInterim, _blocks.OwnerOf(b), _blocks.AddressOf(b), _blocks.Low(b), _blocks.High(b), (byte)_blocks.Step, nowMs);
            _blocks.NextInterimMs[b] = nowMs + _interimMs;
            _interimDue.Push(b, nowMs + _interimMs);
        }
        return released;
    }

    // Lapsed port-less holds: a walk over the subscriber slots, at most a budget's worth per slice,
    // only while some hold is set. A lapsed hold lingers until the walk comes by (or the subscriber's
    // next event settles it): its only cost is the pairing counted a little longer.
    private int SweepHolds(long nowMs, int budget)
    {
        int visits = 0;
        int slots = Table.Slots;
        while (_holds > 0 && visits < budget && slots > 0)
        {
            visits++;
            if (_holdCursor >= slots)
            {
                _holdCursor = 0;
            }
            ref Subscriber s = ref Table[_holdCursor++];
            if (s.InUse && s.PortlessUntilMs != 0 && s.PortlessUntilMs <= nowMs)
            {
                Settle(s.Key);
            }
        }
        return visits;
    }

    private void BlockEmptied(int b, long nowMs)
    {
        _blocks!.EmptySinceMs[b] = nowMs;
        if (_delayMs <= 0)
        {
            ReleaseBlock(b, nowMs);
            return;
        }
        _releaseDue!.Ensure(b, nowMs + _delayMs);
    }

    private void ReleaseBlock(int b, long nowMs)
    {
        PortBlocks blocks = _blocks!;
        uint key = blocks.OwnerOf(b);
        int i = Table.Find(key);
        if (i >= 0)
        {
            ref Subscriber s = ref Table[i];
            if (s.BlockHead == b)
            {
                s.BlockHead = blocks.NextOf(b);
            }
            else
            {
                for (int p = s.BlockHead; p >= 0; p = blocks.NextOf(p))
                {
                    if (blocks.NextOf(p) == b)
                    {
                        blocks.SetNext(p, blocks.NextOf(b));
                        break;
                    }
                }
            }
            s.Blocks = Math.Max(0, s.Blocks - 1);
        }
        Emit(NatEventType.PortBlockReleased, key, blocks.AddressOf(b), blocks.Low(b), blocks.High(b), (byte)blocks.Step, nowMs);
        blocks.Return(b);
        Settle(key);
    }

    /// <summary>
    /// The address a subscriber's first port goes to: the least loaded (blocks held and subscribers
    /// paired with port blocks, subscribers paired otherwise), ties to the first from a seed-chosen start; with
    /// port blocks only an address with a free block. -1 when none (besides <paramref name="except"/>).
    /// </summary>
    private int LeastLoaded(int except)
    {
        int best = -1;
        int bestLoad = int.MaxValue;
        int n = _pool.Length;
        for (int k = 0; k < n; k++)
        {
            int a = (_tieStart + k) % n;
            if (a == except || _draining[a])
            {
                continue;
            }
            int load;
            if (_blocks is not null)
            {
                if (_blocks.FreeOn(a) == 0)
                {
                    continue;
                }
                // Blocks held, plus the subscribers paired there: one paired by its port-less flows
                // holds no block yet, but its first port will take one there.
                load = _blocks.PerAddress - _blocks.FreeOn(a) + _paired[a];
            }
            else
            {
                load = _paired[a];
            }
            if (load < bestLoad)
            {
                best = a;
                bestLoad = load;
            }
        }
        return best < 0 && except < 0 ? FirstServing() : best;
    }

    // With every serving address full, a new pairing still needs an address (its flow is then
    // refused as exhausted): the first from the seed-chosen start that does not drain.
    private int FirstServing()
    {
        for (int k = 0; k < _pool.Length; k++)
        {
            int a = (_tieStart + k) % _pool.Length;
            if (!_draining[a])
            {
                return a;
            }
        }
        return _tieStart;
    }

    private void Refuse(ref Subscriber s, NatLimitKind kind, long nowMs)
    {
        if (nowMs - s.LimitEventMs < LimitEventIntervalMs)
        {
            return;
        }
        s.LimitEventMs = nowMs;
        _table.EmitEvent(new NatEvent
        {
            TimeMs = nowMs, Type = NatEventType.SubscriberLimit, InsideAddress = s.Key,
            ExternalAddress = s.PoolIndex >= 0 ? _pool[s.PoolIndex] : 0, Detail = (byte)kind,
        });
    }

    private void Emit(NatEventType type, uint key, int poolIndex, int low, int high, byte step, long nowMs)
        => _table.EmitEvent(new NatEvent
        {
            TimeMs = nowMs, Type = type, InsideAddress = key, ExternalAddress = poolIndex >= 0 ? _pool[poolIndex] : 0,
            ExternalPort = (ushort)low, PortHigh = (ushort)high, PortStep = step,
        });

    /// <summary>Every subscriber (natctl subscribers; allocates, control path only).</summary>
    public List<SubscriberInfo> List()
    {
        var list = new List<SubscriberInfo>(Table.Count);
        for (int i = 0; i < Table.Slots; i++)
        {
            ref Subscriber s = ref Table[i];
            if (!s.InUse)
            {
                continue;
            }
            var blocks = new List<(int, int)>();
            if (_blocks is { } pb)
            {
                for (int b = s.BlockHead; b >= 0; b = pb.NextOf(b))
                {
                    blocks.Add((pb.Low(b), pb.High(b)));
                }
            }
            list.Add(new SubscriberInfo(s.Key, s.PoolIndex >= 0 ? _pool[s.PoolIndex] : 0, blocks, s.Ports, s.Sessions,
                s.SessionHits, s.PortHits, s.RateHits, s.BlockHits)
            {
                PrefixLength = _cgn.SubscriberPrefix,
                Step = _blocks?.Step ?? 1,
                PortLimit = PortLimit,
                SessionLimit = Limits.Sessions,
            });
        }
        return list;
    }

    /// <summary>
    /// Ports a subscriber may hold: the port limit, or with port blocks its blocks' worth
    /// (per-subscriber x size) when that is lower or no port limit is set; 0 = unlimited.
    /// </summary>
    private int PortLimit
    {
        get
        {
            int limit = Limits.Ports;
            if (_blocks is not null)
            {
                int blocksWorth = _cgn.PortBlock.PerSubscriber * _cgn.PortBlock.Size;
                limit = limit == 0 ? blocksWorth : Math.Min(limit, blocksWorth);
            }
            return limit;
        }
    }

    /// <summary>Every held block at <paramref name="nowMs"/> (natctl blocks; allocates, control path only); empty without port blocks.</summary>
    public List<BlockInfo> ListBlocks(long nowMs)
    {
        var list = new List<BlockInfo>();
        if (_blocks is not { } pb)
        {
            return list;
        }
        for (int b = 0; b < pb.Count; b++)
        {
            if (pb.IsHeld(b))
            {
                list.Add(new BlockInfo(_pool[pb.AddressOf(b)], pb.Low(b), pb.High(b), pb.Step, pb.OwnerOf(b), pb.Mappings(b),
                    Math.Max(0, nowMs - pb.AllocatedMs[b]) / 1000.0));
            }
        }
        return list;
    }

    /// <summary>
    /// Adds the subscribers by ports held to <paramref name="into"/> (length
    /// <see cref="PortBuckets"/>.Length + 1): [i] counts those with more ports than bucket i - 1's
    /// bound and at most bucket i's, the last those above every bound (not cumulative). Kept as ports
    /// change, so any thread may read it (a batch old at most) without walking the table.
    /// </summary>
    /// <returns>Ports held by all of them.</returns>
    public long AddPortHistogram(long[] into)
    {
        ArgumentNullException.ThrowIfNull(into);
        long above = 0;
        for (int i = 1; i < _portBuckets.Length; i++)
        {
            int n = Volatile.Read(ref _portBuckets[i]);
            into[i] += n;
            above += n;
        }
        into[0] += Math.Max(0, Table.Count - above);
        return Volatile.Read(ref _portsHeld);
    }

    internal static int BucketOf(int ports)
    {
        // PortBuckets is 0, 16, then powers of four up to 16384: above 16, bucket k holds
        // 4^k + 1 .. 4^(k+1), i.e. k = floor(log2(ports - 1) / 2). Arithmetic, not a walk of the
        // bounds: every new mapping counts its port here twice.
        if (ports <= 16)
        {
            return ports <= 0 ? 0 : 1;
        }
        return Math.Min(System.Numerics.BitOperations.Log2((uint)(ports - 1)) >> 1, PortBuckets.Length);
    }

    /// <summary>Changes a subscriber's ports by <paramref name="delta"/> (1 or -1), moving it between histogram buckets.</summary>
    private void CountPorts(ref Subscriber s, int delta)
    {
        int from = BucketOf(s.Ports);
        s.Ports += delta;
        int to = BucketOf(s.Ports);
        if (from != to)
        {
            // Bucket 0 (no ports) is the table's count minus the rest, so entries added and removed empty need no bookkeeping.
            if (from > 0)
            {
                _portBuckets[from]--;
            }
            if (to > 0)
            {
                _portBuckets[to]++;
            }
        }
        _portsHeld += delta;
    }

    private ulong Next()
    {
        // xorshift64*: the block and in-block port choice need unpredictability, not a CSPRNG per packet.
        _rng ^= _rng >> 12;
        _rng ^= _rng << 25;
        _rng ^= _rng >> 27;
        return _rng * 0x2545F4914F6CDD1DUL;
    }
}
