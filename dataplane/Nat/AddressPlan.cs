using System.Runtime.CompilerServices;
using Natd.Dataplane.Packets;

namespace Natd.Dataplane.Nat;

/// <summary>
/// IPv4 addressing and routing of one engine, derived from <see cref="NatSettings"/> and rebuilt on
/// reload (<see cref="Update"/>): owns the external pool and its index, natd's own addresses, the
/// on-link prefixes, the inside networks, the next-hop choice (on-link or gateway) and the outside
/// source filter's precomputed masks (RFC 1812 section 5.3.7, RFC 2827 / BCP 38). All addresses
/// are network order. Lookups are a few compares or one hash probe: no allocation, no lock.
/// Single writer (the engine's thread); <see cref="Update"/> runs between batches.
/// </summary>
internal sealed class AddressPlan
{
    /// <summary>
    /// <see cref="CheckOutsideSource"/>'s "no drop" answer: outside the <see cref="DropReason"/>
    /// values, so it is never counted.
    /// </summary>
    public const DropReason Ok = (DropReason)255;

    /// <summary>Pools larger than this are looked up through a table instead of a scan.</summary>
    private const int ScanLimit = 8;

    /// <summary>
    /// The widest pool (highest minus lowest address, plus one) looked up by direct index (4 bytes
    /// per address of the span: 256 KiB for a /16); a wider, sparse pool uses a hash index.
    /// </summary>
    private const int DenseSpanLimit = 1 << 16;

    /// <summary>A prefix as a precomputed (network, mask) pair, both network order: one AND and one compare per test.</summary>
    private readonly record struct MaskedNet(uint Net, uint Mask)
    {
        public static MaskedNet Of(Ipv4Prefix p) => new(p.Address & p.Mask, p.Mask);
    }

    /// <summary><see cref="PrivateSources.Ranges"/> as masked pairs.</summary>
    private static readonly MaskedNet[] PrivateRanges = MaskAll(PrivateSources.Ranges);

    private readonly ulong _seed;
    private uint[] _pool = [];
    private CgnatSettings _cgnat = new();
    private int[] _serving = [];     // pool indices not draining (nat.drain), in pool order
    private Dictionary<uint, int>? _poolIndex;
    private uint _poolLow;          // lowest pool address, host order
    private uint _poolSpan;         // highest - lowest (host order); uint.MaxValue: empty pool
    private int[]? _poolDense;      // [host - _poolLow]: pool index or -1, when the span is at most DenseSpanLimit
    private MaskedNet[] _insideNetworks = [];
    private MaskedNet _insideLink;
    private uint _insideGateway;
    private uint _outsideGateway;
    private MaskedNet[] _ownSources = [];
    private MaskedNet _outsideLink;
    private MaskedNet[] _insideSources = [];
    private MaskedNet[] _privateSources = [];
    private MaskedNet[] _allowedSources = [];
    // Bit o (of 256, o = the first octet): some own, inside or private prefix of the outside source
    // filter holds addresses of first octet o. A clear bit passes the source on one load.
    private readonly ulong[] _filteredOctets = new ulong[4];

    /// <summary>Derives the plan from <paramref name="settings"/>.</summary>
    /// <param name="settings">Configuration (the pool, both sides' addresses, networks and gateways, the martian filter).</param>
    /// <param name="seed">Hash seed for paired pooling (<see cref="PoolIndexFor"/>); the engine's.</param>
    public AddressPlan(NatSettings settings, ulong seed)
    {
        _seed = seed;
        Update(settings);
    }

    /// <summary>The external address pool, in configuration order (index = pool index).</summary>
    public uint[] Pool => _pool;

    /// <summary>natd's inside address.</summary>
    public uint InsideAddress { get; private set; }

    /// <summary>natd's outside address.</summary>
    public uint OutsideAddress { get; private set; }

    /// <summary>The inside on-link prefix (natd's inside address and its length).</summary>
    public Ipv4Prefix InsidePrefix { get; private set; }

    /// <summary>The outside on-link prefix (natd's outside address and its length).</summary>
    public Ipv4Prefix OutsidePrefix { get; private set; }

    /// <summary>Rebuilds everything from <paramref name="next"/> (construction and reload).</summary>
    public void Update(NatSettings next)
    {
        _pool = [.. next.Pool];
        _cgnat = next.Cgnat;
        IndexPool(_pool);
        var serving = new List<int>(_pool.Length);
        for (int i = 0; i < _pool.Length; i++)
        {
            if (!next.Cgnat.Drain.Contains(_pool[i]))
            {
                serving.Add(i);
            }
        }
        _serving = serving.Count > 0 ? [.. serving] : [.. Enumerable.Range(0, _pool.Length)];
        InsideAddress = next.Inside.Address.Address;
        OutsideAddress = next.Outside.Address.Address;
        InsidePrefix = next.Inside.Address;
        OutsidePrefix = next.Outside.Address;
        _insideNetworks = MaskAll(next.Inside.Networks);
        _insideLink = MaskedNet.Of(next.Inside.Address);
        _outsideLink = MaskedNet.Of(next.Outside.Address);
        _insideGateway = next.Inside.Gateway;
        _outsideGateway = next.Outside.Gateway;
        BuildSourceFilter(next);
    }

    private void IndexPool(uint[] pool)
    {
        // Every in2out packet asks whether its destination is natd's (hairpinning, PCP), every
        // out2in packet which pool address it came to: a range check in host order answers the
        // first for almost all traffic, and a direct index the second, for a pool of addresses
        // close together (prefixes and ranges, as an ISP's are).
        _poolDense = null;
        _poolIndex = null;
        if (pool.Length == 0)
        {
            _poolLow = 0;
            _poolSpan = uint.MaxValue;
            return;
        }
        uint low = uint.MaxValue, high = 0;
        foreach (uint a in pool)
        {
            uint h = Ipv4.ToHostOrder(a);
            low = Math.Min(low, h);
            high = Math.Max(high, h);
        }
        _poolLow = low;
        _poolSpan = high - low;
        if (pool.Length <= ScanLimit)
        {
            return;
        }
        if (_poolSpan < DenseSpanLimit)
        {
            var dense = new int[_poolSpan + 1];
            Array.Fill(dense, -1);
            for (int i = pool.Length - 1; i >= 0; i--)
            {
                dense[Ipv4.ToHostOrder(pool[i]) - low] = i; // a duplicate keeps its first index, as the scan would
            }
            _poolDense = dense;
            return;
        }
        var d = new Dictionary<uint, int>(pool.Length);
        for (int i = 0; i < pool.Length; i++)
        {
            d.TryAdd(pool[i], i);
        }
        _poolIndex = d;
    }

    /// <summary>
    /// Addresses never valid as a source or destination across natd: 0/8, 127/8 (loopback) and
    /// 224/3 (multicast, class E, limited broadcast); RFC 1812 section 5.3.7.
    /// </summary>
    public static bool IsMartian(uint address)
    {
        uint h = Ipv4.ToHostOrder(address);
        uint first = h >> 24;
        return first == 0 || first == 127 || first >= 224;
    }

    /// <summary>The pool index of <paramref name="address"/>, or -1 when it is not an external address.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public int PoolIndexOf(uint address)
    {
        uint offset = Ipv4.ToHostOrder(address) - _poolLow;
        if (offset > _poolSpan)
        {
            return -1; // outside the pool's span: most destinations of in2out traffic
        }
        if (_poolDense is { } dense)
        {
            return dense[offset];
        }
        return PoolIndexOfScan(address);
    }

    private int PoolIndexOfScan(uint address)
    {
        uint[] pool = _pool;
        if (_poolIndex is { } index)
        {
            // A wide, sparse pool of many addresses: one hash probe instead of a scan.
            return index.TryGetValue(address, out int idx) ? idx : -1;
        }
        for (int i = 0; i < pool.Length; i++)
        {
            if (pool[i] == address)
            {
                return i;
            }
        }
        return -1;
    }

    /// <summary>
    /// Paired pooling (RFC 4787 REQ-2): the pool index an inside address always maps to, the hash
    /// of its subscriber (<see cref="CgnatSettings.SubscriberOf"/>) so a subscriber prefix shares one
    /// address, over the addresses that do not drain (<c>nat.drain</c>; without it, the whole pool).
    /// </summary>
    public int PoolIndexFor(uint insideAddress)
        => _serving.Length == 1 ? _serving[0]
            : _serving[(int)(new Sessions.FlowKey(_cgnat.SubscriberOf(insideAddress), 0, 0, 0, 0).Hash(_seed) % (uint)_serving.Length)];

    /// <summary>True for natd's inside or outside address or an external (pool) address.</summary>
    public bool IsOwnAddress(uint address)
        => address == InsideAddress || address == OutsideAddress || PoolIndexOf(address) >= 0;

    /// <summary>True when <paramref name="address"/> is in one of the configured inside networks.</summary>
    /// <remarks>Every in2out packet asks this twice (source and destination): the masks are precomputed.</remarks>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool InInsideNetworks(uint address) => AnyContains(_insideNetworks, address);

    /// <summary>True when <paramref name="address"/> (network order) is on the inside link (<see cref="InsidePrefix"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool OnInsideLink(uint address) => (address & _insideLink.Mask) == _insideLink.Net;

    /// <summary>True when <paramref name="address"/> (network order) is on the outside link (<see cref="OutsidePrefix"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool OnOutsideLink(uint address) => (address & _outsideLink.Mask) == _outsideLink.Net;

    /// <summary>Outside next hop for a destination: itself when on-link, else the configured gateway (0: none, no route).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public uint NextHopOutside(uint destination) => OnOutsideLink(destination) ? destination : _outsideGateway;

    /// <summary>Inside next hop: the host itself when on-link, else the inside gateway when configured, else the host.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public uint NextHopInside(uint destination)
        => OnInsideLink(destination) || _insideGateway == 0 ? destination : _insideGateway;

    /// <summary>Precomputes the outside source filter from <paramref name="s"/>.</summary>
    private void BuildSourceFilter(NatSettings s)
    {
        var own = new List<MaskedNet>
        {
            MaskedNet.Of(new Ipv4Prefix(s.Inside.Address.Address, 32)),
            MaskedNet.Of(new Ipv4Prefix(s.Outside.Address.Address, 32)),
        };
        foreach (Ipv4Prefix p in PoolPrefixes(s.Pool))
        {
            own.Add(MaskedNet.Of(p));
        }
        _ownSources = [.. own];
        var inside = new List<MaskedNet> { MaskedNet.Of(s.Inside.Address) };
        foreach (Ipv4Prefix p in s.Inside.Networks)
        {
            inside.Add(MaskedNet.Of(p));
        }
        _insideSources = [.. inside];
        _privateSources = s.MartianFilter == MartianFilter.Strict ? PrivateRanges : [];
        _allowedSources = MaskAll(s.AllowedOutsideSources);
        Array.Clear(_filteredOctets);
        MarkOctets(_ownSources);
        MarkOctets(_insideSources);
        MarkOctets(_privateSources);
    }

    /// <summary>Sets the bit of every first octet an address of <paramref name="nets"/> can have.</summary>
    private void MarkOctets(MaskedNet[] nets)
    {
        foreach (MaskedNet n in nets)
        {
            uint low = Ipv4.ToHostOrder(n.Net) >> 24;
            uint high = Ipv4.ToHostOrder(n.Net | ~n.Mask) >> 24;
            for (uint o = low; o <= high; o++)
            {
                _filteredOctets[o >> 6] |= 1UL << (int)(o & 63);
            }
        }
    }

    /// <summary>
    /// Ingress filtering of a source arriving on the outside (RFC 1812 section 5.3.7, RFC 2827 / BCP 38),
    /// after the always-martian test every frame gets: natd's own addresses, the inside on-link
    /// prefix and the inside networks are spoofed (<see cref="DropReason.Martian"/>); with the strict
    /// filter, private and special-use sources are <see cref="DropReason.PrivateSource"/> unless on the
    /// outside link or in the allowed sources. A few masked compares, no allocation.
    /// </summary>
    /// <returns><see cref="Ok"/> when the source may come from outside, else the drop reason.</returns>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public DropReason CheckOutsideSource(uint src)
    {
        uint octet = Ipv4.ToHostOrder(src) >> 24;
        if ((_filteredOctets[octet >> 6] & (1UL << (int)(octet & 63))) == 0)
        {
            return Ok; // no filtered prefix starts with this octet: most of the Internet, on one load
        }
        if (AnyContains(_ownSources, src))
        {
            return DropReason.Martian;
        }
        if ((src & _outsideLink.Mask) == _outsideLink.Net)
        {
            return Ok; // the upstream link itself (a home router behind 192.168.1.0/24) is always a valid source
        }
        if (AnyContains(_insideSources, src))
        {
            return DropReason.Martian;
        }
        if (AnyContains(_privateSources, src) && !AnyContains(_allowedSources, src))
        {
            return DropReason.PrivateSource;
        }
        return Ok;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool AnyContains(MaskedNet[] nets, uint address)
    {
        for (int i = 0; i < nets.Length; i++)
        {
            if ((address & nets[i].Mask) == nets[i].Net)
            {
                return true;
            }
        }
        return false;
    }

    private static MaskedNet[] MaskAll(IReadOnlyList<Ipv4Prefix> prefixes)
    {
        var nets = new MaskedNet[prefixes.Count];
        for (int i = 0; i < nets.Length; i++)
        {
            nets[i] = MaskedNet.Of(prefixes[i]);
        }
        return nets;
    }

    /// <summary>
    /// The pool as the fewest CIDR prefixes that cover exactly its addresses (a CGN pool of a /24 is
    /// one prefix), so testing a source against it is a couple of masked compares, not a hash probe.
    /// </summary>
    /// <param name="pool">Addresses, network order, any order, duplicates allowed.</param>
    /// <returns>Prefixes in ascending address order.</returns>
    internal static List<Ipv4Prefix> PoolPrefixes(IReadOnlyList<uint> pool)
    {
        var host = new uint[pool.Count];
        for (int i = 0; i < host.Length; i++)
        {
            host[i] = Ipv4.ToHostOrder(pool[i]);
        }
        Array.Sort(host);
        var result = new List<Ipv4Prefix>();
        int k = 0;
        while (k < host.Length)
        {
            ulong lo = host[k];
            ulong hi = lo;
            k++;
            while (k < host.Length && host[k] <= hi + 1)
            {
                hi = Math.Max(hi, host[k]);
                k++;
            }
            while (lo <= hi)
            {
                // The largest aligned block starting at lo that stays within hi.
                int len = 32;
                while (len > 0)
                {
                    ulong size = 1UL << (32 - len + 1);
                    if ((lo & (size - 1)) != 0 || lo + size - 1 > hi)
                    {
                        break;
                    }
                    len--;
                }
                result.Add(new Ipv4Prefix(Ipv4.FromHostOrder((uint)lo), len));
                lo += 1UL << (32 - len);
            }
        }
        return result;
    }
}
