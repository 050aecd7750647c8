using Natd.Dataplane.Alg;
using Natd.Dataplane.Packets;
using Natd.Dataplane.Sessions;

namespace Natd.Dataplane.Nat;

/// <summary>
/// A frame the engine translated and gave to an ALG helper instead of transmitting it
/// (<see cref="Verdict.ToHelper"/>): what the helper needs to handle it and what the engine needs
/// to finish it (<see cref="NatEngine.CompleteAlg"/>).
/// </summary>
/// <param name="Kind">The ALG.</param>
/// <param name="Connection">The control connection (inside, remote, external endpoints).</param>
/// <param name="Direction">Which way the frame travels.</param>
/// <param name="Egress">Side to transmit on afterwards.</param>
/// <param name="NextHop">Next hop on that side, network order.</param>
/// <param name="ReservedPort">External TCP port reserved for a possible inbound expectation, host order; 0 when none.</param>
/// <param name="ReservedPoolIndex">Pool index of the reserved port's address.</param>
/// <param name="Allocator">The allocator the port came from (a reload that changes the pool replaces it; the port is then no longer ours to use or free).</param>
/// <param name="ControlKey">The control session's in2out key (related sessions name it).</param>
public readonly record struct AlgPending(
    AlgKind Kind,
    AlgConnection Connection,
    AlgDirection Direction,
    Side Egress,
    uint NextHop,
    ushort ReservedPort,
    int ReservedPoolIndex,
    PortAllocator? Allocator,
    FlowKey ControlKey);

public sealed partial class NatEngine
{
    /// <summary>Pending expectations one shard keeps at most; more are refused and counted.</summary>
    public const int MaxExpectations = 4096;

    private struct Expectation
    {
        public FlowKey Control;       // the control session's in2out key
        public long ExpiresMs;
        public uint Remote;           // 0: any
        public uint External;
        public uint Inside;
        public ushort RemotePort;     // host order; 0: any
        public ushort ExternalPort;   // host order
        public ushort InsidePort;     // host order; 0: any (outbound)
        public short PoolIndex;       // >= 0: ExternalPort is reserved in the allocator for this expectation
        public ExpectationKind Kind;
        public byte Protocol;
        public AlgKind Alg;
        public bool InUse;
    }

    private Expectation[] _expect = [];
    private int _expectHigh;
    private int _expectCount;
    private readonly Dictionary<(byte, uint, ushort), int> _expectInbound = [];
    private readonly Dictionary<(byte, uint, uint, ushort), int> _expectOutbound = [];
    private readonly Dictionary<int, FlowKey> _related = [];

    // Expectations by deadline, so a sweep visits what expired, not every slot (created with _expect).
    private DeadlineQueue? _expectDue;

    // Relations of deleted sessions are forgotten once the map doubled since the last pass, so that
    // pass costs amortised O(1) per relation made, not O(relations) per sweep. Until then a stale
    // entry is harmless: TryGetControl checks the session is still related, MarkRelated overwrites.
    private int _relatedPruneAt = RelatedPruneMin;
    private const int RelatedPruneMin = 64;

    /// <summary>Expectation slots the sweep examined so far: what it costs, which depends on what expires, not on how many are pending.</summary>
    internal long ExpectationSweepVisits { get; private set; }

    /// <summary>ALG counters of this shard (single writer).</summary>
    public AlgCounters AlgStats { get; } = new();

    /// <summary>Pending expectations.</summary>
    public int ExpectationCount => _expectCount;

    /// <summary>
    /// Ends the translated frame's fast path and hands it to its ALG: records what the helper and
    /// <see cref="CompleteAlg"/> need, and reserves an external port when an in2out frame of an ALG
    /// that advertises inside endpoints (FTP PORT/EPRT, DCC offers) carries payload.
    /// </summary>
    private Verdict ToHelper(ref Session ses, AlgDirection direction, Side egress, uint nextHop, int payloadLength, ref PacketContext ctx)
    {
        ushort reserved = 0;
        int poolIndex = -1;
        if (direction == AlgDirection.In2Out && payloadLength > 0 && ses.Alg is AlgKind.Ftp or AlgKind.Irc)
        {
            poolIndex = PoolIndexOf(ses.ExternalAddress);
            if (poolIndex >= 0)
            {
                int port = Table.Ports.Allocate(poolIndex, SessionTable.ProtocolClass(IpProtocol.Tcp), privileged: false);
                if (port > 0)
                {
                    reserved = (ushort)port;
                }
                else
                {
                    AlgStats.PortsExhausted++;
                }
            }
        }
        FlowKey k = ses.In2Out;
        var conn = new AlgConnection(k.Protocol, k.Source, FlowKey.PortToHost(k.SourcePort), k.Destination, FlowKey.PortToHost(k.DestinationPort),
            ses.ExternalAddress, FlowKey.PortToHost(ses.ExternalPort));
        ctx.Alg = new AlgPending(ses.Alg, conn, direction, egress, nextHop, reserved, poolIndex, reserved != 0 ? Table.Ports : null, k);
        AlgStats.Frames[(int)ses.Alg]++;
        return Verdict.ToHelper;
    }

    /// <summary>
    /// Finishes a frame its ALG helper handled: opens the expectations it asked for (after checking
    /// each names the control connection's inside host, and its remote host unless the ALG's peer is
    /// anyone, as for DCC), frees the reserved port if unused, and readies the frame for
    /// transmission (Ethernet addresses, or the ARP hold queue).
    /// </summary>
    /// <param name="slot">The frame's buffer (it may have grown: the first <paramref name="length"/> bytes).</param>
    /// <param name="length">Frame length in bytes.</param>
    /// <param name="pending">What <see cref="PacketContext.Alg"/> was when the frame left.</param>
    /// <param name="actions">What the helper asked for.</param>
    /// <param name="ctx">The frame's context (time in; drop reason out).</param>
    /// <returns><see cref="Verdict.ToInside"/> or <see cref="Verdict.ToOutside"/> to transmit, <see cref="Verdict.Consumed"/> when held for ARP, <see cref="Verdict.Drop"/> (counted).</returns>
    public Verdict CompleteAlg(Span<byte> slot, int length, in AlgPending pending, AlgActions actions, ref PacketContext ctx)
    {
        Begin(ref ctx);
        Verdict v = CompleteAlgFrame(slot, length, pending, actions, ref ctx);
        End(ref ctx);
        return v;
    }

    private Verdict CompleteAlgFrame(Span<byte> slot, int length, in AlgPending pending, AlgActions actions, ref PacketContext ctx)
    {
        bool reservedUsed = false;
        bool ours = pending.ReservedPort != 0 && ReferenceEquals(pending.Allocator, Table.Ports);
        foreach (ExpectationRequest e in actions.Expectations)
        {
            if (!Acceptable(e, pending, ours, reservedUsed))
            {
                AlgStats.Refused[(int)pending.Kind]++;
                continue;
            }
            if (AddExpectation(e, pending))
            {
                reservedUsed |= e.UsesReservedPort;
            }
        }
        if (ours && !reservedUsed)
        {
            Table.Ports.Free(pending.ReservedPoolIndex, SessionTable.ProtocolClass(IpProtocol.Tcp), pending.ReservedPort);
        }
        AlgStats.Rewrites[(int)pending.Kind] += actions.Rewrites;
        AlgStats.Refused[(int)pending.Kind] += actions.Refused;
        if (actions.Drop)
        {
            return ctx.Drop(DropReason.AlgRefused);
        }
        if (length < EthernetHeader.Length + Ipv4Header.MinLength || length > slot.Length)
        {
            return ctx.Drop(DropReason.Truncated);
        }
        return SendTo(pending.Egress, slot[..length], pending.NextHop);
    }

    /// <summary>A frame its helper never returned (the helper failed): frees its reserved port.</summary>
    public void AbandonAlg(in AlgPending pending)
    {
        AlgStats.Lost[(int)pending.Kind]++;
        if (pending.ReservedPort != 0 && ReferenceEquals(pending.Allocator, Table.Ports))
        {
            Table.Ports.Free(pending.ReservedPoolIndex, SessionTable.ProtocolClass(IpProtocol.Tcp), pending.ReservedPort);
        }
    }

    /// <summary>Defence in depth: a helper's request may only open a pinhole to the control connection's own inside host.</summary>
    private static bool Acceptable(in ExpectationRequest e, in AlgPending p, bool reservedOurs, bool reservedUsed)
    {
        AlgConnection c = p.Connection;
        if (e.InsideAddress != c.InsideAddress || e.Protocol is not (IpProtocol.Tcp or IpProtocol.Udp))
        {
            return false;
        }
        // Only DCC's peer is "anyone"; every other ALG's related connection comes from the control connection's server.
        if (e.RemoteAddress != c.RemoteAddress && !(p.Kind == AlgKind.Irc && e.RemoteAddress == 0))
        {
            return false;
        }
        if (e.Kind == ExpectationKind.Outbound)
        {
            return e.RemotePort != 0;
        }
        if (e.InsidePort == 0)
        {
            return false;
        }
        return e.UsesReservedPort
            ? reservedOurs && !reservedUsed && e.ExternalPort == p.ReservedPort && e.Protocol == IpProtocol.Tcp
            : e.ExternalPort == c.ExternalPort && e.Protocol == c.Protocol && e.InsidePort == c.InsidePort;
    }

    private bool AddExpectation(in ExpectationRequest e, in AlgPending p)
    {
        if (_expectCount >= MaxExpectations)
        {
            AlgStats.ExpectationsRefused++;
            return false;
        }
        if (_expect.Length == 0)
        {
            _expect = new Expectation[64];
            _expectDue ??= new DeadlineQueue(MaxExpectations);
        }
        int slot = -1;
        for (int i = 0; i < _expectHigh; i++)
        {
            if (!_expect[i].InUse)
            {
                slot = i;
                break;
            }
        }
        if (slot < 0)
        {
            if (_expectHigh == _expect.Length)
            {
                Array.Resize(ref _expect, Math.Min(MaxExpectations, _expect.Length * 2));
            }
            slot = _expectHigh++;
        }
        ref Expectation x = ref _expect[slot];
        x = new Expectation
        {
            Control = p.ControlKey,
            ExpiresMs = _now + _settings.Algs.ExpectationTimeout * 1000L,
            Remote = e.RemoteAddress,
            RemotePort = e.RemotePort,
            External = p.Connection.ExternalAddress,
            ExternalPort = e.ExternalPort,
            Inside = e.InsideAddress,
            InsidePort = e.InsidePort,
            PoolIndex = (short)(e.UsesReservedPort ? p.ReservedPoolIndex : -1),
            Kind = e.Kind,
            Protocol = e.Protocol,
            Alg = p.Kind,
            InUse = true,
        };
        _expectDue!.Ensure(slot, x.ExpiresMs); // a reused slot may still be queued at an earlier deadline: checked then
        if (e.Kind == ExpectationKind.Inbound)
        {
            var key = (x.Protocol, x.External, x.ExternalPort);
            if (_expectInbound.TryGetValue(key, out int old))
            {
                RemoveExpectation(old, freePort: true); // the newer offer wins (a retransmitted RRQ, a second PORT)
            }
            _expectInbound[key] = slot;
        }
        else
        {
            var key = (x.Protocol, x.Inside, x.Remote, x.RemotePort);
            if (_expectOutbound.TryGetValue(key, out int old))
            {
                RemoveExpectation(old, freePort: true);
            }
            _expectOutbound[key] = slot;
        }
        _expectCount++;
        AlgStats.ExpectationsCreated++;
        return true;
    }

    private void RemoveExpectation(int i, bool freePort)
    {
        ref Expectation x = ref _expect[i];
        if (!x.InUse)
        {
            return;
        }
        if (x.Kind == ExpectationKind.Inbound)
        {
            _expectInbound.Remove((x.Protocol, x.External, x.ExternalPort));
        }
        else
        {
            _expectOutbound.Remove((x.Protocol, x.Inside, x.Remote, x.RemotePort));
        }
        if (freePort && x.PoolIndex >= 0)
        {
            Table.Ports.Free(x.PoolIndex, SessionTable.ProtocolClass(x.Protocol), x.ExternalPort);
        }
        x.InUse = false;
        _expectCount--;
        if (i == _expectHigh - 1)
        {
            while (_expectHigh > 0 && !_expect[_expectHigh - 1].InUse)
            {
                _expectHigh--;
            }
        }
    }

    /// <summary>
    /// Out2in miss: a connection an ALG expected (FTP active data, DCC, a TFTP server's reply from
    /// its new port). Only the expected remote (any, for DCC) may open it, to exactly the inside
    /// endpoint the control connection advertised; the expectation is used once.
    /// </summary>
    /// <returns>The new session, or -1 when nothing was expected (reason untouched) or it failed (reason set).</returns>
    private int TryInboundExpectation(in FlowKey key, byte tcpFlags, ref DropReason reason)
    {
        if (!_expectInbound.TryGetValue((key.Protocol, key.Destination, FlowKey.PortToHost(key.DestinationPort)), out int i))
        {
            return -1;
        }
        ref Expectation x = ref _expect[i];
        if (x.ExpiresMs <= _now)
        {
            AlgStats.ExpectationsExpired++;
            RemoveExpectation(i, freePort: true);
            return -1;
        }
        if ((x.Remote != 0 && x.Remote != key.Source) || (x.RemotePort != 0 && x.RemotePort != FlowKey.PortToHost(key.SourcePort)))
        {
            return -1; // a third party knocking on an expected port: plain unsolicited traffic
        }
        if (key.Protocol == IpProtocol.Tcp && (tcpFlags & (Tcp.Syn | Tcp.Ack | Tcp.Rst)) != Tcp.Syn)
        {
            return -1;
        }
        if (!InboundAllowed(key))
        {
            reason = DropReason.RuleDeny; // rules naming `in: outside` apply to related connections too
            return -1;
        }
        if (Table.Count >= Table.Capacity)
        {
            reason = DropReason.SessionLimit;
            return -1;
        }
        int m;
        if (x.PoolIndex >= 0)
        {
            // The reserved port becomes the mapping's: freed with it.
            m = Table.AddMapping(x.Inside, FlowKey.PortToRaw(x.InsidePort), x.External, FlowKey.PortToRaw(x.ExternalPort), x.Protocol, x.PoolIndex, endpointIndependent: false);
            if (m < 0)
            {
                reason = DropReason.SessionLimit;
                return -1;
            }
        }
        else
        {
            // TFTP: the reply joins the client's own mapping, which must still be there.
            int parent = Table.FindIn2Out(x.Control);
            m = parent >= 0 ? Table.Sessions[parent].Mapping : -1;
            if (m < 0 || Table.Mappings[m].ExternalPort != FlowKey.PortToRaw(x.ExternalPort) || Table.Mappings[m].InsideAddress != x.Inside)
            {
                RemoveExpectation(i, freePort: false);
                reason = DropReason.NoSession;
                return -1;
            }
        }
        x.PoolIndex = -1; // the port now belongs to the mapping
        var in2out = new FlowKey(x.Inside, key.Source, FlowKey.PortToRaw(x.InsidePort), key.SourcePort, key.Protocol);
        int s = Table.FindIn2Out(in2out) < 0 ? Table.AddSession(m, in2out, key, InitialClass(key.Protocol), _now) : -1;
        if (s < 0)
        {
            if (Table.Mappings[m].SessionCount == 0)
            {
                Table.RemoveMapping(m);
            }
            RemoveExpectation(i, freePort: false);
            reason = DropReason.SessionLimit;
            return -1;
        }
        MarkRelated(s, x.Control);
        AlgStats.ExpectationsUsed++;
        RemoveExpectation(i, freePort: false);
        return s;
    }

    /// <summary>In2out: a new session the ALG expected from the inside (FTP passive data) is marked related to its control connection.</summary>
    private void MatchOutboundExpectation(int s, in FlowKey key)
    {
        if (!_expectOutbound.TryGetValue((key.Protocol, key.Source, key.Destination, FlowKey.PortToHost(key.DestinationPort)), out int i))
        {
            return;
        }
        ref Expectation x = ref _expect[i];
        if (x.ExpiresMs <= _now)
        {
            AlgStats.ExpectationsExpired++;
            RemoveExpectation(i, freePort: false);
            return;
        }
        if (x.InsidePort != 0 && x.InsidePort != FlowKey.PortToHost(key.SourcePort))
        {
            return;
        }
        MarkRelated(s, x.Control);
        AlgStats.ExpectationsUsed++;
        RemoveExpectation(i, freePort: false);
    }

    private void MarkRelated(int s, in FlowKey control)
    {
        Table.Sessions[s].Origin = SessionOrigin.Related;
        _related[s] = control;
    }

    /// <summary>The control connection's in2out key a related session belongs to, when it has one.</summary>
    internal bool TryGetControl(int s, out FlowKey control)
    {
        control = default;
        return Table.Sessions[s].Origin == SessionOrigin.Related && _related.TryGetValue(s, out control);
    }

    /// <summary>Expires expectations past their lifetime and forgets relations of deleted sessions. Slow path (sweeper).</summary>
    private void SweepAlg(long nowMs)
    {
        while (_expectDue is not null && _expectDue.TryPopDue(nowMs, out int i))
        {
            ExpectationSweepVisits++;
            ref Expectation x = ref _expect[i];
            if (!x.InUse)
            {
                continue; // used or replaced since
            }
            if (x.ExpiresMs <= nowMs)
            {
                AlgStats.ExpectationsExpired++;
                RemoveExpectation(i, freePort: true);
            }
            else
            {
                _expectDue.Push(i, x.ExpiresMs); // the slot was reused by a later expectation
            }
        }
        if (_related.Count >= _relatedPruneAt)
        {
            List<int>? stale = null;
            foreach (var kv in _related)
            {
                ref Session ses = ref Table.Sessions[kv.Key];
                if (!ses.InUse || ses.Origin != SessionOrigin.Related)
                {
                    (stale ??= []).Add(kv.Key);
                }
            }
            if (stale is not null)
            {
                foreach (int s in stale)
                {
                    _related.Remove(s);
                }
            }
            _relatedPruneAt = Math.Max(RelatedPruneMin, 2 * _related.Count);
        }
    }

    /// <summary>Drops every expectation (the pool changed: reserved ports belong to an allocator that is gone).</summary>
    private void ClearExpectations()
    {
        for (int i = 0; i < _expectHigh; i++)
        {
            RemoveExpectation(i, freePort: false);
        }
        _expectDue?.Clear();
    }

    /// <summary>Drops every expectation and frees its reserved port (natctl flush).</summary>
    private void FlushExpectations()
    {
        for (int i = 0; i < _expectHigh; i++)
        {
            RemoveExpectation(i, freePort: true);
        }
        _expectDue?.Clear();
        _related.Clear();
        _relatedPruneAt = RelatedPruneMin;
    }

    /// <summary>Pending expectations, for natctl (slow path).</summary>
    public void CollectExpectations(List<ExpectationInfo> into, long nowMs)
    {
        for (int i = 0; i < _expectHigh; i++)
        {
            ref Expectation x = ref _expect[i];
            if (x.InUse && x.ExpiresMs > nowMs)
            {
                into.Add(new ExpectationInfo(x.Alg, x.Kind, x.Protocol, x.Inside, x.InsidePort, x.External, x.ExternalPort, x.Remote, x.RemotePort,
                    (x.ExpiresMs - nowMs) / 1000.0, x.Control.Source, FlowKey.PortToHost(x.Control.SourcePort), x.Control.Destination, FlowKey.PortToHost(x.Control.DestinationPort)));
            }
        }
    }
}

/// <summary>A pending expectation as natctl shows it. Addresses network order, ports host order.</summary>
/// <param name="Alg">The ALG that asked for it.</param>
/// <param name="Kind">Inbound (a pinhole) or outbound (a marker).</param>
/// <param name="Protocol">IP protocol.</param>
/// <param name="InsideAddress">Inside host.</param>
/// <param name="InsidePort">Inside port (0: any).</param>
/// <param name="ExternalAddress">External address.</param>
/// <param name="ExternalPort">External port (inbound).</param>
/// <param name="RemoteAddress">Expected peer (0: any).</param>
/// <param name="RemotePort">Expected peer port (0: any).</param>
/// <param name="ExpiresInSeconds">Seconds left.</param>
/// <param name="ControlInside">The control connection's inside address.</param>
/// <param name="ControlInsidePort">The control connection's inside port.</param>
/// <param name="ControlRemote">The control connection's remote address.</param>
/// <param name="ControlRemotePort">The control connection's remote port.</param>
public sealed record ExpectationInfo(
    AlgKind Alg,
    ExpectationKind Kind,
    byte Protocol,
    uint InsideAddress,
    ushort InsidePort,
    uint ExternalAddress,
    ushort ExternalPort,
    uint RemoteAddress,
    ushort RemotePort,
    double ExpiresInSeconds,
    uint ControlInside,
    ushort ControlInsidePort,
    uint ControlRemote,
    ushort ControlRemotePort);

/// <summary>ALG counters of one shard, indexed by <see cref="AlgKind"/> where an array (single writer: the poller).</summary>
public sealed class AlgCounters
{
    private const int Kinds = 5;

    /// <summary>Frames handed to each ALG's helper.</summary>
    public readonly long[] Frames = new long[Kinds];
    /// <summary>Payload edits each ALG made.</summary>
    public readonly long[] Rewrites = new long[Kinds];
    /// <summary>Commands each ALG refused (a third-party address, malformed, split), and expectations the engine refused.</summary>
    public readonly long[] Refused = new long[Kinds];
    /// <summary>Frames a helper never returned (it failed and was restarted).</summary>
    public readonly long[] Lost = new long[Kinds];
    /// <summary>Expectations opened.</summary>
    public long ExpectationsCreated;
    /// <summary>Expectations a related connection used.</summary>
    public long ExpectationsUsed;
    /// <summary>Expectations that expired unused.</summary>
    public long ExpectationsExpired;
    /// <summary>Expectations refused because the shard had <see cref="NatEngine.MaxExpectations"/> pending.</summary>
    public long ExpectationsRefused;
    /// <summary>In2out ALG frames for which no external port could be reserved.</summary>
    public long PortsExhausted;
}
