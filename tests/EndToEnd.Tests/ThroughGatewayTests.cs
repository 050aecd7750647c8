using Natd.Control.Lab;
using Xunit.Abstractions;

namespace Natd.Tests.EndToEnd;

/// <summary>
/// Real clients on the inside host reach real servers on the outside host through the gateway,
/// and the servers see the gateway's external address (masquerading, RFC 4787 / RFC 5382 / RFC 5508).
/// </summary>
[Collection(EndToEndCollection.Name)]
[Trait("Category", "EndToEnd")]
public sealed class ThroughGatewayTests(ITestOutputHelper output)
{
    private static readonly TimeSpan LogWait = TimeSpan.FromSeconds(3);

    [RootTheory]
    [MemberData(nameof(GatewayKinds.KindsWithAfPacket), MemberType = typeof(GatewayKinds))]
    public void Curl_fetches_the_file_and_the_server_sees_the_external_address(string kind)
    {
        using var scenario = Scenario.Start(kind, output);
        FetchAndCheck(scenario);
        scenario.Pass();
    }

    // In the lab, with transmit checksum offload on, frames reach the gateway with
    // partial checksums (TP_STATUS_CSUMNOTREADY); both settings must work.
    [RootTheory]
    [MemberData(nameof(GatewayKinds.KindsWithTxOffload), MemberType = typeof(GatewayKinds))]
    public void Curl_works_with_tx_checksum_offload_on_and_off(string kind, bool disableTxChecksumOffload)
    {
        using var scenario = Scenario.Start(kind, output, disableTxChecksumOffload);
        var features = scenario.Lab.RunIn(scenario.Lab.InsideNs, "ethtool", "-k", scenario.Lab.InsideHostIf).StdOut;
        Assert.Contains(disableTxChecksumOffload ? "tx-checksumming: off" : "tx-checksumming: on", features);
        FetchAndCheck(scenario);
        scenario.Pass();
    }

    [RootTheory]
    [MemberData(nameof(GatewayKinds.KindsWithAfPacket), MemberType = typeof(GatewayKinds))]
    public void Udp_request_gets_its_reply_and_the_server_sees_the_external_address(string kind)
    {
        using var scenario = Scenario.Start(kind, output);
        var lab = scenario.Lab;
        using var echo = LabPrograms.StartUdpEchoServer(lab);

        var exchange = LabPrograms.UdpRequest(lab, "hello udp");
        output.WriteLine(exchange.Output);
        output.WriteLine(LabPrograms.Report(null, echo));

        Assert.True(exchange.ExitCode == 0, exchange.Output);
        var reply = Assert.Single(exchange.Replies);
        var externalPort = echo.WaitForSeenPort(lab.GatewayOutside, LogWait);
        Assert.NotNull(externalPort);
        Assert.Equal($"echo from {lab.OutsideHost}:{echo.Port} to {lab.GatewayOutside}:{externalPort}: hello udp", reply);
        Assert.All(echo.Seen(), s => Assert.StartsWith($"{lab.GatewayOutside}:", s));
        Assert.Empty(exchange.Extras);
        scenario.Pass();
    }

    [RootTheory]
    [MemberData(nameof(GatewayKinds.KindsWithAfPacket), MemberType = typeof(GatewayKinds))]
    public void Ping_gets_three_replies_out_of_three(string kind)
    {
        using var scenario = Scenario.Start(kind, output);
        var ping = LabPrograms.Ping(scenario.Lab, 3);
        output.WriteLine(ping.Output);
        Assert.Equal(3, ping.Transmitted);
        Assert.Equal(3, ping.Received);
        scenario.Pass();
    }

    private void FetchAndCheck(Scenario scenario)
    {
        var lab = scenario.Lab;
        using var http = LabPrograms.StartHttpServer(lab);

        var curl = LabPrograms.Curl(lab, http.Url);
        http.Process.WaitForLine(l => l.Contains($"GET /{HttpServer.FileName}", StringComparison.Ordinal), LogWait);
        output.WriteLine(LabPrograms.Report(http, null));

        Assert.True(curl.ExitCode == 0, $"curl exit {curl.ExitCode}: {curl.StdErr}");
        Assert.Equal(HttpServer.FileContent, curl.StdOut);
        var request = Assert.Single(http.Requests());
        Assert.Equal(lab.GatewayOutside.ToString(), request.Client);
        Assert.Equal(200, request.Status);
    }
}
