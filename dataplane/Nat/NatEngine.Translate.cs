using System.Runtime.CompilerServices;
using Natd.Dataplane.Alg;
using Natd.Dataplane.Io;
using Natd.Dataplane.Packets;
using Natd.Dataplane.Sessions;

namespace Natd.Dataplane.Nat;

public sealed partial class NatEngine
{
    private const DropReason Ok = AddressPlan.Ok;

    /// <summary>
    /// Settles the transport checksum of a TCP, UDP or ICMP packet whose header's shape the parser
    /// already checked (<see cref="ParsedFrame.L4Drop"/>): completes it when the sender left it to
    /// offload, verifies it otherwise (when configured).
    /// </summary>
    private DropReason SettleL4(Span<byte> ipSpan, in ParsedFrame p, FrameFlags flags)
    {
        if (p.IsFragment)
        {
            // A first fragment's checksum covers the whole datagram, which natd never sees at once
            // (virtual reassembly): the receiving host verifies it. The kernel fragments only
            // finished checksums, so there is no offloaded one to complete either.
            return Ok;
        }
        int ihl = p.Ihl;
        byte proto = p.Protocol;
        Span<byte> l4 = ipSpan[ihl..];
        switch (proto)
        {
            case IpProtocol.Tcp:
                return SettleChecksum(l4, Tcp.ChecksumOffset, new Ipv4Header(ipSpan), proto, flags, udp: false);
            case IpProtocol.Udp:
                return SettleChecksum(l4, Udp.ChecksumOffset, new Ipv4Header(ipSpan), proto, flags, udp: true);
            case IpProtocol.Icmp:
                if (_settings.VerifyL4Checksums && !Checksum.Verify(l4))
                {
                    return DropReason.BadL4Checksum;
                }
                return Ok;
            default:
                return DropReason.UnsupportedProtocol;
        }
    }

    private DropReason SettleChecksum(Span<byte> l4, int offset, Ipv4Header ip, byte proto, FrameFlags flags, bool udp)
    {
        if ((flags & FrameFlags.ChecksumPartial) != 0)
        {
            // The field holds only the pseudo-header sum; finish what the sender's NIC would have.
            Checksum.WriteRaw16(l4, offset, 0);
            ushort c = Checksum.Compute(l4, Checksum.PseudoHeaderSum(ip.Source, ip.Destination, proto, l4.Length));
            Checksum.WriteRaw16(l4, offset, udp && c == 0 ? (ushort)0xFFFF : c);
            Counters.ChecksumsCompleted++;
            return Ok;
        }
        if (!_settings.VerifyL4Checksums || (udp && Checksum.ReadRaw16(l4, offset) == 0))
        {
            return Ok; // UDP checksum 0 means "none" (RFC 768)
        }
        ulong pseudo = Checksum.PseudoHeaderSum(ip.Source, ip.Destination, proto, l4.Length);
        if (Checksum.Verify(l4, pseudo))
        {
            return Ok;
        }
        // A driver that cannot report transmit offload (AF_XDP) hands over CHECKSUM_PARTIAL frames
        // unmarked: their field holds exactly the folded pseudo-header sum. Finish those; a corrupted
        // checksum matches that value with odds of 1 in 65536.
        ushort field = Checksum.ReadRaw16(l4, offset);
        ushort partial = Checksum.Fold(pseudo);
        if (field == partial || (partial == 0xFFFF && field == 0))
        {
            return SettleChecksum(l4, offset, ip, proto, FrameFlags.ChecksumPartial, udp);
        }
        return DropReason.BadL4Checksum;
    }

    /// <summary>
    /// In2out of a TCP, UDP or ICMP packet: the checks every such packet passes, then the fast path
    /// (<see cref="In2OutFast"/>, a live session) and on a miss the slow path's flow openers
    /// (<see cref="In2OutSlow"/>).
    /// </summary>
    private Verdict In2Out(Span<byte> slot, ref int length, Span<byte> ipSpan, in ParsedFrame p, FrameFlags flags, bool hairpin, ref PacketContext ctx)
    {
        if (p.L4Drop != ParsedFrame.None)
        {
            return ctx.Drop(p.L4Drop);
        }
        byte proto = p.Protocol;
        DropReason r = SettleL4(ipSpan, p, flags);
        if (r != Ok)
        {
            return ctx.Drop(r);
        }
        if (proto == IpProtocol.Icmp)
        {
            if (Icmp.IsError(p.IcmpType))
            {
                return _icmpErrors.IcmpErrorIn2Out(slot, ref length, ipSpan, p.Ihl, ref ctx);
            }
            if (p.IcmpType != Icmp.EchoRequest)
            {
                return ctx.Drop(DropReason.UnsupportedIcmp);
            }
        }

        uint nextHop = _addresses.NextHopOutside(p.Destination);
        if (nextHop == 0)
        {
            return ctx.Drop(DropReason.NoRoute);
        }
        if (proto == IpProtocol.Udp && p.Key.SourcePort == IsakmpPortRaw && p.Key.DestinationPort == IsakmpPortRaw && !hairpin && IpsecOn
            && TryIsakmpIn2Out(slot, ref length, ipSpan, p.Ihl, p.Key, nextHop, ref ctx, out Verdict isakmp))
        {
            return isakmp; // ISAKMP keeps port 500 and is routed back by cookies (VPN Masquerade HOWTO 6): before any session
        }
        if (In2OutFast(slot, ref length, ipSpan, p, nextHop, hairpin, ref ctx, out Verdict v, out int live))
        {
            return v;
        }
        return In2OutSlow(slot, ref length, ipSpan, p, nextHop, hairpin, live, ref ctx);
    }

    /// <summary>
    /// The in2out fast path: a live session's rewrite. False on a miss: <paramref name="live"/> is
    /// -1 when no session matches, or a live session the slow path must see first (a port
    /// forward's backend answering with a RST).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool In2OutFast(Span<byte> slot, ref int length, Span<byte> ipSpan, in ParsedFrame p, uint nextHop, bool hairpin,
        ref PacketContext ctx, out Verdict verdict, out int live)
    {
        int s = LookupIn2Out(p.Key, p.Hash);
        if (s < 0 || ((p.TcpFlags & Tcp.Rst) != 0 && Table.Sessions[s].Origin == SessionOrigin.Forward))
        {
            verdict = Verdict.Drop;
            live = s;
            return false;
        }
        live = s;
        verdict = In2OutHit(s, slot, ref length, ipSpan, p, nextHop, hairpin, ref ctx);
        return true;
    }

    /// <summary>Rewrites an in2out packet of session <paramref name="s"/> (found or just opened) and sends it on.</summary>
    private Verdict In2OutHit(int s, Span<byte> slot, ref int length, Span<byte> ipSpan, in ParsedFrame p, uint nextHop, bool hairpin, ref PacketContext ctx)
    {
        if (p.TotalLength > _outsideMtu && !hairpin && In2OutAnswered(slot, ref length, ipSpan, p, ref ctx, out Verdict answered))
        {
            return answered;
        }
        var ip = new Ipv4Header(ipSpan);
        byte proto = p.Protocol;
        Span<byte> l4 = ipSpan[p.Ihl..];
        ref Session ses = ref Table.Sessions[s];

        // Rewrite source address and port (or ICMP identifier) with the precomputed deltas.
        ip.Source = ses.Out2In.Destination;
        ip.DecrementTtl(ses.IpDeltaIn2Out); // the address's precomputed delta and the TTL in one checksum update
        RewriteL4(l4, proto, portOffset: proto == IpProtocol.Icmp ? Icmp.IdentifierOffset : 0, ses.Out2In.DestinationPort, ses.L4DeltaIn2Out);

        if (proto == IpProtocol.Tcp)
        {
            if ((p.TcpFlags & Tcp.Syn) != 0 && _mssClamp != 0)
            {
                ClampMss(l4);
            }
            TrackTcp(s, ref ses, p.TcpFlags, in2out: true);
        }
        ses.PacketsIn2Out++;
        ses.BytesIn2Out += ipSpan.Length;
        Table.Touch(s, _now);
        Counters.PacketsIn2Out++;
        Counters.BytesIn2Out += ipSpan.Length;
        if (ses.Alg != AlgKind.None && !hairpin)
        {
            return ToHelper(ref ses, AlgDirection.In2Out, Side.Outside, nextHop, PayloadLength(l4, proto), ref ctx);
        }
        return hairpin ? Verdict.ToOutside : _neighbours.SendTo(Side.Outside, slot[..length], nextHop, ref ctx);
    }

    /// <summary>
    /// Out2in of a TCP, UDP or ICMP packet: the checks every such packet passes, then the fast path
    /// (<see cref="Out2InFast"/>, a live session) and on a miss the slow path's flow openers
    /// (<see cref="Out2InSlow"/>).
    /// </summary>
    private Verdict Out2In(Span<byte> slot, ref int length, Span<byte> ipSpan, in ParsedFrame p, FrameFlags flags, bool transit, bool hairpin, ref PacketContext ctx)
    {
        if (p.L4Drop != ParsedFrame.None)
        {
            return ctx.Drop(p.L4Drop);
        }
        byte proto = p.Protocol;
        DropReason r = SettleL4(ipSpan, p, flags);
        if (r != Ok)
        {
            return ctx.Drop(r);
        }
        if (proto == IpProtocol.Icmp)
        {
            byte type = p.IcmpType;
            if (Icmp.IsError(type))
            {
                return _icmpErrors.IcmpErrorOut2In(slot, ref length, ipSpan, p.Ihl, ref ctx);
            }
            if (type == Icmp.EchoRequest)
            {
                return _icmp.ToGateway(slot, ref length, Side.Outside, ipSpan, p.Ihl, ref ctx); // a ping of the external address
            }
            if (type != Icmp.EchoReply)
            {
                return ctx.Drop(DropReason.UnsupportedIcmp);
            }
        }

        if (proto == IpProtocol.Udp && p.Key.DestinationPort == IsakmpPortRaw && !transit && !hairpin && IpsecOn
            && TryIsakmpOut2In(slot, ref length, ipSpan, p.Ihl, p.Key, ref ctx, out Verdict isakmp))
        {
            return isakmp;
        }
        if (Out2InFast(slot, ref length, ipSpan, p, hairpin, ref ctx, out Verdict v))
        {
            return v;
        }
        return Out2InSlow(slot, ref length, ipSpan, p, transit, hairpin, ref ctx);
    }

    /// <summary>The out2in fast path: a live session's rewrite. False on a miss (no live session).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool Out2InFast(Span<byte> slot, ref int length, Span<byte> ipSpan, in ParsedFrame p, bool hairpin, ref PacketContext ctx, out Verdict verdict)
    {
        int s = LookupOut2In(p.Key, p.Hash);
        if (s < 0)
        {
            verdict = Verdict.Drop;
            return false;
        }
        verdict = Out2InHit(s, slot, ref length, ipSpan, p, hairpin, ref ctx);
        return true;
    }

    /// <summary>
    /// Rewrites an out2in packet of session <paramref name="s"/> (found or just opened) and sends it
    /// to the inside host: the whole fast path once the session is known.
    /// </summary>
    private Verdict Out2InHit(int s, Span<byte> slot, ref int length, Span<byte> ipSpan, in ParsedFrame p, bool hairpin, ref PacketContext ctx)
    {
        // One branch on the fast path for both answers natd may owe the sender instead.
        if (!hairpin && (p.Ttl <= 1 || p.TotalLength > _insideMtu) && Out2InAnswered(slot, ref length, ipSpan, p, ref ctx, out Verdict answered))
        {
            return answered;
        }

        var ip = new Ipv4Header(ipSpan);
        byte proto = p.Protocol;
        Span<byte> l4 = ipSpan[p.Ihl..];
        ref Session ses = ref Table.Sessions[s];
        uint inside = ses.In2Out.Source;
        uint nextHop = _addresses.NextHopInside(inside);
        ip.Destination = inside;
        ip.DecrementTtl(ses.IpDeltaOut2In); // the address's precomputed delta and the TTL in one checksum update
        RewriteL4(l4, proto, portOffset: proto == IpProtocol.Icmp ? Icmp.IdentifierOffset : 2, ses.In2Out.SourcePort, ses.L4DeltaOut2In);

        if (proto == IpProtocol.Tcp)
        {
            if ((p.TcpFlags & Tcp.Syn) != 0 && _mssClamp != 0)
            {
                ClampMss(l4);
            }
            TrackTcp(s, ref ses, p.TcpFlags, in2out: false);
        }
        ses.PacketsOut2In++;
        ses.BytesOut2In += ipSpan.Length;
        Table.Touch(s, _now);
        Counters.PacketsOut2In++;
        Counters.BytesOut2In += ipSpan.Length;
        if (ses.Alg != AlgKind.None && !hairpin)
        {
            return ToHelper(ref ses, AlgDirection.Out2In, Side.Inside, nextHop, PayloadLength(l4, proto), ref ctx);
        }
        return _neighbours.SendTo(Side.Inside, slot[..length], nextHop, ref ctx);
    }

    /// <summary>
    /// An in2out datagram larger than the outside MTU: with don't-fragment set it is answered with
    /// fragmentation-needed (RFC 1191) before the rewrite, so the quote is what the inside host
    /// sent; without, false (it is translated and leaves in fragments). Cold: off the hit path's line.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private bool In2OutAnswered(Span<byte> slot, ref int length, Span<byte> ipSpan, in ParsedFrame p, ref PacketContext ctx, out Verdict answered)
    {
        answered = Verdict.Drop;
        if (!new Ipv4Header(ipSpan).DontFragment)
        {
            return false;
        }
        answered = _icmp.FragmentationNeeded(slot, ref length, Side.Inside, ipSpan, p.Ihl, _outsideMtu, ref ctx);
        return true;
    }

    /// <summary>
    /// An out2in datagram natd answers instead of translating: its TTL would expire (RFC 1812 5.3.1,
    /// time exceeded), or it is larger than the inside MTU with don't-fragment set (RFC 1191,
    /// fragmentation-needed quoting it as its sender sent it). False for a larger one without DF (it
    /// is translated and leaves in fragments). Cold: off the hit path's line.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private bool Out2InAnswered(Span<byte> slot, ref int length, Span<byte> ipSpan, in ParsedFrame p, ref PacketContext ctx, out Verdict answered)
    {
        answered = Verdict.Drop;
        if (p.Ttl <= 1)
        {
            answered = _icmp.TimeExceeded(slot, ref length, Side.Outside, ipSpan, p.Ihl, ref ctx);
            return true;
        }
        if (!new Ipv4Header(ipSpan).DontFragment)
        {
            return false;
        }
        answered = _icmp.FragmentationNeeded(slot, ref length, Side.Outside, ipSpan, p.Ihl, _insideMtu, ref ctx);
        return true;
    }

    private ushort _mssClamp;

    // The egress MTUs (EgressMtu's) where the hit paths compare them: engine fields, one load each.
    private int _insideMtu;
    private int _outsideMtu;

    /// <summary>The MSS clamp in force (bytes, 0 off): <see cref="NatSettings.MssClamp"/>, auto resolved against the egress MTUs.</summary>
    internal int MssClampInForce => _mssClamp;

    /// <summary>
    /// The links' MTUs changed while natd runs (bytes, 0: not known): the egress MTU of a side the
    /// configuration names no <see cref="InterfaceSettings.Mtu"/> for follows, and so does
    /// <c>nat.mss-clamp: auto</c>. On the engine's thread (a poller message).
    /// </summary>
    public void SetLinkMtus(int insideLink, int outsideLink)
    {
        _mtu.SetLinks(insideLink, outsideLink);
        RefreshEgress();
    }

    /// <summary>Reads the egress MTUs and the MSS clamp that follows from them (construction, reload, a link's change).</summary>
    private void RefreshEgress()
    {
        _insideMtu = _mtu.InsideMtu;
        _outsideMtu = _mtu.OutsideMtu;
        int c = _settings.MssClamp;
        if (c == NatSettings.MssClampAuto)
        {
            // The smaller MTU natd knows, less the IPv4 and TCP headers: no segment then needs fragmenting on either side.
            c = _mtu.AnyKnown ? Math.Min(_mtu.InsideMtu, _mtu.OutsideMtu) - Ipv4Header.MinLength - Tcp.MinLength : 0;
        }
        _mssClamp = (ushort)Math.Clamp(c, 0, ushort.MaxValue);
    }

    /// <summary>Lowers a SYN's MSS option to the clamp (RFC 6691); slow branch of the TCP rewrite.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private void ClampMss(Span<byte> tcp)
    {
        if (TcpMss.Clamp(tcp, _mssClamp))
        {
            Counters[Dataplane.Counters.ShardCounter.MssClamped]++;
        }
    }

    /// <summary>Bytes of transport payload (TCP after its header, UDP after its 8 bytes).</summary>
    private static int PayloadLength(ReadOnlySpan<byte> l4, byte proto)
        => proto == IpProtocol.Tcp ? l4.Length - Tcp.HeaderLength(l4) : proto == IpProtocol.Udp ? l4.Length - Udp.Length : 0;

    /// <summary>Writes the new port/identifier and patches the transport checksum with a precomputed delta.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void RewriteL4(Span<byte> l4, byte proto, int portOffset, ushort newPortRaw, ushort delta)
        => NaptRewrite.Port(l4, proto, portOffset, newPortRaw, delta);

    /// <summary>Slow path of in2out: find or make the mapping (RFC 4787 REQ-1 by default), allocate the port (RFC 6056), make the session.</summary>
    private int CreateIn2Out(in FlowKey key, out DropReason reason)
    {
        if (Table.Count >= Table.Capacity)
        {
            Table.EmitRefusal(NatEventType.SessionLimit, key, 0);
            reason = DropReason.SessionLimit;
            return -1;
        }
        SubscriberPorts? subscribers = Subscribers;
        // The subscriber's index slot is a cache miss in a big table; it loads while the mapping look-up below misses too.
        subscribers?.Prefetch(key.Source);
        if (subscribers is not null && !subscribers.Admit(key.Source, _now, out reason))
        {
            return -1; // a per-subscriber limit (RFC 6888 REQ-3, REQ-4): refused, nothing evicted
        }
        bool eim = _settings.Mapping == MappingBehaviour.EndpointIndependent;
        int m = eim ? Table.FindMappingByInside(key.Source, key.SourcePort, key.Protocol) : -1;
        if (m < 0 && _pcp is { Count: > 0 })
        {
            m = PcpIn2OutMapping(key); // a mapped endpoint keeps its PCP port whoever it talks to
        }
        if (m < 0 && _deterministic is not null)
        {
            // RFC 7422: the port comes from the subscriber's fixed range (NatEngine.Deterministic.cs).
            m = CreateDeterministicMapping(key, eim, out reason);
            if (m < 0)
            {
                return -1;
            }
        }
        if (m < 0)
        {
            int pclass = SessionTable.ProtocolClass(key.Protocol);
            bool privileged = key.Protocol != IpProtocol.Icmp && FlowKey.PortToHost(key.SourcePort) < 1024;
            int port;
            int poolIndex;
            if (subscribers is null)
            {
                poolIndex = _addresses.PoolIndexFor(key.Source); // paired pooling by hash; the subscriber state pairs otherwise
                port = Table.Ports.Allocate(poolIndex, pclass, privileged);
                if (port < 0)
                {
                    Table.EmitRefusal(NatEventType.PortExhausted, key, _addresses.Pool[poolIndex]);
                    reason = DropReason.PortExhausted;
                    return -1;
                }
            }
            else
            {
                // Paired pooling, port blocks and the port limit; the subscriber's own events say why it failed.
                port = subscribers.Allocate(key.Source, pclass, privileged, _now, out poolIndex, out reason);
                if (port < 0)
                {
                    return -1;
                }
            }
            m = Table.AddMapping(key.Source, key.SourcePort, _addresses.Pool[poolIndex], FlowKey.PortToRaw((ushort)port), key.Protocol, poolIndex, eim);
            if (m < 0)
            {
                Table.FreeUnusedPort(key.Source, poolIndex, pclass, port);
                reason = DropReason.SessionLimit;
                return -1;
            }
        }
        ref Mapping map = ref Table.Mappings[m];
        var out2in = new FlowKey(key.Destination, map.ExternalKey.Destination, key.DestinationPort, map.ExternalKey.DestinationPort, key.Protocol);
        int s = Table.AddSession(m, key, out2in, InitialClass(key.Protocol), _now);
        if (s < 0)
        {
            if (map.SessionCount == 0)
            {
                Table.RemoveMapping(m);
            }
            reason = DropReason.SessionLimit;
            return -1;
        }
        reason = Ok;
        return s;
    }

    /// <summary>
    /// Slow path of out2in. With the default address-and-port-dependent filtering nothing but an
    /// exact session match gets in. Otherwise a packet to a mapped external endpoint may open a new
    /// session on that mapping if filtering (RFC 4787 REQ-8) accepts its source; an existing
    /// session's remote endpoint is never rewritten (the CVE-2000-0289 "destination loose" hole).
    /// </summary>
    private int CreateOut2In(in FlowKey key, byte tcpFlags, out DropReason reason)
    {
        int m = Table.FindMappingByExternal(key.Destination, key.DestinationPort, key.Protocol);
        if (m < 0)
        {
            // Without the external index (default filtering) the port bitmap still tells a partial
            // match (the port is mapped, the remote is not the session's) from plain unsolicited traffic.
            int pool = _addresses.PoolIndexOf(key.Destination);
            bool mapped = pool >= 0 && Table.Ports.IsUsed(pool, SessionTable.ProtocolClass(key.Protocol), FlowKey.PortToHost(key.DestinationPort))
                && !IsForwardPort(key.Protocol, key.Destination, key.DestinationPort);
            reason = mapped ? DropReason.Filtered : DropReason.NoSession;
            return -1;
        }
        if (_settings.Filtering == FilteringBehaviour.AddressAndPortDependent || key.Protocol == IpProtocol.Icmp
            || (key.Protocol == IpProtocol.Tcp && (tcpFlags & (Tcp.Syn | Tcp.Ack | Tcp.Rst)) != Tcp.Syn))
        {
            reason = DropReason.Filtered; // a partial match: counted apart from plain unsolicited traffic
            return -1;
        }
        ref Mapping map = ref Table.Mappings[m];
        if (_settings.Filtering == FilteringBehaviour.AddressDependent && !MappingHasRemote(ref map, key.Source))
        {
            reason = DropReason.Filtered;
            return -1;
        }
        if (Table.Count >= Table.Capacity)
        {
            reason = DropReason.SessionLimit;
            return -1;
        }
        if (Subscribers is { } sp && !sp.Admit(map.InsideAddress, _now, out reason))
        {
            return -1; // an inbound session on a mapping counts against its subscriber too
        }
        var in2out = new FlowKey(map.InsideKey.Source, key.Source, map.InsideKey.SourcePort, key.SourcePort, key.Protocol);
        int s = Table.AddSession(m, in2out, key, InitialClass(key.Protocol), _now);
        if (s >= 0)
        {
            Table.Sessions[s].Origin = SessionOrigin.Inbound;
        }
        reason = s < 0 ? DropReason.SessionLimit : Ok;
        return s;
    }

    private bool IsForwardPort(byte proto, uint external, ushort portRaw) => _forwards.IsForwardPort(proto, external, portRaw);

    private bool MappingHasRemote(ref Mapping map, uint remote)
    {
        var sessions = Table.Sessions;
        for (int s = map.FirstSession; s >= 0; s = sessions[s].MapNext)
        {
            if (sessions[s].Out2In.Source == remote)
            {
                return true;
            }
        }
        return false;
    }

    private static LruClass InitialClass(byte proto) => LiveSessions.InitialClass(proto);

    /// <summary>RFC 7857 section 2.2 / RFC 5382: established after SYNs both ways; transitory after FINs both ways or a RST.</summary>
    private void TrackTcp(int s, ref Session ses, byte flags, bool in2out)
    {
        if ((flags & Tcp.Syn) != 0 && (flags & Tcp.Ack) == 0 && (ses.Tcp & (TcpSeen.Rst | TcpSeen.FinIn2Out | TcpSeen.FinOut2In)) != 0)
        {
            ses.Tcp = TcpSeen.None; // a new connection reusing the 5-tuple
        }
        if ((flags & Tcp.Rst) != 0)
        {
            ses.Tcp |= TcpSeen.Rst;
        }
        if ((flags & Tcp.Syn) != 0)
        {
            ses.Tcp |= in2out ? TcpSeen.SynIn2Out : TcpSeen.SynOut2In;
        }
        if ((flags & Tcp.Fin) != 0)
        {
            ses.Tcp |= in2out ? TcpSeen.FinIn2Out : TcpSeen.FinOut2In;
        }
        if ((ses.Tcp & (TcpSeen.SynIn2Out | TcpSeen.SynOut2In)) == (TcpSeen.SynIn2Out | TcpSeen.SynOut2In))
        {
            ses.Tcp |= TcpSeen.Established;
        }
        LruClass cls = (ses.Tcp & TcpSeen.Rst) != 0
            || (ses.Tcp & (TcpSeen.FinIn2Out | TcpSeen.FinOut2In)) == (TcpSeen.FinIn2Out | TcpSeen.FinOut2In)
            || (ses.Tcp & TcpSeen.Established) == 0
            ? LruClass.TcpTransitory
            : LruClass.TcpEstablished;
        Table.Reclass(s, cls);
    }
}
