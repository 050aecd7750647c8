using System.Net;
using Natd.Control.Lab;
using Xunit.Abstractions;

namespace Natd.Tests.EndToEnd;

/// <summary>
/// Nothing from outside reaches the inside host unless it answers an inside host's own flow:
/// address-and-port-dependent filtering (RFC 4787 REQ-8), the lesson of CVE-2000-0289.
/// </summary>
[Collection(EndToEndCollection.Name)]
[Trait("Category", "EndToEnd")]
public sealed class FilteringTests(ITestOutputHelper output)
{
    private static readonly TimeSpan ReplyWait = TimeSpan.FromSeconds(5);

    [RootTheory]
    [MemberData(nameof(GatewayKinds.Kinds), MemberType = typeof(GatewayKinds))]
    public void Datagram_from_a_third_address_to_an_open_mapping_is_not_delivered(string kind)
    {
        using var scenario = Scenario.Start(kind, output);
        var lab = scenario.Lab;
        var stranger = lab.AddOutsideHostAddress("198.51.100.3/24");
        using var echo = LabPrograms.StartUdpEchoServer(lab);

        // The client keeps its socket open after the first reply, reporting anything else, until
        // just after the server's push arrives (the stranger's datagram, sent first, would be in by then).
        using var client = LabPrograms.StartUdpClient(lab, "open a mapping", gapSeconds: 15, until: "server push");
        Assert.NotNull(client.WaitForLine(l => l.StartsWith("reply ", StringComparison.Ordinal), ReplyWait));
        var externalPort = echo.WaitForSeenPort(lab.GatewayOutside, ReplyWait);
        Assert.NotNull(externalPort);

        // Same source port as the server, wrong address: must be dropped.
        LabPrograms.SendUdp(lab, lab.OutsideNs, stranger, echo.Port, lab.GatewayOutside, externalPort.Value, "unsolicited");
        // Control: the session's own remote endpoint may send unprompted; it must arrive, which
        // proves the client would have reported the stranger's datagram had it been delivered.
        LabPrograms.SendUdp(lab, lab.OutsideNs, lab.OutsideHost, echo.Port, lab.GatewayOutside, externalPort.Value, "server push");

        Assert.True(client.WaitForExit(TimeSpan.FromSeconds(25)), client.Dump());
        var exchange = LabPrograms.ParseUdpClient(client);
        output.WriteLine(exchange.Output);
        output.WriteLine(LabPrograms.Report(null, echo));

        Assert.True(exchange.ExitCode == 0, exchange.Output);
        Assert.Equal(2, exchange.Replies.Count);
        Assert.Equal([$"{lab.OutsideHost}:{echo.Port}: server push"], exchange.Extras);
        // Endpoint-independent mapping (RFC 4787 REQ-1): both requests used one external port.
        Assert.Equal([$"{lab.GatewayOutside}:{externalPort}", $"{lab.GatewayOutside}:{externalPort}"], echo.Seen());
        scenario.Pass();
    }

    [RootTheory]
    [MemberData(nameof(GatewayKinds.Kinds), MemberType = typeof(GatewayKinds))]
    public void Port_scan_of_the_external_address_delivers_nothing_inside(string kind)
    {
        using var scenario = Scenario.Start(kind, output);
        var lab = scenario.Lab;
        var scanner = lab.AddOutsideHostAddress("198.51.100.3/24");
        using var echo = LabPrograms.StartUdpEchoServer(lab);

        // Everything arriving at the inside host from beyond its own subnet; the echo replies are
        // the positive control, anything else leaked through.
        using var capture = LabPrograms.StartCapture(lab, lab.InsideNs, lab.InsideHostIf, "ip and not src net 10.0.0.0/24");
        using var client = LabPrograms.StartUdpClient(lab, "keep a mapping open", gapSeconds: 2.5);
        Assert.NotNull(client.WaitForLine(l => l.StartsWith("reply ", StringComparison.Ordinal), ReplyWait));
        var externalPort = echo.WaitForSeenPort(lab.GatewayOutside, ReplyWait);
        Assert.NotNull(externalPort);

        var ports = new SortedSet<int> { externalPort.Value, LabPrograms.EchoPort };
        for (var i = 0; i < 200; i++)
        {
            ports.Add(1024 + i * (65535 - 1024) / 199);
        }

        var scan = LabPrograms.Scan(lab, scanner, lab.GatewayOutside, ports);
        output.WriteLine(scan.StdOut);

        Assert.True(client.WaitForExit(TimeSpan.FromSeconds(10)), client.Dump());
        var packets = capture.Finish(TimeSpan.FromMilliseconds(500));
        var exchange = LabPrograms.ParseUdpClient(client);
        output.WriteLine(exchange.Output);
        output.WriteLine("captured on the inside host:\n  " + string.Join("\n  ", packets));

        Assert.True(exchange.ExitCode == 0, exchange.Output);
        Assert.Empty(exchange.Extras);
        var fromServer = $"IP {lab.OutsideHost}.{echo.Port} > {lab.InsideHost}.";
        var leaked = packets.Where(p => !p.Contains(fromServer, StringComparison.Ordinal)).ToList();
        Assert.Equal(2, packets.Count - leaked.Count);
        Assert.Empty(leaked);
        scenario.Pass();
    }
}
