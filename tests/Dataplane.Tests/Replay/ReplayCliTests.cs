using Natd.Control.Modes;
using Natd.Dataplane.Io;
using Natd.Dataplane.Nat;
using Natd.Tests.Io;
using Natd.Tests.Support;

namespace Natd.Tests.Replay;

/// <summary>`natd replay` on the command line: exit codes 0 ok, 1 usage, 2 bad configuration or input (NatdMain.Usage).</summary>
public sealed class ReplayCliTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("natd-replay-cli-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static async Task<(int Code, string Out, string Err)> Natd(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = await NatdMain.RunAsync(args, stdout, stderr).WaitAsync(TimeSpan.FromSeconds(30));
        return (code, stdout.ToString(), stderr.ToString());
    }

    private string Path_(string name) => Path.Combine(_dir, name);

    [Fact]
    public async Task Missing_in_is_a_usage_error()
    {
        var (code, _, err) = await Natd("replay", "--out", Path_("out.pcapng"));
        Assert.Equal(1, code);
        Assert.Contains("--in", err);
        Assert.Contains("usage:", err);
        Assert.Contains("natd replay", err);
        Assert.False(File.Exists(Path_("out.pcapng")));
    }

    [Fact]
    public async Task In_without_a_value_is_a_usage_error()
    {
        var (code, _, err) = await Natd("replay", "--in", "--out", Path_("out.pcapng"));
        Assert.Equal(1, code);
        Assert.Contains("usage:", err);
    }

    [Fact]
    public async Task Nonexistent_input_exits_2_naming_it()
    {
        string missing = Path_("no-such-capture.pcap");
        var (code, _, err) = await Natd("replay", "--in", missing, "--out", Path_("out.pcapng"));
        Assert.Equal(2, code);
        Assert.Contains(missing, err);
    }

    [Fact]
    public async Task Input_of_another_link_type_exits_2_naming_the_link_type()
    {
        string raw = Path.Combine(Captures.Tcpdump, "LINKTYPE_RAW_ipv4.pcap");
        int linkType;
        using (var reader = new PcapReader(raw))
        {
            linkType = reader.FileLinkType;
        }
        Assert.NotEqual(1, linkType);
        var (code, _, err) = await Natd("replay", "--in", raw, "--out", Path_("out.pcapng"));
        Assert.Equal(2, code);
        Assert.Contains($"link type {linkType}", err);
        Assert.Contains("LINKTYPE_RAW_ipv4.pcap", err);
    }

    [Fact]
    public async Task Config_with_an_error_exits_2_naming_file_and_line()
    {
        string yaml = Path_("natd.yaml");
        File.WriteAllText(yaml, "nat:\n  pool: [198.51.100.1]\n  ports: 9000-80\n");
        string input = Path_("in.pcap");
        File.WriteAllBytes(input, ReplayKit.ClassicPcap([new CapFrame(Frames.Udp("10.0.0.2", 5353, "203.0.113.53", 53), ReplayKit.T0)]));
        var (code, _, err) = await Natd("replay", "--config", yaml, "--in", input, "--out", Path_("out.pcapng"));
        Assert.Equal(2, code);
        Assert.Contains($"{yaml}:3:", err);
        Assert.Contains("nat.ports", err);
    }

    [Fact]
    public async Task Good_run_exits_0_writes_out_and_drops_and_prints_the_summary()
    {
        long t = ReplayKit.T0;
        var frames = new List<CapFrame>
        {
            Lab.RouterArp(t),
            new(Frames.Udp("10.0.0.2", 5353, "203.0.113.53", 53, "query"u8.ToArray()), t + 1_000_000),
            new(Lab.FromOutside(Frames.Udp("203.0.113.99", 7, "198.51.100.1", 4444, "knock"u8.ToArray())), t + 2_000_000),
        };
        string input = Path_("in.pcap"), output = Path_("out.pcapng"), drops = Path_("drops.pcapng");
        File.WriteAllBytes(input, ReplayKit.ClassicPcap(frames));
        var (code, stdout, err) = await Natd("replay", "--in", input, "--out", output, "--drops", drops);
        Assert.True(code == 0, err);
        Assert.Contains("dropped", stdout);
        Assert.Contains("frames read        3", stdout);
        Assert.Contains(DropReasons.Label(DropReason.NoSession), stdout);

        var sent = ReplayKit.Read(File.ReadAllBytes(output));
        Assert.Equal(2, sent.Count); // the ARP reply and the masqueraded query
        Assert.Equal("198.51.100.1", Frames.Src(sent[1].Data));
        var dropped = Assert.Single(ReplayKit.Read(File.ReadAllBytes(drops)));
        Assert.Equal(DropReasons.Label(DropReason.NoSession), dropped.Comment);
        Assert.Equal(frames[2].Data, dropped.Data);

        var (code2, stdout2, _) = await Natd("replay", "--in", input, "--out", output, "--inside-trace");
        Assert.Equal(0, code2);
        Assert.Contains("inside trace", stdout2);
        Assert.Contains("dropped", stdout2);
    }

    [Fact]
    public async Task Input_that_is_not_a_capture_exits_2()
    {
        string input = Path_("notes.txt");
        File.WriteAllText(input, "this is not a capture file, just some text long enough to have a header\n");
        var (code, _, err) = await Natd("replay", "--in", input, "--out", Path_("out.pcapng"));
        Assert.Equal(2, code);
        Assert.Contains(input, err);
    }

    /// <summary>An output natd cannot create is an environment error: one clear line and exit 1, not an unhandled exception.</summary>
    [Fact]
    public async Task Output_in_a_missing_directory_is_reported_not_thrown()
    {
        string input = Path_("in.pcap");
        File.WriteAllBytes(input, ReplayKit.ClassicPcap([new CapFrame(Frames.Udp("10.0.0.2", 5353, "203.0.113.53", 53), ReplayKit.T0)]));
        string output = Path.Combine(_dir, "no-such-dir", "out.pcapng");
        (int Code, string Out, string Err) result = default;
        var e = await Record.ExceptionAsync(async () => result = await Natd("replay", "--in", input, "--out", output));
        Assert.True(e is null, $"natd replay threw {e?.GetType().Name}: {e?.Message}");
        Assert.Equal(1, result.Code);
        Assert.Contains(output, result.Err);
    }
}
