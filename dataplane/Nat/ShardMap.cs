using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using Natd.Dataplane.Packets;
using Natd.Dataplane.Sessions;

namespace Natd.Dataplane.Nat;

/// <summary>
/// The one answer to "which shard owns this?" (docs/architecture.md, "Shards"), from the configuration and the
/// shard count alone, so the pollers' steering, each engine's port allocator and hairpin, and the
/// daemon's snapshot restore can never disagree:
/// <list type="bullet">
/// <item>an inside host (subscriber): the hash of its address, so all its sessions live in one shard;
/// a port forward's backend: shard 0, where forwards live;</item>
/// <item>an external port (or ICMP identifier): <c>port % shards</c>, the slice that shard's
/// <see cref="PortAllocator"/> hands out, so a reply's owner is read off its destination port;
/// with deterministic allocation (RFC 7422) a subscriber's range is contiguous, so the owner of a
/// port in a range is the owner of the subscriber <see cref="DeterministicMap.TryReverse(uint, int, out long)"/>
/// names, and a port in no range keeps <c>port % shards</c>;</item>
/// <item>port forwards, port-less protocols (GRE, ESP, AH: IPsec and PPTP state), protocol forwards,
/// port-trigger traffic and, with IPsec masquerading on, ISAKMP (UDP 500 to 500 inside, UDP to port
/// 500 of an own address outside): <see cref="PortLessShard"/> (0);</item>
/// <item>replies to flows a rule accepted untranslated: the inside destination's hash;</item>
/// <item>fragments: from inside the inside host's; from outside the datagram's meeting shard
/// (<see cref="OwnerOfDatagram"/>), which hands them to the first fragment's owner;</item>
/// <item>everything else (ARP, natd's own addresses, malformed frames): -1, "whoever received it".</item>
/// </list>
/// Reads only; safe to share between threads. Replaced whole when the configuration changes.
/// </summary>
public sealed class ShardMap
{
    /// <summary>The steering seed live pollers use: fixed, so a subscriber lands on the same shard after a restart, where its restored ports belong.</summary>
    public const ulong DefaultSeed = 0x9E3779B97F4A7C15UL;

    /// <summary>The shard that keeps forwards and port-less state (IPsec, GRE, protocol forwards, port triggers).</summary>
    public const int PortLessShard = 0;

    private readonly int _shards;
    private readonly NatSettings _settings;
    private readonly CgnatSettings _cgnat;
    private readonly HashSet<uint> _own;
    private readonly HashSet<uint> _backends;
    private readonly ulong _seed;
    private readonly bool _hasTriggers;
    private readonly bool _isakmp;
    private readonly DeterministicMap? _deterministic;
    private static readonly ushort IsakmpRaw = FlowKey.PortToRaw(NatEngine.IsakmpPort);

    /// <summary>Creates the map of <paramref name="shards"/> shards (1 or more) for <paramref name="settings"/>, hashing inside hosts with <paramref name="seed"/>.</summary>
    /// <exception cref="ArgumentOutOfRangeException">shards is below 1.</exception>
    public ShardMap(NatSettings settings, int shards, ulong seed = DefaultSeed)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(shards, 1);
        _shards = shards;
        _settings = settings;
        _cgnat = settings.Cgnat;
        _seed = seed;
        _isakmp = settings.Algs.Ipsec.Enabled;
        _own = [.. settings.Pool, settings.Inside.Address.Address, settings.Outside.Address.Address];
        _backends = [];
        _hasTriggers = settings.Algs.Triggers.Count > 0;
        _deterministic = shards > 1 ? DeterministicMap.For(settings) : null;
        foreach (var f in settings.Forwards)
        {
            foreach (var b in f.Backends)
            {
                _backends.Add(settings.Cgnat.SubscriberOf(b.Key)); // the backend's whole subscriber: one shard, one range
            }
        }
    }

    /// <summary>Shards.</summary>
    public int Shards => _shards;

    /// <summary>The seed inside hosts are hashed with.</summary>
    public ulong Seed => _seed;

    /// <summary>
    /// The owner of external port (or ICMP identifier) <paramref name="port"/> (host order) among
    /// <paramref name="shards"/> shards: its allocator's slice. <see cref="PortAllocator"/> gives shard
    /// k exactly the ports this maps to k.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int OwnerOfPort(int port, int shards) => port % shards;

    /// <summary>
    /// The shard whose <see cref="PortAllocator"/> may hand out external port <paramref name="port"/>
    /// (host order): <see cref="OwnerOfPort"/>, or -1 ("any") with deterministic allocation, where
    /// only a subscriber's owner ever allocates in its range, so no shard pre-marks another's ports.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public int OwnerOfExternalPort(int port) => _deterministic is not null ? -1 : OwnerOfPort(port, _shards);

    /// <summary>
    /// Entries of the IPsec masquerading tables (ESP SPIs, ISAKMP cookies) of <paramref name="shard"/>:
    /// shard 0 holds them all (1/16 of <paramref name="maxSessions"/>, 64..4096), the others a token table.
    /// </summary>
    public static int IpsecCapacity(int shard, int maxSessions) => shard == PortLessShard ? Math.Clamp(maxSessions / 16, 64, 4096) : 16;

    /// <summary>
    /// The shard owning an inside host (address network order): the owner of its subscriber
    /// (<see cref="CgnatSettings.SubscriberOf"/>: the address itself with <c>nat.subscriber-prefix</c> 32),
    /// so every host of a subscriber shares its shard (and a deterministic range): shard 0 for the
    /// subscriber of a forward's backend, else the hash of the subscriber.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public int OwnerOfInside(uint insideAddress)
    {
        if (_shards == 1)
        {
            return PortLessShard;
        }
        uint subscriber = _settings.Cgnat.SubscriberOf(insideAddress);
        return _backends.Count > 0 && _backends.Contains(subscriber) ? PortLessShard
            : (int)(new FlowKey(subscriber, 0, 0, 0, 0).Hash(_seed) % (uint)_shards);
    }

    /// <summary>
    /// The owner of a TCP or UDP packet arriving from outside (or hairpinned) to natd's address
    /// <paramref name="destination"/> (network order) and port <paramref name="destinationPortRaw"/>
    /// (network order): shard 0 for a forward, ISAKMP with IPsec masquerading on, or trigger traffic;
    /// else the owner of the port.
    /// </summary>
    public int OwnerOfArrival(byte protocol, uint destination, ushort destinationPortRaw)
    {
        if (_shards == 1)
        {
            return PortLessShard;
        }
        if (IsForward(protocol, destination, FlowKey.PortToHost(destinationPortRaw)) || (_isakmp && protocol == IpProtocol.Udp && destinationPortRaw == IsakmpRaw)
            || (_hasTriggers && IsTriggerTraffic(protocol, destinationPortRaw, destinationPortRaw)))
        {
            return PortLessShard;
        }
        return PortOwner(destination, destinationPortRaw);
    }

    /// <summary>
    /// The owner of a session (a restored snapshot record): port-less protocols shard 0; a forward's
    /// session shard 0; any other the owner of its inside host, who allocated its external port.
    /// </summary>
    public int OwnerOfSession(byte protocol, SessionOrigin origin, uint insideAddress)
        => protocol is IpProtocol.Tcp or IpProtocol.Udp or IpProtocol.Icmp
            ? (origin == SessionOrigin.Forward ? PortLessShard : OwnerOfInside(insideAddress))
            : PortLessShard;

    /// <summary>The owner of a saved session (see <see cref="OwnerOfSession"/>).</summary>
    public int OwnerOf(SessionRecord record) => OwnerOfSession(record.Protocol, record.Origin, record.InsideAddress);

    /// <summary>
    /// The owner of an ALG expectation: an inbound one (a connection expected on external
    /// <paramref name="externalPort"/>, host order, of <paramref name="external"/>) is the arrival's
    /// owner; an outbound one (expected from <paramref name="inside"/>) the inside host's.
    /// </summary>
    public int OwnerOfExpectation(bool inbound, byte protocol, uint external, ushort externalPort, uint inside)
        => inbound ? OwnerOfArrival(protocol, external, FlowKey.PortToRaw(externalPort)) : OwnerOfInside(inside);

    /// <summary>The owning shard of <paramref name="frame"/> received on <paramref name="ingress"/>, or -1 for "whoever received it".</summary>
    public int Owner(ReadOnlySpan<byte> frame, Side ingress)
    {
        if (_shards == 1)
        {
            return -1;
        }
        FrameParser.Parse(frame, ingress, 0, out ParsedFrame p);
        return Owner(p, frame);
    }

    /// <summary>
    /// The owning shard of a frame already parsed (<see cref="FrameParser.Parse"/>), or -1 for
    /// "whoever received it" (one shard, ARP, or a frame the receiver drops as malformed).
    /// <paramref name="frame"/> is read only for an ICMP error's embedded header.
    /// </summary>
    public int Owner(in ParsedFrame p, ReadOnlySpan<byte> frame)
    {
        if (_shards == 1 || !p.IsIpv4 || p.L4Drop != ParsedFrame.None)
        {
            return -1;
        }
        if (p.IsFragment)
        {
            // Only the first fragment has ports. From inside the owner needs none; from outside all
            // fragments of a datagram meet at one shard, which learns the owner from the first.
            return p.Ingress == Side.Inside ? OwnerOfInside(p.Source)
                : _own.Contains(p.Destination) ? OwnerOfDatagram(p) : OwnerOfInside(p.Destination);
        }
        return OwnerOfFlow(p, frame);
    }

    /// <summary>
    /// The shard where every fragment of an inbound datagram (<see cref="ParsedFrame.IsFragment"/>)
    /// meets: a hash of (source, destination, IP identification, protocol), which every fragment
    /// carries. That shard's <see cref="FragmentTable"/> holds the fragments until the first one
    /// names the flow's owner (<see cref="OwnerOfFlow"/>), then hands them all there in order.
    /// </summary>
    public int OwnerOfDatagram(in ParsedFrame p)
        => _shards == 1 ? PortLessShard
            : (int)(new FlowKey(p.Source, p.Destination, p.FragmentId, 0, p.Protocol).Hash(_seed) % (uint)_shards);

    /// <summary>
    /// The owner of a frame's flow read off its transport header (a whole datagram or a first
    /// fragment), or -1 for "whoever received it"; the rules of <see cref="Owner(in ParsedFrame, ReadOnlySpan{byte})"/>
    /// without the fragment steering.
    /// </summary>
    public int OwnerOfFlow(in ParsedFrame p, ReadOnlySpan<byte> frame)
    {
        if (_shards == 1 || !p.IsIpv4 || p.L4Drop != ParsedFrame.None)
        {
            return -1;
        }
        byte proto = p.Protocol;
        bool ported = proto is IpProtocol.Tcp or IpProtocol.Udp or IpProtocol.Icmp;
        if (p.Ingress == Side.Inside)
        {
            if (!ported || (_isakmp && proto == IpProtocol.Udp && p.Key.SourcePort == IsakmpRaw && p.Key.DestinationPort == IsakmpRaw))
            {
                return PortLessShard; // ESP/ISAKMP state (IPsec masquerading) lives in shard 0
            }
            if (_hasTriggers && proto != IpProtocol.Icmp && IsTriggerTraffic(proto, p.Key.SourcePort, p.Key.DestinationPort))
            {
                return PortLessShard;
            }
            return OwnerOfInside(p.Source);
        }
        if (!_own.Contains(p.Destination))
        {
            return ported ? OwnerOfInside(p.Destination) : -1; // an accepted (untranslated) flow's reply
        }
        if (!ported)
        {
            return PortLessShard;
        }
        if (proto == IpProtocol.Icmp)
        {
            if (p.IcmpType == Icmp.EchoReply)
            {
                return PortOwner(p.Destination, p.Key.DestinationPort);
            }
            if (p.InnerOffset < 0)
            {
                return -1;
            }
            ReadOnlySpan<byte> emb = frame[p.InnerOffset..];
            ReadOnlySpan<byte> el4 = emb[((emb[0] & 0x0F) * 4)..];
            return emb[9] switch
            {
                IpProtocol.Tcp or IpProtocol.Udp => PortOwner(p.Destination, Checksum.ReadRaw16(el4, 0)),
                IpProtocol.Icmp => PortOwner(p.Destination, Checksum.ReadRaw16(el4, Icmp.IdentifierOffset)),
                _ => -1,
            };
        }
        return OwnerOfArrival(proto, p.Destination, p.Key.DestinationPort);
    }

    /// <summary>
    /// Port-trigger traffic lives in shard 0 (NatEngine.Triggers): a connection to a trigger port,
    /// and anything from or to a port of an opened range. Ports raw (network order).
    /// </summary>
    private bool IsTriggerTraffic(byte proto, ushort sourcePortRaw, ushort destinationPortRaw)
    {
        ushort sport = FlowKey.PortToHost(sourcePortRaw), dport = FlowKey.PortToHost(destinationPortRaw);
        foreach (var t in _settings.Algs.Triggers)
        {
            if ((t.TriggerProtocol == proto && t.TriggerPorts.Contains(dport))
                || (t.OpenProtocol == proto && (t.OpenPorts.Contains(sport) || t.OpenPorts.Contains(dport))))
            {
                return true;
            }
        }
        return false;
    }

    /// <summary>The owner of external <paramref name="external"/> (network order) port <paramref name="rawPort"/> (network order).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private int PortOwner(uint external, ushort rawPort)
    {
        int port = FlowKey.PortToHost(rawPort);
        if (_deterministic is not null && _deterministic.TryReverse(external, port, out long subscriber))
        {
            return OwnerOfInside(_deterministic.SubscriberAt(subscriber));
        }
        return OwnerOfPort(port, _shards);
    }

    private bool IsForward(byte proto, uint dst, ushort port)
    {
        foreach (var f in _settings.Forwards)
        {
            if (f.Protocol == proto && f.ExternalAddress == dst && f.ExternalPorts.Contains(port))
            {
                return true;
            }
        }
        return false;
    }
}
