using Natd.Control.Lab;

namespace Natd.Tests.EndToEnd;

/// <summary>
/// The lab's process handle: the waits the end-to-end tests use to read what a server printed
/// (a line can reach the test after the client has its answer).
/// </summary>
[Collection(EndToEndCollection.Name)]
[Trait("Category", "EndToEnd")]
public sealed class LabProcessTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(10);

    [Fact]
    public void WaitForLines_returns_once_the_count_is_reached_including_lines_printed_later()
    {
        using var p = LabProcess.Start("sh", "-c", "echo got a; sleep 0.3; echo other; echo got b; exec sleep 30");
        var lines = p.WaitForLines(l => l.StartsWith("got ", StringComparison.Ordinal), 2, Wait);
        Assert.Equal(["got a", "got b"], lines);
        Assert.False(p.HasExited); // it returned on the count, not on the program's end
    }

    [Fact]
    public void WaitForLines_returns_what_it_saw_when_the_program_exits_short_of_the_count()
    {
        using var p = LabProcess.Start("sh", "-c", "echo got a; echo got b");
        var lines = p.WaitForLines(l => l.StartsWith("got ", StringComparison.Ordinal), 3, Wait);
        Assert.Equal(["got a", "got b"], lines);
        Assert.True(p.HasExited);
    }

    [Fact]
    public void WaitForLines_returns_short_on_time_out_and_WaitForLine_returns_null()
    {
        using var p = LabProcess.Start("sh", "-c", "echo got a; exec sleep 30");
        var lines = p.WaitForLines(l => l.StartsWith("got ", StringComparison.Ordinal), 2, TimeSpan.FromMilliseconds(500));
        Assert.Equal(["got a"], lines);
        Assert.Null(p.WaitForLine(l => l == "never", TimeSpan.FromMilliseconds(200)));
        Assert.Equal("got a", p.WaitForLine(l => l.StartsWith("got ", StringComparison.Ordinal), Wait));
        Assert.Throws<ArgumentOutOfRangeException>(() => p.WaitForLines(_ => true, 0, Wait));
    }
}
