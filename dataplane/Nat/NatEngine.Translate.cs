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
    /// Validates the transport header of a TCP, UDP or ICMP packet and settles its checksum:
    /// completes it when the sender left it to offload, verifies it otherwise (when configured).
    /// </summary>
    private DropReason PrepareL4(Span<byte> ipSpan, int ihl, FrameFlags flags)
    {
        var ip = new Ipv4Header(ipSpan);
        Span<byte> l4 = ipSpan[ihl..];
        byte proto = ip.Protocol;
        switch (proto)
        {
            case IpProtocol.Tcp:
                if (l4.Length < Tcp.MinLength)
                {
                    return DropReason.Truncated;
                }
                int thl = Tcp.HeaderLength(l4);
                if (thl < Tcp.MinLength)
                {
                    return DropReason.BadL4Length;
                }
                if (thl > l4.Length)
                {
                    return DropReason.Truncated; // the data offset points beyond the IP payload
                }
                return SettleChecksum(l4, Tcp.ChecksumOffset, ip, proto, flags, udp: false);
            case IpProtocol.Udp:
                if (l4.Length < Udp.Length)
                {
                    return DropReason.Truncated;
                }
                int ulen = System.Buffers.Binary.BinaryPrimitives.ReadUInt16BigEndian(l4[4..]);
                if (ulen > l4.Length)
                {
                    return DropReason.Truncated; // announces more than the IP payload holds
                }
                if (ulen != l4.Length)
                {
                    // Below 8, or shorter than the IP payload: the bytes past it are no part of the
                    // datagram and would be forwarded unchecked (the checksum covers the IP payload).
                    // Dropped rather than trimmed: a translator has no use for bytes the sender did not count.
                    return DropReason.BadL4Length;
                }
                return SettleChecksum(l4, Udp.ChecksumOffset, ip, proto, flags, udp: true);
            case IpProtocol.Icmp:
                if (l4.Length < Icmp.HeaderLength)
                {
                    return DropReason.Truncated;
                }
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

    private Verdict In2Out(Span<byte> slot, ref int length, Span<byte> ipSpan, int ihl, FrameFlags flags, bool hairpin)
    {
        var ip = new Ipv4Header(ipSpan);
        byte proto = ip.Protocol;
        DropReason r = PrepareL4(ipSpan, ihl, flags);
        if (r != Ok)
        {
            return Drop(r);
        }
        Span<byte> l4 = ipSpan[ihl..];
        FlowKey key;
        byte tcpFlags = 0;
        if (proto == IpProtocol.Icmp)
        {
            byte type = l4[0];
            if (Icmp.IsError(type))
            {
                return IcmpErrorIn2Out(slot, ref length, ipSpan, ihl);
            }
            if (type != Icmp.EchoRequest)
            {
                return Drop(DropReason.UnsupportedIcmp);
            }
            key = new FlowKey(ip.Source, ip.Destination, Checksum.ReadRaw16(l4, Icmp.IdentifierOffset), 0, proto);
        }
        else
        {
            key = PortKey(ip, l4, proto, out tcpFlags);
        }

        uint nextHop = _addresses.NextHopOutside(key.Destination);
        if (nextHop == 0)
        {
            return Drop(DropReason.NoRoute);
        }
        if (proto == IpProtocol.Udp && key.SourcePort == IsakmpPortRaw && key.DestinationPort == IsakmpPortRaw && !hairpin && IpsecOn
            && TryIsakmpIn2Out(slot, ref length, ipSpan, ihl, key, nextHop, out Verdict isakmp))
        {
            return isakmp; // ISAKMP keeps port 500 and is routed back by cookies (VPN Masquerade HOWTO 6)
        }
        int s = LookupIn2Out(key);
        if (s < 0)
        {
            // RFC 5382: only a SYN creates a TCP mapping; anything else without a session is stale or forged.
            if (proto == IpProtocol.Tcp && (tcpFlags & (Tcp.Syn | Tcp.Ack | Tcp.Rst)) != Tcp.Syn)
            {
                return Drop(DropReason.TcpNotSyn);
            }
            RuleAction action = Decide(key, RuleInterface.Inside, RuleInterface.Outside);
            switch (action)
            {
                case RuleAction.Deny:
                    return Drop(DropReason.RuleDeny);
                case RuleAction.Reject:
                    return IcmpReply(slot, ref length, Side.Inside, ipSpan, ihl, Icmp.DestinationUnreachable, 13, DropReason.RuleReject);
                case RuleAction.Accept:
                    if (hairpin)
                    {
                        return Drop(DropReason.RuleDeny); // an untranslated packet to our own address has nowhere to go
                    }
                    s = CreateIdentity(key, out r);
                    break;
                default:
                    s = -1;
                    if (_triggers.Any && proto != IpProtocol.Icmp)
                    {
                        var ctx = new PacketContext(Counters, _now, HoldTag);
                        if (_triggers.TryOpenOutbound(key, _addresses.Pool[_addresses.PoolIndexFor(key.Source)], ref ctx, out s, out FlowKey parent))
                        {
                            if (s < 0)
                            {
                                return Dropped(ctx);
                            }
                            MarkRelated(s, parent);
                        }
                    }
                    if (s < 0)
                    {
                        s = CreateIn2Out(key, out r);
                    }
                    break;
            }
            if (s < 0)
            {
                return Drop(r);
            }
            if (action == RuleAction.Masquerade)
            {
                if (AlgBridge.HasOutbound)
                {
                    AlgBridge.MatchOutbound(s, key, _now);
                }
                Table.Sessions[s].Alg = _settings.Algs.Classify(proto, FlowKey.PortToHost(key.DestinationPort));
                if (_triggers.Any)
                {
                    _triggers.MaybeActivate(key, Table.Sessions[s].ExternalAddress, _now);
                }
            }
        }

        ref Session ses = ref Table.Sessions[s];
        if (ses.Origin == SessionOrigin.Forward && (tcpFlags & Tcp.Rst) != 0
            && (ses.Tcp & (TcpSeen.SynOut2In | TcpSeen.Established)) == TcpSeen.SynOut2In)
        {
            // The backend refused the connection: hold it down and let the client's SYN
            // retransmission open a new session on another backend instead of passing the refusal on.
            _forwards.MarkBackendDown(Table.Mappings[ses.Mapping].Tag, _now);
            Table.Delete(s);
            return Drop(DropReason.BackendRefused);
        }

        // Rewrite source address and port (or ICMP identifier) with the precomputed deltas.
        ip.Source = ses.Out2In.Destination;
        ip.ChecksumRaw = Checksum.ApplyDelta(ip.ChecksumRaw, ses.IpDeltaIn2Out);
        ip.DecrementTtl();
        RewriteL4(l4, proto, portOffset: proto == IpProtocol.Icmp ? Icmp.IdentifierOffset : 0, ses.Out2In.DestinationPort, ses.L4DeltaIn2Out);

        if (proto == IpProtocol.Tcp)
        {
            TrackTcp(s, ref ses, tcpFlags, in2out: true);
        }
        ses.PacketsIn2Out++;
        ses.BytesIn2Out += ipSpan.Length;
        Table.Touch(s, _now);
        Counters.PacketsIn2Out++;
        Counters.BytesIn2Out += ipSpan.Length;
        if (ses.Alg != AlgKind.None && !hairpin)
        {
            return ToHelper(ref ses, AlgDirection.In2Out, Side.Outside, nextHop, PayloadLength(l4, proto));
        }
        return hairpin ? Verdict.ToOutside : SendTo(Side.Outside, slot[..length], nextHop);
    }

    private Verdict Out2In(Span<byte> slot, ref int length, Span<byte> ipSpan, int ihl, FrameFlags flags, bool transit, bool hairpin)
    {
        var ip = new Ipv4Header(ipSpan);
        byte proto = ip.Protocol;
        DropReason r = PrepareL4(ipSpan, ihl, flags);
        if (r != Ok)
        {
            return Drop(r);
        }
        Span<byte> l4 = ipSpan[ihl..];
        FlowKey key;
        byte tcpFlags = 0;
        if (proto == IpProtocol.Icmp)
        {
            byte type = l4[0];
            if (Icmp.IsError(type))
            {
                return IcmpErrorOut2In(slot, ref length, ipSpan, ihl);
            }
            if (type == Icmp.EchoRequest)
            {
                return ToGateway(slot, ref length, Side.Outside, ipSpan, ihl); // a ping of the external address
            }
            if (type != Icmp.EchoReply)
            {
                return Drop(DropReason.UnsupportedIcmp);
            }
            key = new FlowKey(ip.Source, ip.Destination, 0, Checksum.ReadRaw16(l4, Icmp.IdentifierOffset), proto);
        }
        else
        {
            key = PortKey(ip, l4, proto, out tcpFlags);
        }

        if (proto == IpProtocol.Udp && key.DestinationPort == IsakmpPortRaw && !transit && !hairpin && IpsecOn
            && TryIsakmpOut2In(slot, ref length, ipSpan, ihl, key, out Verdict isakmp))
        {
            return isakmp;
        }
        int s = LookupOut2In(key);
        if (s < 0)
        {
            if (transit)
            {
                return Drop(DropReason.NoRoute);
            }
            if (AlgBridge.HasInbound && proto != IpProtocol.Icmp)
            {
                r = Ok;
                s = TryInboundExpectation(key, tcpFlags, ref r);
                if (r != Ok)
                {
                    return Drop(r);
                }
            }
            if (s < 0 && _triggers.Any && proto != IpProtocol.Icmp)
            {
                var ctx = new PacketContext(Counters, _now, HoldTag);
                if (_triggers.TryOpenInbound(key, tcpFlags, ref ctx, out s, out FlowKey parent))
                {
                    if (s < 0)
                    {
                        return Dropped(ctx);
                    }
                    MarkRelated(s, parent);
                }
            }
        }
        if (s < 0)
        {
            var ctx = new PacketContext(Counters, _now, HoldTag);
            if (proto != IpProtocol.Icmp && _forwards.TryOpen(key, tcpFlags, ref ctx, out s))
            {
                if (s < 0)
                {
                    return Dropped(ctx);
                }
            }
            else if (_settings.Filtering != FilteringBehaviour.AddressAndPortDependent && !InboundAllowed(key))
            {
                return Drop(DropReason.RuleDeny);
            }
            else if (_addresses.PoolIndexOf(key.Destination) >= 0)
            {
                s = CreateOut2In(key, tcpFlags, out r);
            }
            else
            {
                return Drop(DropReason.ToGateway); // the outside address, outside the pool, with no forward
            }
            if (s < 0)
            {
                return Drop(r);
            }
        }
        if (!hairpin && ip.Ttl <= 1)
        {
            return TimeExceeded(slot, ref length, Side.Outside, ipSpan, ihl);
        }

        ref Session ses = ref Table.Sessions[s];
        uint inside = ses.In2Out.Source;
        uint nextHop = _addresses.NextHopInside(inside);
        ip.Destination = inside;
        ip.ChecksumRaw = Checksum.ApplyDelta(ip.ChecksumRaw, ses.IpDeltaOut2In);
        ip.DecrementTtl();
        RewriteL4(l4, proto, portOffset: proto == IpProtocol.Icmp ? Icmp.IdentifierOffset : 2, ses.In2Out.SourcePort, ses.L4DeltaOut2In);

        if (proto == IpProtocol.Tcp)
        {
            TrackTcp(s, ref ses, tcpFlags, in2out: false);
        }
        ses.PacketsOut2In++;
        ses.BytesOut2In += ipSpan.Length;
        Table.Touch(s, _now);
        Counters.PacketsOut2In++;
        Counters.BytesOut2In += ipSpan.Length;
        if (ses.Alg != AlgKind.None && !hairpin)
        {
            return ToHelper(ref ses, AlgDirection.Out2In, Side.Inside, nextHop, PayloadLength(l4, proto));
        }
        return SendTo(Side.Inside, slot[..length], nextHop);
    }

    /// <summary>Bytes of transport payload (TCP after its header, UDP after its 8 bytes).</summary>
    private static int PayloadLength(ReadOnlySpan<byte> l4, byte proto)
        => proto == IpProtocol.Tcp ? l4.Length - Tcp.HeaderLength(l4) : proto == IpProtocol.Udp ? l4.Length - Udp.Length : 0;

    /// <summary>The 5-tuple key of a TCP or UDP packet as it arrived, and its TCP flags (0 for UDP).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static FlowKey PortKey(Ipv4Header ip, ReadOnlySpan<byte> l4, byte proto, out byte tcpFlags)
    {
        tcpFlags = proto == IpProtocol.Tcp ? Tcp.Flags(l4) : (byte)0;
        return new FlowKey(ip.Source, ip.Destination, Checksum.ReadRaw16(l4, 0), Checksum.ReadRaw16(l4, 2), proto);
    }

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
        bool eim = _settings.Mapping == MappingBehaviour.EndpointIndependent;
        int m = eim ? Table.FindMappingByInside(key.Source, key.SourcePort, key.Protocol) : -1;
        if (m < 0)
        {
            int poolIndex = _addresses.PoolIndexFor(key.Source);
            int pclass = SessionTable.ProtocolClass(key.Protocol);
            bool privileged = key.Protocol != IpProtocol.Icmp && FlowKey.PortToHost(key.SourcePort) < 1024;
            int port = Table.Ports.Allocate(poolIndex, pclass, privileged);
            if (port < 0)
            {
                Table.EmitRefusal(NatEventType.PortExhausted, key, _addresses.Pool[poolIndex]);
                reason = DropReason.PortExhausted;
                return -1;
            }
            m = Table.AddMapping(key.Source, key.SourcePort, _addresses.Pool[poolIndex], FlowKey.PortToRaw((ushort)port), key.Protocol, poolIndex, eim);
            if (m < 0)
            {
                Table.Ports.Free(poolIndex, pclass, port);
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
