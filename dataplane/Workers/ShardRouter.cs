using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using Natd.Dataplane.Nat;
using Natd.Dataplane.Packets;
using Natd.Dataplane.Sessions;

namespace Natd.Dataplane.Workers;

/// <summary>
/// Decides which shard owns a frame (DESIGN.md section 5), from the frame alone and the
/// configuration, so any poller can steer what the device hashed to it:
/// <list type="bullet">
/// <item>inside to outside: the inside source address's hash, so a subscriber's sessions all live in one shard;</item>
/// <item>outside to inside, to a pool address: the destination port (or ICMP identifier, or the
/// quoted source port of an ICMP error) modulo the shard count, the slice that allocated it;</item>
/// <item>port forwards, their backends, port-less protocols, protocol forwards, port-trigger traffic and, with IPsec
/// masquerading on, ISAKMP (UDP 500 to 500 inside, UDP to port 500 of an own address outside): shard 0;</item>
/// <item>replies to flows a rule accepted untranslated: the inside destination's hash;</item>
/// <item>everything else (ARP, natd's own addresses, malformed frames): the receiving poller.</item>
/// </list>
/// Reads only; safe to share between pollers. Replaced whole when the configuration changes.
/// </summary>
public sealed class ShardRouter
{
    private readonly int _shards;
    private readonly NatSettings _settings;
    private readonly HashSet<uint> _own;
    private readonly HashSet<uint> _backends;
    private readonly ulong _seed;
    private readonly bool _hasTriggers;
    private readonly bool _isakmp;
    private static readonly ushort IsakmpRaw = FlowKey.PortToRaw(NatEngine.IsakmpPort);

    /// <summary>Creates a router for <paramref name="shards"/> shards.</summary>
    public ShardRouter(NatSettings settings, int shards, ulong seed)
    {
        _shards = shards;
        _settings = settings;
        _seed = seed;
        _isakmp = settings.Algs.Ipsec.Enabled;
        _own = [.. settings.Pool, settings.Inside.Address.Address, settings.Outside.Address.Address];
        _backends = [];
        _hasTriggers = settings.Algs.Triggers.Count > 0;
        foreach (var f in settings.Forwards)
        {
            foreach (var b in f.Backends)
            {
                _backends.Add(b.Key);
            }
        }
    }

    /// <summary>Shards.</summary>
    public int Shards => _shards;

    /// <summary>The shard owning an inside host (hash of its address).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public int OwnerOfInside(uint insideAddress)
        => _backends.Count > 0 && _backends.Contains(insideAddress) ? 0 : (int)(new FlowKey(insideAddress, 0, 0, 0, 0).Hash(_seed) % (uint)_shards);

    /// <summary>The owning shard of <paramref name="frame"/> received on <paramref name="ingress"/>, or -1 for "whoever received it".</summary>
    public int Owner(ReadOnlySpan<byte> frame, Side ingress)
    {
        if (_shards == 1 || frame.Length < 34 || BinaryPrimitives.ReadUInt16BigEndian(frame[12..]) != EtherType.Ipv4)
        {
            return -1;
        }
        ReadOnlySpan<byte> ip = frame[14..];
        int ihl = (ip[0] & 0x0F) * 4;
        if (ihl < 20 || ip.Length < ihl + 8)
        {
            return -1;
        }
        byte proto = ip[9];
        uint src = Checksum.ReadRaw32(ip, 12), dst = Checksum.ReadRaw32(ip, 16);
        ReadOnlySpan<byte> l4 = ip[ihl..];
        bool ported = proto is IpProtocol.Tcp or IpProtocol.Udp or IpProtocol.Icmp;
        if (ingress == Side.Inside)
        {
            if (!ported || (_isakmp && proto == IpProtocol.Udp && Checksum.ReadRaw16(l4, 0) == IsakmpRaw && Checksum.ReadRaw16(l4, 2) == IsakmpRaw))
            {
                return 0; // ESP/ISAKMP state (IPsec masquerading) lives in shard 0
            }
            if (_hasTriggers && proto != IpProtocol.Icmp && IsTriggerTraffic(proto, Checksum.ReadRaw16(l4, 0), Checksum.ReadRaw16(l4, 2)))
            {
                return 0;
            }
            return OwnerOfInside(src);
        }
        if (!_own.Contains(dst))
        {
            return ported ? OwnerOfInside(dst) : -1; // an accepted (untranslated) flow's reply
        }
        if (!ported)
        {
            return 0;
        }
        if (proto == IpProtocol.Icmp)
        {
            byte type = l4[0];
            if (type == Icmp.EchoReply)
            {
                return PortOwner(Checksum.ReadRaw16(l4, Icmp.IdentifierOffset));
            }
            if (!Icmp.IsError(type) || l4.Length < 8 + 20)
            {
                return -1;
            }
            ReadOnlySpan<byte> emb = l4[8..];
            int eihl = (emb[0] & 0x0F) * 4;
            if (eihl < 20 || emb.Length < eihl + 8)
            {
                return -1;
            }
            ReadOnlySpan<byte> el4 = emb[eihl..];
            return emb[9] switch
            {
                IpProtocol.Tcp or IpProtocol.Udp => PortOwner(Checksum.ReadRaw16(el4, 0)),
                IpProtocol.Icmp => PortOwner(Checksum.ReadRaw16(el4, Icmp.IdentifierOffset)),
                _ => -1,
            };
        }
        ushort dport = Checksum.ReadRaw16(l4, 2);
        if (IsForward(proto, dst, FlowKey.PortToHost(dport)) || (_isakmp && proto == IpProtocol.Udp && dport == IsakmpRaw)
            || (_hasTriggers && IsTriggerTraffic(proto, dport, dport)))
        {
            return 0;
        }
        return PortOwner(dport);
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

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private int PortOwner(ushort rawPort) => FlowKey.PortToHost(rawPort) % _shards;

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
