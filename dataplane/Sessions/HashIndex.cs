using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Natd.Dataplane.Sessions;

/// <summary>Tells a <see cref="HashIndex{TMatcher}"/> whether the entry <c>value</c> has key <c>key</c>.</summary>
internal interface IKeyMatcher
{
    /// <summary>True when the stored item <paramref name="value"/> has <paramref name="key"/>.</summary>
    bool Matches(int value, in FlowKey key);
}

/// <summary>
/// Open-addressing hash index (linear probing from a cache line, backward-shift deletion, no
/// tombstones) from a <see cref="FlowKey"/> to an int (an index into a preallocated struct array).
/// Each slot is one 64-bit word: the key's 32-bit hash as a tag in the low half (0 meaning empty, so
/// a hash of 0 is taken as 1) and the value in the high half. Tag and value share the word, so a
/// probe costs one cache line, not one in a tag array and another in a value array (at a million
/// sessions each is a miss to memory); keys stay in the items, so a probe touches the item only when
/// the tag matches.
/// </summary>
/// <remarks>
/// <para>The slots are 64-byte aligned and a key's home is a whole cache line of 8 slots (the hash
/// scaled to the line count, multiply-shift, so the count need not be a power of two): a probe
/// compares the line's 8 tags at once and goes on to the next line only when its own is full.
/// With a home slot instead, linear probing at a load factor of 0.75 leaves 14% of the entries
/// in a line after their home slot's (the run crosses the line's end); with a home line, 6% (the
/// share a home slot leaves at a load factor of 0.5). An entry outside its home line is one
/// the prefetch pipeline cannot reach: its look-up waits on memory twice (docs/architecture.md,
/// step 4).</para>
/// <para>Capacity is fixed at construction (4/3 of the item capacity, rounded up to whole lines:
/// a load factor of at most 0.75), 8 bytes a slot, and nothing is allocated after start. The
/// matcher is a struct generic so the JIT inlines it.</para>
/// </remarks>
internal sealed class HashIndex<TMatcher> where TMatcher : struct, IKeyMatcher
{
    private const int LineBytes = 64;
    private const int LineSlots = LineBytes / sizeof(ulong);

    // Pinned (the alignment below must hold for the array's life), LineSlots longer than the slots
    // so that _base, the first 64-byte aligned element, leaves _slotCount slots after it.
    private readonly ulong[] _slots;
    private readonly int _base;
    private readonly int _slotCount;
    private readonly int _lineCount;
    private TMatcher _matcher;

    /// <summary>Creates an index for up to <paramref name="maxItems"/> entries.</summary>
    public unsafe HashIndex(int maxItems, TMatcher matcher)
    {
        long wanted = Math.Max(16, ((long)maxItems * 4 + 2) / 3 + 1);
        _lineCount = (int)((wanted + LineSlots - 1) / LineSlots);
        _slotCount = _lineCount * LineSlots;
        _slots = LargeArrays.AllocatePinned<ulong>(_slotCount + LineSlots);
        nint start = (nint)Unsafe.AsPointer(ref _slots[0]);
        _base = (int)((((start + LineBytes - 1) & ~(nint)(LineBytes - 1)) - start) / sizeof(ulong));
        _matcher = matcher;
    }

    /// <summary>Entries stored.</summary>
    public int Count { get; private set; }

    /// <summary>Slots (bytes = 8 per slot), a whole number of cache lines.</summary>
    public int Slots => _slotCount;

    /// <summary>The first slot of the home line of <paramref name="tag"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private int Home(uint tag) => (int)(((ulong)tag * (uint)_lineCount) >> 32) * LineSlots;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static uint TagOf(uint hash) => hash == 0 ? 1 : hash;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong Slot(uint tag, int value) => tag | ((ulong)(uint)value << 32);

    /// <summary>Slot 0 (of <see cref="Slots"/>), the start of a cache line.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private ref ulong First() => ref Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(_slots), _base);

    /// <summary>
    /// The slots of the line at <paramref name="line"/> whose tag is <paramref name="tag"/> and that
    /// come before its first empty slot (bit k: slot k of the line); <paramref name="empty"/>: its empty slots.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static uint MatchLine(ref ulong line, uint tag, out uint empty)
    {
        uint match;
        if (Vector256.IsHardwareAccelerated)
        {
            Vector256<ulong> a = Vector256.LoadUnsafe(ref line);
            Vector256<ulong> b = Vector256.LoadUnsafe(ref line, 4);
            Vector256<ulong> low = Vector256.Create(0xFFFF_FFFFUL);
            Vector256<ulong> t = Vector256.Create((ulong)tag);
            empty = Vector256.Equals(a, Vector256<ulong>.Zero).ExtractMostSignificantBits()
                | (Vector256.Equals(b, Vector256<ulong>.Zero).ExtractMostSignificantBits() << 4);
            match = Vector256.Equals(a & low, t).ExtractMostSignificantBits()
                | (Vector256.Equals(b & low, t).ExtractMostSignificantBits() << 4);
        }
        else
        {
            empty = 0;
            match = 0;
            for (int k = 0; k < LineSlots; k++)
            {
                ulong w = Unsafe.Add(ref line, k);
                empty |= (w == 0 ? 1u : 0u) << k;
                match |= ((uint)w == tag ? 1u : 0u) << k;
            }
        }
        // Keep the matches before the first empty slot (all of them when none is empty: 0 - 1).
        return match & ((empty & (0u - empty)) - 1);
    }

    /// <summary>The empty slots of the line at <paramref name="line"/> (bit k: slot k).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static uint EmptySlots(ref ulong line)
    {
        if (Vector256.IsHardwareAccelerated)
        {
            return Vector256.Equals(Vector256.LoadUnsafe(ref line), Vector256<ulong>.Zero).ExtractMostSignificantBits()
                | (Vector256.Equals(Vector256.LoadUnsafe(ref line, 4), Vector256<ulong>.Zero).ExtractMostSignificantBits() << 4);
        }
        uint empty = 0;
        for (int k = 0; k < LineSlots; k++)
        {
            empty |= (Unsafe.Add(ref line, k) == 0 ? 1u : 0u) << k;
        }
        return empty;
    }

    /// <summary>The value stored for <paramref name="key"/> (whose hash is <paramref name="hash"/>), or -1.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public int Find(in FlowKey key, uint hash)
    {
        uint tag = TagOf(hash);
        ref ulong first = ref First();
        int i = Home(tag);
        while (true)
        {
            ref ulong line = ref Unsafe.Add(ref first, i);
            uint match = MatchLine(ref line, tag, out uint empty);
            while (match != 0)
            {
                int v = (int)(Unsafe.Add(ref line, BitOperations.TrailingZeroCount(match)) >> 32);
                if (_matcher.Matches(v, key))
                {
                    return v;
                }
                match &= match - 1;
            }
            // Insert keeps one slot empty, so some line has one and the walk ends.
            if (empty != 0)
            {
                return -1;
            }
            i += LineSlots;
            if (i == _slotCount)
            {
                i = 0;
            }
        }
    }

    /// <summary>
    /// Prefetches the home line of <paramref name="hash"/>; with <paramref name="value"/> set, instead
    /// returns the value of the first slot of that line, before an empty one, whose tag matches (so
    /// the caller can prefetch the item), else -1. A hint only: it changes nothing and never fails.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public unsafe int Prefetch(uint hash, bool value)
    {
        uint tag = TagOf(hash);
        ref ulong line = ref Unsafe.Add(ref First(), Home(tag));
        if (!value)
        {
            if (System.Runtime.Intrinsics.X86.Sse.IsSupported)
            {
                System.Runtime.Intrinsics.X86.Sse.Prefetch0(Unsafe.AsPointer(ref line));
            }
            return -1;
        }
        // Only the home line: a read past it would miss here, in the prefetch, the stall the
        // prefetch is there to hide.
        uint match = MatchLine(ref line, tag, out _);
        return match == 0 ? -1 : (int)(Unsafe.Add(ref line, BitOperations.TrailingZeroCount(match)) >> 32);
    }

    /// <summary>Adds an entry; the caller ensured the key is absent. False when the index is full.</summary>
    public bool Insert(uint hash, int value)
    {
        if (Count >= _slotCount - 1) // keep one empty slot so Find terminates
        {
            return false;
        }
        uint tag = TagOf(hash);
        ref ulong first = ref First();
        int i = Home(tag);
        // The first empty slot from the home line on, a line at a time (a new flow inserts into
        // three indexes: a slot-by-slot walk's unpredictable exit cost new sessions 2%).
        uint empty;
        while ((empty = EmptySlots(ref Unsafe.Add(ref first, i))) == 0)
        {
            i += LineSlots;
            if (i == _slotCount)
            {
                i = 0;
            }
        }
        i += BitOperations.TrailingZeroCount(empty);
        Unsafe.Add(ref first, i) = Slot(tag, value);
        Count++;
        return true;
    }

    /// <summary>Removes the entry holding <paramref name="value"/> under <paramref name="hash"/>; false when absent.</summary>
    public bool Remove(uint hash, int value)
    {
        ulong wanted = Slot(TagOf(hash), value);
        ref ulong first = ref First();
        int i = Home((uint)wanted);
        while (true)
        {
            ulong w = Unsafe.Add(ref first, i);
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
            ulong w = Unsafe.Add(ref first, j);
            if (w == 0)
            {
                break;
            }
            int home = Home((uint)w);
            bool between = hole <= j ? (hole < home && home <= j) : (hole < home || home <= j);
            if (!between)
            {
                Unsafe.Add(ref first, hole) = w;
                hole = j;
            }
        }
        Unsafe.Add(ref first, hole) = 0;
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
