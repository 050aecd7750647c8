using Natd.Dataplane.Rings;
using Natd.Dataplane.Packets;
using Natd.Dataplane.Sessions;

namespace Natd.Dataplane.Nat;

/// <summary>
/// The compiled forward rules of one shard (ipchains' forward chain): the ordered rules, the default
/// policy, the per-rule hit counters and the rate-limited log of packets that matched a rule marked
/// <c>log: true</c>. Consulted on the slow path only (a session, once made, carries the decision).
/// Owns the rules, <see cref="Counters"/> and <see cref="Log"/>; replaced wholesale by
/// <see cref="Update"/> on reload, keeping the hit counts of rules that keep their name.
/// Single writer: the engine's thread.
/// </summary>
internal sealed class RuleSet
{
    /// <summary>Log records per second at most (token bucket), so a flood cannot flood the log.</summary>
    private const int PacketLogPerSecond = 20;

    private ForwardRule[] _rules = [];
    private RuleCounters _counters = new(["policy"], new long[1]);
    private RuleAction _defaultPolicy;
    private int _logTokens = PacketLogPerSecond;
    private long _logRefillMs;

    /// <summary>Compiles <paramref name="settings"/>' rules.</summary>
    public RuleSet(NatSettings settings) => Update(settings);

    /// <summary>
    /// True when no rules are configured: the built-in rule masquerades everything from the inside
    /// networks (port-less protocols stay unsupported), and every inbound flow is allowed.
    /// </summary>
    public bool BuiltIn { get; private set; } = true;

    /// <summary>True when some rule (or the default policy) accepts: replies to untranslated flows may arrive for inside hosts.</summary>
    public bool HasAcceptRules { get; private set; }

    /// <summary>Rule names and hit counts, swapped whole on reload (see <see cref="NatEngine.RuleCounters"/>).</summary>
    public RuleCounters Counters => Volatile.Read(ref _counters);

    /// <summary>Packets of rules marked log: true, for the control plane to log (rate limited, lossy by design).</summary>
    public SpscRing<RuleLogRecord> Log { get; } = new(256);

    /// <summary>Recompiles from <paramref name="s"/> (construction and reload); counters survive for rules that keep their name.</summary>
    public void Update(NatSettings s)
    {
        var oldNames = _counters.Names;
        var oldHits = _counters.Hits;
        BuiltIn = s.Rules is null;
        _rules = s.Rules is null ? [] : [.. s.Rules];
        _defaultPolicy = s.DefaultPolicy;
        var names = new string[_rules.Length + 1];
        var hits = new long[_rules.Length + 1];
        for (int i = 0; i < _rules.Length; i++)
        {
            names[i] = _rules[i].Name;
        }
        names[^1] = "policy";
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
        Volatile.Write(ref _counters, new RuleCounters(names, hits));
        bool accept = false;
        foreach (var r in _rules)
        {
            accept |= r.Action == RuleAction.Accept;
        }
        HasAcceptRules = accept || (!BuiltIn && s.DefaultPolicy == RuleAction.Accept);
    }

    /// <summary>
    /// The decision for a new outbound flow: the first matching rule's action (its hit counted, the
    /// packet logged when the rule says so), else the default policy. With no configured rules, the
    /// built-in rule masquerades (the caller has already checked the source). Slow path only.
    /// </summary>
    /// <param name="key">The flow as it arrived (ports network order).</param>
    /// <param name="ingress">Interface it arrived on.</param>
    /// <param name="egress">Interface it leaves by.</param>
    /// <param name="nowMs">Current time, milliseconds (log record time and rate limit).</param>
    public RuleAction Decide(in FlowKey key, RuleInterface ingress, RuleInterface egress, long nowMs)
    {
        if (BuiltIn)
        {
            return RuleAction.Masquerade;
        }
        int i = Match(key, ingress, egress, outsideOnly: false);
        var hits = _counters.Hits;
        if (i < 0)
        {
            hits[^1]++;
            return _defaultPolicy;
        }
        hits[i]++;
        if (_rules[i].Log)
        {
            LogPacket(i, key, _rules[i].Action, nowMs);
        }
        return _rules[i].Action;
    }

    /// <summary>As <see cref="Decide"/> for an inside-to-outside flow, without counting a hit or logging (reload rechecks, tunnel probes).</summary>
    public RuleAction DecideQuietly(in FlowKey key)
    {
        if (BuiltIn)
        {
            return RuleAction.Masquerade;
        }
        int i = Match(key, RuleInterface.Inside, RuleInterface.Outside, outsideOnly: false);
        return i < 0 ? _defaultPolicy : _rules[i].Action;
    }

    /// <summary>
    /// Rules for a new inbound flow (a port forward, a trigger's range, or a session filtering admits
    /// on a mapping): only rules that name <c>in: outside</c> apply, first match decides (its hit
    /// counted), and no match allows it, since a forward or a mapping is itself the explicit allow.
    /// </summary>
    /// <returns>False when denied or rejected.</returns>
    public bool InboundAllowed(in FlowKey key, long nowMs)
    {
        if (BuiltIn)
        {
            return true;
        }
        int i = Match(key, RuleInterface.Outside, RuleInterface.Any, outsideOnly: true);
        if (i < 0)
        {
            return true;
        }
        _counters.Hits[i]++;
        if (_rules[i].Log)
        {
            LogPacket(i, key, _rules[i].Action, nowMs);
        }
        return _rules[i].Action is RuleAction.Accept or RuleAction.Masquerade;
    }

    /// <summary>
    /// Index of the first rule matching, or -1. <paramref name="outsideOnly"/>: only rules naming
    /// <c>in: outside</c> (their <c>out</c> is not consulted), as an inbound flow has no egress rule.
    /// </summary>
    private int Match(in FlowKey key, RuleInterface ingress, RuleInterface egress, bool outsideOnly)
    {
        var rules = _rules;
        bool ports = key.Protocol is IpProtocol.Tcp or IpProtocol.Udp;
        ushort sport = FlowKey.PortToHost(key.SourcePort), dport = FlowKey.PortToHost(key.DestinationPort);
        for (int i = 0; i < rules.Length; i++)
        {
            var r = rules[i];
            bool interfaces = outsideOnly
                ? r.In == RuleInterface.Outside
                : (r.In == RuleInterface.Any || r.In == ingress) && (r.Out == RuleInterface.Any || r.Out == egress);
            if (!interfaces
                || (r.Protocol is byte p && p != key.Protocol)
                || !AnyPrefix(r.Sources, key.Source)
                || !AnyPrefix(r.Destinations, key.Destination)
                || (r.SourcePorts.Count > 0 && (!ports || !AnyRange(r.SourcePorts, sport)))
                || (r.DestinationPorts.Count > 0 && (!ports || !AnyRange(r.DestinationPorts, dport))))
            {
                continue;
            }
            return i;
        }
        return -1;
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

    private void LogPacket(int rule, in FlowKey key, RuleAction action, long nowMs)
    {
        if (nowMs - _logRefillMs >= 1000)
        {
            _logRefillMs = nowMs;
            _logTokens = PacketLogPerSecond;
        }
        if (_logTokens <= 0)
        {
            return;
        }
        _logTokens--;
        Log.TryEnqueue(new RuleLogRecord
        {
            TimeMs = nowMs, Rule = rule, Action = action, Protocol = key.Protocol,
            Source = key.Source, Destination = key.Destination,
            SourcePort = FlowKey.PortToHost(key.SourcePort), DestinationPort = FlowKey.PortToHost(key.DestinationPort),
        });
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
