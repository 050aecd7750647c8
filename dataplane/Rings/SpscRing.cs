using System.Numerics;
using System.Runtime.InteropServices;

namespace Natd.Dataplane.Rings;

/// <summary>
/// A bounded lock-free single-producer single-consumer ring of structs (the shape of VPP's handoff
/// queue and of DPDK's rte_ring in SP/SC mode). The producer never blocks: <see cref="TryEnqueue"/>
/// returns false when full and the caller counts the loss. Head and tail sit on separate cache
/// lines so producer and consumer do not share one.
/// </summary>
/// <typeparam name="T">An unmanaged item type, copied in and out.</typeparam>
public sealed class SpscRing<T> where T : unmanaged
{
    private readonly T[] _items;
    private readonly int _mask;
    private RingIndices _idx;

    /// <summary>Creates a ring holding up to <paramref name="capacity"/> items (rounded up to a power of two).</summary>
    /// <exception cref="ArgumentOutOfRangeException">capacity below 2 or above 2^24.</exception>
    public SpscRing(int capacity)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 2);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(capacity, 1 << 24);
        int size = (int)BitOperations.RoundUpToPowerOf2((uint)capacity);
        _items = new T[size];
        _mask = size - 1;
    }

    /// <summary>Slots in the ring.</summary>
    public int Capacity => _items.Length;

    /// <summary>Items waiting (a snapshot; exact only on the consumer or producer thread).</summary>
    public int Count => (int)(Volatile.Read(ref _idx.Tail) - Volatile.Read(ref _idx.Head));

    /// <summary>Producer side: adds an item; false when full (nothing written).</summary>
    public bool TryEnqueue(in T item)
    {
        long tail = _idx.Tail;
        if (tail - Volatile.Read(ref _idx.Head) >= _items.Length)
        {
            return false;
        }
        _items[(int)(tail & _mask)] = item;
        Volatile.Write(ref _idx.Tail, tail + 1); // publish after the item is written
        return true;
    }

    /// <summary>Consumer side: takes the oldest item; false when empty.</summary>
    public bool TryDequeue(out T item)
    {
        long head = _idx.Head;
        if (head == Volatile.Read(ref _idx.Tail))
        {
            item = default;
            return false;
        }
        item = _items[(int)(head & _mask)];
        Volatile.Write(ref _idx.Head, head + 1); // release the slot after the item is read
        return true;
    }
}

/// <summary>Head and tail of a ring, each on its own cache line (outside the generic type: explicit layout cannot be generic).</summary>
[StructLayout(LayoutKind.Explicit, Size = 192)]
internal struct RingIndices
{
    /// <summary>Next slot to read, written by the consumer.</summary>
    [FieldOffset(64)] public long Head;

    /// <summary>Next slot to write, written by the producer.</summary>
    [FieldOffset(128)] public long Tail;
}
