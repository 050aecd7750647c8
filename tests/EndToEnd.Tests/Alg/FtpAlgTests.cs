using System.Globalization;
using Natd.Control.Lab;
using Xunit.Abstractions;

namespace Natd.Tests.EndToEnd.Alg;

/// <summary>
/// FTP (RFC 959, RFC 2428) through the gateway with real programs: vsftpd on the outside host,
/// curl and lftp on the inside host. Passive transfers need the ALG only to let the data
/// connection through; active ones (PORT, EPRT) need the address in the command rewritten to the
/// external address and an expectation for the server's connection from port 20. vsftpd refuses
/// a PORT/EPRT address other than the control connection's peer, and its log names both, so a
/// missing rewrite fails the test on the server's word.
/// </summary>
[Collection(EndToEndCollection.Name)]
[Trait("Category", "EndToEnd")]
public sealed class FtpAlgTests(ITestOutputHelper output)
{
    private const int FileSize = 3 * 1024 * 1024;
    private static readonly TimeSpan LogWait = TimeSpan.FromSeconds(3);
    private static readonly TimeSpan ClientTimeout = TimeSpan.FromSeconds(40);

    /// <summary>curl's data-connection variants: EPSV (its default), PASV, EPRT (its active default), PORT.</summary>
    public static TheoryData<string, string> CurlModes => AlgGatewayKinds.KindsWith("epsv", "pasv", "eprt", "port");

    /// <summary>The variants checked on the second control port.</summary>
    public static TheoryData<string, string> OtherPortModes => AlgGatewayKinds.KindsWith("pasv", "port");

    /// <summary>lftp: download passive and active, upload passive and active.</summary>
    public static TheoryData<string, string> LftpModes => AlgGatewayKinds.KindsWith("get-passive", "get-active", "put-passive", "put-active");

    [AlgTheory("ftp")]
    [MemberData(nameof(CurlModes))]
    public void Curl_downloads_a_file_byte_for_byte_and_vsftpd_sees_the_external_address(string kind, string mode)
    {
        using var scenario = Scenario.Start(AlgGatewayKinds.Create(kind), output);
        CurlDownload(scenario, 21, mode);
        scenario.Pass();
    }

    [AlgTheory("ftp")]
    [MemberData(nameof(OtherPortModes))]
    public void Curl_downloads_through_a_control_port_other_than_21(string kind, string mode)
    {
        using var scenario = Scenario.Start(AlgGatewayKinds.Create(kind), output);
        CurlDownload(scenario, 2121, mode);
        scenario.Pass();
    }

    /// <summary>
    /// The forward that puts vsftpd on the inside host behind the gateway's address (natd rows only:
    /// the kernel row's helpers are bound to connections opened from inside).
    /// </summary>
    private const string ServerForward = """
        forwards:
          - { protocol: tcp, external: 198.51.100.1:21, backends: [10.0.0.2:21] }

        """;

    /// <summary>The natd rows crossed with the data-connection variants of an outside client.</summary>
    public static TheoryData<string, string> ServerInsideModes
    {
        get
        {
            var data = new TheoryData<string, string>();
            foreach (var name in AlgGatewayKinds.Names.Where(n => n.StartsWith("natd", StringComparison.Ordinal)))
            {
                foreach (var mode in new[] { "epsv", "pasv", "port" })
                {
                    data.Add(name, mode);
                }
            }

            return data;
        }
    }

    // The server is inside behind a port forward, the client outside (netfilter's FTP helper does
    // this for DNATed servers). Passive: the server's 229 port and 227 address and port are
    // rewritten to the external endpoint and a reserved port, which only the client may then open.
    // Active: the client's PORT names its public address; the server's connection from port 20
    // is ordinary masqueraded traffic.
    [AlgTheory("ftp")]
    [MemberData(nameof(ServerInsideModes))]
    public void Curl_outside_downloads_from_vsftpd_inside_behind_a_port_forward(string kind, string mode)
    {
        var workers = kind == "natd-w1" ? 1 : 2;
        var gateway = new NatdGateway { ExtraConfig = $"dataplane: {{ workers: {workers} }}\n" + AlgGatewayKinds.NatdAlgConfig + ServerForward };
        using var scenario = Scenario.Start(gateway, output);
        var lab = scenario.Lab;
        using var ftp = FtpServer.Start(lab, 21, inside: true);
        var expected = LabFiles.WriteRandom(Path.Combine(ftp.RootDirectory, "big.bin"), FileSize, seed: 21);
        var local = Path.Combine(lab.WorkDirectory, "curl-outside.bin");

        string[] modeArgs = mode switch
        {
            "epsv" => [],
            // curl ignores a 227's address by default (uses the control connection's): make it use it.
            "pasv" => ["--disable-epsv", "--no-ftp-skip-pasv-ip"],
            "port" => ["--ftp-port", "-", "--disable-eprt"],
            _ => throw new ArgumentOutOfRangeException(nameof(mode), mode, null),
        };
        string[] args = ["-v", "-sS", "--max-time", "30", "--connect-timeout", "10", "-o", local, .. modeArgs, $"ftp://{lab.GatewayOutside}/big.bin"];
        var curl = lab.TryRunIn(lab.OutsideNs, ClientTimeout, "curl", args);
        output.WriteLine($"$ curl {string.Join(' ', args)}\nexit {curl.ExitCode}\n{curl.Combined}");
        var downloaded = ftp.WaitForLog("OK DOWNLOAD", LogWait);
        output.WriteLine(ftp.Log());

        Assert.True(curl.ExitCode == 0, $"curl exit {curl.ExitCode}: {curl.Combined}");
        Assert.NotNull(downloaded);
        Assert.Equal(expected, LabFiles.Sha256(local));
        // The client's commands reach the server as sent: PORT names the client's own public address.
        var verb = mode.ToUpperInvariant();
        var command = Assert.Single(ftp.Commands(), c => c.StartsWith(verb, StringComparison.OrdinalIgnoreCase));
        if (mode == "port")
        {
            Assert.StartsWith("PORT " + lab.OutsideHost.ToString().Replace('.', ',') + ",", command, StringComparison.OrdinalIgnoreCase);
        }

        // No source translation on a forward: the server sees the client itself.
        Assert.All(ftp.Clients(), c => Assert.Equal(lab.OutsideHost.ToString(), c));
        if (mode == "pasv")
        {
            // The reply curl got names the external address, never the server's inside one.
            Assert.Contains("227 Entering Passive Mode (" + lab.GatewayOutside.ToString().Replace('.', ',') + ",", curl.Combined, StringComparison.Ordinal);
        }

        Assert.DoesNotContain(lab.InsideHost.ToString().Replace('.', ','), curl.Combined, StringComparison.Ordinal);
        scenario.Pass();
    }

    [AlgTheory("ftp")]
    [MemberData(nameof(LftpModes))]
    public void Lftp_transfers_a_file_byte_for_byte(string kind, string mode)
    {
        using var scenario = Scenario.Start(AlgGatewayKinds.Create(kind), output);
        var lab = scenario.Lab;
        using var ftp = FtpServer.Start(lab);
        var upload = mode.StartsWith("put", StringComparison.Ordinal);
        var active = mode.EndsWith("active", StringComparison.Ordinal);

        var local = Path.Combine(lab.WorkDirectory, "lftp-local.bin");
        string expected;
        string transfer;
        if (upload)
        {
            expected = LabFiles.WriteRandom(local, FileSize, seed: 7);
            transfer = $"put {local} -o upload/up.bin";
        }
        else
        {
            expected = LabFiles.WriteRandom(Path.Combine(ftp.RootDirectory, "big.bin"), FileSize, seed: 5);
            transfer = $"get big.bin -o {local}";
        }

        // One attempt, bounded: lftp otherwise retries for minutes.
        var script = string.Join("; ",
            "set net:max-retries 1", "set net:timeout 15", "set net:reconnect-interval-base 1", "set cmd:fail-exit yes",
            "set ftp:ssl-allow no", $"set ftp:passive-mode {(active ? "off" : "on")}",
            $"open ftp://{lab.OutsideHost}", transfer, "bye");
        var lftp = lab.TryRunIn(lab.InsideNs, ClientTimeout, "lftp", "-c", script);
        output.WriteLine($"$ lftp -c '{script}'\nexit {lftp.ExitCode}\n{lftp.Combined}");
        var verb = upload ? "OK UPLOAD" : "OK DOWNLOAD";
        var transferred = ftp.WaitForLog(verb, LogWait);
        output.WriteLine(ftp.Log());

        Assert.True(lftp.ExitCode == 0, $"lftp exit {lftp.ExitCode}: {lftp.Combined}");
        Assert.NotNull(transferred);
        Assert.Equal(expected, LabFiles.Sha256(upload ? Path.Combine(ftp.UploadDirectory, "up.bin") : local));
        AssertDataCommand(ftp, lab, active ? ["PORT", "EPRT"] : ["PASV", "EPSV"]);
        AssertClientsExternal(ftp, lab);
    }

    // Each rewritten PORT is 4 bytes longer than the original (10,0,0,2 -> 198,51,100,1), so the
    // control connection's sequence offset grows with every transfer: a gateway that does not keep
    // adjusting seq/ack for the rest of the connection breaks the second or third command.
    [AlgTheory("ftp")]
    [MemberData(nameof(AlgGatewayKinds.Kinds), MemberType = typeof(AlgGatewayKinds))]
    public void Lftp_three_active_downloads_on_one_control_connection(string kind)
    {
        using var scenario = Scenario.Start(AlgGatewayKinds.Create(kind), output);
        var lab = scenario.Lab;
        using var ftp = FtpServer.Start(lab);
        var names = new[] { "one.bin", "two.bin", "three.bin" };
        var expected = names.Select((n, i) => LabFiles.WriteRandom(Path.Combine(ftp.RootDirectory, n), 512 * 1024 + i, seed: 100 + i)).ToArray();

        var gets = names.Select(n => $"get {n} -o {Path.Combine(lab.WorkDirectory, "lftp-" + n)}");
        var script = string.Join("; ", [
            "set net:max-retries 1", "set net:timeout 15", "set cmd:fail-exit yes", "set ftp:ssl-allow no",
            "set ftp:passive-mode off", $"open ftp://{lab.OutsideHost}", .. gets, "bye"]);
        var lftp = lab.TryRunIn(lab.InsideNs, ClientTimeout, "lftp", "-c", script);
        output.WriteLine($"$ lftp -c '{script}'\nexit {lftp.ExitCode}\n{lftp.Combined}");
        output.WriteLine(ftp.Log());

        Assert.True(lftp.ExitCode == 0, $"lftp exit {lftp.ExitCode}: {lftp.Combined}");
        for (var i = 0; i < names.Length; i++)
        {
            Assert.Equal(expected[i], LabFiles.Sha256(Path.Combine(lab.WorkDirectory, "lftp-" + names[i])));
        }

        // One login (one control connection) and one PORT per transfer, all rewritten.
        Assert.Single(ftp.Log().Split('\n'), l => l.Contains("CONNECT: Client", StringComparison.Ordinal));
        Assert.Equal(names.Length, ftp.Commands().Count(c => c.StartsWith("PORT ", StringComparison.OrdinalIgnoreCase)));
        AssertDataCommand(ftp, lab, ["PORT"]);
        AssertClientsExternal(ftp, lab);
        if (kind.StartsWith("natd", StringComparison.Ordinal))
        {
            // natctl's source: the data connections (from the server's port 20) are listed as
            // related to the one control connection, which is marked as the FTP ALG's.
            var sessions = lab.RunIn(lab.GatewayNs, "curl", "-s", "http://127.0.0.1:9180/sessions").StdOut;
            output.WriteLine(sessions);
            using var doc = System.Text.Json.JsonDocument.Parse(sessions);
            var rows = doc.RootElement.EnumerateArray().ToList();
            var control = Assert.Single(rows, r => r.GetProperty("remotePort").GetInt32() == 21);
            Assert.Equal("ftp", control.GetProperty("alg").GetString());
            string controlText = $"ftp tcp {lab.InsideHost}:{control.GetProperty("insidePort").GetInt32()} -> {lab.OutsideHost}:21";
            var data = rows.Where(r => r.GetProperty("remotePort").GetInt32() == 20).ToList();
            Assert.Equal(names.Length, data.Count);
            Assert.All(data, r => Assert.Equal(controlText, r.GetProperty("relatedTo").GetString()));
        }
        scenario.Pass();
    }

    private void CurlDownload(Scenario scenario, int port, string mode)
    {
        var lab = scenario.Lab;
        using var ftp = FtpServer.Start(lab, port);
        var expected = LabFiles.WriteRandom(Path.Combine(ftp.RootDirectory, "big.bin"), FileSize, seed: port);
        var local = Path.Combine(lab.WorkDirectory, "curl-out.bin");

        string[] modeArgs = mode switch
        {
            "epsv" => [],
            "pasv" => ["--disable-epsv"],
            // "-": the address of the control connection's local end, i.e. the inside address.
            "eprt" => ["--ftp-port", "-"],
            "port" => ["--ftp-port", "-", "--disable-eprt"],
            _ => throw new ArgumentOutOfRangeException(nameof(mode), mode, null),
        };
        var url = $"ftp://{lab.OutsideHost}:{port.ToString(CultureInfo.InvariantCulture)}/big.bin";
        string[] args = ["-sS", "--max-time", "30", "--connect-timeout", "10", "-o", local, .. modeArgs, url];
        var curl = lab.TryRunIn(lab.InsideNs, ClientTimeout, "curl", args);
        output.WriteLine($"$ curl {string.Join(' ', args)}\nexit {curl.ExitCode}\n{curl.Combined}");
        var downloaded = ftp.WaitForLog("OK DOWNLOAD", LogWait);
        output.WriteLine(ftp.Log());

        Assert.True(curl.ExitCode == 0, $"curl exit {curl.ExitCode}: {curl.Combined}");
        Assert.NotNull(downloaded);
        Assert.Contains($"{FileSize.ToString(CultureInfo.InvariantCulture)} bytes", downloaded);
        Assert.Equal(expected, LabFiles.Sha256(local));
        AssertDataCommand(ftp, lab, [mode.ToUpperInvariant()]);
        AssertClientsExternal(ftp, lab);
    }

    /// <summary>
    /// The server received one of <paramref name="verbs"/> for the data connection; an active
    /// one must carry the external address (the ALG's rewrite), never the inside one.
    /// </summary>
    private static void AssertDataCommand(FtpServer ftp, LabTopology lab, string[] verbs)
    {
        var commands = ftp.Commands();
        var data = commands.Where(c => verbs.Any(v => c.StartsWith(v + " ", StringComparison.OrdinalIgnoreCase) || c.Equals(v, StringComparison.OrdinalIgnoreCase))).ToList();
        Assert.True(data.Count > 0, $"no {string.Join('/', verbs)} among the server's commands: {string.Join(" | ", commands)}");
        foreach (var command in data)
        {
            if (command.StartsWith("PORT ", StringComparison.OrdinalIgnoreCase))
            {
                Assert.StartsWith("PORT " + lab.GatewayOutside.ToString().Replace('.', ',') + ",", command, StringComparison.OrdinalIgnoreCase);
            }
            else if (command.StartsWith("EPRT ", StringComparison.OrdinalIgnoreCase))
            {
                // RFC 2428: EPRT |1|address|port|
                Assert.StartsWith($"EPRT |1|{lab.GatewayOutside}|", command, StringComparison.OrdinalIgnoreCase);
            }
        }

        Assert.DoesNotContain(commands, c => c.Contains(lab.InsideHost.ToString(), StringComparison.Ordinal)
            || c.Contains(lab.InsideHost.ToString().Replace('.', ','), StringComparison.Ordinal));
    }

    /// <summary>The server saw every connection (control and data) from the external address.</summary>
    private static void AssertClientsExternal(FtpServer ftp, LabTopology lab)
    {
        var clients = ftp.Clients();
        Assert.NotEmpty(clients);
        Assert.All(clients, c => Assert.Equal(lab.GatewayOutside.ToString(), c));
    }
}
