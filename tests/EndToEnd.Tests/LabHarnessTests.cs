using Natd.Control.Lab;
using Xunit.Abstractions;

namespace Natd.Tests.EndToEnd;

/// <summary>The harness itself: topology shape, clean-up, and that its detectors can detect.</summary>
[Collection(EndToEndCollection.Name)]
[Trait("Category", "EndToEnd")]
public sealed class LabHarnessTests(ITestOutputHelper output)
{
    /// <summary>
    /// The lab's veths have two queues, one active per worker: natd then runs AF_XDP on both
    /// interfaces (one socket per queue, each poller's two sockets sharing a UMEM), not AF_PACKET,
    /// with 1 and with 2 workers, and traffic goes through.
    /// </summary>
    [RootTheory]
    [InlineData("natd-w1", 1)]
    [InlineData("natd", 2)]
    public void Natd_runs_af_xdp_with_a_shared_umem_on_both_sides_with_one_queue_per_worker(string kind, int workers)
    {
        using var scenario = Scenario.Start(kind, output);
        var lab = scenario.Lab;
        var natd = (NatdGateway)scenario.Gateway;
        Assert.Equal(workers, lab.Queues);
        string channels = lab.RunIn(lab.GatewayNs, "ethtool", "-l", lab.InsideIf).StdOut;
        output.WriteLine(channels);
        Assert.Matches($@"Current hardware settings:\s+RX:\s+{workers}\s+TX:\s+{workers}", channels);

        string ready = natd.Process!.StdOutLines.First(l => l.StartsWith("natd: ready", StringComparison.Ordinal));
        output.WriteLine(ready);
        Assert.Contains($"inside={lab.InsideIf} (af_xdp,", ready);
        Assert.Contains($"outside={lab.OutsideIf} (af_xdp,", ready);
        Assert.Contains($"workers={workers} umem=shared ", ready);
        // Pollers taking every core get deeper fill rings (a poller may wait for its core).
        int fill = workers >= Environment.ProcessorCount ? 4096 : 1024;
        Assert.Contains($" xdp-fill={fill} ", ready);

        using var echo = LabPrograms.StartUdpEchoServer(lab);
        Assert.NotEmpty(LabPrograms.UdpRequest(lab, "through a shared umem").Replies);
        Assert.Equal(3, LabPrograms.Ping(lab).Received);

        // Copy-mode transmit takes a sendto(2) kick: counted per interface, none failed.
        string metrics = lab.RunIn(lab.GatewayNs, "curl", "-s", "http://127.0.0.1:9180/metrics").StdOut;
        foreach (string nic in new[] { lab.InsideIf, lab.OutsideIf })
        {
            var kicks = System.Text.RegularExpressions.Regex.Match(metrics, $@"(?m)^natd_port_tx_kicks_total\{{interface=""{nic}""\}} (\d+)$");
            Assert.True(kicks.Success && long.Parse(kicks.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture) > 0, $"no transmit kicks on {nic}:\n{metrics}");
            Assert.Matches($@"(?m)^natd_port_tx_kick_errors_total\{{interface=""{nic}""\}} 0$", metrics);
        }
        scenario.Pass();
    }

    [RootFact]
    public void Userspace_topology_has_the_documented_shape_and_dispose_removes_it()
    {
        var lab = LabTopology.Create(new LabOptions { Mode = GatewayMode.Userspace });
        try
        {
            Assert.Matches("^natd-in-[0-9a-f]{4}$", lab.InsideNs);
            Assert.Equal(lab.Suffix, lab.GatewayNs[^4..]);
            foreach (var ns in new[] { lab.InsideNs, lab.GatewayNs, lab.OutsideNs })
            {
                Assert.True(LabTopology.NamespaceExists(ns), ns);
            }

            // The kernel holds no IPv4 address on the gateway's veths and does not forward.
            var gwAddrs = lab.RunIn(lab.GatewayNs, "ip", "-4", "-o", "addr", "show").StdOut;
            output.WriteLine(gwAddrs);
            Assert.DoesNotContain("natin", gwAddrs);
            Assert.DoesNotContain("natout", gwAddrs);
            Assert.Equal("0", lab.RunIn(lab.GatewayNs, "sysctl", "-n", "net.ipv4.ip_forward").StdOut.Trim());
            Assert.Equal("1", lab.RunIn(lab.GatewayNs, "sysctl", "-n", "net.ipv6.conf.natin.disable_ipv6").StdOut.Trim());
            Assert.Equal("1", lab.RunIn(lab.InsideNs, "sysctl", "-n", "net.ipv6.conf.eth0.disable_ipv6").StdOut.Trim());

            var features = lab.RunIn(lab.GatewayNs, "ethtool", "-k", lab.OutsideIf).StdOut;
            Assert.Contains("generic-segmentation-offload: off", features);
            Assert.Contains("generic-receive-offload: off", features);
            Assert.Contains("tcp-segmentation-offload: off", features);

            Assert.Contains("default via 10.0.0.1", lab.RunIn(lab.InsideNs, "ip", "route").StdOut);
            var outsideRoutes = lab.RunIn(lab.OutsideNs, "ip", "route").StdOut;
            Assert.DoesNotContain("default", outsideRoutes);
            Assert.Contains("198.51.100.0/24", outsideRoutes);

            // With no daemon the gateway forwards nothing: the natd rows cannot pass by accident.
            var ping = LabPrograms.Ping(lab, 1);
            Assert.Equal(0, ping.Received);
        }
        finally
        {
            lab.Dispose();
        }

        foreach (var ns in new[] { lab.InsideNs, lab.GatewayNs, lab.OutsideNs })
        {
            Assert.False(LabTopology.NamespaceExists(ns), ns);
        }

        Assert.False(Directory.Exists(lab.WorkDirectory));
        lab.Dispose(); // idempotent
    }

    [RootFact]
    public void Kernel_nat_topology_addresses_forwards_and_masquerades()
    {
        using var lab = LabTopology.Create(new LabOptions { Mode = GatewayMode.KernelNat });
        var gwAddrs = lab.RunIn(lab.GatewayNs, "ip", "-4", "-o", "addr", "show").StdOut;
        Assert.Contains("natin    inet 10.0.0.1/24", gwAddrs.Replace("\\", " ", StringComparison.Ordinal), StringComparison.Ordinal);
        Assert.Contains("198.51.100.1/24", gwAddrs);
        Assert.Equal("1", lab.RunIn(lab.GatewayNs, "sysctl", "-n", "net.ipv4.ip_forward").StdOut.Trim());
        var rules = lab.RunIn(lab.GatewayNs, "nft", "list", "ruleset").StdOut;
        Assert.Contains("oifname \"natout\" masquerade", rules);
    }

    [RootFact]
    public void Dispose_kills_processes_left_running_in_the_namespaces()
    {
        var lab = LabTopology.Create(new LabOptions());
        var pids = new List<int>();
        try
        {
            pids.Add(lab.StartIn(lab.GatewayNs, "sleep", "60").Pid);
            // Started outside the lab's bookkeeping: only `ip netns pids` can find it.
            lab.RunIn(lab.OutsideNs, "sh", "-c", "sleep 60 >/dev/null 2>&1 &");
            var outside = Sh.Run("ip", "netns", "pids", lab.OutsideNs).StdOut.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            pids.AddRange(outside.Select(int.Parse));
            Assert.Equal(2, pids.Count);
        }
        finally
        {
            lab.Dispose();
        }

        Assert.All(pids, pid => Assert.True(IsGoneOrZombie(pid), $"pid {pid} still running"));
        Assert.False(LabTopology.NamespaceExists(lab.OutsideNs));
    }

    private static bool IsGoneOrZombie(int pid)
    {
        // A killed orphan stays a zombie until its new parent reaps it; it runs nothing.
        for (var i = 0; i < 50; i++)
        {
            string stat;
            try
            {
                stat = File.ReadAllText($"/proc/{pid}/stat");
            }
            catch (IOException)
            {
                return true;
            }

            if (stat[(stat.LastIndexOf(')') + 2)..].StartsWith('Z'))
            {
                return true;
            }

            Thread.Sleep(100);
        }

        return false;
    }

    [RootFact]
    public void Cleanup_stale_removes_only_names_of_the_exact_pattern()
    {
        const string prefix = "natdst";
        string[] stale = [$"{prefix}-gw-0bad", $"{prefix}-in-0bad"];
        string[] spared = [$"{prefix}-gw-0BAD", $"{prefix}-gwx-0bad", $"{prefix}-gw-0bad1", $"x{prefix}-gw-0bad"];
        try
        {
            foreach (var ns in stale.Concat(spared))
            {
                Sh.Run("ip", "netns", "add", ns);
            }

            var removed = LabTopology.CleanupStale(prefix, DateTime.UtcNow.AddMinutes(1));

            Assert.Equal(stale.Order(), removed.Order());
            Assert.All(stale, ns => Assert.False(LabTopology.NamespaceExists(ns), ns));
            Assert.All(spared, ns => Assert.True(LabTopology.NamespaceExists(ns), ns));
            // Namespaces created after the cut-off (a concurrent run's) are spared too.
            Sh.Run("ip", "netns", "add", stale[0]);
            Assert.DoesNotContain(stale[0], LabTopology.CleanupStale(prefix, DateTime.UtcNow.AddMinutes(-10)));
            Assert.True(LabTopology.NamespaceExists(stale[0]));
        }
        finally
        {
            foreach (var ns in stale.Concat(spared))
            {
                Sh.TryRun(TimeSpan.FromSeconds(10), "ip", "netns", "del", ns);
            }
        }
    }

    [RootFact]
    public void Capture_on_the_inside_host_sees_delivered_packets()
    {
        using var lab = LabTopology.Create(new LabOptions { Mode = GatewayMode.KernelNat });
        using var capture = LabPrograms.ListenFor(lab, "icmp", 0);
        var ping = LabPrograms.Ping(lab, 2);
        var packets = capture.Finish(TimeSpan.FromMilliseconds(300));
        output.WriteLine(string.Join('\n', packets));
        Assert.Equal(2, ping.Received);
        Assert.Equal(2, packets.Count(p => p.Contains("ICMP echo reply", StringComparison.Ordinal)));
    }

    [RootFact]
    public void Failing_command_reports_its_command_line_and_stderr()
    {
        var e = Assert.Throws<LabException>(() => Sh.Run("ip", "netns", "exec", "natd-no-such-ns-zz", "true"));
        Assert.Contains("ip netns exec natd-no-such-ns-zz true", e.Message);
        Assert.Contains("natd-no-such-ns-zz", e.Message[(e.Message.IndexOf('\n') + 1)..]);
    }

    [RootFact]
    public void Natd_config_names_the_lab_interfaces_and_pool()
    {
        using var lab = LabTopology.Create(new LabOptions());
        var yaml = NatdGateway.ConfigFor(lab);
        output.WriteLine(yaml);
        Assert.Contains("inside:  { name: natin,  address: 10.0.0.1/24, networks: [10.0.0.0/24] }", yaml);
        Assert.Contains("outside: { name: natout, address: 198.51.100.1/24, gateway: 198.51.100.254 }", yaml);
        Assert.Contains("nat: { pool: [198.51.100.1], ports: 1024-65535 }", yaml);
        Assert.Contains("control: { listen: 127.0.0.1:9180 }", yaml);
    }
}
