using System.Runtime.CompilerServices;
using Natd.Dataplane.Io;
using Natd.Dataplane.Packets;
using Natd.Dataplane.Sessions;

namespace Natd.Dataplane.Nat;

/// <summary>A side of the gateway.</summary>
public enum Side : byte
{
    /// <summary>The inside (subscriber) network.</summary>
    Inside,
    /// <summary>The outside (Internet) network.</summary>
    Outside,
}

/// <summary>What to do with a processed frame.</summary>
public enum Verdict : byte
{
    /// <summary>Dropped; <see cref="NatEngine.LastDrop"/> says why (already counted).</summary>
    Drop,
    /// <summary>Transmit the rewritten frame on the inside port.</summary>
    ToInside,
    /// <summary>Transmit the rewritten frame on the outside port.</summary>
    ToOutside,
    /// <summary>Handled with nothing to transmit now (ARP learned, or frame held until its next hop resolves).</summary>
    Consumed,
}

/// <summary>Where an engine sends frames it makes on its own (ARP requests, frames released from the ARP hold queue). Slow path only.</summary>
public interface IFrameSink
{
    /// <summary>Transmits <paramref name="frame"/> on <paramref name="side"/>; false when it could not be queued.</summary>
    bool Send(Side side, ReadOnlySpan<byte> frame);
}

/// <summary>Options of an engine that are not configuration: they depend on how it is driven.</summary>
public sealed record EngineOptions
{
    /// <summary>Accept frames whatever their destination MAC (replay of captures taken elsewhere).</summary>
    public bool Promiscuous { get; init; }

    /// <summary>
    /// Learn neighbours from IPv4 traffic as well as ARP: an on-link source teaches its MAC, and on the
    /// outside an off-link source teaches the gateway's. Meant for replay, where no ARP is answered.
    /// </summary>
    public bool LearnFromTraffic { get; init; }

    /// <summary>Seed for port randomisation and hashing; null draws from the OS CSPRNG (live use).</summary>
    public ulong? Seed { get; init; }

    /// <summary>ICMP errors natd may generate per second (token bucket, RFC 1812 4.3.2.8).</summary>
    public int IcmpErrorRate { get; init; } = 100;
}

/// <summary>
/// The NAT44 translator of one shard: classifies a frame, validates it (each failure a counted
/// <see cref="DropReason"/>), and applies NAPT in place: in2out masquerades the inside source,
/// out2in restores the inside destination, ICMP errors are translated with their embedded header
/// (RFC 5508), TTL is decremented (RFC 1812) and Ethernet addresses set for the egress side.
/// Sessions follow RFC 4787 (UDP), RFC 5382 and RFC 7857 (TCP), RFC 5508 (ICMP). Single
/// threaded: one poller owns an engine. No allocation, lock or exception per packet.
/// </summary>
public sealed partial class NatEngine
{
    private NatSettings _settings;
    private readonly EngineOptions _options;
    private readonly uint[] _pool;
    private readonly uint _insideAddress;
    private readonly uint _outsideAddress;
    private readonly Ipv4Prefix _insidePrefix;
    private readonly Ipv4Prefix _outsidePrefix;
    private readonly Ipv4Prefix[] _insideNetworks;
    private readonly ulong _seed;
    private IFrameSink? _sink;

    /// <summary>Creates an engine.</summary>
    /// <param name="settings">Configuration (immutable).</param>
    /// <param name="insideMac">Source MAC for frames sent inside.</param>
    /// <param name="outsideMac">Source MAC for frames sent outside.</param>
    /// <param name="options">Driving options; null for live defaults.</param>
    /// <exception cref="ArgumentException">Empty pool or impossible port range.</exception>
    public NatEngine(NatSettings settings, MacAddress insideMac, MacAddress outsideMac, EngineOptions? options = null)
    {
        _settings = settings;
        _options = options ?? new EngineOptions();
        if (settings.Pool.Count == 0)
        {
            throw new ArgumentException("the external address pool is empty", nameof(settings));
        }
        _pool = [.. settings.Pool];
        InsideMac = settings.Inside.Mac ?? insideMac;
        OutsideMac = settings.Outside.Mac ?? outsideMac;
        _insideAddress = settings.Inside.Address.Address;
        _outsideAddress = settings.Outside.Address.Address;
        _insidePrefix = settings.Inside.Address;
        _outsidePrefix = settings.Outside.Address;
        _insideNetworks = [.. settings.Inside.Networks];
        ulong seed = _options.Seed ?? BitConverter.ToUInt64(System.Security.Cryptography.RandomNumberGenerator.GetBytes(8));
        _seed = seed;
        var ports = new PortAllocator(_pool.Length, settings.PortMin, settings.PortMax, seed ^ 0x5DEECE66DUL);
        Table = new SessionTable(settings.MaxSessions, ports, seed);
        _icmpTokens = _options.IcmpErrorRate;
        foreach (var kv in settings.Inside.Neighbours)
        {
            _insideNeighbours[kv.Key] = kv.Value;
        }
        foreach (var kv in settings.Outside.Neighbours)
        {
            _outsideNeighbours[kv.Key] = kv.Value;
        }
    }

    /// <summary>The configuration this engine runs.</summary>
    public NatSettings Settings => _settings;

    /// <summary>MAC used as source inside.</summary>
    public MacAddress InsideMac { get; }

    /// <summary>MAC used as source outside.</summary>
    public MacAddress OutsideMac { get; }

    /// <summary>The session table (owned by this engine's thread).</summary>
    public SessionTable Table { get; }

    /// <summary>Counters (single writer: this engine's thread).</summary>
    public NatCounters Counters { get; } = new();

    /// <summary>Reason of the last <see cref="Verdict.Drop"/> returned by <see cref="Process"/>.</summary>
    public DropReason LastDrop { get; private set; }

    /// <summary>Sets where self-made frames go (ARP requests, released held frames).</summary>
    public void AttachSink(IFrameSink sink) => _sink = sink;

    /// <summary>
    /// Processes one received frame in place.
    /// </summary>
    /// <param name="slot">The frame's buffer; the frame is its first <paramref name="length"/> bytes and may grow up to the slot's size.</param>
    /// <param name="length">Frame length in bytes; updated to the length to transmit.</param>
    /// <param name="ingress">Side the frame arrived on.</param>
    /// <param name="flags">Receive flags (checksum offload state).</param>
    /// <param name="nowMs">Current time in milliseconds (monotonic, or capture time in replay), read once per batch.</param>
    /// <returns>Where the (rewritten) frame goes.</returns>
    public Verdict Process(Span<byte> slot, ref int length, Side ingress, FrameFlags flags, long nowMs)
    {
        _now = nowMs;
        Table.NowMs = nowMs;
        if ((uint)length > (uint)slot.Length || length < EthernetHeader.Length)
        {
            return Drop(DropReason.Truncated);
        }
        Span<byte> frame = slot[..length];
        var eth = new EthernetHeader(frame);
        MacAddress ourMac = ingress == Side.Inside ? InsideMac : OutsideMac;
        if (!_options.Promiscuous)
        {
            MacAddress dmac = eth.Destination;
            if (dmac != ourMac && dmac != MacAddress.Broadcast)
            {
                return Drop(DropReason.NotForUs);
            }
        }
        ushort etherType = eth.EtherType;
        if (etherType == EtherType.Arp)
        {
            return HandleArp(frame, ref length, ingress);
        }
        if (etherType != EtherType.Ipv4)
        {
            return Drop(DropReason.UnsupportedEthertype);
        }

        Span<byte> ipSpan = frame[EthernetHeader.Length..];
        if (ipSpan.Length < Ipv4Header.MinLength)
        {
            return Drop(DropReason.Truncated);
        }
        var ip = new Ipv4Header(ipSpan);
        if (ip.Version != 4)
        {
            return Drop(DropReason.BadVersion);
        }
        int ihl = ip.HeaderLength;
        if (ihl < Ipv4Header.MinLength || ihl > ipSpan.Length)
        {
            return Drop(DropReason.BadIhl);
        }
        int total = ip.TotalLength;
        if (total < ihl || total > ipSpan.Length)
        {
            return Drop(DropReason.BadTotalLength);
        }
        if (!Checksum.Verify(ipSpan[..ihl]))
        {
            return Drop(DropReason.BadIpChecksum);
        }
        // Ethernet padding is not part of the datagram: never checksum or forward it.
        length = EthernetHeader.Length + total;
        ipSpan = ipSpan[..total];
        uint src = ip.Source;
        uint dst = ip.Destination;
        if (IsMartian(src) || IsMartian(dst))
        {
            // Also multicast and broadcast destinations: natd never carries them across.
            return Drop(DropReason.Martian);
        }
        if (ip.IsFragment)
        {
            return Drop(DropReason.Fragment);
        }

        if (ingress == Side.Inside)
        {
            if (IsOwnAddress(dst))
            {
                return ToGateway(slot, ref length, ingress, ipSpan, ihl);
            }
            if (!InInsideNetworks(src))
            {
                return Drop(DropReason.NotFromInsideNetwork);
            }
            if (_options.LearnFromTraffic && _insidePrefix.Contains(src))
            {
                Learn(Side.Inside, src, eth.Source);
            }
            if (InInsideNetworks(dst) || _insidePrefix.Contains(dst))
            {
                // natd translates between inside and outside only; inside-to-inside is not its job
                // (and must never be masqueraded: the ipfwadm "-W" lesson).
                return Drop(DropReason.NoRoute);
            }
            if (ip.Ttl <= 1)
            {
                return TimeExceeded(slot, ref length, ingress, ipSpan, ihl);
            }
            return In2Out(slot, ref length, ipSpan, ihl, flags);
        }

        if (_options.LearnFromTraffic)
        {
            if (_outsidePrefix.Contains(src))
            {
                Learn(Side.Outside, src, eth.Source);
            }
            else if (_settings.Outside.Gateway != 0)
            {
                Learn(Side.Outside, _settings.Outside.Gateway, eth.Source);
            }
        }
        int poolIndex = PoolIndexOf(dst);
        if (poolIndex >= 0)
        {
            return Out2In(slot, ref length, ipSpan, ihl, flags);
        }
        if (IsOwnAddress(dst))
        {
            return ToGateway(slot, ref length, ingress, ipSpan, ihl);
        }
        return Drop(DropReason.NoRoute);
    }

    /// <summary>
    /// Swaps in new settings when only live-changeable parts differ (timeouts, mapping and filtering
    /// behaviour, checksum verification); timeouts take effect at the next expiry check, since
    /// expiry reads them at check time. Returns null when applied, else why not (the old settings stay).
    /// </summary>
    public string? UpdateSettings(NatSettings next)
    {
        NatSettings cur = _settings;
        if (!SameInterface(next.Inside, cur.Inside) || !SameInterface(next.Outside, cur.Outside) || !next.Pool.SequenceEqual(cur.Pool)
            || next.PortMin != cur.PortMin || next.PortMax != cur.PortMax || next.MaxSessions != cur.MaxSessions)
        {
            return "interfaces, pool, port range and session limit need a restart";
        }
        _settings = next;
        return null;
    }

    private static bool SameInterface(InterfaceSettings a, InterfaceSettings b)
        => a.Name == b.Name && a.Address == b.Address && a.Gateway == b.Gateway && a.Mac == b.Mac
           && a.Networks.SequenceEqual(b.Networks) && a.Neighbours.SequenceEqual(b.Neighbours);

    /// <summary>Deletes up to <paramref name="budget"/> expired sessions (a bounded slice, so forwarding never stalls).</summary>
    /// <returns>Sessions deleted.</returns>
    public int Sweep(long nowMs, int budget)
    {
        ExpireHeld(nowMs);
        return Table.Expire(nowMs, _settings.Timeouts, budget);
    }

    private long _now;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private Verdict Drop(DropReason reason)
    {
        LastDrop = reason;
        Counters.Drops[(int)reason]++;
        return Verdict.Drop;
    }

    private static bool IsMartian(uint src)
    {
        uint h = Ipv4.ToHostOrder(src);
        uint first = h >> 24;
        return first == 0 || first == 127 || first >= 224;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private int PoolIndexOf(uint address)
    {
        uint[] pool = _pool;
        for (int i = 0; i < pool.Length; i++)
        {
            if (pool[i] == address)
            {
                return i;
            }
        }
        return -1;
    }

    private bool IsOwnAddress(uint address)
        => address == _insideAddress || address == _outsideAddress || PoolIndexOf(address) >= 0;

    private bool InInsideNetworks(uint address)
    {
        var nets = _insideNetworks;
        for (int i = 0; i < nets.Length; i++)
        {
            if (nets[i].Contains(address))
            {
                return true;
            }
        }
        return false;
    }

    /// <summary>Paired pooling (RFC 4787 REQ-2): an inside address always maps to the same external address.</summary>
    private int PoolIndexFor(uint insideAddress)
        => _pool.Length == 1 ? 0 : (int)(new FlowKey(insideAddress, 0, 0, 0, 0).Hash(_seed) % (uint)_pool.Length);
}
