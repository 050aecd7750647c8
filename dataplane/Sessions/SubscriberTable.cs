using System.Runtime.CompilerServices;

namespace Natd.Dataplane.Sessions;

/// <summary>
/// One subscriber's state in its shard (RFC 6888): its paired external address, its port blocks,
/// what it holds against its limits, its new-session token bucket and its limit hits.
/// </summary>
public struct Subscriber
{
    /// <summary>The subscriber: its inside address or prefix (network order).</summary>
    public uint Key;
    /// <summary>Paired external address (pool index), -1 while it holds no port.</summary>
    public int PoolIndex;
    /// <summary>Live sessions (all origins: outbound, forwarded, inbound on a mapping, related).</summary>
    public int Sessions;
    /// <summary>External ports it holds (mappings and ALG reservations, all protocols).</summary>
    public int Ports;
    /// <summary>Port blocks held (port-block allocation).</summary>
    public int Blocks;
    /// <summary>First block of its list (<see cref="PortBlocks.NextOf"/>), -1 for none; in a free entry, the next free slot.</summary>
    public int BlockHead;
    /// <summary>New-session tokens left in the current second.</summary>
    public int Tokens;
    /// <summary>When the token bucket was last refilled (engine ms).</summary>
    public long RefillMs;
    /// <summary>When the last limit event was emitted (engine ms).</summary>
    public long LimitEventMs;
    /// <summary>
    /// Until when (engine ms) its port-less flows (ESP, GRE, ISAKMP, trigger-opened) hold its pairing
    /// though it may hold no port; 0 for none.
    /// </summary>
    public long PortlessUntilMs;
    /// <summary>Flows refused by the session limit.</summary>
    public int SessionHits;
    /// <summary>Flows refused by the port limit.</summary>
    public int PortHits;
    /// <summary>Flows refused by the rate limit.</summary>
    public int RateHits;
    /// <summary>Flows refused because its blocks were all full and it held <c>per-subscriber</c> blocks.</summary>
    public int BlockHits;
    /// <summary>In use.</summary>
    public bool InUse;
}

/// <summary>
/// The subscribers of one shard, in two parts so that a look-up touches little memory: an index of
/// 8-byte entries (the key and where its entry lives; open addressing, linear probing,
/// backward-shift deletion, at most 2/3 full, grown by doubling as subscribers arrive up to the size
/// <see cref="Capacity"/> needs) and the
/// entries themselves, dense, in chunks of <see cref="ChunkSize"/> taken as subscribers arrive and
/// reused through a free list. A probe compares keys in the index without touching an entry, and
/// the entries of a few thousand subscribers sit together instead of spread over a table sized for
/// every session. An entry stays at its slot while it lives (the index moves, the entries do not).
/// Single threaded. docs/architecture.md, "Carrier-grade NAT".
/// </summary>
/// <remarks>
/// A chunk (80 KiB, below the large object heap) is allocated when the subscribers outgrow the
/// chunks so far: at most once per <see cref="ChunkSize"/> new subscribers, never per packet, and a
/// chunk once taken is kept for the table's life. The index starts at <see cref="InitialIndexSize"/>
/// entries and doubles (a rehash of the keys held, at most log2 of its final size times in the
/// table's life) when a new subscriber would fill it past 2/3: an index sized for every session up
/// front (4 MiB for 262,144 sessions) spread a few thousand subscribers over as many pages, and the
/// TLB and cache misses of that cost port-block allocation a fifth of its setup rate.
/// </remarks>
public sealed class SubscriberTable
{
    /// <summary>Entries per chunk of the dense part.</summary>
    public const int ChunkSize = 1 << ChunkShift;
    private const int ChunkShift = 10;

    /// <summary>Index entries a new table starts with.</summary>
    public const int InitialIndexSize = 1024;

    private ulong[] _index; // (key << 32) | (slot + 1); 0 = empty
    private int _mask;
    private readonly int _maxIndexSize;
    private readonly ulong _seed;
    private Subscriber[][] _chunks = [];
    private int _high;      // slots ever handed out
    private int _freeHead = -1; // a free slot, linked through Subscriber.BlockHead
    private uint _lastKey;      // the last subscriber found: a new flow asks for it two or three times (admit, port, session)
    private int _lastSlot = -1;

    /// <summary>Creates a table for up to <paramref name="capacity"/> subscribers, hashing keys with <paramref name="seed"/>.</summary>
    public SubscriberTable(int capacity, ulong seed)
    {
        Capacity = Math.Max(1, capacity);
        _maxIndexSize = (int)Math.Min(1L << 30, System.Numerics.BitOperations.RoundUpToPowerOf2((uint)(Capacity + Capacity / 2 + 1)));
        int size = Math.Min(_maxIndexSize, InitialIndexSize);
        _index = new ulong[size];
        _mask = size - 1;
        _seed = seed;
    }

    /// <summary>Subscribers it can hold.</summary>
    public int Capacity { get; }

    /// <summary>Subscribers held.</summary>
    public int Count { get; private set; }

    /// <summary>The entry at <paramref name="slot"/> (from <see cref="Find"/> or <see cref="GetOrAdd"/>; 0 to <see cref="Slots"/> - 1).</summary>
    public ref Subscriber this[int slot] => ref _chunks[slot >> ChunkShift][slot & (ChunkSize - 1)];

    /// <summary>Slots handed out so far (for listing: entries with <see cref="Subscriber.InUse"/>).</summary>
    public int Slots => _high;

    /// <summary>Bytes the table holds: the index and the chunks taken.</summary>
    public long Bytes => (long)_index.Length * sizeof(ulong) + (long)_chunks.Length * ChunkSize * Unsafe.SizeOf<Subscriber>();

    // One keyed multiply (Fibonacci hashing, the product's high half): the look-up starts every
    // new flow's port allocation, and a 32-bit key needs no more mixing than that.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private int Home(uint key) => (int)((uint)(((key ^ _seed) * 0x9E3779B97F4A7C15UL) >> 32) & (uint)_mask);

    /// <summary>
    /// Prefetches the index slot of subscriber <paramref name="key"/>, so that a new flow's look-up a
    /// little later (after the engine's own mapping look-up) finds it cached. A hint only.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public unsafe void Prefetch(uint key)
    {
        if (System.Runtime.Intrinsics.X86.Sse.IsSupported)
        {
            System.Runtime.Intrinsics.X86.Sse.Prefetch0(Unsafe.AsPointer(ref _index[Home(key)]));
        }
    }

    /// <summary>
    /// Prefetches the entry of subscriber <paramref name="key"/>, the second dependent miss of a new
    /// flow's look-up: probes the index (which an earlier <see cref="Prefetch"/> should have brought
    /// in) and hints both cache lines of the entry it names. A hint only.
    /// </summary>
    public unsafe void PrefetchEntry(uint key)
    {
        int slot = Peek(key);
        if (slot >= 0 && System.Runtime.Intrinsics.X86.Sse.IsSupported)
        {
            byte* p = (byte*)Unsafe.AsPointer(ref this[slot]);
            System.Runtime.Intrinsics.X86.Sse.Prefetch0(p);
            System.Runtime.Intrinsics.X86.Sse.Prefetch0(p + Unsafe.SizeOf<Subscriber>() - 1);
        }
    }

    /// <summary>The slot of subscriber <paramref name="key"/>, or -1, as <see cref="Find"/> answers but changing nothing (for prefetch hints).</summary>
    public int Peek(uint key)
    {
        ulong[] index = _index;
        for (int i = Home(key); ; i = (i + 1) & _mask)
        {
            ulong e = index[i];
            if (e == 0)
            {
                return -1;
            }
            if ((uint)(e >> 32) == key)
            {
                return (int)(uint)e - 1;
            }
        }
    }

    /// <summary>The slot of subscriber <paramref name="key"/>, or -1.</summary>
    public int Find(uint key)
    {
        if (key == _lastKey && _lastSlot >= 0)
        {
            return _lastSlot;
        }
        int slot = Peek(key);
        if (slot >= 0)
        {
            _lastKey = key;
            _lastSlot = slot;
        }
        return slot;
    }

    /// <summary>The slot of subscriber <paramref name="key"/>, added empty (no address, full token bucket) when new; -1 when the table is full.</summary>
    public int GetOrAdd(uint key, int tokens, long nowMs)
    {
        if (key == _lastKey && _lastSlot >= 0)
        {
            return _lastSlot;
        }
        ulong[] index = _index;
        int i = Home(key);
        for (; ; i = (i + 1) & _mask)
        {
            ulong e = index[i];
            if (e == 0)
            {
                break;
            }
            if ((uint)(e >> 32) == key)
            {
                _lastKey = key;
                return _lastSlot = (int)(uint)e - 1;
            }
        }
        if (Count >= Capacity)
        {
            return -1;
        }
        if ((Count + 1) * 3L > index.Length * 2L && index.Length < _maxIndexSize)
        {
            Grow();
            index = _index;
            for (i = Home(key); index[i] != 0; i = (i + 1) & _mask)
            {
            }
        }
        int slot = TakeSlot();
        this[slot] = new Subscriber
        {
            Key = key, PoolIndex = -1, BlockHead = -1, Tokens = tokens, RefillMs = nowMs, LimitEventMs = long.MinValue / 2, InUse = true,
        };
        index[i] = ((ulong)key << 32) | (uint)(slot + 1);
        Count++;
        _lastKey = key;
        return _lastSlot = slot;
    }

    /// <summary>Index entries now (a power of two, at most what <see cref="Capacity"/> needs).</summary>
    public int IndexSize => _index.Length;

    private void Grow()
    {
        // Rare (see the remarks): doubles the index and re-inserts every key at its new home.
        ulong[] old = _index;
        var index = new ulong[old.Length * 2];
        int mask = index.Length - 1;
        _index = index;
        _mask = mask;
        foreach (ulong e in old)
        {
            if (e != 0)
            {
                int i = Home((uint)(e >> 32));
                while (index[i] != 0)
                {
                    i = (i + 1) & mask;
                }
                index[i] = e;
            }
        }
    }

    private int TakeSlot()
    {
        if (_freeHead >= 0)
        {
            int slot = _freeHead;
            _freeHead = this[slot].BlockHead;
            return slot;
        }
        if (_high == _chunks.Length * ChunkSize)
        {
            // Rare (once per ChunkSize new subscribers): the dense part grows by a chunk.
            Subscriber[][] chunks = new Subscriber[_chunks.Length + 1][];
            Array.Copy(_chunks, chunks, _chunks.Length);
            chunks[^1] = new Subscriber[ChunkSize];
            _chunks = chunks;
        }
        return _high++;
    }

    /// <summary>Removes subscriber <paramref name="key"/>: its slot goes to the free list and later index entries of its cluster move up (backward shift).</summary>
    public void Remove(uint key)
    {
        ulong[] index = _index;
        int i = Home(key);
        for (; ; i = (i + 1) & _mask)
        {
            ulong e = index[i];
            if (e == 0)
            {
                return;
            }
            if ((uint)(e >> 32) == key)
            {
                break;
            }
        }
        int slot = (int)(uint)index[i] - 1;
        if (slot == _lastSlot)
        {
            _lastSlot = -1;
        }
        this[slot] = new Subscriber { BlockHead = _freeHead };
        _freeHead = slot;
        int j = i;
        while (true)
        {
            j = (j + 1) & _mask;
            ulong e = index[j];
            if (e == 0)
            {
                break;
            }
            int home = Home((uint)(e >> 32));
            // Move j into the hole at i unless j's home lies cyclically in (i, j].
            bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
            if (!stays)
            {
                index[i] = e;
                i = j;
            }
        }
        index[i] = 0;
        Count--;
    }
}
