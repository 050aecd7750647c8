using Natd.Dataplane.Alg;
using Natd.Dataplane.Packets;
using Natd.Dataplane.Sessions;

namespace Natd.Dataplane.Nat;

/// <summary>
/// A frame the engine translated and gave to an ALG helper instead of transmitting it
/// (<see cref="Verdict.ToHelper"/>): what the helper needs to handle it and what the engine needs
/// to finish it (<see cref="AlgBridge.Complete"/>).
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

/// <summary>
/// The ALG bridge of one shard: everything between the translator and the ALG helpers. It owns the
/// expectations (inbound pinholes and outbound markers, RFC 3022 section 6 style related
/// connections: their reserved external ports and expiry), the relation of each related session to
/// its control connection, the hand-off of a control-connection frame to its helper
/// (<see cref="HandOff"/>, producing the <see cref="AlgPending"/> into <see cref="PacketContext.Alg"/>),
/// the frames that are with a helper and their timeout (<see cref="Begin"/>, <see cref="End"/>,
/// abandoned by <see cref="Sweep"/>), their completion (<see cref="Complete"/>) and the ALG counters.
/// Single threaded (the shard's poller, or replay); the poller only moves frames to and from the
/// helper actors. Times are milliseconds of the engine's clock; addresses network order, ports host
/// order unless named raw.
/// </summary>
public sealed class AlgBridge
{
    /// <summary>Pending expectations one shard keeps at most; more are refused and counted.</summary>
    public const int MaxExpectations = 4096;

    /// <summary>How long a frame may stay with a helper before it is given up by default (milliseconds).</summary>
    public const long DefaultHelperTimeoutMs = 5000;

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

    private readonly SessionTable _table;
    private long _expectationTimeoutMs;
    private Expectation[] _expect = [];
    private int _expectHigh;
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

    // Frames with a helper: what finishing or abandoning them needs, and since when.
    private readonly Dictionary<long, (AlgPending Pending, long SinceMs)> _withHelper = [];
    private long _nextRequest;

    /// <summary>Creates the bridge of a shard.</summary>
    /// <param name="table">The shard's session table (its port allocator reserves and frees expectation ports).</param>
    /// <param name="settings">Configuration (the expectation lifetime).</param>
    /// <param name="counters">The shard's counter table (ALG events, expectations).</param>
    public AlgBridge(SessionTable table, NatSettings settings, NatCounters counters)
    {
        _table = table;
        Stats = new AlgCounters(counters);
        Update(settings);
    }

    /// <summary>ALG counters of this shard (single writer).</summary>
    public AlgCounters Stats { get; }

    /// <summary>Pending expectations.</summary>
    public int ExpectationCount => (int)Stats.ExpectationsPending;

    /// <summary>True when an inbound expectation is pending (lets the out2in miss path skip the lookup).</summary>
    public bool HasInbound => _expectInbound.Count > 0;

    /// <summary>True when an outbound expectation is pending (lets the in2out miss path skip the lookup).</summary>
    public bool HasOutbound => _expectOutbound.Count > 0;

    /// <summary>Frames given to a helper and not yet back nor given up.</summary>
    public int FramesWithHelper => _withHelper.Count;

    /// <summary>How long a frame may stay with a helper before <see cref="Sweep"/> gives it up (a helper that failed lost it), milliseconds.</summary>
    public long HelperTimeoutMs { get; set; } = DefaultHelperTimeoutMs;

    /// <summary>Expectation slots the sweep examined so far: what it costs, which depends on what expires, not on how many are pending.</summary>
    internal long ExpectationSweepVisits { get; private set; }

    /// <summary>The engine's deterministic map (null unless <c>nat.allocation</c> is deterministic): expectation ports come from the subscriber's range.</summary>
    internal DeterministicMap? Deterministic { get; set; }

    /// <summary>Takes a reloaded configuration (the lifetime of expectations made from now on).</summary>
    public void Update(NatSettings next) => _expectationTimeoutMs = next.Algs.ExpectationTimeout * 1000L;

    /// <summary>
    /// Ends a translated frame's fast path and hands it to its ALG: records in
    /// <see cref="PacketContext.Alg"/> what the helper and <see cref="Complete"/> need, and reserves
    /// an external TCP port when an in2out frame of an ALG that advertises inside endpoints (FTP
    /// PORT/EPRT, DCC offers) carries payload.
    /// </summary>
    /// <param name="ctx">The packet's context.</param>
    /// <param name="ses">The control session.</param>
    /// <param name="direction">Which way the frame travels.</param>
    /// <param name="egress">Side to transmit on afterwards.</param>
    /// <param name="nextHop">Next hop on that side, network order.</param>
    /// <param name="payloadLength">Transport payload bytes.</param>
    /// <param name="poolIndex">Pool index of the session's external address (-1: not in the pool, nothing is reserved).</param>
    /// <returns><see cref="Verdict.ToHelper"/>.</returns>
    internal Verdict HandOff(ref PacketContext ctx, ref Session ses, AlgDirection direction, Side egress, uint nextHop, int payloadLength, int poolIndex)
    {
        ushort reserved = 0;
        if (direction == AlgDirection.In2Out && payloadLength > 0 && ses.Alg is AlgKind.Ftp or AlgKind.Irc)
        {
            if (poolIndex >= 0)
            {
                // A deterministic subscriber's expectation port comes from its own range (RFC 7422), on its own
                // address; otherwise through the subscriber's allocation (with port blocks, from its blocks).
                int port = Deterministic is not null && Deterministic.TryForward(ses.In2Out.Source, out DeterministicRange range) && range.PoolIndex == poolIndex
                    ? _table.Ports.AllocateInRange(poolIndex, SessionTable.ProtocolClass(IpProtocol.Tcp), range.Low, range.High)
                    : _table.AllocatePort(ses.In2Out.Source, SessionTable.ProtocolClass(IpProtocol.Tcp), privileged: false, poolIndex, out poolIndex);
                if (port > 0)
                {
                    reserved = (ushort)port;
                }
                else
                {
                    Stats.PortsExhausted++;
                }
            }
        }
        else
        {
            poolIndex = -1;
        }
        FlowKey k = ses.In2Out;
        var conn = new AlgConnection(k.Protocol, k.Source, FlowKey.PortToHost(k.SourcePort), k.Destination, FlowKey.PortToHost(k.DestinationPort),
            ses.ExternalAddress, FlowKey.PortToHost(ses.ExternalPort));
        ctx.Alg = new AlgPending(ses.Alg, conn, direction, egress, nextHop, reserved, poolIndex, reserved != 0 ? _table.Ports : null, k);
        Stats.Frames[(int)ses.Alg]++;
        return Verdict.ToHelper;
    }

    /// <summary>
    /// A frame leaves for its helper: remembers it so that <see cref="Sweep"/> gives it up (and frees
    /// its reserved port) if it is not back within <see cref="HelperTimeoutMs"/>.
    /// </summary>
    /// <returns>The request id the helper returns with the frame (never 0).</returns>
    public long Begin(in AlgPending pending, long nowMs)
    {
        long id = ++_nextRequest;
        _withHelper[id] = (pending, nowMs);
        return id;
    }

    /// <summary>A frame is back from its helper: true when it was still awaited (false: given up already, its reservations are gone; drop it).</summary>
    public bool End(long requestId) => _withHelper.Remove(requestId);

    /// <summary>
    /// Finishes a frame its ALG helper handled: opens the expectations it asked for (after checking
    /// each names the control connection's inside host, and its remote host unless the ALG's peer is
    /// anyone, as for DCC), frees the reserved port if unused, and counts the helper's work.
    /// </summary>
    /// <param name="ctx">The frame's context (time; the drop when the helper refused the frame).</param>
    /// <param name="pending">What <see cref="HandOff"/> recorded when the frame left.</param>
    /// <param name="actions">What the helper asked for.</param>
    /// <returns>True when the frame goes on; false when dropped (<see cref="DropReason.AlgRefused"/>, counted in <paramref name="ctx"/>).</returns>
    public bool Complete(ref PacketContext ctx, in AlgPending pending, AlgActions actions)
    {
        bool reservedUsed = false;
        bool ours = pending.ReservedPort != 0 && ReferenceEquals(pending.Allocator, _table.Ports);
        foreach (ExpectationRequest e in actions.Expectations)
        {
            if (!Acceptable(e, pending, ours, reservedUsed))
            {
                Stats.Refused[(int)pending.Kind]++;
                continue;
            }
            if (AddExpectation(e, pending, ctx.NowMs))
            {
                reservedUsed |= e.UsesReservedPort;
            }
        }
        if (ours && !reservedUsed)
        {
            _table.FreeUnusedPort(pending.ControlKey.Source, pending.ReservedPoolIndex, SessionTable.ProtocolClass(IpProtocol.Tcp), pending.ReservedPort);
        }
        Stats.Rewrites[(int)pending.Kind] += actions.Rewrites;
        Stats.Refused[(int)pending.Kind] += actions.Refused;
        if (actions.Drop)
        {
            ctx.Drop(DropReason.AlgRefused);
            return false;
        }
        return true;
    }

    /// <summary>A frame its helper never returned (the helper failed): frees its reserved port and counts it lost.</summary>
    public void Abandon(in AlgPending pending)
    {
        Stats.Lost[(int)pending.Kind]++;
        if (pending.ReservedPort != 0 && ReferenceEquals(pending.Allocator, _table.Ports))
        {
            _table.FreeUnusedPort(pending.ControlKey.Source, pending.ReservedPoolIndex, SessionTable.ProtocolClass(IpProtocol.Tcp), pending.ReservedPort);
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

    private bool AddExpectation(in ExpectationRequest e, in AlgPending p, long nowMs)
    {
        if (Stats.ExpectationsPending >= MaxExpectations)
        {
            Stats.ExpectationsRefused++;
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
            ExpiresMs = nowMs + _expectationTimeoutMs,
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
        Stats.ExpectationsPending++;
        Stats.ExpectationsCreated++;
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
            _table.FreeUnusedPort(x.Inside, x.PoolIndex, SessionTable.ProtocolClass(x.Protocol), x.ExternalPort);
        }
        x.InUse = false;
        Stats.ExpectationsPending--;
        if (i == _expectHigh - 1)
        {
            while (_expectHigh > 0 && !_expect[_expectHigh - 1].InUse)
            {
                _expectHigh--;
            }
        }
    }

    /// <summary>
    /// Out2in miss, first half: the inbound expectation this packet may use. Only the expected remote
    /// (any, for DCC) may use it, a TCP one only with a bare SYN; one past its lifetime is removed
    /// (its reserved port freed) and counted expired. The caller then applies its inbound rules and
    /// calls <see cref="OpenInbound"/>.
    /// </summary>
    /// <param name="key">The packet's out2in key.</param>
    /// <param name="tcpFlags">TCP flags (0 for UDP).</param>
    /// <param name="nowMs">Current time.</param>
    /// <returns>The expectation's handle, or -1 when nothing usable was expected.</returns>
    public int FindInbound(in FlowKey key, byte tcpFlags, long nowMs)
    {
        if (!_expectInbound.TryGetValue((key.Protocol, key.Destination, FlowKey.PortToHost(key.DestinationPort)), out int i))
        {
            return -1;
        }
        ref Expectation x = ref _expect[i];
        if (x.ExpiresMs <= nowMs)
        {
            Stats.ExpectationsExpired++;
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
        return i;
    }

    /// <summary>
    /// Out2in miss, second half: opens the connection expectation <paramref name="handle"/> allowed,
    /// to exactly the inside endpoint the control connection advertised, marked related to it; the
    /// expectation is used once.
    /// </summary>
    /// <param name="handle">What <see cref="FindInbound"/> returned.</param>
    /// <param name="key">The packet's out2in key.</param>
    /// <param name="initialClass">The new session's expiry class.</param>
    /// <param name="nowMs">Current time.</param>
    /// <param name="reason">Set when it fails.</param>
    /// <returns>The new session, or -1 (reason set).</returns>
    public int OpenInbound(int handle, in FlowKey key, LruClass initialClass, long nowMs, ref DropReason reason)
    {
        ref Expectation x = ref _expect[handle];
        if (_table.Count >= _table.Capacity)
        {
            reason = DropReason.SessionLimit;
            return -1;
        }
        int m;
        if (x.PoolIndex >= 0)
        {
            // The reserved port becomes the mapping's: freed with it.
            m = _table.AddMapping(x.Inside, FlowKey.PortToRaw(x.InsidePort), x.External, FlowKey.PortToRaw(x.ExternalPort), x.Protocol, x.PoolIndex, endpointIndependent: false);
            if (m < 0)
            {
                reason = DropReason.SessionLimit;
                return -1;
            }
        }
        else
        {
            // TFTP: the reply joins the client's own mapping, which must still be there.
            int parent = _table.FindIn2Out(x.Control);
            m = parent >= 0 ? _table.Sessions[parent].Mapping : -1;
            if (m < 0 || _table.Mappings[m].ExternalPort != FlowKey.PortToRaw(x.ExternalPort) || _table.Mappings[m].InsideAddress != x.Inside)
            {
                RemoveExpectation(handle, freePort: false);
                reason = DropReason.NoSession;
                return -1;
            }
        }
        x.PoolIndex = -1; // the port now belongs to the mapping
        var in2out = new FlowKey(x.Inside, key.Source, FlowKey.PortToRaw(x.InsidePort), key.SourcePort, key.Protocol);
        int s = _table.FindIn2Out(in2out) < 0 ? _table.AddSession(m, in2out, key, initialClass, nowMs) : -1;
        if (s < 0)
        {
            if (_table.Mappings[m].SessionCount == 0)
            {
                _table.RemoveMapping(m);
            }
            RemoveExpectation(handle, freePort: false);
            reason = DropReason.SessionLimit;
            return -1;
        }
        MarkRelated(s, x.Control);
        Stats.ExpectationsUsed++;
        RemoveExpectation(handle, freePort: false);
        return s;
    }

    /// <summary>In2out: a new session the ALG expected from the inside (FTP passive data) is marked related to its control connection.</summary>
    /// <param name="s">The new session.</param>
    /// <param name="key">Its in2out key.</param>
    /// <param name="nowMs">Current time.</param>
    public void MatchOutbound(int s, in FlowKey key, long nowMs)
    {
        if (!_expectOutbound.TryGetValue((key.Protocol, key.Source, key.Destination, FlowKey.PortToHost(key.DestinationPort)), out int i))
        {
            return;
        }
        ref Expectation x = ref _expect[i];
        if (x.ExpiresMs <= nowMs)
        {
            Stats.ExpectationsExpired++;
            RemoveExpectation(i, freePort: false);
            return;
        }
        if (x.InsidePort != 0 && x.InsidePort != FlowKey.PortToHost(key.SourcePort))
        {
            return;
        }
        MarkRelated(s, x.Control);
        Stats.ExpectationsUsed++;
        RemoveExpectation(i, freePort: false);
    }

    /// <summary>Marks session <paramref name="s"/> related to the control connection <paramref name="control"/> (its in2out key), as natctl lists it.</summary>
    public void MarkRelated(int s, in FlowKey control)
    {
        _table.Sessions[s].Origin = SessionOrigin.Related;
        _related[s] = control;
    }

    /// <summary>The control connection's in2out key a related session belongs to, when it has one.</summary>
    public bool TryGetControl(int s, out FlowKey control)
    {
        control = default;
        return _table.Sessions[s].Origin == SessionOrigin.Related && _related.TryGetValue(s, out control);
    }

    /// <summary>
    /// Timed state, slow path (sweeper): expires expectations past their lifetime (freeing reserved
    /// ports), gives up frames a helper kept longer than <see cref="HelperTimeoutMs"/> (each once,
    /// counted in <see cref="AlgCounters.Lost"/>), and forgets relations of deleted sessions.
    /// </summary>
    /// <param name="nowMs">Current time.</param>
    public void Sweep(long nowMs)
    {
        ReapHelperFrames(nowMs);
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
                Stats.ExpectationsExpired++;
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
                ref Session ses = ref _table.Sessions[kv.Key];
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

    private void ReapHelperFrames(long nowMs)
    {
        if (_withHelper.Count == 0)
        {
            return;
        }
        List<long>? lost = null;
        foreach (var kv in _withHelper)
        {
            if (nowMs - kv.Value.SinceMs > HelperTimeoutMs)
            {
                (lost ??= []).Add(kv.Key);
            }
        }
        if (lost is null)
        {
            return;
        }
        foreach (long id in lost)
        {
            if (_withHelper.Remove(id, out var f))
            {
                Abandon(f.Pending);
            }
        }
    }

    /// <summary>Drops every expectation without freeing ports (the pool changed: reserved ports belong to an allocator that is gone).</summary>
    public void Clear()
    {
        for (int i = 0; i < _expectHigh; i++)
        {
            RemoveExpectation(i, freePort: false);
        }
        _expectDue?.Clear();
    }

    /// <summary>
    /// ALG control connections whose sessions were deleted since the last <see cref="ClearClosed"/>
    /// (closed, expired, deleted or flushed): the shard tells each one's helper
    /// (<see cref="IAlgHandler.Forget"/>), so its held bytes go back to the pool now rather than at
    /// the helper's idle expiry. Tell them before the next frame goes to a helper, so a new
    /// connection on the same ports is never forgotten in its predecessor's place.
    /// </summary>
    public int ClosedCount => _table.ClosedAlgSessions.Length;

    /// <summary>The <paramref name="i"/>-th closed connection (0 to <see cref="ClosedCount"/> - 1), as its helper knows it.</summary>
    public AlgConnection Closed(int i, out AlgKind kind)
    {
        ClosedAlgSession c = _table.ClosedAlgSessions[i];
        kind = c.Alg;
        FlowKey k = c.In2Out;
        return new AlgConnection(k.Protocol, k.Source, FlowKey.PortToHost(k.SourcePort), k.Destination, FlowKey.PortToHost(k.DestinationPort),
            c.ExternalAddress, FlowKey.PortToHost(c.ExternalPortRaw));
    }

    /// <summary>Empties the closed list (every helper was told).</summary>
    public void ClearClosed() => _table.ClearClosedAlg();

    /// <summary>Drops every expectation and frees its reserved port, and forgets every relation (natctl flush).</summary>
    public void Flush()
    {
        for (int i = 0; i < _expectHigh; i++)
        {
            RemoveExpectation(i, freePort: true);
        }
        _expectDue?.Clear();
        _related.Clear();
        _relatedPruneAt = RelatedPruneMin;
    }

    /// <summary>Pending expectations, for natctl (slow path: allocates).</summary>
    public void Collect(List<ExpectationInfo> into, long nowMs)
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

/// <summary>
/// The ALG slots of a shard's counter table (<see cref="NatCounters"/>), by <see cref="AlgKind"/>
/// where a span (single writer: the poller). A view: the values live in the one table.
/// </summary>
public sealed class AlgCounters(NatCounters counters)
{
    private readonly Counters.CounterTable _t = counters.Table;

    /// <summary>Frames handed to each ALG's helper.</summary>
    public Span<long> Frames => _t.Range(NatCounters.AlgBase, NatCounters.AlgKinds);
    /// <summary>Payload edits each ALG made.</summary>
    public Span<long> Rewrites => _t.Range(NatCounters.AlgBase + NatCounters.AlgKinds, NatCounters.AlgKinds);
    /// <summary>Commands each ALG refused (a third-party address, malformed, split), and expectations the engine refused.</summary>
    public Span<long> Refused => _t.Range(NatCounters.AlgBase + 2 * NatCounters.AlgKinds, NatCounters.AlgKinds);
    /// <summary>Frames a helper never returned (it failed and was restarted).</summary>
    public Span<long> Lost => _t.Range(NatCounters.AlgBase + 3 * NatCounters.AlgKinds, NatCounters.AlgKinds);
    /// <summary>Expectations opened.</summary>
    public ref long ExpectationsCreated => ref _t[(int)Counters.ShardCounter.ExpectationsCreated];
    /// <summary>Expectations a related connection used.</summary>
    public ref long ExpectationsUsed => ref _t[(int)Counters.ShardCounter.ExpectationsUsed];
    /// <summary>Expectations that expired unused.</summary>
    public ref long ExpectationsExpired => ref _t[(int)Counters.ShardCounter.ExpectationsExpired];
    /// <summary>Expectations refused because the shard had <see cref="AlgBridge.MaxExpectations"/> pending.</summary>
    public ref long ExpectationsRefused => ref _t[(int)Counters.ShardCounter.ExpectationsRefused];
    /// <summary>Expectations waiting for their connection (a gauge).</summary>
    public ref long ExpectationsPending => ref _t[(int)Counters.ShardCounter.ExpectationsPending];
    /// <summary>In2out ALG frames for which no external port could be reserved.</summary>
    public ref long PortsExhausted => ref _t[(int)Counters.ShardCounter.AlgPortsExhausted];
}
