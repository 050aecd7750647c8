using System.Text.RegularExpressions;
using Natd.Control.Lab;
using Xunit.Abstractions;

namespace Natd.Tests.EndToEnd;

/// <summary>
/// IPsec through the gateway with the real strongSwan daemon (charon, IKEv2, PSK): the inside host
/// initiates to the outside host, the gateway masquerades it, and IKE must notice the NAT and move
/// from UDP 500 to NAT-T on UDP 4500 (RFC 7296 section 2.23, RFC 3948). This kernel has no ESP
/// (CONFIG_INET_ESP unset), so both charons use the kernel-libipsec plugin: ESP in userspace over
/// a TUN device, always UDP-encapsulated, which is exactly the NAT-T path a masquerading gateway
/// has to carry. The tunnel joins 10.0.0.2 (inside host) and 192.0.2.100 (an address only the
/// outside host has); a ping between them succeeds only through the tunnel, before and after
/// rekeying the CHILD_SA and the IKE_SA.
/// </summary>
[Collection(EndToEndCollection.Name)]
[Trait("Category", "EndToEnd")]
public sealed partial class StrongSwanTests(ITestOutputHelper output)
{
    /// <summary>The outside host's tunnel address (TEST-NET-1, on its loopback).</summary>
    private const string TunnelAddress = "192.0.2.100";

    [RootTheory]
    [InlineData("kernel")]
    [InlineData("natd")]
    [InlineData("natd-w1")]
    public void Charon_behind_the_gateway_detects_the_nat_moves_to_udp_4500_and_pings_cross_the_tunnel(string kind)
    {
        Assert.True(StrongSwanPeer.Installed(out var missing), $"{missing} is missing (control/install-deps.sh installs strongSwan)");
        using var scenario = Scenario.Start(kind, output);
        var lab = scenario.Lab;
        string inside = lab.InsideHost.ToString(), remote = lab.OutsideHost.ToString(), external = lab.GatewayOutside.ToString();
        lab.RunIn(lab.OutsideNs, "ip", "addr", "add", TunnelAddress + "/32", "dev", "lo");

        // Without the tunnel the outside host's tunnel address is unreachable: the ping below can fail.
        Assert.False(Ping(lab, inside, count: 1), "the tunnel address answered before any IPsec SA existed");

        using var responder = StrongSwanPeer.Start(lab, lab.OutsideNs, "outside", $$"""
            connections {
              lab {
                version = 2
                proposals = aes128-sha256-modp2048
                local {
                  auth = psk
                  id = outside@lab
                }
                remote {
                  auth = psk
                  id = inside@lab
                }
                children {
                  lab {
                    local_ts = {{TunnelAddress}}/32
                    remote_ts = {{inside}}/32
                    esp_proposals = aes128-sha256
                  }
                }
              }
            }
            {{StrongSwanPeer.Secrets}}
            """);
        using var initiator = StrongSwanPeer.Start(lab, lab.InsideNs, "inside", $$"""
            connections {
              lab {
                version = 2
                remote_addrs = {{remote}}
                proposals = aes128-sha256-modp2048
                local {
                  auth = psk
                  id = inside@lab
                }
                remote {
                  auth = psk
                  id = outside@lab
                }
                children {
                  lab {
                    local_ts = {{inside}}/32
                    remote_ts = {{TunnelAddress}}/32
                    esp_proposals = aes128-sha256
                  }
                }
              }
            }
            {{StrongSwanPeer.Secrets}}
            """);
        responder.Load();
        initiator.Load();

        var initiate = initiator.Swanctl(TimeSpan.FromSeconds(40), "--initiate", "--child", "lab", "--timeout", "30");
        output.WriteLine("swanctl --initiate: exit " + initiate.ExitCode + "\n" + initiate.StdOut + initiate.StdErr);
        Assert.True(initiate.ExitCode == 0, "swanctl --initiate failed:\n" + initiator.Dump() + "\n" + responder.Dump());

        // The inside charon saw through the NAT (its own NAT-D hash did not match) and moved to 4500.
        Assert.NotNull(initiator.WaitForLine(l => l.Contains("local host is behind NAT", StringComparison.Ordinal)));
        Assert.NotNull(initiator.WaitForLine(l => l.Contains($"sending packet: from {inside}[4500] to {remote}[4500]", StringComparison.Ordinal)));
        Assert.NotNull(initiator.WaitForLine(l => l.Contains($"IKE_SA lab[1] established between {inside}[inside@lab]...{remote}[outside@lab]", StringComparison.Ordinal)));
        Assert.NotNull(initiator.WaitForLine(l => l.Contains("CHILD_SA lab{1} established", StringComparison.Ordinal)));

        // The outside charon only ever saw the gateway's external address: IKE_SA_INIT from port 500
        // (ISAKMP keeps its source port when free), IKE_AUTH from NAT-T, and it is not itself behind NAT.
        Assert.NotNull(responder.WaitForLine(l => l.Contains($"received packet: from {external}[500] to {remote}[500]", StringComparison.Ordinal)));
        Assert.NotNull(responder.WaitForLine(l => NattFrom(external, remote).IsMatch(l)));
        Assert.NotNull(responder.WaitForLine(l => l.Contains($"IKE_SA lab[1] established between {remote}[outside@lab]...{external}[inside@lab]", StringComparison.Ordinal)));
        Assert.DoesNotContain(responder.Lines, l => l.Contains($"from {inside}[", StringComparison.Ordinal));
        Assert.DoesNotContain(responder.Lines, l => l.Contains("local host is behind NAT", StringComparison.Ordinal));

        // ESP (UDP-encapsulated) both ways through the gateway.
        Assert.True(Ping(lab, inside, count: 3), "no ping reply through the tunnel:\n" + initiator.Dump() + "\n" + responder.Dump());

        // Rekeying the CHILD_SA (new SPIs) and the IKE_SA (new SPIs/cookies, RFC 7296 section 1.3.2)
        // from inside reuses the NAT-T mapping: the tunnel keeps working.
        Assert.Equal(0, initiator.Swanctl(TimeSpan.FromSeconds(20), "--rekey", "--child", "lab").ExitCode);
        Assert.NotNull(initiator.WaitForLine(l => l.Contains("CHILD_SA lab{2} established", StringComparison.Ordinal)));
        Assert.Equal(0, initiator.Swanctl(TimeSpan.FromSeconds(20), "--rekey", "--ike", "lab").ExitCode);
        Assert.NotNull(initiator.WaitForLine(l => l.Contains($"IKE_SA lab[2] rekeyed between {inside}[inside@lab]...{remote}[outside@lab]", StringComparison.Ordinal)));
        Assert.NotNull(responder.WaitForLine(l => l.Contains($"IKE_SA lab[2] rekeyed between {remote}[outside@lab]...{external}[inside@lab]", StringComparison.Ordinal)));
        Assert.True(Ping(lab, inside, count: 2), "no ping reply through the rekeyed tunnel:\n" + initiator.Dump() + "\n" + responder.Dump());

        // One NAT-T mapping carried IKE_AUTH, ESP, keepalives and both rekeys: a single external port.
        var ports = responder.Lines.Select(l => NattFrom(external, remote).Match(l)).Where(m => m.Success)
            .Select(m => m.Groups["port"].Value).Distinct(StringComparer.Ordinal).ToList();
        Assert.Single(ports);
        scenario.Pass();
    }

    private static Regex NattFrom(string external, string remote) =>
        new($@"received packet: from {Regex.Escape(external)}\[(?<port>\d+)\] to {Regex.Escape(remote)}\[4500\]");

    private bool Ping(LabTopology lab, string source, int count)
    {
        var r = lab.TryRunIn(lab.InsideNs, TimeSpan.FromSeconds(5 + (3 * count)), "ping", "-n", "-c", count.ToString(System.Globalization.CultureInfo.InvariantCulture),
            "-W", "2", "-I", source, TunnelAddress);
        output.WriteLine($"ping {TunnelAddress} from {source}: exit {r.ExitCode}\n{r.StdOut}");
        return r.ExitCode == 0;
    }
}

/// <summary>
/// One strongSwan charon in a lab namespace with its own strongswan.conf (STRONGSWAN_CONF), vici
/// socket and swanctl.conf in the lab's scratch directory. charon's pid file path is compiled in
/// (/var/run/charon.pid) and the namespaces share the filesystem, so charon runs in a private mount
/// namespace (unshare -m) with a per-peer directory bound over /run. Logs IKE at level 2 to stdout.
/// </summary>
public sealed class StrongSwanPeer : IDisposable
{
    /// <summary>The daemon (Debian's strongswan-charon).</summary>
    public const string Charon = "/usr/lib/ipsec/charon";

    /// <summary>The PSK shared by both lab peers (swanctl.conf secrets section).</summary>
    public const string Secrets = """
        secrets {
          ike-lab {
            id-1 = inside@lab
            id-2 = outside@lab
            secret = "natd lab pre-shared key"
          }
        }
        """;

    private static readonly TimeSpan WaitStep = TimeSpan.FromSeconds(10);

    private readonly string _directory;
    private readonly string _conf;
    private readonly string _swanctlConf;
    private readonly string _ns;
    private readonly LabTopology _lab;
    private readonly LabProcess _charon;

    private StrongSwanPeer(LabTopology lab, string ns, string directory, LabProcess charon)
    {
        _lab = lab;
        _ns = ns;
        _directory = directory;
        _conf = Path.Combine(directory, "strongswan.conf");
        _swanctlConf = Path.Combine(directory, "swanctl.conf");
        _charon = charon;
    }

    /// <summary>charon's output lines so far.</summary>
    public IReadOnlyList<string> Lines => [.. _charon.StdOutLines, .. _charon.StdErrLines];

    /// <summary>Whether charon, swanctl and the kernel-libipsec plugin are installed.</summary>
    /// <param name="missing">The first missing file, if any.</param>
    /// <returns>True if all are there.</returns>
    public static bool Installed(out string missing)
    {
        foreach (var file in new[] { Charon, "/usr/sbin/swanctl", "/usr/lib/ipsec/plugins/libstrongswan-kernel-libipsec.so", "/dev/net/tun" })
        {
            if (!File.Exists(file))
            {
                missing = file;
                return false;
            }
        }

        missing = "";
        return true;
    }

    /// <summary>Writes the configs, starts charon in <paramref name="ns"/> and waits for its vici socket.</summary>
    /// <param name="lab">The lab (owns the process and the scratch directory).</param>
    /// <param name="ns">Namespace to run in.</param>
    /// <param name="name">Short name for the per-peer directory ("inside", "outside").</param>
    /// <param name="swanctlConf">swanctl.conf text (connections and secrets).</param>
    /// <returns>The running peer, connections not yet loaded.</returns>
    public static StrongSwanPeer Start(LabTopology lab, string ns, string name, string swanctlConf)
    {
        var directory = Path.Combine(lab.WorkDirectory, "strongswan-" + name);
        var run = Path.Combine(directory, "run");
        Directory.CreateDirectory(run);
        var socket = "unix://" + Path.Combine(directory, "charon.vici");
        // Only the plugins the test needs (no openssl/gcm in Debian's base set: AES-CBC, SHA-256,
        // MODP-2048 via gmp); kernel-libipsec before kernel-netlink takes over the IPsec interface.
        File.WriteAllText(Path.Combine(directory, "strongswan.conf"), $$"""
            charon {
              load_modular = no
              load = random nonce aes sha1 sha2 hmac gmp kdf pem pkcs1 x509 pubkey kernel-libipsec kernel-netlink socket-default vici
              port = 500
              port_nat_t = 4500
              retransmit_tries = 4
              retransmit_timeout = 2.0
              plugins {
                vici {
                  socket = {{socket}}
                }
              }
              filelog {
                stdout {
                  path = /dev/stdout
                  default = 1
                  ike = 2
                  net = 2
                  flush_line = yes
                }
              }
            }
            swanctl {
              load = random nonce pem pkcs1 x509 pubkey
              socket = {{socket}}
            }

            """);
        File.WriteAllText(Path.Combine(directory, "swanctl.conf"), swanctlConf + "\n");
        var charon = lab.StartIn(ns, "unshare", "--mount", "--propagation", "private", "sh", "-c",
            $"mount --bind '{run}' /run && export STRONGSWAN_CONF='{Path.Combine(directory, "strongswan.conf")}' && exec {Charon}");
        var peer = new StrongSwanPeer(lab, ns, directory, charon);
        var vici = Path.Combine(directory, "charon.vici");
        var deadline = DateTime.UtcNow + WaitStep;
        while (!File.Exists(vici))
        {
            if (charon.HasExited || DateTime.UtcNow > deadline)
            {
                var dump = peer.Dump();
                peer.Dispose();
                throw new LabException($"charon ({name}) did not open its vici socket:\n{dump}");
            }

            Thread.Sleep(50);
        }

        return peer;
    }

    /// <summary>swanctl --load-all with this peer's files; throws if it fails.</summary>
    public void Load()
    {
        var r = Swanctl(WaitStep, "--load-all", "--file", _swanctlConf);
        if (r.ExitCode != 0)
        {
            throw new LabException($"swanctl --load-all failed ({r.ExitCode}): {r.StdOut}{r.StdErr}\n{Dump()}");
        }
    }

    /// <summary>Runs swanctl against this peer's charon.</summary>
    /// <param name="timeout">Upper bound on swanctl's run time.</param>
    /// <param name="args">swanctl arguments.</param>
    /// <returns>Its result, whatever the exit code.</returns>
    public ProcessResult Swanctl(TimeSpan timeout, params string[] args) =>
        _lab.TryRunIn(_ns, timeout, "env", ["STRONGSWAN_CONF=" + _conf, "swanctl", .. args]);

    /// <summary>Waits up to 10 s for a charon log line.</summary>
    /// <param name="match">Predicate over one line.</param>
    /// <returns>The line, or null.</returns>
    public string? WaitForLine(Func<string, bool> match) => _charon.WaitForLine(match, WaitStep);

    /// <summary>charon's command line and output, for a failure message.</summary>
    /// <returns>Text.</returns>
    public string Dump() => $"---- charon in {_ns} ({_directory}) ----\n{_charon.Dump()}";

    /// <summary>Stops charon (SIGTERM, then SIGKILL); the lab removes the directory.</summary>
    public void Dispose() => _charon.Dispose();
}
