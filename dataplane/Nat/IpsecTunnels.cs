using System.Buffers.Binary;
using Natd.Dataplane.Alg.Ipsec;
using Natd.Dataplane.Packets;
using Natd.Dataplane.Sessions;

namespace Natd.Dataplane.Nat;

/// <summary>
/// IPsec masquerading as the VPN Masquerade HOWTO section 6 describes: ESP (RFC 4303) associated
/// by SPI, ISAKMP (RFC 2408, UDP 500 to 500) kept on source port 500 and routed back by its
/// cookies, AH refused (it authenticates the addresses NAT rewrites). Owns the state machine
/// (<see cref="Masq"/>: ESP associations and the ISAKMP cookie table, expired by the engine's sweep
/// through <see cref="IpsecMasq.Expire"/>). Each method handles the packet only when IPsec
/// masquerading applies to it and answers <see cref="TunnelVerdict.Pass"/> otherwise, so the
/// ordinary path handles accepted flows, existing sessions and forwards. ESP, AH and ISAKMP are
/// steered to shard 0 (<see cref="ShardMap"/>). Single threaded.
/// </summary>
internal sealed class IpsecTunnels
{
    /// <summary>Bytes of the ISAKMP header natd reads: initiator and responder cookies (RFC 2408 section 3.1).</summary>
    private const int IsakmpCookiesLength = 16;

    /// <summary>Bytes of the ESP header natd reads: SPI and sequence number (RFC 4303 section 2).</summary>
    private const int EspHeaderLength = 8;

    private readonly LiveSessions _sessions;
    private readonly RuleSet _rules;
    private readonly ForwardTable _forwards;
    private readonly NatCounters _counters;

    /// <summary>Creates the state, sized for <paramref name="shard"/> (<see cref="ShardMap.IpsecCapacity"/>).</summary>
    /// <param name="settings">The configuration (<c>algs.ipsec</c>, <c>limits.sessions</c>).</param>
    /// <param name="shard">This engine's shard index.</param>
    /// <param name="sessions">The shard's sessions (an existing untranslated session takes precedence).</param>
    /// <param name="rules">The rules (only a masquerading decision puts a flow here).</param>
    /// <param name="forwards">The forwards (a protocol or port forward takes precedence inbound).</param>
    /// <param name="counters">The shard's counters.</param>
    public IpsecTunnels(NatSettings settings, int shard, LiveSessions sessions, RuleSet rules, ForwardTable forwards, NatCounters counters)
    {
        Masq = new IpsecMasq(settings.Algs.Ipsec, ShardMap.IpsecCapacity(shard, settings.MaxSessions), counters.Table);
        _sessions = sessions;
        _rules = rules;
        _forwards = forwards;
        _counters = counters;
    }

    /// <summary>The ESP and ISAKMP state.</summary>
    public IpsecMasq Masq { get; }

    /// <summary>True when IPsec masquerading handles ESP, AH and ISAKMP.</summary>
    public bool On => Masq.Settings.Enabled;

    /// <summary>Hands the reloaded IPsec settings to the state machine (timeouts apply at once).</summary>
    public void Update(NatSettings s) => Masq.Settings = s.Algs.Ipsec;

    /// <summary>Keeps UDP 500 on every pool address (of <paramref name="poolSize"/>) out of dynamic allocation, so inbound ISAKMP is never a session's.</summary>
    public void ReservePorts(PortAllocator ports, int poolSize)
    {
        if (!On)
        {
            return;
        }
        for (int a = 0; a < poolSize; a++)
        {
            // In a shard that does not own port 500 it already looks taken: nothing to do.
            ports.TryReserve(a, SessionTable.ProtocolClass(IpProtocol.Udp), NatEngine.IsakmpPort);
        }
    }

    /// <summary>
    /// In2out ESP or AH when the rules masquerade it: ESP has its source set to
    /// <paramref name="external"/> (<see cref="TunnelVerdict.ToOutside"/>), AH is refused.
    /// <see cref="TunnelVerdict.Pass"/> for an accepted, denied or rejected flow, or an existing untranslated session.
    /// </summary>
    public TunnelVerdict EspIn2Out(Span<byte> ipSpan, uint external, ref PacketContext ctx)
    {
        var ip = new Ipv4Header(ipSpan);
        byte proto = ip.Protocol;
        uint src = ip.Source, dst = ip.Destination;
        var key = new FlowKey(src, dst, 0, 0, proto);
        if (_sessions.In2Out(key, ctx.NowMs) >= 0 || _rules.DecideQuietly(key) != RuleAction.Masquerade)
        {
            return TunnelVerdict.Pass; // accepted untranslated, or denied/rejected: the ordinary path counts and answers
        }
        if (proto == IpProtocol.Ah)
        {
            return Drop(ref ctx, DropReason.AhRefused);
        }
        int ihl = ip.HeaderLength;
        if (ipSpan.Length < ihl + EspHeaderLength)
        {
            return Drop(ref ctx, DropReason.Truncated);
        }
        uint spi = BinaryPrimitives.ReadUInt32BigEndian(ipSpan[ihl..]);
        IpsecVerdict v = Masq.EspOut(src, dst, spi, external, ctx.NowMs);
        if (v != IpsecVerdict.Forward)
        {
            return Drop(ref ctx, DropOf(v));
        }
        ip.Source = external;
        ip.ChecksumRaw = Checksum.Update(ip.ChecksumRaw, src, external);
        ip.DecrementTtl();
        _counters.PacketsIn2Out++;
        _counters.BytesIn2Out += ipSpan.Length;
        return TunnelVerdict.ToOutside;
    }

    /// <summary>
    /// Out2in ESP or AH to a pool address (<paramref name="toPool"/>) with no protocol forward or
    /// untranslated session for it: ESP goes to the associated inside host
    /// (<see cref="TunnelVerdict.ToInside"/>), AH is refused. <see cref="TunnelVerdict.Pass"/> otherwise.
    /// </summary>
    public TunnelVerdict EspOut2In(Span<byte> ipSpan, int ihl, bool toPool, ref PacketContext ctx)
    {
        var ip = new Ipv4Header(ipSpan);
        byte proto = ip.Protocol;
        uint src = ip.Source, dst = ip.Destination;
        if (!toPool || _forwards.FindProtocolForwardByExternal(proto, dst) >= 0
            || _sessions.Out2In(new FlowKey(src, dst, 0, 0, proto), ctx.NowMs) >= 0)
        {
            return TunnelVerdict.Pass;
        }
        if (proto == IpProtocol.Ah)
        {
            return Drop(ref ctx, DropReason.AhRefused);
        }
        if (ipSpan.Length < ihl + EspHeaderLength)
        {
            return Drop(ref ctx, DropReason.Truncated);
        }
        uint spi = BinaryPrimitives.ReadUInt32BigEndian(ipSpan[ihl..]);
        IpsecVerdict v = Masq.EspIn(src, dst, spi, ctx.NowMs, out uint inside);
        if (v != IpsecVerdict.Forward)
        {
            return Drop(ref ctx, DropOf(v));
        }
        if (ip.Ttl <= 1)
        {
            return TunnelVerdict.TimeExceeded;
        }
        ip.Destination = inside;
        ip.ChecksumRaw = Checksum.Update(ip.ChecksumRaw, dst, inside);
        ip.DecrementTtl();
        _counters.PacketsOut2In++;
        _counters.BytesOut2In += ipSpan.Length;
        return TunnelVerdict.ToInside;
    }

    /// <summary>
    /// In2out UDP from port 500 to port 500 (ISAKMP) with a masquerading rule and no session: keeps
    /// source port 500 when it can and records the cookies for the replies
    /// (<see cref="TunnelVerdict.ToOutside"/>). <see cref="TunnelVerdict.Pass"/> when the ordinary
    /// UDP path should handle it (accepted, denied or an existing session).
    /// </summary>
    public TunnelVerdict IsakmpIn2Out(Span<byte> ipSpan, int ihl, in FlowKey key, uint external, ref PacketContext ctx)
    {
        if (_sessions.In2Out(key, ctx.NowMs) >= 0 || _rules.DecideQuietly(key) != RuleAction.Masquerade)
        {
            return TunnelVerdict.Pass;
        }
        Span<byte> l4 = ipSpan[ihl..];
        if (l4.Length < Udp.Length + IsakmpCookiesLength)
        {
            return Drop(ref ctx, DropReason.Truncated);
        }
        var ip = new Ipv4Header(ipSpan);
        uint src = ip.Source;
        ushort sportRaw = key.SourcePort;
        ulong icookie = BinaryPrimitives.ReadUInt64BigEndian(l4[Udp.Length..]);
        ulong rcookie = BinaryPrimitives.ReadUInt64BigEndian(l4[(Udp.Length + 8)..]);
        IpsecVerdict v = Masq.IsakmpOut(src, FlowKey.PortToHost(sportRaw), key.Destination, FlowKey.PortToHost(key.DestinationPort),
            external, icookie, rcookie, ctx.NowMs, out ushort extPort);
        if (v != IpsecVerdict.Forward)
        {
            return Drop(ref ctx, DropOf(v));
        }
        ushort extPortRaw = FlowKey.PortToRaw(extPort);
        ip.Source = external;
        ip.ChecksumRaw = Checksum.Update(ip.ChecksumRaw, src, external);
        ip.DecrementTtl();
        RewriteUdpPort(l4, 0, Checksum.Delta(src, external, sportRaw, extPortRaw), extPortRaw);
        _counters.PacketsIn2Out++;
        _counters.BytesIn2Out += ipSpan.Length;
        return TunnelVerdict.ToOutside;
    }

    /// <summary>
    /// Out2in UDP to port 500 of a pool address (<paramref name="toPool"/>) with no port forward or
    /// session there: routed to the inside host by the ISAKMP cookies (<see cref="TunnelVerdict.ToInside"/>).
    /// <see cref="TunnelVerdict.Pass"/> when the ordinary path should handle it.
    /// </summary>
    public TunnelVerdict IsakmpOut2In(Span<byte> ipSpan, int ihl, in FlowKey key, bool toPool, ref PacketContext ctx)
    {
        if (!toPool || _forwards.Find(IpProtocol.Udp, key.Destination, key.DestinationPort) >= 0
            || _sessions.Out2In(key, ctx.NowMs) >= 0)
        {
            return TunnelVerdict.Pass;
        }
        Span<byte> l4 = ipSpan[ihl..];
        if (l4.Length < Udp.Length + IsakmpCookiesLength)
        {
            return Drop(ref ctx, DropReason.Truncated);
        }
        ulong icookie = BinaryPrimitives.ReadUInt64BigEndian(l4[Udp.Length..]);
        ulong rcookie = BinaryPrimitives.ReadUInt64BigEndian(l4[(Udp.Length + 8)..]);
        IpsecVerdict v = Masq.IsakmpIn(key.Source, FlowKey.PortToHost(key.SourcePort), key.Destination, FlowKey.PortToHost(key.DestinationPort),
            icookie, rcookie, ctx.NowMs, out uint inside, out ushort insidePort);
        if (v != IpsecVerdict.Forward)
        {
            return Drop(ref ctx, DropOf(v));
        }
        var ip = new Ipv4Header(ipSpan);
        if (ip.Ttl <= 1)
        {
            return TunnelVerdict.TimeExceeded;
        }
        ushort insidePortRaw = FlowKey.PortToRaw(insidePort);
        ip.Destination = inside;
        ip.ChecksumRaw = Checksum.Update(ip.ChecksumRaw, key.Destination, inside);
        ip.DecrementTtl();
        RewriteUdpPort(l4, 2, Checksum.Delta(key.Destination, inside, key.DestinationPort, insidePortRaw), insidePortRaw);
        _counters.PacketsOut2In++;
        _counters.BytesOut2In += ipSpan.Length;
        return TunnelVerdict.ToInside;
    }

    /// <summary>ESP and ISAKMP entries as session rows for natctl (control path: allocates).</summary>
    public void Collect(List<SessionInfo> into, long nowMs)
    {
        var esp = new List<EspEntryInfo>();
        Masq.CollectEsp(esp, nowMs);
        foreach (var e in esp)
        {
            string state = e.State.ToString().ToLowerInvariant() + string.Create(System.Globalization.CultureInfo.InvariantCulture,
                $" spi {e.OutSpi:x8}/{e.InSpi:x8}");
            into.Add(new SessionInfo("esp", e.Inside, 0, e.External, 0, e.Remote, 0, e.ExpiresInSeconds, state,
                e.PacketsOut, e.PacketsIn, 0, 0));
        }
        var isakmp = new List<IsakmpEntryInfo>();
        Masq.CollectIsakmp(isakmp, nowMs);
        foreach (var x in isakmp)
        {
            string state = string.Create(System.Globalization.CultureInfo.InvariantCulture,
                $"cookies {x.InitiatorCookie:x16}/{x.ResponderCookie:x16}");
            into.Add(new SessionInfo("isakmp", x.Inside, x.InsidePort, x.External, x.ExternalPort, x.Remote, x.RemotePort,
                x.ExpiresInSeconds, state, x.PacketsOut, x.PacketsIn, 0, 0));
        }
    }

    private static TunnelVerdict Drop(ref PacketContext ctx, DropReason reason)
    {
        ctx.Drop(reason);
        return TunnelVerdict.Dropped;
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

    private static DropReason DropOf(IpsecVerdict v) => v switch
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
}
