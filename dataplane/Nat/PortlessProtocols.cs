using Natd.Dataplane.Packets;
using Natd.Dataplane.Sessions;

namespace Natd.Dataplane.Nat;

/// <summary>What a tunnel or port-less component did with a packet (translated in place, or not).</summary>
internal enum TunnelVerdict : byte
{
    /// <summary>Not this component's packet: the caller goes on, the frame untouched.</summary>
    Pass,
    /// <summary>Translated: transmit outside (to the next hop the caller routed).</summary>
    ToOutside,
    /// <summary>Translated: transmit inside, to the next hop of the (new) destination address.</summary>
    ToInside,
    /// <summary>Its TTL runs out here: the caller answers ICMP time exceeded (RFC 1812), the frame untouched.</summary>
    TimeExceeded,
    /// <summary>A rule rejects it: the caller answers ICMP administratively prohibited (RFC 1812 5.2.7.1).</summary>
    Reject,
    /// <summary>Dropped; the reason is recorded and counted in the packet's context.</summary>
    Dropped,
}

/// <summary>
/// IP protocols without ports (GRE, ESP, AH, any other) in both directions, in this order: a PPTP
/// call's GRE (<see cref="GreTunnels"/>), a protocol forward (ipfwd --masq), IPsec masquerading
/// (<see cref="IpsecTunnels"/>), then a port-less session: one inside host per (remote, external
/// address), since nothing else tells replies apart, made when a rule masquerades the flow (or an
/// identity session when a rule accepts it). With no rules configured such protocols are dropped
/// as unsupported. Owns no state of its own beyond its sessions in the shard's table; port-less
/// traffic is steered to shard 0 (<see cref="ShardMap"/>). Single threaded.
/// </summary>
internal sealed class PortlessProtocols
{
    private readonly LiveSessions _sessions;
    private readonly RuleSet _rules;
    private readonly ForwardTable _forwards;
    private readonly GreTunnels _gre;
    private readonly IpsecTunnels _ipsec;
    private readonly NatCounters _counters;

    /// <summary>Wires the port-less path to the components it consults, in order.</summary>
    public PortlessProtocols(LiveSessions sessions, RuleSet rules, ForwardTable forwards, GreTunnels gre, IpsecTunnels ipsec, NatCounters counters)
    {
        _sessions = sessions;
        _rules = rules;
        _forwards = forwards;
        _gre = gre;
        _ipsec = ipsec;
        _counters = counters;
    }

    /// <summary>
    /// An inside packet of a protocol without ports, already routed (the caller has its next hop):
    /// translated to the protocol forward's or the host's <paramref name="external"/> address.
    /// </summary>
    /// <param name="ipSpan">The IPv4 datagram (header validated), rewritten in place.</param>
    /// <param name="external">The inside host's external address (paired pooling, RFC 4787 REQ-2).</param>
    /// <param name="ctx">The packet's context; a drop is recorded there.</param>
    /// <returns><see cref="TunnelVerdict.ToOutside"/>, <see cref="TunnelVerdict.Reject"/> or <see cref="TunnelVerdict.Dropped"/>.</returns>
    public TunnelVerdict In2Out(Span<byte> ipSpan, uint external, ref PacketContext ctx)
    {
        var ip = new Ipv4Header(ipSpan);
        byte proto = ip.Protocol;
        uint src = ip.Source, dst = ip.Destination;
        if (proto == IpProtocol.Gre)
        {
            // PPTP calls the ALG registered are translated by Call ID before any port-less rule.
            TunnelVerdict g = _gre.In2Out(ipSpan, ip.HeaderLength, ref ctx);
            if (g != TunnelVerdict.Pass)
            {
                return g;
            }
        }
        int pf = _forwards.FindProtocolForwardByServer(proto, src);
        if (pf >= 0)
        {
            uint ext = _forwards.ProtocolForward(pf).ExternalAddress;
            ip.Source = ext;
            ip.ChecksumRaw = Checksum.Update(ip.ChecksumRaw, src, ext);
            ip.DecrementTtl();
            _counters.ProtocolForwarded++;
            _counters.PacketsIn2Out++;
            _counters.BytesIn2Out += ipSpan.Length;
            return TunnelVerdict.ToOutside;
        }
        if (proto is IpProtocol.Esp or IpProtocol.Ah && _ipsec.On)
        {
            TunnelVerdict t = _ipsec.EspIn2Out(ipSpan, external, ref ctx);
            if (t != TunnelVerdict.Pass)
            {
                return t;
            }
        }
        var key = new FlowKey(src, dst, 0, 0, proto);
        int s = _sessions.In2Out(key, ctx.NowMs);
        if (s < 0)
        {
            if (_rules.BuiltIn)
            {
                return Drop(ref ctx, DropReason.UnsupportedProtocol);
            }
            DropReason r;
            switch (_rules.Decide(key, RuleInterface.Inside, RuleInterface.Outside, ctx.NowMs))
            {
                case RuleAction.Deny:
                    return Drop(ref ctx, DropReason.RuleDeny);
                case RuleAction.Reject:
                    return TunnelVerdict.Reject;
                case RuleAction.Accept:
                    s = _sessions.AddIdentity(key, ctx.NowMs, out r);
                    break;
                default:
                    s = Open(key, external, ctx.NowMs, out r);
                    break;
            }
            if (s < 0)
            {
                return Drop(ref ctx, r);
            }
        }
        SessionTable table = _sessions.Table;
        ref Session ses = ref table.Sessions[s];
        ip.Source = ses.Out2In.Destination;
        ip.DecrementTtl(ses.IpDeltaIn2Out); // the address's precomputed delta and the TTL in one checksum update
        ses.PacketsIn2Out++;
        ses.BytesIn2Out += ipSpan.Length;
        table.Touch(s, ctx.NowMs);
        _counters.PacketsIn2Out++;
        _counters.BytesIn2Out += ipSpan.Length;
        return TunnelVerdict.ToOutside;
    }

    /// <summary>
    /// An outside packet of a protocol without ports to natd's address: a PPTP call's GRE, IPsec,
    /// a port-less session's reply, or a protocol forward.
    /// </summary>
    /// <param name="ipSpan">The IPv4 datagram (header validated), rewritten in place.</param>
    /// <param name="ihl">IPv4 header length, bytes.</param>
    /// <param name="toPool">The destination is a pool address (else the outside address outside the pool).</param>
    /// <param name="ctx">The packet's context; a drop is recorded there.</param>
    /// <returns><see cref="TunnelVerdict.ToInside"/>, <see cref="TunnelVerdict.TimeExceeded"/> or <see cref="TunnelVerdict.Dropped"/>.</returns>
    public TunnelVerdict Out2In(Span<byte> ipSpan, int ihl, bool toPool, ref PacketContext ctx)
    {
        var ip = new Ipv4Header(ipSpan);
        byte proto = ip.Protocol;
        uint src = ip.Source, dst = ip.Destination;
        if (proto == IpProtocol.Gre)
        {
            // A PPTP call's GRE goes to the client that owns its Call ID; an unknown Call ID falls through.
            TunnelVerdict g = _gre.Out2In(ipSpan, ihl, ref ctx);
            if (g != TunnelVerdict.Pass)
            {
                return g;
            }
        }
        if (proto is IpProtocol.Esp or IpProtocol.Ah && _ipsec.On)
        {
            TunnelVerdict t = _ipsec.EspOut2In(ipSpan, ihl, toPool, ref ctx);
            if (t != TunnelVerdict.Pass)
            {
                return t;
            }
        }
        int s = _sessions.Out2In(new FlowKey(src, dst, 0, 0, proto), ctx.NowMs);
        if (s >= 0)
        {
            if (ip.Ttl <= 1)
            {
                return TunnelVerdict.TimeExceeded;
            }
            SessionTable table = _sessions.Table;
            ref Session ses = ref table.Sessions[s];
            ip.Destination = ses.In2Out.Source;
            ip.ChecksumRaw = Checksum.ApplyDelta(ip.ChecksumRaw, ses.IpDeltaOut2In);
            ses.PacketsOut2In++;
            ses.BytesOut2In += ipSpan.Length;
            table.Touch(s, ctx.NowMs);
        }
        else
        {
            int pf = _forwards.FindProtocolForwardByExternal(proto, dst);
            if (pf < 0)
            {
                return Drop(ref ctx, toPool ? DropReason.NoSession : DropReason.ToGateway);
            }
            if (ip.Ttl <= 1)
            {
                return TunnelVerdict.TimeExceeded;
            }
            uint inside = _forwards.ProtocolForward(pf).InsideServer;
            ip.Destination = inside;
            ip.ChecksumRaw = Checksum.Update(ip.ChecksumRaw, dst, inside);
            _counters.ProtocolForwarded++;
        }
        ip.DecrementTtl();
        _counters.PacketsOut2In++;
        _counters.BytesOut2In += ipSpan.Length;
        return TunnelVerdict.ToInside;
    }

    /// <summary>
    /// Masquerades a port-less flow (in2out <paramref name="key"/>) on <paramref name="external"/>:
    /// -1 with <see cref="DropReason.ProtocolInUse"/> when another inside host already talks that
    /// protocol to the remote from that address, or <see cref="DropReason.SessionLimit"/>.
    /// </summary>
    public int Open(in FlowKey key, uint external, long nowMs, out DropReason reason)
    {
        SessionTable table = _sessions.Table;
        if (table.Count >= table.Capacity)
        {
            reason = DropReason.SessionLimit;
            return -1;
        }
        var out2in = new FlowKey(key.Destination, external, 0, 0, key.Protocol);
        if (_sessions.Out2In(out2in, nowMs) >= 0)
        {
            reason = DropReason.ProtocolInUse;
            return -1;
        }
        int m = table.AddMapping(key.Source, 0, external, 0, key.Protocol, -1, endpointIndependent: false);
        if (m < 0)
        {
            reason = DropReason.SessionLimit;
            return -1;
        }
        int s = table.AddSession(m, key, out2in, LruClass.Udp, nowMs);
        if (s < 0)
        {
            table.RemoveMapping(m);
            reason = DropReason.SessionLimit;
            return -1;
        }
        table.Sessions[s].Origin = SessionOrigin.PortLess;
        reason = DropReason.SessionLimit; // meaningful only with -1
        return s;
    }

    private static TunnelVerdict Drop(ref PacketContext ctx, DropReason reason)
    {
        ctx.Drop(reason);
        return TunnelVerdict.Dropped;
    }
}
