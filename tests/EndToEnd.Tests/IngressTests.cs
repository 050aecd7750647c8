using System.Globalization;
using System.Text.RegularExpressions;
using Natd.Control.Lab;
using Xunit.Abstractions;

namespace Natd.Tests.EndToEnd;

/// <summary>
/// natd's inside address answers only on the inside: a ping to it from the outside host (routed
/// there through natd's outside address) gets no reply and is counted, while the outside address
/// answers. natd only: the kernel gateway owns 10.0.0.1 and answers it, which is the bug natd avoids.
/// </summary>
[Collection(EndToEndCollection.Name)]
[Trait("Category", "EndToEnd")]
public sealed class IngressTests(ITestOutputHelper output)
{
    public static TheoryData<string> NatdKinds => GatewayKinds.Rows(["natd", "natd-w1"]);

    [RootTheory]
    [MemberData(nameof(NatdKinds))]
    public void Ping_of_the_inside_address_from_outside_is_dropped_and_the_outside_address_answers(string kind)
    {
        using var scenario = Scenario.Start(kind, output);
        var lab = scenario.Lab;
        lab.RunIn(lab.OutsideNs, "ip", "route", "replace", $"{lab.GatewayInside}/32", "via", lab.GatewayOutside.ToString());

        var inside = Ping(lab, lab.GatewayInside.ToString());
        output.WriteLine(inside.Output);
        Assert.Equal(3, inside.Transmitted);
        Assert.Equal(0, inside.Received);
        long dropped = WaitForDrops(lab, "inside-address-from-outside", 3);
        Assert.True(dropped >= 3, $"natd counted {dropped} inside-address-from-outside drops, expected 3");

        var outside = Ping(lab, lab.GatewayOutside.ToString());
        output.WriteLine(outside.Output);
        Assert.Equal(3, outside.Transmitted);
        Assert.Equal(3, outside.Received);
        scenario.Pass();
    }

    private static PingResult Ping(LabTopology lab, string target)
    {
        var r = lab.TryRunIn(lab.OutsideNs, TimeSpan.FromSeconds(15), "ping", "-n", "-c", "3", "-W", "2", "-i", "0.2", target);
        var m = Regex.Match(r.StdOut, @"(\d+) packets transmitted, (\d+) (?:packets )?received", RegexOptions.CultureInvariant);
        return m.Success
            ? new PingResult(int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture), int.Parse(m.Groups[2].Value, CultureInfo.InvariantCulture), r.Combined)
            : new PingResult(0, 0, r.Combined);
    }

    /// <summary>natd_drops_total for <paramref name="reason"/> from /metrics, polled until it reaches <paramref name="atLeast"/> or 5 s pass.</summary>
    private static long WaitForDrops(LabTopology lab, string reason, long atLeast)
    {
        long value = -1;
        var until = DateTime.UtcNow + TimeSpan.FromSeconds(5);
        do
        {
            var metrics = lab.RunIn(lab.GatewayNs, "curl", "-s", "http://127.0.0.1:9180/metrics").StdOut;
            var m = Regex.Match(metrics, $"^natd_drops_total\\{{reason=\"{reason}\"\\}} (\\d+)$", RegexOptions.Multiline | RegexOptions.CultureInvariant);
            value = m.Success ? long.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture) : -1;
            if (value >= atLeast)
            {
                break;
            }
            Thread.Sleep(200);
        }
        while (DateTime.UtcNow < until);
        return value;
    }
}
