using System.Globalization;
using System.Net;
using System.Security.Cryptography;
using System.Text.RegularExpressions;

namespace Natd.Control.Lab;

/// <summary>
/// the three-namespace lab (README.md, "Two commands"): an inside host (10.0.0.2/24, default route via
/// 10.0.0.1), a gateway namespace holding the veth ends <c>natin</c> and <c>natout</c>, and an
/// outside host (198.51.100.2/24, on-link route only). Every namespace has a unique name and is
/// deleted on <see cref="Dispose"/>, together with every process the lab started in it.
/// </summary>
/// <remarks>
/// GSO, GRO and TSO are always off on all four veth ends: a packet socket otherwise receives
/// 64 KiB super-frames that a userspace dataplane would have to segment. IPv6 is off everywhere so
/// captures carry only the IPv4 traffic under test.
/// </remarks>
public sealed partial class LabTopology : IDisposable
{
    /// <summary>Default namespace name prefix.</summary>
    public const string DefaultPrefix = "natd";

    /// <summary>Name of each host's veth end, inside its own namespace.</summary>
    public const string HostIf = "eth0";

    /// <summary>
    /// Queues each veth end is created with (numrxqueues/numtxqueues). natd's AF_XDP binds one socket
    /// per queue, one per worker, so up to this many workers run on AF_XDP here; <see cref="SetQueues"/>
    /// makes as many active as natd has workers, so no queue is left without a socket.
    /// </summary>
    public const int MaxQueues = 2;

    /// <summary>Where the lab records which process owns a namespace, so concurrent runs spare each other.</summary>
    private const string OwnerDirectory = "/run/natd-lab";

    private static readonly TimeSpan NetnsTimeout = TimeSpan.FromSeconds(10);

    private readonly List<LabProcess> _processes = [];
    private readonly List<string> _createdNamespaces = [];
    private readonly List<string> _extraOutsideAddresses = [];
    private readonly object _gate = new();
    private bool _disposed;

    private LabTopology(LabOptions options, string suffix)
    {
        Options = options;
        Suffix = suffix;
        InsideNs = $"{options.Prefix}-in-{suffix}";
        GatewayNs = $"{options.Prefix}-gw-{suffix}";
        OutsideNs = $"{options.Prefix}-out-{suffix}";
        WorkDirectory = Path.Combine(Path.GetTempPath(), $"{options.Prefix}-lab-{suffix}");
    }

    /// <summary>The options the lab was built with.</summary>
    public LabOptions Options { get; }

    /// <summary>The random 4-hex-digit suffix shared by the three namespace names.</summary>
    public string Suffix { get; }

    /// <summary>Inside host namespace, e.g. <c>natd-in-ab12</c>.</summary>
    public string InsideNs { get; }

    /// <summary>Gateway namespace, e.g. <c>natd-gw-ab12</c>; natd runs here.</summary>
    public string GatewayNs { get; }

    /// <summary>Outside host namespace, e.g. <c>natd-out-ab12</c>.</summary>
    public string OutsideNs { get; }

    /// <summary>Gateway's inside veth end (towards the inside host).</summary>
    public string InsideIf => "natin";

    /// <summary>Gateway's outside veth end (towards the outside host).</summary>
    public string OutsideIf => "natout";

    /// <summary>Inside host's veth name (in <see cref="InsideNs"/>).</summary>
    public string InsideHostIf => HostIf;

    /// <summary>Outside host's veth name (in <see cref="OutsideNs"/>).</summary>
    public string OutsideHostIf => HostIf;

    /// <summary>Inside host address, 10.0.0.2.</summary>
    public IPAddress InsideHost { get; } = IPAddress.Parse("10.0.0.2");

    /// <summary>Gateway's inside address, 10.0.0.1 (held by natd, or by the kernel in KernelNat mode).</summary>
    public IPAddress GatewayInside { get; } = IPAddress.Parse("10.0.0.1");

    /// <summary>Gateway's outside (external) address, 198.51.100.1: the NAT pool.</summary>
    public IPAddress GatewayOutside { get; } = IPAddress.Parse("198.51.100.1");

    /// <summary>Outside host address, 198.51.100.2.</summary>
    public IPAddress OutsideHost { get; } = IPAddress.Parse("198.51.100.2");

    /// <summary>Inside prefix length (/24).</summary>
    public int InsidePrefixLength => 24;

    /// <summary>Outside prefix length (/24).</summary>
    public int OutsidePrefixLength => 24;

    /// <summary>A per-lab scratch directory (scripts, served files, configs), deleted on dispose.</summary>
    public string WorkDirectory { get; }

    /// <summary>Addresses added with <see cref="AddOutsideHostAddress(string)"/>.</summary>
    public IReadOnlyList<string> ExtraOutsideAddresses
    {
        get
        {
            lock (_gate)
            {
                return [.. _extraOutsideAddresses];
            }
        }
    }

    /// <summary>
    /// Builds the lab. On any failure, whatever was created is torn down before the exception propagates.
    /// </summary>
    /// <param name="options">Prefix, gateway mode and offload choice.</param>
    /// <returns>A ready topology; dispose it to delete the namespaces.</returns>
    /// <exception cref="LabException">A setup command failed (the message names it).</exception>
    /// <exception cref="ArgumentException">The prefix is not a plain lowercase name.</exception>
    public static LabTopology Create(LabOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (!PrefixPattern().IsMatch(options.Prefix))
        {
            throw new ArgumentException($"prefix must match {PrefixPattern()}: '{options.Prefix}'", nameof(options));
        }

        var existing = ListNamespaces();
        LabTopology? lab = null;
        for (var attempt = 0; attempt < 16 && lab is null; attempt++)
        {
            var suffix = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(2));
            var candidate = new LabTopology(options, suffix);
            if (!existing.Contains(candidate.InsideNs) && !existing.Contains(candidate.GatewayNs)
                && !existing.Contains(candidate.OutsideNs))
            {
                lab = candidate;
            }
        }

        if (lab is null)
        {
            throw new LabException("no free namespace suffix after 16 attempts");
        }

        try
        {
            lab.Build();
            return lab;
        }
        catch
        {
            lab.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Deletes namespaces left by earlier crashed runs: names exactly <c>{prefix}-(in|gw|out)-XXXX</c>
    /// (4 lowercase hex digits) created before this process started, whose recorded owner process
    /// is gone. Anything else is left alone.
    /// </summary>
    /// <param name="prefix">The prefix the runs used (default "natd").</param>
    /// <returns>The namespaces removed.</returns>
    public static IReadOnlyList<string> CleanupStale(string prefix = DefaultPrefix) =>
        CleanupStale(prefix, System.Diagnostics.Process.GetCurrentProcess().StartTime.ToUniversalTime());

    /// <summary>As <see cref="CleanupStale(string)"/>, with an explicit creation-time cut-off (UTC).</summary>
    internal static IReadOnlyList<string> CleanupStale(string prefix, DateTime createdBeforeUtc)
    {
        var pattern = new Regex("^" + Regex.Escape(prefix) + "-(in|gw|out)-([0-9a-f]{4})$", RegexOptions.CultureInvariant);
        var removed = new List<string>();
        foreach (var name in ListNamespaces())
        {
            var match = pattern.Match(name);
            if (!match.Success)
            {
                continue;
            }

            var path = Path.Combine("/run/netns", name);
            if (File.Exists(path) && File.GetLastWriteTimeUtc(path) >= createdBeforeUtc)
            {
                continue;
            }

            var owner = ReadOwner(prefix, match.Groups[2].Value);
            if (owner is int pid && pid != Environment.ProcessId && IsAlive(pid))
            {
                continue;
            }

            KillProcessesIn(name);
            Sh.TryRun(NetnsTimeout, "ip", "netns", "del", name);
            removed.Add(name);
            TryDeleteFile(OwnerFile(prefix, match.Groups[2].Value));
        }

        return removed;
    }

    /// <summary>Runs a command in one of the lab's namespaces and throws on failure.</summary>
    /// <param name="ns">A namespace name (normally one of this lab's).</param>
    /// <param name="file">Program name.</param>
    /// <param name="args">Arguments, passed verbatim.</param>
    /// <returns>The command's output.</returns>
    /// <exception cref="LabException">Non-zero exit or time-out.</exception>
    public ProcessResult RunIn(string ns, string file, params string[] args) => Sh.RunIn(ns, file, args);

    /// <summary>Runs a command in a namespace and returns its result whatever the exit code.</summary>
    /// <param name="ns">Namespace name.</param>
    /// <param name="timeout">Upper bound on the command's run time.</param>
    /// <param name="file">Program name.</param>
    /// <param name="args">Arguments, passed verbatim.</param>
    /// <returns>The command's output and exit code.</returns>
    /// <exception cref="LabException">Time-out or the program could not start.</exception>
    public ProcessResult TryRunIn(string ns, TimeSpan timeout, string file, params string[] args) =>
        Sh.TryRun(timeout, "ip", Sh.InNamespace(ns, file, args));

    /// <summary>
    /// Starts a long-lived program in a namespace. The lab stops it on <see cref="Dispose"/> if the
    /// caller has not already.
    /// </summary>
    /// <param name="ns">Namespace name.</param>
    /// <param name="file">Program name.</param>
    /// <param name="args">Arguments, passed verbatim.</param>
    /// <returns>The running program.</returns>
    /// <exception cref="LabException">The program could not start.</exception>
    /// <exception cref="ObjectDisposedException">The lab was disposed.</exception>
    public LabProcess StartIn(string ns, string file, params string[] args)
    {
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            var process = Sh.StartIn(ns, file, args);
            _processes.Add(process);
            return process;
        }
    }

    /// <summary>
    /// Adds another address to the outside host's veth, e.g. <c>198.51.100.3/24</c>, for tests that
    /// need a second outside source (an unsolicited sender, a scanner).
    /// </summary>
    /// <param name="cidr">Address with prefix length.</param>
    /// <returns>The address without the prefix length.</returns>
    /// <exception cref="LabException">ip refused the address.</exception>
    public IPAddress AddOutsideHostAddress(string cidr)
    {
        Sh.Run("ip", "-n", OutsideNs, "addr", "add", cidr, "dev", OutsideHostIf);
        lock (_gate)
        {
            _extraOutsideAddresses.Add(cidr);
        }

        return IPAddress.Parse(cidr.Split('/')[0]);
    }

    /// <summary>
    /// Adds another address to the inside host's veth, e.g. <c>10.0.0.3/24</c>, for tests that need
    /// a second inside host (a second port-forward backend, a hairpinning client).
    /// </summary>
    /// <param name="cidr">Address with prefix length.</param>
    /// <returns>The address without the prefix length.</returns>
    /// <exception cref="LabException">ip refused the address.</exception>
    public IPAddress AddInsideHostAddress(string cidr)
    {
        Sh.Run("ip", "-n", InsideNs, "addr", "add", cidr, "dev", InsideHostIf);
        return IPAddress.Parse(cidr.Split('/')[0]);
    }

    /// <summary>
    /// Kills every process in the lab's namespaces, deletes the namespaces (which removes the veths)
    /// and the scratch directory. Idempotent and never throws.
    /// </summary>
    public void Dispose()
    {
        LabProcess[] processes;
        lock (_gate)
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            processes = [.. _processes];
            _processes.Clear();
        }

        foreach (var process in processes)
        {
            try
            {
                process.Stop(TimeSpan.FromSeconds(2));
                process.Dispose();
            }
            catch (Exception e) when (e is LabException or InvalidOperationException or System.ComponentModel.Win32Exception)
            {
                // Best effort: the namespace kill below catches stragglers.
            }
        }

        foreach (var ns in new[] { InsideNs, GatewayNs, OutsideNs })
        {
            try
            {
                KillProcessesIn(ns);
                if (NamespaceExists(ns))
                {
                    Sh.TryRun(NetnsTimeout, "ip", "netns", "del", ns);
                }
            }
            catch (LabException)
            {
                // Best effort; CleanupStale removes it on a later run.
            }
        }

        TryDeleteFile(OwnerFile(Options.Prefix, Suffix));
        try
        {
            if (Directory.Exists(WorkDirectory))
            {
                Directory.Delete(WorkDirectory, recursive: true);
            }
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }

    /// <summary>True if a network namespace of that name exists.</summary>
    /// <param name="name">Namespace name.</param>
    /// <returns>Whether <c>/run/netns/NAME</c> exists.</returns>
    public static bool NamespaceExists(string name) => File.Exists(Path.Combine("/run/netns", name));

    /// <summary>Names of all network namespaces (<c>ip netns list</c>).</summary>
    /// <returns>The names, without the "(id: N)" annotation.</returns>
    public static HashSet<string> ListNamespaces()
    {
        var result = Sh.Run(NetnsTimeout, "ip", "netns", "list");
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var line in result.StdOut.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            names.Add(line.Split(' ')[0]);
        }

        return names;
    }

    private void Build()
    {
        Directory.CreateDirectory(WorkDirectory);
        RecordOwner();
        foreach (var ns in new[] { InsideNs, GatewayNs, OutsideNs })
        {
            Sh.Run(NetnsTimeout, "ip", "netns", "add", ns);
            lock (_gate)
            {
                _createdNamespaces.Add(ns);
            }

            Sh.Run("ip", "-n", ns, "link", "set", "lo", "up");
            // New interfaces inherit "default": veths come up without IPv6 link-local chatter.
            SetSysctl(ns, "net.ipv6.conf.all.disable_ipv6", "1", optional: true);
            SetSysctl(ns, "net.ipv6.conf.default.disable_ipv6", "1", optional: true);
        }

        // Create each pair from the gateway side straight into the peer namespace, so no name ever
        // appears in the root namespace (concurrent labs would collide there).
        // Two queues on every end (native XDP on a veth needs as many RX queues as its peer has TX queues).
        string q = MaxQueues.ToString(System.Globalization.CultureInfo.InvariantCulture);
        Sh.Run("ip", "-n", GatewayNs, "link", "add", InsideIf, "numrxqueues", q, "numtxqueues", q, "type", "veth",
            "peer", "name", HostIf, "numrxqueues", q, "numtxqueues", q, "netns", InsideNs);
        Sh.Run("ip", "-n", GatewayNs, "link", "add", OutsideIf, "numrxqueues", q, "numtxqueues", q, "type", "veth",
            "peer", "name", HostIf, "numrxqueues", q, "numtxqueues", q, "netns", OutsideNs);
        if (Options.Queues != MaxQueues)
        {
            SetQueues(Options.Queues);
        }

        foreach (var (ns, dev) in Ends())
        {
            SetSysctl(ns, $"net.ipv6.conf.{dev}.disable_ipv6", "1", optional: true);
            // Whole GSO super-frames would reach a packet socket otherwise.
            Sh.RunIn(ns, "ethtool", "-K", dev, "tso", "off", "gso", "off", "gro", "off");
        }

        if (Options.DisableTxChecksumOffload)
        {
            Sh.RunIn(InsideNs, "ethtool", "-K", InsideHostIf, "tx", "off");
            Sh.RunIn(OutsideNs, "ethtool", "-K", OutsideHostIf, "tx", "off");
        }

        Sh.Run("ip", "-n", InsideNs, "addr", "add", $"{InsideHost}/{InsidePrefixLength}", "dev", InsideHostIf);
        Sh.Run("ip", "-n", InsideNs, "link", "set", InsideHostIf, "up");
        Sh.Run("ip", "-n", InsideNs, "route", "add", "default", "via", GatewayInside.ToString());

        // On-link /24 only: the outside host has no route back to the inside network.
        Sh.Run("ip", "-n", OutsideNs, "addr", "add", $"{OutsideHost}/{OutsidePrefixLength}", "dev", OutsideHostIf);
        Sh.Run("ip", "-n", OutsideNs, "link", "set", OutsideHostIf, "up");

        Sh.Run("ip", "-n", GatewayNs, "link", "set", InsideIf, "up");
        Sh.Run("ip", "-n", GatewayNs, "link", "set", OutsideIf, "up");

        if (Options.Mode == GatewayMode.KernelNat)
        {
            ConfigureKernelNat();
        }
        else
        {
            SetSysctl(GatewayNs, "net.ipv4.ip_forward", "0", optional: false);
        }
    }

    private void ConfigureKernelNat()
    {
        Sh.Run("ip", "-n", GatewayNs, "addr", "add", $"{GatewayInside}/{InsidePrefixLength}", "dev", InsideIf);
        Sh.Run("ip", "-n", GatewayNs, "addr", "add", $"{GatewayOutside}/{OutsidePrefixLength}", "dev", OutsideIf);
        SetSysctl(GatewayNs, "net.ipv4.ip_forward", "1", optional: false);
        // Masquerade out of natout; forward only what the inside opened (the NAT's default
        // address-and-port-dependent filtering, RFC 4787 REQ-8, as conntrack implements it).
        Sh.RunIn(GatewayNs, "nft",
            "add table ip natdlab; " +
            "add chain ip natdlab postrouting { type nat hook postrouting priority srcnat; policy accept; }; " +
            $"add rule ip natdlab postrouting oifname \"{OutsideIf}\" masquerade; " +
            "add chain ip natdlab forward { type filter hook forward priority filter; policy drop; }; " +
            "add rule ip natdlab forward ct state established,related accept; " +
            $"add rule ip natdlab forward iifname \"{InsideIf}\" oifname \"{OutsideIf}\" accept");
    }

    /// <summary>
    /// Makes <paramref name="queues"/> (1..<see cref="MaxQueues"/>) RX and TX queues active on all four
    /// veth ends (ethtool -L). A veth delivers a frame on the peer's RX queue numbered like the TX
    /// queue it left by, so with natd's AF_XDP and N workers the lab needs exactly N queues: a frame
    /// on a queue without a socket would go to the gateway's kernel instead. Call it while no XDP
    /// program is attached (before natd starts).
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">queues is not 1..MaxQueues.</exception>
    public void SetQueues(int queues)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(queues, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(queues, MaxQueues);
        string n = queues.ToString(System.Globalization.CultureInfo.InvariantCulture);
        foreach (var (ns, dev) in Ends())
        {
            Sh.RunIn(ns, "ethtool", "-L", dev, "rx", n, "tx", n);
        }
        Queues = queues;
    }

    /// <summary>
    /// Sets the MTU (bytes) of the outside link, both its ends (the gateway's and the outside
    /// host's): a smaller uplink than the inside's, as a PPPoE or tunnel uplink is. Before natd
    /// starts, which reads it then.
    /// </summary>
    public void SetOutsideMtu(int mtu)
    {
        string n = mtu.ToString(System.Globalization.CultureInfo.InvariantCulture);
        Sh.Run("ip", "-n", GatewayNs, "link", "set", OutsideIf, "mtu", n);
        Sh.Run("ip", "-n", OutsideNs, "link", "set", OutsideHostIf, "mtu", n);
    }

    /// <summary>RX/TX queues active on each veth end (<see cref="SetQueues"/>).</summary>
    public int Queues { get; private set; } = MaxQueues;

    private IEnumerable<(string Ns, string Dev)> Ends()
    {
        yield return (InsideNs, InsideHostIf);
        yield return (GatewayNs, InsideIf);
        yield return (GatewayNs, OutsideIf);
        yield return (OutsideNs, OutsideHostIf);
    }

    private static void SetSysctl(string ns, string key, string value, bool optional)
    {
        if (optional && key.StartsWith("net.ipv6.", StringComparison.Ordinal) && !Directory.Exists("/proc/sys/net/ipv6"))
        {
            return; // IPv6 compiled out or disabled at boot: nothing to turn off.
        }

        Sh.RunIn(ns, "sysctl", "-qw", $"{key}={value}");
    }

    private static void KillProcessesIn(string ns)
    {
        if (!NamespaceExists(ns))
        {
            return;
        }

        var pids = Sh.TryRun(NetnsTimeout, "ip", "netns", "pids", ns);
        foreach (var token in pids.StdOut.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (int.TryParse(token, NumberStyles.None, CultureInfo.InvariantCulture, out var pid) && pid != Environment.ProcessId)
            {
                Sh.Signal(pid, Sh.SigKill);
            }
        }
    }

    private void RecordOwner()
    {
        try
        {
            Directory.CreateDirectory(OwnerDirectory);
            File.WriteAllText(OwnerFile(Options.Prefix, Suffix), Environment.ProcessId.ToString(CultureInfo.InvariantCulture));
        }
        catch (IOException)
        {
            // Without the record CleanupStale falls back to namespace age alone.
        }
        catch (UnauthorizedAccessException)
        {
        }
    }

    private static string OwnerFile(string prefix, string suffix) => Path.Combine(OwnerDirectory, $"{prefix}-{suffix}.owner");

    private static int? ReadOwner(string prefix, string suffix)
    {
        try
        {
            var text = File.ReadAllText(OwnerFile(prefix, suffix)).Trim();
            return int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var pid) ? pid : null;
        }
        catch (IOException)
        {
            return null;
        }
        catch (UnauthorizedAccessException)
        {
            return null;
        }
    }

    private static bool IsAlive(int pid) => Directory.Exists($"/proc/{pid.ToString(CultureInfo.InvariantCulture)}");

    private static void TryDeleteFile(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }

    [GeneratedRegex("^[a-z][a-z0-9]{0,15}$", RegexOptions.CultureInvariant)]
    private static partial Regex PrefixPattern();
}
