using Natd.Fuzzing.Targets;

namespace Natd.Tests.FuzzReplay;

/// <summary>
/// Replays every file of the fuzz corpora (tests/Fuzz/corpus/TARGET/) and every finding
/// (tests/Fuzz/findings/TARGET/) through its target, uninstrumented and without afl: each finding
/// afl ever saved is a regression test by being in that directory. A target throws when one of
/// its invariants fails, so the test fails with the target's message.
/// </summary>
public class FuzzCorpusReplayTests
{
    private static readonly string Root = FindRoot();

    public static TheoryData<string> Inputs()
    {
        var data = new TheoryData<string>();
        foreach (string kind in new[] { "corpus", "findings" })
        {
            foreach (string target in FuzzTargets.Names)
            {
                string dir = Path.Combine(Root, "tests", "Fuzz", kind, target);
                if (!Directory.Exists(dir))
                {
                    continue;
                }
                foreach (string file in Directory.GetFiles(dir).Order(StringComparer.Ordinal))
                {
                    data.Add(Path.GetRelativePath(Path.Combine(Root, "tests", "Fuzz"), file).Replace('\\', '/'));
                }
            }
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(Inputs))]
    public void Input_keeps_its_targets_invariants(string file)
    {
        string target = file.Split('/')[1];
        FuzzTarget run = FuzzTargets.Get(target) ?? throw new InvalidOperationException($"no fuzz target '{target}'");
        run(File.ReadAllBytes(Path.Combine(Root, "tests", "Fuzz", file)));
    }

    [Fact]
    public void Every_target_has_a_seed_corpus()
    {
        foreach (string target in FuzzTargets.Names)
        {
            Assert.NotEmpty(Directory.GetFiles(Path.Combine(Root, "tests", "Fuzz", "corpus", target)));
        }
    }

    // The checksum oracle must be able to fail: the RFC's own example, and corrupted frames caught.
    [Fact]
    public void Checksum_oracle_follows_rfc1071_and_catches_corruption()
    {
        Assert.Equal(0xddf2, Rfc1071.Fold(Rfc1071.Sum([0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]))); // RFC 1071 section 3
        uint a = Natd.Dataplane.Packets.Ipv4.Parse("10.0.0.2"), b = Natd.Dataplane.Packets.Ipv4.Parse("192.0.2.10");
        foreach (byte[] good in new[] { FrameBuilder.Tcp(a, 1, b, 2, 0x18, 7, 9, "x"u8), FrameBuilder.Udp(a, 1, b, 2, "yz"u8), FrameBuilder.Icmp(a, b, 8, 0, 1, "p"u8) })
        {
            Assert.Null(Rfc1071.CheckFrame(good));
            var badL4 = (byte[])good.Clone();
            badL4[^1] ^= 0x40;
            Assert.Contains("checksum does not verify", Rfc1071.CheckFrame(badL4));
            var badIp = (byte[])good.Clone();
            badIp[22] ^= 1; // TTL
            Assert.Equal("emitted IPv4 header checksum does not verify", Rfc1071.CheckFrame(badIp));
        }
    }

    [Fact]
    public void Targets_take_empty_and_trivial_inputs()
    {
        ConfigTarget.Run(System.Text.Encoding.UTF8.GetBytes(Natd.Control.Config.ConfigLoader.Describe()));
        ConfigTarget.Run("nat: [1, 2"u8);
        PcapTarget.Run([]);
        AlgTarget.Run([]);
        PacketTarget.Run([0, 1]);
    }

    private static string FindRoot()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
        {
            if (File.Exists(Path.Combine(d.FullName, "Dataplane.sln")))
            {
                return d.FullName;
            }
        }
        throw new InvalidOperationException("repository root (Dataplane.sln) not found above " + AppContext.BaseDirectory);
    }
}
