using Natd.Dataplane.Io;
using Natd.Dataplane.Packets;
using Natd.Dataplane.Sessions;

namespace Natd.Dataplane.Nat;

/// <summary>
/// A step of the slow path: something that may open a session for (or refuse) a TCP, UDP or ICMP
/// packet that matched no live session. Each direction runs its openers in one fixed order
/// (<see cref="NatEngine.In2OutOpeners"/>, <see cref="NatEngine.Out2InOpeners"/>); the first that
/// opens a session or refuses the packet ends the walk.
/// </summary>
internal enum FlowOpener : byte
{
    /// <summary>In2out: a TCP packet without a session must be a SYN (RFC 5382 REQ-2; else <see cref="DropReason.TcpNotSyn"/>).</summary>
    TcpSynOnly,
    /// <summary>In2out: the forward rules decide deny, reject (ICMP administratively prohibited), accept (untranslated) or masquerade.</summary>
    Rules,
    /// <summary>Port triggers: in2out, traffic from an opened range; out2in, a connection into one.</summary>
    Trigger,
    /// <summary>In2out: a new mapping and session (RFC 4787 REQ-1 endpoint-independent mapping by default, RFC 6056 port).</summary>
    Masquerade,
    /// <summary>Out2in: a reply to an accepted (untranslated) flow only ever matches a live session.</summary>
    Transit,
    /// <summary>Out2in: an ALG's expectation (an FTP data connection, a DCC offer, ...).</summary>
    Expectation,
    /// <summary>Out2in: a port forward, after the inbound rules (a new TCP connection must open with a SYN).</summary>
    Forward,
    /// <summary>
    /// Out2in: a PCP or NAT-PMP mapping (RFC 6887 section 11) whose FILTERs admit the remote, after
    /// the inbound rules; then an all-ports mapping (<c>pcp.all-ports</c>) of the subscriber owning
    /// the destination port, which opens it to the same port of its host.
    /// </summary>
    Pcp,
    /// <summary>Out2in: another session on an existing mapping, if filtering allows (RFC 4787 REQ-8; endpoint- or address-dependent only).</summary>
    Mapping,
    /// <summary>Out2in: addressed to natd itself with nothing open: dropped as <see cref="DropReason.ToGateway"/>.</summary>
    ToGateway,
}

public sealed partial class NatEngine
{
    /// <summary>
    /// In2out openers, in order. The ISAKMP opener (UDP 500 to 500) runs before the session lookup
    /// (its sessions are routed by cookies, VPN Masquerade HOWTO 6) and port-less protocols (GRE,
    /// ESP, protocol forwards) have their own path (<see cref="OtherIn2Out"/>).
    /// </summary>
    internal static readonly FlowOpener[] In2OutOpeners =
    [
        FlowOpener.TcpSynOnly, // stale or forged TCP never reaches the rules
        FlowOpener.Rules,      // deny/reject end here; accept opens an identity session
        FlowOpener.Trigger,    // masquerade only: an opened trigger range keeps its inside host
        FlowOpener.Masquerade, // then matches outbound expectations, classifies the ALG, activates triggers
    ];

    /// <summary>
    /// Out2in openers, in order. As for in2out, ISAKMP runs before the lookup and port-less
    /// protocols have their own path (<see cref="OtherOut2In"/>).
    /// </summary>
    internal static readonly FlowOpener[] Out2InOpeners =
    [
        FlowOpener.Transit,     // an accepted flow's reply opens nothing
        FlowOpener.Expectation, // an ALG asked for exactly this connection
        FlowOpener.Trigger,     // before forwards: a trigger opened for a host wins the port while active
        FlowOpener.Forward,     // inbound filter, then the forward's backend
        FlowOpener.Pcp,         // a subscriber's own mapping (or its all-ports one): its FILTERs, the inbound rules, then a session to it
        FlowOpener.Mapping,     // inbound filter (unless address-and-port-dependent), then a session on a mapping
        FlowOpener.ToGateway,   // nothing opened
    ];

    /// <summary>
    /// The in2out slow path: <paramref name="live"/> is a live session the fast path handed over
    /// (a forward's backend answered RST), else -1 and the openers run in <see cref="In2OutOpeners"/> order.
    /// </summary>
    private Verdict In2OutSlow(Span<byte> slot, ref int length, Span<byte> ipSpan, in ParsedFrame p, uint nextHop, bool hairpin, int live, ref PacketContext ctx)
    {
        int s = live;
        if (s >= 0)
        {
            ref Session ses = ref Table.Sessions[s];
            if ((ses.Tcp & (TcpSeen.SynOut2In | TcpSeen.Established)) == TcpSeen.SynOut2In)
            {
                // The backend refused the connection: hold it down and let the client's SYN
                // retransmission open a new session on another backend instead of passing the refusal on.
                _forwards.MarkBackendDown(Table.Mappings[ses.Mapping].Tag, _now);
                Table.Delete(s);
                return ctx.Drop(DropReason.BackendRefused);
            }
            return In2OutHit(s, slot, ref length, ipSpan, p, nextHop, hairpin, ref ctx);
        }

        byte proto = p.Protocol;
        RuleAction action = RuleAction.Masquerade;
        DropReason r = Ok;
        foreach (FlowOpener opener in In2OutOpeners)
        {
            switch (opener)
            {
                case FlowOpener.TcpSynOnly:
                    if (proto == IpProtocol.Tcp && (p.TcpFlags & (Tcp.Syn | Tcp.Ack | Tcp.Rst)) != Tcp.Syn)
                    {
                        return ctx.Drop(DropReason.TcpNotSyn);
                    }
                    break;
                case FlowOpener.Rules:
                    action = Decide(p.Key, RuleInterface.Inside, RuleInterface.Outside);
                    switch (action)
                    {
                        case RuleAction.Deny:
                            return ctx.Drop(DropReason.RuleDeny);
                        case RuleAction.Reject:
                            return _icmp.IcmpReply(slot, ref length, Side.Inside, ipSpan, p.Ihl, Icmp.DestinationUnreachable, 13, DropReason.RuleReject, ref ctx);
                        case RuleAction.Accept:
                            if (hairpin)
                            {
                                return ctx.Drop(DropReason.RuleDeny); // an untranslated packet to our own address has nowhere to go
                            }
                            s = CreateIdentity(p.Key, out r);
                            break;
                    }
                    break;
                case FlowOpener.Trigger:
                    if (action == RuleAction.Masquerade && _triggers.Any && proto != IpProtocol.Icmp
                        && _triggers.TryOpenOutbound(p.Key, PairedAddress(p.Source, proto == IpProtocol.Tcp ? _settings.Timeouts.TcpEstablished : _settings.Timeouts.Udp), ref ctx, out s, out FlowKey parent))
                    {
                        if (s < 0)
                        {
                            return Verdict.Drop; // recorded and counted by the context
                        }
                        MarkRelated(s, parent);
                    }
                    break;
                case FlowOpener.Masquerade:
                    if (action == RuleAction.Masquerade)
                    {
                        s = CreateIn2Out(p.Key, out r);
                    }
                    break;
            }
            if (s >= 0 || r != Ok)
            {
                break;
            }
        }
        if (s < 0)
        {
            if (r is DropReason.SubscriberSessionLimit or DropReason.SubscriberPortLimit or DropReason.SubscriberRateLimit && !hairpin)
            {
                // A refused flow is told at once (as a reject rule does), under the ICMP error rate limit.
                return _icmp.IcmpReply(slot, ref length, Side.Inside, ipSpan, p.Ihl, Icmp.DestinationUnreachable, 13, r, ref ctx);
            }
            return ctx.Drop(r);
        }
        if (action == RuleAction.Masquerade)
        {
            if (AlgBridge.HasOutbound)
            {
                AlgBridge.MatchOutbound(s, p.Key, _now);
            }
            Table.Sessions[s].Alg = _settings.Algs.Classify(proto, FlowKey.PortToHost(p.Key.DestinationPort));
            if (_triggers.Any)
            {
                _triggers.MaybeActivate(p.Key, Table.Sessions[s].ExternalAddress, _now);
            }
        }
        return In2OutHit(s, slot, ref length, ipSpan, p, nextHop, hairpin, ref ctx);
    }

    /// <summary>The out2in slow path: the openers in <see cref="Out2InOpeners"/> order, then the packet's rewrite.</summary>
    private Verdict Out2InSlow(Span<byte> slot, ref int length, Span<byte> ipSpan, in ParsedFrame p, bool transit, bool hairpin, ref PacketContext ctx)
    {
        byte proto = p.Protocol;
        bool ported = proto != IpProtocol.Icmp; // ICMP queries open nothing inbound
        int s = -1;
        DropReason r = Ok;
        foreach (FlowOpener opener in Out2InOpeners)
        {
            switch (opener)
            {
                case FlowOpener.Transit:
                    if (transit)
                    {
                        return ctx.Drop(DropReason.NoRoute);
                    }
                    break;
                case FlowOpener.Expectation:
                    if (AlgBridge.HasInbound && ported)
                    {
                        s = TryInboundExpectation(p.Key, p.TcpFlags, ref r);
                    }
                    break;
                case FlowOpener.Trigger:
                    if (_triggers.Any && ported && _triggers.TryOpenInbound(p.Key, p.TcpFlags, ref ctx, out s, out FlowKey parent))
                    {
                        if (s < 0)
                        {
                            return Verdict.Drop; // recorded and counted by the context
                        }
                        MarkRelated(s, parent);
                    }
                    break;
                case FlowOpener.Forward:
                    // The table's opener applies the inbound rules and wants a SYN for a new TCP connection.
                    if (ported && _forwards.TryOpen(p.Key, p.TcpFlags, ref ctx, out s) && s < 0)
                    {
                        return Verdict.Drop; // recorded and counted by the context
                    }
                    break;
                case FlowOpener.Pcp:
                    // An explicit mapping's endpoint first; then a subscriber's port under an all-ports mapping.
                    if (ported && _pcp is { Count: > 0 } pcp
                        && (TryOpenPcp(p.Key, p.TcpFlags, ref ctx, out s) || (pcp.HasAllPorts && TryOpenAllPorts(p.Key, p.TcpFlags, ref ctx, out s)))
                        && s < 0)
                    {
                        return Verdict.Drop; // recorded and counted by the context
                    }
                    break;
                case FlowOpener.Mapping:
                    if (_settings.Filtering != FilteringBehaviour.AddressAndPortDependent && !InboundAllowed(p.Key))
                    {
                        return ctx.Drop(DropReason.RuleDeny);
                    }
                    if (_addresses.PoolIndexOf(p.Destination) >= 0)
                    {
                        s = CreateOut2In(p.Key, p.TcpFlags, out r);
                        if (s < 0)
                        {
                            return ctx.Drop(r);
                        }
                    }
                    break;
                case FlowOpener.ToGateway:
                    return ctx.Drop(DropReason.ToGateway); // the outside address, outside the pool, with no forward
            }
            if (r != Ok)
            {
                return ctx.Drop(r);
            }
            if (s >= 0)
            {
                break;
            }
        }
        return Out2InHit(s, slot, ref length, ipSpan, p, hairpin, ref ctx);
    }
}
