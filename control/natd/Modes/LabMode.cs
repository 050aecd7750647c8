using System.Text;
using System.Text.Json;
using Natd.Contracts;
using Natd.Control.Config;
using Natd.Control.Daemon;
using Natd.Control.Lab;
using Natd.Dataplane.Io;

namespace Natd.Control.Modes;

/// <summary>
/// `natd` with no arguments: the built-in lab (README.md, "Two commands"). Builds three network
/// namespaces, attaches natd to the gateway's two veth ends (the gateway's kernel holds no address
/// and does not forward), runs real programs through it (curl against python3's http.server, a UDP
/// request/reply, ping), prints what the servers saw, the session table (`natctl sessions`) and
/// the counters, then tears everything down.
/// </summary>
internal static class LabMode
{
    public static async Task<int> RunAsync(TextWriter stdout, TextWriter stderr)
    {
        if (!Environment.IsPrivilegedProcess)
        {
            stderr.WriteLine("natd: the lab needs root: it creates network namespaces and opens AF_PACKET sockets. Run it as root (e.g. `sudo natd`), or use `natd replay` which needs no privileges.");
            return 1;
        }
        foreach (var tool in new[] { "ip", "python3", "curl", "ping", "ethtool" })
        {
            if (!OnPath(tool))
            {
                stderr.WriteLine($"natd: the lab needs '{tool}', which is not installed: run `bash control/install-deps.sh` (as root) first.");
                return 1;
            }
        }

        // One poller on one active veth queue (LabOptions.Queues), so AF_XDP (natd's default driver)
        // serves it whole; the tests run the lab topology with two queues and two pollers as well.
        NatdConfig config = ConfigLoader.Default() with { Workers = 1 };
        LabTopology.CleanupStale();
        stdout.WriteLine("natd lab: building namespaces (inside host 10.0.0.2 | gateway natd | outside host 198.51.100.2)");
        using var lab = LabTopology.Create(new LabOptions { Mode = GatewayMode.Userspace });
        stdout.WriteLine($"  inside host   {lab.InsideNs,-20} eth0 10.0.0.2/24, default via 10.0.0.1");
        stdout.WriteLine($"  gateway       {lab.GatewayNs,-20} natin + natout, no kernel address, ip_forward=0: natd owns 10.0.0.1 and 198.51.100.1");
        stdout.WriteLine($"  outside host  {lab.OutsideNs,-20} eth0 198.51.100.2/24");

        using var loggers = NatdMain.Loggers("warning");
        var ports = NetNamespace.RunIn(lab.GatewayNs, () => PortFactory.Open(config, config.Workers));
        foreach (var note in ports.Notes)
        {
            stdout.WriteLine($"  note: {note}");
        }
        // The control API binds in natd's own namespace; a lab already running elsewhere may hold the port.
        config = config with { ControlListen = "127.0.0.1:0" };
        var daemon = await NatDaemon.StartAsync(config, ports.Pairs, loggers, startControl: true, CancellationToken.None).ConfigureAwait(false);
        await using (daemon.ConfigureAwait(false))
        {
            stdout.WriteLine(RunMode.ReadyLine(daemon, ports));
            stdout.WriteLine();

            using var http = LabPrograms.StartHttpServer(lab);
            using var echo = LabPrograms.StartUdpEchoServer(lab);

            stdout.WriteLine($"$ curl {http.Url}        (on the inside host)");
            var curl = LabPrograms.Curl(lab);
            stdout.WriteLine(Indent(curl.ExitCode == 0 ? curl.StdOut : curl.Combined));
            stdout.WriteLine("$ udp request to 198.51.100.2:7007     (on the inside host)");
            var udp = LabPrograms.UdpRequest(lab, "hello through natd");
            stdout.WriteLine(Indent(udp.Replies.Count > 0 ? string.Join("\n", udp.Replies) : udp.Output));
            stdout.WriteLine("$ ping -c 3 198.51.100.2                 (on the inside host)");
            var ping = LabPrograms.Ping(lab);
            stdout.WriteLine(Indent(ping.Output));

            stdout.WriteLine("What the servers on the outside host saw (the source must be natd's 198.51.100.1):");
            stdout.WriteLine(Indent(LabPrograms.Report(http, echo)));

            string api = daemon.Control!.Address.Authority;
            stdout.WriteLine($"$ natctl sessions --control {api}");
            await PrintAsync(api, "sessions", body => SessionTable.Render(
                JsonSerializer.Deserialize(body, WireJsonContext.Default.SessionRowArray) ?? []), stdout, stderr).ConfigureAwait(false);
            stdout.WriteLine();
            stdout.WriteLine($"$ natctl stats --control {api}");
            await PrintAsync(api, "stats", body => StatsTable.Render(
                JsonSerializer.Deserialize(body, WireJsonContext.Default.StatsRow) ?? new StatsRow()), stdout, stderr).ConfigureAwait(false);
            stdout.WriteLine();

            bool httpOk = curl.ExitCode == 0 && curl.StdOut.Contains(HttpServer.FileContent.Trim(), StringComparison.Ordinal)
                          && http.Requests().Any(r => r.Client == "198.51.100.1");
            bool udpOk = udp.Replies.Count > 0 && echo.Seen().Any(s => s.StartsWith("198.51.100.1:", StringComparison.Ordinal));
            bool pingOk = ping.Received == ping.Transmitted && ping.Received > 0;
            stdout.WriteLine($"natd lab: http {Verdict(httpOk)}, udp {Verdict(udpOk)}, ping {Verdict(pingOk)} ({ping.Received}/{ping.Transmitted}); tearing down");
            return httpOk && udpOk && pingOk ? 0 : 3;
        }
    }

    private static string Verdict(bool ok) => ok ? "ok" : "FAILED";

    /// <summary>Prints what `natctl PATH` would: GET /PATH on the control API, as natctl's table.</summary>
    private static async Task PrintAsync(string api, string path, Func<string, string> render, TextWriter stdout, TextWriter stderr)
    {
        try
        {
            using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
            string body = await http.GetStringAsync(new Uri($"http://{api}/{path}")).ConfigureAwait(false);
            await stdout.WriteAsync(render(body)).ConfigureAwait(false);
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException or JsonException)
        {
            await stderr.WriteLineAsync($"natd lab: GET /{path} failed: {e.Message}").ConfigureAwait(false);
        }
    }

    private static string Indent(string text)
    {
        var sb = new StringBuilder();
        foreach (var line in text.TrimEnd().Split('\n'))
        {
            sb.Append("    ").Append(line.TrimEnd('\r')).Append('\n');
        }
        return sb.ToString().TrimEnd('\n');
    }

    private static bool OnPath(string tool)
    {
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':').Concat(["/usr/sbin", "/sbin"]))
        {
            if (dir.Length > 0 && File.Exists(Path.Combine(dir, tool)))
            {
                return true;
            }
        }
        return false;
    }
}
