using System.Diagnostics;
using Natd.Control.Lab;
using Xunit.Abstractions;

namespace Natd.Tests.EndToEnd;

/// <summary>Something that plays the gateway between the lab's inside and outside hosts.</summary>
public interface IGatewayUnderTest : IDisposable
{
    /// <summary>"kernel" or "natd"; the theory row's label.</summary>
    string Name { get; }

    /// <summary>How the topology must be prepared for this gateway.</summary>
    GatewayMode Mode { get; }

    /// <summary>Starts the gateway on a topology built with <see cref="Mode"/>; returns when it forwards.</summary>
    void Start(LabTopology lab);

    /// <summary>Diagnostics for a failed test (the daemon's output, ...).</summary>
    string Describe();
}

/// <summary>The kernel as the gateway: nftables masquerade, set up by the topology itself.</summary>
public sealed class KernelNatGateway : IGatewayUnderTest
{
    public string Name => "kernel";

    public GatewayMode Mode => GatewayMode.KernelNat;

    public void Start(LabTopology lab)
    {
        if (lab.Options.Mode != GatewayMode.KernelNat)
        {
            throw new InvalidOperationException("KernelNatGateway needs a topology built with GatewayMode.KernelNat");
        }
    }

    public string Describe() => "kernel nftables masquerade";

    public void Dispose()
    {
    }
}

/// <summary>
/// The real daemon: <c>ip netns exec GW dotnet natd.dll run --config natd.yaml</c>, ready when it
/// prints a line starting "natd: ready" (or "natd: forwarding") within 20 s.
/// </summary>
public sealed class NatdGateway : IGatewayUnderTest
{
    public static readonly TimeSpan ReadyTimeout = TimeSpan.FromSeconds(20);

    private string? _configDirectory;
    private LabProcess? _daemon;
    private LabTopology? _lab;

    /// <summary>YAML appended to the lab config (forwards, rules, ...).</summary>
    public string ExtraConfig { get; init; } = "";

    /// <summary>Extra keys of the nat map, each with a leading ", " (e.g. ", filtering: endpoint-independent").</summary>
    public string NatConfig { get; init; } = "";

    /// <summary>interfaces.*.driver for both interfaces (auto, af_xdp, af_packet); null: natd's default (auto).</summary>
    public string? Driver { get; init; }

    /// <summary>Veth queues to make active (<see cref="LabTopology.SetQueues"/>); null: one per worker, as natd's AF_XDP wants.</summary>
    public int? Queues { get; init; }

    /// <summary>Extra keys of interfaces.outside, each with a leading ", " (e.g. ", mtu: 1300").</summary>
    public string OutsideInterfaceConfig { get; init; } = "";

    /// <summary>The outside link's MTU (<see cref="LabTopology.SetOutsideMtu"/>); null: the lab's 1500.</summary>
    public int? OutsideMtu { get; init; }

    /// <summary>Run with <c>--state</c> so a restart keeps sessions.</summary>
    public bool WithState { get; init; }

    /// <summary>nat.pool's items (e.g. "198.51.100.1, 198.51.100.11"); null: the lab's outside address.</summary>
    public string? Pool { get; init; }

    /// <summary>The state snapshot path (with <see cref="WithState"/>).</summary>
    public string? StatePath => _configDirectory is null ? null : Path.Combine(_configDirectory, "sessions.json");

    /// <summary>The running daemon's process (output, pid).</summary>
    public LabProcess? Process => _daemon;

    public string Name => "natd";

    public GatewayMode Mode => GatewayMode.Userspace;

    /// <summary>The config file written for the topology (after <see cref="Start"/>).</summary>
    public string? ConfigPath { get; private set; }

    /// <summary>dataplane.workers as <see cref="ExtraConfig"/> sets it, else natd's default (one per processor).</summary>
    public int Workers
    {
        get
        {
            var m = System.Text.RegularExpressions.Regex.Match(ExtraConfig, @"workers:\s*(\d+)");
            return m.Success ? int.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture) : Math.Max(1, Environment.ProcessorCount);
        }
    }

    /// <summary>The natd.yaml for the lab topology (README.md, "Two commands").</summary>
    public static string ConfigFor(LabTopology lab) => ConfigFor(lab, "");

    /// <summary>The lab's base configuration with <paramref name="nat"/> (e.g. ", filtering: endpoint-independent") appended inside the nat map, and <paramref name="pool"/> (YAML list items) as nat.pool when given.</summary>
    public static string ConfigFor(LabTopology lab, string nat, string? pool = null, string? driver = null, string outside = "") => $$"""
        interfaces:
          inside:  { name: {{lab.InsideIf}},  address: {{lab.GatewayInside}}/{{lab.InsidePrefixLength}}, networks: [10.0.0.0/24]{{(driver is null ? "" : ", driver: " + driver)}} }
          outside: { name: {{lab.OutsideIf}}, address: {{lab.GatewayOutside}}/{{lab.OutsidePrefixLength}}, gateway: 198.51.100.254{{(driver is null ? "" : ", driver: " + driver)}}{{outside}} }
        nat: { pool: [{{pool ?? lab.GatewayOutside.ToString()}}], ports: 1024-65535{{nat}} }
        control: { listen: 127.0.0.1:9180 }

        """;


    public void Start(LabTopology lab)
    {
        if (lab.Options.Mode != GatewayMode.Userspace)
        {
            throw new InvalidOperationException("NatdGateway needs a topology built with GatewayMode.Userspace");
        }

        var dll = Path.Combine(AppContext.BaseDirectory, "natd.dll");
        if (!File.Exists(dll))
        {
            throw new FileNotFoundException("natd.dll is not next to the test assembly (EndToEnd.Tests references control/natd)", dll);
        }

        _configDirectory = Directory.CreateTempSubdirectory("natd-e2e-").FullName;
        ConfigPath = Path.Combine(_configDirectory, "natd.yaml");
        File.WriteAllText(ConfigPath, ConfigFor(lab, NatConfig, Pool, Driver, OutsideInterfaceConfig) + ExtraConfig);
        // One active veth queue per worker: natd's AF_XDP binds a socket per queue, and a queue
        // without one would hand its frames to the gateway's kernel.
        lab.SetQueues(Queues ?? Math.Min(Workers, LabTopology.MaxQueues));
        if (OutsideMtu is { } mtu)
        {
            lab.SetOutsideMtu(mtu);
        }
        _lab = lab;
        Launch();
    }

    /// <summary>
    /// Stops natd with SIGTERM (a clean shutdown, which saves the state) and starts it again. The
    /// grace before SIGKILL is 30 s, generous on a loaded 2-core machine: a kill loses the snapshot
    /// the test is about.
    /// </summary>
    public void Restart()
    {
        _daemon!.Stop(TimeSpan.FromSeconds(30));
        _previousRuns += $"---- natd before the restart (exit code {(_daemon.HasExited ? _daemon.ExitCode.ToString(System.Globalization.CultureInfo.InvariantCulture) : "none")}) ----\n" + _daemon.Dump();
        _daemon.Dispose();
        Launch();
    }

    private string _previousRuns = "";

    /// <summary>Sends SIGHUP (reload).</summary>
    public void Reload() => Sh.Signal(_daemon!.Pid, Sh.SigHup);

    private void Launch()
    {
        var lab = _lab!;
        var dll = Path.Combine(AppContext.BaseDirectory, "natd.dll");
        // The SDK's test host exports the dotnet it runs under; fall back to PATH.
        var dotnet = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host ? host : "dotnet";
        string[] args = WithState ? [dll, "run", "--config", ConfigPath!, "--state", StatePath!] : [dll, "run", "--config", ConfigPath!];
        _daemon = lab.StartIn(lab.GatewayNs, dotnet, args);
        var ready = _daemon.WaitForLine(
            l => l.StartsWith("natd: ready", StringComparison.Ordinal) || l.StartsWith("natd: forwarding", StringComparison.Ordinal),
            ReadyTimeout);
        if (ready is null)
        {
            var why = _daemon.HasExited
                ? $"natd exited with code {_daemon.ExitCode} before printing \"natd: ready\""
                : $"natd did not print \"natd: ready\" within {ReadyTimeout.TotalSeconds:0} s";
            throw new LabException($"{why}\n{_daemon.Dump()}");
        }
        // The ready line names each interface's driver ("inside=veth0 (af_packet, ..."): a silent fallback would test the wrong path.
        if (Driver is { } driver && !ready.Contains($"({driver}, ", StringComparison.Ordinal))
        {
            throw new LabException($"natd was asked for driver {driver} but reports: {ready}");
        }
    }

    public string Describe() =>
        (ConfigPath is not null && File.Exists(ConfigPath) ? "natd.yaml:\n" + File.ReadAllText(ConfigPath) : "")
        + _previousRuns
        + (_daemon?.Dump() ?? "natd not started\n");

    public void Dispose()
    {
        // SIGTERM first so the daemon can report its shutdown; SIGKILL after 5 s.
        _daemon?.Stop(TimeSpan.FromSeconds(5));
        _daemon?.Dispose();
        if (_configDirectory is not null)
        {
            try
            {
                Directory.Delete(_configDirectory, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }
}

/// <summary>The gateway kinds the theories run against.</summary>
public static class GatewayKinds
{
    /// <summary>
    /// Every end-to-end case runs against natd and, as a baseline that proves the harness itself,
    /// against the kernel's nftables masquerade on the same topology.
    /// </summary>
    public static IReadOnlyList<string> Names => ["kernel", "natd", "natd-w1"];

    /// <summary>Theory rows: one per name in <see cref="Names"/>.</summary>
    public static TheoryData<string> Kinds => Rows(Names);

    /// <summary>
    /// <see cref="Kinds"/> and natd on AF_PACKET ("natd-afpacket": two workers, <c>driver:
    /// af_packet</c> on both interfaces), for the basic rows: AF_XDP is what <c>driver: auto</c>
    /// picks in the lab, so without this row AF_PACKET, natd's fallback, would run end to end nowhere.
    /// </summary>
    public static TheoryData<string> KindsWithAfPacket => Rows([.. Names, "natd-afpacket"]);

    /// <summary>One theory row per name.</summary>
    public static TheoryData<string> Rows(IEnumerable<string> names)
    {
        var data = new TheoryData<string>();
        foreach (var name in names)
        {
            data.Add(name);
        }
        return data;
    }

    /// <summary>Each kind with transmit checksum offload off (true) and on (false) on the hosts' veths.</summary>
    public static TheoryData<string, bool> KindsWithTxOffload
    {
        get
        {
            var data = new TheoryData<string, bool>();
            foreach (var name in (string[])[.. Names, "natd-afpacket"])
            {
                data.Add(name, true);
                data.Add(name, false);
            }

            return data;
        }
    }

    public static IGatewayUnderTest Create(string kind) => kind switch
    {
        "kernel" => new KernelNatGateway(),
        // Two pollers, one AF_XDP socket per veth queue (the lab's veths have two), like VPP's multi-worker rerun.
        "natd" => new NatdGateway { ExtraConfig = "dataplane: { workers: 2 }\n" },
        // One poller: AF_XDP where the kernel allows it (the lab's veths run one queue then).
        "natd-w1" => new NatdGateway { ExtraConfig = "dataplane: { workers: 1 }\n" },
        // Two pollers on AF_PACKET (TPACKET_V3 rings, PACKET_FANOUT across the workers).
        "natd-afpacket" => new NatdGateway { ExtraConfig = "dataplane: { workers: 2 }\n", Driver = "af_packet" },
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "expected kernel, natd, natd-w1 or natd-afpacket"),
    };
}

/// <summary>
/// One test's lab and gateway. Disposal always tears both down; if the test did not call
/// <see cref="Pass"/>, the gateway's output and the namespaces' state go to the test output first.
/// </summary>
public sealed class Scenario : IDisposable
{
    private readonly ITestOutputHelper _output;
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private bool _passed;

    private Scenario(LabTopology lab, IGatewayUnderTest gateway, ITestOutputHelper output)
    {
        Lab = lab;
        Gateway = gateway;
        _output = output;
    }

    public LabTopology Lab { get; }

    public IGatewayUnderTest Gateway { get; }

    public static Scenario Start(string kind, ITestOutputHelper output, bool disableTxChecksumOffload = false) =>
        Start(GatewayKinds.Create(kind), output, disableTxChecksumOffload);

    /// <summary>As <see cref="Start(string, ITestOutputHelper, bool)"/> with a gateway built by the caller (e.g. <see cref="Alg.AlgGatewayKinds.Create(string)"/>); the scenario owns it.</summary>
    public static Scenario Start(IGatewayUnderTest gateway, ITestOutputHelper output, bool disableTxChecksumOffload = false)
    {
        LabTopology lab;
        try
        {
            lab = LabTopology.Create(new LabOptions { Mode = gateway.Mode, DisableTxChecksumOffload = disableTxChecksumOffload });
        }
        catch
        {
            gateway.Dispose();
            throw;
        }

        var scenario = new Scenario(lab, gateway, output);
        try
        {
            output.WriteLine($"lab {lab.InsideNs} / {lab.GatewayNs} / {lab.OutsideNs}, gateway {gateway.Name}, tx offload {(disableTxChecksumOffload ? "off" : "on")}");
            gateway.Start(lab);
            return scenario;
        }
        catch
        {
            scenario.Dispose();
            throw;
        }
    }

    /// <summary>Marks the test body as completed, so disposal prints no diagnostics.</summary>
    public void Pass() => _passed = true;

    public void Dispose()
    {
        try
        {
            if (!_passed)
            {
                _output.WriteLine("---- gateway " + Gateway.Name + " ----");
                _output.WriteLine(Gateway.Describe());
                _output.WriteLine("---- lab state ----");
                _output.WriteLine(DescribeLab());
            }
        }
        finally
        {
            Gateway.Dispose();
            Lab.Dispose();
            _output.WriteLine($"scenario took {_clock.Elapsed.TotalSeconds:0.0} s");
        }
    }

    private string DescribeLab()
    {
        var text = new System.Text.StringBuilder();
        foreach (var ns in new[] { Lab.InsideNs, Lab.GatewayNs, Lab.OutsideNs })
        {
            foreach (var args in new[] { new[] { "ip", "-br", "addr" }, ["ip", "route"], ["ip", "neigh"] })
            {
                try
                {
                    var r = Lab.TryRunIn(ns, TimeSpan.FromSeconds(5), args[0], args[1..]);
                    text.Append(ns).Append(" $ ").Append(string.Join(' ', args)).Append('\n').Append(r.Combined);
                }
                catch (LabException e)
                {
                    text.Append(e.Message).Append('\n');
                }
            }
        }

        return text.ToString();
    }
}
