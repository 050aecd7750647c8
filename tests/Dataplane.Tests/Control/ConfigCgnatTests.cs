using Natd.Control.Config;
using Natd.Dataplane.Nat;
using Natd.Dataplane.Packets;

namespace Natd.Tests.Control;

/// <summary>The carrier-grade NAT keys (nat.subscriber-prefix, allocation, port-block, deterministic, pairing, port-reuse-delay, limits.per-subscriber), fragments, and pool prefixes and ranges.</summary>
public class ConfigCgnatTests
{
    [Fact]
    public void Defaults_are_todays_behaviour()
    {
        var n = ConfigLoader.Default().Nat;
        Assert.Equal(32, n.Cgnat.SubscriberPrefix);
        Assert.Equal(PortAllocation.Dynamic, n.Cgnat.Allocation);
        Assert.Equal(new PortBlockSettings(512, 8, 0), n.Cgnat.PortBlock);
        Assert.Null(n.Cgnat.Deterministic);
        Assert.Equal(Pairing.Strict, n.Cgnat.Pairing);
        Assert.Equal(120, n.Cgnat.PortReuseDelaySeconds);
        Assert.True(n.Cgnat.Limits.None);
        Assert.Equal(90, n.Cgnat.PoolThresholdPercent);
        Assert.Equal(new FragmentSettings(1024, 64, 2), n.Fragments);
    }

    [Fact]
    public void Every_key_is_read()
    {
        var n = ConfigLoader.Parse("""
            nat:
              pool: [198.51.100.1]
              subscriber-prefix: 30
              allocation: port-block
              port-block: { size: 256, per-subscriber: 4, interim-log: 3600 }
              pairing: spill
              port-reuse-delay: 60
              pool-threshold: 75
            limits:
              per-subscriber: { sessions: 2000, ports: 1000, new-sessions-per-second: 50 }
            fragments: { max-datagrams: 100, max-per-datagram: 8, timeout: 5 }
            """, "t.yaml").Nat;
        Assert.Equal(30, n.Cgnat.SubscriberPrefix);
        Assert.Equal(PortAllocation.PortBlock, n.Cgnat.Allocation);
        Assert.Equal(new PortBlockSettings(256, 4, 3600), n.Cgnat.PortBlock);
        Assert.Equal(Pairing.Spill, n.Cgnat.Pairing);
        Assert.Equal(60, n.Cgnat.PortReuseDelaySeconds);
        Assert.Equal(75, n.Cgnat.PoolThresholdPercent);
        Assert.Equal(new SubscriberLimits(2000, 1000, 50), n.Cgnat.Limits);
        Assert.Equal(new FragmentSettings(100, 8, 5), n.Fragments);
        Assert.Equal(Ipv4.Parse("10.1.2.0"), n.Cgnat.SubscriberOf(Ipv4.Parse("10.1.2.3")));
    }

    [Fact]
    public void Deterministic_reads_its_prefixes_and_ports()
    {
        var n = ConfigLoader.Parse("""
            nat:
              pool: [198.18.0.0/20]
              allocation: deterministic
              deterministic: { inside: [10.64.0.0/16, 10.65.0.0/24], ports: 2000 }
            """, "t.yaml").Nat;
        Assert.Equal(PortAllocation.Deterministic, n.Cgnat.Allocation);
        Assert.Equal([Ipv4Prefix.Parse("10.64.0.0/16"), Ipv4Prefix.Parse("10.65.0.0/24")], n.Cgnat.Deterministic!.Inside);
        Assert.Equal(2000, n.Cgnat.Deterministic.Ports);
    }

    [Fact]
    public void Deterministic_warns_that_a_port_limit_and_spill_pairing_do_not_apply()
    {
        var c = ConfigLoader.Parse("""
            nat:
              pool: [198.18.0.0/20]
              allocation: deterministic
              pairing: spill
              deterministic: { inside: [10.64.0.0/16] }
            limits:
              per-subscriber: { ports: 100 }
            """, "t.yaml");
        Assert.Contains(c.Warnings, w => w.Path == "limits.per-subscriber.ports" && w.Message.Contains("range is its port limit", StringComparison.Ordinal));
        Assert.Contains(c.Warnings, w => w.Path == "nat.pairing" && w.Message.Contains("exactly one address", StringComparison.Ordinal));
    }

    [Fact]
    public void Drain_takes_pool_addresses_as_the_pool_writes_them_and_defaults_to_none()
    {
        Assert.Equal(0, ConfigLoader.Default().Nat.Cgnat.Drain.Count);
        var n = ConfigLoader.Parse("""
            nat:
              pool: [198.51.100.1, 198.51.100.8/30, 198.51.100.20-198.51.100.21]
              drain: [198.51.100.10/31, 198.51.100.21]
            """, "t.yaml").Nat;
        Assert.Equal("[198.51.100.10, 198.51.100.11, 198.51.100.21]", n.Cgnat.Drain.ToString());
        Assert.True(n.Cgnat.Drain.Contains(Ipv4.Parse("198.51.100.11")));
        Assert.False(n.Cgnat.Drain.Contains(Ipv4.Parse("198.51.100.9")));
        // Compared by content: a reload of the same list leaves the carrier-grade settings equal.
        var again = ConfigLoader.Parse("nat:\n  pool: [198.51.100.1, 198.51.100.8/30, 198.51.100.20-198.51.100.21]\n  drain: [198.51.100.21, 198.51.100.10, 198.51.100.11]\n", "t.yaml").Nat;
        Assert.Equal(n.Cgnat, again.Cgnat);
        Assert.NotEqual(n.Cgnat, again.Cgnat with { Drain = DrainingAddresses.None });
    }

    [Fact]
    public void Pool_takes_addresses_prefixes_and_ranges_in_order()
    {
        var pool = ConfigLoader.Parse("""
            nat:
              pool: [198.51.100.32/30, 198.51.100.10-198.51.100.12, 198.51.100.1]
            """, "t.yaml").Nat.Pool;
        string[] expected = ["198.51.100.32", "198.51.100.33", "198.51.100.34", "198.51.100.35", "198.51.100.10", "198.51.100.11", "198.51.100.12", "198.51.100.1"];
        Assert.Equal(expected, pool.Select(Ipv4.Format));
    }

    [Theory]
    [InlineData("nat:\n  pool: [198.51.100.32/27, 198.51.100.40]\n", "nat.pool[1]", "198.51.100.40 is listed twice")]
    [InlineData("nat:\n  pool: [198.51.100.33/27]\n", "nat.pool[0]", "host bits set")]
    [InlineData("nat:\n  pool: [198.51.100.9-198.51.100.1]\n", "nat.pool[0]", "runs backwards")]
    [InlineData("nat:\n  pool: [198.51.100.1-x]\n", "nat.pool[0]", "not an address range")]
    [InlineData("nat:\n  pool: [10.0.0.0/8]\n", "nat.pool[0]", "holds 16777216 addresses; a pool takes at most 4096")]
    [InlineData("nat:\n  pool: [banana]\n", "nat.pool[0]", "not an IPv4 address, prefix or range")]
    [InlineData("nat:\n  subscriber-prefix: 0\n", "nat.subscriber-prefix", "from 1 to 32")]
    [InlineData("nat:\n  allocation: blocks\n", "nat.allocation", "accepted: dynamic, port-block, deterministic")]
    [InlineData("nat:\n  allocation: deterministic\n", "nat.allocation", "needs nat.deterministic.inside")]
    [InlineData("nat:\n  port-block: { size: 8 }\n", "nat.port-block.size", "from 16 to 32768")]
    [InlineData("nat:\n  port-block: { blocks: 8 }\n", "nat.port-block.blocks", "unknown key")]
    [InlineData("nat:\n  ports: 40000-40100\n  allocation: port-block\n", "nat.port-block.size", "a block of 512 ports does not fit the 101 ports")]
    [InlineData("nat:\n  pairing: loose\n", "nat.pairing", "accepted: strict, spill")]
    [InlineData("nat:\n  port-reuse-delay: 7200\n", "nat.port-reuse-delay", "from 0 to 3600")]
    [InlineData("nat:\n  pool-threshold: 101\n", "nat.pool-threshold", "from 0 to 100")]
    [InlineData("nat:\n  pool-threshold: -5\n", "nat.pool-threshold", "whole number")]
    [InlineData("nat:\n  allocation: deterministic\n  deterministic: { inside: [10.64.0.0/33] }\n", "nat.deterministic.inside[0]", "not a network")]
    [InlineData("nat:\n  subscriber-prefix: 24\n  allocation: deterministic\n  deterministic: { inside: [10.64.0.0/28] }\n", "nat.deterministic.inside", "smaller than one subscriber")]
    [InlineData("nat:\n  pool: [198.51.100.0/28]\n  allocation: deterministic\n  deterministic: { inside: [10.64.0.0/10] }\n", "nat.deterministic",
        "10.64.0.0/10 holds 4194304 subscribers; 16 addresses x 64512 ports give 0 ports each, below the minimum of 64")]
    [InlineData("nat:\n  pool: [198.51.100.0/28]\n  allocation: deterministic\n  deterministic: { inside: [10.64.0.0/10], ports: 2000 }\n", "nat.deterministic",
        "nat.deterministic.ports 2000: 4194304 subscribers need 131072 addresses at 32 per address; the pool has 16")]
    [InlineData("nat:\n  pool: [198.51.100.0/28]\n  allocation: deterministic\n  deterministic: { inside: [10.64.0.0/24, 10.64.0.128/25] }\n", "nat.deterministic",
        "10.64.0.128/25 overlaps 10.64.0.0/24")]
    [InlineData("nat:\n  pool: [198.51.100.1, 198.51.100.7]\n  drain: [198.51.100.9]\n", "nat.drain[0]", "198.51.100.9 is not in nat.pool; only a pool address can drain")]
    [InlineData("nat:\n  pool: [198.51.100.1, 198.51.100.6-198.51.100.7]\n  drain: [198.51.100.7, 198.51.100.6/31]\n", "nat.drain[1]", "198.51.100.7 is listed twice in nat.drain")]
    [InlineData("nat:\n  pool: [198.51.100.1, 198.51.100.7]\n  drain: [198.51.100.1, 198.51.100.7]\n", "nat.drain", "every address of nat.pool (2) would drain; at least one must take new subscribers")]
    [InlineData("nat:\n  drain: [198.51.100.1]\n", "nat.drain", "every address of nat.pool (1) would drain")]
    [InlineData("nat:\n  pool: [198.51.100.1, 198.51.100.7]\n  drain: [bad]\n", "nat.drain[0]", "not an IPv4 address, prefix or range")]
    [InlineData("nat:\n  pool: [198.51.100.1, 198.51.100.7]\n  drain: 198.51.100.7\n", "nat.drain", "expected a list")]
    [InlineData("nat:\n  pool: [198.18.0.0/20]\n  allocation: deterministic\n  deterministic: { inside: [10.64.0.0/16] }\n  drain: [198.18.0.1]\n", "nat.drain",
        "deterministic allocation fixes each subscriber's external address from the configuration (RFC 7422), so no address can drain")]
    [InlineData("limits:\n  per-subscriber: { flows: 3 }\n", "limits.per-subscriber.flows", "unknown key")]
    [InlineData("limits:\n  per-subscriber: { sessions: -1 }\n", "limits.per-subscriber.sessions", "whole number")]
    [InlineData("fragments: { timeout: 0 }\n", "fragments.timeout", "from 1 to 60")]
    [InlineData("fragments: { max-per-datagram: 1 }\n", "fragments.max-per-datagram", "from 2 to 1024")]
    public void Mistakes_are_rejected_with_the_key_and_a_reason(string yaml, string path, string fragment)
    {
        var e = Assert.Throws<ConfigException>(() => ConfigLoader.Parse(yaml, "t.yaml"));
        Assert.Contains(e.Errors, d => d.Path == path && d.Message.Contains(fragment, StringComparison.Ordinal));
    }
}
