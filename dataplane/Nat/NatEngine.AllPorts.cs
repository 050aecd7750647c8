using Natd.Dataplane.Packets;
using Natd.Dataplane.Pcp;
using Natd.Dataplane.Sessions;

namespace Natd.Dataplane.Nat;

// All-ports PCP mappings (pcp.all-ports; RFC 6887 sections 11.1 and 11.3; docs/architecture.md,
// "Port Control Protocol"): a MAP with internal port 0 (TCP or UDP) or protocol 0 (both) opens
// every port the requesting host's subscriber owns on its paired address (its deterministic range,
// or the port blocks it holds) to the same port of that host. A subscriber's ports arrive at the
// shard that owns the subscriber (ShardMap.PortOwner), where the mapping was made.
public sealed partial class NatEngine
{
    /// <summary>
    /// MAP for all ports, <c>pcp.all-ports</c> on: create or refresh the all-ports mapping of
    /// (<paramref name="inside"/>, protocol 6, 17 or 0). The reply assigns the subscriber's paired
    /// address and port 0 (every port). A nonzero suggested port cannot be honoured (the mapping is
    /// all ports): it is ignored, or with PREFER_FAILURE CANNOT_PROVIDE_EXTERNAL (section 13.2), as
    /// is a suggested address that is not the paired one. Another host of the subscriber holding
    /// all ports of an overlapping protocol: CANNOT_PROVIDE_EXTERNAL (the ports are the
    /// subscriber's, one host gets them). Quota: USER_EX_QUOTA. Port blocks: the mapping holds a
    /// port of a block as its anchor (a block is allocated when the subscriber has none), NO_RESOURCES
    /// when none can be had. A subscriber outside <c>nat.deterministic.inside</c>: NOT_AUTHORIZED.
    /// </summary>
    private PcpResultCode PcpMapAllPorts(ref PcpRequest rq, uint n0, uint n1, uint n2, uint inside, out uint external, out uint lifetime)
    {
        external = 0;
        lifetime = 0;
        PcpMappings table = _pcp!;
        byte proto = rq.Protocol;
        if (rq.PreferFailure && rq.SuggestedPortRaw != 0)
        {
            return PcpResultCode.CannotProvideExternal; // one port cannot be promised where all are given
        }
        PcpSettings ps = _settings.Pcp;
        uint granted = Math.Clamp(rq.Lifetime, (uint)ps.MinLifetime, (uint)ps.MaxLifetime);
        int m = table.FindInternal(proto, inside, 0);
        if (m >= 0 && !table.Live(m, _now))
        {
            table.Remove(m, _now, PcpDeleteCause.Expired);
            m = -1;
        }
        if (m >= 0)
        {
            ref PcpMapping e = ref table[m];
            if (!NonceAllows(ref e, n0, n1, n2, rq.HasThirdParty))
            {
                return PcpResultCode.NotAuthorized; // another client's mapping (section 11.3)
            }
            if (rq.PreferFailure && rq.SuggestedAddress != 0 && rq.SuggestedAddress != e.External)
            {
                return PcpResultCode.CannotProvideExternal;
            }
            table.Refresh(m, granted, _now, n0, n1, n2);
            table.SetFilters(m, ((ReadOnlySpan<PcpFilter>)rq.Filters)[..rq.FilterCount]);
            (external, lifetime) = (e.External, granted);
            return PcpResultCode.Success;
        }
        if (table.CountOf(inside) >= ps.MappingsPerSubscriber)
        {
            return PcpResultCode.UserExQuota;
        }
        if (table.Full)
        {
            return PcpResultCode.NoResources;
        }
        if (AllPortsHeldByAnother(table, proto, inside))
        {
            return PcpResultCode.CannotProvideExternal;
        }
        int poolIndex, anchor = 0;
        if (_deterministic is not null)
        {
            if (!_deterministic.TryForward(inside, out DeterministicRange range))
            {
                return PcpResultCode.NotAuthorized; // not a subscriber of the map: it owns no ports
            }
            poolIndex = range.PoolIndex;
        }
        else if (Subscribers?.Blocks is not null)
        {
            poolIndex = PcpPoolIndex(inside);
            int cls = SessionTable.ProtocolClass(PcpMappings.AnchorProtocol(proto));
            Table.NowMs = _now;
            anchor = AllocateAny(inside, cls, ref poolIndex, out PcpResultCode why);
            if (anchor < 0)
            {
                return why;
            }
        }
        else
        {
            return PcpResultCode.NotAuthorized; // dynamic allocation: the subscriber owns no ports (the config refuses this)
        }
        uint address = _addresses.Pool[poolIndex];
        if (rq.PreferFailure && rq.SuggestedAddress != 0 && rq.SuggestedAddress != address)
        {
            FreeAnchor(inside, poolIndex, proto, anchor);
            return PcpResultCode.CannotProvideExternal;
        }
        m = table.Add(proto, inside, 0, address, FlowKey.PortToRaw((ushort)anchor), anchor != 0 ? poolIndex : -1, natPmp: false);
        if (m < 0)
        {
            FreeAnchor(inside, poolIndex, proto, anchor);
            return PcpResultCode.NoResources;
        }
        table.Refresh(m, granted, _now, n0, n1, n2);
        table.SetFilters(m, ((ReadOnlySpan<PcpFilter>)rq.Filters)[..rq.FilterCount]);
        (external, lifetime) = (address, granted);
        return PcpResultCode.Success;
    }

    private void FreeAnchor(uint inside, int poolIndex, byte proto, int anchor)
    {
        if (anchor != 0)
        {
            FreeAny(inside, poolIndex, SessionTable.ProtocolClass(PcpMappings.AnchorProtocol(proto)), anchor);
        }
    }

    /// <summary>
    /// True when a live all-ports mapping of a protocol overlapping <paramref name="proto"/> (the
    /// same, or 0 with either) belongs to another host of <paramref name="inside"/>'s subscriber.
    /// An expired one is removed on the way.
    /// </summary>
    private bool AllPortsHeldByAnother(PcpMappings table, byte proto, uint inside)
    {
        uint sub = _settings.Cgnat.SubscriberOf(inside);
        ReadOnlySpan<byte> overlapping = proto == 0 ? [0, IpProtocol.Tcp, IpProtocol.Udp] : [proto, 0];
        foreach (byte p in overlapping)
        {
            int k = table.FindAllPorts(sub, p);
            if (k < 0)
            {
                continue;
            }
            if (!table.Live(k, _now))
            {
                table.Remove(k, _now, PcpDeleteCause.Expired);
                continue;
            }
            if (table[k].Internal != inside)
            {
                return true;
            }
        }
        return false;
    }

    /// <summary>
    /// Out2in flow opener, the second half of <see cref="FlowOpener.Pcp"/> (after forwards and
    /// explicit PCP mappings, before the mapping opener): a
    /// TCP or UDP packet to external port P of a subscriber whose host holds a live all-ports
    /// mapping for the protocol (or protocol 0) opens a session to that host's port P, when P is
    /// the subscriber's on the mapping's address (deterministic range, or a block it holds), in
    /// <c>pcp.allowed-ports</c>, and held by no other mapping (a live mapping of (host, P) to P is
    /// joined). The mapping's FILTERs, the inbound rules (<c>in: outside</c>), a SYN for TCP and the
    /// subscriber's session limit apply as for explicit mappings. The new session mapping takes P
    /// from the subscriber's range or block and gives it back when its last session ends, without
    /// the quarantine (<see cref="Mapping.ReuseAtOnce"/>). No allocation.
    /// </summary>
    /// <returns>False when the packet is not for an all-ports mapping; true when handled (opened, or dropped with the reason in <paramref name="ctx"/>).</returns>
    private bool TryOpenAllPorts(in FlowKey key, byte tcpFlags, ref PacketContext ctx, out int session)
    {
        session = -1;
        PcpMappings table = _pcp!;
        int pool = _addresses.PoolIndexOf(key.Destination);
        ushort port = FlowKey.PortToHost(key.DestinationPort);
        if (pool < 0 || !_settings.Pcp.AllowedPorts.Contains(port))
        {
            return false;
        }
        uint subscriber;
        if (_deterministic is not null)
        {
            if (!_deterministic.TryReverse(key.Destination, port, out DeterministicRange range))
            {
                return false;
            }
            subscriber = _settings.Cgnat.SubscriberOf(range.Subscriber);
        }
        else if (Subscribers?.Blocks is { } blocks)
        {
            int b = blocks.BlockOf(pool, port);
            if (b < 0 || !blocks.IsHeld(b))
            {
                return false;
            }
            subscriber = blocks.OwnerOf(b);
        }
        else
        {
            return false;
        }
        int m = table.FindAllPorts(subscriber, key.Protocol);
        if (!table.Live(m, _now))
        {
            m = table.FindAllPorts(subscriber, 0);
            if (!table.Live(m, _now))
            {
                return false;
            }
        }
        ref PcpMapping e = ref table[m];
        if (e.External != key.Destination)
        {
            return false; // a block on another address (spill pairing): not the mapping's
        }
        int cls = SessionTable.ProtocolClass(key.Protocol);
        bool anchor = e.ExternalPortRaw == key.DestinationPort && PcpMappings.AnchorProtocol(e.Protocol) == key.Protocol;
        int sm = Table.FindMappingByExternal(key.Destination, key.DestinationPort, key.Protocol);
        if (sm >= 0)
        {
            ref Mapping held = ref Table.Mappings[sm];
            if (held.InsideAddress != e.Internal || held.InsidePort != key.DestinationPort)
            {
                return false; // another flow's port: its mapping's filtering decides
            }
        }
        else if (!anchor && (Table.Ports.IsUsed(pool, cls, port) || Table.Ports.IsQuarantined(pool, cls, port)))
        {
            return false; // held by something without a mapping (an ALG's reservation) or resting
        }
        DropReason reason = PcpInboundRefusal(table, m, key, tcpFlags);
        if (reason == Ok)
        {
            session = OpenOnAllPorts(e.Internal, key, pool, sm, anchor, out reason);
        }
        if (session < 0)
        {
            ctx.Drop(reason);
        }
        return true;
    }

    /// <summary>
    /// Opens the session of <paramref name="out2in"/> to (<paramref name="inside"/>, its destination
    /// port) on session mapping <paramref name="sm"/>, or on a new one: over the anchor's port
    /// (owned by the PCP mapping) or over the port taken now from the subscriber's range or block.
    /// </summary>
    private int OpenOnAllPorts(uint inside, in FlowKey out2in, int pool, int sm, bool anchor, out DropReason reason)
    {
        if (Table.Count >= Table.Capacity)
        {
            reason = DropReason.SessionLimit;
            return -1;
        }
        if (Subscribers is { } sp && !sp.Admit(inside, _now, out reason))
        {
            return -1; // counted against the subscriber as any inbound session
        }
        byte proto = out2in.Protocol;
        ushort portRaw = out2in.DestinationPort;
        bool fresh = sm < 0;
        if (fresh)
        {
            bool eim = _settings.Mapping == MappingBehaviour.EndpointIndependent && Table.FindMappingByInside(inside, portRaw, proto) < 0;
            int cls = SessionTable.ProtocolClass(proto);
            if (!anchor && !TryTakeSpecific(inside, pool, cls, FlowKey.PortToHost(portRaw)))
            {
                reason = Subscribers is null ? DropReason.PortExhausted : DropReason.SubscriberPortLimit;
                return -1;
            }
            sm = Table.AddMapping(inside, portRaw, out2in.Destination, portRaw, proto, anchor ? -1 : pool, eim);
            if (sm < 0)
            {
                if (!anchor)
                {
                    FreeAny(inside, pool, cls, FlowKey.PortToHost(portRaw));
                }
                reason = DropReason.SessionLimit;
                return -1;
            }
            // The port is the subscriber's and this mapping will open it again to the same host and
            // port: resting it in the quarantine would only shut a server out between connections.
            Table.Mappings[sm].ReuseAtOnce = true;
        }
        var in2out = new FlowKey(inside, out2in.Source, portRaw, out2in.SourcePort, proto);
        int s = Table.AddSession(sm, in2out, out2in, InitialClass(proto), _now);
        if (s < 0)
        {
            if (fresh && Table.Mappings[sm].SessionCount == 0)
            {
                Table.RemoveMapping(sm);
            }
            reason = DropReason.SessionLimit;
            return -1;
        }
        Table.Sessions[s].Origin = SessionOrigin.Inbound;
        reason = Ok;
        return s;
    }

    /// <summary>A reload that turns <c>pcp.all-ports</c> off: every all-ports mapping goes (a delete event with cause reload each); their sessions run on.</summary>
    private void RemoveAllPortsMappings()
    {
        PcpMappings table = _pcp!;
        for (int m = 0; m < table.Capacity && table.HasAllPorts; m++)
        {
            if (table[m].InUse && table[m].AllPorts)
            {
                table.Remove(m, _now, PcpDeleteCause.Reload);
            }
        }
    }

    /// <summary>Fills in the external ports of the all-ports mappings among <paramref name="into"/>[<paramref name="from"/>..] (a listing; allocates).</summary>
    private void DescribeAllPorts(List<PcpMappingInfo> into, int from)
    {
        for (int i = from; i < into.Count; i++)
        {
            PcpMappingInfo info = into[i];
            if (!info.AllPorts)
            {
                continue;
            }
            var ports = new List<(int Low, int High)>();
            int step = 1;
            if (_deterministic is not null && _deterministic.TryForward(info.Internal, out DeterministicRange range))
            {
                ports.Add((range.Low, range.High));
            }
            else if (Subscribers is { Blocks: { } blocks } sp)
            {
                sp.BlocksOf(info.Internal, _addresses.PoolIndexOf(info.External), ports);
                step = blocks.Step;
            }
            into[i] = info with { Ports = ports, PortStep = step };
        }
    }

    /// <summary>
    /// Restores a saved all-ports mapping (see <see cref="ImportPcpMappings"/>): with
    /// <c>pcp.all-ports</c> on, for an inside host this shard owns, on the address its subscriber
    /// has now; with port blocks its anchor port is taken back (from the restored session mapping
    /// that uses it, else from the subscriber's block). False when any of that fails.
    /// </summary>
    private bool ImportAllPorts(PcpMappingRecord r, int poolIndex, uint n0, uint n1, uint n2)
    {
        PcpMappings table = _pcp!;
        if (!_settings.Pcp.AllPorts || r.Protocol is not (0 or IpProtocol.Tcp or IpProtocol.Udp) || table.FindInternal(r.Protocol, r.Internal, 0) >= 0
            || (_options.Shards > 1 && _shardMap.OwnerOfInside(r.Internal) != _options.Shard) || AllPortsHeldByAnother(table, r.Protocol, r.Internal))
        {
            return false;
        }
        int anchor = r.ExternalPort;
        int owner = -1;
        if (_deterministic is not null)
        {
            if (anchor != 0 || !_deterministic.TryForward(r.Internal, out DeterministicRange range) || range.PoolIndex != poolIndex)
            {
                return false;
            }
        }
        else if (Subscribers?.Blocks is null || anchor == 0)
        {
            return false;
        }
        else
        {
            byte ap = PcpMappings.AnchorProtocol(r.Protocol);
            ushort raw = FlowKey.PortToRaw((ushort)anchor);
            int sm = Table.FindMappingByInside(r.Internal, raw, ap);
            if (sm >= 0 && Table.Mappings[sm] is { InUse: true, StaticPort: false, PoolIndex: >= 0 } im
                && im.ExternalAddress == r.External && im.ExternalPort == raw)
            {
                Table.Mappings[sm].StaticPort = true; // the anchor's owner again; the session mapping uses it
                owner = im.PoolIndex;
            }
            else if (TryTakeSpecific(r.Internal, poolIndex, SessionTable.ProtocolClass(ap), (ushort)anchor) || AdoptBlockPort(r.Internal, poolIndex, SessionTable.ProtocolClass(ap), anchor))
            {
                owner = poolIndex;
            }
            else
            {
                return false;
            }
        }
        int m = table.Add(r.Protocol, r.Internal, 0, r.External, FlowKey.PortToRaw((ushort)anchor), owner, natPmp: false);
        if (m < 0)
        {
            return false;
        }
        RestorePcpState(table, m, r, _now, n0, n1, n2);
        return true;
    }
}
