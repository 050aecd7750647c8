using Natd.Control.Lab;
using Xunit.Abstractions;

namespace Natd.Tests.EndToEnd;

/// <summary>The README's main job: `natd` with no arguments runs the lab end to end and cleans up.</summary>
[Collection(EndToEndCollection.Name)]
[Trait("Category", "EndToEnd")]
public sealed class LabModeTests(ITestOutputHelper output)
{
    [RootFact]
    public void Natd_without_arguments_runs_the_lab_and_leaves_nothing_behind()
    {
        var before = LabTopology.ListNamespaces();
        var dll = Path.Combine(AppContext.BaseDirectory, "natd.dll");
        var dotnet = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host ? host : "dotnet";
        var r = Sh.TryRun(TimeSpan.FromSeconds(90), dotnet, dll);
        output.WriteLine(r.Combined);
        Assert.Equal(0, r.ExitCode);
        Assert.Contains("natd: ready", r.StdOut);
        Assert.Contains("hello from the outside host", r.StdOut);
        Assert.Contains("198.51.100.1 GET /hello.txt 200", r.StdOut);
        Assert.Contains("IP masquerading entries", r.StdOut);
        Assert.Matches(@"(?m)^tcp +\d+:\d\d\.\d\d 10\.0\.0\.2 +198\.51\.100\.2 +\d+ \(\d+\) -> 8080", r.StdOut);
        Assert.Matches(@"(?m)^udp +\d+:\d\d\.\d\d 10\.0\.0\.2 +198\.51\.100\.2 +\d+ \(\d+\) -> 7007", r.StdOut);
        Assert.Matches(@"(?m)^icmp +\d+:\d\d\.\d\d 10\.0\.0\.2 +198\.51\.100\.2 +\d+ \(\d+\)", r.StdOut);
        Assert.Contains("natd lab: http ok, udp ok, ping ok (3/3)", r.StdOut);
        var after = LabTopology.ListNamespaces();
        after.ExceptWith(before);
        Assert.Empty(after);
    }
}
