using System.Text.Json;
using Natd.Control.Lab;
using Xunit.Abstractions;

namespace Natd.Tests.EndToEnd;

/// <summary>
/// PPTP through the gateway (RFC 2637): two inside clients (10.0.0.2 and 10.0.0.3) call the same
/// outside server with the same Call ID; the gateway must masquerade the Call IDs on the control
/// channel (TCP 1723) so that each client gets only its own call's GRE. pptpd and pptp-linux need
/// /dev/ppp (CONFIG_PPP), which this kernel lacks, so Scripts/pptp_lab.py plays server and clients
/// with protocol-accurate control messages over real TCP and GRE over raw sockets.
/// </summary>
[Collection(EndToEndCollection.Name)]
[Trait("Category", "EndToEnd")]
public sealed class PptpTests(ITestOutputHelper output)
{
    private static readonly TimeSpan RunLimit = TimeSpan.FromSeconds(30);

    /// <summary>The natd config section that turns the PPTP ALG on (parsed by the daemon's config reader).</summary>
    public const string NatdPptpConfig = "dataplane: { workers: 2 }\nalgs: { pptp: { enabled: true, ports: [1723] } }\n";

    /// <summary>
    /// The baseline: the kernel's nf_conntrack_pptp / nf_nat_pptp helper (assigned explicitly with an
    /// nft ct helper, since kernels no longer attach helpers automatically) does the same job.
    /// </summary>
    [RootFact]
    public void Kernel_with_the_pptp_helper_gives_each_client_only_its_own_gre()
    {
        using var lab = LabTopology.Create(new LabOptions { Mode = GatewayMode.KernelNat });
        lab.RunIn(lab.GatewayNs, "nft",
            "add ct helper ip natdlab pptph { type \"pptp\" protocol tcp; }; " +
            "add chain ip natdlab helpers { type filter hook prerouting priority filter; policy accept; }; " +
            "add rule ip natdlab helpers tcp dport 1723 ct helper set \"pptph\"");
        TwoClientsOneServer(lab, () => "kernel nftables masquerade with the pptp ct helper");
    }

    /// <summary>natd with its PPTP ALG (PptpHandler on the helper actor, GRE calls applied in shard 0).</summary>
    [RootFact]
    public void Natd_gives_each_client_only_its_own_gre()
    {
        using var lab = LabTopology.Create(new LabOptions());
        using var natd = new NatdGateway { ExtraConfig = NatdPptpConfig };
        natd.Start(lab);
        TwoClientsOneServer(lab, natd.Describe);
    }

    private void TwoClientsOneServer(LabTopology lab, Func<string> describe)
    {
        string script = Path.Combine(AppContext.BaseDirectory, "Scripts", "pptp_lab.py");
        Assert.True(File.Exists(script), script);
        lab.AddInsideHostAddress("10.0.0.3/24");
        using var server = lab.StartIn(lab.OutsideNs, "python3", "-u", script, "server", "--bind", lab.OutsideHost.ToString(), "--calls", "2", "--seconds", "8");
        Assert.NotNull(server.WaitForLine(l => l.Contains("\"listening\"", StringComparison.Ordinal), TimeSpan.FromSeconds(10)));
        // Both clients choose Call ID 0x4000: without Call ID masquerading the server could not tell their calls apart.
        using var a = lab.StartIn(lab.InsideNs, "python3", "-u", script, "client", "--bind", "10.0.0.2", "--server", lab.OutsideHost.ToString(), "--call-id", "0x4000", "--seconds", "4");
        using var b = lab.StartIn(lab.InsideNs, "python3", "-u", script, "client", "--bind", "10.0.0.3", "--server", lab.OutsideHost.ToString(), "--call-id", "0x4000", "--seconds", "4");
        bool done = a.WaitForExit(RunLimit) & b.WaitForExit(RunLimit) & server.WaitForExit(RunLimit);
        foreach (var p in new[] { a, b, server })
        {
            output.WriteLine(p.Dump());
        }
        Assert.True(done, "a PPTP script did not finish in time\n" + describe());

        var ca = LastJson(a.StdOutLines);
        var cb = LastJson(b.StdOutLines);
        foreach (var c in new[] { ca, cb })
        {
            Assert.False(c.TryGetProperty("error", out var err), err.ToString());
            Assert.True(c.GetProperty("own").GetInt32() > 0, $"client {c.GetProperty("client")} got none of its GRE\n{describe()}");
            Assert.Equal(0, c.GetProperty("foreign").GetInt32());
            // The client sees its own Call ID in the reply, whatever the server was told.
            Assert.Equal(0x4000, c.GetProperty("reply_peer_call_id").GetInt32());
        }
        Assert.NotEqual(ca.GetProperty("server_call_id").GetInt32(), cb.GetProperty("server_call_id").GetInt32());

        var calls = server.StdOutLines.Where(l => l.Contains("\"server_call_id\"", StringComparison.Ordinal)).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        Assert.Equal(2, calls.Count);
        Assert.All(calls, c => Assert.Equal(lab.GatewayOutside.ToString(), c.GetProperty("peer").GetString()));
        // The server was told two different Call IDs for the two calls (masqueraded), and got each call's GRE from the gateway only.
        Assert.NotEqual(calls[0].GetProperty("peer_call_id").GetInt32(), calls[1].GetProperty("peer_call_id").GetInt32());
        Assert.All(calls, c => Assert.True(c.GetProperty("ok").GetInt32() > 0 && c.GetProperty("bad").GetInt32() == 0, c.ToString()));
        Assert.Equal(0, a.ExitCode);
        Assert.Equal(0, b.ExitCode);
        Assert.Equal(0, server.ExitCode);
    }

    private static JsonElement LastJson(IReadOnlyList<string> lines)
    {
        var line = lines.LastOrDefault(l => l.StartsWith('{'));
        Assert.NotNull(line);
        return JsonDocument.Parse(line).RootElement;
    }
}
