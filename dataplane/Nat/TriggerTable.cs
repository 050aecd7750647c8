using Natd.Dataplane.Alg;
using Natd.Dataplane.Packets;
using Natd.Dataplane.Sessions;

namespace Natd.Dataplane.Nat;

/// <summary>
/// Port triggers, what ipautofw did: an inside host's connection to a trigger port opens a port
/// range on its external address, back to that host, while the triggering session lives. One host
/// holds a trigger at a time (the range maps to one inside host). Owns the configured triggers,
/// their activations (an activation ends with its triggering session: checked when the range is
/// used, so no timer is needed) and the trigger counters. Its two flow openers,
/// <see cref="TryOpenOutbound"/> and <see cref="TryOpenInbound"/>, run on the slow path. Trigger
/// traffic, the triggering connection and the opened range, is steered to shard 0
/// (<see cref="ShardMap"/>), so all of it lives in one table. Single threaded.
/// </summary>
internal sealed class TriggerTable
{
    private struct Activation
    {
        public FlowKey Parent;   // the triggering session's in2out key
        public uint Inside;
        public uint External;
        public bool InUse;
    }

    private readonly LiveSessions _sessions;
    private readonly RuleSet _rules;
    private IReadOnlyList<PortTrigger> _triggers = [];
    private Activation[] _active = [];

    /// <summary>Builds the table from <paramref name="settings"/>' triggers.</summary>
    /// <param name="settings">The configuration (<see cref="AlgSettings.Triggers"/>).</param>
    /// <param name="sessions">The shard's sessions (triggered sessions are made there; a trigger lives as long as its parent).</param>
    /// <param name="rules">Rules that may deny an inbound connection to an open range.</param>
    public TriggerTable(NatSettings settings, LiveSessions sessions, RuleSet rules)
    {
        _sessions = sessions;
        _rules = rules;
        Update(settings);
    }

    /// <summary>True when any trigger is configured (the slow path skips the table otherwise).</summary>
    public bool Any => _active.Length > 0;

    /// <summary>Activations: a new session to a trigger port whose range was free (or its own).</summary>
    public long Activated { get; private set; }

    /// <summary>Refusals: the range is held by another host whose triggering session lives.</summary>
    public long Refused { get; private set; }

    /// <summary>Sessions opened in a range, inbound or outbound.</summary>
    public long Sessions { get; private set; }

    /// <summary>Takes the reloaded triggers; a reload that changes their number forgets the activations.</summary>
    public void Update(NatSettings s)
    {
        _triggers = s.Algs.Triggers;
        if (_active.Length != _triggers.Count)
        {
            _active = new Activation[_triggers.Count];
        }
    }

    /// <summary>Takes the open ranges out of <paramref name="ports"/> on every pool address (of <paramref name="poolSize"/>): they only ever map to the same inside port.</summary>
    public void ReservePorts(PortAllocator ports, int poolSize)
    {
        foreach (var t in _triggers)
        {
            int cls = SessionTable.ProtocolClass(t.OpenProtocol);
            for (int a = 0; a < poolSize; a++)
            {
                for (int p = t.OpenPorts.Low; p <= t.OpenPorts.High; p++)
                {
                    ports.TryReserve(a, cls, p);
                }
            }
        }
    }

    /// <summary>
    /// A new masqueraded session (in2out <paramref name="key"/>, on <paramref name="external"/>) to a
    /// trigger port activates the trigger for its inside host, unless another host holds it.
    /// </summary>
    public void MaybeActivate(in FlowKey key, uint external, long nowMs)
    {
        var triggers = _triggers;
        ushort dport = FlowKey.PortToHost(key.DestinationPort);
        for (int t = 0; t < triggers.Count && t < _active.Length; t++)
        {
            PortTrigger trig = triggers[t];
            if (trig.TriggerProtocol != key.Protocol || !trig.TriggerPorts.Contains(dport))
            {
                continue;
            }
            ref Activation a = ref _active[t];
            if (a.InUse && a.Inside != key.Source && _sessions.In2Out(a.Parent, nowMs) >= 0)
            {
                Refused++; // another host holds this range while its triggering session lives
                continue;
            }
            a = new Activation { Parent = key, Inside = key.Source, External = external, InUse = true };
            Activated++;
        }
    }

    /// <summary>
    /// Slow-path flow opener for an out2in miss: a packet to an open range of an active trigger (a
    /// TCP one only with a SYN) opens a session to the triggering host's same port, unless the rules
    /// deny it (<see cref="DropReason.RuleDeny"/>).
    /// </summary>
    /// <param name="key">The packet's out2in key (ports raw).</param>
    /// <param name="tcpFlags">TCP flags (0 otherwise).</param>
    /// <param name="ctx">The packet's context; a drop is recorded there.</param>
    /// <param name="session">The new session, or -1.</param>
    /// <param name="parent">The triggering session's in2out key: the new session is related to it.</param>
    /// <returns>False when no active range covers the packet; true when handled (opened, or dropped).</returns>
    public bool TryOpenInbound(in FlowKey key, byte tcpFlags, ref PacketContext ctx, out int session, out FlowKey parent)
    {
        session = -1;
        parent = default;
        int t = ActiveFor(key.Protocol, FlowKey.PortToHost(key.DestinationPort), 0, key.Destination, ctx.NowMs);
        if (t < 0 || (key.Protocol == IpProtocol.Tcp && (tcpFlags & (Tcp.Syn | Tcp.Ack | Tcp.Rst)) != Tcp.Syn))
        {
            return false;
        }
        if (!_rules.InboundAllowed(key, ctx.NowMs))
        {
            ctx.Drop(DropReason.RuleDeny);
            return true;
        }
        ref Activation a = ref _active[t];
        parent = a.Parent;
        var in2out = new FlowKey(a.Inside, key.Source, key.DestinationPort, key.SourcePort, key.Protocol);
        return Open(in2out, key, ref ctx, out session);
    }

    /// <summary>
    /// Slow-path flow opener for an in2out miss from a host holding a trigger, from a port of its
    /// open range: the port is kept (the peer expects it).
    /// </summary>
    /// <param name="key">The packet's in2out key.</param>
    /// <param name="external">The host's external address (paired pooling).</param>
    /// <param name="ctx">The packet's context; a drop is recorded there.</param>
    /// <param name="session">The new session, or -1.</param>
    /// <param name="parent">The triggering session's in2out key.</param>
    /// <returns>False when the port is in no range the host holds; true when handled (opened, or dropped).</returns>
    public bool TryOpenOutbound(in FlowKey key, uint external, ref PacketContext ctx, out int session, out FlowKey parent)
    {
        session = -1;
        parent = default;
        int t = ActiveFor(key.Protocol, FlowKey.PortToHost(key.SourcePort), key.Source, external, ctx.NowMs);
        if (t < 0)
        {
            return false;
        }
        parent = _active[t].Parent;
        var out2in = new FlowKey(key.Destination, external, key.DestinationPort, key.SourcePort, key.Protocol);
        return Open(key, out2in, ref ctx, out session);
    }

    /// <summary>The active trigger whose open range covers (protocol, port) for <paramref name="inside"/> (0: any host) on <paramref name="external"/> (0: any); -1 when none.</summary>
    private int ActiveFor(byte protocol, ushort port, uint inside, uint external, long nowMs)
    {
        var triggers = _triggers;
        for (int t = 0; t < triggers.Count && t < _active.Length; t++)
        {
            ref Activation a = ref _active[t];
            if (!a.InUse || triggers[t].OpenProtocol != protocol || !triggers[t].OpenPorts.Contains(port)
                || (inside != 0 && a.Inside != inside) || (external != 0 && a.External != external))
            {
                continue;
            }
            if (_sessions.In2Out(a.Parent, nowMs) < 0)
            {
                a.InUse = false; // the triggering session ended: the range closes to new sessions
                continue;
            }
            return t;
        }
        return -1;
    }

    private bool Open(in FlowKey in2out, in FlowKey out2in, ref PacketContext ctx, out int session)
    {
        session = -1;
        SessionTable table = _sessions.Table;
        if (table.FindIn2Out(in2out) >= 0 || table.FindOut2In(out2in) >= 0)
        {
            ctx.Drop(DropReason.SessionLimit);
            return true;
        }
        // The port is reserved for the trigger, not the allocator's: the mapping never frees it.
        session = _sessions.AddStatic(in2out, out2in, SessionOrigin.Related, ctx.NowMs, out DropReason r);
        if (session < 0)
        {
            ctx.Drop(r);
            return true;
        }
        Sessions++;
        return true;
    }
}
