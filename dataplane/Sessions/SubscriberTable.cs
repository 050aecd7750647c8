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
    /// <summary>First block of its list (<see cref="PortBlocks.NextOf"/>), -1 for none.</summary>
    public int BlockHead;
    /// <summary>New-session tokens left in the current second.</summary>
    public int Tokens;
    /// <summary>When the token bucket was last refilled (engine ms).</summary>
    public long RefillMs;
    /// <summary>When the last limit event was emitted (engine ms).</summary>
    public long LimitEventMs;
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
/// The subscribers of one shard: a fixed-capacity open-addressing table (linear probing,
/// backward-shift deletion, at most 2/3 full) keyed by the subscriber's address, preallocated at
/// construction: no allocation per packet. Deletion moves entries, so callers keep keys, not
/// slots, across calls that may remove one. Single threaded.
/// </summary>
public sealed class SubscriberTable
{
    private readonly Subscriber[] _slots;
    private readonly int _mask;
    private readonly ulong _seed;

    /// <summary>Creates a table for up to <paramref name="capacity"/> subscribers, hashing keys with <paramref name="seed"/>.</summary>
    public SubscriberTable(int capacity, ulong seed)
    {
        Capacity = Math.Max(1, capacity);
        int size = (int)Math.Min(1L << 30, System.Numerics.BitOperations.RoundUpToPowerOf2((uint)(Capacity + Capacity / 2 + 1)));
        _slots = new Subscriber[size];
        _mask = size - 1;
        _seed = seed;
    }

    /// <summary>Subscribers it can hold.</summary>
    public int Capacity { get; }

    /// <summary>Subscribers held.</summary>
    public int Count { get; private set; }

    /// <summary>The entry at <paramref name="slot"/> (from <see cref="Find"/> or <see cref="GetOrAdd"/>).</summary>
    public ref Subscriber this[int slot] => ref _slots[slot];

    /// <summary>Slots of the table (for listing: entries with <see cref="Subscriber.InUse"/>).</summary>
    public int Slots => _slots.Length;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private int Home(uint key) => (int)(new FlowKey(key, 0, 0, 0, 0).Hash(_seed) & (uint)_mask);

    /// <summary>The slot of subscriber <paramref name="key"/>, or -1.</summary>
    public int Find(uint key)
    {
        for (int i = Home(key); ; i = (i + 1) & _mask)
        {
            ref Subscriber s = ref _slots[i];
            if (!s.InUse)
            {
                return -1;
            }
            if (s.Key == key)
            {
                return i;
            }
        }
    }

    /// <summary>The slot of subscriber <paramref name="key"/>, added empty (no address, full token bucket) when new; -1 when the table is full.</summary>
    public int GetOrAdd(uint key, int tokens, long nowMs)
    {
        int i = Home(key);
        for (; ; i = (i + 1) & _mask)
        {
            ref Subscriber s = ref _slots[i];
            if (!s.InUse)
            {
                break;
            }
            if (s.Key == key)
            {
                return i;
            }
        }
        if (Count >= Capacity)
        {
            return -1;
        }
        _slots[i] = new Subscriber
        {
            Key = key, PoolIndex = -1, BlockHead = -1, Tokens = tokens, RefillMs = nowMs, LimitEventMs = long.MinValue / 2, InUse = true,
        };
        Count++;
        return i;
    }

    /// <summary>Removes subscriber <paramref name="key"/> (backward shift: later entries of its cluster move up).</summary>
    public void Remove(uint key)
    {
        int i = Find(key);
        if (i < 0)
        {
            return;
        }
        int j = i;
        while (true)
        {
            j = (j + 1) & _mask;
            if (!_slots[j].InUse)
            {
                break;
            }
            int home = Home(_slots[j].Key);
            // Move j into the hole at i unless j's home lies cyclically in (i, j].
            bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
            if (!stays)
            {
                _slots[i] = _slots[j];
                i = j;
            }
        }
        _slots[i] = default;
        Count--;
    }
}
