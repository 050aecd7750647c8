using Natd.Control.Config;
using Natd.Dataplane.Nat;
using Natd.Dataplane.Packets;
using Natd.Dataplane.Sessions;

namespace Natd.Tests.Control;

public class ConfigLoaderTests
{
    private const string Src = "natd.yaml";

    /// <summary>1-based (line, column) of the first occurrence of <paramref name="marker"/> at or after <paramref name="after"/>.</summary>
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

    private static IReadOnlyList<ConfigDiagnostic> Errors(string yaml)
    {
        var ex = Assert.Throws<ConfigException>(() => ConfigLoader.Parse(yaml, Src));
        Assert.NotEmpty(ex.Errors);
        return ex.Errors;
    }

    private static ConfigDiagnostic SingleError(string yaml)
    {
        var errors = Errors(yaml);
        Assert.True(errors.Count == 1, "expected one error, got:\n" + string.Join('\n', errors));
        return errors[0];
    }

    private static void AssertAt(ConfigDiagnostic d, string yaml, string marker, string path, string fragment, string? after = null)
    {
        var (line, column) = Pos(yaml, marker, after);
        Assert.Equal(Src, d.Source);
        Assert.Equal(path, d.Path);
        Assert.Equal((line, column), (d.Line, d.Column));
        Assert.Contains(fragment, d.Message, StringComparison.Ordinal);
        Assert.StartsWith(path.Length > 0 ? $"{Src}:{line}:{column}: {path}: " : $"{Src}:{line}:{column}: ", d.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void Defaults_are_the_documented_lab_values()
    {
        var c = ConfigLoader.Default();
        var n = c.Nat;
        Assert.Equal("natin", n.Inside.Name);
        Assert.Equal(Ipv4Prefix.Parse("10.0.0.1/24"), n.Inside.Address);
        Assert.Equal([Ipv4Prefix.Parse("10.0.0.0/24")], n.Inside.Networks);
        Assert.Equal(0u, n.Inside.Gateway);
        Assert.Null(n.Inside.Mac);
        Assert.Empty(n.Inside.Neighbours);
        Assert.Equal("natout", n.Outside.Name);
        Assert.Equal(Ipv4Prefix.Parse("198.51.100.1/24"), n.Outside.Address);
        Assert.Equal(Ipv4.Parse("198.51.100.254"), n.Outside.Gateway);
        Assert.Equal([new Ipv4Prefix(0, 0)], n.Outside.Networks);
        Assert.Equal([Ipv4.Parse("198.51.100.1")], n.Pool);
        Assert.Equal((1024, 65535), ((int)n.PortMin, (int)n.PortMax));
        Assert.Equal(MappingBehaviour.EndpointIndependent, n.Mapping);
        Assert.Equal(FilteringBehaviour.AddressAndPortDependent, n.Filtering);
        Assert.Equal(new Timeouts(7440, 240, 300, 60), n.Timeouts);
        Assert.Equal(262_144, n.MaxSessions);
        Assert.True(n.VerifyL4Checksums);
        Assert.Equal(64, c.BatchSize);
        Assert.Null(c.XdpFillRing); // the driver's own default
        Assert.Equal("127.0.0.1:9180", c.ControlListen);
        Assert.Equal("information", c.LogLevel);
        Assert.Null(c.SourcePath);
        Assert.Empty(c.Warnings);
    }

    private static void AssertSameConfig(NatdConfig a, NatdConfig b)
    {
        static void Side(InterfaceSettings x, InterfaceSettings y)
        {
            Assert.Equal(x.Name, y.Name);
            Assert.Equal(x.Address, y.Address);
            Assert.Equal(x.Networks, y.Networks);
            Assert.Equal(x.Gateway, y.Gateway);
            Assert.Equal(x.Mac, y.Mac);
            Assert.Equal(x.Neighbours, y.Neighbours);
        }
        Side(a.Nat.Inside, b.Nat.Inside);
        Side(a.Nat.Outside, b.Nat.Outside);
        Assert.Equal(a.Nat.Pool, b.Nat.Pool);
        Assert.Equal(a.Nat with { Inside = b.Nat.Inside, Outside = b.Nat.Outside, Pool = b.Nat.Pool }, b.Nat);
        Assert.Equal(a with { Nat = b.Nat, Warnings = b.Warnings, SourcePath = b.SourcePath }, b);
    }

    [Fact]
    public void The_outside_source_filter_defaults_to_strict_with_nothing_allowed()
    {
        var n = ConfigLoader.Default().Nat;
        Assert.Equal(MartianFilter.Strict, n.MartianFilter);
        Assert.Empty(n.AllowedOutsideSources);
    }

    [Fact]
    public void The_outside_source_filter_keys_are_read()
    {
        const string yaml = """
            interfaces:
              outside:
                martian-filter: off
                allowed-sources: [192.168.0.0/16, 100.64.0.0/10, 10.1.0.0/16, 169.254.0.0/16, 172.16.0.0/12]
            """;
        var n = ConfigLoader.Parse(yaml, Src).Nat;
        Assert.Equal(MartianFilter.Off, n.MartianFilter);
        Assert.Equal(["192.168.0.0/16", "100.64.0.0/10", "10.1.0.0/16", "169.254.0.0/16", "172.16.0.0/12"], n.AllowedOutsideSources.Select(p => p.ToString()));
        // A prefix that only overlaps the inside (10.0.0.0/24 here) is accepted: the inside part stays dropped.
        Assert.Equal([Ipv4Prefix.Parse("10.0.0.0/8")], ConfigLoader.Parse("interfaces:\n  outside:\n    allowed-sources: [10.0.0.0/8]\n", Src).Nat.AllowedOutsideSources);
        Assert.Empty(ConfigLoader.Parse("interfaces:\n  outside:\n    allowed-sources: []\n", Src).Nat.AllowedOutsideSources);
    }

    [Fact]
    public void The_key_reference_parses_to_the_defaults()
    {
        var described = ConfigLoader.Parse(ConfigLoader.Describe(), "reference");
        AssertSameConfig(ConfigLoader.Default(), described);
        Assert.Empty(described.Warnings);
    }

    [Fact]
    public void The_full_schema_is_read()
    {
        const string yaml = """
            interfaces:
              inside:
                name: eth1
                address: 192.168.7.1/24
                networks: [192.168.7.0/24, 192.168.8.0/22]
                gateway: 192.168.7.254
                mac: 02:aa:bb:cc:dd:01
                neighbours: { 192.168.7.2: 02:00:00:00:00:02, 192.168.7.3: 02:00:00:00:00:03 }
              outside:
                name: eth0
                address: 203.0.113.2/29
                gateway: 203.0.113.1
            nat:
              pool:
                - 203.0.113.2
                - 203.0.113.3
              ports: 20000-29999
              mapping: address-and-port-dependent
              filtering: endpoint-independent
            timeouts: { tcp-established: 8000, tcp-transitory: 300, udp: 600, icmp: 90 }
            limits: { sessions: 1000 }
            dataplane: { batch: 256, verify-checksums: false, xdp-fill-ring: 4096 }
            control: { listen: "[::1]:9999" }
            log: { level: debug }
            """;
        var c = ConfigLoader.Parse(yaml, Src);
        var n = c.Nat;
        Assert.Equal("eth1", n.Inside.Name);
        Assert.Equal([Ipv4Prefix.Parse("192.168.7.0/24"), Ipv4Prefix.Parse("192.168.8.0/22")], n.Inside.Networks);
        Assert.Equal(Ipv4.Parse("192.168.7.254"), n.Inside.Gateway);
        Assert.Equal(MacAddress.Parse("02:aa:bb:cc:dd:01"), n.Inside.Mac);
        Assert.Equal(
            [new(Ipv4.Parse("192.168.7.2"), MacAddress.Parse("02:00:00:00:00:02")), new(Ipv4.Parse("192.168.7.3"), MacAddress.Parse("02:00:00:00:00:03"))],
            n.Inside.Neighbours);
        Assert.Equal("eth0", n.Outside.Name);
        Assert.Equal(Ipv4.Parse("203.0.113.1"), n.Outside.Gateway);
        Assert.Equal([Ipv4.Parse("203.0.113.2"), Ipv4.Parse("203.0.113.3")], n.Pool);
        Assert.Equal((20000, 29999), ((int)n.PortMin, (int)n.PortMax));
        Assert.Equal(MappingBehaviour.AddressAndPortDependent, n.Mapping);
        Assert.Equal(FilteringBehaviour.EndpointIndependent, n.Filtering);
        Assert.Equal(new Timeouts(8000, 300, 600, 90), n.Timeouts);
        Assert.Equal(1000, n.MaxSessions);
        Assert.False(n.VerifyL4Checksums);
        Assert.Equal(256, c.BatchSize);
        Assert.Equal(4096, c.XdpFillRing);
        Assert.Equal("[::1]:9999", c.ControlListen);
        Assert.Equal("debug", c.LogLevel);
        Assert.Empty(c.Warnings);
    }

    [Fact]
    public void Derived_defaults_follow_the_given_addresses()
    {
        var c = ConfigLoader.Parse("""
            interfaces:
              inside: { address: 172.16.5.1/16 }
              outside: { address: 203.0.113.9/24 }
            """, Src);
        Assert.Equal([Ipv4Prefix.Parse("172.16.0.0/16")], c.Nat.Inside.Networks);
        Assert.Equal([Ipv4.Parse("203.0.113.9")], c.Nat.Pool);
        Assert.Equal(0u, c.Nat.Outside.Gateway); // the lab gateway is not on-link here, so none
    }

    [Fact]
    public void Empty_sections_and_comments_mean_defaults()
    {
        var c = ConfigLoader.Parse("# nothing\nnat:\ntimeouts:\n", Src);
        AssertSameConfig(ConfigLoader.Default(), c);
    }

    [Fact]
    public void Udp_port_timers_are_read_by_port_and_default_to_none()
    {
        Assert.True(ConfigLoader.Default().Nat.Timeouts.UdpPorts.IsEmpty);
        var c = ConfigLoader.Parse("timeouts:\n  udp: 600\n  udp-ports: { 123: 60, 53: 30, 853: 30 }\n", Src);
        var t = c.Nat.Timeouts;
        Assert.Equal(600, t.Udp);
        Assert.Equal("{ 53: 30, 123: 60, 853: 30 }", t.UdpPorts.ToString());
        Assert.Equal(LruClass.UdpPort0, t.UdpPorts.ClassOf(FlowKey.PortToRaw(853), FlowKey.PortToRaw(40000)));
        Assert.Equal(60, SessionTable.TimeoutSeconds(LruClass.UdpPort1, t));
        Assert.Equal(600, SessionTable.TimeoutSeconds(LruClass.UdpPort2, t)); // a timer no port uses is the UDP timeout
        Assert.Empty(c.Warnings); // shorter than udp and below 120 s is what REQ-5a allows
        Assert.True(ConfigLoader.Parse("timeouts:\n  udp-ports: {}\n", Src).Nat.Timeouts.UdpPorts.IsEmpty);
    }

    [Fact]
    public void Port_range_error_has_the_documented_form()
    {
        const string yaml = """
            # natd.yaml
            interfaces:
              inside: { name: natin }
            control:
              listen: 127.0.0.1:9180
            nat:
              ports: 70000-1
            """;
        var ex = Assert.Throws<ConfigException>(() => ConfigLoader.Parse(yaml, "natd.yaml"));
        Assert.Equal(
            "natd.yaml:7:10: nat.ports: '70000-1' is not a port range (expected LOW-HIGH with 1 <= LOW <= HIGH <= 65535)",
            ex.Message);
    }

    public static TheoryData<string, string, string, string> Rejections => new()
    {
        // yaml, marker where the error points, key path, message fragment
        { "natx:\n  pool: []\n", "natx", "natx", "unknown key 'natx' (accepted here: interfaces, nat, timeouts, limits, dataplane, control, log, rules, forwards, protocol-forwards, algs, triggers, fragments, pcp)" },
        { "interfaces:\n  inside:\n    nmae: x\n", "nmae", "interfaces.inside.nmae", "accepted here: name, address, networks, gateway, mac, neighbours" },
        { "interfaces:\n  middle: {}\n", "middle", "interfaces.middle", "accepted here: inside, outside" },
        { "timeouts:\n  tcp: 30\n", "tcp", "timeouts.tcp", "accepted here: tcp-established, tcp-transitory, udp, icmp" },
        { "interfaces:\n  inside:\n    address: 10.0.0.256/24\n", "10.0.0.256", "interfaces.inside.address", "'10.0.0.256/24' is not an interface address" },
        { "interfaces:\n  inside:\n    address: 10.0.0.1\n", "10.0.0.1", "interfaces.inside.address", "a.b.c.d/len" },
        { "interfaces:\n  inside:\n    address: 10.0.0.0/24\n", "10.0.0.0", "interfaces.inside.address", "neither all zeros nor all ones" },
        { "interfaces:\n  outside:\n    address: 198.51.100.255/24\n", "198.51", "interfaces.outside.address", "host part" },
        { "interfaces:\n  inside:\n    networks: [10.0.0.0/24, 10.1.0.0/33]\n", "10.1.0.0/33", "interfaces.inside.networks[1]", "is not a network" },
        { "interfaces:\n  inside:\n    networks:\n      - 10.0.0.1/24\n", "10.0.0.1/24", "interfaces.inside.networks[0]", "host bits set (did you mean 10.0.0.0/24?)" },
        { "interfaces:\n  inside:\n    networks: []\n", "[]", "interfaces.inside.networks", "at least one network" },
        { "interfaces:\n  inside:\n    mac: 02:00:00:00:00\n", "02:", "interfaces.inside.mac", "not a unicast MAC address" },
        { "interfaces:\n  inside:\n    mac: 01:00:5e:00:00:01\n", "01:", "interfaces.inside.mac", "multicast bit" },
        { "interfaces:\n  inside:\n    neighbours:\n      10.0.0.300: 02:00:00:00:00:02\n", "10.0.0.300", "interfaces.inside.neighbours[10.0.0.300]", "not an IPv4 address" },
        { "interfaces:\n  inside:\n    neighbours: { 10.0.0.2: zz:00:00:00:00:02 }\n", "zz:", "interfaces.inside.neighbours[10.0.0.2]", "not a unicast MAC address" },
        { "interfaces:\n  outside:\n    gateway: 192.0.2.1\n", "192.0.2.1", "interfaces.outside.gateway", "is not a neighbour on interfaces.outside.address 198.51.100.1/24" },
        { "interfaces:\n  outside:\n    gateway: 198.51.100.300\n", "198.51.100.300", "interfaces.outside.gateway", "not an IPv4 address" },
        { "interfaces:\n  inside:\n    name: \"\"\n", "\"\"", "interfaces.inside.name", "expected 1 to 15 characters" },
        { "interfaces:\n  inside:\n    name: abcdefghijklmnop\n", "abcdefghijklmnop", "interfaces.inside.name", "'abcdefghijklmnop' is not an interface name" },
        { "interfaces:\n  inside:\n    name: eth0/1\n", "eth0/1", "interfaces.inside.name", "no '/'" },
        { "interfaces:\n  inside: { name: eth0 }\n  outside: { name: eth0 }\n", "eth0", "interfaces.outside.name", "inside and outside are both 'eth0'" },
        { "interfaces:\n  inside: { name: natout }\n", "natout", "interfaces.inside.name", "inside and outside are both 'natout'" },
        { "nat:\n  ports: 2000-1000\n", "2000", "nat.ports", "'2000-1000' is not a port range" },
        { "nat:\n  ports: 0-100\n", "0-100", "nat.ports", "1 <= LOW" },
        { "nat:\n  ports: 1024\n", "1024", "nat.ports", "LOW-HIGH" },
        { "nat:\n  pool: []\n", "[]", "nat.pool", "at least one external address" },
        { "nat:\n  pool:\n", "pool", "nat.pool", "at least one external address" },
        { "nat:\n  pool: [198.51.100.1, 198.51.100.x]\n", "198.51.100.x", "nat.pool[1]", "'198.51.100.x' is not an IPv4 address" },
        { "nat:\n  pool: [198.51.100.1, 198.51.100.1]\n", "198.51.100.1]", "nat.pool[1]", "listed twice" },
        { "nat:\n  mapping: full-cone\n", "full-cone", "nat.mapping", "unknown value 'full-cone' (accepted: endpoint-independent, address-and-port-dependent)" },
        { "nat:\n  filtering: open\n", "open", "nat.filtering", "accepted: address-and-port-dependent, address-dependent, endpoint-independent" },
        { "timeouts:\n  udp: five\n", "five", "timeouts.udp", "'five' is not a whole number of seconds from 1 to 2147483647" },
        { "timeouts:\n  icmp: 0\n", "0", "timeouts.icmp", "from 1 to 2147483647" },
        { "timeouts:\n  tcp-established: 2147483648\n", "2147483648", "timeouts.tcp-established", "from 1 to 2147483647" },
        { "timeouts:\n  tcp-transitory: 2.5\n", "2.5", "timeouts.tcp-transitory", "whole number" },
        { "timeouts:\n  udp-ports: { 1024: 30 }\n", "1024", "timeouts.udp-ports[1024]", "'1024' is not a well-known port (1..1023): RFC 4787 REQ-5a" },
        { "timeouts:\n  udp-ports: { dns: 30 }\n", "dns", "timeouts.udp-ports[dns]", "'dns' is not a well-known port" },
        { "timeouts:\n  udp-ports: { 53: 0 }\n", "0", "timeouts.udp-ports[53]", "'0' is not a whole number of seconds from 1 to 2147483647" },
        { "timeouts:\n  udp-ports: { 53: 30, 053: 40 }\n", "053", "timeouts.udp-ports[053]", "port 53 is named twice" },
        { "timeouts:\n  udp-ports: { 1: 1, 2: 2, 3: 3, 4: 4, 5: 5 }\n", "{", "timeouts.udp-ports", "5 distinct timeouts; at most 4" },
        { "timeouts:\n  udp-ports: [53]\n", "[53]", "timeouts.udp-ports", "expected a mapping" },
        { "limits:\n  sessions: 100000001\n", "100000001", "limits.sessions", "from 1 to 100000000" },
        { "limits:\n  sessions: 0\n", "0", "limits.sessions", "from 1 to 100000000" },
        { "limits:\n  neighbours: 0\n", "0", "limits.neighbours", "'0' is not a whole number of neighbours from 1 to 16777216" },
        { "limits:\n  neighbours: 16777217\n", "16777217", "limits.neighbours", "from 1 to 16777216" },
        { "dataplane:\n  batch: 1025\n", "1025", "dataplane.batch", "from 1 to 1024" },
        { "dataplane:\n  batch: -1\n", "-1", "dataplane.batch", "from 1 to 1024" },
        { "dataplane:\n  verify-checksums: maybe\n", "maybe", "dataplane.verify-checksums", "accepted: true, false" },
        { "dataplane:\n  xdp-fill-ring: 63\n", "63", "dataplane.xdp-fill-ring", "'63' is not a whole number of frames from 64 to 16384" },
        { "dataplane:\n  xdp-fill-ring: 16385\n", "16385", "dataplane.xdp-fill-ring", "from 64 to 16384" },
        { "dataplane:\n  xdp-fill-ring: deep\n", "deep", "dataplane.xdp-fill-ring", "whole number of frames" },
        { "dataplane:\n  xdp-fill-ring:\n", "xdp-fill-ring", "dataplane.xdp-fill-ring", "has no value" },
        { "control:\n  listen: 127.0.0.1\n", "127", "control.listen", "'127.0.0.1' is not host:port" },
        { "control:\n  listen: example.com:9180\n", "example", "control.listen", "is not host:port" },
        { "control:\n  listen: 127.0.0.1:70000\n", "127", "control.listen", "port 1..65535" },
        { "log:\n  level: verbose\n", "verbose", "log.level", "accepted: trace, debug, information, warning, error, critical, none" },
        { "nat: 5\n", "5", "nat", "expected a mapping (key: value lines), found a scalar" },
        { "interfaces:\n  inside: [natin]\n", "[natin]", "interfaces.inside", "expected a mapping" },
        { "nat:\n  pool: 198.51.100.1\n", "198.51.100.1", "nat.pool", "expected a list" },
        { "nat:\n  ports: [1024, 2048]\n", "[1024", "nat.ports", "expected a single value, found a list" },
        { "nat:\n  ports:\n", "ports", "nat.ports", "has no value" },
        { "nat:\n  ports: 1024-2048\n  ports: 3000-4000\n", "ports", "nat.ports", "duplicate key 'ports' (first defined at line 2)" },
        { "- nat\n", "- nat", "", "expected a mapping" },
        { "interfaces:\n  outside:\n    martian-filter: loose\n", "loose", "interfaces.outside.martian-filter", "unknown value 'loose' (accepted: strict, off)" },
        { "interfaces:\n  inside:\n    martian-filter: off\n", "martian-filter", "interfaces.inside.martian-filter", "unknown key 'martian-filter'" },
        { "interfaces:\n  inside:\n    allowed-sources: [192.168.0.0/16]\n", "allowed-sources", "interfaces.inside.allowed-sources", "unknown key 'allowed-sources'" },
        { "interfaces:\n  outside:\n    allowed-sources: [192.168.0.0/16, 203.0.113.0/24]\n", "203.0.113.0/24", "interfaces.outside.allowed-sources[1]", "203.0.113.0/24 is not within a range the martian filter drops (10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, 100.64.0.0/10, 169.254.0.0/16)" },
        { "interfaces:\n  outside:\n    allowed-sources: [0.0.0.0/0]\n", "0.0.0.0/0", "interfaces.outside.allowed-sources[0]", "is not within a range the martian filter drops" },
        { "interfaces:\n  outside:\n    allowed-sources: [172.0.0.0/8]\n", "172.0.0.0/8", "interfaces.outside.allowed-sources[0]", "is not within a range the martian filter drops" },
        { "interfaces:\n  outside:\n    allowed-sources: [192.168.1.1/16]\n", "192.168.1.1/16", "interfaces.outside.allowed-sources[0]", "host bits set (did you mean 192.168.0.0/16?)" },
        { "interfaces:\n  outside:\n    allowed-sources: [192.168.0.0]\n", "192.168.0.0", "interfaces.outside.allowed-sources[0]", "is not a network" },
        { "interfaces:\n  outside:\n    allowed-sources: [10.0.0.128/25]\n", "10.0.0.128/25", "interfaces.outside.allowed-sources[0]", "lies within the inside network 10.0.0.0/24" },
        { "interfaces:\n  outside:\n    allowed-sources: 192.168.0.0/16\n", "192.168.0.0/16", "interfaces.outside.allowed-sources", "expected a list" },
    };

    [Theory]
    [MemberData(nameof(Rejections))]
    public void Rejects_with_position_and_key(string yaml, string marker, string path, string fragment)
    {
        var d = SingleError(yaml);
        // Duplicate keys point at the second occurrence.
        string? after = fragment.StartsWith("duplicate", StringComparison.Ordinal) ? "1024-2048" : null;
        // A key given with no value points at the (empty) value, which YamlDotNet places after the key.
        if (fragment == "has no value" || yaml == "nat:\n  pool:\n")
        {
            Assert.Equal(Src, d.Source);
            Assert.Equal(path, d.Path);
            Assert.Equal(Pos(yaml, marker).Line, d.Line);
            Assert.Contains(fragment, d.Message, StringComparison.Ordinal);
            return;
        }
        if (fragment.StartsWith("inside and outside are both 'eth0'", StringComparison.Ordinal))
        {
            after = "outside";
        }
        AssertAt(d, yaml, marker, path, fragment, after);
    }

    [Fact]
    public void Duplicate_keys_are_reported_at_every_level_with_other_errors()
    {
        const string yaml = """
            nat:
              mapping: endpoint-independent
            timeouts:
              udp: 300
              udp: 30
            nat:
              ports: 1-0
            limits: { sessions: 0 }
            """;
        var errors = Errors(yaml);
        // The second 'nat' is dropped whole (it is the duplicate), so its bad port range is not validated.
        Assert.Equal(3, errors.Count);
        AssertAt(errors[0], yaml, "udp", "timeouts.udp", "duplicate key 'udp' (first defined at line 4)", after: "300");
        AssertAt(errors[1], yaml, "nat", "nat", "duplicate key 'nat' (first defined at line 1)", after: "udp: 30");
        AssertAt(errors[2], yaml, "0 }", "limits.sessions", "from 1 to 100000000");
    }

    [Fact]
    public void All_errors_are_reported_together_in_document_order()
    {
        const string yaml = """
            interfaces:
              inside:
                address: 10.0.0.1/40
                colour: blue
            nat:
              ports: 9-1
              mapping: symmetric
            limits: { sessions: lots }
            """;
        var ex = Assert.Throws<ConfigException>(() => ConfigLoader.Parse(yaml, Src));
        Assert.Equal(5, ex.Errors.Count);
        AssertAt(ex.Errors[0], yaml, "colour", "interfaces.inside.colour", "unknown key 'colour'");
        AssertAt(ex.Errors[1], yaml, "10.0.0.1/40", "interfaces.inside.address", "not an interface address");
        AssertAt(ex.Errors[2], yaml, "9-1", "nat.ports", "not a port range");
        AssertAt(ex.Errors[3], yaml, "symmetric", "nat.mapping", "unknown value 'symmetric'");
        AssertAt(ex.Errors[4], yaml, "lots", "limits.sessions", "not a whole number of sessions");
        string[] lines = ex.Message.Split('\n');
        Assert.Equal(5, lines.Length);
        Assert.Equal(ex.Errors.Select(e => e.ToString()), lines);
    }

    [Fact]
    public void Yaml_syntax_errors_have_a_position()
    {
        const string yaml = "nat:\n  pool: [198.51.100.1\nlimits: {}\n";
        var d = SingleError(yaml);
        Assert.Equal("", d.Path);
        Assert.True(d.Line >= 2, d.ToString());
        Assert.StartsWith("not valid YAML: ", d.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("(Line:", d.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Only_one_document_is_allowed()
    {
        const string yaml = "nat: {}\n---\nlimits: {}\n";
        var d = SingleError(yaml);
        Assert.Equal(2, d.Line);
        Assert.Contains("more than one YAML document", d.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("udp", 119, "RFC 4787 REQ-5")]
    [InlineData("tcp-established", 7439, "RFC 5382 REQ-5")]
    [InlineData("tcp-transitory", 239, "RFC 5382 REQ-5")]
    [InlineData("icmp", 59, "RFC 5508")]
    public void Timeouts_below_the_RFC_warn_but_load(string key, int seconds, string rfc)
    {
        string yaml = $"timeouts:\n  {key}: {seconds}\n";
        var c = ConfigLoader.Parse(yaml, Src);
        var w = Assert.Single(c.Warnings);
        Assert.Equal("timeouts." + key, w.Path);
        Assert.Equal((2L, (long)(key.Length + 5)), (w.Line, w.Column));
        Assert.Contains(rfc, w.Message, StringComparison.Ordinal);

        string atThreshold = $"timeouts:\n  {key}: {seconds + 1}\n";
        Assert.Empty(ConfigLoader.Parse(atThreshold, Src).Warnings);
    }

    [Fact]
    public void Pool_address_off_the_outside_prefix_warns()
    {
        const string yaml = "nat:\n  pool: [198.51.100.1, 203.0.113.7]\n";
        var c = ConfigLoader.Parse(yaml, Src);
        var w = Assert.Single(c.Warnings);
        Assert.Equal("nat.pool[1]", w.Path);
        Assert.Equal(Pos(yaml, "203.0.113.7"), (w.Line, w.Column));
        Assert.Contains("outside the outside interface's prefix 198.51.100.0/24", w.Message, StringComparison.Ordinal);
        Assert.Equal(2, c.Nat.Pool.Count);
    }

    [Fact]
    public void LoadFile_sets_the_source_path_and_names_the_file_in_errors()
    {
        string dir = Path.Combine(Path.GetTempPath(), "natd-config-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            string good = Path.Combine(dir, "natd.yaml");
            File.WriteAllText(good, "limits: { sessions: 10 }\n");
            var c = ConfigLoader.LoadFile(good);
            Assert.Equal(good, c.SourcePath);
            Assert.Equal(10, c.Nat.MaxSessions);

            string bad = Path.Combine(dir, "bad.yaml");
            File.WriteAllText(bad, "limits:\n  sessions: -3\n");
            var ex = Assert.Throws<ConfigException>(() => ConfigLoader.LoadFile(bad));
            Assert.StartsWith($"{bad}:2:13: limits.sessions: ", ex.Message, StringComparison.Ordinal);

            string missing = Path.Combine(dir, "missing.yaml");
            var ex2 = Assert.Throws<ConfigException>(() => ConfigLoader.LoadFile(missing));
            Assert.StartsWith($"{missing}: cannot read the configuration file", ex2.Message, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void Anchors_and_aliases_resolve()
    {
        var c = ConfigLoader.Parse("timeouts:\n  udp: &t 600\n  icmp: *t\n", Src);
        Assert.Equal(600, c.Nat.Timeouts.Icmp);
    }
}
