using Xunit.Abstractions;

namespace Natd.Tests.EndToEnd.Alg;

/// <summary>
/// TFTP (RFC 1350) through the gateway: tftpd-hpa on the outside host answers a read request from
/// a new port (its transfer identifier), a reply the NAT's filtering would drop without the ALG's
/// expectation; the tftp-hpa client on the inside host fetches a file byte for byte.
/// </summary>
[Collection(EndToEndCollection.Name)]
[Trait("Category", "EndToEnd")]
public sealed class TftpAlgTests(ITestOutputHelper output)
{
    // 2048 blocks of 512 bytes (tftp-hpa's client does not negotiate blksize, RFC 2348).
    private const int FileSize = 1024 * 1024;

    [AlgTheory("tftp")]
    [MemberData(nameof(AlgGatewayKinds.Kinds), MemberType = typeof(AlgGatewayKinds))]
    public void Tftp_client_fetches_a_file_byte_for_byte(string kind)
    {
        using var scenario = Scenario.Start(AlgGatewayKinds.Create(kind), output);
        var lab = scenario.Lab;
        using var tftp = TftpServer.Start(lab);
        var expected = LabFiles.WriteRandom(Path.Combine(tftp.RootDirectory, "boot.bin"), FileSize, seed: 69);
        var local = Path.Combine(lab.WorkDirectory, "tftp-out.bin");

        // tftp-hpa retransmits for 25 s by default before giving up: the outer bound is above that.
        var result = lab.TryRunIn(lab.InsideNs, TimeSpan.FromSeconds(40),
            "tftp", "-4", "-m", "binary", lab.OutsideHost.ToString(), "-c", "get", "boot.bin", local);
        output.WriteLine($"tftp exit {result.ExitCode}\n{result.Combined}");

        Assert.True(result.ExitCode == 0 && result.Combined.Trim().Length == 0, $"tftp exit {result.ExitCode}: {result.Combined}");
        Assert.Equal(expected, LabFiles.Sha256(local));
        scenario.Pass();
    }
}
