using Natd.Dataplane.Alg;
using Natd.Dataplane.Packets;
using Natd.Dataplane.Sessions;

namespace Natd.Dataplane.Nat;

// Port triggers, what ipautofw did: an inside host's connection to a trigger port opens a port
// range on its external address, back to that host, while the triggering session lives. One host
// holds a trigger at a time (the range maps to one inside host). Trigger traffic, the triggering
// connection and the opened range, is steered to shard 0 (ShardMap), so all of it lives here.
public sealed partial class NatEngine
{
    private struct ActiveTrigger
    {
        public FlowKey Parent;   // the triggering session's in2out key
        public uint Inside;
        public uint External;
        public bool InUse;
    }

    private ActiveTrigger[] _triggers = [];

    /// <summary>Trigger counters: activations, refusals (the range is another host's), inbound sessions opened.</summary>
    public long TriggersActivated { get; private set; }

    /// <inheritdoc cref="TriggersActivated"/>
    public long TriggersRefused { get; private set; }

    /// <inheritdoc cref="TriggersActivated"/>
    public long TriggerSessions { get; private set; }

    /// <summary>Takes the triggers' open ranges out of the dynamic allocator on every pool address: they only ever map to the same inside port.</summary>
    private void ReserveTriggerPorts()
    {
        var triggers = _settings.Algs.Triggers;
        if (_triggers.Length != triggers.Count)
        {
            _triggers = new ActiveTrigger[triggers.Count]; // a reload that changes the list forgets activations
        }
        foreach (var t in triggers)
        {
            int cls = SessionTable.ProtocolClass(t.OpenProtocol);
            for (int a = 0; a < _addresses.Pool.Length; a++)
            {
                for (int p = t.OpenPorts.Low; p <= t.OpenPorts.High; p++)
                {
                    Table.Ports.TryReserve(a, cls, p);
                }
            }
        }
    }

    /// <summary>A new masqueraded session to a trigger port activates the trigger for its inside host.</summary>
    private void MaybeActivateTrigger(in FlowKey key, uint external)
    {
        var triggers = _settings.Algs.Triggers;
        ushort dport = FlowKey.PortToHost(key.DestinationPort);
        for (int t = 0; t < triggers.Count && t < _triggers.Length; t++)
        {
            PortTrigger trig = triggers[t];
            if (trig.TriggerProtocol != key.Protocol || !trig.TriggerPorts.Contains(dport))
            {
                continue;
            }
            ref ActiveTrigger a = ref _triggers[t];
            if (a.InUse && a.Inside != key.Source && LookupIn2Out(a.Parent) >= 0)
            {
                TriggersRefused++; // another host holds this range while its triggering session lives
                continue;
            }
            a = new ActiveTrigger { Parent = key, Inside = key.Source, External = external, InUse = true };
            TriggersActivated++;
        }
    }

    /// <summary>The active trigger whose open range covers (protocol, port) for <paramref name="inside"/> (0: any host) on <paramref name="external"/>; -1 when none.</summary>
    private int ActiveTriggerFor(byte protocol, ushort port, uint inside, uint external)
    {
        var triggers = _settings.Algs.Triggers;
        for (int t = 0; t < triggers.Count && t < _triggers.Length; t++)
        {
            ref ActiveTrigger a = ref _triggers[t];
            if (!a.InUse || triggers[t].OpenProtocol != protocol || !triggers[t].OpenPorts.Contains(port)
                || (inside != 0 && a.Inside != inside) || (external != 0 && a.External != external))
            {
                continue;
            }
            if (LookupIn2Out(a.Parent) < 0)
            {
                a.InUse = false; // the triggering session ended: the range closes to new sessions
                continue;
            }
            return t;
        }
        return -1;
    }

    /// <summary>Out2in miss: a packet to an open range of an active trigger opens a session to the triggering host's same port.</summary>
    private int TryTriggerInbound(in FlowKey key, byte tcpFlags, ref DropReason reason)
    {
        ushort port = FlowKey.PortToHost(key.DestinationPort);
        int t = ActiveTriggerFor(key.Protocol, port, 0, key.Destination);
        if (t < 0 || (key.Protocol == IpProtocol.Tcp && (tcpFlags & (Tcp.Syn | Tcp.Ack | Tcp.Rst)) != Tcp.Syn))
        {
            return -1;
        }
        if (!InboundAllowed(key))
        {
            reason = DropReason.RuleDeny;
            return -1;
        }
        ref ActiveTrigger a = ref _triggers[t];
        var in2out = new FlowKey(a.Inside, key.Source, key.DestinationPort, key.SourcePort, key.Protocol);
        int s = CreateTriggered(in2out, key, ref reason);
        if (s >= 0)
        {
            MarkRelated(s, a.Parent);
        }
        return s;
    }

    /// <summary>In2out miss from a host holding a trigger, from a port of its open range: keep the port (the peer expects it).</summary>
    private int TryTriggerOutbound(in FlowKey key, ref DropReason reason)
    {
        uint external = _addresses.Pool[_addresses.PoolIndexFor(key.Source)];
        int t = ActiveTriggerFor(key.Protocol, FlowKey.PortToHost(key.SourcePort), key.Source, external);
        if (t < 0)
        {
            return -1;
        }
        var out2in = new FlowKey(key.Destination, external, key.DestinationPort, key.SourcePort, key.Protocol);
        int s = CreateTriggered(key, out2in, ref reason);
        if (s >= 0)
        {
            MarkRelated(s, _triggers[t].Parent);
        }
        return s;
    }

    private int CreateTriggered(in FlowKey in2out, in FlowKey out2in, ref DropReason reason)
    {
        if (Table.FindIn2Out(in2out) >= 0 || Table.FindOut2In(out2in) >= 0)
        {
            reason = DropReason.SessionLimit;
            return -1;
        }
        // The port is reserved for the trigger, not the allocator's: the mapping never frees it.
        int s = AddStaticSession(in2out, out2in, SessionOrigin.Related, out DropReason r);
        if (s < 0)
        {
            reason = r;
            return -1;
        }
        TriggerSessions++;
        return s;
    }
}
