using Natd.Dataplane.Nat;
using Natd.Dataplane.Packets;

namespace Natd.Tests.Nat.Policy;

/// <summary>The rule set used directly: first match, hit counters, quiet rechecks, inbound rules, the log's rate limit.</summary>
public class RuleSetTests
{
    private static readonly ForwardRule[] Rules =
    [
        new ForwardRule { Name = "no-smtp", Protocol = IpProtocol.Tcp, DestinationPorts = [new PortRange(25, 25)], Action = RuleAction.Reject, Log = true },
        new ForwardRule { Name = "block-bad", Sources = [Ipv4Prefix.Parse("203.0.113.0/24")], In = RuleInterface.Outside, Action = RuleAction.Deny },
        new ForwardRule { Name = "subscribers", Sources = [Ipv4Prefix.Parse("10.0.0.0/24")], Action = RuleAction.Masquerade },
    ];

    private static RuleSet Build(RuleAction policy = RuleAction.Deny, IReadOnlyList<ForwardRule>? rules = null)
        => new PolicyFixture(s => s with { Rules = rules ?? Rules, DefaultPolicy = policy }).Rules;

    [Fact]
    public void The_first_match_decides_and_counts_and_no_match_is_the_policy()
    {
        var r = Build();
        Assert.Equal(RuleAction.Reject, r.Decide(PolicyFixture.Key("10.0.0.2", 1000, "192.0.2.1", 25, IpProtocol.Tcp), RuleInterface.Inside, RuleInterface.Outside, 0));
        Assert.Equal(RuleAction.Masquerade, r.Decide(PolicyFixture.Key("10.0.0.2", 1000, "192.0.2.1", 80, IpProtocol.Tcp), RuleInterface.Inside, RuleInterface.Outside, 0));
        Assert.Equal(RuleAction.Deny, r.Decide(PolicyFixture.Key("10.0.1.2", 1000, "192.0.2.1", 80, IpProtocol.Tcp), RuleInterface.Inside, RuleInterface.Outside, 0));
        Assert.Equal([1L, 0, 1, 1], r.Counters.Hits);
        Assert.Equal("policy", r.Counters.Names[^1]);
        Assert.False(r.BuiltIn);
    }

    [Fact]
    public void A_quiet_decision_counts_nothing_and_logs_nothing()
    {
        var r = Build();
        Assert.Equal(RuleAction.Reject, r.DecideQuietly(PolicyFixture.Key("10.0.0.2", 1000, "192.0.2.1", 25, IpProtocol.Tcp)));
        Assert.Equal(RuleAction.Deny, r.DecideQuietly(PolicyFixture.Key("10.0.1.2", 1000, "192.0.2.1", 80, IpProtocol.Tcp)));
        Assert.Equal([0L, 0, 0, 0], r.Counters.Hits);
        Assert.False(r.Log.TryDequeue(out _));
    }

    [Fact]
    public void Inbound_flows_see_only_in_outside_rules_and_no_match_allows()
    {
        var r = Build();
        Assert.False(r.InboundAllowed(PolicyFixture.Key("203.0.113.7", 1000, "198.51.100.1", 8080, IpProtocol.Tcp), 0));
        Assert.True(r.InboundAllowed(PolicyFixture.Key("198.51.100.7", 1000, "198.51.100.1", 25, IpProtocol.Tcp), 0)); // no-smtp has no in: outside
        Assert.Equal([0L, 1, 0, 0], r.Counters.Hits);
    }

    [Fact]
    public void Without_rules_everything_masquerades_and_every_inbound_flow_is_allowed()
    {
        var r = new PolicyFixture().Rules;
        Assert.True(r.BuiltIn);
        Assert.False(r.HasAcceptRules);
        Assert.Equal(RuleAction.Masquerade, r.Decide(PolicyFixture.Key("10.0.1.2", 1, "192.0.2.1", 25, IpProtocol.Tcp), RuleInterface.Inside, RuleInterface.Outside, 0));
        Assert.True(r.InboundAllowed(PolicyFixture.Key("203.0.113.7", 1, "198.51.100.1", 2, IpProtocol.Tcp), 0));
    }

    [Fact]
    public void The_packet_log_takes_at_most_twenty_records_a_second()
    {
        var r = Build();
        var smtp = PolicyFixture.Key("10.0.0.2", 1000, "192.0.2.1", 25, IpProtocol.Tcp);
        for (int i = 0; i < 30; i++)
        {
            r.Decide(smtp, RuleInterface.Inside, RuleInterface.Outside, 5_000);
        }
        r.Decide(smtp, RuleInterface.Inside, RuleInterface.Outside, 6_000); // a new second refills the bucket
        int n = 0;
        while (r.Log.TryDequeue(out var rec))
        {
            Assert.Equal((0, RuleAction.Reject, (ushort)25), (rec.Rule, rec.Action, rec.DestinationPort));
            n++;
        }
        Assert.Equal(21, n);
        Assert.Equal(31, r.Counters.Hits[0]);
    }

    [Fact]
    public void A_reload_keeps_the_counts_of_rules_that_keep_their_name()
    {
        var f = new PolicyFixture(s => s with { Rules = Rules, DefaultPolicy = RuleAction.Deny });
        var r = f.Rules;
        r.Decide(PolicyFixture.Key("10.0.0.2", 1000, "192.0.2.1", 80, IpProtocol.Tcp), RuleInterface.Inside, RuleInterface.Outside, 0);
        r.Update(f.Settings with { Rules = [Rules[2], new ForwardRule { Name = "ok", Action = RuleAction.Accept }], DefaultPolicy = RuleAction.Deny });
        Assert.Equal(["subscribers", "ok", "policy"], r.Counters.Names);
        Assert.Equal([1L, 0, 0], r.Counters.Hits);
        Assert.True(r.HasAcceptRules);
    }
}
