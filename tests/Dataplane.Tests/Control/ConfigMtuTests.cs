using Natd.Control.Config;
using Natd.Dataplane.Nat;

namespace Natd.Tests.Control;

/// <summary>interfaces.*.mtu and nat.mss-clamp.</summary>
public class ConfigMtuTests
{
    [Fact]
    public void Defaults_are_the_links_mtu_and_no_clamp()
    {
        var n = ConfigLoader.Default().Nat;
        Assert.Equal(0, n.Inside.Mtu);
        Assert.Equal(0, n.Outside.Mtu);
        Assert.Equal(0, n.MssClamp);
    }

    [Theory]
    [InlineData("off", 0)]
    [InlineData("auto", NatSettings.MssClampAuto)]
    [InlineData("1452", 1452)]
    [InlineData("536", 536)]
    public void Every_key_is_read(string clamp, int expected)
    {
        var n = ConfigLoader.Parse($"""
            interfaces:
              inside: {"{ mtu: 1500 }"}
              outside: {"{ mtu: 1492 }"}
            nat: {"{"} mss-clamp: {clamp} {"}"}
            """, "t.yaml").Nat;
        Assert.Equal(1500, n.Inside.Mtu);
        Assert.Equal(1492, n.Outside.Mtu);
        Assert.Equal(expected, n.MssClamp);
    }

    [Theory]
    [InlineData("interfaces: { inside: { mtu: 67 } }\n", "interfaces.inside.mtu", "'67' is not a whole number of bytes from 68 to 2030")]
    [InlineData("interfaces: { outside: { mtu: 9000 } }\n", "interfaces.outside.mtu", "from 68 to 2030")]
    [InlineData("nat: { mss-clamp: 535 }\n", "nat.mss-clamp", "'535' is not off, auto or a segment size of 536 to 65495 bytes")]
    [InlineData("nat: { mss-clamp: yes }\n", "nat.mss-clamp", "not off, auto or a segment size")]
    public void Mistakes_are_rejected_with_the_key_and_a_reason(string yaml, string path, string fragment)
    {
        var e = Assert.Throws<ConfigException>(() => ConfigLoader.Parse(yaml, "t.yaml"));
        Assert.Contains(e.Errors, d => d.Path == path && d.Message.Contains(fragment, StringComparison.Ordinal));
    }
}
