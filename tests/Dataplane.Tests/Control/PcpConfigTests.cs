using Natd.Control.Config;
using Natd.Dataplane.Packets;
using Natd.Dataplane.Pcp;

namespace Natd.Tests.Control;

/// <summary>The <c>pcp</c> section: defaults, every key read, and bad values refused with file:line:column and key.</summary>
public class PcpConfigTests
{
    [Fact]
    public void Defaults_are_off_with_the_documented_policy()
    {
        PcpSettings p = ConfigLoader.Default().Nat.Pcp;
        Assert.Equal(new PcpSettings
        {
            Enabled = false, MaxLifetime = 86400, MinLifetime = 120, MappingsPerSubscriber = 32,
            AllowedPorts = new PortRange(1024, 65535), ThirdParty = false, RequestsPerSecond = 20,
        }, p);
    }

    [Fact]
    public void Every_key_is_read()
    {
        const string yaml = "pcp:\n  enabled: true\n  max-lifetime: 7200\n  min-lifetime: 60\n  mappings-per-subscriber: 4\n"
            + "  allowed-ports: 20000-29999\n  third-party: true\n  requests-per-second: 5\n";
        PcpSettings p = ConfigLoader.Parse(yaml, "natd.yaml").Nat.Pcp;
        Assert.Equal(new PcpSettings
        {
            Enabled = true, MaxLifetime = 7200, MinLifetime = 60, MappingsPerSubscriber = 4,
            AllowedPorts = new PortRange(20000, 29999), ThirdParty = true, RequestsPerSecond = 5,
        }, p);
    }

    [Theory]
    [InlineData("nat:\n  allocation: port-block\n")]
    [InlineData("nat:\n  allocation: deterministic\n  deterministic: { inside: [10.0.0.0/24] }\n")]
    public void All_ports_is_read_with_port_blocks_or_deterministic_allocation(string nat)
    {
        Assert.True(ConfigLoader.Parse(nat + "pcp:\n  enabled: true\n  all-ports: true\n", "natd.yaml").Nat.Pcp.AllPorts);
        Assert.False(ConfigLoader.Parse(nat + "pcp:\n  enabled: true\n", "natd.yaml").Nat.Pcp.AllPorts);
    }

    [Theory]
    [InlineData("pcp:\n  enabled: true\n  all-ports: true\n", 3, 14)]
    [InlineData("nat:\n  allocation: dynamic\npcp:\n  all-ports: true\n", 4, 14)]
    public void All_ports_with_dynamic_allocation_is_refused_saying_why(string yaml, int line, int column)
    {
        var ex = Assert.Throws<ConfigException>(() => ConfigLoader.Parse(yaml, "natd.yaml"));
        var d = Assert.Single(ex.Errors);
        Assert.Equal(("pcp.all-ports", (long)line, (long)column), (d.Path, d.Line, d.Column));
        Assert.StartsWith($"natd.yaml:{line}:{column}: pcp.all-ports: true needs nat.allocation port-block or deterministic", d.ToString(), StringComparison.Ordinal);
        Assert.Contains("owns no ports", d.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("pcp:\n  all-ports: yes-please\n", 2, 14, "pcp.all-ports", "yes-please")]
    [InlineData("pcp:\n  enabeld: true\n", 2, 3, "pcp.enabeld", "unknown key 'enabeld'")]
    [InlineData("pcp:\n  enabled: maybe\n", 2, 12, "pcp.enabled", "maybe")]
    [InlineData("pcp:\n  allowed-ports: 9-1\n", 2, 18, "pcp.allowed-ports", "not a port range")]
    [InlineData("pcp:\n  max-lifetime: 100\n  min-lifetime: 200\n", 3, 17, "pcp.min-lifetime", "above pcp.max-lifetime")]
    [InlineData("pcp:\n  mappings-per-subscriber: 0\n", 2, 28, "pcp.mappings-per-subscriber", "")]
    [InlineData("pcp: [1, 2]\n", 1, 6, "pcp", "expected a mapping")]
    public void Bad_values_are_refused_with_position_and_key(string yaml, int line, int column, string path, string fragment)
    {
        var ex = Assert.Throws<ConfigException>(() => ConfigLoader.Parse(yaml, "natd.yaml"));
        var d = Assert.Single(ex.Errors);
        Assert.Equal((path, (long)line, (long)column), (d.Path, d.Line, d.Column));
        Assert.Contains(fragment, d.Message, StringComparison.Ordinal);
        Assert.StartsWith($"natd.yaml:{line}:{column}: {path}: ", d.ToString(), StringComparison.Ordinal);
    }
}
