using System.Globalization;
using System.Runtime.CompilerServices;
using Natd.Dataplane.Packets;

namespace Natd.Dataplane.Nat;

/// <summary>
/// One subscriber's deterministic share (RFC 7422): the external address and the port range
/// <see cref="Low"/>..<see cref="High"/> (host order, inclusive) every mapping of the subscriber
/// takes its port from, for TCP, UDP and ICMP identifiers alike.
/// </summary>
/// <param name="Index">The subscriber's number i (0-based, in the order of <c>nat.deterministic.inside</c>).</param>
/// <param name="Subscriber">The subscriber: its first inside address, network order.</param>
/// <param name="SubscriberPrefix">Its prefix length (<c>nat.subscriber-prefix</c>; 32 is one address).</param>
/// <param name="External">The external address, network order.</param>
/// <param name="PoolIndex">The external address's index in <c>nat.pool</c>.</param>
/// <param name="Low">First port of the range, host order.</param>
/// <param name="High">Last port of the range, host order.</param>
public readonly record struct DeterministicRange(long Index, uint Subscriber, int SubscriberPrefix, uint External, int PoolIndex, int Low, int High)
{
    /// <summary>The subscriber as text: <c>a.b.c.d</c>, or <c>a.b.c.d/len</c> when a subscriber is a prefix.</summary>
    public string InsideText => SubscriberPrefix == 32 ? Ipv4.Format(Subscriber) : new Ipv4Prefix(Subscriber, SubscriberPrefix).ToString();

    /// <summary>The one-line form lookups print for scripts: <c>INSIDE EXTERNAL:LOW-HIGH</c>.</summary>
    public override string ToString()
        => string.Create(CultureInfo.InvariantCulture, $"{InsideText} {Ipv4.Format(External)}:{Low}-{High}");
}

/// <summary>
/// Deterministic NAT (RFC 7422): the fixed map from inside subscribers to an external address and
/// port range, computed from the configuration alone, so the map itself is the log (no per-session
/// or per-block records) and a legal request is answered from the config file.
/// <para>The formula (docs/architecture.md, "Deterministic NAT"):</para>
/// <list type="number">
/// <item>Subscribers are numbered in order across the prefixes of <c>nat.deterministic.inside</c> as
/// configured: a prefix of length L holds 2^(S - L) subscribers of <c>nat.subscriber-prefix</c> S,
/// and subscriber i is the i-th of them (so i of 10.64.0.5 in 10.64.0.0/16 alone is 5).</item>
/// <item>The usable ports are U = <c>max(1024, nat.ports low)</c>..<c>nat.ports high</c>; a range never
/// includes the privileged ports, and never crosses from one address to the next.</item>
/// <item>Ports per subscriber P are <c>nat.deterministic.ports</c>, or derived for N subscribers on A
/// pool addresses as P = floor(U / ceil(N / A)): the most that lets every subscriber fit (equal to
/// floor(A * U / N) capped at U when the division falls evenly).</item>
/// <item>Subscribers per address K = floor(U / P).</item>
/// <item>Subscriber i gets address <c>pool[i / K]</c> (the pool in configured order) and the range
/// low = firstUsable + (i mod K) * P, high = low + P - 1.</item>
/// </list>
/// Both directions are O(1) apart from a walk over the (few) inside prefixes; nothing allocates
/// except <see cref="Table"/>. Immutable; safe to share between threads.
/// </summary>
public sealed class DeterministicMap
{
    /// <summary>
    /// The fewest ports a subscriber may get. A range cannot grow on demand, and one web page opens
    /// dozens of parallel connections whose ports then rest in TIME_WAIT (RFC 6269 section 7 and
    /// RFC 6888 section 5 discuss the failures port starvation causes): below 64 ordinary browsing fails.
    /// </summary>
    public const int MinPortsPerSubscriber = 64;

    private readonly uint[] _pool;
    private readonly Dictionary<uint, int> _poolIndex;
    private readonly uint[] _baseHost; // each prefix's first address, host order
    private readonly uint[] _maskHost; // each prefix's mask, host order
    private readonly long[] _offset; // the number of each prefix's first subscriber
    private readonly int _hostBits; // 32 - nat.subscriber-prefix

    private DeterministicMap(NatSettings settings, long subscribers, int portsPer, int perAddress, int firstPort, int lastPort)
    {
        var det = settings.Cgnat.Deterministic!;
        _pool = [.. settings.Pool];
        _poolIndex = new Dictionary<uint, int>(_pool.Length);
        for (int a = 0; a < _pool.Length; a++)
        {
            _poolIndex.TryAdd(_pool[a], a);
        }
        SubscriberPrefix = settings.Cgnat.SubscriberPrefix;
        _hostBits = 32 - SubscriberPrefix;
        int n = det.Inside.Count;
        _baseHost = new uint[n];
        _maskHost = new uint[n];
        _offset = new long[n];
        long next = 0;
        for (int j = 0; j < n; j++)
        {
            Ipv4Prefix p = det.Inside[j];
            _maskHost[j] = Ipv4.ToHostOrder(p.Mask);
            _baseHost[j] = Ipv4.ToHostOrder(p.Address) & _maskHost[j];
            _offset[j] = next;
            next += SubscribersIn(p, SubscriberPrefix);
        }
        Subscribers = subscribers;
        PortsPerSubscriber = portsPer;
        SubscribersPerAddress = perAddress;
        FirstPort = firstPort;
        LastPort = lastPort;
    }

    /// <summary>Subscribers in the map (N).</summary>
    public long Subscribers { get; }

    /// <summary>Ports per subscriber (P).</summary>
    public int PortsPerSubscriber { get; }

    /// <summary>Subscribers per external address (K).</summary>
    public int SubscribersPerAddress { get; }

    /// <summary>First usable port, host order: <c>max(1024, nat.ports low)</c>.</summary>
    public int FirstPort { get; }

    /// <summary>Last usable port, host order: <c>nat.ports high</c>.</summary>
    public int LastPort { get; }

    /// <summary>Prefix length of one subscriber (<c>nat.subscriber-prefix</c>).</summary>
    public int SubscriberPrefix { get; }

    /// <summary>
    /// The map of <paramref name="settings"/>, or null when <c>nat.allocation</c> is not deterministic.
    /// </summary>
    /// <exception cref="ArgumentException">The settings cannot be mapped (<see cref="Validate"/>'s message).</exception>
    public static DeterministicMap? For(NatSettings settings)
    {
        if (settings.Cgnat.Allocation != PortAllocation.Deterministic)
        {
            return null;
        }
        if (Check(settings, out long n, out int p, out int k, out int lo, out int hi) is { } error)
        {
            throw new ArgumentException(error, nameof(settings));
        }
        return new DeterministicMap(settings, n, p, k, lo, hi);
    }

    /// <summary>
    /// Null when <paramref name="settings"/> has a deterministic map (or is not deterministic), else
    /// why not, with the arithmetic: no inside prefix, a prefix smaller than one subscriber, overlapping
    /// prefixes, no port at or above 1024 in <c>nat.ports</c>, too few ports per subscriber
    /// (below <see cref="MinPortsPerSubscriber"/>) or too few pool addresses for the configured ports.
    /// </summary>
    public static string? Validate(NatSettings settings)
        => settings.Cgnat.Allocation != PortAllocation.Deterministic ? null : Check(settings, out _, out _, out _, out _, out _);

    private static long SubscribersIn(Ipv4Prefix p, int subscriberPrefix) => 1L << (subscriberPrefix - p.Length);

    private static string? Check(NatSettings settings, out long subscribers, out int portsPer, out int perAddress, out int firstPort, out int lastPort)
    {
        subscribers = 0;
        portsPer = perAddress = 0;
        firstPort = Math.Max(1024, (int)settings.PortMin);
        lastPort = settings.PortMax;
        var inv = CultureInfo.InvariantCulture;
        var inside = settings.Cgnat.Deterministic?.Inside ?? [];
        int s = settings.Cgnat.SubscriberPrefix;
        if (inside.Count == 0)
        {
            return "deterministic allocation needs nat.deterministic.inside: the inside prefixes whose subscribers get fixed ranges (RFC 7422)";
        }
        for (int j = 0; j < inside.Count; j++)
        {
            Ipv4Prefix p = inside[j];
            if (p.Length > s)
            {
                return string.Create(inv, $"{p} is smaller than one subscriber (nat.subscriber-prefix {s})");
            }
            for (int k = 0; k < j; k++)
            {
                Ipv4Prefix q = inside[k];
                int shorter = Math.Min(p.Length, q.Length);
                uint m = new Ipv4Prefix(0, shorter).Mask;
                if ((p.Address & m) == (q.Address & m))
                {
                    return string.Create(inv, $"{p} overlaps {q}: a subscriber must have one range");
                }
            }
            subscribers += SubscribersIn(p, s);
        }
        if (firstPort > lastPort)
        {
            return string.Create(inv, $"nat.ports {settings.PortMin}-{settings.PortMax} has no port at or above 1024; deterministic ranges use ports 1024 and up");
        }
        int usable = lastPort - firstPort + 1;
        int addresses = settings.Pool.Count;
        string who = inside.Count == 1 ? inside[0].ToString() : "nat.deterministic.inside";
        string verb = inside.Count == 1 ? "holds" : "hold";
        int configured = settings.Cgnat.Deterministic!.Ports;
        if (configured == 0)
        {
            long perAddr = (subscribers + addresses - 1) / addresses;
            long p = usable / perAddr;
            if (p < MinPortsPerSubscriber)
            {
                return string.Create(inv,
                    $"{who} {verb} {subscribers} subscribers; {addresses} addresses x {usable} ports give {p} ports each, below the minimum of {MinPortsPerSubscriber} (at most {(long)addresses * (usable / MinPortsPerSubscriber)} subscribers fit)");
            }
            portsPer = (int)p;
        }
        else
        {
            if (configured < MinPortsPerSubscriber)
            {
                return string.Create(inv, $"nat.deterministic.ports {configured} is below the minimum of {MinPortsPerSubscriber}");
            }
            if (configured > usable)
            {
                return string.Create(inv, $"nat.deterministic.ports {configured} exceeds the {usable} usable ports of nat.ports ({firstPort}-{lastPort})");
            }
            long k = usable / configured;
            long need = (subscribers + k - 1) / k;
            if (need > addresses)
            {
                return string.Create(inv,
                    $"nat.deterministic.ports {configured}: {subscribers} subscribers need {need} addresses at {k} per address; the pool has {addresses}");
            }
            portsPer = configured;
        }
        perAddress = usable / portsPer;
        return null;
    }

    /// <summary>The subscriber number of inside address <paramref name="inside"/> (network order), or -1 outside every prefix.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public long IndexOf(uint inside)
    {
        uint h = Ipv4.ToHostOrder(inside);
        for (int j = 0; j < _baseHost.Length; j++)
        {
            if ((h & _maskHost[j]) == _baseHost[j])
            {
                return _offset[j] + ((h - _baseHost[j]) >> _hostBits);
            }
        }
        return -1;
    }

    /// <summary>
    /// Forward lookup: the range of the subscriber <paramref name="inside"/> (any of its addresses,
    /// network order) belongs to; false when it lies in no <c>nat.deterministic.inside</c> prefix.
    /// </summary>
    public bool TryForward(uint inside, out DeterministicRange range)
    {
        long i = IndexOf(inside);
        if (i < 0)
        {
            range = default;
            return false;
        }
        range = RangeAt(i);
        return true;
    }

    /// <summary>
    /// Reverse lookup: the subscriber holding external <paramref name="external"/> (network order)
    /// port <paramref name="port"/> (host order); false for an address outside the pool or a port in
    /// no subscriber's range (below the first usable port, in the remainder at the top of an address,
    /// or on an address beyond the last subscriber).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TryReverse(uint external, int port, out long index)
    {
        index = -1;
        if (port < FirstPort || port > LastPort || !_poolIndex.TryGetValue(external, out int a))
        {
            return false;
        }
        int slot = (port - FirstPort) / PortsPerSubscriber;
        if (slot >= SubscribersPerAddress)
        {
            return false;
        }
        long i = (long)a * SubscribersPerAddress + slot;
        if (i >= Subscribers)
        {
            return false;
        }
        index = i;
        return true;
    }

    /// <summary>As <see cref="TryReverse(uint, int, out long)"/>, with the subscriber's whole range.</summary>
    public bool TryReverse(uint external, int port, out DeterministicRange range)
    {
        if (!TryReverse(external, port, out long i))
        {
            range = default;
            return false;
        }
        range = RangeAt(i);
        return true;
    }

    /// <summary>The subscriber (first address, network order) numbered <paramref name="index"/> (0..<see cref="Subscribers"/>-1).</summary>
    /// <exception cref="ArgumentOutOfRangeException">No such subscriber.</exception>
    public uint SubscriberAt(long index)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(index, Subscribers);
        int j = _offset.Length - 1;
        while (_offset[j] > index)
        {
            j--;
        }
        return Ipv4.FromHostOrder(_baseHost[j] + (uint)((index - _offset[j]) << _hostBits));
    }

    /// <summary>The range of subscriber number <paramref name="index"/>.</summary>
    /// <exception cref="ArgumentOutOfRangeException">No such subscriber.</exception>
    public DeterministicRange RangeAt(long index)
    {
        uint subscriber = SubscriberAt(index);
        int a = (int)(index / SubscribersPerAddress);
        int low = FirstPort + (int)(index % SubscribersPerAddress) * PortsPerSubscriber;
        return new DeterministicRange(index, subscriber, SubscriberPrefix, _pool[a], a, low, low + PortsPerSubscriber - 1);
    }

    /// <summary>Every subscriber's range, in subscriber order (for <c>natd lookup --table</c>).</summary>
    public IEnumerable<DeterministicRange> Table()
    {
        for (long i = 0; i < Subscribers; i++)
        {
            yield return RangeAt(i);
        }
    }
}
