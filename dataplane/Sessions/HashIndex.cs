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
/// 32-bit tag (the key's hash with the top bit set) and the value: 8 bytes per slot, keys stay in
/// the items, so a probe touches the item only when the tag matches. Capacity is fixed at
/// construction (a power of two at least twice the item capacity), so probes stay short and
/// nothing is allocated after start. The matcher is a struct generic so the JIT inlines it.
/// </summary>
internal sealed class HashIndex<TMatcher> where TMatcher : struct, IKeyMatcher
{
    private const uint Occupied = 0x8000_0000;
    private readonly uint[] _tags;
    private readonly int[] _values;
    private readonly int _mask;
    private TMatcher _matcher;

    /// <summary>Creates an index for up to <paramref name="maxItems"/> entries.</summary>
    public HashIndex(int maxItems, TMatcher matcher)
    {
        int slots = (int)BitOperations.RoundUpToPowerOf2((uint)Math.Max(16, maxItems * 2));
        _tags = new uint[slots];
        _values = new int[slots];
        _mask = slots - 1;
        _matcher = matcher;
    }

    /// <summary>Entries stored.</summary>
    public int Count { get; private set; }

    /// <summary>Slots (bytes = 8 per slot).</summary>
    public int Slots => _mask + 1;

    /// <summary>The value stored for <paramref name="key"/>, or -1.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public int Find(in FlowKey key, uint hash)
    {
        uint tag = hash | Occupied;
        int i = (int)(hash & (uint)_mask);
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
            i = (i + 1) & _mask;
        }
    }

    /// <summary>Adds an entry; the caller ensured the key is absent. False when the index is full.</summary>
    public bool Insert(uint hash, int value)
    {
        if (Count >= _mask) // keep one empty slot so Find terminates
        {
            return false;
        }
        int i = (int)(hash & (uint)_mask);
        while (_tags[i] != 0)
        {
            i = (i + 1) & _mask;
        }
        _tags[i] = hash | Occupied;
        _values[i] = value;
        Count++;
        return true;
    }

    /// <summary>Removes the entry holding <paramref name="value"/> under <paramref name="hash"/>; false when absent.</summary>
    public bool Remove(uint hash, int value)
    {
        uint tag = hash | Occupied;
        int i = (int)(hash & (uint)_mask);
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
            i = (i + 1) & _mask;
        }
        // Backward-shift deletion: pull later entries of the probe run into the hole when their
        // home slot does not lie cyclically between the hole and their position.
        int hole = i;
        int j = i;
        while (true)
        {
            j = (j + 1) & _mask;
            uint t = _tags[j];
            if (t == 0)
            {
                break;
            }
            int home = (int)(t & (uint)_mask);
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
