using System.Diagnostics.CodeAnalysis;
using Natd.Dataplane.Rings;
using Natd.Dataplane.Alg.Ipsec;
using Natd.Dataplane.Packets;
using Natd.Dataplane.Sessions;

namespace Natd.Dataplane.Nat;

// The policy components of the slow path (rules, forwards, triggers, tunnels) and the engine's
// glue to them: the engine builds them, hands them settings on reload, and calls them in order.
// They own their state; data flows down (they never call back into the engine).
public sealed partial class NatEngine
{
    private LiveSessions _live;
    private RuleSet _rules;
    private ForwardTable _forwards;
    private TriggerTable _triggers;
    private GreTunnels _gre;
    private IpsecTunnels _ipsecTunnels;
    private PortlessProtocols _portless;

    /// <summary>
    /// Rule names and hit counts, swapped whole on reload so a reader on another thread never pairs
    /// one generation's names with another's counts. The last entry counts default-policy decisions.
    /// </summary>
    public RuleCounters RuleCounters => _rules.Counters;

    /// <summary>Matches of forward rule i (same order as <see cref="NatSettings.Rules"/>); the last slot counts default-policy decisions.</summary>
    public ReadOnlySpan<long> RuleHits => _rules.Counters.Hits;

    /// <summary>Names for <see cref="RuleHits"/>, the last being "policy".</summary>
    public IReadOnlyList<string> RuleNames => _rules.Counters.Names;

    /// <summary>Packets of rules marked log: true, queued for the control plane to log (rate limited, lossy by design).</summary>
    public SpscRing<RuleLogRecord> RuleLog => _rules.Log;

    /// <summary>Builds the policy components over the session table (construction only).</summary>
    [MemberNotNull(nameof(_live), nameof(_rules), nameof(_forwards), nameof(_triggers), nameof(_gre), nameof(_ipsecTunnels), nameof(_portless))]
    private void CreatePolicy(NatSettings s)
    {
        _live = new LiveSessions(Table, _timeoutMs);
        _rules = new RuleSet(s);
        _forwards = new ForwardTable(s, _live, _rules, Counters, _seed);
        _triggers = new TriggerTable(s, _live, _rules);
        _gre = new GreTunnels(s, Counters);
        _ipsecTunnels = new IpsecTunnels(s, _options.Shard, _live, _rules, _forwards, Counters);
        _portless = new PortlessProtocols(_live, _rules, _forwards, _gre, _ipsecTunnels, Counters);
    }

    /// <summary>Hands reloaded rules, forwards, protocol forwards, triggers and the GRE timeout to their components.</summary>
    private void CompileRules(NatSettings s)
    {
        _rules.Update(s);
        _forwards.Update(s);
        _triggers.Update(s);
        _gre.Update(s);
    }

    /// <summary>Takes forward ports, trigger ranges and ISAKMP's port out of the dynamic allocator so masquerading never hands them out.</summary>
    private void ReserveForwardPorts()
    {
        _forwards.ReservePorts(Table.Ports, _addresses.Pool);
        _triggers.ReservePorts(Table.Ports, _addresses.Pool.Length);
        _ipsecTunnels.ReservePorts(Table.Ports, _addresses.Pool.Length);
    }

    /// <summary>The rules' decision for a new outbound flow (hit counted, logged when asked). Slow path only.</summary>
    private RuleAction Decide(in FlowKey key, RuleInterface ingress, RuleInterface egress) => _rules.Decide(key, ingress, egress, _now);

    /// <summary>The rules' verdict on a new inbound flow; false when denied or rejected.</summary>
    private bool InboundAllowed(in FlowKey key) => _rules.InboundAllowed(key, _now);

    /// <summary>The port forward covering (protocol, external address, port raw), or -1.</summary>
    private int FindForward(byte proto, uint external, ushort portRaw) => _forwards.Find(proto, external, portRaw);

    /// <summary>Identity session for a flow a rule accepts: routed without translation, replies matched statefully.</summary>
    private int CreateIdentity(in FlowKey key, out DropReason reason) => _live.AddIdentity(key, _now, out reason);
}
