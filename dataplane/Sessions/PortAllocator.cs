using System.Numerics;

namespace Natd.Dataplane.Sessions;

/// <summary>
/// External port (or ICMP identifier) allocation per external address and protocol, randomised as
/// RFC 6056 Algorithm 1 ("simple port randomization") over a bitmap: start at a random port of the
/// range and take the next free one, wrapping. A bitmap word test skips 64 busy ports at a time,
/// so an almost-full range costs at most ~1000 word reads, never a probe per port. The port class
/// is kept (RFC 4787 REQ-3): an inside port below 1024 gets an external port below 1024.
/// Ports are host order here.
/// </summary>
public sealed class PortAllocator
{
    /// <summary>Protocol classes with separate port spaces.</summary>
    public const int Classes = 3;

    private readonly ulong[][] _bitmaps; // [address * Classes + class] -> 1024 words (65536 bits)
    private readonly int[] _used;
    private readonly int _lo, _hi, _privLo, _privHi;
    private ulong _s0, _s1; // xorshift128+ state, seeded from a CSPRNG unless a seed is given

    // Draws made ahead of the allocation that uses them (PredictPort), consumed in order by the
    // next allocations: the sequence of draws, so of ports, is the one without looking ahead.
    private const int AheadCapacity = 8;
    private readonly ulong[] _ahead = new ulong[AheadCapacity];
    private int _aheadHead, _aheadCount;
    // Port quarantine: a FIFO ring of released ports still marked busy in their bitmap until due.
    private readonly long[] _qDue;
    private readonly int[] _qSlot;
    private readonly ushort[] _qPort;
    private int _qHead, _qCount;
    // Which busy ports are quarantined rather than mapped (IsUsed: a reply to a closed mapping is
    // plain unsolicited traffic). One bitmap per address and class, made on its first release.
    private readonly ulong[]?[] _qBits;

    /// <summary>
    /// Creates an allocator for <paramref name="addresses"/> external addresses and the range
    /// <paramref name="portMin"/>..<paramref name="portMax"/> (host order, inclusive).
    /// </summary>
    /// <param name="addresses">Pool size (at least 1).</param>
    /// <param name="portMin">Lowest port of the configured range.</param>
    /// <param name="portMax">Highest port of the configured range.</param>
    /// <param name="seed">Fixed seed for reproducible runs (replay, tests); null draws one from the OS CSPRNG.</param>
    /// <param name="shard">This shard's index (0-based).</param>
    /// <param name="shards">Shards sharing the ports: shard k owns the ports <paramref name="ownerOfPort"/>
    /// maps to k, so an out2in packet's owner is read off its destination port (docs/architecture.md, "Shards").</param>
    /// <param name="ownerOfPort">The owner of each port (host order), required with more than one
    /// shard: the dataplane's one owner-of rule (ShardMap), passed down so the allocator does not
    /// restate it; -1 means any shard may take the port (deterministic ranges decide which will).
    /// Called 65,536 times here, never per packet.</param>
    /// <exception cref="ArgumentException">Empty pool or range, a bad shard index, or several shards without <paramref name="ownerOfPort"/>.</exception>
    /// <param name="quarantineCapacity">Released ports the quarantine holds at most (<see cref="Release"/>); 0: none, a released port is free at once.</param>
    public PortAllocator(int addresses, int portMin, int portMax, ulong? seed = null, int shard = 0, int shards = 1, Func<int, int>? ownerOfPort = null,
        int quarantineCapacity = 0)
    {
        if (shards < 1 || shard < 0 || shard >= shards)
        {
            throw new ArgumentException($"bad shard {shard} of {shards}");
        }
        if (shards > 1 && ownerOfPort is null)
        {
            throw new ArgumentException("several shards need the owner-of-port rule", nameof(ownerOfPort));
        }
        if (addresses < 1 || portMin < 1 || portMax > 65535 || portMin > portMax)
        {
            throw new ArgumentException($"bad pool/range: {addresses} addresses, ports {portMin}-{portMax}");
        }
        _bitmaps = new ulong[addresses * Classes][];
        for (int i = 0; i < _bitmaps.Length; i++)
        {
            _bitmaps[i] = new ulong[1024];
        }
        _used = new int[addresses * Classes];
        if (shards > 1)
        {
            // Another shard's ports look taken here (without counting as used): random allocation
            // stays within this shard's slice, still RFC 6056 random inside it.
            var others = new ulong[1024];
            for (int p = 0; p < 65536; p++)
            {
                int owner = ownerOfPort!(p);
                if (owner >= 0 && owner != shard)
                {
                    others[p >> 6] |= 1UL << (p & 63);
                }
            }
            foreach (var bits in _bitmaps)
            {
                others.CopyTo(bits, 0);
            }
        }
        Shard = shard;
        Shards = shards;
        (_lo, _hi) = OrdinaryRange(portMin, portMax);
        // Privileged class: the range's part below 1024, or 1-1023 when it has none (REQ-3 wins).
        _privLo = portMin < 1024 ? portMin : 1;
        _privHi = Math.Min(portMax, 1023);
        if (_privLo > _privHi)
        {
            _privLo = 1;
            _privHi = 1023;
        }
        _qDue = new long[Math.Max(0, quarantineCapacity)];
        _qSlot = new int[_qDue.Length];
        _qPort = new ushort[_qDue.Length];
        _qBits = new ulong[]?[addresses * Classes];
        ulong s = seed ?? BitConverter.ToUInt64(System.Security.Cryptography.RandomNumberGenerator.GetBytes(8));
        _s0 = SplitMix(ref s);
        _s1 = SplitMix(ref s);
    }

    /// <summary>This allocator's shard.</summary>
    public int Shard { get; }

    /// <summary>Shards sharing the port space.</summary>
    public int Shards { get; }

    /// <summary>Ports of the ordinary class range this shard may allocate (for utilisation figures).</summary>
    public int RangeSize => (_hi - _lo + Shards) / Shards;

    /// <summary>External addresses this allocator serves.</summary>
    public int Addresses => _used.Length / Classes;

    /// <summary>Ports in use for an address and protocol class.</summary>
    public int InUse(int address, int protocolClass) => _used[address * Classes + protocolClass];

    /// <summary>
    /// Takes a free port for <paramref name="address"/> (pool index) and <paramref name="protocolClass"/>.
    /// Returns the port (host order) or -1 when the class range is exhausted.
    /// </summary>
    public int Allocate(int address, int protocolClass, bool privileged)
    {
        int lo = privileged ? _privLo : _lo;
        int hi = privileged ? _privHi : _hi;
        ulong[] bits = _bitmaps[address * Classes + protocolClass];
        int n = hi - lo + 1;
        int start = lo + (int)(Next() % (ulong)n);
        int port = FindFree(bits, start, hi);
        if (port < 0)
        {
            port = FindFree(bits, lo, start - 1);
        }
        if (port < 0)
        {
            return -1;
        }
        bits[port >> 6] |= 1UL << (port & 63);
        _used[address * Classes + protocolClass]++;
        return port;
    }

    /// <summary>
    /// Takes a free port for <paramref name="address"/> (pool index) and <paramref name="protocolClass"/>
    /// inside <paramref name="low"/>..<paramref name="high"/> (host order, inclusive): a deterministic
    /// subscriber's range (RFC 7422), drawn at random within it as RFC 6056 Algorithm 1. The port
    /// class is not kept: a range holds no privileged ports. Returns the port or -1 when the range is full.
    /// </summary>
    public int AllocateInRange(int address, int protocolClass, int low, int high)
        => AllocateInRange(address, protocolClass, low, high, Draw(NextRandom(), high - low + 1));

    /// <summary>
    /// A raw 64-bit draw of the allocator's generator, for a caller that turns it into a start
    /// offset (<see cref="Draw"/>) before it knows the range, so the arithmetic runs while the
    /// loads that find the range are still in flight.
    /// </summary>
    public ulong NextRandom() => Next();

    /// <summary>
    /// A draw of <see cref="NextRandom"/> mapped onto 0..<paramref name="n"/>-1 (<paramref name="n"/>
    /// 1 to 65536) by a multiply-high of its top 32 bits, not a division on the new-flow path: each
    /// offset comes up with probability 1/n to within 2^-32.
    /// </summary>
    public static int Draw(ulong random, int n) => (int)(((random >> 32) * (ulong)(uint)n) >> 32);

    /// <summary>
    /// As <see cref="AllocateInRange(int, int, int, int)"/>, from the given start offset
    /// <paramref name="offset"/> (0 to high - low) instead of a fresh draw.
    /// </summary>
    public int AllocateInRange(int address, int protocolClass, int low, int high, int offset)
    {
        ulong[] bits = _bitmaps[address * Classes + protocolClass];
        int start = low + offset;
        int port = FindFree(bits, start, high);
        if (port < 0)
        {
            port = FindFree(bits, low, start - 1);
        }
        if (port < 0)
        {
            return -1;
        }
        bits[port >> 6] |= 1UL << (port & 63);
        _used[address * Classes + protocolClass]++;
        return port;
    }

    /// <summary>Prefetches the bitmap word of <paramref name="port"/> (host order) on address <paramref name="address"/> (a hint: an allocation reads it soon; out-of-range arguments hint nothing).</summary>
    public unsafe void Prefetch(int address, int protocolClass, int port)
    {
        int slot = address * Classes + protocolClass;
        if (System.Runtime.Intrinsics.X86.Sse.IsSupported && (uint)port < 65536 && (uint)slot < (uint)_bitmaps.Length)
        {
            System.Runtime.Intrinsics.X86.Sse.Prefetch0(System.Runtime.CompilerServices.Unsafe.AsPointer(ref _bitmaps[slot][port >> 6]));
        }
    }

    /// <summary>Takes a specific port if free (for restoring state or preserving a port); false when busy.</summary>
    public bool TryReserve(int address, int protocolClass, int port)
    {
        ulong[] bits = _bitmaps[address * Classes + protocolClass];
        ulong m = 1UL << (port & 63);
        if ((bits[port >> 6] & m) != 0)
        {
            return false;
        }
        bits[port >> 6] |= m;
        _used[address * Classes + protocolClass]++;
        return true;
    }

    /// <summary>Returns a port to the free set.</summary>
    public void Free(int address, int protocolClass, int port)
    {
        ulong[] bits = _bitmaps[address * Classes + protocolClass];
        ulong m = 1UL << (port & 63);
        if ((bits[port >> 6] & m) != 0)
        {
            bits[port >> 6] &= ~m;
            _used[address * Classes + protocolClass]--;
        }
    }

    /// <summary>
    /// Milliseconds a port given back through <see cref="Release"/> rests before it can be handed
    /// out again (<c>nat.port-reuse-delay</c>), so a new holder never receives a stray segment of the
    /// previous holder's connection. 0: released ports are free at once.
    /// </summary>
    public long ReuseDelayMs { get; set; }

    /// <summary>Ports resting in the quarantine (not in use, not free).</summary>
    public int Quarantined => _qCount;

    /// <summary>Ports that left the quarantine early because it was full (the ring holds <c>quarantineCapacity</c> ports).</summary>
    public long QuarantineOverflows { get; private set; }

    /// <summary>Lowest port of the ordinary class (1024 and above when the range has such ports).</summary>
    public int OrdinaryLow => _lo;

    /// <summary>The ordinary class's ports (host order) of the range <paramref name="portMin"/>..<paramref name="portMax"/>: the part above 1023 when the range has one, else the whole range.</summary>
    public static (int Low, int High) OrdinaryRange(int portMin, int portMax)
    {
        int lo = Math.Max(portMin, 1024);
        return lo > portMax ? (portMin, portMax) : (lo, portMax);
    }

    /// <summary>Highest port of the ordinary class.</summary>
    public int OrdinaryHigh => _hi;

    /// <summary>
    /// Gives back a port whose mapping ended at <paramref name="nowMs"/> (engine clock): it stops
    /// counting as used at once but stays busy for <see cref="ReuseDelayMs"/> (the quarantine;
    /// <see cref="DrainQuarantine"/> frees it). When the quarantine is off or full the port (or,
    /// when full, the oldest quarantined one) is freed at once; bounded memory either way.
    /// </summary>
    public void Release(int address, int protocolClass, int port, long nowMs)
    {
        int slot = address * Classes + protocolClass;
        if (ReuseDelayMs <= 0 || _qDue.Length == 0)
        {
            Free(address, protocolClass, port);
            return;
        }
        ulong[] bits = _bitmaps[slot];
        if ((bits[port >> 6] & (1UL << (port & 63))) == 0)
        {
            return;
        }
        _used[slot]--;
        if (_qCount == _qDue.Length)
        {
            QuarantineOverflows++;
            Unquarantine();
        }
        int tail = (_qHead + _qCount) % _qDue.Length;
        (_qBits[slot] ??= new ulong[1024])[port >> 6] |= 1UL << (port & 63);
        _qDue[tail] = nowMs + ReuseDelayMs;
        _qSlot[tail] = slot;
        _qPort[tail] = (ushort)port;
        _qCount++;
    }

    /// <summary>Frees quarantined ports whose delay has passed at <paramref name="nowMs"/>, at most <paramref name="budget"/>; returns how many.</summary>
    public int DrainQuarantine(long nowMs, int budget)
    {
        int n = 0;
        while (_qCount > 0 && n < budget && _qDue[_qHead] <= nowMs)
        {
            Unquarantine();
            n++;
        }
        return n;
    }

    private void Unquarantine()
    {
        int port = _qPort[_qHead];
        int slot = _qSlot[_qHead];
        _bitmaps[slot][port >> 6] &= ~(1UL << (port & 63));
        _qBits[slot]![port >> 6] &= ~(1UL << (port & 63));
        _qHead = (_qHead + 1) % _qDue.Length;
        _qCount--;
    }

    /// <summary>True when the port is allocated (busy and not resting in the quarantine).</summary>
    public bool IsUsed(int address, int protocolClass, int port)
    {
        int slot = address * Classes + protocolClass;
        ulong m = 1UL << (port & 63);
        return (_bitmaps[slot][port >> 6] & m) != 0 && (_qBits[slot] is not { } q || (q[port >> 6] & m) == 0);
    }

    /// <summary>True when the port rests in the quarantine.</summary>
    public bool IsQuarantined(int address, int protocolClass, int port)
        => _qBits[address * Classes + protocolClass] is { } q && (q[port >> 6] & (1UL << (port & 63))) != 0;

    private static int FindFree(ulong[] bits, int from, int to)
    {
        if (from > to)
        {
            return -1;
        }
        int w = from >> 6;
        int lastW = to >> 6;
        ulong free = ~bits[w] & (ulong.MaxValue << (from & 63));
        while (true)
        {
            if (w == lastW)
            {
                int top = to & 63;
                free &= top == 63 ? ulong.MaxValue : (1UL << (top + 1)) - 1;
            }
            if (free != 0)
            {
                return (w << 6) + BitOperations.TrailingZeroCount(free);
            }
            if (w == lastW)
            {
                return -1;
            }
            w++;
            free = ~bits[w];
        }
    }

    /// <summary>
    /// The port (host order) an <see cref="Allocate"/> with <paramref name="privileged"/> starts its
    /// search from when it takes the generator's (<paramref name="ahead"/> + 1)-th draw from now
    /// (every allocation takes one): the port it gets when that one is free. For prefetching what
    /// a new flow will read (the bitmap word, the out2in index line of the external endpoint) a few
    /// frames before it is created. The draws looked at are made now and consumed in order by the
    /// allocations, so the ports allocated are the ones they would have been. -1 when
    /// <paramref name="ahead"/> is not 0..7.
    /// </summary>
    public int PredictPort(bool privileged, int ahead)
    {
        if ((uint)ahead >= AheadCapacity)
        {
            return -1;
        }
        while (_aheadCount <= ahead)
        {
            _ahead[(_aheadHead + _aheadCount) & (AheadCapacity - 1)] = Generate();
            _aheadCount++;
        }
        int lo = privileged ? _privLo : _lo;
        int hi = privileged ? _privHi : _hi;
        return lo + (int)(_ahead[(_aheadHead + ahead) & (AheadCapacity - 1)] % (ulong)(hi - lo + 1));
    }

    private ulong Next()
    {
        if (_aheadCount > 0)
        {
            ulong v = _ahead[_aheadHead];
            _aheadHead = (_aheadHead + 1) & (AheadCapacity - 1);
            _aheadCount--;
            return v;
        }
        return Generate();
    }

    private ulong Generate()
    {
        ulong s1 = _s0;
        ulong s0 = _s1;
        _s0 = s0;
        s1 ^= s1 << 23;
        _s1 = s1 ^ s0 ^ (s1 >> 17) ^ (s0 >> 26);
        return _s1 + s0;
    }

    private static ulong SplitMix(ref ulong x)
    {
        ulong z = x += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}
