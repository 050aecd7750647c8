using System.Text.Json;
using Microsoft.Extensions.Logging.Abstractions;
using Natd.Control.Config;
using Natd.Control.Daemon;
using Natd.Ctl;
using Natd.Dataplane.Packets;
using Natd.Tests.Support;

namespace Natd.Tests.Ops;

/// <summary>natctl against a real daemon (actor tree, pollers, ConfigActor) over in-memory ports.</summary>
public sealed class LiveControlTests : IAsyncLifetime
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("natd-ops-");
    private readonly ConcurrentPort _inside = new("in", new MacAddress(0x020000000001));
    private readonly ConcurrentPort _outside = new("out", new MacAddress(0x020000000002));
    private NatDaemon? _daemon;
    private string _control = "";
    private string _path = "";

    public async Task InitializeAsync()
    {
        _path = Path.Combine(_dir.FullName, "natd.yaml");
        File.WriteAllText(_path, "timeouts: { udp: 300 }\n");
        var config = ConfigLoader.LoadFile(_path) with { ControlListen = "127.0.0.1:0" };
        _daemon = await NatDaemon.StartAsync(config, _inside, _outside, NullLoggerFactory.Instance, startControl: true, CancellationToken.None);
        _control = $"127.0.0.1:{_daemon.Control!.Address.Port}";
    }

    public async Task DisposeAsync()
    {
        if (_daemon is not null)
        {
            await _daemon.DisposeAsync();
        }
        _dir.Delete(recursive: true);
    }

    private async Task<(int Code, string Out, string Err)> Natctl(params string[] args)
    {
        var stdout = new StringWriter { NewLine = "\n" };
        var stderr = new StringWriter { NewLine = "\n" };
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        int code = await Cli.RunAsync([.. args, "--control", _control], stdout, stderr, _ => null, cts.Token);
        return (code, stdout.ToString(), stderr.ToString());
    }

    /// <summary>Sends UDP from inside hosts and waits (bounded) until natd lists that many sessions.</summary>
    private async Task OpenUdpSessions(int expected, params (string Inside, int Port)[] flows)
    {
        foreach (var (inside, port) in flows)
        {
            _inside.Inject(Frames.Udp(inside, port, "198.51.100.2", 7007));
        }
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (true)
        {
            var (_, output, _) = await Natctl("sessions", "--json");
            int n = JsonDocument.Parse(output).RootElement.GetArrayLength();
            if (n == expected)
            {
                return;
            }
            Assert.True(DateTime.UtcNow < deadline, $"natd lists {n} sessions, expected {expected}");
            await Task.Delay(50);
        }
    }

    [Fact]
    public async Task Timeouts_set_applies_live_and_a_reload_returns_to_the_file()
    {
        var (code, output, err) = await Natctl("timeouts", "set", "0", "0", "600");
        Assert.True(code == 0, err);
        Assert.Contains("udp               600 s", output, StringComparison.Ordinal);
        Assert.Equal(600, _daemon!.Engine.Settings.Timeouts.Udp);
        Assert.Equal(7440, _daemon.Engine.Settings.Timeouts.TcpEstablished);

        // The ConfigActor learnt the change: a second partial change keeps the first.
        (code, _, err) = await Natctl("timeouts", "set", "--icmp", "90");
        Assert.True(code == 0, err);
        Assert.Equal(new Natd.Dataplane.Sessions.Timeouts(7440, 240, 600, 90), _daemon.Engine.Settings.Timeouts);
        (code, output, _) = await Natctl("timeouts", "--json");
        Assert.Equal(0, code);
        Assert.Equal(90, JsonDocument.Parse(output).RootElement.GetProperty("icmp").GetInt32());

        (code, output, _) = await Natctl("reload");
        Assert.Equal(0, code);
        Assert.Equal("configuration reloaded\n", output);
        Assert.Equal(new Natd.Dataplane.Sessions.Timeouts(7440, 240, 300, 60), _daemon.Engine.Settings.Timeouts);
    }

    [Fact]
    public async Task A_bad_file_is_refused_by_reload_with_its_line()
    {
        File.WriteAllText(_path, "timeouts:\n  udp: 900\n  bogus: 1\n");
        var (code, output, err) = await Natctl("reload");
        Assert.Equal(2, code);
        Assert.Equal("", output);
        Assert.Contains("natd.yaml:3:3: timeouts.bogus: unknown key 'bogus'", err, StringComparison.Ordinal);
        Assert.Equal(300, _daemon!.Engine.Settings.Timeouts.Udp);
    }

    [Fact]
    public async Task A_deep_file_is_refused_by_natctl_reload_and_the_daemon_keeps_running()
    {
        File.WriteAllText(_path, "rules: " + new string('{', 20000) + new string('}', 20000) + "\n");
        var (code, output, err) = await Natctl("reload");
        Assert.Equal(2, code);
        Assert.Equal("", output);
        Assert.Contains("natd.yaml:1:71: rules", err, StringComparison.Ordinal);
        Assert.Contains("nested more than 64 deep", err, StringComparison.Ordinal);
        Assert.Equal(300, _daemon!.Engine.Settings.Timeouts.Udp);
        (code, _, err) = await Natctl("stats");
        Assert.True(code == 0, err);
    }

    [Fact]
    public async Task Delete_and_flush_remove_sessions_from_the_pollers()
    {
        await OpenUdpSessions(3, ("10.0.0.2", 40000), ("10.0.0.2", 40001), ("10.0.0.3", 40000));

        var (code, output, _) = await Natctl("sessions", "--inside", "10.0.0.2");
        Assert.Equal(0, code);
        Assert.Equal(4, output.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length); // title, header, two sessions

        (code, output, _) = await Natctl("delete", "udp", "10.0.0.2:40001", "198.51.100.2:7007");
        Assert.Equal(0, code);
        Assert.Equal("1 session deleted\n", output);
        (code, output, _) = await Natctl("delete", "udp", "10.0.0.2:40001");
        Assert.Equal("0 sessions deleted\n", output);

        (code, output, _) = await Natctl("flush");
        Assert.Equal(0, code);
        Assert.Equal("2 sessions deleted\n", output);
        (_, output, _) = await Natctl("sessions", "--json");
        Assert.Equal(0, JsonDocument.Parse(output).RootElement.GetArrayLength());
    }

    [Fact]
    public async Task Config_check_runs_without_a_daemon_and_names_the_line()
    {
        string good = Path.Combine(Repo.Packaging, "natd.yaml");
        var (code, output, err) = await Natctl("config", "check", good);
        Assert.True(code == 0, err);
        Assert.Equal($"{good}: ok\n", output);

        string bad = Path.Combine(_dir.FullName, "bad.yaml");
        File.WriteAllText(bad, "forwards:\n  - { protocol: tcp, external: 203.0.113.1:80, backends: [10.0.0.2] }\n");
        (code, output, err) = await Natctl("config", "check", bad);
        Assert.Equal(2, code);
        Assert.Contains($"{bad}:2:32: forwards[0].external: 203.0.113.1 is not an external address of natd", err, StringComparison.Ordinal);
    }
}
