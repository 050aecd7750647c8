using System.Globalization;
using Natd.Control.Lab;
using Xunit.Abstractions;
using static Natd.Tests.EndToEnd.LabScripts;

namespace Natd.Tests.EndToEnd;

/// <summary>
/// The operator's view, end to end with the real daemon: a port forward balanced over two inside
/// servers, a restart that keeps a live TCP connection, and reloads (broken and good) that never
/// stop traffic.
/// </summary>
[Collection(EndToEndCollection.Name)]
[Trait("Category", "EndToEnd")]
public sealed class OperatorTests(ITestOutputHelper output)
{
    private const string ForwardConfig = """
        forwards:
          - { protocol: tcp, external: 198.51.100.1:8080, backends: [10.0.0.2:8000, 10.0.0.3:8000], balance: round-robin }

        """;

    /// <summary>A line-echo TCP server (outside) and a client (inside) that keeps one connection and sends a line per trigger file.</summary>
    private const string EchoServer = """
        import socket, sys
        s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(4); print("listening", flush=True)
        while True:
            c, a = s.accept(); print("accepted", a[0], flush=True)
            f = c.makefile("rwb", buffering=0)
            for line in f:
                f.write(b"echo " + line)
        """;

    private const string PersistentClient = """
        import socket, sys, os, time
        s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=20)
        f = s.makefile("rwb", buffering=0)
        for i, trigger in enumerate(sys.argv[3:]):
            deadline = time.time() + 60
            while not os.path.exists(trigger) and time.time() < deadline: time.sleep(0.05)
            f.write(b"line %d\n" % i)
            print(f.readline().decode().strip(), flush=True)
        print("done", flush=True)
        """;

    [RootFact]
    public void Port_forward_spreads_requests_over_two_backends_and_survives_one_stopping()
    {
        using var lab = LabTopology.Create(new LabOptions());
        using var natd = new NatdGateway { ExtraConfig = ForwardConfig };
        try
        {
            lab.AddInsideHostAddress("10.0.0.3/24");
            var a = StartBackend(lab, "10.0.0.2", "backend A");
            var b = StartBackend(lab, "10.0.0.3", "backend B");
            natd.Start(lab);
            var answers = new List<string>();
            for (int i = 0; i < 6; i++)
            {
                var r = lab.TryRunIn(lab.OutsideNs, TimeSpan.FromSeconds(15), "curl", "-sS", "--max-time", "8", "http://198.51.100.1:8080/who.txt");
                Assert.True(r.ExitCode == 0, r.Combined);
                answers.Add(r.StdOut.Trim());
            }
            output.WriteLine(string.Join(", ", answers));
            Assert.Contains("backend A", answers);
            Assert.Contains("backend B", answers);

            // One backend goes away: every request still succeeds (the refusal makes natd skip it).
            a.Dispose();
            for (int i = 0; i < 4; i++)
            {
                var r = lab.TryRunIn(lab.OutsideNs, TimeSpan.FromSeconds(15), "curl", "-sS", "--max-time", "8", "http://198.51.100.1:8080/who.txt");
                Assert.True(r.ExitCode == 0, r.Combined);
                Assert.Equal("backend B", r.StdOut.Trim());
            }
            GC.KeepAlive(b);
        }
        catch
        {
            output.WriteLine(natd.Describe());
            throw;
        }
    }

    [RootFact]
    public void Long_lived_tcp_connection_survives_a_natd_restart_and_reloads()
    {
        using var lab = LabTopology.Create(new LabOptions());
        using var natd = new NatdGateway { WithState = true };
        try
        {
            natd.Start(lab);
            string server = Script(lab, "echo_server.py", EchoServer);
            string client = Script(lab, "persistent_client.py", PersistentClient);
            using var srv = lab.StartIn(lab.OutsideNs, "python3", "-u", server, "198.51.100.2", "7100");
            Assert.NotNull(srv.WaitForLine(l => l == "listening", TimeSpan.FromSeconds(10)));
            string[] triggers = [.. Enumerable.Range(0, 4).Select(i => Path.Combine(lab.WorkDirectory, $"go{i}"))];
            File.WriteAllText(triggers[0], "");
            using var cli = lab.StartIn(lab.InsideNs, "python3", ["-u", client, "198.51.100.2", "7100", .. triggers]);
            Assert.NotNull(cli.WaitForLine(l => l == "echo line 0", TimeSpan.FromSeconds(10)));

            // Restart: natd saves its sessions on SIGTERM and restores them.
            natd.Restart();
            Assert.Contains(natd.Process!.StdOutLines, l => l.StartsWith("natd: restored 1 sessions", StringComparison.Ordinal));
            File.WriteAllText(triggers[1], "");
            Assert.NotNull(cli.WaitForLine(l => l == "echo line 1", TimeSpan.FromSeconds(15)));

            // A broken file: rejected with its line, the running configuration stays, traffic flows.
            File.WriteAllText(natd.ConfigPath!, File.ReadAllText(natd.ConfigPath!) + "timeouts: { udp: 600, bogus: 1 }\n");
            natd.Reload();
            Assert.NotNull(natd.Process!.WaitForLine(l => l.Contains("reload rejected", StringComparison.Ordinal) && l.Contains("bogus", StringComparison.Ordinal), TimeSpan.FromSeconds(10)));
            Assert.NotNull(natd.Process.WaitForLine(l => l.Contains("natd.yaml:", StringComparison.Ordinal), TimeSpan.FromSeconds(10)));
            Assert.Contains(natd.Process.StdErrLines, l => l.Contains("natd.yaml:", StringComparison.Ordinal));
            File.WriteAllText(triggers[2], "");
            Assert.NotNull(cli.WaitForLine(l => l == "echo line 2", TimeSpan.FromSeconds(10)));

            // A good file changes behaviour without dropping the established connection.
            File.WriteAllText(natd.ConfigPath!, NatdGateway.ConfigFor(lab) + "timeouts: { udp: 600 }\n");
            natd.Reload();
            Assert.NotNull(natd.Process.WaitForLine(l => l.Contains("configuration reloaded", StringComparison.Ordinal), TimeSpan.FromSeconds(10)));
            File.WriteAllText(triggers[3], "");
            Assert.NotNull(cli.WaitForLine(l => l == "echo line 3", TimeSpan.FromSeconds(10)));
            Assert.NotNull(cli.WaitForLine(l => l == "done", TimeSpan.FromSeconds(10)));
            // One connection throughout: the server accepted exactly once.
            Assert.Single(srv.StdOutLines, l => l.StartsWith("accepted", StringComparison.Ordinal));
        }
        catch
        {
            output.WriteLine(natd.Describe());
            throw;
        }
    }

    private static LabProcess StartBackend(LabTopology lab, string address, string text)
    {
        var root = Path.Combine(lab.WorkDirectory, "www-" + address);
        Directory.CreateDirectory(root);
        File.WriteAllText(Path.Combine(root, "who.txt"), text + "\n");
        var p = lab.StartIn(lab.InsideNs, "python3", "-u", "-m", "http.server", "8000", "--bind", address, "--directory", root);
        if (p.WaitForLine(l => l.StartsWith("Serving HTTP", StringComparison.Ordinal), TimeSpan.FromSeconds(10)) is null)
        {
            throw new LabException("backend did not start: " + p.Dump());
        }
        return p;
    }
}
