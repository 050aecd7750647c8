using Natd.Control.Config;
using Natd.Dataplane.Nat;
using Natd.Dataplane.Packets;

namespace Natd.Tests.Ops;

/// <summary>control/packaging: the example production configuration, the unit and the installer.</summary>
public class PackagingTests
{
    [Fact]
    public void The_example_production_config_is_valid_and_warning_free()
    {
        var c = ConfigLoader.LoadFile(Path.Combine(Repo.Packaging, "natd.yaml"));
        Assert.Empty(c.Warnings);
        var n = c.Nat;
        Assert.Equal("eth1", n.Inside.Name);
        Assert.Equal("eth0", n.Outside.Name);
        Assert.Equal(4, n.Pool.Count);
        Assert.All(n.Pool, a => Assert.True(Ipv4Prefix.Parse("192.0.2.0/29").Contains(a)));
        Assert.Equal(RuleAction.Deny, n.DefaultPolicy);
        Assert.Equal(["vpn-ike", "no-smtp", "subscribers"], n.Rules!.Select(r => r.Name));
        var forward = Assert.Single(n.Forwards);
        Assert.Contains(forward.ExternalAddress, n.Pool);
        Assert.Equal("127.0.0.1:9180", c.ControlListen);
    }

    [Fact]
    public void The_carrier_grade_example_is_valid_and_warning_free()
    {
        var c = ConfigLoader.LoadFile(Path.Combine(Repo.Packaging, "cgnat.yaml"));
        Assert.Empty(c.Warnings);
        var n = c.Nat;
        Assert.Equal([Ipv4Prefix.Parse("100.64.0.0/10")], n.Inside.Networks);
        Assert.Equal(128, n.Pool.Count);
        Assert.All(n.Pool, a => Assert.True(Ipv4Prefix.Parse("198.51.100.128/25").Contains(a)));
        Assert.Equal(PortAllocation.PortBlock, n.Cgnat.Allocation);
        Assert.Equal(new PortBlockSettings(512, 8, 86400), n.Cgnat.PortBlock);
        Assert.Equal(Pairing.Strict, n.Cgnat.Pairing);
        Assert.Equal(new SubscriberLimits(2000, 4096, 200), n.Cgnat.Limits);
        Assert.Equal(new FragmentSettings(4096, 64, 2), n.Fragments);
        Assert.Equal("{ 53: 30 }", n.Timeouts.UdpPorts.ToString()); // DNS queries give their ports back in 30 s (RFC 4787 REQ-5a)
    }

    [Fact]
    public void The_example_logs_nat_events_to_a_rotated_file()
    {
        var c = ConfigLoader.LoadFile(Path.Combine(Repo.Packaging, "natd.yaml"));
        Assert.NotNull(c.Events);
        Assert.Equal("/var/log/natd/events.jsonl", c.Events!.File!.Path);
        Assert.Null(c.Events.Syslog);
    }

    [Fact]
    public void The_unit_runs_natd_with_the_installed_config_and_reloads_with_hup()
    {
        var lines = File.ReadAllLines(Path.Combine(Repo.Packaging, "natd.service"))
            .Where(l => l.Length > 0 && !l.StartsWith('#')).ToList();
        string Value(string key) => Assert.Single(lines, l => l.StartsWith(key + "=", StringComparison.Ordinal))[(key.Length + 1)..];
        Assert.Equal("simple", Value("Type"));
        Assert.Equal("/usr/local/bin/natd run --config /etc/natd/natd.yaml --state /var/lib/natd/sessions.json", Value("ExecStart"));
        Assert.Equal("natd", Value("StateDirectory"));
        Assert.Equal("/bin/kill -HUP $MAINPID", Value("ExecReload"));
        Assert.Equal("on-failure", Value("Restart"));
        Assert.Equal("CAP_NET_RAW CAP_NET_ADMIN", Value("AmbientCapabilities"));
        Assert.Contains("AF_PACKET", Value("RestrictAddressFamilies").Split(' '));
        Assert.DoesNotContain(lines, l => l.StartsWith("PrivateNetwork=", StringComparison.Ordinal));
        Assert.DoesNotContain(lines, l => l.StartsWith("MemoryDenyWriteExecute=", StringComparison.Ordinal));
    }

    [Fact]
    public void The_installer_is_valid_bash()
    {
        string script = Path.Combine(Repo.Packaging, "install.sh");
        var (code, _, errors) = Repo.Run("bash", ["-n", script]);
        Assert.True(code == 0, errors);
        string text = File.ReadAllText(script);
        Assert.Contains("dotnet publish", text, StringComparison.Ordinal);
        Assert.Contains("-c Release", text, StringComparison.Ordinal);
        Assert.Contains("if [ -e \"$confdir/natd.yaml\" ]", text, StringComparison.Ordinal); // never overwrites a configuration
    }
}
