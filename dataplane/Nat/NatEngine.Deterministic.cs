using Natd.Dataplane.Packets;
using Natd.Dataplane.Sessions;

namespace Natd.Dataplane.Nat;

// Deterministic NAT (RFC 7422, docs/architecture.md "Deterministic NAT"): a new mapping takes its
// port from the subscriber's fixed range on its fixed address, and nothing is logged per session.
public sealed partial class NatEngine
{
    // The running configuration's map; null unless nat.allocation is deterministic.
    private DeterministicMap? _deterministic;

    /// <summary>The deterministic map the engine allocates from; null unless <c>nat.allocation</c> is deterministic.</summary>
    public DeterministicMap? Deterministic => _deterministic;

    /// <summary>
    /// Builds the map of <paramref name="settings"/>. Per-session events are logged with dynamic
    /// allocation only: with port blocks the block records are the log (RFC 6888 section 5), with
    /// deterministic allocation the map is (RFC 7422).
    /// </summary>
    private void ApplyDeterministic(NatSettings settings)
    {
        _deterministic = DeterministicMap.For(settings);
        Table.SessionEvents = settings.Cgnat.Allocation == PortAllocation.Dynamic;
        AlgBridge.Deterministic = _deterministic;
    }

    /// <summary>
    /// A new mapping for <paramref name="key"/> inside its subscriber's range (RFC 7422), the port
    /// random within the range (RFC 6056). Returns the mapping or -1 with
    /// <see cref="DropReason.NotDeterministicSubscriber"/> (the source is in no
    /// <c>nat.deterministic.inside</c> prefix), <see cref="DropReason.PortExhausted"/> (its range is
    /// full for this protocol) or <see cref="DropReason.SessionLimit"/>.
    /// </summary>
    private int CreateDeterministicMapping(in FlowKey key, bool eim, out DropReason reason)
    {
        if (!_deterministic!.TryForward(key.Source, out DeterministicRange range))
        {
            reason = DropReason.NotDeterministicSubscriber;
            return -1;
        }
        int pclass = SessionTable.ProtocolClass(key.Protocol);
        int port = Table.Ports.AllocateInRange(range.PoolIndex, pclass, range.Low, range.High);
        if (port < 0)
        {
            Table.EmitRefusal(NatEventType.PortExhausted, key, range.External);
            reason = DropReason.PortExhausted;
            return -1;
        }
        int m = Table.AddMapping(key.Source, key.SourcePort, range.External, FlowKey.PortToRaw((ushort)port), key.Protocol, range.PoolIndex, eim);
        if (m < 0)
        {
            Table.Ports.Free(range.PoolIndex, pclass, port);
            reason = DropReason.SessionLimit;
            return -1;
        }
        reason = Ok;
        return m;
    }

    /// <summary>
    /// After a reload in deterministic mode: true when mapping <paramref name="map"/>'s external
    /// address and port still lie in its inside host's range (else the reload closes it).
    /// </summary>
    private bool InDeterministicRange(ref Mapping map)
    {
        if (_deterministic is null || map.StaticPort)
        {
            return true;
        }
        return _deterministic.TryForward(map.InsideKey.Source, out DeterministicRange r)
            && r.External == map.ExternalKey.Destination
            && FlowKey.PortToHost(map.ExternalKey.DestinationPort) is var port && port >= r.Low && port <= r.High;
    }
}
