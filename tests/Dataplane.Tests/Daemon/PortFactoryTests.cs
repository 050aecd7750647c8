using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;
using Natd.Control.Config;
using Natd.Control.Daemon;
using Natd.Dataplane.Io;
using Natd.Dataplane.Packets;
using Natd.Tests.Io;

namespace Natd.Tests.Daemon;

/// <summary>
/// dataplane.xdp-fill-ring reaching the AF_XDP sockets the daemon opens: the options it derives,
/// and the fill rings of a real shared-UMEM pair on two veths. And what the daemon does to the
/// links before it opens them: receive coalescing off until it lets them go, an MTU it cannot
/// carry named.
/// </summary>
public sealed class PortFactoryTests
{
    [Fact]
    public void Without_the_setting_the_driver_defaults_stay()
    {
        AfXdpOptions o = PortFactory.XdpOptions(1, null);
        Assert.Equal(1, o.QueueId);
        Assert.Equal(AfXdpOptions.Default.FrameCount, o.FrameCount);
        Assert.Equal(AfXdpOptions.Default.RingSize, o.RingSize);
        Assert.Equal(0, o.FillRingFrames);
        Assert.Equal([0x0800, 0x0806], o.RedirectEtherTypes!);
    }

    [Theory]
    [InlineData(64, 256, 2048)]
    [InlineData(1024, 4096, 2048)]    // the default pair's geometry, spelled out
    [InlineData(3000, 12000, 4096)]   // rings are powers of two: rounded up
    [InlineData(4096, 16384, 4096)]
    [InlineData(16384, 65536, 16384)] // the largest: the UMEM's 65536-frame limit
    public void The_setting_sizes_the_fill_ring_the_umem_and_the_rings(int fill, int frames, int ring)
    {
        AfXdpOptions o = PortFactory.XdpOptions(0, fill);
        o.Validate();
        Assert.Equal(fill, o.FillRingFrames);
        Assert.Equal(frames, o.FrameCount);
        Assert.Equal(ring, o.RingSize);
    }

    [Theory]
    [InlineData(null, 1, 2, null)]   // a core to spare: the driver's default
    [InlineData(null, 2, 2, 4096)]   // the pollers take every core: deeper
    [InlineData(null, 3, 2, 4096)]
    [InlineData(null, 1, 1, 4096)]
    [InlineData(2048, 2, 2, 2048)]   // the setting wins either way
    [InlineData(256, 1, 2, 256)]
    public void Unset_the_fill_ring_deepens_only_when_the_pollers_take_every_core(int? setting, int pollers, int cores, int? expected)
        => Assert.Equal(expected, PortFactory.XdpFillRing(setting, pollers, cores));

    [Theory]
    [InlineData(null, 2, 1024)]
    [InlineData(null, 1, 4096)]
    [InlineData(4096, 2, 4096)]
    [InlineData(512, 1, 512)]
    public void A_shared_umem_pair_keeps_the_configured_frames_on_each_fill_ring(int? setting, int cores, int expected)
    {
        InNamespace(ns =>
        {
            AddVeths(ns);
            string yaml = setting is int f ? $"dataplane: {{ xdp-fill-ring: {f} }}\n" : "dataplane: { batch: 64 }\n";
            NatdConfig config = ConfigLoader.Parse(yaml, "test.yaml");
            OpenedPorts opened = NetNamespace.RunIn(ns, () => PortFactory.Open(config, pollers: 1, cores));
            try
            {
                Assert.True(opened.SharedUmem, string.Join("; ", opened.Notes));
                var (inside, outside) = ((AfXdpPort)opened.Pairs[0].Inside, (AfXdpPort)opened.Pairs[0].Outside);
                Assert.Equal(expected, inside.FillFrames);
                Assert.Equal(expected, outside.FillFrames);
                Assert.Equal(4 * expected, inside.UmemFrameCount);
                Assert.Equal(2 * expected, inside.UmemFreeFrames); // half of the UMEM waits for transmitting
                Assert.Equal(expected, opened.XdpFillFrames); // what the ready line reports
            }
            finally
            {
                ClosePorts(opened);
            }
        });
    }
    [Theory]
    [InlineData("auto")]      // AF_XDP on a shared UMEM: natd finds the frame too large for a slot
    [InlineData("af_packet")]
    public void Opening_turns_receive_coalescing_off_until_restored_names_a_large_or_unequal_mtu_and_counts_a_frame_past_the_slot(string driver)
    {
        InNamespace(ns =>
        {
            AddVeths(ns);
            foreach (string dev in new[] { "natin", "natout" })
            {
                Shell.Run("ip", "netns", "exec", ns, "ethtool", "-K", dev, "gro", "on"); // as a NIC's driver leaves it
            }
            Shell.Run("ip", "-n", ns, "link", "set", "natin", "mtu", "3000");
            Shell.Run("ip", "-n", ns, "link", "set", "hostin", "mtu", "3000");
            Shell.Run("ip", "-n", ns, "addr", "add", "10.199.2.1/24", "dev", "hostin");
            Shell.Run("ip", "-n", ns, "neigh", "replace", "10.199.2.9", "lladdr", "02:00:00:00:00:09", "dev", "hostin", "nud", "permanent");
            bool GroOn(string dev) => Shell.Run("ip", "netns", "exec", ns, "ethtool", "-k", dev).Contains("generic-receive-offload: on", StringComparison.Ordinal);

            NatdConfig config = ConfigLoader.Parse("dataplane: { batch: 64 }\n", "test.yaml") with { InsideDriver = driver, OutsideDriver = driver };
            OpenedPorts opened = NetNamespace.RunIn(ns, () => PortFactory.Open(config, pollers: 1, cores: 2));
            try
            {
                Assert.Equal(driver == "auto", opened.SharedUmem);
                Assert.False(GroOn("natin"));
                Assert.False(GroOn("natout"));
                Assert.Contains("natin: generic-receive-offload turned off while natd runs (the kernel would merge frames beyond the 2048 bytes natd receives); turned back on at exit", opened.Notes);
                Assert.Contains("natout: generic-receive-offload turned off while natd runs (the kernel would merge frames beyond the 2048 bytes natd receives); turned back on at exit", opened.Notes);
                Assert.Contains("warning: natin: MTU 3000 is above the 2030 bytes natd forwards: larger frames are dropped (natd_port_rx_oversize_total); lower it with ip link set dev natin mtu 2030", opened.Notes);
                Assert.Contains("natin: MTU 3000 is above natout's 1500: natd fragments datagrams larger than 1500 bytes from natin's side, and answers those with don't-fragment set with fragmentation-needed (RFC 1191); nat.mss-clamp: auto keeps TCP segments within it where that ICMP is filtered", opened.Notes);
                Assert.DoesNotContain(opened.Notes, n => n.StartsWith("warning: natout: MTU", StringComparison.Ordinal));

                // A 2,542-byte frame, then a small one: the small one arrives, the large one is counted.
                IPacketPort inside = opened.Pairs[0].Inside;
                foreach (int size in new[] { 2500, 4 })
                {
                    NetNamespace.RunIn(ns, () =>
                    {
                        using var udp = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
                        udp.Bind(new IPEndPoint(IPAddress.Parse("10.199.2.1"), 0));
                        udp.SendTo(new byte[size], new IPEndPoint(IPAddress.Parse("10.199.2.9"), 9997));
                    });
                }
                using var batch = new FrameBatch(64);
                int small = 0, other = 0;
                var clock = Stopwatch.StartNew();
                while (small == 0 && clock.Elapsed < TimeSpan.FromSeconds(5))
                {
                    batch.Clear();
                    inside.Receive(batch);
                    for (int i = 0; i < batch.Count; i++)
                    {
                        var f = batch.Frame(i);
                        bool ours = f.Length >= 42 && f[23] == 17 && f[36] == 9997 >> 8 && f[37] == (9997 & 0xff);
                        small += ours && f.Length == 46 ? 1 : 0;
                        other += ours && f.Length != 46 ? 1 : 0;
                    }
                    PortPoller.Wait(inside, inside, 20);
                }
                Assert.Equal((1, 0), (small, other));
                Assert.Equal(1, inside.Stats.RxOversize);
                Assert.Equal(0, inside.Stats.RxDropped);
            }
            finally
            {
                ClosePorts(opened);
                Assert.Empty(NetNamespace.RunIn(ns, opened.Release));
            }
            Assert.True(GroOn("natin"));
            Assert.True(GroOn("natout"));
            Assert.False(GroOn("hostin")); // natd touches only its own interfaces
        });
    }

    [Theory]
    [InlineData("auto", 1, "af_packet")] // queue 1 would go unserved: AF_PACKET receives from both
    [InlineData("af_xdp", 1, "af_xdp")]  // asked for: kept, with a warning
    [InlineData("auto", 2, "af_xdp")]    // a socket on each queue
    public void Auto_takes_af_packet_when_an_interface_has_more_receive_queues_than_workers(string driver, int pollers, string expected)
    {
        InNamespace(ns =>
        {
            AddVeths(ns, queues: 2);
            Assert.Equal(2, NetNamespace.RunIn(ns, () => LinkSettings.ReceiveQueues("natin")));
            NatdConfig config = ConfigLoader.Parse("dataplane: { batch: 64 }\n", "test.yaml") with { InsideDriver = driver, OutsideDriver = driver };
            OpenedPorts opened = NetNamespace.RunIn(ns, () => PortFactory.Open(config, pollers, cores: 2));
            try
            {
                Assert.Equal((expected, expected), (opened.InsideDriver, opened.OutsideDriver));
                Assert.Equal(pollers, opened.Pairs.Count);
                foreach (string dev in new[] { "natin", "natout" })
                {
                    string gap = $"{dev} has 2 receive queues and natd 1 worker(s), one AF_XDP socket each: frames on queue 1 would go to the kernel";
                    string fix = $"set dataplane.workers to 2, or make 1 queue(s) active with ethtool -L {dev}";
                    string? note = (driver, pollers) switch
                    {
                        ("auto", 1) => $"{dev}: AF_XDP not used ({gap}); falling back to AF_PACKET, which receives from every queue ({fix} for AF_XDP)",
                        ("af_xdp", 1) => $"warning: {gap}; {fix}",
                        _ => null,
                    };
                    if (note is null)
                    {
                        Assert.DoesNotContain(opened.Notes, n => n.Contains("receive queues", StringComparison.Ordinal));
                    }
                    else
                    {
                        Assert.Contains(note, opened.Notes);
                    }
                }
            }
            finally
            {
                ClosePorts(opened);
            }
        });
    }

    [Theory]
    [InlineData("auto")]      // AF_XDP: the kernel's addresses there receive nothing
    [InlineData("af_packet")] // the kernel receives what natd does: its copy of natd's address answers too
    public void What_the_kernel_still_does_on_natds_interfaces_is_named(string driver)
    {
        InNamespace(ns =>
        {
            AddVeths(ns);
            NatdConfig config = ConfigLoader.Parse("dataplane: { batch: 64 }\n", "test.yaml") with { InsideDriver = driver, OutsideDriver = driver };
            string outside = Ipv4.Format(config.Nat.Outside.Address.Address);
            Shell.Run("ip", "-n", ns, "addr", "add", $"{outside}/24", "dev", "natout"); // natd's own address, left in the kernel
            Shell.Run("ip", "-n", ns, "addr", "add", "203.0.113.5/24", "dev", "natin");  // a management address
            Shell.Run("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.conf.natin.forwarding=1");
            Assert.Equal([Ipv4.Parse("203.0.113.5")], NetNamespace.RunIn(ns, () => LinkSettings.Ipv4Addresses("natin")));
            Assert.Equal(true, NetNamespace.RunIn(ns, () => LinkSettings.KernelForwards("natin")));
            Assert.Equal(false, NetNamespace.RunIn(ns, () => LinkSettings.KernelForwards("natout")));

            OpenedPorts opened = NetNamespace.RunIn(ns, () => PortFactory.Open(config, pollers: 1, cores: 2));
            try
            {
                string xdp = driver == "auto" ? "af_xdp" : "af_packet";
                Assert.Equal((xdp, xdp), (opened.InsideDriver, opened.OutsideDriver));
                string[] expected = xdp == "af_xdp"
                    ?
                    [
                        "warning: natin: the kernel holds 203.0.113.5 on it, but AF_XDP hands natd every IPv4 frame: nothing reaches the kernel at 203.0.113.5; give the kernel another interface, or remove the address",
                        $"warning: natout: the kernel holds {outside} on it, but AF_XDP hands natd every IPv4 frame: nothing reaches the kernel at {outside}; give the kernel another interface, or remove the address",
                    ]
                    :
                    [
                        "warning: natin: the kernel forwards IPv4 received on it (net.ipv4.conf.natin.forwarding=1), and with AF_PACKET receives the frames natd does: it may route its own untranslated copy; set net.ipv4.ip_forward=0, or run natd in its own network namespace",
                        $"warning: natout: the kernel holds {outside}, natd's own address, and with AF_PACKET receives the frames natd does: it answers those to {outside} too (TCP resets, ICMP port unreachable), breaking natd's mappings; remove it from the kernel (ip addr del {outside}/PREFIX dev natout)",
                    ];
                Assert.Equal(expected, opened.Notes.Where(n => n.StartsWith("warning: ", StringComparison.Ordinal)).Order(StringComparer.Ordinal));
            }
            finally
            {
                ClosePorts(opened);
            }
        });
    }

    [Fact]
    public void A_mac_override_joins_the_interfaces_unicast_filter_until_natd_lets_go()
    {
        InNamespace(ns =>
        {
            AddVeths(ns);
            NatdConfig config = ConfigLoader.Parse("dataplane: { batch: 64 }\n", "test.yaml");
            config = config with { Nat = config.Nat with { Inside = config.Nat.Inside with { Mac = MacAddress.Parse("02:00:00:00:aa:01") } } };
            // A veth has no unicast filter: the kernel makes it promiscuous for an extra address instead.
            int Promiscuity(string dev) => int.Parse(Regex.Match(Shell.Run("ip", "-n", ns, "-d", "link", "show", dev), @"promiscuity (\d+)").Groups[1].Value, CultureInfo.InvariantCulture);

            OpenedPorts opened = NetNamespace.RunIn(ns, () => PortFactory.Open(config, pollers: 1, cores: 2));
            try
            {
                Assert.Single(opened.MacFilters!);
                Assert.Equal(1, Promiscuity("natin"));
                Assert.Equal(0, Promiscuity("natout")); // no override there
                Assert.DoesNotContain(opened.Notes, n => n.Contains("MAC override", StringComparison.Ordinal));
            }
            finally
            {
                ClosePorts(opened);
                Assert.Empty(opened.Release());
            }
            Assert.Equal(0, Promiscuity("natin"));
        });
    }

    [Fact]
    public void An_interface_down_or_without_a_carrier_is_named()
    {
        InNamespace(ns =>
        {
            AddVeths(ns);
            Shell.Run("ip", "-n", ns, "link", "set", "natout", "down");
            Shell.Run("ip", "-n", ns, "link", "set", "hostin", "down"); // natin stays up, its peer gone: no carrier
            Assert.Equal((true, false), NetNamespace.RunIn(ns, () => LinkSettings.State("natin")));
            Assert.Equal((false, false), NetNamespace.RunIn(ns, () => LinkSettings.State("natout")));
            NatdConfig config = ConfigLoader.Parse("dataplane: { batch: 64 }\n", "test.yaml") with { InsideDriver = "af_packet", OutsideDriver = "af_packet" };

            OpenedPorts opened = NetNamespace.RunIn(ns, () => PortFactory.Open(config, pollers: 1, cores: 2));
            ClosePorts(opened);
            Assert.Equal(
                [
                    "warning: natin has no carrier: natd receives and sends nothing on it until the link comes up",
                    "warning: natout is down: natd receives and sends nothing on it until it is up (ip link set dev natout up)",
                ],
                opened.Notes.Where(n => n.StartsWith("warning: ", StringComparison.Ordinal)).Order(StringComparer.Ordinal));
        });
    }

    [Fact]
    public void A_configured_mtu_above_its_links_is_named_and_one_below_is_not()
    {
        InNamespace(ns =>
        {
            AddVeths(ns);
            Shell.Run("ip", "-n", ns, "link", "set", "natout", "mtu", "1492");
            NatdConfig config = ConfigLoader.Parse("interfaces: { inside: { mtu: 1400 }, outside: { mtu: 1500 } }\n", "test.yaml")
                with { InsideDriver = "af_packet", OutsideDriver = "af_packet" };

            OpenedPorts opened = NetNamespace.RunIn(ns, () => PortFactory.Open(config, pollers: 1, cores: 2));
            ClosePorts(opened);
            Assert.Equal(
                ["warning: interfaces.outside.mtu 1500 is above natout's MTU 1492: the kernel drops datagrams of 1493 to 1500 bytes natd sends there whole; lower it to 1492 or less, or leave it out (natd then follows the link)"],
                opened.Notes.Where(n => n.Contains(".mtu ", StringComparison.Ordinal)));
        });
    }

    [Fact]
    public void A_second_natd_in_the_namespace_is_refused_its_interfaces_until_the_first_lets_go_and_another_namespace_is_not_affected()
    {
        string ns = $"natd-pf-{Guid.NewGuid():N}"[..20];
        string other = $"natd-pf-{Guid.NewGuid():N}"[..20];
        Shell.Run("ip", "netns", "add", ns);
        Shell.Run("ip", "netns", "add", other);
        try
        {
            AddVeths(ns);
            AddVeths(other);
            foreach (string dev in new[] { "natin", "natout" })
            {
                Shell.Run("ip", "netns", "exec", ns, "ethtool", "-K", dev, "gro", "on");
            }
            NatdConfig config = ConfigLoader.Parse("dataplane: { batch: 64 }\n", "test.yaml") with { InsideDriver = "af_packet", OutsideDriver = "af_packet" };
            OpenedPorts first = NetNamespace.RunIn(ns, () => PortFactory.Open(config, pollers: 1, cores: 2));
            OpenedPorts elsewhere = NetNamespace.RunIn(other, () => PortFactory.Open(config, pollers: 1, cores: 2)); // same names, another namespace
            try
            {
                var e = Assert.Throws<NativeIoException>(() => NetNamespace.RunIn(ns, () => PortFactory.Open(config, pollers: 1, cores: 2)));
                Assert.Equal($"natin is served by another natd in this network namespace (pid {Environment.ProcessId}): two would translate the same frames; stop it first", e.Message);
                // The refused one changed nothing: the first one's settings stand, and so does its claim.
                Assert.Contains("generic-receive-offload: off", Shell.Run("ip", "netns", "exec", ns, "ethtool", "-k", "natout"), StringComparison.Ordinal);
                Assert.Throws<NativeIoException>(() => NetNamespace.RunIn(ns, () => InterfaceClaim.Take("natout")));
            }
            finally
            {
                ClosePorts(first);
                ClosePorts(elsewhere);
                NetNamespace.RunIn(ns, first.Release);
                NetNamespace.RunIn(other, elsewhere.Release);
            }
            OpenedPorts second = NetNamespace.RunIn(ns, () => PortFactory.Open(config, pollers: 1, cores: 2));
            ClosePorts(second);
            Assert.Empty(NetNamespace.RunIn(ns, second.Release));
        }
        finally
        {
            Shell.TryRun(TimeSpan.FromSeconds(20), "ip", "netns", "delete", ns);
            Shell.TryRun(TimeSpan.FromSeconds(20), "ip", "netns", "delete", other);
        }
    }

    /// <summary>Closes every poller's ports (what the daemon does before <see cref="OpenedPorts.Release"/>).</summary>
    private static void ClosePorts(OpenedPorts opened)
    {
        foreach (var (i, o) in opened.Pairs)
        {
            i.Dispose();
            o.Dispose();
        }
    }

    /// <summary>Runs <paramref name="body"/> with a new network namespace's name, and deletes the namespace after, also on failure.</summary>
    private static void InNamespace(Action<string> body)
    {
        string ns = $"natd-pf-{Guid.NewGuid():N}"[..20];
        Shell.Run("ip", "netns", "add", ns);
        try
        {
            body(ns);
        }
        finally
        {
            Shell.TryRun(TimeSpan.FromSeconds(20), "ip", "netns", "delete", ns);
        }
    }

    /// <summary>natd's two veths (natin, natout) in <paramref name="ns"/>, up, each with its host end and <paramref name="queues"/> queues each way.</summary>
    private static void AddVeths(string ns, int queues = 1)
    {
        string q = queues.ToString(System.Globalization.CultureInfo.InvariantCulture);
        foreach (var (a, b) in new[] { ("natin", "hostin"), ("natout", "hostout") })
        {
            Shell.Run("ip", "-n", ns, "link", "add", a, "numrxqueues", q, "numtxqueues", q, "type", "veth", "peer", "name", b, "numrxqueues", q, "numtxqueues", q);
            Shell.Run("ip", "-n", ns, "link", "set", a, "up");
            Shell.Run("ip", "-n", ns, "link", "set", b, "up");
        }
    }
}
