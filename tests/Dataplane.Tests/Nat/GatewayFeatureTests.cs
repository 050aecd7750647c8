using Natd.Dataplane.Nat;
using Natd.Dataplane.Packets;
using Natd.Tests.Support;
using static Natd.Tests.Support.Frames;
using Natd.Dataplane.Sessions;

namespace Natd.Tests.Nat;

/// <summary>Forward rules, port forwards, hairpinning, protocol forwards and live reload (the operator features).</summary>
public class GatewayFeatureTests
{
    private const string In = EngineHarness.InsideHost, Out = EngineHarness.OutsideHost, Ext = EngineHarness.External;

    private static ForwardRule Rule(string name, RuleAction action, string? src = null, string? dst = null, byte? proto = null, ushort dport = 0)
        => new()
        {
            Name = name,
            Action = action,
            Sources = src is null ? [] : [Ipv4Prefix.Parse(src)],
            Destinations = dst is null ? [] : [Ipv4Prefix.Parse(dst)],
            Protocol = proto,
            DestinationPorts = dport == 0 ? [] : [new PortRange(dport, dport)],
        };

    /// <summary>The VPN HOWTO's tight rule set: only the VPN client's ISAKMP, PPTP control and GRE/ESP may leave.</summary>
    private static NatSettings Tight(NatSettings s) => s with
    {
        Rules =
        [
            Rule("isakmp", RuleAction.Masquerade, "10.0.0.5/32", "203.0.113.10/32", 17, 500),
            Rule("pptp", RuleAction.Masquerade, "10.0.0.5/32", "203.0.113.10/32", 6, 1723),
            Rule("gre", RuleAction.Masquerade, "10.0.0.5/32", "203.0.113.10/32", 47),
            Rule("esp", RuleAction.Masquerade, "10.0.0.5/32", "203.0.113.10/32", 50),
            Rule("no-telnet", RuleAction.Reject, dst: "0.0.0.0/0", proto: 6, dport: 23),
            Rule("registered", RuleAction.Accept, "10.0.0.7/32"),
        ],
        DefaultPolicy = RuleAction.Deny,
    };

    public static TheoryData<string, string, byte, int, string> TightCases => new()
    {
        { "10.0.0.5", "203.0.113.10", 17, 500, "masquerade" },
        { "10.0.0.5", "203.0.113.10", 17, 501, "rule-deny" },
        { "10.0.0.5", "203.0.113.10", 6, 1723, "masquerade" },
        { "10.0.0.5", "203.0.113.11", 6, 1723, "rule-deny" },
        { "10.0.0.5", "203.0.113.10", 47, 0, "masquerade" },
        { "10.0.0.5", "203.0.113.10", 50, 0, "masquerade" },
        { "10.0.0.6", "203.0.113.10", 17, 500, "rule-deny" },
        { "10.0.0.6", "203.0.113.10", 6, 23, "rule-reject" },
        { "10.0.0.7", "203.0.113.99", 6, 80, "accept" },
        { "10.0.0.2", "203.0.113.99", 1, 0, "rule-deny" },
    };

    [Theory]
    [MemberData(nameof(TightCases))]
    public void Vpn_howto_tight_ruleset_verdicts(string src, string dst, byte proto, int dport, string expected)
    {
        var h = new EngineHarness(Tight);
        h.Engine.Learn(Side.Inside, Ipv4.Parse(src), MacAddress.Read(InsideHostMac));
        byte[] f = proto switch
        {
            6 => Tcp(src, 40000, dst, dport, 0x02),
            17 => Udp(src, 40000, dst, dport),
            1 => Icmp(src, dst, 8, 0, 1, 1),
            _ => Wrap(src, dst, proto, [0, 0, 0x10, 0x01, .. new byte[12]], 64, null, null), // ESP SPI 0x1001 (0 is reserved, RFC 4303)
        };
        var v = h.Run(f, Side.Inside, out var o);
        switch (expected)
        {
            case "masquerade":
                Assert.Equal(Verdict.ToOutside, v);
                Assert.Equal(Ext, Src(o));
                break;
            case "accept":
                Assert.Equal(Verdict.ToOutside, v);
                Assert.Equal(src, Src(o));
                break;
            case "rule-reject":
                Assert.Equal(Verdict.ToInside, v);
                Assert.Equal(DropReason.RuleReject, h.LastDrop);
                Assert.Equal(3, o[L4Offset(o)]);
                Assert.Equal(13, o[L4Offset(o) + 1]);
                break;
            default:
                Assert.Equal(Verdict.Drop, v);
                Assert.Equal(DropReason.RuleDeny, h.LastDrop);
                break;
        }
    }

    [Fact]
    public void Rule_hits_are_counted_per_rule_and_policy()
    {
        var h = new EngineHarness(Tight);
        h.Run(Udp("10.0.0.5", 1, "203.0.113.10", 500), Side.Inside, out _);
        h.Run(Udp("10.0.0.6", 1, "203.0.113.10", 500), Side.Inside, out _);
        Assert.Equal(1, h.Engine.RuleHits[0]);
        Assert.Equal(1, h.Engine.RuleHits[^1]);
        Assert.Equal("policy", h.Engine.RuleNames[^1]);
    }

    [Fact]
    public void Accepted_flow_is_routed_untranslated_and_its_replies_return()
    {
        var h = new EngineHarness(Tight);
        h.Engine.Learn(Side.Inside, Ipv4.Parse("10.0.0.7"), MacAddress.Read(InsideHostMac));
        var o = h.Out(Tcp("10.0.0.7", 40000, Out, 80, 0x02));
        Assert.Equal("10.0.0.7", Src(o));
        var back = h.Out(EngineHarness.FromOutside(Tcp(Out, 80, "10.0.0.7", 40000, 0x12, ack: 1001)), Side.Outside);
        Assert.Equal("10.0.0.7", Dst(back));
        Assert.Equal(40000, DstPort(back));
        // Unsolicited traffic to the registered host is not let in.
        Assert.Equal(Verdict.Drop, h.Run(EngineHarness.FromOutside(Tcp(Out, 81, "10.0.0.7", 40000, 0x02)), Side.Outside, out _));
    }

    [Fact]
    public void Port_less_protocol_is_masqueraded_for_one_inside_host_per_remote()
    {
        var h = new EngineHarness(Tight);
        h.Engine.Learn(Side.Inside, Ipv4.Parse("10.0.0.5"), MacAddress.Read(InsideHostMac));
        var gre = Wrap("10.0.0.5", "203.0.113.10", 47, new byte[16], 64, null, null);
        var o = h.Out(gre);
        Assert.Equal(Ext, Src(o));
        Assert.True(ChecksumsValid(o));
        var reply = WithMacs(Wrap("203.0.113.10", Ext, 47, new byte[16], 64, null, null), EngineHarness.RouterMac, GatewayOutsideMac);
        var back = h.Out(reply, Side.Outside);
        Assert.Equal("10.0.0.5", Dst(back));
        Assert.True(ChecksumsValid(back));
        // Listed under its own name, not as icmp.
        var row = h.Engine.CollectSessionsList(h.Now).Single();
        Assert.Equal("gre", row.Protocol);
        Assert.Equal((0, 0), (row.InsidePort, row.RemotePort));
    }

    private static NatSettings WithForward(NatSettings s, Balance balance = Balance.RoundRobin) => s with
    {
        Forwards =
        [
            new PortForward
            {
                Protocol = 6, ExternalAddress = Ipv4.Parse(Ext), ExternalPorts = new PortRange(8080, 8080),
                Backends = [new(Ipv4.Parse("10.0.0.2"), 8000), new(Ipv4.Parse("10.0.0.3"), 8000)], Balance = balance,
            },
        ],
    };

    [Fact]
    public void Port_forward_round_robin_spreads_connections_and_replies_are_masqueraded()
    {
        var h = new EngineHarness(s => WithForward(s));
        var seen = new List<string>();
        for (int i = 0; i < 4; i++)
        {
            var o = h.Out(EngineHarness.FromOutside(Tcp(Out, 50000 + i, Ext, 8080, 0x02)), Side.Outside);
            Assert.Equal(8000, DstPort(o));
            Assert.True(ChecksumsValid(o));
            seen.Add(Dst(o));
            var reply = h.Out(Tcp(Dst(o), 8000, Out, 50000 + i, 0x12, ack: 1001));
            Assert.Equal(Ext, Src(reply));
            Assert.Equal(8080, SrcPort(reply));
        }
        Assert.Equal(["10.0.0.2", "10.0.0.3", "10.0.0.2", "10.0.0.3"], seen);
        // The forward's port is never handed out to masqueraded flows.
        Assert.True(h.Engine.Table.Ports.IsUsed(0, 0, 8080));
    }

    [Fact]
    public void Refusing_backend_is_skipped_and_the_refusal_not_passed_on()
    {
        var h = new EngineHarness(s => WithForward(s, Balance.SourceHash));
        var first = h.Out(EngineHarness.FromOutside(Tcp(Out, 50000, Ext, 8080, 0x02)), Side.Outside);
        string refused = Dst(first);
        // The backend answers the SYN with RST: natd drops it and holds that backend down.
        Assert.Equal(Verdict.Drop, h.Run(Tcp(refused, 8000, Out, 50000, 0x14, ack: 1001), Side.Inside, out _));
        Assert.Equal(DropReason.BackendRefused, h.LastDrop);
        // The client's retransmitted SYN now reaches the other backend, although the source hash prefers the first.
        var retry = h.Out(EngineHarness.FromOutside(Tcp(Out, 50000, Ext, 8080, 0x02)), Side.Outside);
        Assert.NotEqual(refused, Dst(retry));
        Assert.Equal(1, h.Engine.Counters.BackendRefusals);
    }

    [Fact]
    public void Rfc4787_req9_hairpinning_reaches_a_forward_through_the_external_address()
    {
        var h = new EngineHarness(s => WithForward(s));
        // 10.0.0.3 connects to 198.51.100.1:8080, served by 10.0.0.2:8000 (round robin starts there).
        var v = h.Run(Tcp("10.0.0.3", 41000, Ext, 8080, 0x02), Side.Inside, out var o);
        Assert.Equal(Verdict.ToInside, v);
        Assert.Equal("10.0.0.2", Dst(o));
        Assert.Equal(8000, DstPort(o));
        Assert.Equal(Ext, Src(o)); // the server sees the client's external endpoint, not 10.0.0.3
        int clientExtPort = SrcPort(o);
        Assert.True(ChecksumsValid(o));
        var v2 = h.Run(Tcp("10.0.0.2", 8000, Ext, clientExtPort, 0x12, ack: 1001), Side.Inside, out var back);
        Assert.Equal(Verdict.ToInside, v2);
        Assert.Equal("10.0.0.3", Dst(back));
        Assert.Equal(41000, DstPort(back));
        Assert.Equal(Ext, Src(back));
        Assert.Equal(8080, SrcPort(back));
        Assert.True(ChecksumsValid(back));
        Assert.Equal(2, h.Engine.Counters.Hairpinned);
    }

    [Fact]
    public void Protocol_forward_sends_gre_to_the_inside_server_and_masquerades_its_replies()
    {
        var h = new EngineHarness(s => s with { ProtocolForwards = [new ProtocolForward(47, Ipv4.Parse(Ext), Ipv4.Parse(In))] });
        var inbound = WithMacs(Wrap("203.0.113.10", Ext, 47, new byte[24], 64, null, null), EngineHarness.RouterMac, GatewayOutsideMac);
        var o = h.Out(inbound, Side.Outside);
        Assert.Equal(In, Dst(o));
        Assert.True(ChecksumsValid(o));
        var reply = h.Out(Wrap(In, "203.0.113.10", 47, new byte[24], 64, null, null));
        Assert.Equal(Ext, Src(reply));
        Assert.Equal(2, h.Engine.Counters.ProtocolForwarded);
    }

    [Fact]
    public void Reload_with_new_pool_closes_sessions_on_the_old_address_and_uses_the_new_one()
    {
        var h = new EngineHarness();
        int ext = SrcPort(h.Out(Udp(In, 40000, Out, 53)));
        var next = h.Engine.Settings with
        {
            Pool = [Ipv4.Parse("198.51.100.9")],
            Outside = h.Engine.Settings.Outside with { Address = Ipv4Prefix.Parse("198.51.100.9/24") },
        };
        Assert.Null(h.Engine.UpdateSettings(next));
        Assert.Equal(0, h.Engine.Table.Count);
        Assert.Equal(Verdict.Drop, h.Run(EngineHarness.FromOutside(Udp(Out, 53, Ext, ext)), Side.Outside, out _));
        Assert.Equal("198.51.100.9", Src(h.Out(Udp(In, 40000, Out, 53))));
    }

    [Fact]
    public void Reload_adding_an_address_keeps_existing_sessions_and_their_ports()
    {
        var h = new EngineHarness();
        int ext = SrcPort(h.Out(Udp(In, 40000, Out, 53)));
        Assert.Null(h.Engine.UpdateSettings(h.Engine.Settings with { Pool = [Ipv4.Parse(Ext), Ipv4.Parse("198.51.100.9")] }));
        Assert.Equal(1, h.Engine.Table.Count);
        Assert.Equal(40000, DstPort(h.Out(EngineHarness.FromOutside(Udp(Out, 53, Ext, ext)), Side.Outside)));
        Assert.True(h.Engine.Table.Ports.IsUsed(0, 1, ext));
    }

    [Fact]
    public void Reload_closes_sessions_whose_rule_now_denies_and_keeps_the_others()
    {
        var h = new EngineHarness(Tight);
        h.Engine.Learn(Side.Inside, Ipv4.Parse("10.0.0.5"), MacAddress.Read(InsideHostMac));
        h.Out(Udp("10.0.0.5", 1, "203.0.113.10", 500));
        h.Out(Tcp("10.0.0.5", 2, "203.0.113.10", 1723, 0x02));
        var rules = h.Engine.Settings.Rules!.Where(r => r.Name != "pptp").ToList();
        Assert.Null(h.Engine.UpdateSettings(h.Engine.Settings with { Rules = rules }));
        var left = h.Engine.CollectSessionsList(h.Now).Single();
        Assert.Equal("udp", left.Protocol);
    }

    [Fact]
    public void Reload_refuses_a_table_size_change_and_changes_nothing()
    {
        var h = new EngineHarness();
        var why = h.Engine.UpdateSettings(h.Engine.Settings with { MaxSessions = 10, Timeouts = new Timeouts(Udp: 30) });
        Assert.Contains("restart", why);
        Assert.Equal(300, h.Engine.Settings.Timeouts.Udp);
    }
}

public class InboundRuleTests
{
    [Fact]
    public void Rules_naming_in_outside_can_deny_a_forward_to_a_bad_network_and_others_still_get_in()
    {
        var h = new EngineHarness(s => s with
        {
            Rules =
            [
                new ForwardRule { Name = "block-bad", Sources = [Ipv4Prefix.Parse("203.0.113.0/24")], In = RuleInterface.Outside, Action = RuleAction.Deny },
                new ForwardRule { Name = "subscribers", Sources = [Ipv4Prefix.Parse("10.0.0.0/24")], Action = RuleAction.Masquerade },
            ],
            Forwards =
            [
                new PortForward
                {
                    Protocol = 6, ExternalAddress = Ipv4.Parse(EngineHarness.External), ExternalPorts = new PortRange(8080, 8080),
                    Backends = [new(Ipv4.Parse("10.0.0.2"), 8000)],
                },
            ],
        });
        var bad = Frames.WithMacs(Frames.Tcp("203.0.113.9", 5000, EngineHarness.External, 8080, 0x02), EngineHarness.RouterMac, Frames.GatewayOutsideMac);
        Assert.Equal(Verdict.Drop, h.Run(bad, Side.Outside, out _));
        Assert.Equal(DropReason.RuleDeny, h.LastDrop);
        var good = EngineHarness.FromOutside(Frames.Tcp(EngineHarness.OutsideHost, 5000, EngineHarness.External, 8080, 0x02));
        Assert.Equal("10.0.0.2", Frames.Dst(h.Out(good, Side.Outside)));
        Assert.Equal(1, h.Engine.RuleHits[0]);
    }
}
