using System.Runtime.CompilerServices;

namespace Natd.Dataplane.Alg.Pptp;

/// <summary>
/// The PPTP calls whose GRE version 1 traffic (RFC 2637 section 4.1) shard 0 translates by Call ID.
/// An in2out packet is found by (inside host, server, the server's Call ID it carries), an out2in
/// packet by (server, external address, the external Call ID natd gave the server). Entries live
/// in a preallocated struct array; the two indices are dictionaries with struct keys, so a lookup
/// allocates nothing. Single threaded (shard 0's poller).
/// </summary>
public sealed class GreCallTable
{
    /// <summary>One translated call.</summary>
    public struct Entry
    {
        /// <summary>The PPTP client, network order.</summary>
        public uint InsideAddress;
        /// <summary>The server, network order.</summary>
        public uint RemoteAddress;
        /// <summary>The external address the client appears as, network order.</summary>
        public uint ExternalAddress;
        /// <summary>The client's Call ID, host order.</summary>
        public ushort InsideCallId;
        /// <summary>The server's Call ID, host order.</summary>
        public ushort RemoteCallId;
        /// <summary>The Call ID the server knows the client by, host order.</summary>
        public ushort ExternalCallId;
        /// <summary>Whether the slot holds a call.</summary>
        public bool InUse;
        /// <summary>Last packet (or registration) time, monotonic milliseconds.</summary>
        public long LastSeenMs;
        /// <summary>Next free slot while unused.</summary>
        internal int NextFree;
    }

    /// <summary>Key of a GRE packet: (source, destination, Call ID in its key field); addresses network order, Call ID host order.</summary>
    private readonly record struct Key(uint Source, uint Destination, ushort CallId);

    private readonly Entry[] _entries;
    private readonly Dictionary<Key, int> _in2Out;
    private readonly Dictionary<Key, int> _out2In;
    private int _freeHead;

    // Calls by last-seen time, so a sweep visits what idled out, not the table (every live call is
    // queued at a time no later than its last packet's).
    private readonly Sessions.DeadlineQueue _idle;

    /// <summary>Creates a table for at most <paramref name="capacity"/> calls.</summary>
    /// <param name="capacity">Maximum live calls (at least 1).</param>
    public GreCallTable(int capacity = 4096)
    {
        capacity = Math.Max(1, capacity);
        _entries = new Entry[capacity];
        for (int i = 0; i < capacity; i++)
        {
            _entries[i].NextFree = i + 1 < capacity ? i + 1 : -1;
        }
        _in2Out = new Dictionary<Key, int>(capacity);
        _out2In = new Dictionary<Key, int>(capacity);
        _idle = new Sessions.DeadlineQueue(capacity);
    }

    /// <summary>Live calls.</summary>
    public int Count => _out2In.Count;

    /// <summary>Calls the sweep (<see cref="Expire"/>) examined so far: what it costs, which depends on what idled out, not on the table size.</summary>
    public long SweepVisits { get; private set; }

    /// <summary>Maximum live calls.</summary>
    public int Capacity => _entries.Length;

    /// <summary>The entries (index from <see cref="FindIn2Out"/> / <see cref="FindOut2In"/>).</summary>
    public Entry[] Entries => _entries;

    /// <summary>
    /// Adds a call, or refreshes it when the same call is registered again. A call that reuses the
    /// external Call ID (or the inside host's server Call ID) of an older one replaces it.
    /// </summary>
    /// <returns>False when the table is full or the call is incomplete (a zero address).</returns>
    public bool Add(in GreCall call, long nowMs)
    {
        if (call.InsideAddress == 0 || call.RemoteAddress == 0 || call.ExternalAddress == 0)
        {
            return false;
        }
        var outKey = new Key(call.RemoteAddress, call.ExternalAddress, call.ExternalCallId);
        var inKey = new Key(call.InsideAddress, call.RemoteAddress, call.RemoteCallId);
        if (_out2In.TryGetValue(outKey, out int old))
        {
            RemoveAt(old);
        }
        if (_in2Out.TryGetValue(inKey, out old))
        {
            RemoveAt(old);
        }
        int i = _freeHead;
        if (i < 0)
        {
            return false;
        }
        ref Entry e = ref _entries[i];
        _freeHead = e.NextFree;
        e = new Entry
        {
            InsideAddress = call.InsideAddress,
            RemoteAddress = call.RemoteAddress,
            ExternalAddress = call.ExternalAddress,
            InsideCallId = call.InsideCallId,
            RemoteCallId = call.RemoteCallId,
            ExternalCallId = call.ExternalCallId,
            InUse = true,
            LastSeenMs = nowMs,
            NextFree = -1,
        };
        _out2In[outKey] = i;
        _in2Out[inKey] = i;
        _idle.Ensure(i, nowMs); // a reused slot may still be queued at an older time: checked then
        return true;
    }

    /// <summary>Removes the call <paramref name="call"/> names, if it is still the one registered under its external Call ID.</summary>
    /// <returns>True when removed.</returns>
    public bool Remove(in GreCall call)
    {
        if (!_out2In.TryGetValue(new Key(call.RemoteAddress, call.ExternalAddress, call.ExternalCallId), out int i))
        {
            return false;
        }
        ref Entry e = ref _entries[i];
        // A newer call may have taken the external Call ID since: only the same call goes.
        if (e.InsideAddress != call.InsideAddress || e.InsideCallId != call.InsideCallId || e.RemoteCallId != call.RemoteCallId)
        {
            return false;
        }
        RemoveAt(i);
        return true;
    }

    /// <summary>The entry for an inside packet (client to server carrying the server's Call ID), or -1.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public int FindIn2Out(uint insideAddress, uint remoteAddress, ushort remoteCallId)
        => _in2Out.TryGetValue(new Key(insideAddress, remoteAddress, remoteCallId), out int i) ? i : -1;

    /// <summary>The entry for an outside packet (server to the external address carrying the external Call ID), or -1.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public int FindOut2In(uint remoteAddress, uint externalAddress, ushort externalCallId)
        => _out2In.TryGetValue(new Key(remoteAddress, externalAddress, externalCallId), out int i) ? i : -1;

    /// <summary>Removes the entry at <paramref name="index"/> (from a Find).</summary>
    public void RemoveAt(int index)
    {
        ref Entry e = ref _entries[index];
        if (!e.InUse)
        {
            return;
        }
        _out2In.Remove(new Key(e.RemoteAddress, e.ExternalAddress, e.ExternalCallId));
        _in2Out.Remove(new Key(e.InsideAddress, e.RemoteAddress, e.RemoteCallId));
        e.InUse = false;
        e.NextFree = _freeHead;
        _freeHead = index;
    }

    /// <summary>
    /// Removes up to <paramref name="budget"/> calls idle for <paramref name="idleMs"/> or longer (a
    /// bounded slice), visiting only calls queued that long ago: those it removes, and those seen
    /// since, which go back at their last packet's time (at most <paramref name="budget"/> per call).
    /// </summary>
    /// <returns>Calls removed.</returns>
    public int Expire(long nowMs, long idleMs, int budget)
    {
        int removed = 0, requeued = 0;
        while (removed < budget && requeued < budget && _idle.TryPopDue(nowMs - idleMs, out int i))
        {
            SweepVisits++;
            ref Entry e = ref _entries[i];
            if (!e.InUse)
            {
                continue; // removed since (a call cleared, replaced, or idled out on lookup)
            }
            if (nowMs - e.LastSeenMs >= idleMs)
            {
                RemoveAt(i);
                removed++;
            }
            else
            {
                _idle.Push(i, e.LastSeenMs);
                requeued++;
            }
        }
        return removed;
    }

    /// <summary>Removes every call.</summary>
    public void Clear()
    {
        for (int i = 0; i < _entries.Length; i++)
        {
            RemoveAt(i);
        }
        _idle.Clear();
    }
}
