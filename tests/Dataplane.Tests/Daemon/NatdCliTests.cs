using Natd.Control.Modes;

namespace Natd.Tests.Daemon;

/// <summary>natd's command line: bad configuration is refused with file and line, and nothing starts.</summary>
public class NatdCliTests
{
    [Fact]
    public async Task Run_with_a_bad_config_names_file_line_and_key_and_exits_2()
    {
        var dir = Directory.CreateTempSubdirectory("natd-cli-");
        try
        {
            string path = Path.Combine(dir.FullName, "natd.yaml");
            File.WriteAllText(path, "nat:\n  ports: 70000-1\n  pool: [not-an-address]\n");
            var (code, stdout, stderr) = await Run("run", "--config", path);
            Assert.Equal(2, code);
            Assert.Contains("nothing started", stderr);
            Assert.Contains("natd.yaml:2:", stderr);
            Assert.Contains("nat.ports", stderr);
            Assert.Contains("natd.yaml:3:", stderr);
            Assert.DoesNotContain("natd: ready", stdout);
        }
        finally
        {
            dir.Delete(true);
        }
    }

    [Fact]
    public async Task Config_check_accepts_a_good_file_and_usage_errors_exit_1()
    {
        var dir = Directory.CreateTempSubdirectory("natd-cli-");
        try
        {
            string path = Path.Combine(dir.FullName, "natd.yaml");
            File.WriteAllText(path, "timeouts: { udp: 600 }\n");
            var ok = await Run("config", "check", path);
            Assert.Equal(0, ok.Code);
            Assert.Contains(": ok", ok.Stdout);
            var unknown = await Run("frobnicate");
            Assert.Equal(1, unknown.Code);
            Assert.Contains("unknown command", unknown.Stderr);
            var missing = await Run("run", "--config");
            Assert.Equal(1, missing.Code);
            Assert.Contains("--config needs a value", missing.Stderr);
        }
        finally
        {
            dir.Delete(true);
        }
    }

    [Fact]
    public async Task Config_describe_prints_the_key_reference_and_config_misuse_names_the_forms()
    {
        var described = await Run("config", "describe");
        Assert.Equal(0, described.Code);
        Assert.Equal(Natd.Control.Config.ConfigLoader.Describe(), described.Stdout);
        Assert.Contains("allocation: dynamic", described.Stdout, StringComparison.Ordinal);
        foreach (string[] args in new[] { new[] { "config" }, ["config", "frob"], ["config", "check"], ["config", "describe", "x"] })
        {
            var bad = await Run(args);
            Assert.Equal(1, bad.Code);
            Assert.DoesNotContain("unknown command", bad.Stderr, StringComparison.Ordinal);
            Assert.Contains("natd: config", bad.Stderr, StringComparison.Ordinal);
        }
        Assert.Contains("expected 'check FILE' or 'describe', not 'frob'", (await Run("config", "frob")).Stderr, StringComparison.Ordinal);
        Assert.Contains("config check: expected one FILE", (await Run("config", "check")).Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Config_check_refuses_a_20000_deep_file_with_exit_2()
    {
        var dir = Directory.CreateTempSubdirectory("natd-cli-");
        try
        {
            // The reproducer: python3 -c "print('rules: '+'['*20000+']'*20000)" > deep.yaml
            string path = Path.Combine(dir.FullName, "deep.yaml");
            File.WriteAllText(path, "rules: " + new string('[', 20000) + new string(']', 20000) + "\n");
            var (code, stdout, stderr) = await Run("config", "check", path);
            Assert.Equal(2, code);
            Assert.Contains($"{path}:1:71: rules[0][0]", stderr, StringComparison.Ordinal);
            Assert.Contains("nested more than 64 deep", stderr, StringComparison.Ordinal);
            Assert.DoesNotContain(": ok", stdout, StringComparison.Ordinal);
        }
        finally
        {
            dir.Delete(true);
        }
    }

    private static async Task<(int Code, string Stdout, string Stderr)> Run(params string[] args)
    {
        var o = new StringWriter();
        var e = new StringWriter();
        int code = await NatdMain.RunAsync(args, o, e);
        return (code, o.ToString(), e.ToString());
    }
}
