using Natd.Dataplane.Alg;
using Natd.Dataplane.Packets;
using Natd.Dataplane.Sessions;
using Natd.Dataplane.Actors;

namespace Natd.Dataplane.Nat;

public sealed partial class NatEngine
{
    private const int BackendHoldDownMs = 30_000;
    private const int PacketLogPerSecond = 20;
    private ForwardRule[] _rules = [];
    private RuleCounters _ruleCounters = new(["policy"], new long[1]);
    private bool _quiet;
    private bool _builtInRules = true;
    private PortForward[] _forwards = [];
    private long[][] _backendDownUntil = [];
    private int[] _roundRobin = [];
    private ProtocolForward[] _protocolForwards = [];
    private int _logTokens = PacketLogPerSecond;
    private long _logRefillMs;

    /// <summary>
    /// Rule names and hit counts, swapped whole on reload so a reader on another thread never pairs
    /// one generation's names with another's counts. The last entry counts default-policy decisions.
    /// </summary>
    public RuleCounters RuleCounters => Volatile.Read(ref _ruleCounters);

    /// <summary>Matches of forward rule i (same order as <see cref="NatSettings.Rules"/>); the last slot counts default-policy decisions.</summary>
    public ReadOnlySpan<long> RuleHits => _ruleCounters.Hits;

    /// <summary>Names for <see cref="RuleHits"/>, the last being "policy".</summary>
    public IReadOnlyList<string> RuleNames => _ruleCounters.Names;

    /// <summary>Packets of rules marked log: true, queued for the control plane to log (rate limited, lossy by design).</summary>
    public Actors.SpscRing<RuleLogRecord> RuleLog { get; } = new(256);

    /// <summary>Rebuilds rule, forward and protocol-forward state from settings (construction and reload).</summary>
    private void CompileRules(NatSettings s)
    {
        var oldNames = _ruleCounters.Names;
        var oldHits = _ruleCounters.Hits;
        _builtInRules = s.Rules is null;
        _rules = s.Rules is null ? [] : [.. s.Rules];
        var names = new string[_rules.Length + 1];
        var hits = new long[_rules.Length + 1];
        for (int i = 0; i < _rules.Length; i++)
        {
            names[i] = _rules[i].Name;
        }
        names[^1] = "policy";
        // Counters survive a reload for rules that keep their name.
        for (int i = 0; i < names.Length; i++)
        {
            for (int j = 0; j < oldNames.Length; j++)
            {
                if (oldNames[j] == names[i] && j < oldHits.Length)
                {
                    hits[i] = oldHits[j];
                }
            }
        }
        Volatile.Write(ref _ruleCounters, new RuleCounters(names, hits));
        _forwards = [.. s.Forwards];
        _backendDownUntil = new long[_forwards.Length][];
        _roundRobin = new int[_forwards.Length];
        for (int f = 0; f < _forwards.Length; f++)
        {
            _backendDownUntil[f] = new long[_forwards[f].Backends.Count];
        }
        _protocolForwards = [.. s.ProtocolForwards];
        _hasAcceptRules = false;
        foreach (var r in _rules)
        {
            _hasAcceptRules |= r.Action == RuleAction.Accept;
        }
        _hasAcceptRules |= !_builtInRules && s.DefaultPolicy == RuleAction.Accept;
    }

    /// <summary>Takes every forward's external ports out of the dynamic allocator so masquerading never hands them out.</summary>
    private void ReserveForwardPorts()
    {
        foreach (var f in _forwards)
        {
            int pool = _addresses.PoolIndexOf(f.ExternalAddress);
            if (pool < 0)
            {
                continue; // the outside address outside the pool: the allocator never uses it
            }
            int cls = SessionTable.ProtocolClass(f.Protocol);
            for (int p = f.ExternalPorts.Low; p <= f.ExternalPorts.High; p++)
            {
                // With several shards every shard keeps forward ports out of its own allocation
                // (port-forward traffic itself is steered to shard 0).
                Table.Ports.TryReserve(pool, cls, p);
            }
        }
        ReserveTriggerPorts();
        ReserveIsakmpPorts();
    }

    /// <summary>
    /// The decision for a new outbound flow: the first matching rule's action, else the default
    /// policy. With no configured rules, the built-in rule masquerades everything from the inside
    /// networks (the caller has already checked the source). Slow path only.
    /// </summary>
    private RuleAction Decide(in FlowKey key, RuleInterface ingress, RuleInterface egress)
    {
        if (_builtInRules)
        {
            return RuleAction.Masquerade;
        }
        var rules = _rules;
        bool ports = key.Protocol is IpProtocol.Tcp or IpProtocol.Udp;
        ushort sport = FlowKey.PortToHost(key.SourcePort), dport = FlowKey.PortToHost(key.DestinationPort);
        for (int i = 0; i < rules.Length; i++)
        {
            var r = rules[i];
            if ((r.Protocol is byte p && p != key.Protocol)
                || (r.In != RuleInterface.Any && r.In != ingress)
                || (r.Out != RuleInterface.Any && r.Out != egress)
                || !AnyPrefix(r.Sources, key.Source)
                || !AnyPrefix(r.Destinations, key.Destination)
                || (r.SourcePorts.Count > 0 && (!ports || !AnyRange(r.SourcePorts, sport)))
                || (r.DestinationPorts.Count > 0 && (!ports || !AnyRange(r.DestinationPorts, dport))))
            {
                continue;
            }
            if (_quiet)
            {
                return r.Action;
            }
            _ruleCounters.Hits[i]++;
            if (r.Log)
            {
                LogPacket(i, key, r.Action);
            }
            return r.Action;
        }
        if (!_quiet)
        {
            _ruleCounters.Hits[^1]++;
        }
        return _settings.DefaultPolicy;
    }

    /// <summary>
    /// Rules for a new inbound flow (a port forward, or a session filtering admits on a mapping):
    /// only rules that name <c>in: outside</c> apply, first match decides, and no match allows it,
    /// since a forward or a mapping is itself the explicit allow. Returns false when denied or rejected.
    /// </summary>
    private bool InboundAllowed(in FlowKey key)
    {
        if (_builtInRules)
        {
            return true;
        }
        var rules = _rules;
        bool ports = key.Protocol is IpProtocol.Tcp or IpProtocol.Udp;
        ushort sport = FlowKey.PortToHost(key.SourcePort), dport = FlowKey.PortToHost(key.DestinationPort);
        for (int i = 0; i < rules.Length; i++)
        {
            var r = rules[i];
            if (r.In != RuleInterface.Outside
                || (r.Protocol is byte p && p != key.Protocol)
                || !AnyPrefix(r.Sources, key.Source)
                || !AnyPrefix(r.Destinations, key.Destination)
                || (r.SourcePorts.Count > 0 && (!ports || !AnyRange(r.SourcePorts, sport)))
                || (r.DestinationPorts.Count > 0 && (!ports || !AnyRange(r.DestinationPorts, dport))))
            {
                continue;
            }
            _ruleCounters.Hits[i]++;
            if (r.Log)
            {
                LogPacket(i, key, r.Action);
            }
            return r.Action is RuleAction.Accept or RuleAction.Masquerade;
        }
        return true;
    }

    private static bool AnyPrefix(IReadOnlyList<Ipv4Prefix> list, uint address)
    {
        if (list.Count == 0)
        {
            return true;
        }
        for (int i = 0; i < list.Count; i++)
        {
            if (list[i].Contains(address))
            {
                return true;
            }
        }
        return false;
    }

    private static bool AnyRange(IReadOnlyList<PortRange> list, ushort port)
    {
        for (int i = 0; i < list.Count; i++)
        {
            if (list[i].Contains(port))
            {
                return true;
            }
        }
        return false;
    }

    private void LogPacket(int rule, in FlowKey key, RuleAction action)
    {
        if (_now - _logRefillMs >= 1000)
        {
            _logRefillMs = _now;
            _logTokens = PacketLogPerSecond;
        }
        if (_logTokens <= 0)
        {
            return;
        }
        _logTokens--;
        RuleLog.TryEnqueue(new RuleLogRecord
        {
            TimeMs = _now, Rule = rule, Action = action, Protocol = key.Protocol,
            Source = key.Source, Destination = key.Destination,
            SourcePort = FlowKey.PortToHost(key.SourcePort), DestinationPort = FlowKey.PortToHost(key.DestinationPort),
        });
    }

    /// <summary>The port forward covering (protocol, external address, port), or -1.</summary>
    private int FindForward(byte proto, uint external, ushort portRaw)
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

    /// <summary>
    /// Picks a backend: source hash (a client sticks to one backend) or round robin, skipping
    /// backends that refused recently; when all refused, the first choice anyway.
    /// </summary>
    private int PickBackend(int f, uint remote)
    {
        var fw = _forwards[f];
        int n = fw.Backends.Count;
        int first = fw.Balance == Balance.RoundRobin
            ? (_roundRobin[f]++ & int.MaxValue) % n
            : (int)(new FlowKey(remote, 0, 0, 0, 0).Hash(_seed) % (uint)n);
        var down = _backendDownUntil[f];
        for (int k = 0; k < n; k++)
        {
            int b = (first + k) % n;
            if (down[b] <= _now)
            {
                return b;
            }
        }
        return first;
    }

    /// <summary>Creates the session of a new inbound connection to a port forward.</summary>
    private int CreateForwardSession(int f, in FlowKey key, out DropReason reason)
    {
        if (Table.Count >= Table.Capacity)
        {
            reason = DropReason.SessionLimit;
            return -1;
        }
        var fw = _forwards[f];
        int b = PickBackend(f, key.Source);
        var backend = fw.Backends[b];
        ushort iport = backend.Value == 0 ? key.DestinationPort : FlowKey.PortToRaw(backend.Value);
        var in2out = new FlowKey(backend.Key, key.Source, iport, key.SourcePort, key.Protocol);
        if (LookupIn2Out(in2out) >= 0)
        {
            reason = DropReason.NoSession; // the backend already talks to this remote from that port
            return -1;
        }
        int s = AddStaticSession(in2out, key, SessionOrigin.Forward, out reason);
        if (s >= 0)
        {
            Table.Mappings[Table.Sessions[s].Mapping].Tag = (f << 8) | b;
            Table.Sessions[s].Alg = ForwardAlg(key.Protocol, FlowKey.PortToHost(iport), FlowKey.PortToHost(key.DestinationPort));
        }
        return s;
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
        AlgKind alg = _settings.Algs.Classify(proto, backendPort);
        if (alg == AlgKind.None)
        {
            alg = _settings.Algs.Classify(proto, externalPort);
        }
        return alg == AlgKind.Ftp ? alg : AlgKind.None;
    }

    /// <summary>
    /// A session on a mapping of its own whose external port no allocator owns (a forward's, a
    /// trigger's, an identity): -1 with <see cref="DropReason.SessionLimit"/> when the table is full.
    /// </summary>
    private int AddStaticSession(in FlowKey in2out, in FlowKey out2in, SessionOrigin origin, out DropReason reason)
    {
        reason = DropReason.SessionLimit;
        if (Table.Count >= Table.Capacity)
        {
            return -1;
        }
        int m = Table.AddMapping(in2out.Source, in2out.SourcePort, out2in.Destination, out2in.DestinationPort, in2out.Protocol, -1, endpointIndependent: false);
        if (m < 0)
        {
            return -1;
        }
        int s = Table.AddSession(m, in2out, out2in, InitialClass(in2out.Protocol), _now);
        if (s < 0)
        {
            Table.RemoveMapping(m);
            return -1;
        }
        Table.Sessions[s].Origin = origin;
        reason = Ok;
        return s;
    }

    /// <summary>A backend refused: skip it for a while so the client's retry reaches another one.</summary>
    private void MarkBackendDown(int tag)
    {
        int f = tag >> 8, b = tag & 0xFF;
        if (f < _backendDownUntil.Length && b < _backendDownUntil[f].Length)
        {
            _backendDownUntil[f][b] = _now + BackendHoldDownMs;
            Counters.BackendRefusals++;
        }
    }

    /// <summary>Identity session for a flow a rule accepts: routed without translation, replies matched statefully.</summary>
    private int CreateIdentity(in FlowKey key, out DropReason reason)
        => AddStaticSession(key, key.Protocol == IpProtocol.Icmp
            ? new FlowKey(key.Destination, key.Source, 0, key.SourcePort, key.Protocol)
            : key.Reverse(), SessionOrigin.Accept, out reason);

    /// <summary>The protocol forward for (protocol, external address), or -1.</summary>
    private int FindProtocolForwardByExternal(byte proto, uint external)
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
    private int FindProtocolForwardByServer(byte proto, uint server)
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
}

/// <summary>Forward rule names and their hit counters (one generation of the rule set).</summary>
/// <param name="Names">Rule names; the last is "policy".</param>
/// <param name="Hits">Matches per rule, same order; written only by the owning engine's thread.</param>
public sealed record RuleCounters(string[] Names, long[] Hits);

/// <summary>A packet that matched a forward rule marked <c>log: true</c> (what ipfwadm -o printed).</summary>
public struct RuleLogRecord
{
    /// <summary>When (engine clock, ms).</summary>
    public long TimeMs;
    /// <summary>Index of the rule.</summary>
    public int Rule;
    /// <summary>The rule's action.</summary>
    public RuleAction Action;
    /// <summary>IP protocol.</summary>
    public byte Protocol;
    /// <summary>Source address, network order.</summary>
    public uint Source;
    /// <summary>Destination address, network order.</summary>
    public uint Destination;
    /// <summary>Source port, host order (0 without ports).</summary>
    public ushort SourcePort;
    /// <summary>Destination port, host order.</summary>
    public ushort DestinationPort;
}
