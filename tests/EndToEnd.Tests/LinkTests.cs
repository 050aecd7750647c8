using System.Globalization;
using System.Text.RegularExpressions;
using Natd.Control.Lab;
using Xunit.Abstractions;
using static Natd.Tests.EndToEnd.LabScripts;

namespace Natd.Tests.EndToEnd;

/// <summary>
/// natd on links set up as real NICs leave them, not as the lab tunes them:
/// <list type="bullet">
/// <item>receive coalescing on (GRO): natd turns it off while it runs, so a bulk TCP download
/// through the AF_PACKET path arrives without a frame lost to a slot too small, and turns it back
/// on when it stops;</item>
/// <item>more receive queues than workers: AF_XDP would serve only the workers' queues, so
/// <c>driver: auto</c> takes AF_PACKET and every flow gets through.</item>
/// </list>
/// </summary>
[Collection(EndToEndCollection.Name)]
[Trait("Category", "EndToEnd")]
public sealed class LinkTests(ITestOutputHelper output)
{
    private const int Bytes = 32 << 20;

    /// <summary>Sends <c>argv[3]</c> bytes to each client, then closes.</summary>
    private const string BulkServer = """
        import socket, sys
        s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(4); print("listening", flush=True)
        block = b"n" * 65536
        while True:
            c, a = s.accept()
            left = int(sys.argv[3])
            while left > 0:
                n = c.send(block[:min(left, len(block))]); left -= n
            c.close()
        """;

    /// <summary>Reads to the end and prints the byte count.</summary>
    private const string BulkClient = """
        import socket, sys
        s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=30)
        n = 0
        while True:
            b = s.recv(1 << 20)
            if not b: break
            n += len(b)
        print("received", n, flush=True)
        """;

    [RootTheory]
    [InlineData(1)]
    [InlineData(2)]
    public void With_gro_on_natd_turns_it_off_a_bulk_download_loses_no_frame_and_stopping_turns_it_back_on(int workers)
    {
        using var lab = LabTopology.Create(new LabOptions());
        using var natd = new NatdGateway { Driver = "af_packet", ExtraConfig = $"dataplane: {{ workers: {workers} }}\n" };
        DescribeOnFailure(natd, () =>
        {
            foreach (string dev in new[] { lab.InsideIf, lab.OutsideIf })
            {
                lab.RunIn(lab.GatewayNs, "ethtool", "-K", dev, "gro", "on");
                Assert.True(GroOn(lab, dev));
            }
            natd.Start(lab);
            foreach (string dev in new[] { lab.InsideIf, lab.OutsideIf })
            {
                Assert.False(GroOn(lab, dev));
                Assert.Contains(natd.Process!.StdErrLines, l => l.StartsWith($"natd: {dev}: generic-receive-offload turned off while natd runs", StringComparison.Ordinal));
            }

            string server = Script(lab, "bulk_server.py", BulkServer);
            string client = Script(lab, "bulk_client.py", BulkClient);
            using var srv = lab.StartIn(lab.OutsideNs, "python3", "-u", server, "198.51.100.2", "7200", Bytes.ToString(CultureInfo.InvariantCulture));
            Assert.NotNull(srv.WaitForLine(l => l == "listening", TimeSpan.FromSeconds(10)));
            var got = lab.TryRunIn(lab.InsideNs, TimeSpan.FromSeconds(60), "python3", "-u", client, "198.51.100.2", "7200");
            output.WriteLine(got.Combined);
            Assert.True(got.ExitCode == 0, got.Combined);
            Assert.Equal($"received {Bytes}", got.StdOut.Trim());

            string metrics = lab.RunIn(lab.GatewayNs, "curl", "-s", "http://127.0.0.1:9180/metrics").StdOut;
            foreach (string dev in new[] { lab.InsideIf, lab.OutsideIf })
            {
                Assert.Equal(0, Counter(metrics, "natd_port_rx_oversize_total", dev));
            }

            natd.Dispose(); // SIGTERM: natd closes its sockets and gives the interfaces back
            foreach (string dev in new[] { lab.InsideIf, lab.OutsideIf })
            {
                Assert.True(GroOn(lab, dev), $"{dev}: generic-receive-offload is still off after natd stopped");
            }
        });
    }

    /// <summary>One datagram from each of <c>argv[3]</c> sockets (a flow each), two tries; prints how many got their echo.</summary>
    private const string ManyFlows = """
        import socket, sys, select
        n = int(sys.argv[3]); socks = []
        for i in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("10.0.0.2", 0)); socks.append(s)
        answered = set()
        for attempt in range(2):
            for i, s in enumerate(socks):
                if i not in answered: s.sendto(b"flow %d" % i, (sys.argv[1], int(sys.argv[2])))
            while len(answered) < n:
                ready, _, _ = select.select([s for i, s in enumerate(socks) if i not in answered], [], [], 2)
                if not ready: break
                for s in ready:
                    s.recv(2048); answered.add(socks.index(s))
        print("answered", len(answered), "of", n, flush=True)
        """;

    [RootFact]
    public void With_more_receive_queues_than_workers_auto_takes_af_packet_and_every_flow_gets_through()
    {
        using var lab = LabTopology.Create(new LabOptions());
        using var natd = new NatdGateway { ExtraConfig = "dataplane: { workers: 1 }\n", Queues = LabTopology.MaxQueues };
        DescribeOnFailure(natd, () =>
        {
            natd.Start(lab);
            Assert.Contains(natd.Process!.StdOutLines, l => l.StartsWith("natd: ready", StringComparison.Ordinal) && l.Contains($"inside={lab.InsideIf} (af_packet, ", StringComparison.Ordinal));
            Assert.Contains(natd.Process.StdErrLines, l => l.StartsWith($"natd: {lab.InsideIf}: AF_XDP not used ({lab.InsideIf} has 2 receive queues and natd 1 worker(s)", StringComparison.Ordinal));

            using var echo = LabPrograms.StartUdpEchoServer(lab);
            string client = Script(lab, "many_flows.py", ManyFlows);
            var r = lab.TryRunIn(lab.InsideNs, TimeSpan.FromSeconds(30), "python3", "-u", client, lab.OutsideHost.ToString(), echo.Port.ToString(CultureInfo.InvariantCulture), "32");
            output.WriteLine(r.Combined);
            Assert.Equal("answered 32 of 32", r.StdOut.Trim());
        });
    }

    [RootTheory]
    [InlineData("af_xdp")]
    [InlineData("af_packet")]
    public void Traffic_resumes_after_both_links_go_down_and_come_back(string driver)
    {
        using var lab = LabTopology.Create(new LabOptions());
        using var natd = new NatdGateway { Driver = driver, ExtraConfig = "dataplane: { workers: 1 }\n" };
        DescribeOnFailure(natd, () =>
        {
            natd.Start(lab);
            using var echo = LabPrograms.StartUdpEchoServer(lab);
            Assert.Single(LabPrograms.UdpRequest(lab, "before").Replies);

            // A cable pulled and put back: natd's ends go down and up (its sockets stay open).
            foreach (string dev in new[] { lab.InsideIf, lab.OutsideIf })
            {
                lab.RunIn(lab.GatewayNs, "ip", "link", "set", dev, "down");
            }
            Thread.Sleep(500);
            foreach (string dev in new[] { lab.InsideIf, lab.OutsideIf })
            {
                lab.RunIn(lab.GatewayNs, "ip", "link", "set", dev, "up");
            }
            var after = LabPrograms.UdpRequest(lab, "after");
            output.WriteLine(after.Output);
            Assert.Matches($@"^echo from {Regex.Escape($"{lab.OutsideHost}:{echo.Port}")} to {Regex.Escape(lab.GatewayOutside.ToString())}:\d+: after$", Assert.Single(after.Replies));
            Assert.False(natd.Process!.HasExited);
        });
    }

    [RootTheory]
    [InlineData("af_xdp")]
    [InlineData("af_packet")]
    public void An_interface_removed_under_natd_stops_it_with_a_failure_status_and_its_state_saved(string driver)
    {
        using var lab = LabTopology.Create(new LabOptions());
        using var natd = new NatdGateway { Driver = driver, ExtraConfig = "dataplane: { workers: 1 }\n", WithState = true };
        DescribeOnFailure(natd, () =>
        {
            natd.Start(lab);
            using var echo = LabPrograms.StartUdpEchoServer(lab);
            Assert.Single(LabPrograms.UdpRequest(lab, "before").Replies);

            lab.RunIn(lab.GatewayNs, "ip", "link", "del", lab.InsideIf); // a driver unloaded, a device unplugged
            Assert.True(natd.Process!.WaitForExit(TimeSpan.FromSeconds(30)), "natd kept running on an interface that is gone");
            Assert.Equal(1, natd.Process.ExitCode); // a service manager starts it again
            Assert.Contains($"natd: {lab.InsideIf} was removed: natd's sockets cannot follow it; stopping, to be started again once it is back", natd.Process.StdErrLines);
            Assert.Contains(natd.Process.StdOutLines, l => Regex.IsMatch(l, @"^natd: saved [1-9]\d* sessions to "));
            Assert.DoesNotContain(natd.Process.StdErrLines, l => l.Contains("not turned back on", StringComparison.Ordinal));
        });
    }

    [RootFact]
    public void A_control_address_natds_namespace_lacks_is_refused_with_the_reason_and_the_links_are_given_back()
    {
        using var lab = LabTopology.Create(new LabOptions());
        lab.RunIn(lab.GatewayNs, "ethtool", "-K", lab.OutsideIf, "gro", "on");
        string config = Path.Combine(lab.WorkDirectory, "natd.yaml");
        File.WriteAllText(config, NatdGateway.ConfigFor(lab).Replace("listen: 127.0.0.1:9180", "listen: 192.0.2.77:9180", StringComparison.Ordinal));
        string dotnet = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host ? host : "dotnet";

        var r = lab.TryRunIn(lab.GatewayNs, TimeSpan.FromSeconds(90), dotnet, Path.Combine(AppContext.BaseDirectory, "natd.dll"), "run", "--config", config);
        output.WriteLine(r.Combined);
        Assert.Equal(1, r.ExitCode); // not an unhandled exception (134)
        Assert.Contains("natd: cannot start the control API on 192.0.2.77:9180: Cannot assign requested address (no interface of natd's network namespace holds that address", r.StdErr, StringComparison.Ordinal);
        Assert.True(GroOn(lab, lab.OutsideIf), "generic-receive-offload was not given back on the way out");
    }

    /// <summary>Runs <paramref name="body"/>; when it fails, prints natd's configuration and output first.</summary>
    private void DescribeOnFailure(NatdGateway natd, Action body)
    {
        try
        {
            body();
        }
        catch
        {
            output.WriteLine(natd.Describe());
            throw;
        }
    }

    private static bool GroOn(LabTopology lab, string dev)
        => lab.RunIn(lab.GatewayNs, "ethtool", "-k", dev).StdOut.Contains("generic-receive-offload: on", StringComparison.Ordinal);

    private static long Counter(string metrics, string name, string dev)
    {
        var m = Regex.Match(metrics, $@"^{name}\{{interface=""{dev}""\}} (\d+)$", RegexOptions.Multiline);
        Assert.True(m.Success, $"{name}{{interface=\"{dev}\"}} is not in /metrics");
        return long.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture);
    }
}
