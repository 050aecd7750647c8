using Natd.Control.Config;
using Natd.Dataplane.Nat;
using Natd.Dataplane.Packets;

namespace Natd.Tests.Control;

/// <summary>The rules, forwards and protocol-forwards sections of natd.yaml.</summary>
public class ConfigRulesTests
{
    private const string Src = "natd.yaml";

    /// <summary>An outside /29 with a two-address pool, so forwards have real external addresses to use.</summary>
    private const string Base = """
        interfaces:
          inside: { address: 10.0.0.1/24 }
          outside: { address: 198.51.100.1/29, gateway: 198.51.100.6 }
        nat:
          pool: [198.51.100.2, 198.51.100.3]

        """;

    private static (long Line, long Column) Pos(string yaml, string marker, string? after = null)
    {
        int from = after is null ? 0 : yaml.IndexOf(after, StringComparison.Ordinal);
        Assert.True(from >= 0, $"anchor '{after}' not in snippet");
        int i = yaml.IndexOf(marker, from, StringComparison.Ordinal);
        Assert.True(i >= 0, $"marker '{marker}' not in snippet");
        int line = 1, lineStart = 0;
        for (int k = 0; k < i; k++)
        {
            if (yaml[k] == '\n')
            {
                line++;
                lineStart = k + 1;
            }
        }
        return (line, i - lineStart + 1);
    }

    private static ConfigDiagnostic SingleError(string yaml)
    {
        var ex = Assert.Throws<ConfigException>(() => ConfigLoader.Parse(yaml, Src));
        Assert.True(ex.Errors.Count == 1, "expected one error, got:\n" + string.Join('\n', ex.Errors));
        return ex.Errors[0];
    }

    /// <summary>The error is at the marker's line and column, names the key path, and says <paramref name="fragment"/>.</summary>
    private static void AssertAt(ConfigDiagnostic d, string yaml, string marker, string path, string fragment, string? after = null)
    {
        var (line, column) = Pos(yaml, marker, after);
        Assert.Equal(path, d.Path);
        Assert.Equal((line, column), (d.Line, d.Column));
        Assert.Contains(fragment, d.Message, StringComparison.Ordinal);
        Assert.StartsWith($"{Src}:{line}:{column}: {path}: ", d.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void Without_a_rules_section_the_built_in_behaviour_stays()
    {
        var n = ConfigLoader.Parse(Base, Src).Nat;
        Assert.Null(n.Rules);
        Assert.Equal(RuleAction.Deny, n.DefaultPolicy);
        Assert.Empty(n.Forwards);
        Assert.Empty(n.ProtocolForwards);
    }

    [Fact]
    public void The_issue_example_maps_into_the_settings()
    {
        string yaml = Base + """
            rules:
              policy: reject
              list:
                - { name: vpn-isakmp, source: [10.0.0.5/32], destination: [203.0.113.10/32], protocol: udp, destination-ports: [500, 4500], in: inside, out: outside, action: masquerade, log: true }
                - { protocol: 47, action: masquerade }
                - { source: [10.0.0.0/24], source-ports: 1024-65535, protocol: tcp, action: accept }
                - { source: 10.0.0.9, action: deny }
            forwards:
              - { protocol: tcp, external: 198.51.100.2:8080, backends: [10.0.0.2:8000, 10.0.0.3:8000], balance: source-hash }
              - { protocol: udp, external: 198.51.100.1:5000-5010, backends: [10.0.0.2], balance: round-robin }
            protocol-forwards:
              - { protocol: gre, external: 198.51.100.3, to: 10.0.0.2 }
              - { protocol: 50, external: 198.51.100.3, to: 10.0.0.4 }
            """;
        var n = ConfigLoader.Parse(yaml, Src).Nat;
        Assert.Equal(RuleAction.Reject, n.DefaultPolicy);
        var rules = n.Rules!;
        Assert.Equal(4, rules.Count);

        var r0 = rules[0];
        Assert.Equal("vpn-isakmp", r0.Name);
        Assert.Equal([Ipv4Prefix.Parse("10.0.0.5/32")], r0.Sources);
        Assert.Equal([Ipv4Prefix.Parse("203.0.113.10/32")], r0.Destinations);
        Assert.Equal((byte)17, r0.Protocol);
        Assert.Equal([new PortRange(500, 500), new PortRange(4500, 4500)], r0.DestinationPorts);
        Assert.Empty(r0.SourcePorts);
        Assert.Equal(RuleInterface.Inside, r0.In);
        Assert.Equal(RuleInterface.Outside, r0.Out);
        Assert.Equal(RuleAction.Masquerade, r0.Action);
        Assert.True(r0.Log);

        Assert.Equal("rule-2", rules[1].Name);
        Assert.Equal((byte)47, rules[1].Protocol);
        Assert.Empty(rules[1].Sources);
        Assert.Equal(RuleInterface.Any, rules[1].In);
        Assert.False(rules[1].Log);
        Assert.Equal("rule-3", rules[2].Name);
        Assert.Equal([new PortRange(1024, 65535)], rules[2].SourcePorts);
        Assert.Equal(RuleAction.Accept, rules[2].Action);
        Assert.Equal([Ipv4Prefix.Parse("10.0.0.9/32")], rules[3].Sources);
        Assert.Null(rules[3].Protocol);
        Assert.Equal(RuleAction.Deny, rules[3].Action);

        Assert.Equal(2, n.Forwards.Count);
        var f0 = n.Forwards[0];
        Assert.Equal((byte)6, f0.Protocol);
        Assert.Equal(Ipv4.Parse("198.51.100.2"), f0.ExternalAddress);
        Assert.Equal(new PortRange(8080, 8080), f0.ExternalPorts);
        Assert.Equal([new(Ipv4.Parse("10.0.0.2"), 8000), new KeyValuePair<uint, ushort>(Ipv4.Parse("10.0.0.3"), 8000)], f0.Backends);
        Assert.Equal(Balance.SourceHash, f0.Balance);
        var f1 = n.Forwards[1];
        Assert.Equal((byte)17, f1.Protocol);
        Assert.Equal(Ipv4.Parse("198.51.100.1"), f1.ExternalAddress); // the outside address is allowed too
        Assert.Equal(new PortRange(5000, 5010), f1.ExternalPorts);
        Assert.Equal([new KeyValuePair<uint, ushort>(Ipv4.Parse("10.0.0.2"), 0)], f1.Backends);
        Assert.Equal(Balance.RoundRobin, f1.Balance);

        Assert.Equal(
            [new ProtocolForward(47, Ipv4.Parse("198.51.100.3"), Ipv4.Parse("10.0.0.2")), new ProtocolForward(50, Ipv4.Parse("198.51.100.3"), Ipv4.Parse("10.0.0.4"))],
            n.ProtocolForwards);
    }

    [Fact]
    public void An_empty_rules_section_means_only_the_policy()
    {
        var n = ConfigLoader.Parse(Base + "rules: { policy: masquerade }\n", Src).Nat;
        Assert.NotNull(n.Rules);
        Assert.Empty(n.Rules!);
        Assert.Equal(RuleAction.Masquerade, n.DefaultPolicy);
    }

    [Fact]
    public void Block_style_rules_report_the_right_line()
    {
        string yaml = Base + """
            rules:
              list:
                - name: web
                  protocol: tcp
                  destination-ports: [80, 443]
                  action: masquerade
                - name: web
                  action: deny
            """;
        var d = SingleError(yaml);
        AssertAt(d, yaml, "web", "rules.list[1].name", "rule name 'web' is already used by the rule at line 8", after: "action: masquerade");
    }

    [Theory]
    [InlineData("policy: drop", "drop", "rules.policy", "unknown value 'drop' (accepted: masquerade, accept, deny, reject)")]
    [InlineData("list: [{ action: forward }]", "forward", "rules.list[0].action", "unknown value 'forward'")]
    [InlineData("list: [{ source: [10.0.0.1/24], action: deny }]", "10.0.0.1/24", "rules.list[0].source[0]", "has host bits set (did you mean 10.0.0.0/24?)")]
    [InlineData("list: [{ destination: [10.0.0.300], action: deny }]", "10.0.0.300", "rules.list[0].destination[0]", "is not an address or network")]
    [InlineData("list: [{ protocol: sctp, action: deny }]", "sctp", "rules.list[0].protocol", "is not a protocol")]
    [InlineData("list: [{ protocol: 256, action: deny }]", "256", "rules.list[0].protocol", "is not a protocol")]
    [InlineData("list: [{ protocol: udp, destination-ports: [0], action: deny }]", "0]", "rules.list[0].destination-ports[0]", "is not a port or port range")]
    [InlineData("list: [{ protocol: udp, destination-ports: [2000-1000], action: deny }]", "2000-1000", "rules.list[0].destination-ports[0]", "1 <= LOW <= HIGH <= 65535")]
    [InlineData("list: [{ protocol: udp, source-ports: 70000, action: deny }]", "70000", "rules.list[0].source-ports", "is not a port or port range")]
    [InlineData("list: [{ protocol: gre, destination-ports: [1], action: deny }]", "[1]", "rules.list[0].destination-ports", "ports apply only to protocol tcp or udp")]
    [InlineData("list: [{ destination-ports: [80], action: deny }]", "[80]", "rules.list[0].destination-ports", "ports need the rule's protocol to be tcp or udp")]
    [InlineData("list: [{ in: wan, action: deny }]", "wan", "rules.list[0].in", "unknown value 'wan' (accepted: any, inside, outside)")]
    [InlineData("list: [{ out: eth0, action: deny }]", "eth0", "rules.list[0].out", "unknown value 'eth0'")]
    [InlineData("list: [{ log: yes, action: deny }]", "yes", "rules.list[0].log", "is not a boolean")]
    [InlineData("list: [{ name: 'a b', action: deny }]", "'a b'", "rules.list[0].name", "is not a rule name")]
    [InlineData("list: [{ source: [10.0.0.0/24] }]", "{ source", "rules.list[0].action", "every rule needs an action")]
    [InlineData("list: [{ action: deny, port: 80 }]", "port:", "rules.list[0].port", "unknown key 'port'")]
    [InlineData("list: [{ action: deny }, { name: rule-1, action: accept }]", "rule-1", "rules.list[1].name", "rule name 'rule-1' is already used")]
    [InlineData("default: deny", "default", "rules.default", "unknown key 'default' (accepted here: policy, list)")]
    public void Bad_rules_are_rejected_with_line_and_key(string body, string marker, string path, string fragment)
    {
        string yaml = Base + "rules:\n  " + body + "\n";
        var d = SingleError(yaml);
        AssertAt(d, yaml, marker, path, fragment, after: "rules:");
    }

    [Theory]
    [InlineData("{ protocol: gre, external: 198.51.100.2:80, backends: [10.0.0.2] }", "gre", "forwards[0].protocol", "a port forward is tcp or udp")]
    [InlineData("{ protocol: tcp, external: 198.51.100.2, backends: [10.0.0.2] }", "198.51.100.2", "forwards[0].external", "is not an external endpoint")]
    [InlineData("{ protocol: tcp, external: 198.51.100.2:0, backends: [10.0.0.2] }", "198.51.100.2:0", "forwards[0].external", "is not an external endpoint")]
    [InlineData("{ protocol: tcp, external: 203.0.113.1:80, backends: [10.0.0.2] }", "203.0.113.1:80", "forwards[0].external",
        "203.0.113.1 is not an external address of natd (nat.pool or the outside address: 198.51.100.2, 198.51.100.3, 198.51.100.1)")]
    [InlineData("{ protocol: tcp, external: 198.51.100.2:80, backends: [192.168.1.2] }", "192.168.1.2", "forwards[0].backends[0]", "backend 192.168.1.2 is not in the inside networks (10.0.0.0/24)")]
    [InlineData("{ protocol: tcp, external: 198.51.100.2:80, backends: [10.0.0.2:99999] }", "10.0.0.2:99999", "forwards[0].backends[0]", "is not a backend")]
    [InlineData("{ protocol: tcp, external: 198.51.100.2:80, backends: [10.0.0.2:80-81] }", "10.0.0.2:80-81", "forwards[0].backends[0]", "is not a backend")]
    [InlineData("{ protocol: udp, external: 198.51.100.2:5000-5010, backends: [10.0.0.2:5000] }", "10.0.0.2:5000", "forwards[0].backends[0]",
        "the forward covers the port range 5000-5010; a range forward keeps the port, so omit the backend port (write 10.0.0.2)")]
    [InlineData("{ protocol: tcp, external: 198.51.100.2:80, backends: [10.0.0.2, 10.0.0.2] }", "10.0.0.2]", "forwards[0].backends[1]", "backend 10.0.0.2 is listed twice")]
    [InlineData("{ protocol: tcp, external: 198.51.100.2:80, backends: [] }", "[]", "forwards[0].backends", "at least one backend")]
    [InlineData("{ protocol: tcp, external: 198.51.100.2:80 }", "{ protocol", "forwards[0].backends", "at least one backend")]
    [InlineData("{ external: 198.51.100.2:80, backends: [10.0.0.2] }", "{ external", "forwards[0].protocol", "needs a protocol")]
    [InlineData("{ protocol: tcp, backends: [10.0.0.2] }", "{ protocol", "forwards[0].external", "needs an external address and port")]
    [InlineData("{ protocol: tcp, external: 198.51.100.2:80, backends: [10.0.0.2], balance: random }", "random", "forwards[0].balance", "accepted: source-hash, round-robin")]
    [InlineData("{ protocol: tcp, external: 198.51.100.2:80, backends: [10.0.0.2], weight: 1 }", "weight", "forwards[0].weight", "unknown key 'weight'")]
    public void Bad_forwards_are_rejected_with_line_and_key(string body, string marker, string path, string fragment)
    {
        string yaml = Base + "forwards:\n  - " + body + "\n";
        var d = SingleError(yaml);
        AssertAt(d, yaml, marker, path, fragment, after: "forwards:");
    }

    [Fact]
    public void Overlapping_forwards_on_the_same_protocol_and_address_are_rejected()
    {
        string yaml = Base + """
            forwards:
              - { protocol: udp, external: 198.51.100.2:5000-5010, backends: [10.0.0.2] }
              - { protocol: tcp, external: 198.51.100.2:5005, backends: [10.0.0.3] }
              - { protocol: udp, external: 198.51.100.3:5005, backends: [10.0.0.3] }
              - { protocol: udp, external: 198.51.100.2:5010-5020, backends: [10.0.0.4] }
            """;
        var d = SingleError(yaml);
        AssertAt(d, yaml, "198.51.100.2:5010-5020", "forwards[3].external",
            "udp 198.51.100.2:5010-5020 overlaps the forward at line 7 (198.51.100.2:5000-5010)");
    }

    [Theory]
    [InlineData("{ protocol: tcp, external: 198.51.100.2, to: 10.0.0.2 }", "tcp", "protocol-forwards[0].protocol", "forward it with forwards (tcp, udp), not protocol-forwards")]
    [InlineData("{ protocol: 1, external: 198.51.100.2, to: 10.0.0.2 }", "1,", "protocol-forwards[0].protocol", "icmp has ports or identifiers")]
    [InlineData("{ protocol: udp, external: 198.51.100.2, to: 10.0.0.2 }", "udp", "protocol-forwards[0].protocol", "not protocol-forwards")]
    [InlineData("{ protocol: gre, external: 198.51.100.9, to: 10.0.0.2 }", "198.51.100.9", "protocol-forwards[0].external", "is not an external address of natd")]
    [InlineData("{ protocol: gre, external: 198.51.100.2:1723, to: 10.0.0.2 }", "198.51.100.2:1723", "protocol-forwards[0].external", "is not an IPv4 address")]
    [InlineData("{ protocol: gre, external: 198.51.100.2, to: 172.16.0.1 }", "172.16.0.1", "protocol-forwards[0].to", "is not in the inside networks")]
    [InlineData("{ protocol: gre, external: 198.51.100.2 }", "{ protocol", "protocol-forwards[0].to", "needs the inside server's address")]
    public void Bad_protocol_forwards_are_rejected_with_line_and_key(string body, string marker, string path, string fragment)
    {
        string yaml = Base + "protocol-forwards:\n  - " + body + "\n";
        var d = SingleError(yaml);
        AssertAt(d, yaml, marker, path, fragment, after: "protocol-forwards:");
    }

    [Fact]
    public void A_protocol_forwarded_twice_to_one_address_is_rejected()
    {
        string yaml = Base + """
            protocol-forwards:
              - { protocol: gre, external: 198.51.100.2, to: 10.0.0.2 }
              - { protocol: 47, external: 198.51.100.2, to: 10.0.0.3 }
            """;
        var d = SingleError(yaml);
        AssertAt(d, yaml, "198.51.100.2", "protocol-forwards[1].external", "protocol gre to 198.51.100.2 is already forwarded by the entry at line 7", after: "47");
    }

    [Fact]
    public void Every_error_in_the_sections_is_reported_at_once()
    {
        string yaml = Base + """
            rules:
              policy: maybe
              list: [{ action: nope }]
            forwards:
              - { protocol: tcp, external: 10.0.0.1:80, backends: [10.0.0.2] }
            protocol-forwards:
              - { protocol: tcp, external: 198.51.100.2, to: 10.0.0.2 }
            """;
        var ex = Assert.Throws<ConfigException>(() => ConfigLoader.Parse(yaml, Src));
        Assert.Equal(["rules.policy", "rules.list[0].action", "forwards[0].external", "protocol-forwards[0].protocol"], ex.Errors.Select(e => e.Path));
        Assert.Equal([7L, 8L, 10L, 12L], ex.Errors.Select(e => e.Line));
    }
}
