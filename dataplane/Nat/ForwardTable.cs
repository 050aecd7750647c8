using Natd.Dataplane.Alg;
using Natd.Dataplane.Packets;
using Natd.Dataplane.Sessions;

namespace Natd.Dataplane.Nat;

/// <summary>
/// Inbound port forwards (ipportfw) with backend health, and protocol forwards (ipfwd --masq) of
/// one shard. Owns the forwards, each backend's hold-down deadline (a backend that refused, by RST
/// or ICMP unreachable, is skipped for <see cref="BackendHoldDownMs"/>), the round-robin cursors
/// and the protocol forwards. Opens the session of a new inbound connection to a forward
/// (<see cref="TryOpen"/>: one of the slow path's flow openers). Forward traffic is steered to
/// shard 0 (<see cref="ShardMap"/>); every shard reserves the forward ports out of its allocator.
/// Rebuilt by <see cref="Update"/> on reload (hold-downs and cursors reset). Single threaded.
/// </summary>
internal sealed class ForwardTable
{
    /// <summary>How long a refusing backend is skipped, milliseconds.</summary>
    public const int BackendHoldDownMs = 30_000;

    private readonly NatCounters _counters;
    private readonly LiveSessions _sessions;
    private readonly RuleSet _rules;
    private readonly ulong _seed;
    private PortForward[] _forwards = [];
    private long[][] _downUntil = [];
    private int[] _roundRobin = [];
    private ProtocolForward[] _protocolForwards = [];
    private AlgSettings _algs = null!;

    /// <summary>Builds the table from <paramref name="settings"/>.</summary>
    /// <param name="settings">Forwards, protocol forwards and ALG ports.</param>
    /// <param name="sessions">The shard's sessions (new forward sessions are made there).</param>
    /// <param name="rules">Rules that may deny an inbound connection (<see cref="RuleSet.InboundAllowed"/>).</param>
    /// <param name="counters">The shard's counters (<see cref="NatCounters.BackendRefusals"/>).</param>
    /// <param name="seed">Hash seed of source-hash balancing.</param>
    public ForwardTable(NatSettings settings, LiveSessions sessions, RuleSet rules, NatCounters counters, ulong seed)
    {
        _sessions = sessions;
        _rules = rules;
        _counters = counters;
        _seed = seed;
        Update(settings);
    }

    /// <summary>Number of port forwards.</summary>
    public int Count => _forwards.Length;

    /// <summary>Port forward <paramref name="f"/> (index as returned by <see cref="Find"/>).</summary>
    public PortForward this[int f] => _forwards[f];

    /// <summary>Takes new forwards (reload): hold-downs and round-robin cursors start afresh.</summary>
    public void Update(NatSettings s)
    {
        _forwards = [.. s.Forwards];
        _downUntil = new long[_forwards.Length][];
        _roundRobin = new int[_forwards.Length];
        for (int f = 0; f < _forwards.Length; f++)
        {
            _downUntil[f] = new long[_forwards[f].Backends.Count];
        }
        _protocolForwards = [.. s.ProtocolForwards];
        _algs = s.Algs;
    }

    /// <summary>Takes every forward's external ports out of <paramref name="ports"/> so masquerading never hands them out.</summary>
    /// <param name="ports">The shard's allocator.</param>
    /// <param name="pool">The external pool, network order (an address outside it has no allocator).</param>
    public void ReservePorts(PortAllocator ports, uint[] pool)
    {
        foreach (var f in _forwards)
        {
            int a = Array.IndexOf(pool, f.ExternalAddress);
            if (a < 0)
            {
                continue; // the outside address outside the pool: the allocator never uses it
            }
            int cls = SessionTable.ProtocolClass(f.Protocol);
            for (int p = f.ExternalPorts.Low; p <= f.ExternalPorts.High; p++)
            {
                // With several shards every shard keeps forward ports out of its own allocation
                // (port-forward traffic itself is steered to shard 0).
                ports.TryReserve(a, cls, p);
            }
        }
    }

    /// <summary>The port forward covering (protocol, external address network order, port raw), or -1.</summary>
    public int Find(byte proto, uint external, ushort portRaw)
    {
        var fw = _forwards;
        ushort port = FlowKey.PortToHost(portRaw);
        for (int i = 0; i < fw.Length; i++)
        {
            if (fw[i].Protocol == proto && fw[i].ExternalAddress == external && fw[i].ExternalPorts.Contains(port))
            {
                return i;
            }
        }
        return -1;
    }

    /// <summary>True when (protocol, external address, port raw) is a forward's.</summary>
    public bool IsForwardPort(byte proto, uint external, ushort portRaw) => Find(proto, external, portRaw) >= 0;

    /// <summary>True when a port forward listens on <paramref name="address"/> (network order).</summary>
    public bool HasForwardOn(uint address)
    {
        foreach (var f in _forwards)
        {
            if (f.ExternalAddress == address)
            {
                return true;
            }
        }
        return false;
    }

    /// <summary>
    /// Slow-path flow opener for an out2in miss (TCP or UDP): when a forward covers the destination,
    /// the rules may deny it (<see cref="DropReason.RuleDeny"/>), a TCP segment other than a SYN is
    /// <see cref="DropReason.NoSession"/>, else a session to a backend is made.
    /// </summary>
    /// <param name="key">The packet's out2in key (ports raw).</param>
    /// <param name="tcpFlags">TCP flags (0 for UDP).</param>
    /// <param name="ctx">The packet's context; a drop is recorded there.</param>
    /// <param name="session">The new session, or -1 when dropped or not a forward's.</param>
    /// <returns>False when no forward covers the destination (the caller goes on); true when handled (opened or dropped).</returns>
    public bool TryOpen(in FlowKey key, byte tcpFlags, ref PacketContext ctx, out int session)
    {
        session = -1;
        int f = Find(key.Protocol, key.Destination, key.DestinationPort);
        if (f < 0)
        {
            return false;
        }
        if (!_rules.InboundAllowed(key, ctx.NowMs))
        {
            ctx.Drop(DropReason.RuleDeny);
            return true;
        }
        if (key.Protocol == IpProtocol.Tcp && (tcpFlags & (Tcp.Syn | Tcp.Ack | Tcp.Rst)) != Tcp.Syn)
        {
            ctx.Drop(DropReason.NoSession);
            return true;
        }
        session = Open(f, key, ctx.NowMs, out DropReason reason);
        if (session < 0)
        {
            ctx.Drop(reason);
        }
        return true;
    }

    /// <summary>
    /// Creates the session of a new inbound connection to forward <paramref name="f"/> on the backend
    /// <see cref="PickBackend"/> chooses; -1 with the reason when the table is full or the backend
    /// already talks to this remote from that port.
    /// </summary>
    public int Open(int f, in FlowKey key, long nowMs, out DropReason reason)
    {
        SessionTable table = _sessions.Table;
        if (table.Count >= table.Capacity)
        {
            reason = DropReason.SessionLimit;
            return -1;
        }
        var fw = _forwards[f];
        int b = PickBackend(f, key.Source, nowMs);
        var backend = fw.Backends[b];
        ushort iport = backend.Value == 0 ? key.DestinationPort : FlowKey.PortToRaw(backend.Value);
        var in2out = new FlowKey(backend.Key, key.Source, iport, key.SourcePort, key.Protocol);
        if (_sessions.In2Out(in2out, nowMs) >= 0)
        {
            reason = DropReason.NoSession; // the backend already talks to this remote from that port
            return -1;
        }
        int s = _sessions.AddStatic(in2out, key, SessionOrigin.Forward, nowMs, out reason);
        if (s >= 0)
        {
            table.Mappings[table.Sessions[s].Mapping].Tag = Tag(f, b);
            table.Sessions[s].Alg = ForwardAlg(key.Protocol, FlowKey.PortToHost(iport), FlowKey.PortToHost(key.DestinationPort));
        }
        return s;
    }

    /// <summary>A forward mapping's tag: forward index and backend index (<see cref="MarkBackendDown"/> reads it back).</summary>
    public static int Tag(int f, int backend) => (f << 8) | backend;

    /// <summary>
    /// Picks a backend of forward <paramref name="f"/> for <paramref name="remote"/>: source hash (a
    /// client sticks to one backend) or round robin, skipping backends held down at
    /// <paramref name="nowMs"/>; when all are held down, the first choice anyway.
    /// </summary>
    public int PickBackend(int f, uint remote, long nowMs)
    {
        var fw = _forwards[f];
        int n = fw.Backends.Count;
        int first = fw.Balance == Balance.RoundRobin
            ? (_roundRobin[f]++ & int.MaxValue) % n
            : (int)(new FlowKey(remote, 0, 0, 0, 0).Hash(_seed) % (uint)n);
        var down = _downUntil[f];
        for (int k = 0; k < n; k++)
        {
            int b = (first + k) % n;
            if (down[b] <= nowMs)
            {
                return b;
            }
        }
        return first;
    }

    /// <summary>
    /// A backend refused (its forward mapping's <paramref name="tag"/>): skip it until
    /// <paramref name="nowMs"/> + <see cref="BackendHoldDownMs"/> so the client's retry reaches
    /// another one; counted in <see cref="NatCounters.BackendRefusals"/>. A stale tag (the forward
    /// is gone since a reload) is ignored.
    /// </summary>
    public void MarkBackendDown(int tag, long nowMs)
    {
        int f = tag >> 8, b = tag & 0xFF;
        if (f < _downUntil.Length && b < _downUntil[f].Length)
        {
            _downUntil[f][b] = nowMs + BackendHoldDownMs;
            _counters.BackendRefusals++;
        }
    }

    /// <summary>True when a forward still sends (out2in's destination) to (in2out's source address and port): reload rechecks.</summary>
    public bool StillHas(in FlowKey in2out, in FlowKey out2in)
    {
        int f = Find(out2in.Protocol, out2in.Destination, out2in.DestinationPort);
        if (f < 0)
        {
            return false;
        }
        foreach (var b in _forwards[f].Backends)
        {
            if (b.Key == in2out.Source && (b.Value == 0 ? in2out.SourcePort == out2in.DestinationPort : FlowKey.PortToRaw(b.Value) == in2out.SourcePort))
            {
                return true;
            }
        }
        return false;
    }

    /// <summary>
    /// The ALG of a connection to a server inside behind a forward: the backend's port decides, else
    /// the forward's external port (a forward of 2121 to an inside port 21, or the other way round).
    /// Only FTP knows the server-inside role (227/229 from the server rewritten, as netfilter's FTP
    /// helper does for a DNATed server); the other ALGs parse their client's side only, so their
    /// forwards stay plain.
    /// </summary>
    private AlgKind ForwardAlg(byte proto, ushort backendPort, ushort externalPort)
    {
        AlgKind alg = _algs.Classify(proto, backendPort);
        if (alg == AlgKind.None)
        {
            alg = _algs.Classify(proto, externalPort);
        }
        return alg == AlgKind.Ftp ? alg : AlgKind.None;
    }

    /// <summary>The protocol forward for (protocol, external address), or -1.</summary>
    public int FindProtocolForwardByExternal(byte proto, uint external)
    {
        var pf = _protocolForwards;
        for (int i = 0; i < pf.Length; i++)
        {
            if (pf[i].Protocol == proto && pf[i].ExternalAddress == external)
            {
                return i;
            }
        }
        return -1;
    }

    /// <summary>The protocol forward whose inside server is <paramref name="server"/> for <paramref name="proto"/>, or -1.</summary>
    public int FindProtocolForwardByServer(byte proto, uint server)
    {
        var pf = _protocolForwards;
        for (int i = 0; i < pf.Length; i++)
        {
            if (pf[i].Protocol == proto && pf[i].InsideServer == server)
            {
                return i;
            }
        }
        return -1;
    }

    /// <summary>Protocol forward <paramref name="i"/>.</summary>
    public ProtocolForward ProtocolForward(int i) => _protocolForwards[i];
}
