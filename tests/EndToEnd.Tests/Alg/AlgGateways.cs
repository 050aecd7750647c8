using System.Collections.Concurrent;
using System.Security.Cryptography;
using Natd.Control.Lab;
using Xunit.Abstractions;
using Xunit.Sdk;

namespace Natd.Tests.EndToEnd.Alg;

/// <summary>A protocol with an ALG under test, and the control ports the gateways are told about.</summary>
public static class AlgPorts
{
    /// <summary>FTP control ports: the standard one and a second one (RFC 959 allows any).</summary>
    public static readonly int[] Ftp = [21, 2121];

    /// <summary>TFTP request port (RFC 1350).</summary>
    public static readonly int[] Tftp = [69];

    /// <summary>IRC client port the DCC ALG watches.</summary>
    public static readonly int[] Irc = [6667];
}

/// <summary>
/// The gateway kinds the ALG end-to-end theories run against: the kernel with its conntrack helpers
/// as the baseline that proves the tests themselves, natd with two pollers ("natd") and with one
/// ("natd-w1"), both with <see cref="NatdAlgConfig"/>.
/// </summary>
public static class AlgGatewayKinds
{
    /// <summary>
    /// natd's ALG configuration for the lab (the lab's natd.yaml), appended to the natd rows'
    /// config: the same ports the kernel helpers are bound to.
    /// </summary>
    public const string NatdAlgConfig =
        "algs: { ftp: { enabled: true, ports: [21, 2121] }, tftp: { enabled: true, ports: [69] }, irc: { enabled: true, ports: [6667] } }\n";

    /// <summary>
    /// Environment variable that replaces <see cref="DefaultNames"/> (comma-separated), e.g.
    /// <c>NATD_ALG_KINDS=kernel-bare</c> to watch the tests fail against a NAT without ALGs.
    /// </summary>
    public const string OverrideVariable = "NATD_ALG_KINDS";

    /// <summary>The rows run by default.</summary>
    public static IReadOnlyList<string> DefaultNames => ["kernel", "natd", "natd-w1"];

    /// <summary>The rows in force: <see cref="OverrideVariable"/> if set, else <see cref="DefaultNames"/>.</summary>
    public static IReadOnlyList<string> Names =>
        Environment.GetEnvironmentVariable(OverrideVariable) is { Length: > 0 } names
            ? names.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            : DefaultNames;

    /// <summary>One row per kind.</summary>
    public static TheoryData<string> Kinds => GatewayKinds.Rows(Names);

    /// <summary>Every kind crossed with every mode (e.g. FTP's passive and active variants).</summary>
    /// <param name="modes">Second theory argument values.</param>
    /// <returns>Rows (kind, mode).</returns>
    public static TheoryData<string, string> KindsWith(params string[] modes)
    {
        var data = new TheoryData<string, string>();
        foreach (var name in Names)
        {
            foreach (var mode in modes)
            {
                data.Add(name, mode);
            }
        }

        return data;
    }

    /// <summary>Builds the gateway of a row.</summary>
    /// <param name="kind">
    /// "kernel" (nftables masquerade plus the ftp, tftp and irc conntrack helpers), "kernel-bare"
    /// (masquerade only: no ALG, for seeing the tests fail), "natd" (2 workers) or "natd-w1", both
    /// with <see cref="NatdAlgConfig"/>.
    /// </param>
    /// <returns>A gateway not yet started.</returns>
    public static IGatewayUnderTest Create(string kind) => kind switch
    {
        "kernel" => new KernelAlgGateway(withHelpers: true),
        "kernel-bare" => new KernelAlgGateway(withHelpers: false),
        "natd" => new NatdGateway { ExtraConfig = "dataplane: { workers: 2 }\n" + NatdAlgConfig },
        "natd-w1" => new NatdGateway { ExtraConfig = "dataplane: { workers: 1 }\n" + NatdAlgConfig },
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "expected kernel, kernel-bare, natd or natd-w1"),
    };
}

/// <summary>
/// The kernel as an ALG-capable gateway: the lab's nftables masquerade plus a table that assigns
/// the conntrack helpers ftp (TCP <see cref="AlgPorts.Ftp"/>), tftp (UDP <see cref="AlgPorts.Tftp"/>)
/// and irc (TCP <see cref="AlgPorts.Irc"/>) to connections the inside host opens. Since Linux 4.7
/// helpers are never assigned automatically by port, hence the explicit <c>ct helper</c> objects.
/// </summary>
public sealed class KernelAlgGateway(bool withHelpers) : IGatewayUnderTest
{
    /// <summary>Name of the nftables table added in the gateway namespace.</summary>
    public const string Table = "natdalg";

    private string _ruleset = "";

    public string Name => withHelpers ? "kernel" : "kernel-bare";

    public GatewayMode Mode => GatewayMode.KernelNat;

    /// <summary>The nft script that adds the helpers for a lab.</summary>
    /// <param name="insideIf">The gateway's inside interface (helpers only for connections opened from inside).</param>
    /// <returns>Text for <c>nft -f -</c>.</returns>
    public static string HelperRuleset(string insideIf) => $$"""
        table ip {{Table}} {
          ct helper ftp-lab { type "ftp" protocol tcp; }
          ct helper tftp-lab { type "tftp" protocol udp; }
          ct helper irc-lab { type "irc" protocol tcp; }
          chain prerouting {
            type filter hook prerouting priority filter; policy accept;
            iifname "{{insideIf}}" ct state new tcp dport { {{string.Join(", ", AlgPorts.Ftp)}} } ct helper set "ftp-lab"
            iifname "{{insideIf}}" ct state new udp dport { {{string.Join(", ", AlgPorts.Tftp)}} } ct helper set "tftp-lab"
            iifname "{{insideIf}}" ct state new tcp dport { {{string.Join(", ", AlgPorts.Irc)}} } ct helper set "irc-lab"
          }
        }

        """;

    public void Start(LabTopology lab)
    {
        if (lab.Options.Mode != GatewayMode.KernelNat)
        {
            throw new InvalidOperationException("KernelAlgGateway needs a topology built with GatewayMode.KernelNat");
        }

        if (!withHelpers)
        {
            return;
        }

        KernelHelpers.TryModprobe();
        _ruleset = HelperRuleset(lab.InsideIf);
        var path = Path.Combine(lab.WorkDirectory, "alg-helpers.nft");
        File.WriteAllText(path, _ruleset);
        lab.RunIn(lab.GatewayNs, "nft", "-f", path);
    }

    public string Describe() => withHelpers
        ? "kernel nftables masquerade with conntrack helpers:\n" + _ruleset
        : "kernel nftables masquerade without conntrack helpers (no ALG)";

    public void Dispose()
    {
    }
}

/// <summary>Whether this kernel can instantiate a conntrack helper (built in or loadable).</summary>
public static class KernelHelpers
{
    private static readonly ConcurrentDictionary<string, string?> Probed = new(StringComparer.Ordinal);

    /// <summary>The nf_conntrack/nf_nat modules of the three ALGs.</summary>
    public static readonly string[] Modules =
        ["nf_conntrack_ftp", "nf_nat_ftp", "nf_conntrack_tftp", "nf_nat_tftp", "nf_conntrack_irc", "nf_nat_irc"];

    /// <summary>Loads the helper modules if modprobe can (they may be built in: failures are ignored).</summary>
    public static void TryModprobe()
    {
        try
        {
            Sh.TryRun(TimeSpan.FromSeconds(10), "modprobe", ["-q", "-a", .. Modules]);
        }
        catch (LabException)
        {
            // No modprobe: the probe below tells whether the helpers exist anyway.
        }
    }

    /// <summary>
    /// Why the kernel row of a helper cannot run, or null if it can (or if the probe itself could
    /// not run, so the test fails loudly instead of being skipped quietly).
    /// </summary>
    /// <param name="helper">"ftp", "tftp" or "irc".</param>
    /// <returns>A skip reason or null.</returns>
    public static string? Unavailable(string helper) => Probed.GetOrAdd(helper, Probe);

    private static string? Probe(string helper)
    {
        if (!Environment.IsPrivilegedProcess)
        {
            return null;
        }

        var protocol = helper == "tftp" ? "udp" : "tcp";
        var ns = "natdprobe-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(3));
        try
        {
            TryModprobe();
            Sh.Run(TimeSpan.FromSeconds(10), "ip", "netns", "add", ns);
            var r = Sh.TryRun(TimeSpan.FromSeconds(10), "ip", Sh.InNamespace(ns, "nft",
                [$"add table ip p; add ct helper ip p h {{ type \"{helper}\" protocol {protocol}; }}"]));
            return r.ExitCode == 0
                ? null
                : $"the kernel has no conntrack helper \"{helper}\" (nf_conntrack_{helper}/nf_nat_{helper} neither built in nor loadable): nft said \"{r.StdErr.Trim().Split('\n')[0]}\"";
        }
        catch (LabException)
        {
            return null;
        }
        finally
        {
            try
            {
                Sh.TryRun(TimeSpan.FromSeconds(10), "ip", "netns", "del", ns);
            }
            catch (LabException)
            {
            }
        }
    }
}

/// <summary>
/// A theory over <see cref="AlgGatewayKinds"/> rows for one ALG (the first theory argument is the
/// kind). Skipped without root, like <see cref="RootTheoryAttribute"/>; the "kernel" row alone is
/// skipped, with the reason, when the kernel lacks the conntrack helper named here.
/// </summary>
/// <param name="helper">"ftp", "tftp" or "irc".</param>
[XunitTestCaseDiscoverer("Natd.Tests.EndToEnd.Alg.AlgTheoryDiscoverer", "Natd.EndToEnd.Tests")]
[AttributeUsage(AttributeTargets.Method, AllowMultiple = false)]
public sealed class AlgTheoryAttribute(string helper) : TheoryAttribute
{
    /// <summary>The conntrack helper the kernel row needs.</summary>
    public string Helper { get; } = helper;

    /// <inheritdoc />
    public override string? Skip
    {
        get => base.Skip ?? (Environment.IsPrivilegedProcess ? null : RootRequirement.Reason);
        set => base.Skip = value;
    }
}

/// <summary>Skips the kernel row of an <see cref="AlgTheoryAttribute"/> whose helper the kernel lacks.</summary>
/// <param name="diagnosticMessageSink">xunit's diagnostics sink.</param>
public sealed class AlgTheoryDiscoverer(IMessageSink diagnosticMessageSink) : TheoryDiscoverer(diagnosticMessageSink)
{
    /// <inheritdoc />
    protected override IEnumerable<IXunitTestCase> CreateTestCasesForDataRow(
        ITestFrameworkDiscoveryOptions discoveryOptions, ITestMethod testMethod, IAttributeInfo theoryAttribute, object[] dataRow)
    {
        if (dataRow.Length > 0 && dataRow[0] is "kernel"
            && KernelHelpers.Unavailable(theoryAttribute.GetNamedArgument<string>(nameof(AlgTheoryAttribute.Helper))) is { } reason)
        {
            return CreateTestCasesForSkippedDataRow(discoveryOptions, testMethod, theoryAttribute, dataRow, reason);
        }

        return base.CreateTestCasesForDataRow(discoveryOptions, testMethod, theoryAttribute, dataRow);
    }
}
