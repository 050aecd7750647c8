using Natd.Contracts;
using Natd.Dataplane.Nat;
using Natd.Dataplane.Packets;
using Natd.Dataplane.Sessions;

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

    /// <summary>One PCP or NAT-PMP mapping of GET /mappings.</summary>
    public static MappingRow Mapping(PcpMappingInfo m)
    {
        ArgumentNullException.ThrowIfNull(m);
        var filters = new string[m.Filters.Count];
        for (int i = 0; i < filters.Length; i++)
        {
            var f = m.Filters[i];
            ushort port = FlowKey.PortToHost(f.PortRaw);
            filters[i] = port == 0
                ? string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{Ipv4.Format(f.Prefix)}/{f.PrefixLength}")
                : string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{Ipv4.Format(f.Prefix)}/{f.PrefixLength}:{port}");
        }
        // An all-ports mapping: internal port "*", external the subscriber's ports now ("LOW-HIGH[/STEP]", a comma between blocks).
        string externalPorts = m.ExternalPort.ToString(System.Globalization.CultureInfo.InvariantCulture);
        if (m.AllPorts)
        {
            var spans = new string[m.Ports.Count];
            for (int i = 0; i < spans.Length; i++)
            {
                spans[i] = SubscriberListing.Block(m.Ports[i].Low, m.Ports[i].High, m.PortStep);
            }
            externalPorts = spans.Length == 0 ? "-" : string.Join(',', spans);
        }
        return new MappingRow
        {
            Protocol = m.Protocol == IpProtocol.Tcp ? "tcp" : m.Protocol == IpProtocol.Udp ? "udp" : m.Protocol == 0 ? "all"
                : m.Protocol.ToString(System.Globalization.CultureInfo.InvariantCulture),
            Internal = m.AllPorts ? Ipv4.Format(m.Internal) + ":*"
                : string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{Ipv4.Format(m.Internal)}:{m.InternalPort}"),
            External = $"{Ipv4.Format(m.External)}:{externalPorts}",
            AllPorts = m.AllPorts,
            LifetimeLeft = m.LifetimeLeftSeconds,
            Filters = filters,
            Nonce = m.Nonce,
            Via = m.NatPmp ? "nat-pmp" : "pcp",
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

    /// <summary>One subscriber of GET /subscribers.</summary>
    public static SubscriberRow Subscriber(Dataplane.Nat.SubscriberInfo s)
    {
        ArgumentNullException.ThrowIfNull(s);
        var blocks = new string[s.Blocks.Count];
        for (int i = 0; i < blocks.Length; i++)
        {
            blocks[i] = SubscriberListing.Block(s.Blocks[i].Low, s.Blocks[i].High, s.Step);
        }
        Array.Sort(blocks, static (a, b) => PortOf(a).CompareTo(PortOf(b)));
        return new SubscriberRow
        {
            Subscriber = s.PrefixLength >= 32
                ? Ipv4.Format(s.Subscriber)
                : string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{Ipv4.Format(s.Subscriber)}/{s.PrefixLength}"),
            External = s.External == 0 ? "" : Ipv4.Format(s.External),
            Blocks = blocks,
            Ports = s.Ports,
            PortLimit = s.PortLimit,
            Sessions = s.Sessions,
            SessionLimit = s.SessionLimit,
            LimitHits = new Dictionary<string, long>(StringComparer.Ordinal)
            {
                ["sessions"] = s.SessionHits, ["ports"] = s.PortHits, ["rate"] = s.RateHits, ["blocks"] = s.BlockHits,
            },
        };
    }

    private static int PortOf(string block) => int.Parse(block.AsSpan(0, block.IndexOf('-', StringComparison.Ordinal)), System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>One held block of GET /blocks; <paramref name="now"/> turns its age into the allocation time.</summary>
    public static BlockRow Block(Dataplane.Nat.BlockInfo b, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(b);
        return new BlockRow
        {
            External = Ipv4.Format(b.External),
            Block = SubscriberListing.Block(b.Low, b.High, b.Step),
            PortLow = b.Low,
            PortHigh = b.High,
            PortStep = b.Step,
            Subscriber = Ipv4.Format(b.Subscriber),
            PortsInUse = b.PortsInUse,
            AllocatedAt = (now - TimeSpan.FromSeconds(b.AgeSeconds)).ToString("yyyy-MM-ddTHH:mm:ssZ", System.Globalization.CultureInfo.InvariantCulture),
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
            ports[i] = new PortUsageRow { ExternalAddress = u.ExternalAddress, Protocol = u.Protocol, InUse = u.InUse, Capacity = u.Capacity, Draining = u.Draining };
        }
        var interfaces = new PortCountersRow[s.Ports.Count];
        for (int i = 0; i < interfaces.Length; i++)
        {
            var p = s.Ports[i];
            interfaces[i] = new PortCountersRow { Interface = p.Interface, RxFrames = p.RxFrames, TxFrames = p.TxFrames, RxDropped = p.RxDropped, TxDropped = p.TxDropped, RxFillRingEmpty = p.RxFillRingEmpty,
                TxKicks = p.TxKicks, TxKickDeferred = p.TxKickDeferred, TxKickErrors = p.TxKickErrors, RxOversize = p.RxOversize };
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
            PcpRequests = Copy(s.PcpRequests),
            EventLog = Copy(s.EventLog),
            Subscribers = s.Subscribers,
            PortBlocks = BlockUsage(s.PortBlocks),
            Ports = interfaces,
        };
    }

    private static PortBlocksRow[] BlockUsage(IReadOnlyList<PortBlockUsage> usage)
    {
        var rows = new PortBlocksRow[usage.Count];
        for (int i = 0; i < rows.Length; i++)
        {
            rows[i] = new PortBlocksRow { ExternalAddress = usage[i].ExternalAddress, InUse = usage[i].InUse, Capacity = usage[i].Capacity };
        }
        return rows;
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
