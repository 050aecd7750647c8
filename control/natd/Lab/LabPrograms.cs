using System.Globalization;
using System.Net;
using System.Text;
using System.Text.RegularExpressions;

namespace Natd.Control.Lab;

/// <summary>A log line of python3's http.server: who asked for what, and the status returned.</summary>
/// <param name="Client">Source address the server saw (the NAT's external address when masqueraded).</param>
/// <param name="Method">HTTP method, e.g. GET.</param>
/// <param name="Path">Request path, e.g. /hello.txt.</param>
/// <param name="Status">HTTP status code as logged.</param>
public sealed record HttpLogEntry(string Client, string Method, string Path, int Status);

/// <summary>The result of one UDP client run on the inside host.</summary>
/// <param name="LocalEndpoint">The client's own address:port (before translation).</param>
/// <param name="Replies">Payloads received from the server, in order.</param>
/// <param name="Extras">Datagrams from anyone other than the server, as "ip:port: payload"; a NAT must keep this empty.</param>
/// <param name="Output">Everything the client printed, for diagnostics.</param>
/// <param name="ExitCode">0 when every expected reply arrived, 2 on a reply time-out.</param>
public sealed record UdpExchange(string LocalEndpoint, IReadOnlyList<string> Replies, IReadOnlyList<string> Extras, string Output, int ExitCode);

/// <summary>The summary of a ping run.</summary>
/// <param name="Transmitted">Echo requests sent.</param>
/// <param name="Received">Echo replies received.</param>
/// <param name="Output">Everything ping printed.</param>
public sealed record PingResult(int Transmitted, int Received, string Output);

/// <summary>
/// python3's http.server running on the outside host, serving a scratch directory that holds
/// <see cref="FileName"/>. Its access log (standard error) names each client address.
/// </summary>
public sealed partial class HttpServer : IDisposable
{
    /// <summary>The file every lab server serves.</summary>
    public const string FileName = "hello.txt";

    /// <summary>The exact content of <see cref="FileName"/>.</summary>
    public const string FileContent = "hello from the outside host\n";

    internal HttpServer(LabProcess process, IPAddress address, int port)
    {
        Process = process;
        Address = address;
        Port = port;
    }

    /// <summary>The running server.</summary>
    public LabProcess Process { get; }

    /// <summary>Address it is bound to.</summary>
    public IPAddress Address { get; }

    /// <summary>TCP port it listens on.</summary>
    public int Port { get; }

    /// <summary>URL of the served file.</summary>
    public string Url => $"http://{Address}:{Port.ToString(CultureInfo.InvariantCulture)}/{FileName}";

    /// <summary>Requests logged so far, parsed from the access log.</summary>
    /// <returns>One entry per request line.</returns>
    public IReadOnlyList<HttpLogEntry> Requests()
    {
        var entries = new List<HttpLogEntry>();
        foreach (var line in Process.StdErrLines)
        {
            var m = LogLine().Match(line);
            if (m.Success)
            {
                entries.Add(new HttpLogEntry(m.Groups[1].Value, m.Groups[2].Value, m.Groups[3].Value,
                    int.Parse(m.Groups[4].Value, CultureInfo.InvariantCulture)));
            }
        }

        return entries;
    }

    /// <summary>Stops the server.</summary>
    public void Dispose() => Process.Dispose();

    // 198.51.100.1 - - [21/Nov/2026 13:40:01] "GET /hello.txt HTTP/1.1" 200 -
    [GeneratedRegex("""^(\d+\.\d+\.\d+\.\d+) - - \[[^\]]*\] "(\S+) (\S+) [^"]*" (\d{3})""", RegexOptions.CultureInvariant)]
    private static partial Regex LogLine();
}

/// <summary>
/// A UDP echo server on the outside host: answers each datagram with
/// "echo from SERVER to CLIENT_IP:PORT: payload" and logs "seen CLIENT_IP:PORT".
/// </summary>
public sealed class UdpEchoServer : IDisposable
{
    internal UdpEchoServer(LabProcess process, IPAddress address, int port)
    {
        Process = process;
        Address = address;
        Port = port;
    }

    /// <summary>The running server.</summary>
    public LabProcess Process { get; }

    /// <summary>Address it is bound to.</summary>
    public IPAddress Address { get; }

    /// <summary>UDP port it listens on.</summary>
    public int Port { get; }

    /// <summary>Client endpoints ("ip:port") in the order their datagrams arrived (with repeats).</summary>
    /// <returns>The endpoints from the "seen" log lines.</returns>
    public IReadOnlyList<string> Seen()
    {
        var seen = new List<string>();
        foreach (var line in Process.StdOutLines)
        {
            if (line.StartsWith("seen ", StringComparison.Ordinal))
            {
                seen.Add(line[5..].Trim());
            }
        }

        return seen;
    }

    /// <summary>Waits until the server logged a datagram from <paramref name="address"/>.</summary>
    /// <param name="address">Expected source address (e.g. the NAT's external address).</param>
    /// <param name="timeout">Upper bound on the wait.</param>
    /// <returns>The external port seen, or null if no such datagram was logged in time.</returns>
    public int? WaitForSeenPort(IPAddress address, TimeSpan timeout)
    {
        var prefix = $"seen {address}:";
        var line = Process.WaitForLine(l => l.StartsWith(prefix, StringComparison.Ordinal), timeout);
        return line is not null && int.TryParse(line.AsSpan(prefix.Length).Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var port)
            ? port
            : null;
    }

    /// <summary>Stops the server.</summary>
    public void Dispose() => Process.Dispose();
}

/// <summary>
/// A tcpdump capture on one interface of one namespace (inbound frames only, no promiscuous
/// mode). Used by negative tests: "nothing matching this filter arrived".
/// </summary>
public sealed class PacketCapture : IDisposable
{
    internal PacketCapture(LabProcess process, string filter)
    {
        Process = process;
        Filter = filter;
    }

    /// <summary>The running tcpdump.</summary>
    public LabProcess Process { get; }

    /// <summary>The pcap filter expression in force.</summary>
    public string Filter { get; }

    /// <summary>
    /// Keeps capturing for <paramref name="linger"/> (so packets in flight are counted), stops
    /// tcpdump and returns one line per captured packet.
    /// </summary>
    /// <param name="linger">Extra capture time before stopping.</param>
    /// <returns>tcpdump's one-line packet summaries (blank lines dropped).</returns>
    public IReadOnlyList<string> Finish(TimeSpan linger)
    {
        Thread.Sleep(linger);
        Process.Stop(TimeSpan.FromSeconds(2));
        Process.WaitForStdOutEnd(TimeSpan.FromSeconds(2)); // tcpdump's last lines may still be in the pipe
        var packets = new List<string>();
        foreach (var line in Process.StdOutLines)
        {
            if (!string.IsNullOrWhiteSpace(line))
            {
                packets.Add(line);
            }
        }

        return packets;
    }

    /// <summary>Stops tcpdump.</summary>
    public void Dispose() => Process.Dispose();
}

/// <summary>
/// The real programs of the lab: servers on the outside host, clients on the inside host,
/// captures and a scanner. Every call is bounded in time; results are the programs' own output.
/// </summary>
public static class LabPrograms
{
    /// <summary>Default TCP port of the outside http.server.</summary>
    public const int HttpPort = 8080;

    /// <summary>Default UDP port of the outside echo server.</summary>
    public const int EchoPort = 7007;

    private static readonly TimeSpan ReadyTimeout = TimeSpan.FromSeconds(10);

    private const string EchoServerScript = """
        import socket, sys
        bind, port = sys.argv[1], int(sys.argv[2])
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        # Lets a test send a "server push" from the same address and port.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((bind, port))
        print(f"ready {bind}:{port}", flush=True)
        while True:
            data, (ip, p) = s.recvfrom(65535)
            print(f"seen {ip}:{p}", flush=True)
            s.sendto(f"echo from {bind}:{port} to {ip}:{p}: ".encode() + data, (ip, p))
        """;

    // Sends a request, waits for the reply; optionally keeps the socket open for GAP seconds,
    // reporting anything that arrives ("extra"), then proves the socket still works with a second
    // exchange. Exit 2 when the server's reply does not come within TIMEOUT seconds. With UNTIL, the
    // gap ends 0.5 s after a datagram containing that text, so a loaded machine only lengthens the wait.
    private const string UdpClientScript = """
        import socket, sys, time
        server, port, message = sys.argv[1], int(sys.argv[2]), sys.argv[3]
        gap, timeout = float(sys.argv[4]), float(sys.argv[5])
        until = sys.argv[6] if len(sys.argv) > 6 else ""
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.sendto(message.encode(), (server, port))
        ip, p = s.getsockname()
        print(f"local {ip}:{p}", flush=True)
        def await_reply(tag):
            deadline = time.monotonic() + timeout
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    print(f"{tag} timeout", flush=True)
                    sys.exit(2)
                s.settimeout(left)
                try:
                    data, (rip, rp) = s.recvfrom(65535)
                except socket.timeout:
                    continue
                text = data.decode(errors="replace")
                if rip == server and rp == port:
                    print(f"{tag} {text}", flush=True)
                    return
                print(f"extra from {rip}:{rp}: {text}", flush=True)
        await_reply("reply")
        if gap > 0:
            end = time.monotonic() + gap
            while (left := end - time.monotonic()) > 0:
                s.settimeout(left)
                try:
                    data, (rip, rp) = s.recvfrom(65535)
                    text = data.decode(errors='replace')
                    print(f"extra from {rip}:{rp}: {text}", flush=True)
                    if until and until in text:
                        end = min(end, time.monotonic() + 0.5)
                except socket.timeout:
                    pass
            s.sendto((message + " again").encode(), (server, port))
            await_reply("reply")
        print("done", flush=True)
        """;

    private const string SendUdpScript = """
        import socket, sys
        src, sport, dst, dport, payload = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5]
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((src, sport))
        s.sendto(payload.encode(), (dst, dport))
        print(f"sent {src}:{sport} -> {dst}:{dport}", flush=True)
        """;

    // TCP SYN (non-blocking connect) and one UDP datagram to each port, from SRC.
    private const string ScanScript = """
        import socket, sys, time
        src, dst = sys.argv[1], sys.argv[2]
        ports = [int(x) for x in sys.argv[3].split(",")]
        tcp = []
        for p in ports:
            t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            t.setblocking(False)
            t.bind((src, 0))
            t.connect_ex((dst, p))
            tcp.append(t)
            u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            u.bind((src, 0))
            u.sendto(b"scan", (dst, p))
            u.close()
        time.sleep(0.3)
        for t in tcp:
            t.close()
        print(f"scanned {len(ports)} ports tcp+udp", flush=True)
        """;

    /// <summary>
    /// Starts python3's http.server on the outside host, bound to 198.51.100.2, serving
    /// <see cref="HttpServer.FileName"/>; returns once it prints "Serving HTTP".
    /// </summary>
    /// <param name="lab">The topology.</param>
    /// <param name="port">TCP port.</param>
    /// <returns>The running server.</returns>
    /// <exception cref="LabException">It did not become ready within 10 s.</exception>
    public static HttpServer StartHttpServer(LabTopology lab, int port = HttpPort)
    {
        ArgumentNullException.ThrowIfNull(lab);
        var root = Path.Combine(lab.WorkDirectory, "www");
        Directory.CreateDirectory(root);
        File.WriteAllText(Path.Combine(root, HttpServer.FileName), HttpServer.FileContent);
        var process = lab.StartIn(lab.OutsideNs, "python3", "-u", "-m", "http.server",
            port.ToString(CultureInfo.InvariantCulture), "--bind", lab.OutsideHost.ToString(), "--directory", root);
        AwaitReady(process, l => l.StartsWith("Serving HTTP", StringComparison.Ordinal));
        return new HttpServer(process, lab.OutsideHost, port);
    }

    /// <summary>Starts the UDP echo server on the outside host (198.51.100.2); returns once it is bound.</summary>
    /// <param name="lab">The topology.</param>
    /// <param name="port">UDP port.</param>
    /// <returns>The running server.</returns>
    /// <exception cref="LabException">It did not become ready within 10 s.</exception>
    public static UdpEchoServer StartUdpEchoServer(LabTopology lab, int port = EchoPort)
    {
        ArgumentNullException.ThrowIfNull(lab);
        var script = WriteScript(lab, "udp_echo.py", EchoServerScript);
        var process = lab.StartIn(lab.OutsideNs, "python3", "-u", script, lab.OutsideHost.ToString(),
            port.ToString(CultureInfo.InvariantCulture));
        AwaitReady(process, l => l.StartsWith("ready ", StringComparison.Ordinal));
        return new UdpEchoServer(process, lab.OutsideHost, port);
    }

    /// <summary>
    /// Runs <c>curl -sS --max-time 5 URL</c> on the inside host. The result is returned whatever
    /// the exit code, so a test can assert on curl's own error message.
    /// </summary>
    /// <param name="lab">The topology.</param>
    /// <param name="url">URL to fetch; default the outside server's file.</param>
    /// <returns>curl's exit code, body (stdout) and error (stderr).</returns>
    public static ProcessResult Curl(LabTopology lab, string? url = null)
    {
        ArgumentNullException.ThrowIfNull(lab);
        url ??= $"http://{lab.OutsideHost}:{HttpPort.ToString(CultureInfo.InvariantCulture)}/{HttpServer.FileName}";
        return lab.TryRunIn(lab.InsideNs, TimeSpan.FromSeconds(10), "curl", "-sS", "--max-time", "5", url);
    }

    /// <summary>Runs <c>ping -c COUNT -W 2 -i 0.2 198.51.100.2</c> on the inside host.</summary>
    /// <param name="lab">The topology.</param>
    /// <param name="count">Echo requests to send.</param>
    /// <returns>Counts parsed from ping's summary line (0/0 if it printed none).</returns>
    public static PingResult Ping(LabTopology lab, int count = 3)
    {
        ArgumentNullException.ThrowIfNull(lab);
        var result = lab.TryRunIn(lab.InsideNs, TimeSpan.FromSeconds(count * 2 + 8), "ping", "-n",
            "-c", count.ToString(CultureInfo.InvariantCulture), "-W", "2", "-i", "0.2", lab.OutsideHost.ToString());
        var m = Regex.Match(result.StdOut, @"(\d+) packets transmitted, (\d+) (?:packets )?received", RegexOptions.CultureInvariant);
        return m.Success
            ? new PingResult(int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture), int.Parse(m.Groups[2].Value, CultureInfo.InvariantCulture), result.Combined)
            : new PingResult(0, 0, result.Combined);
    }

    /// <summary>
    /// One UDP request/reply from the inside host to the echo server, waiting up to
    /// <paramref name="timeoutSeconds"/> for the reply.
    /// </summary>
    /// <param name="lab">The topology.</param>
    /// <param name="message">Payload text.</param>
    /// <param name="port">Server UDP port.</param>
    /// <param name="timeoutSeconds">Reply time-out in seconds.</param>
    /// <returns>What the client received.</returns>
    /// <exception cref="LabException">The client hung past its own time-out.</exception>
    public static UdpExchange UdpRequest(LabTopology lab, string message, int port = EchoPort, double timeoutSeconds = 3)
    {
        using var client = StartUdpClient(lab, message, 0, port, timeoutSeconds);
        if (!client.WaitForExit(TimeSpan.FromSeconds(timeoutSeconds + 10)))
        {
            throw new LabException($"UDP client did not finish: {client.CommandLine}\n{client.Dump()}");
        }

        return ParseUdpClient(client);
    }

    /// <summary>
    /// Starts a UDP client on the inside host that sends <paramref name="message"/>, prints
    /// "reply ..." for the server's answer, then keeps its socket open for
    /// <paramref name="gapSeconds"/> printing "extra from ..." for any datagram that arrives, and
    /// finally exchanges a second message with the server. Use <see cref="ParseUdpClient"/> after it exits.
    /// </summary>
    /// <param name="lab">The topology.</param>
    /// <param name="message">Payload text.</param>
    /// <param name="gapSeconds">How long the socket stays open after the first reply (0 = exit at once).</param>
    /// <param name="port">Server UDP port.</param>
    /// <param name="timeoutSeconds">Time-out for each reply.</param>
    /// <param name="until">When not empty, the gap ends 0.5 s after a datagram containing this text arrives (at most <paramref name="gapSeconds"/>).</param>
    /// <returns>The running client.</returns>
    public static LabProcess StartUdpClient(LabTopology lab, string message, double gapSeconds, int port = EchoPort, double timeoutSeconds = 3, string until = "")
    {
        ArgumentNullException.ThrowIfNull(lab);
        var script = WriteScript(lab, "udp_client.py", UdpClientScript);
        return lab.StartIn(lab.InsideNs, "python3", "-u", script, lab.OutsideHost.ToString(),
            port.ToString(CultureInfo.InvariantCulture), message,
            gapSeconds.ToString(CultureInfo.InvariantCulture), timeoutSeconds.ToString(CultureInfo.InvariantCulture), until);
    }

    /// <summary>Parses the output of a finished <see cref="StartUdpClient"/> process.</summary>
    /// <param name="client">The exited client.</param>
    /// <returns>Its local endpoint, replies and unexpected datagrams.</returns>
    public static UdpExchange ParseUdpClient(LabProcess client)
    {
        ArgumentNullException.ThrowIfNull(client);
        var local = "";
        var replies = new List<string>();
        var extras = new List<string>();
        foreach (var line in client.StdOutLines)
        {
            if (line.StartsWith("local ", StringComparison.Ordinal))
            {
                local = line[6..];
            }
            else if (line.StartsWith("reply ", StringComparison.Ordinal) && !line.Equals("reply timeout", StringComparison.Ordinal))
            {
                replies.Add(line[6..]);
            }
            else if (line.StartsWith("extra from ", StringComparison.Ordinal))
            {
                extras.Add(line[11..]);
            }
        }

        return new UdpExchange(local, replies, extras, client.Dump(), client.HasExited ? client.ExitCode : -1);
    }

    /// <summary>
    /// Sends one UDP datagram from <paramref name="source"/>:<paramref name="sourcePort"/> in namespace
    /// <paramref name="ns"/>; for unsolicited-traffic tests.
    /// </summary>
    /// <param name="lab">The topology.</param>
    /// <param name="ns">Namespace to send from (normally the outside host's).</param>
    /// <param name="source">Source address (must be configured in that namespace).</param>
    /// <param name="sourcePort">Source UDP port.</param>
    /// <param name="destination">Destination address.</param>
    /// <param name="destinationPort">Destination UDP port.</param>
    /// <param name="payload">Payload text.</param>
    /// <exception cref="LabException">The sender failed.</exception>
    public static void SendUdp(LabTopology lab, string ns, IPAddress source, int sourcePort, IPAddress destination, int destinationPort, string payload)
    {
        ArgumentNullException.ThrowIfNull(lab);
        var script = WriteScript(lab, "send_udp.py", SendUdpScript);
        lab.RunIn(ns, "python3", script, source.ToString(), sourcePort.ToString(CultureInfo.InvariantCulture),
            destination.ToString(), destinationPort.ToString(CultureInfo.InvariantCulture), payload);
    }

    /// <summary>
    /// Sends a TCP SYN (non-blocking connect) and a UDP datagram to each port of
    /// <paramref name="target"/>, from <paramref name="source"/> on the outside host.
    /// </summary>
    /// <param name="lab">The topology.</param>
    /// <param name="source">Scanner source address (configured on the outside host).</param>
    /// <param name="target">Address scanned (normally the NAT's external address).</param>
    /// <param name="ports">Ports to probe.</param>
    /// <returns>The scanner's output.</returns>
    /// <exception cref="LabException">The scanner failed or hung.</exception>
    public static ProcessResult Scan(LabTopology lab, IPAddress source, IPAddress target, IReadOnlyCollection<int> ports)
    {
        ArgumentNullException.ThrowIfNull(lab);
        ArgumentNullException.ThrowIfNull(ports);
        var script = WriteScript(lab, "scan.py", ScanScript);
        return lab.RunIn(lab.OutsideNs, "python3", script, source.ToString(), target.ToString(),
            string.Join(',', ports));
    }

    /// <summary>
    /// Starts tcpdump on an interface (inbound only, numeric, line-buffered) and returns once it
    /// is listening.
    /// </summary>
    /// <param name="lab">The topology.</param>
    /// <param name="ns">Namespace of the interface.</param>
    /// <param name="iface">Interface name.</param>
    /// <param name="filter">pcap filter expression.</param>
    /// <returns>The running capture; call <see cref="PacketCapture.Finish"/> to read it.</returns>
    /// <exception cref="LabException">tcpdump did not start listening within 10 s.</exception>
    public static PacketCapture StartCapture(LabTopology lab, string ns, string iface, string filter)
    {
        ArgumentNullException.ThrowIfNull(lab);
        var process = lab.StartIn(ns, "tcpdump", "-i", iface, "-n", "-l", "-p", "-Q", "in", filter);
        AwaitReady(process, l => l.Contains("listening on", StringComparison.Ordinal));
        return new PacketCapture(process, filter);
    }

    /// <summary>
    /// Listens on the inside host's veth for <paramref name="protocol"/> ("tcp", "udp", "icmp")
    /// packets to <paramref name="port"/> (ignored for icmp); for negative tests, finish with
    /// <see cref="PacketCapture.Finish"/> after the traffic that must not arrive was sent.
    /// </summary>
    /// <param name="lab">The topology.</param>
    /// <param name="protocol">pcap protocol keyword.</param>
    /// <param name="port">Destination port.</param>
    /// <returns>The running capture.</returns>
    public static PacketCapture ListenFor(LabTopology lab, string protocol, int port)
    {
        ArgumentNullException.ThrowIfNull(lab);
        var filter = protocol == "icmp" ? "icmp" : $"{protocol} and dst port {port.ToString(CultureInfo.InvariantCulture)}";
        return StartCapture(lab, lab.InsideNs, lab.InsideHostIf, filter);
    }

    /// <summary>
    /// "What the servers saw": client addresses from the http.server access log and the echo
    /// server's "seen" log, one per line, for test output.
    /// </summary>
    /// <param name="http">The HTTP server, if any.</param>
    /// <param name="echo">The UDP echo server, if any.</param>
    /// <returns>A human-readable report.</returns>
    public static string Report(HttpServer? http, UdpEchoServer? echo)
    {
        var sb = new StringBuilder();
        if (http is not null)
        {
            sb.Append("http.server ").Append(http.Address).Append(':').Append(http.Port).Append(" saw:\n");
            foreach (var r in http.Requests())
            {
                sb.Append("  ").Append(r.Client).Append(' ').Append(r.Method).Append(' ').Append(r.Path)
                  .Append(' ').Append(r.Status).Append('\n');
            }
        }

        if (echo is not null)
        {
            sb.Append("udp echo ").Append(echo.Address).Append(':').Append(echo.Port).Append(" saw:\n");
            foreach (var s in echo.Seen())
            {
                sb.Append("  ").Append(s).Append('\n');
            }
        }

        return sb.ToString();
    }

    private static string WriteScript(LabTopology lab, string name, string text)
    {
        var path = Path.Combine(lab.WorkDirectory, name);
        if (!File.Exists(path))
        {
            File.WriteAllText(path, text + "\n");
        }

        return path;
    }

    private static void AwaitReady(LabProcess process, Func<string, bool> ready)
    {
        if (process.WaitForLine(ready, ReadyTimeout) is null)
        {
            var dump = process.Dump();
            process.Dispose();
            throw new LabException($"not ready within {ReadyTimeout.TotalSeconds:0} s: {process.CommandLine}\n{dump}");
        }
    }
}
