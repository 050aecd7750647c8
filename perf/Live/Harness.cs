using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using Natd.Control.Lab;

namespace Natd.Live;

/// <summary>What plays the gateway in one row.</summary>
public enum GatewayKind
{
    /// <summary>Kernel IPv4 forwarding, no netfilter rules at all.</summary>
    KernelForward,

    /// <summary>Kernel forwarding with an nftables SNAT over the pool.</summary>
    Nftables,

    /// <summary>natd run, with a driver and a worker count.</summary>
    Natd,
}

/// <summary>One gateway configuration measured under both loads.</summary>
/// <param name="Label">Row label, e.g. "natd af_xdp".</param>
/// <param name="Kind">Kernel or natd.</param>
/// <param name="Driver">natd's driver key (af_xdp, af_packet), null for the kernel.</param>
/// <param name="Workers">dataplane.workers for natd.</param>
/// <param name="Scaling">True for the extra rows of the scaling table.</param>
/// <param name="Natd">natd.dll of another build (the base of a same-run comparison, <c>perf/live/run --base</c>); null for the build under test.</param>
/// <param name="XdpFillRing">dataplane.xdp-fill-ring written into natd's config (<c>perf/live/run --xdp-fill-ring</c>); null: natd's default.</param>
public sealed record Variant(string Label, GatewayKind Kind, string? Driver, int Workers, bool Scaling, string? Natd = null, int? XdpFillRing = null);

/// <summary>One measurement window.</summary>
/// <param name="Delivered">Frames per second that reached the outside host.</param>
/// <param name="Offered">Frames per second the generator pushed into the inside veth (accepted + dropped by it).</param>
/// <param name="Notes">What explains the losses (natd or conntrack counters).</param>
/// <param name="CpuPerFrame">natd's CPU time (all threads, user and system) per delivered frame in nanoseconds; 0 for the kernel rows.</param>
public sealed record Sample(double Delivered, double Offered, string Notes, double CpuPerFrame = 0);

/// <summary>
/// The live harness: one lab topology, four gateways side by side (kernel forwarding, nftables
/// SNAT, natd af_packet, natd af_xdp) plus natd scaling rows, each under the established and
/// the setup load, interleaved run by run so background load hits every variant alike.
/// </summary>
public sealed partial class Harness
{
    private const string Pool = "198.51.100.10-198.51.100.250";
    private const string ControlListen = "127.0.0.1:9180";
    private const double WarmupSeconds = 1.0;
    private const double TailSeconds = 0.3;

    private readonly string _dotnet;
    private readonly string _natdDll;
    private readonly string _liveDll;
    private readonly double _seconds;
    private readonly int _runs;
    private readonly int _maxWorkers;
    private readonly string? _driver;
    private readonly bool _pin;
    private readonly TextWriter _out;
    private readonly string? _baseNatd;
    private readonly string _baseLabel;
    private readonly int? _xdpFillRing;
    private readonly Dictionary<(Variant, Load), List<Sample>> _samples = [];
    private readonly Dictionary<Variant, string> _failures = [];
    private readonly Dictionary<Variant, string> _driverNotes = [];
    private long _setupBlock;
    private LabTopology? _lab;
    private string _gwMac = "";
    private volatile bool _cancelled;

    /// <summary>
    /// Creates a harness; nothing runs until <see cref="Run"/>. With <paramref name="baseNatd"/> (the
    /// natd.dll of another build, named <paramref name="baseLabel"/>) each natd row (one worker and the
    /// scaling rows alike) gets a twin run on that build, measured next to it in every run (which goes
    /// first alternates run by run), and the report adds the per-run ratios of the two. With
    /// <paramref name="xdpFillRing"/> every af_xdp row of this build gets a twin with that
    /// dataplane.xdp-fill-ring, measured right after it in every run.
    /// </summary>
    public Harness(string dotnet, string natdDll, string liveDll, double seconds, int runs, int maxWorkers, bool pin, TextWriter output,
        string? baseNatd = null, string? baseLabel = null, string? driver = null, int? xdpFillRing = null)
    {
        _xdpFillRing = xdpFillRing;
        _driver = driver;
        _baseNatd = baseNatd;
        _baseLabel = baseLabel ?? "base";
        _pin = pin;
        _dotnet = dotnet;
        _natdDll = natdDll;
        _liveDll = liveDll;
        _seconds = seconds;
        _runs = runs;
        _maxWorkers = maxWorkers;
        _out = output;
    }

    /// <summary>
    /// Rows in order: the four main variants, then natd with 2..N workers per driver; with a driver
    /// filter (<c>--driver</c>) only that driver's natd rows (and their base twins), no kernel rows.
    /// </summary>
    public List<Variant> Variants()
    {
        if (_driver is not null)
        {
            return AllVariants().FindAll(v => v.Driver == _driver);
        }
        return AllVariants();
    }

    private List<Variant> AllVariants()
    {
        var list = new List<Variant>
        {
            new("kernel forward", GatewayKind.KernelForward, null, 0, false),
            new("nftables snat", GatewayKind.Nftables, null, 0, false),
            new("natd af_packet", GatewayKind.Natd, "af_packet", 1, false),
        };
        if (_baseNatd is not null)
        {
            list.Add(new($"natd af_packet ({_baseLabel})", GatewayKind.Natd, "af_packet", 1, false, _baseNatd));
        }
        list.Add(new("natd af_xdp", GatewayKind.Natd, "af_xdp", 1, false));
        if (_baseNatd is not null)
        {
            list.Add(new($"natd af_xdp ({_baseLabel})", GatewayKind.Natd, "af_xdp", 1, false, _baseNatd));
        }
        AddFillRingTwin(list, "natd af_xdp", 1, false);
        for (int w = 2; w <= _maxWorkers; w++)
        {
            list.Add(new($"natd af_packet workers={w}", GatewayKind.Natd, "af_packet", w, true));
            AddBaseTwin(list, $"natd af_packet workers={w}", "af_packet", w);
            list.Add(new($"natd af_xdp workers={w}", GatewayKind.Natd, "af_xdp", w, true));
            AddBaseTwin(list, $"natd af_xdp workers={w}", "af_xdp", w);
            AddFillRingTwin(list, $"natd af_xdp workers={w}", w, true);
        }
        return list;
    }

    /// <summary>A scaling row's twin run by the base build (<c>--base</c>), so the same-run comparison covers several workers too.</summary>
    private void AddBaseTwin(List<Variant> list, string label, string driver, int workers)
    {
        if (_baseNatd is not null)
        {
            list.Add(new($"{label} ({_baseLabel})", GatewayKind.Natd, driver, workers, true, _baseNatd));
        }
    }

    private void AddFillRingTwin(List<Variant> list, string label, int workers, bool scaling)
    {
        if (_xdpFillRing is int fill)
        {
            list.Add(new(string.Create(CultureInfo.InvariantCulture, $"{label} fill={fill}"), GatewayKind.Natd, "af_xdp", workers, scaling, XdpFillRing: fill));
        }
    }

    /// <summary>Asks the run to stop at the next measurement boundary (SIGINT/SIGTERM).</summary>
    public void Cancel() => _cancelled = true;

    /// <summary>Builds the lab, measures everything, prints the report; returns the report text.</summary>
    public string Run()
    {
        var started = Stopwatch.StartNew();
        string load0 = LoadAverage();
        _lab = LabTopology.Create(new LabOptions { Prefix = "natdlive", Mode = GatewayMode.Userspace });
        try
        {
            PrepareTopology();
            var variants = Variants();
            for (int run = 0; run < _runs && !_cancelled; run++)
            {
                foreach (var v in OrderOf(variants, run))
                {
                    if (_cancelled)
                    {
                        break;
                    }
                    if (_failures.ContainsKey(v))
                    {
                        continue;
                    }
                    MeasureVariant(v, run);
                }
            }
            if (_cancelled)
            {
                throw new OperationCanceledException("interrupted");
            }
            string report = Report(variants, load0, LoadAverage(), started.Elapsed);
            _out.Write(report);
            return report;
        }
        finally
        {
            _lab.Dispose();
        }
    }

    /// <summary>
    /// The run's order: the variants as listed, except that a twin (the base build's, or the
    /// xdp-fill-ring one) goes before the row it pairs with in every other run, so that neither
    /// always measures first (after the other's natd stopped, with the caches and the host in
    /// whatever state that left).
    /// </summary>
    public static List<Variant> OrderOf(List<Variant> variants, int run)
    {
        var order = new List<Variant>(variants);
        if (run % 2 == 1)
        {
            for (int i = 0; i + 1 < order.Count; i++)
            {
                if (IsTwin(order[i], order[i + 1]))
                {
                    (order[i], order[i + 1]) = (order[i + 1], order[i]);
                    i++;
                }
            }
        }
        return order;
    }

    private static bool IsTwin(Variant a, Variant b)
        => a.Natd is null && a.XdpFillRing is null && (b.Natd is not null || b.XdpFillRing is not null)
            && a.Kind == b.Kind && a.Driver == b.Driver && a.Workers == b.Workers;

    private void PrepareTopology()
    {
        var lab = _lab!;
        _gwMac = ReadMac(lab.GatewayNs, lab.InsideIf);
        // The outside host drops everything IPv4 before conntrack and the UDP layer: it counts what
        // arrived (rx_packets) and never sends ICMP port unreachables back into the measurement.
        Sh.RunIn(lab.OutsideNs, "nft",
            "add table ip livesink; " +
            "add chain ip livesink pre { type filter hook prerouting priority raw; policy drop; }");
        Log($"lab: inside {lab.InsideNs}, gateway {lab.GatewayNs} (natin {_gwMac}), outside {lab.OutsideNs}; " +
            $"generator sources 10.1.0.0/16 -> {Generator.Destination}:{Generator.DestinationPort}, 60-byte frames (64 on the wire)");
    }

    private static string ReadMac(string ns, string dev)
    {
        string text = Sh.Run("ip", "-n", ns, "link", "show", dev).StdOut;
        var m = LinkEther().Match(text);
        if (!m.Success)
        {
            throw new LabException($"no link/ether address for {dev} in {ns}: {text}");
        }
        return m.Groups[1].Value;
    }

    private void MeasureVariant(Variant v, int run)
    {
        var lab = _lab!;
        LabProcess? natd = null;
        try
        {
            // One active veth queue per natd worker (AF_XDP binds a socket per queue); the kernel rows keep one.
            lab.SetQueues(v.Kind == GatewayKind.Natd ? Math.Min(v.Workers, LabTopology.MaxQueues) : 1);
            switch (v.Kind)
            {
                case GatewayKind.KernelForward:
                case GatewayKind.Nftables:
                    KernelOn(v.Kind == GatewayKind.Nftables);
                    break;
                case GatewayKind.Natd:
                    natd = StartNatd(v);
                    if (natd is null)
                    {
                        return;
                    }
                    break;
            }
            foreach (var load in new[] { Load.Established, Load.Setup })
            {
                if (_cancelled)
                {
                    return;
                }
                var s = Measure(v, load, natd);
                if (!_samples.TryGetValue((v, load), out var list))
                {
                    _samples[(v, load)] = list = [];
                }
                list.Add(s);
                Log(string.Create(CultureInfo.InvariantCulture,
                    $"run {run + 1}/{_runs} {load.ToString().ToLowerInvariant(),-11} {v.Label,-26} delivered {Rate(s.Delivered),10}/s offered {Rate(s.Offered),10}/s  {s.Notes}"));
            }
        }
        catch (LabException e)
        {
            _failures[v] = FirstLine(e.Message);
            Log($"{v.Label}: {e.Message}");
        }
        finally
        {
            if (natd is not null)
            {
                natd.Stop(TimeSpan.FromSeconds(5));
                natd.Dispose();
            }
            if (v.Kind != GatewayKind.Natd)
            {
                KernelOff();
            }
        }
    }

    private void KernelOn(bool nat)
    {
        var lab = _lab!;
        string gw = lab.GatewayNs;
        Sh.Run("ip", "-n", gw, "addr", "add", "10.0.0.1/24", "dev", lab.InsideIf);
        Sh.Run("ip", "-n", gw, "addr", "add", "198.51.100.1/24", "dev", lab.OutsideIf);
        // The generator's sources (10.1.0.0/16) live behind the inside host: the route is what a
        // real gateway has (and keeps reverse-path checks happy).
        Sh.Run("ip", "-n", gw, "route", "add", "10.1.0.0/16", "via", "10.0.0.2", "dev", lab.InsideIf);
        Sh.RunIn(gw, "sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0", $"net.ipv4.conf.{lab.InsideIf}.rp_filter=0", "net.ipv4.ip_forward=1");
        if (nat)
        {
            Sh.RunIn(gw, "nft",
                "add table ip livenat; " +
                "add chain ip livenat post { type nat hook postrouting priority srcnat; policy accept; }; " +
                $"add rule ip livenat post oifname \"{lab.OutsideIf}\" snat to {Pool} persistent");
        }
    }

    private void KernelOff()
    {
        var lab = _lab!;
        string gw = lab.GatewayNs;
        Sh.TryRun(Sh.DefaultTimeout, "ip", Sh.InNamespace(gw, "nft", ["delete table ip livenat"]));
        Sh.TryRun(Sh.DefaultTimeout, "ip", Sh.InNamespace(gw, "sysctl", ["-qw", "net.ipv4.ip_forward=0"]));
        Sh.TryRun(Sh.DefaultTimeout, "ip", "-n", gw, "addr", "flush", "dev", lab.InsideIf);
        Sh.TryRun(Sh.DefaultTimeout, "ip", "-n", gw, "addr", "flush", "dev", lab.OutsideIf);
        Sh.TryRun(Sh.DefaultTimeout, "ip", "-n", gw, "neigh", "flush", "all");
    }

    /// <summary>natd.yaml for a natd row: the lab's addresses, 10.1.0.0/16 inside, the 241-address pool.</summary>
    public static string NatdConfig(string driver, int workers, int? xdpFillRing = null)
    {
        string fill = xdpFillRing is int f ? string.Create(CultureInfo.InvariantCulture, $"\n  xdp-fill-ring: {f}") : "";
        var pool = new StringBuilder();
        for (int i = 10; i <= 250; i++)
        {
            pool.Append(i == 10 ? "" : ", ").Append("198.51.100.").Append(i.ToString(CultureInfo.InvariantCulture));
        }
        return $$"""
            interfaces:
              inside:
                name: natin
                address: 10.0.0.1/24
                networks: [10.0.0.0/24, 10.1.0.0/16]
                gateway: 10.0.0.2
                driver: {{driver}}
              outside:
                name: natout
                address: 198.51.100.1/24
                gateway: 198.51.100.254
                driver: {{driver}}
            nat:
              pool: [{{pool}}]
              ports: 1024-65535
            timeouts:
              udp: 120
            limits:
              sessions: 4194304
            dataplane:
              workers: {{workers}}{{fill}}
              verify-checksums: true
            control:
              listen: {{ControlListen}}
            log:
              level: warning

            """;
    }

    private LabProcess? StartNatd(Variant v)
    {
        var lab = _lab!;
        string path = Path.Combine(lab.WorkDirectory, $"natd-{v.Driver}-w{v.Workers}-f{v.XdpFillRing ?? 0}.yaml");
        File.WriteAllText(path, NatdConfig(v.Driver!, v.Workers, v.XdpFillRing));
        // --pin: one poller gets the last core to itself, the generator (and the kernel's receive
        // work it triggers) the first; more pollers than that share all cores.
        string natdDll = v.Natd ?? _natdDll;
        var natd = _pin && v.Workers == 1
            ? lab.StartIn(lab.GatewayNs, "taskset", "-c", LastCpu, _dotnet, natdDll, "run", "--config", path)
            : lab.StartIn(lab.GatewayNs, _dotnet, natdDll, "run", "--config", path);
        string? ready = natd.WaitForLine(l => l.StartsWith("natd: ready", StringComparison.Ordinal), TimeSpan.FromSeconds(30));
        if (ready is null)
        {
            natd.Stop(TimeSpan.FromSeconds(5));
            string why = natd.HasExited ? $"natd exited ({natd.ExitCode}) before ready" : "natd not ready within 30 s";
            string detail = natd.StdErrLines.Concat(natd.StdOutLines).FirstOrDefault(l => l.Contains("natd:", StringComparison.Ordinal)) ?? "";
            _failures[v] = $"not run: {why}: {detail}".TrimEnd(' ', ':');
            Log($"{v.Label}: {_failures[v]}\n{natd.Dump()}");
            natd.Dispose();
            return null;
        }
        string inDrv = InsideDriver().Match(ready) is { Success: true } mi ? mi.Groups[1].Value : "";
        string outDrv = OutsideDriver().Match(ready) is { Success: true } mo ? mo.Groups[1].Value : "";
        string note = inDrv.Length == 0 && outDrv.Length == 0
            ? (v.Driver == "af_xdp" ? "af_xdp not wired: ran af_packet" : "driver not reported (af_packet)")
            : $"natd reported inside={inDrv} outside={outDrv}" + (inDrv != v.Driver || outDrv != v.Driver ? $" (asked {v.Driver})" : "");
        int pollers = CountPollers(natd.Pid);
        if (pollers > 0)
        {
            note += $", {pollers} poller thread(s) for workers={v.Workers}";
        }
        _driverNotes.TryAdd(v, note);
        return natd;
    }

    private static int CountPollers(int pid)
    {
        int n = 0;
        try
        {
            foreach (var task in Directory.EnumerateDirectories($"/proc/{pid.ToString(CultureInfo.InvariantCulture)}/task"))
            {
                string comm = File.Exists(Path.Combine(task, "comm")) ? File.ReadAllText(Path.Combine(task, "comm")) : "";
                if (comm.Contains("poller", StringComparison.OrdinalIgnoreCase))
                {
                    n++;
                }
            }
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
        return n;
    }

    private Sample Measure(Variant v, Load load, LabProcess? natd)
    {
        var lab = _lab!;
        long start = 0;
        if (load == Load.Setup)
        {
            // A fresh block of 2^27 tuples per measurement: no tuple repeats in the whole invocation,
            // so neither conntrack nor natd ever finds an old entry.
            start = ++_setupBlock << 27;
        }
        string seconds = (WarmupSeconds + _seconds + TailSeconds).ToString("F2", CultureInfo.InvariantCulture);
        string[] prefix = _pin ? ["-c", "0", _dotnet] : [];
        using var gen = lab.StartIn(lab.InsideNs, _pin ? "taskset" : _dotnet, [.. prefix, _liveDll, "gen", "--if", LabTopology.HostIf, "--dst-mac", _gwMac,
            "--load", load == Load.Setup ? "setup" : "established", "--seconds", seconds,
            "--start", start.ToString(CultureInfo.InvariantCulture)]);
        if (gen.WaitForLine(l => l.StartsWith("gen: sending", StringComparison.Ordinal), TimeSpan.FromSeconds(30)) is null)
        {
            throw new LabException($"generator did not start:\n{gen.Dump()}");
        }
        Thread.Sleep(TimeSpan.FromSeconds(WarmupSeconds));

        var a = Snapshot(v, natd);
        double cpu0 = CpuSeconds(natd); // after a's scrape and before b's: the scrapes' own work is not counted
        long t0 = Stopwatch.GetTimestamp();
        Thread.Sleep(TimeSpan.FromSeconds(_seconds));
        long t1 = Stopwatch.GetTimestamp();
        double cpu1 = CpuSeconds(natd);
        var b = Snapshot(v, natd);
        double dt = (t1 - t0) / (double)Stopwatch.Frequency;

        if (!gen.WaitForExit(TimeSpan.FromSeconds(_seconds + 20)))
        {
            throw new LabException($"generator did not finish:\n{gen.Dump()}");
        }
        string genLine = gen.StdOutLines.FirstOrDefault(l => l.StartsWith("gen: sent=", StringComparison.Ordinal))
            ?? throw new LabException($"generator printed no result:\n{gen.Dump()}");
        long ringFull = GenRingFull().Match(genLine) is { Success: true } m ? long.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture) : 0;

        var inside = b.Inside - a.Inside;
        var outside = b.Outside - a.Outside;
        var natin = b.Natin - a.Natin;
        double offered = (inside.TxPackets + inside.TxDropped) / dt;
        double delivered = outside.RxPackets / dt;
        var notes = new StringBuilder();
        double cpuPerFrame = 0;
        if (inside.TxDropped > 0)
        {
            notes.Append(string.Create(CultureInfo.InvariantCulture, $"veth drop into gw {Rate(inside.TxDropped / dt)}/s; "));
        }
        if (v.Kind == GatewayKind.Natd)
        {
            cpuPerFrame = outside.RxPackets > 0 ? (cpu1 - cpu0) * 1e9 / outside.RxPackets : 0;
            notes.Append(string.Create(CultureInfo.InvariantCulture,
                $"natd cpu {(cpu1 - cpu0) / dt * 100:0}% of a core, {cpuPerFrame:0} ns/frame; "));
            double natdRx = Delta(a.Metrics, b.Metrics, "natd_frames_received_total");
            double created = Delta(a.Metrics, b.Metrics, "natd_sessions_created_total");
            notes.Append(string.Create(CultureInfo.InvariantCulture,
                $"natd rx {Rate(natdRx / dt)}/s (not read by natd {Rate(Math.Max(0, natin.RxPackets - natdRx) / dt)}/s)"));
            if (load == Load.Setup)
            {
                notes.Append(string.Create(CultureInfo.InvariantCulture, $", created {Rate(created / dt)}/s"));
            }
            // The receive ring's own drops (PACKET_STATISTICS, XDP_STATISTICS): the part of "not read" that natd was too late for.
            double ringDrops = 0;
            foreach (var (key, value) in b.Metrics)
            {
                if (key.StartsWith("natd_port_rx_dropped_total{", StringComparison.Ordinal))
                {
                    ringDrops += value - a.Metrics.GetValueOrDefault(key);
                }
            }
            notes.Append(string.Create(CultureInfo.InvariantCulture, $", ring drops {Rate(ringDrops / dt)}/s"));
            // Frames a poll brought in (both ports), over the batches that carried any: a poller's
            // fixed costs a batch (the mailbox turn, the transmit kick) are shared by this many frames.
            double batches = Delta(a.Metrics, b.Metrics, "natd_poller_batch_received_frames_count");
            if (batches > 0)
            {
                notes.Append(string.Create(CultureInfo.InvariantCulture,
                    $", {Delta(a.Metrics, b.Metrics, "natd_poller_batch_received_frames_sum") / batches:0.0} frames a batch"));
            }
            // Frames a transmit kick (a sendto(2)) carried, over both interfaces.
            double kicks = 0;
            foreach (var (key, value) in b.Metrics)
            {
                if (key.StartsWith("natd_port_tx_kicks_total{", StringComparison.Ordinal))
                {
                    kicks += value - a.Metrics.GetValueOrDefault(key);
                }
            }
            if (kicks > 0)
            {
                notes.Append(string.Create(CultureInfo.InvariantCulture,
                    $", {Delta(a.Metrics, b.Metrics, "natd_frames_transmitted_total") / kicks:0.0} frames a kick"));
            }
            // Collections during the window (builds that export prometheus-net's process metrics):
            // a collection pauses the poller, and a paused poller is what overflows a receive ring.
            string gcKey = "dotnet_collection_count_total{generation=\"0\"}";
            if (b.Metrics.ContainsKey(gcKey))
            {
                notes.Append(string.Create(CultureInfo.InvariantCulture,
                    $", gc gen0 {Delta(a.Metrics, b.Metrics, gcKey):0} gen2 {Delta(a.Metrics, b.Metrics, "dotnet_collection_count_total{generation=\"2\"}"):0}"));
            }
            foreach (var (key, value) in b.Metrics)
            {
                if (key.StartsWith("natd_drops_total{", StringComparison.Ordinal))
                {
                    double d = value - a.Metrics.GetValueOrDefault(key);
                    if (d > 0)
                    {
                        notes.Append(string.Create(CultureInfo.InvariantCulture,
                            $", drop {DropLabel().Match(key).Groups[1].Value} {Rate(d / dt)}/s"));
                    }
                }
            }
        }
        else if (v.Kind == GatewayKind.Nftables)
        {
            long early = b.Conntrack.GetValueOrDefault("early_drop") - a.Conntrack.GetValueOrDefault("early_drop");
            long drop = b.Conntrack.GetValueOrDefault("drop") - a.Conntrack.GetValueOrDefault("drop");
            long fail = b.Conntrack.GetValueOrDefault("insert_failed") - a.Conntrack.GetValueOrDefault("insert_failed");
            notes.Append(string.Create(CultureInfo.InvariantCulture,
                $"conntrack entries {b.Conntrack.GetValueOrDefault("entries")}, early_drop {Rate(early / dt)}/s, drop {Rate(drop / dt)}/s, insert_failed {fail}"));
        }
        if (ringFull > 0)
        {
            notes.Append(string.Create(CultureInfo.InvariantCulture, $"; gen ring full x{ringFull}"));
        }
        return new Sample(delivered, offered, notes.ToString().TrimEnd(' ', ';'), cpuPerFrame);
    }

    /// <summary>natd's CPU time so far, all threads, user and system (/proc/PID/stat, clock ticks), in seconds; 0 without natd.</summary>
    private static double CpuSeconds(LabProcess? natd)
    {
        if (natd is null)
        {
            return 0;
        }
        try
        {
            string stat = File.ReadAllText($"/proc/{natd.Pid.ToString(CultureInfo.InvariantCulture)}/stat");
            // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
            string[] f = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            long ticks = long.Parse(f[11], CultureInfo.InvariantCulture) + long.Parse(f[12], CultureInfo.InvariantCulture);
            return ticks / (double)ClockTicksPerSecond;
        }
        catch (IOException)
        {
            return 0;
        }
    }

    /// <summary>USER_HZ: 100 on every Linux architecture natd runs on (sysconf(_SC_CLK_TCK)).</summary>
    private const int ClockTicksPerSecond = 100;

    private sealed record Snap(IfCounters Inside, IfCounters Natin, IfCounters Outside, Dictionary<string, double> Metrics, Dictionary<string, long> Conntrack);

    private Snap Snapshot(Variant v, LabProcess? natd)
    {
        var lab = _lab!;
        var inside = Counters.Read(lab.InsideNs, LabTopology.HostIf);
        var natin = Counters.Read(lab.GatewayNs, lab.InsideIf);
        var outside = Counters.Read(lab.OutsideNs, LabTopology.HostIf);
        var metrics = natd is null ? [] : Metrics(lab.GatewayNs);
        var ct = v.Kind == GatewayKind.Nftables ? Counters.Conntrack(lab.GatewayNs) : [];
        return new Snap(inside, natin, outside, metrics, ct);
    }

    private static Dictionary<string, double> Metrics(string ns)
    {
        var result = new Dictionary<string, double>(StringComparer.Ordinal);
        var r = Sh.TryRun(TimeSpan.FromSeconds(10), "ip", Sh.InNamespace(ns, "curl", ["-s", "--max-time", "5", $"http://{ControlListen}/metrics"]));
        foreach (var line in r.StdOut.Split('\n'))
        {
            if (line.Length == 0 || line[0] == '#')
            {
                continue;
            }
            int sp = line.LastIndexOf(' ');
            if (sp > 0 && double.TryParse(line[(sp + 1)..], NumberStyles.Float, CultureInfo.InvariantCulture, out double x))
            {
                result[line[..sp]] = x;
            }
        }
        return result;
    }

    private static double Delta(Dictionary<string, double> a, Dictionary<string, double> b, string key) =>
        b.GetValueOrDefault(key) - a.GetValueOrDefault(key);

    private string Report(List<Variant> variants, string load0, string load1, TimeSpan elapsed)
    {
        var sb = new StringBuilder();
        string ctMax = Counters.ReadFileIn(_lab!.GatewayNs, "/proc/sys/net/netfilter/nf_conntrack_max")?.Trim() ?? "?";
        sb.AppendLine();
        sb.AppendLine(string.Create(CultureInfo.InvariantCulture,
            $"natd live harness: {Environment.ProcessorCount} cores{(_pin ? " (--pin: generator on cpu 0, natd with 1 poller on cpu " + LastCpu + ")" : "")}, {_runs} run(s) x {_seconds:0.#} s per measurement (median shown), " +
            $"kernel {Environment.OSVersion.Version}, load average {load0} before / {load1} after, {elapsed.TotalMinutes:0.0} min"));
        sb.AppendLine($"generator: AF_PACKET TX ring + qdisc bypass on the inside host, 64-byte UDP frames, as fast as it can; " +
            $"nftables: snat to {Pool} persistent (no filter chain); natd: verify-checksums on, 241-address pool; nf_conntrack_max {ctMax}");
        sb.AppendLine();
        sb.AppendLine(string.Create(CultureInfo.InvariantCulture, $"{"load",-12} {"variant",-52} {"delivered/s",12} {"min-max of runs",20} {"offered/s",12} {"vs nftables",12}   notes"));
        foreach (var load in new[] { Load.Established, Load.Setup })
        {
            double? nft = NftablesOf(variants, load);
            foreach (var v in variants.Where(x => !x.Scaling))
            {
                sb.AppendLine(Row(v, load, nft));
            }
        }
        sb.AppendLine("(setup: every frame is a new flow, so delivered/s = new sessions/s)");
        sb.AppendLine();
        sb.AppendLine("scaling (natd pollers; the machine has " + Environment.ProcessorCount.ToString(CultureInfo.InvariantCulture) + " cores, shared with the generator)");
        foreach (var load in new[] { Load.Established, Load.Setup })
        {
            double? nft = NftablesOf(variants, load);
            // This build's rows by driver and workers, each scaling row's base twin after it.
            foreach (var v in variants.Where(x => x.Kind == GatewayKind.Natd && (x.Natd is null || x.Scaling))
                         .OrderBy(x => x.Driver, StringComparer.Ordinal).ThenBy(x => x.Workers).ThenBy(x => x.Natd is not null))
            {
                sb.AppendLine(Row(v, load, nft, v.Scaling ? null : $"{v.Label} workers=1"));
            }
        }
        if (_baseNatd is not null)
        {
            sb.AppendLine();
            sb.Append(AgainstBase(variants));
        }
        sb.AppendLine();
        // Issue 10's live targets (the harness's first ones, 1.0x and 2.0x, are long met).
        sb.AppendLine(Target(variants, Load.Established, 2.0, "natd af_xdp >= 2.0x nftables, established pps"));
        sb.AppendLine(Target(variants, Load.Setup, 3.5, "natd af_xdp >= 3.5x nftables, new sessions/s"));
        return sb.ToString();
    }

    private string Row(Variant v, Load load, double? nft, string? label = null)
    {
        string name = label ?? v.Label;
        if (_driverNotes.TryGetValue(v, out string? dn) && dn.StartsWith("af_xdp not wired", StringComparison.Ordinal))
        {
            name += " (not wired: ran af_packet)";
        }
        string loadName = load.ToString().ToLowerInvariant();
        if (_failures.TryGetValue(v, out string? why) && MedianOf(v, load) is null)
        {
            return $"{loadName,-12} {name,-52} {"-",12} {"-",20} {"-",12} {"-",12}   {why}";
        }
        var s = MedianOf(v, load);
        if (s is null)
        {
            return $"{loadName,-12} {name,-52} {"-",12} {"-",20} {"-",12} {"-",12}   not measured";
        }
        string ratio = nft is > 0 ? (s.Delivered / nft.Value).ToString("0.00", CultureInfo.InvariantCulture) + "x" : "-";
        string drv = _driverNotes.TryGetValue(v, out string? d) ? d + "; " : "";
        var all = _samples[(v, load)];
        string range = all.Count < 2 ? "-" : $"{Rate(all.Min(x => x.Delivered))}-{Rate(all.Max(x => x.Delivered))}";
        return $"{loadName,-12} {name,-52} {Rate(s.Delivered),12} {range,20} {Rate(s.Offered),12} {ratio,12}   {drv}{s.Notes}";
    }

    /// <summary>
    /// The same-run comparison with the base build: per natd row and load, both medians, the ratio
    /// of each run's pair (this build's delivered/s over the base's, measured one after the other)
    /// and their geometric mean, against "no more than 3% slower" (a geometric mean of at least 0.97).
    /// </summary>
    private string AgainstBase(List<Variant> variants)
    {
        var sb = new StringBuilder();
        sb.AppendLine(string.Create(CultureInfo.InvariantCulture,
            $"against {_baseLabel} (same run; each run measures both builds back to back, which goes first alternating): this build / {_baseLabel}, delivered/s"));
        sb.AppendLine(string.Create(CultureInfo.InvariantCulture, $"{"load",-12} {"variant",-26} {"this build",12} {_baseLabel,12} {"per run",-40} {"geomean",8}   no more than 3% slower"));
        foreach (var (load, after, twin, a, b) in TwinPairs(variants))
        {
            string loadName = load.ToString().ToLowerInvariant();
            var ratios = PerRunRatios(a, b, static x => x.Delivered);
            if (ratios.Count == 0)
            {
                string why = _failures.GetValueOrDefault(twin) ?? _failures.GetValueOrDefault(after) ?? "not measured";
                sb.AppendLine($"{loadName,-12} {after.Label,-26} {"-",12} {"-",12} {"-",-40} {"-",8}   {why}");
                continue;
            }
            double geo = Math.Exp(ratios.Average(Math.Log));
            string per = string.Join(' ', ratios.Select(r => r.ToString("0.000", CultureInfo.InvariantCulture)));
            sb.AppendLine(string.Create(CultureInfo.InvariantCulture,
                $"{loadName,-12} {after.Label,-26} {Rate(MedianOf(after, load)!.Delivered),12} {Rate(MedianOf(twin, load)!.Delivered),12} {per,-40} {geo,8:0.000}   {(geo >= 0.97 ? "MET" : "NOT MET")}"));
        }
        sb.AppendLine();
        sb.AppendLine(string.Create(CultureInfo.InvariantCulture,
            $"natd's CPU time per delivered frame (all threads, user and system; a cost, where the rates above are a throughput): this build / {_baseLabel}, lower is better"));
        sb.AppendLine(string.Create(CultureInfo.InvariantCulture, $"{"load",-12} {"variant",-26} {"this build",12} {_baseLabel,12} {"per run",-40} {"geomean",8}"));
        foreach (var (load, after, _, a, b) in TwinPairs(variants))
        {
            var ratios = PerRunRatios(a, b, static x => x.CpuPerFrame);
            if (ratios.Count == 0)
            {
                continue;
            }
            double geo = Math.Exp(ratios.Average(Math.Log));
            string per = string.Join(' ', ratios.Select(r => r.ToString("0.000", CultureInfo.InvariantCulture)));
            sb.AppendLine(string.Create(CultureInfo.InvariantCulture,
                $"{load.ToString().ToLowerInvariant(),-12} {after.Label,-26} {MedianCpu(a),9:0} ns {MedianCpu(b),9:0} ns {per,-40} {geo,8:0.000}"));
        }
        return sb.ToString();
    }

    private double? NftablesOf(List<Variant> variants, Load load) =>
        variants.Find(x => x.Kind == GatewayKind.Nftables) is { } nft ? MedianOf(nft, load)?.Delivered : null;

    private string Target(List<Variant> variants, Load load, double factor, string what)
    {
        var xdp = variants.Find(x => x.Kind == GatewayKind.Natd && x.Driver == "af_xdp" && !x.Scaling && x.Natd is null);
        var nft = variants.Find(x => x.Kind == GatewayKind.Nftables);
        var a = xdp is null ? null : MedianOf(xdp, load);
        var b = nft is null ? null : MedianOf(nft, load);
        if (xdp is null || a is null || b is null || b.Delivered <= 0)
        {
            return $"target {what}: not measured";
        }
        double r = a.Delivered / b.Delivered;
        string wired = _driverNotes.TryGetValue(xdp, out string? n) && n.Contains("not wired", StringComparison.Ordinal) ? " (af_xdp not wired: natd ran af_packet)" : "";
        return string.Create(CultureInfo.InvariantCulture,
            $"target {what}: {(r >= factor ? "MET" : "NOT MET")} ({r:0.00}x: {Rate(a.Delivered)}/s vs {Rate(b.Delivered)}/s){wired}");
    }

    /// <summary>Each load's natd rows of this build with their base twin, and both rows' samples by run.</summary>
    private IEnumerable<(Load Load, Variant After, Variant Twin, List<Sample> A, List<Sample> B)> TwinPairs(List<Variant> variants)
    {
        foreach (var load in new[] { Load.Established, Load.Setup })
        {
            foreach (var after in variants.Where(x => x.Kind == GatewayKind.Natd && x.Natd is null))
            {
                if (variants.FirstOrDefault(x => IsTwin(after, x)) is { } twin)
                {
                    yield return (load, after, twin, _samples.GetValueOrDefault((after, load)) ?? [], _samples.GetValueOrDefault((twin, load)) ?? []);
                }
            }
        }
    }

    /// <summary>Run i's <paramref name="metric"/> of this build over the base's, for the runs where both measured one.</summary>
    private static List<double> PerRunRatios(List<Sample> after, List<Sample> before, Func<Sample, double> metric)
    {
        var ratios = new List<double>();
        for (int i = 0; i < Math.Min(after.Count, before.Count); i++)
        {
            double x = metric(after[i]);
            double y = metric(before[i]);
            if (x > 0 && y > 0)
            {
                ratios.Add(x / y);
            }
        }
        return ratios;
    }

    private static double MedianCpu(List<Sample> samples)
    {
        var sorted = samples.Select(x => x.CpuPerFrame).Order().ToList();
        return sorted.Count == 0 ? 0 : sorted[(sorted.Count - 1) / 2];
    }

    private Sample? MedianOf(Variant v, Load load)
    {
        if (!_samples.TryGetValue((v, load), out var list) || list.Count == 0)
        {
            return null;
        }
        var sorted = list.OrderBy(s => s.Delivered).ToList();
        return sorted[(sorted.Count - 1) / 2];
    }

    private static string LastCpu => (Environment.ProcessorCount - 1).ToString(CultureInfo.InvariantCulture);

    /// <summary>A rate with a k/M suffix, e.g. "212.3 k".</summary>
    public static string Rate(double perSecond) => perSecond switch
    {
        >= 1e6 => (perSecond / 1e6).ToString("0.00", CultureInfo.InvariantCulture) + " M",
        >= 1e3 => (perSecond / 1e3).ToString("0.0", CultureInfo.InvariantCulture) + " k",
        _ => perSecond.ToString("0", CultureInfo.InvariantCulture),
    };

    private static string LoadAverage()
    {
        try
        {
            var f = File.ReadAllText("/proc/loadavg").Split(' ');
            return $"{f[0]} {f[1]} {f[2]}";
        }
        catch (IOException)
        {
            return "?";
        }
    }

    private static string FirstLine(string s) => s.Split('\n')[0];

    private void Log(string line)
    {
        Console.Error.WriteLine(line);
        Console.Error.Flush();
    }

    [GeneratedRegex(@"link/ether ([0-9a-f:]{17})")]
    private static partial Regex LinkEther();

    [GeneratedRegex(@"inside=\S+ \((af_xdp|af_packet)\b")]
    private static partial Regex InsideDriver();

    [GeneratedRegex(@"outside=\S+ \((af_xdp|af_packet)\b")]
    private static partial Regex OutsideDriver();

    [GeneratedRegex(@"ring-full=(\d+)")]
    private static partial Regex GenRingFull();

    [GeneratedRegex("reason=\"([^\"]+)\"")]
    private static partial Regex DropLabel();
}
