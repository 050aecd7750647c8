using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Security.Cryptography;
using System.Text.RegularExpressions;
using Natd.Control.Lab;

namespace Natd.Tests.EndToEnd.Alg;

/// <summary>Files with known content for transfers, and how to compare them.</summary>
public static class LabFiles
{
    /// <summary>Writes <paramref name="size"/> pseudo-random bytes (fixed seed: every run sends the same file), world-readable.</summary>
    /// <param name="path">Where to write.</param>
    /// <param name="size">Length in bytes.</param>
    /// <param name="seed">Seed of the byte sequence.</param>
    /// <returns>The SHA-256 of the content, lowercase hex.</returns>
    public static string WriteRandom(string path, int size, int seed)
    {
        var bytes = new byte[size];
        new Random(seed).NextBytes(bytes);
        File.WriteAllBytes(path, bytes);
        // The servers drop privileges to nobody: the file must be world-readable.
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
        }

        return Convert.ToHexStringLower(SHA256.HashData(bytes));
    }

    /// <summary>SHA-256 of a file, lowercase hex, or "missing" if it does not exist.</summary>
    /// <param name="path">The file.</param>
    /// <returns>The digest.</returns>
    public static string Sha256(string path) =>
        File.Exists(path) ? Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(path))) : "missing";

    /// <summary>Creates a directory with the given mode.</summary>
    /// <param name="path">The directory.</param>
    /// <param name="mode">Its permission bits.</param>
    /// <returns><paramref name="path"/>.</returns>
    public static string Directory(string path, UnixFileMode mode)
    {
        System.IO.Directory.CreateDirectory(path);
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(path, mode);
        }

        return path;
    }

    /// <summary>rwxr-xr-x.</summary>
    public const UnixFileMode Mode755 = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute
        | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute;

    /// <summary>rwxrwxrwx.</summary>
    public const UnixFileMode Mode777 = Mode755 | UnixFileMode.GroupWrite | UnixFileMode.OtherWrite;

    /// <summary>An address as the unsigned decimal number IRC DCC offers carry (network byte order).</summary>
    /// <param name="address">An IPv4 address.</param>
    /// <returns>E.g. 3325256705 for 198.51.100.1.</returns>
    public static uint Decimal(IPAddress address)
    {
        var b = address.GetAddressBytes();
        return ((uint)b[0] << 24) | ((uint)b[1] << 16) | ((uint)b[2] << 8) | b[3];
    }
}

/// <summary>Waits for a server in a lab namespace to listen (servers that print no readiness line).</summary>
public static class Listeners
{
    /// <summary>Polls <c>ss</c> in <paramref name="ns"/> until a socket listens on the port.</summary>
    /// <param name="lab">The lab.</param>
    /// <param name="ns">Namespace of the server.</param>
    /// <param name="udp">UDP (bound socket) instead of TCP (listening socket).</param>
    /// <param name="port">Local port.</param>
    /// <param name="server">The server, whose early exit ends the wait with its output.</param>
    /// <param name="timeout">Upper bound on the wait.</param>
    /// <exception cref="LabException">Not listening in time, or the server exited.</exception>
    public static void WaitFor(LabTopology lab, string ns, bool udp, int port, LabProcess server, TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        var portText = port.ToString(CultureInfo.InvariantCulture);
        while (true)
        {
            var r = lab.TryRunIn(ns, TimeSpan.FromSeconds(5), "ss", "-H", "-n", udp ? "-lu" : "-lt", "sport", "=", ":" + portText);
            if (r.ExitCode == 0 && r.StdOut.Trim().Length > 0)
            {
                return;
            }

            if (server.HasExited)
            {
                server.WaitForExit(TimeSpan.FromSeconds(1));
                throw new LabException($"server exited (code {server.ExitCode}) before listening on {portText}\n{server.Dump()}");
            }

            if (clock.Elapsed > timeout)
            {
                throw new LabException($"nothing listens on {(udp ? "udp" : "tcp")} {portText} in {ns} after {timeout.TotalSeconds:0} s\n{server.Dump()}");
            }

            Thread.Sleep(50);
        }
    }
}

/// <summary>
/// vsftpd on the outside host (198.51.100.2), or the inside one (10.0.0.2), in the foreground with its own config: anonymous
/// login (no password), read access to <see cref="RootDirectory"/>, uploads into
/// <see cref="UploadDirectory"/>, passive (PASV/EPSV) and active (PORT/EPRT, data connections from
/// port 20) transfers, and a protocol log naming every client address.
/// </summary>
public sealed partial class FtpServer : IDisposable
{
    private static readonly TimeSpan ReadyTimeout = TimeSpan.FromSeconds(10);

    private FtpServer(LabProcess process, int port, string root, string logPath)
    {
        Process = process;
        Port = port;
        RootDirectory = root;
        LogPath = logPath;
    }

    /// <summary>The running vsftpd.</summary>
    public LabProcess Process { get; }

    /// <summary>Control port.</summary>
    public int Port { get; }

    /// <summary>The anonymous root (files to download go here).</summary>
    public string RootDirectory { get; }

    /// <summary>The world-writable upload directory, "upload" under the root.</summary>
    public string UploadDirectory => Path.Combine(RootDirectory, "upload");

    /// <summary>vsftpd's log (protocol and transfer lines).</summary>
    public string LogPath { get; }

    /// <summary>Starts vsftpd on the outside host (or the inside one) and waits until it listens.</summary>
    /// <param name="lab">The lab.</param>
    /// <param name="port">Control port (<c>listen_port</c>).</param>
    /// <param name="inside">
    /// Run on the inside host (reached through a port forward) instead of the outside one. No
    /// <c>pasv_address</c>: its 227 replies name its own inside address, as a server behind a NAT
    /// does unless told otherwise; that is what the FTP ALG rewrites.
    /// </param>
    /// <returns>The running server.</returns>
    /// <exception cref="LabException">vsftpd did not start listening in 10 s.</exception>
    public static FtpServer Start(LabTopology lab, int port = 21, bool inside = false)
    {
        var ns = inside ? lab.InsideNs : lab.OutsideNs;
        var address = inside ? lab.InsideHost : lab.OutsideHost;
        var dir = LabFiles.Directory(Path.Combine(lab.WorkDirectory, $"vsftpd-{(inside ? "inside-" : "")}{port}"), LabFiles.Mode755);
        // vsftpd refuses an anonymous root the ftp user could write to, and needs an empty,
        // root-owned, non-writable directory for its unprivileged child.
        var root = LabFiles.Directory(Path.Combine(dir, "root"), LabFiles.Mode755);
        LabFiles.Directory(Path.Combine(root, "upload"), LabFiles.Mode777);
        var empty = LabFiles.Directory(Path.Combine(dir, "empty"), LabFiles.Mode755);
        var log = Path.Combine(dir, "vsftpd.log");
        var config = Path.Combine(dir, "vsftpd.conf");
        File.WriteAllText(config, $"""
            listen=YES
            listen_ipv6=NO
            listen_address={address}
            listen_port={port}
            background=NO
            anonymous_enable=YES
            no_anon_password=YES
            anon_root={root}
            ftp_username=ftp
            write_enable=YES
            anon_upload_enable=YES
            anon_umask=022
            local_enable=NO
            pasv_enable=YES
            pasv_min_port=30000
            pasv_max_port=30999
            port_enable=YES
            connect_from_port_20=YES
            ftp_data_port=20
            secure_chroot_dir={empty}
            seccomp_sandbox=NO
            isolate=NO
            isolate_network=NO
            xferlog_enable=YES
            xferlog_std_format=NO
            log_ftp_protocol=YES
            vsftpd_log_file={log}
            data_connection_timeout=20
            idle_session_timeout=30

            """);
        var process = lab.StartIn(ns, "vsftpd", config);
        Listeners.WaitFor(lab, ns, udp: false, port, process, ReadyTimeout);
        return new FtpServer(process, port, root, log);
    }

    /// <summary>The log so far ("" before the first line).</summary>
    /// <returns>vsftpd's log text.</returns>
    public string Log()
    {
        try
        {
            using var stream = new FileStream(LogPath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            using var reader = new StreamReader(stream);
            return reader.ReadToEnd();
        }
        catch (FileNotFoundException)
        {
            return "";
        }
    }

    /// <summary>Waits until a log line contains <paramref name="text"/>.</summary>
    /// <param name="text">Substring to look for.</param>
    /// <param name="timeout">Upper bound on the wait.</param>
    /// <returns>The first such line, or null.</returns>
    public string? WaitForLog(string text, TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            foreach (var line in Log().Split('\n'))
            {
                if (line.Contains(text, StringComparison.Ordinal))
                {
                    return line;
                }
            }

            if (clock.Elapsed > timeout)
            {
                return null;
            }

            Thread.Sleep(50);
        }
    }

    /// <summary>Every client address in the log (<c>Client "a.b.c.d"</c>), in order, with repeats.</summary>
    /// <returns>The addresses.</returns>
    public IReadOnlyList<string> Clients() => [.. ClientPattern().Matches(Log()).Select(m => m.Groups[1].Value)];

    /// <summary>The FTP commands the server received (from <c>FTP command: ..., "CMD args"</c> lines).</summary>
    /// <returns>Each command line, in order.</returns>
    public IReadOnlyList<string> Commands() => [.. CommandPattern().Matches(Log()).Select(m => m.Groups[1].Value)];

    /// <summary>Stops vsftpd.</summary>
    public void Dispose() => Process.Dispose();

    [GeneratedRegex("Client \"([^\"]+)\"", RegexOptions.CultureInvariant)]
    private static partial Regex ClientPattern();

    [GeneratedRegex("FTP command: Client \"[^\"]+\", \"([^\"]*)\"", RegexOptions.CultureInvariant)]
    private static partial Regex CommandPattern();
}

/// <summary>
/// tftpd-hpa (<c>in.tftpd -L</c>) on the outside host, port 69, serving <see cref="RootDirectory"/>
/// read-only. Replies come from a fresh port per transfer (RFC 1350 section 4), which is what the
/// TFTP ALG exists for.
/// </summary>
public sealed class TftpServer : IDisposable
{
    private TftpServer(LabProcess process, string root)
    {
        Process = process;
        RootDirectory = root;
    }

    /// <summary>The running in.tftpd.</summary>
    public LabProcess Process { get; }

    /// <summary>The served directory.</summary>
    public string RootDirectory { get; }

    /// <summary>Starts in.tftpd in the foreground and waits until it is bound.</summary>
    /// <param name="lab">The lab.</param>
    /// <returns>The running server.</returns>
    /// <exception cref="LabException">Not bound in 10 s.</exception>
    public static TftpServer Start(LabTopology lab)
    {
        var root = LabFiles.Directory(Path.Combine(lab.WorkDirectory, "tftp-root"), LabFiles.Mode755);
        var process = lab.StartIn(lab.OutsideNs, "in.tftpd", "-L", "-a", $"{lab.OutsideHost}:69", "-u", "nobody", "-s", root);
        Listeners.WaitFor(lab, lab.OutsideNs, udp: true, 69, process, TimeSpan.FromSeconds(10));
        return new TftpServer(process, root);
    }

    /// <summary>Stops in.tftpd.</summary>
    public void Dispose() => Process.Dispose();
}

/// <summary>ngircd on the outside host (198.51.100.2:6667), in the foreground with its own config.</summary>
public sealed class IrcServer : IDisposable
{
    /// <summary>Client port.</summary>
    public const int Port = 6667;

    private IrcServer(LabProcess process) => Process = process;

    /// <summary>The running ngircd.</summary>
    public LabProcess Process { get; }

    /// <summary>Starts ngircd and waits until it listens.</summary>
    /// <param name="lab">The lab.</param>
    /// <returns>The running server.</returns>
    /// <exception cref="LabException">Not listening in 10 s.</exception>
    public static IrcServer Start(LabTopology lab)
    {
        var dir = LabFiles.Directory(Path.Combine(lab.WorkDirectory, "ngircd"), LabFiles.Mode777);
        var motd = Path.Combine(dir, "motd");
        File.WriteAllText(motd, "lab\n");
        var config = Path.Combine(dir, "ngircd.conf");
        File.WriteAllText(config, $"""
            [Global]
            Name = irc.lab.test
            Info = natd ALG lab
            Listen = {lab.OutsideHost}
            Ports = {Port}
            MotdFile = {motd}
            PidFile = {Path.Combine(dir, "ngircd.pid")}
            ServerUID = 65534
            ServerGID = 65534

            [Limits]
            MaxConnectionsIP = 0
            PingTimeout = 120
            PongTimeout = 20

            [Options]
            DNS = no
            Ident = no
            PAM = no

            """);
        var process = lab.StartIn(lab.OutsideNs, "ngircd", "-n", "-f", config);
        Listeners.WaitFor(lab, lab.OutsideNs, udp: false, Port, process, TimeSpan.FromSeconds(10));
        return new IrcServer(process);
    }

    /// <summary>Stops ngircd.</summary>
    public void Dispose() => Process.Dispose();
}

/// <summary>
/// Two scripted IRC clients (python3, standard library only). The offerer (inside host) registers
/// as "alice", listens on its own address and sends bob a CTCP DCC SEND or DCC CHAT offer naming
/// that address and port; the taker (outside host) registers as "bob", prints the offer it got
/// ("offer KIND IP PORT [SIZE]", IP as the decimal number), connects to it and prints what it
/// received. Both exit 0 only when the exchange completed.
/// </summary>
public static class DccClients
{
    /// <summary>Nick of the offerer.</summary>
    public const string Offerer = "alice";

    /// <summary>Nick of the taker.</summary>
    public const string Taker = "bob";

    /// <summary>The chat line the offerer sends first.</summary>
    public const string OffererChat = "hello bob, this is alice";

    /// <summary>The chat line the taker answers.</summary>
    public const string TakerChat = "hello alice, bob here";

    private const string Script = """
        import hashlib, socket, sys, time

        def log(*a):
            print(*a, flush=True)

        class Irc:
            def __init__(self, host, port, nick, deadline, source=None):
                self.deadline = deadline
                self.buf = b""
                self.s = socket.create_connection((host, port), timeout=5, source_address=(source, 0) if source else None)
                self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self.send("NICK " + nick)
                self.send("USER %s 0 * :%s" % (nick, nick))
                self.wait(lambda p, t: len(p) > 1 and p[1] == "001")
                log("registered", nick)

            def send(self, line):
                # One line per segment: the kernel's irc helper reads a DCC offer only at the
                # start of a segment.
                self.s.sendall(line.encode("latin-1") + b"\r\n")

            def next_line(self):
                while b"\n" not in self.buf:
                    left = self.deadline - time.monotonic()
                    if left <= 0:
                        raise TimeoutError("no IRC line in time")
                    self.s.settimeout(left)
                    data = self.s.recv(4096)
                    if not data:
                        raise ConnectionError("IRC server closed the connection")
                    self.buf += data
                line, _, self.buf = self.buf.partition(b"\n")
                text = line.rstrip(b"\r").decode("latin-1")
                if text.startswith("PING"):
                    self.send("PONG" + text[4:])
                return text

            def wait(self, pred):
                while True:
                    text = self.next_line()
                    log("irc<", text.replace("\x01", "^A"))
                    if pred(text.split(" "), text):
                        return text

        def left(deadline):
            return max(0.1, deadline - time.monotonic())

        def offer(server, port, mode, bind, path, deadline):
            irc = Irc(server, port, "alice", deadline)
            lst = socket.socket()
            lst.bind((bind, 0))
            lst.listen(1)
            ip, lport = lst.getsockname()
            number = int.from_bytes(socket.inet_aton(ip), "big")
            if mode == "send":
                data = open(path, "rb").read()
                text = "DCC SEND %s %d %d %d" % (path.rsplit("/", 1)[-1], number, lport, len(data))
            else:
                text = "DCC CHAT chat %d %d" % (number, lport)
            irc.send("PRIVMSG bob :\x01%s\x01" % text)
            log("offered", text)
            lst.settimeout(left(deadline))
            conn, peer = lst.accept()
            log("accepted from %s:%d" % peer)
            conn.settimeout(left(deadline))
            if mode == "send":
                conn.sendall(data)
                acked = 0
                while acked < len(data):
                    ack = b""
                    while len(ack) < 4:
                        chunk = conn.recv(4 - len(ack))
                        if not chunk:
                            raise ConnectionError("taker closed before acknowledging everything (%d)" % acked)
                        ack += chunk
                    acked = int.from_bytes(ack, "big")
                log("acknowledged", acked)
            else:
                conn.sendall(b"hello bob, this is alice\n")
                reply = conn.makefile("rb").readline().decode().strip()
                log("chat got", reply)
            conn.close()
            irc.send("QUIT :done")

        def take(server, port, source, deadline):
            irc = Irc(server, port, "bob", deadline, source)
            line = irc.wait(lambda p, t: len(p) > 3 and p[1] == "PRIVMSG" and "\x01DCC " in t)
            words = line.split("\x01")[1].split(" ")
            kind, number, dport = words[1], int(words[3]), int(words[4])
            size = int(words[5]) if kind == "SEND" else 0
            log("offer", kind, number, dport, size) if kind == "SEND" else log("offer", kind, number, dport)
            address = socket.inet_ntoa(number.to_bytes(4, "big"))
            conn = socket.create_connection((address, dport), timeout=left(deadline), source_address=(source, 0))
            log("connected to %s:%d from %s:%d" % (conn.getpeername() + conn.getsockname()))
            conn.settimeout(left(deadline))
            if kind == "SEND":
                digest = hashlib.sha256()
                got = 0
                while got < size:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    digest.update(chunk)
                    got += len(chunk)
                    conn.sendall(got.to_bytes(4, "big"))
                log("received", got, "sha256", digest.hexdigest())
            else:
                line = conn.makefile("rb").readline().decode().strip()
                log("chat got", line)
                conn.sendall(b"hello alice, bob here\n")
            conn.close()
            irc.send("QUIT :done")

        role, server, port, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
        deadline = time.monotonic() + seconds
        if role == "offer":
            offer(server, port, sys.argv[5], sys.argv[6], sys.argv[7] if len(sys.argv) > 7 else "", deadline)
        else:
            take(server, port, sys.argv[5], deadline)
        log("done")
        """;

    private static string ScriptPath(LabTopology lab)
    {
        var path = Path.Combine(lab.WorkDirectory, "dcc.py");
        if (!File.Exists(path))
        {
            File.WriteAllText(path, Script);
        }

        return path;
    }

    /// <summary>
    /// Starts bob on the outside host, from <paramref name="source"/> (a host other than the IRC
    /// server's, as DCC peers are), and waits until the server registered him.
    /// </summary>
    /// <param name="lab">The lab.</param>
    /// <param name="source">Bob's address, configured on the outside host.</param>
    /// <param name="seconds">The script's overall deadline.</param>
    /// <returns>The running taker.</returns>
    /// <exception cref="LabException">Not registered within 10 s.</exception>
    public static LabProcess StartTaker(LabTopology lab, IPAddress source, double seconds)
    {
        var process = lab.StartIn(lab.OutsideNs, "python3", "-u", ScriptPath(lab), "take", lab.OutsideHost.ToString(),
            IrcServer.Port.ToString(CultureInfo.InvariantCulture), seconds.ToString(CultureInfo.InvariantCulture), source.ToString());
        if (process.WaitForLine(l => l == "registered bob", TimeSpan.FromSeconds(10)) is null)
        {
            throw new LabException("bob did not register with the IRC server\n" + process.Dump());
        }

        return process;
    }

    /// <summary>Starts alice on the inside host: she offers <paramref name="file"/> (SEND) or a chat.</summary>
    /// <param name="lab">The lab.</param>
    /// <param name="mode">"send" or "chat".</param>
    /// <param name="file">The file to send (SEND only).</param>
    /// <param name="seconds">The script's overall deadline.</param>
    /// <returns>The running offerer.</returns>
    public static LabProcess StartOfferer(LabTopology lab, string mode, string? file, double seconds)
    {
        string[] args = [ScriptPath(lab), "offer", lab.OutsideHost.ToString(), IrcServer.Port.ToString(CultureInfo.InvariantCulture),
            seconds.ToString(CultureInfo.InvariantCulture), mode, lab.InsideHost.ToString(), .. file is null ? Array.Empty<string>() : [file]];
        return lab.StartIn(lab.InsideNs, "python3", ["-u", .. args]);
    }
}
