using System.Runtime.CompilerServices;
using Natd.Dataplane.Io;

namespace Natd.Dataplane.Nat;

/// <summary>What a shard knows of one fragmented datagram (<see cref="FragmentTable"/>).</summary>
public enum FragmentState : byte
{
    /// <summary>The slot is free.</summary>
    Free,
    /// <summary>The first fragment (with the ports) has not come yet: other fragments are held.</summary>
    Pending,
    /// <summary>The first fragment was translated: the others take its address rewrite.</summary>
    Translated,
    /// <summary>The first fragment's flow belongs to another shard: every fragment is handed there.</summary>
    Routed,
    /// <summary>The datagram was refused (its first fragment dropped, an overlap, a limit): the rest are dropped.</summary>
    Dropped,
}

/// <summary>
/// Virtual reassembly state of one shard (RFC 4787 REQ-14; VPP's <c>ip4_sv_reass</c>, netfilter's
/// defrag without rebuilding the datagram): per datagram, keyed by (source, destination, IP
/// identification, protocol, arrival side), the fragment ranges seen, the first fragment's
/// translation (the new address) or the shard it was routed to, and the non-first fragments
/// that came before the first, copied into a fixed pool of frame buffers until it comes.
/// Fragments are never reassembled into one frame: each is forwarded as it is.
/// <para>Bounds (all preallocated; nothing is allocated per fragment): <c>fragments.max-datagrams</c>
/// datagrams; <c>fragments.max-per-datagram</c> fragments per datagram; ranges from a shared pool of
/// 8 per datagram; <see cref="HeldCapacity"/> held frames of <see cref="FrameBatch.SlotSize"/> bytes.
/// A datagram's state lives <c>fragments.timeout</c> seconds from its first fragment's arrival
/// (whichever came first), as Linux's <c>ipfrag_time</c>, or until all its bytes passed.</para>
/// Single threaded: owned by its shard's engine.
/// </summary>
public sealed class FragmentTable
{
    /// <summary>Ranges in the shared pool per datagram of capacity.</summary>
    public const int RangesPerDatagram = 8;

    /// <summary>Most frames held, whatever <c>fragments.max-datagrams</c> (8192 × 2 KiB = 16 MiB per shard).</summary>
    public const int MaxHeldFrames = 8192;

    private struct Datagram
    {
        public uint Source;
        public uint Destination;
        public ushort Id;
        public byte Protocol;
        public Side Ingress;
        public FragmentState State;
        public bool FirstSeen;
        public int Count;
        public int Bytes;
        public int End;          // payload bytes of the whole datagram, -1 until the last fragment came
        public uint NewAddress;  // Translated: the first fragment's rewritten address (network order)
        public int Shard;        // Routed: the owner
        public long ExpiresMs;
        public int HashNext;
        public int AgePrev;
        public int AgeNext;
        public int RangeHead;
        public int HeldHead;
        public int HeldTail;
    }

    private readonly Datagram[] _d;
    private readonly int[] _buckets;
    private readonly int _mask;
    private readonly int[] _rangeStart;
    private readonly int[] _rangeEnd;
    private readonly int[] _rangeNext;
    private readonly byte[] _held;
    private readonly int[] _heldLength;
    private readonly int[] _heldNext;
    private readonly FrameFlags[] _heldFlags;
    private readonly long[] _heldTag;
    private readonly NatCounters _counters;
    private readonly int _maxPerDatagram;
    private readonly long _timeoutMs;
    private int _freeDatagram;
    private int _freeRange;
    private int _freeHeld;
    private int _ageHead = -1;
    private int _ageTail = -1;

    /// <summary>Creates the table for <paramref name="settings"/>, counting its drops in <paramref name="counters"/>.</summary>
    /// <exception cref="ArgumentOutOfRangeException">A bound below 1 (or below 2 fragments per datagram).</exception>
    public FragmentTable(FragmentSettings settings, NatCounters counters)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(settings.MaxDatagrams, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(settings.MaxPerDatagram, 2);
        ArgumentOutOfRangeException.ThrowIfLessThan(settings.TimeoutSeconds, 1);
        _counters = counters;
        _maxPerDatagram = settings.MaxPerDatagram;
        _timeoutMs = settings.TimeoutSeconds * 1000L;
        int n = settings.MaxDatagrams;
        _d = new Datagram[n];
        int buckets = (int)Math.Min(1 << 30, System.Numerics.BitOperations.RoundUpToPowerOf2((uint)n * 2));
        _buckets = new int[buckets];
        Array.Fill(_buckets, -1);
        _mask = buckets - 1;
        for (int i = 0; i < n; i++)
        {
            _d[i].HashNext = i + 1 < n ? i + 1 : -1; // the free list runs through HashNext
        }
        int ranges = (int)Math.Min((long)n * _maxPerDatagram, (long)n * RangesPerDatagram + _maxPerDatagram);
        _rangeStart = new int[ranges];
        _rangeEnd = new int[ranges];
        _rangeNext = new int[ranges];
        for (int i = 0; i < ranges; i++)
        {
            _rangeNext[i] = i + 1 < ranges ? i + 1 : -1;
        }
        HeldCapacity = Math.Clamp(n, Math.Min(_maxPerDatagram, MaxHeldFrames), MaxHeldFrames);
        _held = new byte[HeldCapacity * FrameBatch.SlotSize];
        _heldLength = new int[HeldCapacity];
        _heldNext = new int[HeldCapacity];
        _heldFlags = new FrameFlags[HeldCapacity];
        _heldTag = new long[HeldCapacity];
        for (int i = 0; i < HeldCapacity; i++)
        {
            _heldNext[i] = i + 1 < HeldCapacity ? i + 1 : -1;
        }
    }

    /// <summary>Datagrams the table can follow at once (<c>fragments.max-datagrams</c>).</summary>
    public int Capacity => _d.Length;

    /// <summary>Datagrams followed now.</summary>
    public int Count { get; private set; }

    /// <summary>Frames the pool can hold (max(<c>max-per-datagram</c>, <c>max-datagrams</c>), at most <see cref="MaxHeldFrames"/>).</summary>
    public int HeldCapacity { get; }

    /// <summary>Frames held now.</summary>
    public int HeldCount { get; private set; }

    /// <summary>Bytes this table preallocated (the memory bound of the fragment state).</summary>
    public long Footprint => (long)_d.Length * Unsafe.SizeOf<Datagram>() + _buckets.Length * 4L + _rangeStart.Length * 12L
        + _held.Length + HeldCapacity * (4L + 4 + 1 + 8);

    /// <summary>The state of datagram <paramref name="d"/> (an index from <see cref="Track"/>).</summary>
    public FragmentState StateOf(int d) => _d[d].State;

    /// <summary>Translated: the first fragment's new address (network order).</summary>
    public uint NewAddressOf(int d) => _d[d].NewAddress;

    /// <summary>Routed: the shard that owns the datagram's flow.</summary>
    public int ShardOf(int d) => _d[d].Shard;

    /// <summary>True when every byte of the datagram passed (first and last fragment seen, no gap).</summary>
    public bool IsComplete(int d) => _d[d].FirstSeen && _d[d].End >= 0 && _d[d].Bytes == _d[d].End;

    /// <summary>
    /// Records fragment <paramref name="p"/> (a parsed IPv4 fragment: <see cref="ParsedFrame.IsFragment"/>)
    /// against its datagram, creating the datagram's state if it is the first fragment seen.
    /// </summary>
    /// <returns>The datagram's index, or -1 with <paramref name="reason"/>: <see cref="DropReason.FragmentDatagramLimit"/>
    /// (no room for a new datagram), <see cref="DropReason.FragmentOverlap"/> (a duplicate, or an overlap, which
    /// also refuses the datagram), <see cref="DropReason.FragmentPerDatagramLimit"/> (too many; refuses the datagram),
    /// <see cref="DropReason.FragmentOfDroppedDatagram"/> (the datagram was refused before).</returns>
    public int Track(in ParsedFrame p, long nowMs, out DropReason reason)
    {
        int d = Find(p);
        if (d >= 0 && nowMs >= _d[d].ExpiresMs)
        {
            Expire(d); // its time is up: this fragment starts afresh
            d = -1;
        }
        if (d < 0)
        {
            d = Add(p, nowMs);
            if (d < 0)
            {
                reason = DropReason.FragmentDatagramLimit;
                return -1;
            }
        }
        ref Datagram g = ref _d[d];
        if (g.State == FragmentState.Dropped)
        {
            reason = DropReason.FragmentOfDroppedDatagram;
            return -1;
        }
        int start = p.FragmentOffset, end = start + p.L4Length;
        bool last = !p.MoreFragments;
        for (int r = g.RangeHead; r >= 0; r = _rangeNext[r])
        {
            if (_rangeStart[r] == start && _rangeEnd[r] == end)
            {
                reason = DropReason.FragmentOverlap; // an exact duplicate: dropped, the datagram goes on
                return -1;
            }
            if (start < _rangeEnd[r] && _rangeStart[r] < end)
            {
                return Refuse(d, DropReason.FragmentOverlap, out reason); // teardrop (RFC 1858, RFC 3128)
            }
            if (last && _rangeEnd[r] > end)
            {
                return Refuse(d, DropReason.FragmentOverlap, out reason); // data beyond the announced end
            }
        }
        if ((last && g.End >= 0) || (g.End >= 0 && end > g.End))
        {
            return Refuse(d, DropReason.FragmentOverlap, out reason); // two ends, or a fragment past the end
        }
        if (g.Count >= _maxPerDatagram)
        {
            return Refuse(d, DropReason.FragmentPerDatagramLimit, out reason);
        }
        int range = _freeRange;
        if (range < 0)
        {
            return Refuse(d, DropReason.FragmentDatagramLimit, out reason); // the shared range pool is spent
        }
        _freeRange = _rangeNext[range];
        _rangeStart[range] = start;
        _rangeEnd[range] = end;
        _rangeNext[range] = g.RangeHead;
        g.RangeHead = range;
        g.Count++;
        g.Bytes += end - start;
        if (last)
        {
            g.End = end;
        }
        if (start == 0)
        {
            g.FirstSeen = true;
        }
        reason = ParsedFrame.None;
        return d;
    }

    /// <summary>The first fragment was translated: the others get <paramref name="newAddress"/> (network order).</summary>
    public void SetTranslated(int d, uint newAddress)
    {
        _d[d].State = FragmentState.Translated;
        _d[d].NewAddress = newAddress;
    }

    /// <summary>The first fragment's flow belongs to <paramref name="shard"/>: the others are handed there.</summary>
    public void SetRouted(int d, int shard)
    {
        _d[d].State = FragmentState.Routed;
        _d[d].Shard = shard;
    }

    /// <summary>Refuses the datagram (its first fragment was dropped): held frames are dropped as <see cref="DropReason.FragmentOfDroppedDatagram"/>, later ones too.</summary>
    public void SetDropped(int d)
    {
        _d[d].State = FragmentState.Dropped;
        DropHeld(d, DropReason.FragmentOfDroppedDatagram);
    }

    /// <summary>
    /// Copies a non-first fragment of a <see cref="FragmentState.Pending"/> datagram into the pool
    /// until the first fragment comes. False when the pool is full (the caller drops the frame and
    /// refuses the datagram: it could never be completed).
    /// </summary>
    public bool Hold(int d, ReadOnlySpan<byte> frame, FrameFlags flags, long tag)
    {
        int h = _freeHeld;
        if (h < 0 || frame.Length > FrameBatch.SlotSize)
        {
            return false;
        }
        _freeHeld = _heldNext[h];
        frame.CopyTo(_held.AsSpan(h * FrameBatch.SlotSize, FrameBatch.SlotSize));
        _heldLength[h] = frame.Length;
        _heldFlags[h] = flags;
        _heldTag[h] = tag;
        _heldNext[h] = -1;
        ref Datagram g = ref _d[d];
        if (g.HeldTail >= 0)
        {
            _heldNext[g.HeldTail] = h;
        }
        else
        {
            g.HeldHead = h;
        }
        g.HeldTail = h;
        HeldCount++;
        return true;
    }

    /// <summary>
    /// Takes the oldest frame held for datagram <paramref name="d"/> (arrival order), or -1. The
    /// frame stays in its slot (<see cref="HeldFrame"/>) until <see cref="FreeHeld"/>.
    /// </summary>
    public int TakeHeld(int d)
    {
        ref Datagram g = ref _d[d];
        int h = g.HeldHead;
        if (h >= 0)
        {
            g.HeldHead = _heldNext[h];
            if (g.HeldHead < 0)
            {
                g.HeldTail = -1;
            }
        }
        return h;
    }

    /// <summary>The slot of held frame <paramref name="h"/> (<see cref="FrameBatch.SlotSize"/> bytes; the frame is its first <see cref="HeldLength"/>).</summary>
    public Span<byte> HeldFrame(int h) => _held.AsSpan(h * FrameBatch.SlotSize, FrameBatch.SlotSize);

    /// <summary>Length of held frame <paramref name="h"/>.</summary>
    public int HeldLength(int h) => _heldLength[h];

    /// <summary>Receive flags of held frame <paramref name="h"/>.</summary>
    public FrameFlags HeldFlags(int h) => _heldFlags[h];

    /// <summary>The caller's label of held frame <paramref name="h"/> (<see cref="PacketContext.HoldTag"/>).</summary>
    public long HeldTag(int h) => _heldTag[h];

    /// <summary>Returns held frame <paramref name="h"/>'s slot to the pool.</summary>
    public void FreeHeld(int h)
    {
        _heldNext[h] = _freeHeld;
        _freeHeld = h;
        HeldCount--;
    }

    /// <summary>Forgets datagram <paramref name="d"/> (all its bytes passed); nothing may be held for it.</summary>
    public void Remove(int d)
    {
        DropHeld(d, DropReason.FragmentOfDroppedDatagram);
        Unlink(d);
    }

    /// <summary>
    /// Forgets up to <paramref name="budget"/> datagrams whose time is up (oldest first, a bounded
    /// slice); frames still held for them are dropped as <see cref="DropReason.FragmentTimeout"/>.
    /// </summary>
    /// <returns>Datagrams forgotten.</returns>
    public int Sweep(long nowMs, int budget)
    {
        int n = 0;
        while (n < budget && _ageHead >= 0 && nowMs >= _d[_ageHead].ExpiresMs)
        {
            Expire(_ageHead);
            n++;
        }
        return n;
    }

    private void Expire(int d)
    {
        DropHeld(d, DropReason.FragmentTimeout);
        Unlink(d);
    }

    private int Refuse(int d, DropReason why, out DropReason reason)
    {
        SetDropped(d);
        reason = why;
        return -1;
    }

    private void DropHeld(int d, DropReason why)
    {
        for (int h = TakeHeld(d); h >= 0; h = TakeHeld(d))
        {
            _counters.Drops[(int)why]++;
            FreeHeld(h);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private int Bucket(uint src, uint dst, ushort id, byte proto)
    {
        ulong h = ((ulong)src * 0x9E3779B97F4A7C15UL) ^ ((ulong)dst * 0xC2B2AE3D27D4EB4FUL) ^ ((ulong)id << 8 | proto) * 0x165667B19E3779F9UL;
        return (int)((h ^ (h >> 29)) & (uint)_mask);
    }

    private int Find(in ParsedFrame p)
    {
        for (int d = _buckets[Bucket(p.Source, p.Destination, p.FragmentId, p.Protocol)]; d >= 0; d = _d[d].HashNext)
        {
            ref Datagram g = ref _d[d];
            if (g.Source == p.Source && g.Destination == p.Destination && g.Id == p.FragmentId && g.Protocol == p.Protocol && g.Ingress == p.Ingress)
            {
                return d;
            }
        }
        return -1;
    }

    private int Add(in ParsedFrame p, long nowMs)
    {
        if (_freeDatagram < 0 && _ageHead >= 0 && nowMs >= _d[_ageHead].ExpiresMs)
        {
            Expire(_ageHead); // reclaim the oldest when its time is up, before refusing
        }
        int d = _freeDatagram;
        if (d < 0)
        {
            return -1;
        }
        _freeDatagram = _d[d].HashNext;
        ref Datagram g = ref _d[d];
        g = default;
        g.Source = p.Source;
        g.Destination = p.Destination;
        g.Id = p.FragmentId;
        g.Protocol = p.Protocol;
        g.Ingress = p.Ingress;
        g.State = FragmentState.Pending;
        g.End = -1;
        g.ExpiresMs = nowMs + _timeoutMs;
        g.RangeHead = -1;
        g.HeldHead = -1;
        g.HeldTail = -1;
        int b = Bucket(p.Source, p.Destination, p.FragmentId, p.Protocol);
        g.HashNext = _buckets[b];
        _buckets[b] = d;
        g.AgeNext = -1;
        g.AgePrev = _ageTail;
        if (_ageTail >= 0)
        {
            _d[_ageTail].AgeNext = d;
        }
        else
        {
            _ageHead = d;
        }
        _ageTail = d;
        Count++;
        return d;
    }

    private void Unlink(int d)
    {
        ref Datagram g = ref _d[d];
        int b = Bucket(g.Source, g.Destination, g.Id, g.Protocol);
        if (_buckets[b] == d)
        {
            _buckets[b] = g.HashNext;
        }
        else
        {
            for (int x = _buckets[b]; x >= 0; x = _d[x].HashNext)
            {
                if (_d[x].HashNext == d)
                {
                    _d[x].HashNext = g.HashNext;
                    break;
                }
            }
        }
        if (g.AgePrev >= 0)
        {
            _d[g.AgePrev].AgeNext = g.AgeNext;
        }
        else
        {
            _ageHead = g.AgeNext;
        }
        if (g.AgeNext >= 0)
        {
            _d[g.AgeNext].AgePrev = g.AgePrev;
        }
        else
        {
            _ageTail = g.AgePrev;
        }
        while (g.RangeHead >= 0)
        {
            int r = g.RangeHead;
            g.RangeHead = _rangeNext[r];
            _rangeNext[r] = _freeRange;
            _freeRange = r;
        }
        g.State = FragmentState.Free;
        g.HashNext = _freeDatagram;
        _freeDatagram = d;
        Count--;
    }
}
