using System.Buffers.Binary;
using Natd.Dataplane.Alg.Ipsec;
using Natd.Dataplane.Packets;
using Natd.Dataplane.Sessions;

namespace Natd.Dataplane.Nat;

public sealed partial class NatEngine
{
    /// <summary>ISAKMP's port (RFC 2408), kept as the source port when masquerading.</summary>
    public const ushort IsakmpPort = 500;

    private static readonly ushort IsakmpPortRaw = FlowKey.PortToRaw(IsakmpPort);

    /// <summary>Bytes of the ISAKMP header natd reads: initiator and responder cookies (RFC 2408 section 3.1).</summary>
    private const int IsakmpCookiesLength = 16;

    /// <summary>Bytes of the ESP header natd reads: SPI and sequence number (RFC 4303 section 2).</summary>
    private const int EspHeaderLength = 8;

    private readonly IpsecMasq _ipsec;

    /// <summary>
    /// IPsec masquerading state (ESP SPIs and ISAKMP cookies, VPN Masquerade HOWTO section 6). Lives
    /// in shard 0, where the router steers ESP, AH and UDP 500-to-500 traffic (other shards keep a
    /// token table). Owned by the engine's thread; its counts may be read elsewhere, a batch old.
    /// </summary>
    public IpsecMasq Ipsec => _ipsec;

    private static IpsecMasq NewIpsec(NatSettings settings, int shard, NatCounters counters)
        => new(settings.Algs.Ipsec, ShardMap.IpsecCapacity(shard, settings.MaxSessions), counters.Table);

    /// <summary>True when IPsec masquerading handles ESP, AH and ISAKMP.</summary>
    private bool IpsecOn => _settings.Algs.Ipsec.Enabled;

    /// <summary>Hands the reloaded IPsec settings to the state machine (timeouts apply at once).</summary>
    private void RefreshIpsec()
    {
        _ipsec.Settings = _settings.Algs.Ipsec;
    }

    /// <summary>Keeps UDP 500 on every pool address out of dynamic allocation, so inbound ISAKMP is never a session's.</summary>
    private void ReserveIsakmpPorts()
    {
        if (!IpsecOn)
        {
            return;
        }
        for (int a = 0; a < _addresses.Pool.Length; a++)
        {
            // In a shard that does not own port 500 it already looks taken: nothing to do.
            Table.Ports.TryReserve(a, SessionTable.ProtocolClass(IpProtocol.Udp), IsakmpPort);
        }
    }

    /// <summary>
    /// In2out ESP or AH with IPsec masquerading on, when the rules masquerade it (an accepting rule
    /// or an existing untranslated session leaves it to the ordinary port-less path). Returns
    /// false when the ordinary path should handle it.
    /// </summary>
    private bool TryIpsecIn2Out(Span<byte> slot, ref int length, Span<byte> ipSpan, uint nextHop, out Verdict verdict)
    {
        verdict = Verdict.Drop;
        var ip = new Ipv4Header(ipSpan);
        byte proto = ip.Protocol;
        uint src = ip.Source, dst = ip.Destination;
        var key = new FlowKey(src, dst, 0, 0, proto);
        if (LookupIn2Out(key) >= 0 || DecideQuietly(key) != RuleAction.Masquerade)
        {
            return false; // accepted untranslated, or denied/rejected: the ordinary path counts and answers
        }
        if (proto == IpProtocol.Ah)
        {
            verdict = Drop(DropReason.AhRefused);
            return true;
        }
        int ihl = ip.HeaderLength;
        if (ipSpan.Length < ihl + EspHeaderLength)
        {
            verdict = Drop(DropReason.Truncated);
            return true;
        }
        uint spi = BinaryPrimitives.ReadUInt32BigEndian(ipSpan[ihl..]);
        uint ext = _addresses.Pool[_addresses.PoolIndexFor(src)];
        IpsecVerdict v = _ipsec.EspOut(src, dst, spi, ext, _now);
        if (v != IpsecVerdict.Forward)
        {
            verdict = Drop(IpsecDrop(v));
            return true;
        }
        ip.Source = ext;
        ip.ChecksumRaw = Checksum.Update(ip.ChecksumRaw, src, ext);
        ip.DecrementTtl();
        Counters.PacketsIn2Out++;
        Counters.BytesIn2Out += ipSpan.Length;
        verdict = SendTo(Side.Outside, slot[..length], nextHop);
        return true;
    }

    /// <summary>
    /// Out2in ESP or AH to a pool address with IPsec masquerading on and no protocol forward or
    /// untranslated session for it. Returns false when the ordinary path should handle it.
    /// </summary>
    private bool TryIpsecOut2In(Span<byte> slot, ref int length, Span<byte> ipSpan, int ihl, out Verdict verdict)
    {
        verdict = Verdict.Drop;
        var ip = new Ipv4Header(ipSpan);
        byte proto = ip.Protocol;
        uint src = ip.Source, dst = ip.Destination;
        if (_addresses.PoolIndexOf(dst) < 0 || FindProtocolForwardByExternal(proto, dst) >= 0
            || LookupOut2In(new FlowKey(src, dst, 0, 0, proto)) >= 0)
        {
            return false;
        }
        if (proto == IpProtocol.Ah)
        {
            verdict = Drop(DropReason.AhRefused);
            return true;
        }
        if (ipSpan.Length < ihl + EspHeaderLength)
        {
            verdict = Drop(DropReason.Truncated);
            return true;
        }
        uint spi = BinaryPrimitives.ReadUInt32BigEndian(ipSpan[ihl..]);
        IpsecVerdict v = _ipsec.EspIn(src, dst, spi, _now, out uint inside);
        if (v != IpsecVerdict.Forward)
        {
            verdict = Drop(IpsecDrop(v));
            return true;
        }
        if (ip.Ttl <= 1)
        {
            verdict = TimeExceeded(slot, ref length, Side.Outside, ipSpan, ihl);
            return true;
        }
        ip.Destination = inside;
        ip.ChecksumRaw = Checksum.Update(ip.ChecksumRaw, dst, inside);
        ip.DecrementTtl();
        Counters.PacketsOut2In++;
        Counters.BytesOut2In += ipSpan.Length;
        verdict = SendTo(Side.Inside, slot[..length], _addresses.NextHopInside(inside));
        return true;
    }

    /// <summary>
    /// In2out UDP from port 500 to port 500 (ISAKMP) with IPsec masquerading on and a masquerading
    /// rule: keeps source port 500 and records the cookies for the replies. False when the
    /// ordinary UDP path should handle it (accepted, denied or an existing session).
    /// </summary>
    private bool TryIsakmpIn2Out(Span<byte> slot, ref int length, Span<byte> ipSpan, int ihl, in FlowKey key, uint nextHop, out Verdict verdict)
    {
        verdict = Verdict.Drop;
        if (LookupIn2Out(key) >= 0 || DecideQuietly(key) != RuleAction.Masquerade)
        {
            return false;
        }
        Span<byte> l4 = ipSpan[ihl..];
        if (l4.Length < Udp.Length + IsakmpCookiesLength)
        {
            verdict = Drop(DropReason.Truncated);
            return true;
        }
        var ip = new Ipv4Header(ipSpan);
        uint src = ip.Source;
        ushort sportRaw = key.SourcePort;
        ulong icookie = BinaryPrimitives.ReadUInt64BigEndian(l4[Udp.Length..]);
        ulong rcookie = BinaryPrimitives.ReadUInt64BigEndian(l4[(Udp.Length + 8)..]);
        uint ext = _addresses.Pool[_addresses.PoolIndexFor(src)];
        IpsecVerdict v = _ipsec.IsakmpOut(src, FlowKey.PortToHost(sportRaw), key.Destination, FlowKey.PortToHost(key.DestinationPort),
            ext, icookie, rcookie, _now, out ushort extPort);
        if (v != IpsecVerdict.Forward)
        {
            verdict = Drop(IpsecDrop(v));
            return true;
        }
        ushort extPortRaw = FlowKey.PortToRaw(extPort);
        ip.Source = ext;
        ip.ChecksumRaw = Checksum.Update(ip.ChecksumRaw, src, ext);
        ip.DecrementTtl();
        RewriteUdpPort(l4, 0, Checksum.Delta(src, ext, sportRaw, extPortRaw), extPortRaw);
        Counters.PacketsIn2Out++;
        Counters.BytesIn2Out += ipSpan.Length;
        verdict = SendTo(Side.Outside, slot[..length], nextHop);
        return true;
    }

    /// <summary>
    /// Out2in UDP to port 500 of a pool address with IPsec masquerading on and no port forward
    /// there: routed by the ISAKMP cookies. False when the ordinary path should handle it.
    /// </summary>
    private bool TryIsakmpOut2In(Span<byte> slot, ref int length, Span<byte> ipSpan, int ihl, in FlowKey key, out Verdict verdict)
    {
        verdict = Verdict.Drop;
        if (_addresses.PoolIndexOf(key.Destination) < 0 || FindForward(IpProtocol.Udp, key.Destination, key.DestinationPort) >= 0
            || LookupOut2In(key) >= 0)
        {
            return false;
        }
        Span<byte> l4 = ipSpan[ihl..];
        if (l4.Length < Udp.Length + IsakmpCookiesLength)
        {
            verdict = Drop(DropReason.Truncated);
            return true;
        }
        ulong icookie = BinaryPrimitives.ReadUInt64BigEndian(l4[Udp.Length..]);
        ulong rcookie = BinaryPrimitives.ReadUInt64BigEndian(l4[(Udp.Length + 8)..]);
        IpsecVerdict v = _ipsec.IsakmpIn(key.Source, FlowKey.PortToHost(key.SourcePort), key.Destination, FlowKey.PortToHost(key.DestinationPort),
            icookie, rcookie, _now, out uint inside, out ushort insidePort);
        if (v != IpsecVerdict.Forward)
        {
            verdict = Drop(IpsecDrop(v));
            return true;
        }
        var ip = new Ipv4Header(ipSpan);
        if (ip.Ttl <= 1)
        {
            verdict = TimeExceeded(slot, ref length, Side.Outside, ipSpan, ihl);
            return true;
        }
        ushort insidePortRaw = FlowKey.PortToRaw(insidePort);
        ip.Destination = inside;
        ip.ChecksumRaw = Checksum.Update(ip.ChecksumRaw, key.Destination, inside);
        ip.DecrementTtl();
        RewriteUdpPort(l4, 2, Checksum.Delta(key.Destination, inside, key.DestinationPort, insidePortRaw), insidePortRaw);
        Counters.PacketsOut2In++;
        Counters.BytesOut2In += ipSpan.Length;
        verdict = SendTo(Side.Inside, slot[..length], _addresses.NextHopInside(inside));
        return true;
    }

    /// <summary>Writes a UDP port and patches the checksum (0, "none", stays 0; a result of 0 is sent as 0xFFFF, RFC 768).</summary>
    private static void RewriteUdpPort(Span<byte> l4, int portOffset, ushort delta, ushort newPortRaw)
    {
        Checksum.WriteRaw16(l4, portOffset, newPortRaw);
        ushort c = Checksum.ReadRaw16(l4, Udp.ChecksumOffset);
        if (c == 0)
        {
            return;
        }
        c = Checksum.ApplyDelta(c, delta);
        Checksum.WriteRaw16(l4, Udp.ChecksumOffset, c == 0 ? (ushort)0xFFFF : c);
    }

    private static DropReason IpsecDrop(IpsecVerdict v) => v switch
    {
        IpsecVerdict.ZeroSpi => DropReason.EspZeroSpi,
        IpsecVerdict.Serialised => DropReason.EspSerialised,
        IpsecVerdict.Refused => DropReason.EspRefused,
        IpsecVerdict.RemoteInUse => DropReason.EspRemoteInUse,
        IpsecVerdict.NoAssociation => DropReason.EspNoAssociation,
        IpsecVerdict.IsakmpNoEntry => DropReason.IsakmpNoEntry,
        IpsecVerdict.IsakmpCookieCollision => DropReason.IsakmpCookieCollision,
        _ => DropReason.SessionLimit,
    };

    /// <summary>ESP and ISAKMP entries as session rows for natctl (control path: allocates).</summary>
    private void CollectIpsecSessions(List<SessionInfo> into, long nowMs)
    {
        var esp = new List<EspEntryInfo>();
        _ipsec.CollectEsp(esp, nowMs);
        foreach (var e in esp)
        {
            string state = e.State.ToString().ToLowerInvariant() + string.Create(System.Globalization.CultureInfo.InvariantCulture,
                $" spi {e.OutSpi:x8}/{e.InSpi:x8}");
            into.Add(new SessionInfo("esp", e.Inside, 0, e.External, 0, e.Remote, 0, e.ExpiresInSeconds, state,
                e.PacketsOut, e.PacketsIn, 0, 0));
        }
        var isakmp = new List<IsakmpEntryInfo>();
        _ipsec.CollectIsakmp(isakmp, nowMs);
        foreach (var x in isakmp)
        {
            string state = string.Create(System.Globalization.CultureInfo.InvariantCulture,
                $"cookies {x.InitiatorCookie:x16}/{x.ResponderCookie:x16}");
            into.Add(new SessionInfo("isakmp", x.Inside, x.InsidePort, x.External, x.ExternalPort, x.Remote, x.RemotePort,
                x.ExpiresInSeconds, state, x.PacketsOut, x.PacketsIn, 0, 0));
        }
    }
}
