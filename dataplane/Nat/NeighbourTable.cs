using System.Runtime.CompilerServices;
using Natd.Dataplane.Packets;

namespace Natd.Dataplane.Nat;

/// <summary>
/// A fixed-capacity table of IPv4 neighbours of one side (address network order to MAC, with the
/// times the kernel's ARP keeps: confirmed, used, probed). Preallocated: lookups, insertions and
/// removals never allocate. Entries sit on a list in the order they were last touched (oldest
/// first), so a sweep finds what expired by looking at the head only, and a full table evicts the
/// head. Single writer (the engine's thread).
/// </summary>
internal sealed class NeighbourTable
{
    /// <summary>One neighbour. Times are the engine's milliseconds.</summary>
    public struct Entry
    {
        /// <summary>Address, network order.</summary>
        public uint Address;
        /// <summary>Link-layer address (unused in a table of pending resolutions).</summary>
        public MacAddress Mac;
        /// <summary>Last confirmation (ARP or, in replay, traffic from the neighbour); pending: first request.</summary>
        public long ConfirmedMs;
        /// <summary>Last frame sent through the entry; pending: last frame held for it.</summary>
        public long UsedMs;
        /// <summary>Last ARP request sent for it (a re-confirmation probe, or a pending resolution's request).</summary>
        public long ProbedMs;
        /// <summary>When it was last moved to the young end of the list (the list's order).</summary>
        public long TouchedMs;
        internal int NextInBucket;
        internal int Older;
        internal int Newer;
        internal bool InUse;
    }

    private readonly Entry[] _entries;
    private readonly int[] _buckets;
    private readonly int _shift;
    private int _free;
    private int _oldest = -1, _newest = -1;

    /// <summary>Creates an empty table of <paramref name="capacity"/> entries (at least 1).</summary>
    public NeighbourTable(int capacity)
    {
        capacity = Math.Max(1, capacity);
        _entries = new Entry[capacity];
        int bits = Math.Max(4, 32 - System.Numerics.BitOperations.LeadingZeroCount((uint)capacity - 1));
        _buckets = new int[1 << bits];
        _shift = 32 - bits;
        Array.Fill(_buckets, -1);
        for (int i = 0; i < capacity; i++)
        {
            _entries[i].NextInBucket = i + 1 < capacity ? i + 1 : -1;
        }
        _free = 0;
    }

    /// <summary>Entries the table can hold.</summary>
    public int Capacity => _entries.Length;

    /// <summary>Entries in use.</summary>
    public int Count { get; private set; }

    /// <summary>The least recently touched entry, or -1 when empty.</summary>
    public int Oldest => _oldest;

    /// <summary>The entry at <paramref name="index"/> (from <see cref="Find"/>, <see cref="Add"/> or <see cref="Oldest"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ref Entry At(int index) => ref _entries[index];

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private int Bucket(uint address) => (int)((address * 0x9E37_79B1u) >> _shift);

    /// <summary>The index of <paramref name="address"/>'s entry, or -1.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public int Find(uint address)
    {
        Entry[] entries = _entries;
        int i = _buckets[Bucket(address)];
        while (i >= 0)
        {
            ref Entry e = ref entries[i];
            if (e.Address == address)
            {
                return i;
            }
            i = e.NextInBucket;
        }
        return -1;
    }

    /// <summary>
    /// Adds <paramref name="address"/> (not present) as the youngest entry, all times <paramref name="nowMs"/>.
    /// When full, the oldest entry is removed first and its address returned in <paramref name="evicted"/>.
    /// </summary>
    /// <returns>The new entry's index.</returns>
    public int Add(uint address, long nowMs, out uint? evicted)
    {
        evicted = null;
        if (_free < 0)
        {
            int victim = _oldest;
            evicted = _entries[victim].Address;
            Remove(victim);
        }
        int i = _free;
        ref Entry e = ref _entries[i];
        _free = e.NextInBucket;
        int b = Bucket(address);
        e = new Entry
        {
            Address = address, ConfirmedMs = nowMs, UsedMs = nowMs, ProbedMs = long.MinValue / 4, TouchedMs = nowMs,
            NextInBucket = _buckets[b], Older = _newest, Newer = -1, InUse = true,
        };
        _buckets[b] = i;
        if (_newest >= 0)
        {
            _entries[_newest].Newer = i;
        }
        else
        {
            _oldest = i;
        }
        _newest = i;
        Count++;
        return i;
    }

    /// <summary>Removes the entry at <paramref name="index"/>.</summary>
    public void Remove(int index)
    {
        ref Entry e = ref _entries[index];
        if (!e.InUse)
        {
            return;
        }
        int b = Bucket(e.Address);
        if (_buckets[b] == index)
        {
            _buckets[b] = e.NextInBucket;
        }
        else
        {
            int p = _buckets[b];
            while (_entries[p].NextInBucket != index)
            {
                p = _entries[p].NextInBucket;
            }
            _entries[p].NextInBucket = e.NextInBucket;
        }
        Unlink(index);
        e.InUse = false;
        e.NextInBucket = _free;
        _free = index;
        Count--;
    }

    /// <summary>Moves the entry to the young end of the list, stamped <paramref name="nowMs"/>.</summary>
    public void Touch(int index, long nowMs)
    {
        _entries[index].TouchedMs = nowMs;
        if (_newest == index)
        {
            return;
        }
        Unlink(index);
        ref Entry e = ref _entries[index];
        e.Older = _newest;
        e.Newer = -1;
        if (_newest >= 0)
        {
            _entries[_newest].Newer = index;
        }
        else
        {
            _oldest = index;
        }
        _newest = index;
    }

    /// <summary>Sets every entry's times to <paramref name="nowMs"/> (entries made before the engine's clock started).</summary>
    public void Restamp(long nowMs)
    {
        for (int i = _oldest; i >= 0; i = _entries[i].Newer)
        {
            ref Entry e = ref _entries[i];
            e.ConfirmedMs = e.UsedMs = e.TouchedMs = nowMs;
        }
    }

    /// <summary>Removes every entry.</summary>
    public void Clear()
    {
        while (_oldest >= 0)
        {
            Remove(_oldest);
        }
    }

    /// <summary>Appends every entry (address, MAC), oldest first. Allocates: control path only.</summary>
    public void CopyTo(List<KeyValuePair<uint, MacAddress>> list)
    {
        for (int i = _oldest; i >= 0; i = _entries[i].Newer)
        {
            list.Add(new(_entries[i].Address, _entries[i].Mac));
        }
    }

    private void Unlink(int index)
    {
        ref Entry e = ref _entries[index];
        if (e.Older >= 0)
        {
            _entries[e.Older].Newer = e.Newer;
        }
        else
        {
            _oldest = e.Newer;
        }
        if (e.Newer >= 0)
        {
            _entries[e.Newer].Older = e.Older;
        }
        else
        {
            _newest = e.Older;
        }
    }
}
