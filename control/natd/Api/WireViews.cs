using Natd.Contracts;
using Natd.Dataplane.Nat;
using Natd.Dataplane.Packets;

namespace Natd.Control.Api;

/// <summary>
/// The dataplane's views turned into the control API's wire records (<see cref="SessionRow"/>,
/// <see cref="ExpectationRow"/>, <see cref="StatsRow"/> in the contracts assembly): addresses become
/// dotted quads, enums their names. The only place natd shapes what natctl reads.
/// </summary>
internal static class WireViews
{
    /// <summary>One session of GET /sessions.</summary>
    public static SessionRow Session(SessionInfo s)
    {
        ArgumentNullException.ThrowIfNull(s);
        return new SessionRow
        {
            Protocol = s.Protocol,
            InsideAddress = Ipv4.Format(s.InsideAddress),
            InsidePort = s.InsidePort,
            ExternalAddress = Ipv4.Format(s.ExternalAddress),
            ExternalPort = s.ExternalPort,
            RemoteAddress = Ipv4.Format(s.RemoteAddress),
            RemotePort = s.RemotePort,
            ExpiresInSeconds = s.ExpiresInSeconds,
            State = s.State,
            PacketsIn2Out = s.PacketsIn2Out,
            PacketsOut2In = s.PacketsOut2In,
            BytesIn2Out = s.BytesIn2Out,
            BytesOut2In = s.BytesOut2In,
            Alg = s.Alg,
            RelatedTo = s.RelatedTo,
        };
    }

    /// <summary>One pending expectation of GET /expectations.</summary>
    public static ExpectationRow Expectation(ExpectationInfo e)
    {
        ArgumentNullException.ThrowIfNull(e);
        bool inbound = e.Kind == Dataplane.Alg.ExpectationKind.Inbound;
        string remote = e.RemoteAddress == 0 ? "*" : Ipv4.Format(e.RemoteAddress);
        return new ExpectationRow
        {
            Alg = NatEngine.AlgName(e.Alg),
            Kind = inbound ? "inbound" : "outbound",
            Protocol = e.Protocol == IpProtocol.Tcp ? "tcp" : "udp",
            Inside = $"{Ipv4.Format(e.InsideAddress)}:{e.InsidePort}",
            External = inbound ? $"{Ipv4.Format(e.ExternalAddress)}:{e.ExternalPort}" : "",
            Remote = $"{remote}:{e.RemotePort}",
            ExpiresInSeconds = e.ExpiresInSeconds,
            Control = $"{Ipv4.Format(e.ControlInside)}:{e.ControlInsidePort} -> {Ipv4.Format(e.ControlRemote)}:{e.ControlRemotePort}",
        };
    }

    /// <summary>GET /stats.</summary>
    public static StatsRow Stats(StatsSnapshot s)
    {
        ArgumentNullException.ThrowIfNull(s);
        var ports = new PortUsageRow[s.PortUsage.Count];
        for (int i = 0; i < ports.Length; i++)
        {
            var u = s.PortUsage[i];
            ports[i] = new PortUsageRow { ExternalAddress = u.ExternalAddress, Protocol = u.Protocol, InUse = u.InUse, Capacity = u.Capacity };
        }
        var interfaces = new PortCountersRow[s.Ports.Count];
        for (int i = 0; i < interfaces.Length; i++)
        {
            var p = s.Ports[i];
            interfaces[i] = new PortCountersRow { Interface = p.Interface, RxFrames = p.RxFrames, TxFrames = p.TxFrames, RxDropped = p.RxDropped, TxDropped = p.TxDropped };
        }
        return new StatsRow
        {
            PacketsIn2Out = s.PacketsIn2Out,
            PacketsOut2In = s.PacketsOut2In,
            BytesIn2Out = s.BytesIn2Out,
            BytesOut2In = s.BytesOut2In,
            FramesReceived = s.FramesReceived,
            FramesTransmitted = s.FramesTransmitted,
            Drops = Copy(s.Drops),
            Sessions = Copy(s.Sessions),
            SessionsCreated = s.SessionsCreated,
            SessionsDeleted = s.SessionsDeleted,
            Gateway = Copy(s.Gateway),
            SessionsByState = Copy(s.SessionsByState),
            PortUsage = ports,
            RuleHits = Copy(s.RuleHits),
            PollerBusyRatio = s.PollerBusyRatio,
            Handoffs = s.Handoffs,
            HandoffDrops = s.HandoffDrops,
            SessionsSwept = s.SessionsSwept,
            EventsDropped = s.EventsDropped,
            AlgEvents = Copy(s.AlgEvents),
            Expectations = Copy(s.Expectations),
            Fragments = Copy(s.Fragments),
            Ports = interfaces,
        };
    }

    /// <summary>A copy in the source's enumeration order (the order the JSON object lists its members in).</summary>
    private static Dictionary<string, long> Copy(IReadOnlyDictionary<string, long> d)
    {
        var copy = new Dictionary<string, long>(d.Count, StringComparer.Ordinal);
        foreach (var kv in d)
        {
            copy[kv.Key] = kv.Value;
        }
        return copy;
    }
}
