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
/// <see cref="FlowKey"/> to an int (an index into a preallocated struct array). Each slot is one
/// 64-bit word: the key's 32-bit hash as a tag in the low half (0 meaning empty, so a hash of 0 is
/// taken as 1) and the value in the high half. Tag and value share the word, so a probe costs one
/// cache line, not one in a tag array and another in a value array (at a million sessions each is a
/// miss to memory); keys stay in the items, so a probe touches the item only when the tag matches.
/// Capacity is fixed at construction (4/3 of the item capacity: a load factor of at most 0.75, where
/// linear probing still averages under 2.5 probes per miss), 8 bytes a slot, and nothing is
/// allocated after start. The home slot is the hash scaled to the slot count (multiply-shift), so
/// the count need not be a power of two. The matcher is a struct generic so the JIT inlines it.
/// </summary>
internal sealed class HashIndex<TMatcher> where TMatcher : struct, IKeyMatcher
{
    private readonly ulong[] _slots;
    private readonly int _slotCount;
    private TMatcher _matcher;

    /// <summary>Creates an index for up to <paramref name="maxItems"/> entries.</summary>
    public HashIndex(int maxItems, TMatcher matcher)
    {
        int slots = (int)Math.Max(16, ((long)maxItems * 4 + 2) / 3 + 1);
        _slots = LargeArrays.Allocate<ulong>(slots);
        _slotCount = slots;
        _matcher = matcher;
    }

    /// <summary>Entries stored.</summary>
    public int Count { get; private set; }

    /// <summary>Slots (bytes = 8 per slot).</summary>
    public int Slots => _slotCount;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private int Home(uint tag) => (int)(((ulong)tag * (uint)_slotCount) >> 32);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static uint TagOf(uint hash) => hash == 0 ? 1 : hash;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong Slot(uint tag, int value) => tag | ((ulong)(uint)value << 32);

    /// <summary>The value stored for <paramref name="key"/> (whose hash is <paramref name="hash"/>), or -1.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public int Find(in FlowKey key, uint hash)
    {
        uint tag = TagOf(hash);
        ulong[] slots = _slots;
        int i = Home(tag);
        while (true)
        {
            ulong w = slots[i];
            if (w == 0)
            {
                return -1;
            }
            if ((uint)w == tag && _matcher.Matches((int)(w >> 32), key))
            {
                return (int)(w >> 32);
            }
            if (++i == slots.Length)
            {
                i = 0;
            }
        }
    }

    /// <summary>
    /// Prefetches the home slot of <paramref name="hash"/>; with <paramref name="value"/> set, instead
    /// returns the value of the first slot of the probe run, within the home slot's cache line,
    /// whose tag matches (so the caller can prefetch the item), else -1. A hint only: it changes
    /// nothing and never fails.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public unsafe int Prefetch(uint hash, bool value)
    {
        uint tag = TagOf(hash);
        int i = Home(tag);
        if (!value)
        {
            if (System.Runtime.Intrinsics.X86.Sse.IsSupported)
            {
                System.Runtime.Intrinsics.X86.Sse.Prefetch0(Unsafe.AsPointer(ref _slots[i]));
            }
            return -1;
        }
        // The entry sits at its home slot or, displaced by linear probing, a few slots later (at a
        // load factor of 0.75 about half the entries are displaced): follow the run, but only to
        // the end of the cache line stage one fetched. A read past it would miss here, in the
        // prefetch, the stall the prefetch is there to hide (a new flow's run is the longest).
        ref ulong slot = ref _slots[i];
        int rest = Math.Min(_slotCount - i, LineSlots - (int)(((nint)Unsafe.AsPointer(ref slot) & (LineBytes - 1)) >> 3));
        for (int k = 0; k < rest; k++)
        {
            ulong w = Unsafe.Add(ref slot, k);
            if (w == 0)
            {
                return -1;
            }
            if ((uint)w == tag)
            {
                return (int)(w >> 32);
            }
        }
        return -1;
    }

    private const int LineBytes = 64;
    private const int LineSlots = LineBytes / sizeof(ulong);

    /// <summary>Adds an entry; the caller ensured the key is absent. False when the index is full.</summary>
    public bool Insert(uint hash, int value)
    {
        if (Count >= _slotCount - 1) // keep one empty slot so Find terminates
        {
            return false;
        }
        uint tag = TagOf(hash);
        int i = Home(tag);
        while (_slots[i] != 0)
        {
            if (++i == _slotCount)
            {
                i = 0;
            }
        }
        _slots[i] = Slot(tag, value);
        Count++;
        return true;
    }

    /// <summary>Removes the entry holding <paramref name="value"/> under <paramref name="hash"/>; false when absent.</summary>
    public bool Remove(uint hash, int value)
    {
        ulong wanted = Slot(TagOf(hash), value);
        int i = Home((uint)wanted);
        while (true)
        {
            ulong w = _slots[i];
            if (w == 0)
            {
                return false;
            }
            if (w == wanted)
            {
                break;
            }
            if (++i == _slotCount)
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
            if (++j == _slotCount)
            {
                j = 0;
            }
            ulong w = _slots[j];
            if (w == 0)
            {
                break;
            }
            int home = Home((uint)w);
            bool between = hole <= j ? (hole < home && home <= j) : (hole < home || home <= j);
            if (!between)
            {
                _slots[hole] = w;
                hole = j;
            }
        }
        _slots[hole] = 0;
        Count--;
        return true;
    }

    /// <summary>Removes every entry.</summary>
    public void Clear()
    {
        Array.Clear(_slots);
        Count = 0;
    }
}
