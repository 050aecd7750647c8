namespace Natd.Dataplane.Sessions;

/// <summary>
/// A timer queue over the slots of a fixed-size table: a binary min-heap of (deadline, slot) so
/// an expiry sweep visits only what is due, never the whole table (the kernel's timer wheel and
/// VPP's per-thread timer wheels serve the same purpose). Deletion is lazy: a slot is in the heap
/// at most once, and its owner re-checks the slot when its deadline comes, pushing it back with
/// the real deadline when it was refreshed meanwhile (a packet only moves a deadline later, so
/// touching an entry costs nothing here). Preallocated: no allocation after construction. Single
/// threaded.
/// </summary>
public sealed class DeadlineQueue
{
    private readonly long[] _deadlines;
    private readonly int[] _slots;
    private readonly bool[] _queued;
    private int _count;

    /// <summary>Creates an empty queue for slots 0 to <paramref name="capacity"/> - 1.</summary>
    /// <param name="capacity">Slots of the table it serves (at least 1).</param>
    public DeadlineQueue(int capacity)
    {
        capacity = Math.Max(1, capacity);
        _deadlines = new long[capacity];
        _slots = new int[capacity];
        _queued = new bool[capacity];
    }

    /// <summary>Slots queued.</summary>
    public int Count => _count;

    /// <summary>
    /// Queues <paramref name="slot"/> for <paramref name="deadlineMs"/> unless it is queued already
    /// (a slot freed and reused keeps its earlier, never later, deadline: it is re-checked then).
    /// </summary>
    public void Ensure(int slot, long deadlineMs)
    {
        if (!_queued[slot])
        {
            Push(slot, deadlineMs);
        }
    }

    /// <summary>Queues <paramref name="slot"/>, which must not be queued (after <see cref="TryPopDue"/> returned it).</summary>
    public void Push(int slot, long deadlineMs)
    {
        _queued[slot] = true;
        int i = _count++;
        while (i > 0)
        {
            int parent = (i - 1) >> 1;
            if (_deadlines[parent] <= deadlineMs)
            {
                break;
            }
            _deadlines[i] = _deadlines[parent];
            _slots[i] = _slots[parent];
            i = parent;
        }
        _deadlines[i] = deadlineMs;
        _slots[i] = slot;
    }

    /// <summary>Takes the slot with the earliest deadline when that deadline is at or before <paramref name="nowMs"/>.</summary>
    /// <returns>False when nothing is due (the queue is untouched).</returns>
    public bool TryPopDue(long nowMs, out int slot)
    {
        if (_count == 0 || _deadlines[0] > nowMs)
        {
            slot = -1;
            return false;
        }
        slot = _slots[0];
        _queued[slot] = false;
        int n = --_count;
        if (n > 0)
        {
            long d = _deadlines[n];
            int s = _slots[n];
            int i = 0;
            while (true)
            {
                int child = 2 * i + 1;
                if (child >= n)
                {
                    break;
                }
                if (child + 1 < n && _deadlines[child + 1] < _deadlines[child])
                {
                    child++;
                }
                if (d <= _deadlines[child])
                {
                    break;
                }
                _deadlines[i] = _deadlines[child];
                _slots[i] = _slots[child];
                i = child;
            }
            _deadlines[i] = d;
            _slots[i] = s;
        }
        return true;
    }

    /// <summary>Empties the queue.</summary>
    public void Clear()
    {
        for (int i = 0; i < _count; i++)
        {
            _queued[_slots[i]] = false;
        }
        _count = 0;
    }
}
