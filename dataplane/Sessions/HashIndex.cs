using System.Numerics;
using System.Runtime.CompilerServices;

namespace Natd.Dataplane.Sessions;

/// <summary>Tells a <see cref="HashIndex{TMatcher}"/> whether the entry <c>value</c> has key <c>key</c>.</summary>
internal interface IKeyMatcher
{
    /// <summary>True when the stored item <paramref name="value"/> has <paramref name="key"/>.</summary>
    bool Matches(int value, in FlowKey key);
}

/// <summary>
/// Open-addressing hash index (linear probing, backward-shift deletion, no tombstones) from a
/// <see cref="FlowKey"/> to an int (an index into a preallocated struct array). Each slot holds a
/// 32-bit tag (the key's hash, 0 meaning empty, so a hash of 0 is taken as 1) and the value: 8 bytes per slot, keys stay in
/// the items, so a probe touches the item only when the tag matches. Capacity is fixed at
/// construction (4/3 of the item capacity: a load factor of at most 0.75, where linear probing
/// still averages under 2.5 probes per miss), and nothing is allocated after start. The home slot
/// is the hash scaled to the slot count (multiply-shift), so the count need not be a power of two.
/// The matcher is a struct generic so the JIT inlines it.
/// </summary>
internal sealed class HashIndex<TMatcher> where TMatcher : struct, IKeyMatcher
{
    private readonly uint[] _tags;
    private readonly int[] _values;
    private readonly int _slots;
    private TMatcher _matcher;

    /// <summary>Creates an index for up to <paramref name="maxItems"/> entries.</summary>
    public HashIndex(int maxItems, TMatcher matcher)
    {
        int slots = (int)Math.Max(16, ((long)maxItems * 4 + 2) / 3 + 1);
        _tags = new uint[slots];
        _values = new int[slots];
        _slots = slots;
        _matcher = matcher;
    }

    /// <summary>Entries stored.</summary>
    public int Count { get; private set; }

    /// <summary>Slots (bytes = 8 per slot).</summary>
    public int Slots => _slots;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private int Home(uint hash) => (int)(((ulong)hash * (uint)_slots) >> 32);

    /// <summary>The value stored for <paramref name="key"/>, or -1.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public int Find(in FlowKey key, uint hash)
    {
        uint tag = hash == 0 ? 1 : hash;
        int i = Home(tag);
        uint[] tags = _tags;
        while (true)
        {
            uint t = tags[i];
            if (t == 0)
            {
                return -1;
            }
            if (t == tag && _matcher.Matches(_values[i], key))
            {
                return _values[i];
            }
            if (++i == _slots)
            {
                i = 0;
            }
        }
    }

    /// <summary>
    /// Prefetches the home slot of <paramref name="hash"/>; with <paramref name="value"/> set, also
    /// returns the value stored there when its tag matches (so the caller can prefetch the item),
    /// else -1. A hint only: it changes nothing and never fails.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public unsafe int Prefetch(uint hash, bool value)
    {
        uint tag = hash == 0 ? 1 : hash;
        int i = Home(tag);
        if (!value)
        {
            if (System.Runtime.Intrinsics.X86.Sse.IsSupported)
            {
                System.Runtime.Intrinsics.X86.Sse.Prefetch0(Unsafe.AsPointer(ref _tags[i]));
                System.Runtime.Intrinsics.X86.Sse.Prefetch0(Unsafe.AsPointer(ref _values[i]));
            }
            return -1;
        }
        return _tags[i] == tag ? _values[i] : -1;
    }

    /// <summary>Adds an entry; the caller ensured the key is absent. False when the index is full.</summary>
    public bool Insert(uint hash, int value)
    {
        if (Count >= _slots - 1) // keep one empty slot so Find terminates
        {
            return false;
        }
        uint tag = hash == 0 ? 1 : hash;
        int i = Home(tag);
        while (_tags[i] != 0)
        {
            if (++i == _slots)
            {
                i = 0;
            }
        }
        _tags[i] = tag;
        _values[i] = value;
        Count++;
        return true;
    }

    /// <summary>Removes the entry holding <paramref name="value"/> under <paramref name="hash"/>; false when absent.</summary>
    public bool Remove(uint hash, int value)
    {
        uint tag = hash == 0 ? 1 : hash;
        int i = Home(tag);
        while (true)
        {
            uint t = _tags[i];
            if (t == 0)
            {
                return false;
            }
            if (t == tag && _values[i] == value)
            {
                break;
            }
            if (++i == _slots)
            {
                i = 0;
            }
        }
        // Backward-shift deletion: pull later entries of the probe run into the hole when their
        // home slot does not lie cyclically between the hole and their position.
        int hole = i;
        int j = i;
        while (true)
        {
            if (++j == _slots)
            {
                j = 0;
            }
            uint t = _tags[j];
            if (t == 0)
            {
                break;
            }
            int home = Home(t);
            bool between = hole <= j ? (hole < home && home <= j) : (hole < home || home <= j);
            if (!between)
            {
                _tags[hole] = t;
                _values[hole] = _values[j];
                hole = j;
            }
        }
        _tags[hole] = 0;
        Count--;
        return true;
    }

    /// <summary>Removes every entry.</summary>
    public void Clear()
    {
        Array.Clear(_tags);
        Count = 0;
    }
}
