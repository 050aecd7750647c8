using Natd.Dataplane.Nat;
using Natd.Dataplane.Packets;
using Natd.Dataplane.Sessions;

namespace Natd.Tests.Control;

/// <summary>Answers with fixed data; <see cref="Fail"/> makes every query throw.</summary>
internal sealed class FakeDataplaneQuery : IDataplaneQuery
{
    public IReadOnlyList<SessionInfo> Sessions { get; init; } = SampleSessions();

    public StatsSnapshot Stats { get; init; } = SampleStats();

    public bool Fail { get; set; }

    public Task<IReadOnlyList<SessionInfo>> GetSessionsAsync(CancellationToken cancellationToken = default)
        => Fail ? Task.FromException<IReadOnlyList<SessionInfo>>(new InvalidOperationException("poller 0 did not answer")) : Task.FromResult(Sessions);

    public IReadOnlyList<ExpectationInfo> Expectations { get; init; } =
    [
        new(Natd.Dataplane.Sessions.AlgKind.Ftp, Natd.Dataplane.Alg.ExpectationKind.Inbound, IpProtocol.Tcp, Ipv4.Parse("10.0.0.2"), 40100,
            Ipv4.Parse("198.51.100.1"), 61555, Ipv4.Parse("198.51.100.2"), 0, 42.5, Ipv4.Parse("10.0.0.2"), 40312, Ipv4.Parse("198.51.100.2"), 21),
        new(Natd.Dataplane.Sessions.AlgKind.Irc, Natd.Dataplane.Alg.ExpectationKind.Inbound, IpProtocol.Tcp, Ipv4.Parse("10.0.0.3"), 5000,
            Ipv4.Parse("198.51.100.1"), 61600, 0, 0, 12, Ipv4.Parse("10.0.0.3"), 45000, Ipv4.Parse("198.51.100.9"), 6667),
    ];

    public Task<IReadOnlyList<ExpectationInfo>> GetExpectationsAsync(CancellationToken cancellationToken = default)
        => Fail ? Task.FromException<IReadOnlyList<ExpectationInfo>>(new InvalidOperationException("poller 0 did not answer")) : Task.FromResult(Expectations);

    public IReadOnlyList<SubscriberInfo> Subscribers { get; init; } =
    [
        new(Ipv4.Parse("10.0.0.3"), Ipv4.Parse("198.51.100.1"), [(2048, 3070), (4096, 5118)], 700, 650, 0, 3, 0, 1)
            { Step = 2, PortLimit = 1024, SessionLimit = 2000 },
        new(Ipv4.Parse("10.0.0.2"), Ipv4.Parse("198.51.100.1"), [(1024, 2046)], 12, 10, 7, 0, 2, 0) { Step = 2, PortLimit = 1024, SessionLimit = 2000 },
    ];

    public IReadOnlyList<BlockInfo> Blocks { get; init; } =
    [
        new(Ipv4.Parse("198.51.100.1"), 4096, 5118, 2, Ipv4.Parse("10.0.0.3"), 188, 30),
        new(Ipv4.Parse("198.51.100.1"), 1024, 2046, 2, Ipv4.Parse("10.0.0.2"), 12, 90.5),
        new(Ipv4.Parse("198.51.100.1"), 2048, 3070, 2, Ipv4.Parse("10.0.0.3"), 512, 120),
    ];

    public Task<IReadOnlyList<SubscriberInfo>> GetSubscribersAsync(CancellationToken cancellationToken = default)
        => Fail ? Task.FromException<IReadOnlyList<SubscriberInfo>>(new InvalidOperationException("poller 0 did not answer")) : Task.FromResult(Subscribers);

    public Task<IReadOnlyList<BlockInfo>> GetBlocksAsync(CancellationToken cancellationToken = default)
        => Fail ? Task.FromException<IReadOnlyList<BlockInfo>>(new InvalidOperationException("poller 0 did not answer")) : Task.FromResult(Blocks);

    public IReadOnlyList<PcpMappingInfo> PcpMappings { get; init; } =
    [
        new(IpProtocol.Udp, Ipv4.Parse("10.0.0.3"), 5353, Ipv4.Parse("198.51.100.1"), 5353, 59, [], "000000000000000000000000", true),
        new(IpProtocol.Tcp, Ipv4.Parse("10.0.0.2"), 8080, Ipv4.Parse("198.51.100.1"), 18080, 597,
            [new Natd.Dataplane.Pcp.PcpFilter(Ipv4.Parse("198.51.100.2"), 32, 0), new Natd.Dataplane.Pcp.PcpFilter(Ipv4.Parse("203.0.113.0"), 24, Natd.Dataplane.Sessions.FlowKey.PortToRaw(443))],
            "9f3a0c7e5b1d24680ace1357", false),
        new(IpProtocol.Udp, Ipv4.Parse("10.0.0.2"), 9100, Ipv4.Parse("198.51.100.1"), 9100, 120, [], "0102030405060708090a0b0c", false),
    ];

    public Task<IReadOnlyList<PcpMappingInfo>> GetPcpMappingsAsync(CancellationToken cancellationToken = default)
        => Fail ? Task.FromException<IReadOnlyList<PcpMappingInfo>>(new InvalidOperationException("poller 0 did not answer")) : Task.FromResult(PcpMappings);

    public Task<StatsSnapshot> GetStatsAsync(CancellationToken cancellationToken = default)
        => Fail ? Task.FromException<StatsSnapshot>(new InvalidOperationException("poller 0 did not answer")) : Task.FromResult(Stats);

    public static List<SessionInfo> SampleSessions() =>
    [
        new("udp", Ipv4.Parse("10.0.0.2"), 50000, Ipv4.Parse("198.51.100.1"), 24001, Ipv4.Parse("198.51.100.2"), 9999, 299.12, "active", 3, 2, 300, 200),
        new("icmp", Ipv4.Parse("10.0.0.2"), 1234, Ipv4.Parse("198.51.100.1"), 40112, Ipv4.Parse("198.51.100.2"), 0, 59.0, "active", 1, 1, 84, 84),
        new("tcp", Ipv4.Parse("10.0.0.10"), 40000, Ipv4.Parse("198.51.100.1"), 61002, Ipv4.Parse("198.51.100.2"), 80, 30, "syn-sent", 1, 0, 60, 0),
        new("tcp", Ipv4.Parse("10.0.0.2"), 40312, Ipv4.Parse("198.51.100.1"), 61001, Ipv4.Parse("198.51.100.2"), 8080, 7439.996, "established", 10, 9, 1500, 9000),
    ];

    public static StatsSnapshot SampleStats()
    {
        var drops = new Dictionary<string, long>();
        for (int i = 0; i < DropReasons.Count; i++)
        {
            drops[DropReasons.Label((DropReason)i)] = i == 3 ? 0 : 1000 + i; // one reason at zero
        }
        return new StatsSnapshot
        {
            PacketsIn2Out = 11,
            PacketsOut2In = 22,
            BytesIn2Out = 3333,
            BytesOut2In = 4444,
            FramesReceived = 55,
            FramesTransmitted = 54,
            Drops = drops,
            Sessions = new Dictionary<string, long> { ["tcp"] = 2, ["udp"] = 1, ["icmp"] = 1 },
            SessionsCreated = 9,
            SessionsDeleted = 5,
            Gateway = new Dictionary<string, long> { ["arp-replies"] = 7, ["arp-requests"] = 8, ["icmp-errors"] = 0, ["echo-replies"] = 6 },
            SessionsByState = new Dictionary<string, long> { ["tcp-established"] = 1, ["tcp-transitory"] = 1, ["udp"] = 1, ["icmp"] = 1 },
            PortUsage =
            [
                new PortUsage("198.51.100.1", "tcp", 2, 64512),
                new PortUsage("198.51.100.1", "udp", 1, 64512),
                new PortUsage("198.51.100.1", "icmp", 1, 64512),
                new PortUsage("198.51.100.3", "tcp", 0, 64512, Draining: true),
            ],
            RuleHits = new Dictionary<string, long> { ["vpn-isakmp"] = 12, ["rule-2"] = 3 },
            AlgEvents = new Dictionary<string, long> { ["ftp/frames"] = 41, ["ftp/rewrites"] = 3, ["irc/refused"] = 2, ["tftp/restarts"] = 1 },
            Expectations = new Dictionary<string, long> { ["created"] = 5, ["used"] = 4, ["expired"] = 1, ["refused"] = 0, ["pending"] = 2 },
            PollerBusyRatio = 0.125,
            Handoffs = 17,
            EventsDropped = 2,
            Subscribers = 2,
            PortBlocks = [new PortBlockUsage("198.51.100.1", 3, 62)],
        };
    }
}
