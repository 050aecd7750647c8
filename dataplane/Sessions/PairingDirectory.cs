namespace Natd.Dataplane.Sessions;

/// <summary>
/// One shard's published pairings (RFC 4787 REQ-2, paired pooling): subscriber (network order) to
/// the external address (network order) this shard pairs it with. Written only by that shard, on
/// its own thread; read by any other without a lock. Shard 0, where port-less flows, ISAKMP and
/// triggers live, reads it so that a subscriber of another shard gets the address its TCP and UDP
/// leave from; a shard pairing a subscriber reads it so that both pair it alike.
/// docs/architecture.md, "Subscribers, port blocks and limits".
/// </summary>
/// <remarks>
/// Open addressing with linear probing over 8-byte slots, <c>(subscriber &lt;&lt; 32) | external</c>,
/// each written and read whole (an aligned 64-bit store is atomic), so a reader sees a slot before
/// or after a write, never half of it. A reader stops only at an empty slot, and a slot never
/// becomes empty again in a published array: an unpaired subscriber keeps its key with address 0
/// (a tombstone), which a later new key may take over. So a key present when a read starts is
/// found, and a pairing being written concurrently is seen either old or new, both of which were
/// true a moment ago. When more than two thirds of the slots are taken (live or tombstone), the
/// writer builds a new array with the live pairings only (at most a quarter full) and publishes it
/// with one reference store; a reader still in the old array finishes there. That rebuild allocates,
/// on the slow path only (a subscriber's first port), and at most once per new keys numbering a
/// third of the table's size.
/// </remarks>
public sealed class PairingTable
{
    /// <summary>Slots a table starts with.</summary>
    public const int InitialSize = 256;

    private ulong[] _slots = new ulong[InitialSize];
    private int _filled; // slots not empty (live or tombstone)

    /// <summary>Subscribers published with an address.</summary>
    public int Count { get; private set; }

    /// <summary>Slots now (a power of two).</summary>
    public int Size => Volatile.Read(ref _slots).Length;

    /// <summary>
    /// The external address <paramref name="subscriber"/> is paired with, or 0 when it is not
    /// published. Any thread; no lock, no allocation.
    /// </summary>
    public uint Find(uint subscriber)
    {
        ulong[] slots = Volatile.Read(ref _slots);
        int mask = slots.Length - 1;
        int i = Home(subscriber, mask);
        for (int n = 0; n <= mask; n++, i = (i + 1) & mask)
        {
            ulong e = Volatile.Read(ref slots[i]);
            if (e == 0)
            {
                return 0;
            }
            if ((uint)(e >> 32) == subscriber)
            {
                return (uint)e;
            }
        }
        return 0;
    }

    /// <summary>
    /// Publishes <paramref name="subscriber"/>'s pairing with <paramref name="external"/> (0: it is
    /// paired no more). The owning shard's thread only. Subscriber 0 is never published (0.0.0.0/8 is
    /// a martian source, and 0 marks an empty slot).
    /// </summary>
    public void Set(uint subscriber, uint external)
    {
        if (subscriber == 0)
        {
            return;
        }
        ulong[] slots = _slots;
        int mask = slots.Length - 1;
        int reuse = -1;
        int i = Home(subscriber, mask);
        for (int n = 0; n <= mask; n++, i = (i + 1) & mask)
        {
            ulong e = slots[i];
            if (e == 0)
            {
                break;
            }
            if ((uint)(e >> 32) == subscriber)
            {
                uint was = (uint)e;
                if (was != external)
                {
                    Count += (external != 0 ? 1 : 0) - (was != 0 ? 1 : 0);
                    Volatile.Write(ref slots[i], Pack(subscriber, external));
                }
                return;
            }
            if ((uint)e == 0 && reuse < 0)
            {
                reuse = i; // a tombstone on the key's probe path: taken only once the key is known to be absent
            }
        }
        if (external == 0)
        {
            return; // not published: nothing to withdraw
        }
        Count++;
        if (reuse >= 0)
        {
            Volatile.Write(ref slots[reuse], Pack(subscriber, external));
            return;
        }
        Volatile.Write(ref slots[i], Pack(subscriber, external)); // an empty slot: the table is never full (see Rebuild)
        if (++_filled * 3 > slots.Length * 2)
        {
            Rebuild();
        }
    }

    /// <summary>
    /// Brings every published pairing in line with <paramref name="current"/> (the owning shard's
    /// state after a reload or a restore rebuilt it): a subscriber whose address changed or that
    /// holds none any more is republished. The owning shard's thread; control path (walks the table).
    /// </summary>
    public void Reconcile(Func<uint, uint> current)
    {
        ArgumentNullException.ThrowIfNull(current);
        ulong[] slots = _slots;
        for (int i = 0; i < slots.Length; i++)
        {
            ulong e = slots[i];
            if ((uint)e == 0)
            {
                continue;
            }
            uint key = (uint)(e >> 32);
            uint now = current(key);
            if (now != (uint)e)
            {
                Set(key, now); // the key is there: an update in place, never a rebuild
            }
        }
    }

    private void Rebuild()
    {
        int size = InitialSize;
        while (size < Count * 4)
        {
            size *= 2;
        }
        var fresh = new ulong[size];
        int mask = size - 1;
        foreach (ulong e in _slots)
        {
            if ((uint)e == 0)
            {
                continue; // empty or a tombstone
            }
            int i = Home((uint)(e >> 32), mask);
            while (fresh[i] != 0)
            {
                i = (i + 1) & mask;
            }
            fresh[i] = e;
        }
        _filled = Count;
        Volatile.Write(ref _slots, fresh);
    }

    /// <summary>The slots as published now (a reader's walk: live entries have a nonzero address). Any thread.</summary>
    internal ulong[] Snapshot => Volatile.Read(ref _slots);

    private static ulong Pack(uint subscriber, uint external) => ((ulong)subscriber << 32) | external;

    // Fibonacci hashing: the product's high bits, enough for 32-bit keys.
    internal static int Home(uint key, int mask) => (int)((uint)((key * 0x9E3779B97F4A7C15UL) >> 32) & (uint)mask);
}

/// <summary>
/// The pairings every shard of one natd publishes (<see cref="PairingTable"/>, one per shard): shared
/// by all engines, each writing its own table and reading the others'. Null in an engine with one
/// shard, which knows every pairing itself.
/// </summary>
/// <remarks>
/// A shard that finds no published pairing for a subscriber chooses one itself, and two shards doing
/// so at once (a brand-new subscriber's first UDP in its own shard and its first ESP in shard 0)
/// would each choose their own least-loaded address. So a shard about to choose first claims the
/// subscriber (<see cref="Claim"/>): one 8-byte word per slot, <c>(subscriber &lt;&lt; 32) | external</c>,
/// taken with a compare-and-swap, so one shard wins and any other takes the winner's address. The
/// winner looks at the published pairings once more after its claim (one published after it first
/// looked and released before it claimed is seen then), publishes, and only then releases the claim
/// (<see cref="Release"/>); a shard that takes another's claimed address looks at the published
/// pairings first too. A claim lives for one pairing's few hundred nanoseconds, so the slots are
/// direct-mapped and few: a slot held by another subscriber's claim at that moment leaves the
/// pairing unclaimed (<see cref="ClaimsMissed"/>), as every pairing was before claims.
/// </remarks>
public sealed class PairingDirectory
{
    /// <summary>Claim slots (a power of two).</summary>
    public const int ClaimSlots = 4096;

    private readonly PairingTable[] _tables;
    private readonly ulong[] _claims = new ulong[ClaimSlots];
    private long _claimsMissed;

    /// <summary>Creates the directory of <paramref name="shards"/> shards (at least 1).</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="shards"/> is below 1.</exception>
    public PairingDirectory(int shards)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(shards, 1);
        _tables = new PairingTable[shards];
        for (int k = 0; k < shards; k++)
        {
            _tables[k] = new PairingTable();
        }
    }

    /// <summary>Shards.</summary>
    public int Shards => _tables.Length;

    /// <summary>Shard <paramref name="shard"/>'s table (written by that shard only).</summary>
    public PairingTable Of(int shard) => _tables[shard];

    /// <summary>
    /// The address a shard other than <paramref name="except"/> publishes for
    /// <paramref name="subscriber"/>, or 0. Usually one table names it (its own shard's); when two do
    /// (shard 0 pairs another shard's subscriber for its trigger traffic, with the same address) the
    /// first found wins. Any thread.
    /// </summary>
    public uint Find(uint subscriber, int except)
    {
        PairingTable[] tables = _tables;
        for (int k = 0; k < tables.Length; k++)
        {
            if (k != except && tables[k].Find(subscriber) is var external && external != 0)
            {
                return external;
            }
        }
        return 0;
    }

    /// <summary>
    /// Subscribers shard <paramref name="shard"/> publishes that another shard publishes too: a
    /// subscriber whose port-less, ISAKMP or trigger traffic shard 0 carries while its own shard
    /// holds its TCP and UDP has state, and a pairing, in both. The metrics count it once by taking
    /// these off shard 0's count. Any thread; walks that shard's table, no lock, no allocation; a
    /// pairing published or withdrawn during the walk may be seen either way.
    /// </summary>
    public int PublishedElsewhereToo(int shard)
    {
        int n = 0;
        foreach (ulong e in _tables[shard].Snapshot)
        {
            if ((uint)e != 0 && Find((uint)(e >> 32), except: shard) != 0)
            {
                n++;
            }
        }
        return n;
    }

    /// <summary>
    /// Pairings chosen unclaimed because another subscriber's claim held their slot at that moment.
    /// Any thread.
    /// </summary>
    public long ClaimsMissed => Interlocked.Read(ref _claimsMissed);

    /// <summary>
    /// Claims the choice of <paramref name="subscriber"/>'s pairing with <paramref name="external"/>
    /// (network order, not 0), for a shard that found no published pairing for it. Returns
    /// <paramref name="external"/> with <paramref name="held"/> true when this call took the claim:
    /// the caller publishes its pairing, then calls <see cref="Release"/>. Returns the address another
    /// shard claimed for the same subscriber, <paramref name="held"/> false, when that shard is
    /// choosing at this moment. Returns 0, <paramref name="held"/> false, when the slot is held by
    /// another subscriber's claim (counted in <see cref="ClaimsMissed"/>) or the subscriber is 0. Any
    /// thread; no lock, no allocation.
    /// </summary>
    public uint Claim(uint subscriber, uint external, out bool held)
    {
        held = false;
        if (subscriber == 0 || external == 0)
        {
            return 0;
        }
        ref ulong slot = ref _claims[ClaimSlotOf(subscriber)];
        ulong mine = ((ulong)subscriber << 32) | external;
        ulong seen = Interlocked.CompareExchange(ref slot, mine, 0);
        if (seen == 0)
        {
            held = true;
            return external;
        }
        if ((uint)(seen >> 32) == subscriber)
        {
            return (uint)seen;
        }
        Interlocked.Increment(ref _claimsMissed);
        return 0;
    }

    /// <summary>
    /// Releases the claim <see cref="Claim"/> gave for <paramref name="subscriber"/> and
    /// <paramref name="external"/>, once the pairing is published. Any thread.
    /// </summary>
    public void Release(uint subscriber, uint external)
        => Interlocked.CompareExchange(ref _claims[ClaimSlotOf(subscriber)], 0, ((ulong)subscriber << 32) | external);

    /// <summary>The claim slot of <paramref name="subscriber"/> (tests find two subscribers that share one).</summary>
    internal static int ClaimSlotOf(uint subscriber) => PairingTable.Home(subscriber, ClaimSlots - 1);
}
