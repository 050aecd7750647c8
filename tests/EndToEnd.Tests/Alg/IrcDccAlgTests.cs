using System.Globalization;
using System.Text.RegularExpressions;
using Natd.Control.Lab;
using Xunit.Abstractions;

namespace Natd.Tests.EndToEnd.Alg;

/// <summary>
/// IRC DCC through the gateway: ngircd on the outside host relays a CTCP DCC offer from alice
/// (inside host, advertising 10.0.0.2 and her listening port) to bob (outside host). The ALG must
/// rewrite the offer to the external address (and a mapped port) and let bob's connection in; bob
/// reports the offer as he received it, so the rewrite is checked on the receiving side.
/// </summary>
[Collection(EndToEndCollection.Name)]
[Trait("Category", "EndToEnd")]
public sealed partial class IrcDccAlgTests(ITestOutputHelper output)
{
    private const int FileSize = 2 * 1024 * 1024;
    private const double ScriptSeconds = 25;

    // Bob is a third host, not the IRC server's: an expectation must not be limited to the server.
    // Which source alice then sees is the gateway's business: Linux's nf_nat_irc rewrites it to
    // the IRC server's address (nf_nat_follow_master), so it is not asserted.
    private const string BobAddress = "198.51.100.3/24";
    private static readonly TimeSpan ExitWait = TimeSpan.FromSeconds(ScriptSeconds + 5);

    [AlgTheory("irc")]
    [MemberData(nameof(AlgGatewayKinds.Kinds), MemberType = typeof(AlgGatewayKinds))]
    public void Dcc_send_offer_carries_the_external_address_and_the_file_arrives(string kind)
    {
        using var scenario = Scenario.Start(AlgGatewayKinds.Create(kind), output);
        var lab = scenario.Lab;
        using var irc = IrcServer.Start(lab);
        var file = Path.Combine(lab.WorkDirectory, "photo.bin");
        var expected = LabFiles.WriteRandom(file, FileSize, seed: 6667);

        var (offerer, taker) = Exchange(lab, irc, "send", file);

        var offer = Offer(taker);
        Assert.Equal("SEND", offer.Kind);
        Assert.Equal(LabFiles.Decimal(lab.GatewayOutside), offer.Address);
        Assert.Equal(FileSize, offer.Size);
        AssertBothCompleted(offerer, taker);
        Assert.Contains($"received {FileSize.ToString(CultureInfo.InvariantCulture)} sha256 {expected}", taker.StdOutLines);
        Assert.Contains($"acknowledged {FileSize.ToString(CultureInfo.InvariantCulture)}", offerer.StdOutLines);
        scenario.Pass();
    }

    [AlgTheory("irc")]
    [MemberData(nameof(AlgGatewayKinds.Kinds), MemberType = typeof(AlgGatewayKinds))]
    public void Dcc_chat_offer_carries_the_external_address_and_the_chat_connects(string kind)
    {
        using var scenario = Scenario.Start(AlgGatewayKinds.Create(kind), output);
        var lab = scenario.Lab;
        using var irc = IrcServer.Start(lab);

        var (offerer, taker) = Exchange(lab, irc, "chat", null);

        var offer = Offer(taker);
        Assert.Equal("CHAT", offer.Kind);
        Assert.Equal(LabFiles.Decimal(lab.GatewayOutside), offer.Address);
        AssertBothCompleted(offerer, taker);
        Assert.Contains("chat got " + DccClients.OffererChat, taker.StdOutLines);
        Assert.Contains("chat got " + DccClients.TakerChat, offerer.StdOutLines);
        scenario.Pass();
    }

    /// <summary>Runs bob then alice; bob's verdict first, so a bad offer fails fast instead of alice waiting for a connection.</summary>
    private (LabProcess Offerer, LabProcess Taker) Exchange(LabTopology lab, IrcServer irc, string mode, string? file)
    {
        var taker = DccClients.StartTaker(lab, lab.AddOutsideHostAddress(BobAddress), ScriptSeconds);
        var offerer = DccClients.StartOfferer(lab, mode, file, ScriptSeconds);
        _takerDone = taker.WaitForExit(ExitWait);
        _offererDone = offerer.WaitForExit(_takerDone && taker.ExitCode == 0 ? ExitWait : TimeSpan.FromSeconds(2));
        output.WriteLine("---- alice (inside) ----\n" + offerer.Dump());
        output.WriteLine("---- bob (outside) ----\n" + taker.Dump());
        output.WriteLine("---- ngircd ----\n" + irc.Process.Dump());
        return (offerer, taker);
    }

    private bool _takerDone;
    private bool _offererDone;

    /// <summary>Both scripts exited 0 (checked after the offer, whose assertion explains a failure best).</summary>
    private void AssertBothCompleted(LabProcess offerer, LabProcess taker)
    {
        Assert.True(_takerDone && taker.ExitCode == 0, "bob did not complete the exchange");
        Assert.True(_offererDone && offerer.ExitCode == 0, "alice did not complete the exchange");
    }

    private static (string Kind, uint Address, int Port, int Size) Offer(LabProcess taker)
    {
        var line = taker.StdOutLines.FirstOrDefault(l => l.StartsWith("offer ", StringComparison.Ordinal));
        Assert.NotNull(line);
        var m = OfferLine().Match(line);
        Assert.True(m.Success, line);
        return (m.Groups[1].Value, uint.Parse(m.Groups[2].Value, CultureInfo.InvariantCulture),
            int.Parse(m.Groups[3].Value, CultureInfo.InvariantCulture),
            m.Groups[4].Success ? int.Parse(m.Groups[4].Value, CultureInfo.InvariantCulture) : 0);
    }

    [GeneratedRegex(@"^offer (SEND|CHAT) (\d+) (\d+)(?: (\d+))?$", RegexOptions.CultureInvariant)]
    private static partial Regex OfferLine();
}
