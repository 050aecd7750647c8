using System.Text.Json;
using Natd.Control.Modes;

namespace Natd.Tests.Daemon;

/// <summary>
/// <c>natd lookup</c> from the configuration file alone (RFC 7422, the legal-request case): every
/// subscriber of a /20 both ways against the formula computed here independently, the CSV table,
/// the JSON shape, not found (exit 1) and usage or configuration errors (exit 2).
/// </summary>
public sealed class NatdLookupTests : IDisposable
{
    // 4096 subscribers on 16 addresses: 256 per address, floor(64512 / 256) = 252 ports each.
    private const string Deterministic = """
        nat:
          pool: [198.51.100.16/28]
          allocation: deterministic
          deterministic: { inside: [10.64.16.0/20] }
        """;

    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("natd-lookup-");

    public void Dispose() => _dir.Delete(true);

    private string Config(string yaml)
    {
        string path = Path.Combine(_dir.FullName, $"natd-{Guid.NewGuid():N}.yaml");
        File.WriteAllText(path, yaml);
        return path;
    }

    /// <summary>The formula written out again: subscriber i of 10.64.16.0/20 gets pool[i / 256], ports 1024 + (i % 256) * 252 and up.</summary>
    private static (string Inside, string External, int Low, int High) Expected(int i)
    {
        string inside = $"10.64.{16 + (i >> 8)}.{i & 255}";
        string external = $"198.51.100.{16 + i / 256}";
        int low = 1024 + (i % 256) * 252;
        return (inside, external, low, low + 251);
    }

    private static async Task<(int Code, string Stdout, string Stderr)> Run(params string[] args)
    {
        var o = new StringWriter { NewLine = "\n" };
        var e = new StringWriter { NewLine = "\n" };
        int code = await NatdMain.RunAsync(["lookup", .. args], o, e);
        return (code, o.ToString(), e.ToString());
    }

    [Fact]
    public async Task Every_subscriber_of_a_slash_20_is_found_both_ways_as_the_formula_says()
    {
        string path = Config(Deterministic);
        var rng = new Random(4096);
        for (int i = 0; i < 4096; i++)
        {
            var (inside, external, low, high) = Expected(i);
            string line = $"{inside} {external}:{low}-{high}\n";
            var forward = await Run("--config", path, "--inside", inside);
            Assert.Equal(0, forward.Code);
            Assert.Equal(line, forward.Stdout);
            int port = i % 3 == 0 ? low : i % 3 == 1 ? high : rng.Next(low, high + 1);
            var reverse = await Run("--config", path, "--external", $"{external}:{port}");
            Assert.Equal(0, reverse.Code);
            Assert.Equal(line, reverse.Stdout);
        }
    }

    [Fact]
    public async Task The_table_is_one_csv_row_per_subscriber_in_order()
    {
        var (code, stdout, _) = await Run("--config", Config(Deterministic), "--table");
        Assert.Equal(0, code);
        string[] lines = stdout.TrimEnd('\n').Split('\n');
        Assert.Equal(4097, lines.Length);
        Assert.Equal("inside,external,port-low,port-high", lines[0]);
        for (int i = 0; i < 4096; i++)
        {
            var (inside, external, low, high) = Expected(i);
            Assert.Equal($"{inside},{external},{low},{high}", lines[i + 1]);
        }
    }

    [Fact]
    public async Task Json_gives_the_same_names_as_the_csv()
    {
        string path = Config(Deterministic);
        var one = await Run("--config", path, "--external", "198.51.100.17:1024", "--json");
        Assert.Equal(0, one.Code);
        using var doc = JsonDocument.Parse(one.Stdout);
        Assert.Equal(["inside", "external", "port-low", "port-high"], doc.RootElement.EnumerateObject().Select(p => p.Name));
        Assert.Equal("10.64.17.0", doc.RootElement.GetProperty("inside").GetString());
        Assert.Equal("198.51.100.17", doc.RootElement.GetProperty("external").GetString());
        Assert.Equal(1024, doc.RootElement.GetProperty("port-low").GetInt32());
        Assert.Equal(1275, doc.RootElement.GetProperty("port-high").GetInt32());

        var table = await Run("--config", path, "--table", "--json");
        Assert.Equal(0, table.Code);
        using var all = JsonDocument.Parse(table.Stdout);
        Assert.Equal(4096, all.RootElement.GetArrayLength());
        Assert.Equal("10.64.31.255", all.RootElement[4095].GetProperty("inside").GetString());
        Assert.Equal(65535, all.RootElement[4095].GetProperty("port-high").GetInt32());
    }

    [Theory]
    [InlineData("--inside", "10.64.32.0", "in no nat.deterministic.inside prefix")]
    [InlineData("--external", "203.0.113.1:5000", "not a pool address")]
    [InlineData("--external", "198.51.100.16:1023", "ranges use ports 1024-65535")]
    public async Task What_no_subscriber_holds_exits_1_with_why_on_stderr(string option, string value, string why)
    {
        var (code, stdout, stderr) = await Run("--config", Config(Deterministic), option, value);
        Assert.Equal(1, code);
        Assert.Equal("", stdout);
        Assert.Contains(why, stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_port_in_no_range_is_not_found()
    {
        // 256 subscribers x 100 ports from 1024 end at 26623: the rest of the address is no one's.
        string path = Config("nat:\n  pool: [198.51.100.16]\n  allocation: deterministic\n  deterministic: { inside: [10.64.0.0/24], ports: 100 }\n");
        Assert.Equal(0, (await Run("--config", path, "--external", "198.51.100.16:26623")).Code);
        var (code, _, stderr) = await Run("--config", path, "--external", "198.51.100.16:26624"); // subscriber 256 does not exist
        Assert.Equal(1, code);
        Assert.Contains("in no subscriber's range", stderr, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(new string[0], "exactly one of")]
    [InlineData(new[] { "--inside", "10.64.16.1", "--external", "198.51.100.16:2000" }, "exactly one of")]
    [InlineData(new[] { "--inside" }, "--inside needs a value")]
    [InlineData(new[] { "--inside", "10.64.16" }, "not an IPv4 address")]
    [InlineData(new[] { "--external", "198.51.100.16" }, "not an external address and port")]
    [InlineData(new[] { "--external", "198.51.100.16:70000" }, "not an external address and port")]
    [InlineData(new[] { "--table", "extra" }, "unexpected argument 'extra'")]
    public async Task Usage_errors_exit_2(string[] args, string why)
    {
        var (code, stdout, stderr) = await Run(["--config", Config(Deterministic), .. args]);
        Assert.Equal(2, code);
        Assert.Equal("", stdout);
        Assert.Contains(why, stderr, StringComparison.Ordinal);
        Assert.Contains("usage: natd lookup", stderr, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("nat:\n  allocation: dynamic\n", "dynamic")]
    [InlineData("nat:\n  allocation: port-block\n", "port-block")]
    [InlineData("", "dynamic")]
    public async Task Other_allocation_modes_say_lookup_needs_deterministic_and_exit_2(string yaml, string mode)
    {
        var (code, stdout, stderr) = await Run("--config", Config(yaml), "--inside", "10.0.0.2");
        Assert.Equal(2, code);
        Assert.Equal("", stdout);
        Assert.Contains($"deterministic lookup needs nat.allocation: deterministic (this configuration has nat.allocation: {mode})", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_bad_configuration_exits_2_with_the_arithmetic()
    {
        var (code, _, stderr) = await Run("--config", Config("nat:\n  pool: [198.51.100.16/28]\n  allocation: deterministic\n  deterministic: { inside: [10.64.0.0/10] }\n"), "--table");
        Assert.Equal(2, code);
        Assert.Contains("nat.deterministic", stderr, StringComparison.Ordinal);
        Assert.Contains("holds 4194304 subscribers; 16 addresses x 64512 ports", stderr, StringComparison.Ordinal);
    }
}
