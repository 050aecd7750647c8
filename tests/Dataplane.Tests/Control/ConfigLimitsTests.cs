using System.Text;
using Natd.Control.Config;
using Natd.Tests.Ops;
using YamlDotNet.Core;

namespace Natd.Tests.Control;

/// <summary>
/// Nesting depth and size limits of natd.yaml. Before them, a 20000-deep document overflowed the
/// stack in the tree reader's recursion and killed the process (exit 134), a running gateway
/// included when it came through a reload.
/// </summary>
public class ConfigLimitsTests
{
    private const string Src = "natd.yaml";
    private const int Deep = 20000;
    private const string TooDeep = "lists and mappings nested more than 64 deep";

    private static string Repeat(string s, int n) => new StringBuilder(s.Length * n).Insert(0, s, n).ToString();

    private static string Path(string head, string step, int steps) => head + Repeat(step, steps);

    /// <summary>
    /// Runs <paramref name="body"/> on a thread with a 256 KiB stack (a thread-pool thread has 1.5 MiB):
    /// any recursion that grows with the document's depth would overflow here.
    /// </summary>
    private static void OnSmallStack(Action body)
    {
        Exception? failure = null;
        var t = new Thread(() =>
        {
            try
            {
                body();
            }
            catch (Exception e)
            {
                failure = e;
            }
        }, 256 * 1024);
        t.Start();
        t.Join();
        if (failure is not null)
        {
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(failure);
        }
    }

    // Each deep form, the 1-based line and column of the 65th collection (the first past the limit)
    // and its key path. The root mapping is the first level.
    public static TheoryData<string, string, long, long, string> DeepForms() => new()
    {
        { "flow lists", "rules: " + Repeat("[", Deep) + Repeat("]", Deep) + "\n", 1, 8 + 63, Path("rules", "[0]", 63) },
        { "flow mappings", "rules: " + Repeat("{a: ", Deep) + Repeat("}", Deep) + "\n", 1, 8 + (4 * 63), Path("rules", ".a", 63) },
        { "mixed flow", "rules: " + Repeat("[{a: ", Deep / 2) + Repeat("}]", Deep / 2) + "\n", 1, 9 + (5 * 31), Path("rules", "[0].a", 31) + "[0]" },
        { "in a value", "nat: {pool: " + Repeat("[", Deep) + Repeat("]", Deep) + "}\n", 1, 13 + 62, Path("nat.pool", "[0]", 62) },
        { "block mappings by indentation", string.Concat(Enumerable.Range(0, 1000).Select(i => new string(' ', i) + "a:\n")), 65, 65, Path("a", ".a", 63) },
        { "block lists on one line", "rules:\n" + Repeat("- ", Deep) + "x\n", 2, 1 + (2 * 63), Path("rules", "[0]", 63) },
        { "complex keys", Repeat("? ", Deep) + "x\n", 1, 1 + (2 * 64), "" },
    };

    [Theory]
    [MemberData(nameof(DeepForms))]
    public void A_deep_document_is_refused_with_the_first_node_past_the_limit(string form, string yaml, long line, long column, string path)
    {
        ConfigException? ex = null;
        OnSmallStack(() => ex = Assert.Throws<ConfigException>(() => ConfigLoader.Parse(yaml, Src)));
        var error = Assert.Single(ex!.Errors);
        Assert.True((line, column, path) == (error.Line, error.Column, error.Path), $"{form}: got {error}");
        Assert.StartsWith($"natd.yaml:{line}:{column}: ", error.ToString(), StringComparison.Ordinal);
        Assert.Contains(TooDeep, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Nesting_up_to_the_limit_is_not_refused_for_its_depth()
    {
        // The root mapping and 63 lists: 64 levels, refused only for what rules holds.
        var errors = Assert.Throws<ConfigException>(() => ConfigLoader.Parse("rules: " + Repeat("[", 63) + Repeat("]", 63) + "\n", Src)).Errors;
        Assert.DoesNotContain(errors, e => e.Message.Contains(TooDeep, StringComparison.Ordinal));
        Assert.Contains(errors, e => e.Path.StartsWith("rules", StringComparison.Ordinal));
    }

    [Fact]
    public void The_tree_reader_is_depth_bounded_on_its_own()
    {
        // Without the first pass, ReadNode's own bound stops at the same node instead of recursing on.
        YamlNestingException? ex = null;
        OnSmallStack(() => ex = Assert.Throws<YamlNestingException>(
            () => YamlTreeReader.ReadTreeOnly("rules: " + Repeat("[", Deep) + Repeat("]", Deep) + "\n", (_, _, _) => { })));
        Assert.Equal((1L, 71L), (ex!.Start.Line, ex.Start.Column));
        Assert.Equal(Path("rules", "[0]", 63), ex.Path);
    }

    [Fact]
    public void A_syntax_error_after_a_duplicate_key_still_reports_both()
    {
        // The first pass leaves syntax errors to the second, which collects what comes before them.
        var errors = Assert.Throws<ConfigException>(() => ConfigLoader.Parse("timeouts:\n  udp: 300\n  udp: 400\nnat: [\n", Src)).Errors;
        Assert.Contains(errors, e => e.Message.StartsWith("duplicate key 'udp'", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.Message.StartsWith("not valid YAML", StringComparison.Ordinal));
    }

    [Fact]
    public void A_file_larger_than_1_MiB_is_refused_where_the_limit_falls()
    {
        var dir = Directory.CreateTempSubdirectory("natd-limits-");
        try
        {
            // 1023 lines of 1024 bytes, then a line that passes the limit at its 1025th byte.
            string line = "#" + new string('x', 1022) + "\n";
            string head = "timeouts: { udp: 600 } #" + new string('x', 1024 - 25) + "\n";
            string file = System.IO.Path.Combine(dir.FullName, "natd.yaml");
            File.WriteAllText(file, head + Repeat(line, 1022) + new string('#', 4096) + "\n");
            var error = Assert.Single(Assert.Throws<ConfigException>(() => ConfigLoader.LoadFile(file)).Errors);
            Assert.Equal((1024L, 1025L, ""), (error.Line, error.Column, error.Path));
            Assert.StartsWith($"{file}:1024:1025: the file is larger than 1048576 bytes (1 MiB)", error.ToString(), StringComparison.Ordinal);

            // The same text given to Parse, and a file far larger than the limit (read no further than it).
            error = Assert.Single(Assert.Throws<ConfigException>(() => ConfigLoader.Parse(File.ReadAllText(file), Src)).Errors);
            Assert.Equal((1024L, 1025L), (error.Line, error.Column));
            File.WriteAllText(file, Repeat(line, 4096));
            error = Assert.Single(Assert.Throws<ConfigException>(() => ConfigLoader.LoadFile(file)).Errors);
            Assert.Equal((1025L, 1L), (error.Line, error.Column));
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    [Fact]
    public void A_file_of_exactly_1_MiB_and_the_shipped_natd_yaml_still_load()
    {
        var dir = Directory.CreateTempSubdirectory("natd-limits-");
        try
        {
            string head = "timeouts: { udp: 600 }\nnat: { pool: [198.51.100.1], ports: 1024-65535 }\n";
            string file = System.IO.Path.Combine(dir.FullName, "natd.yaml");
            File.WriteAllText(file, head + "#" + new string('x', ConfigLoader.MaxFileBytes - head.Length - 2) + "\n");
            Assert.Equal(ConfigLoader.MaxFileBytes, new FileInfo(file).Length);
            Assert.Equal(600, ConfigLoader.LoadFile(file).Nat.Timeouts.Udp);

            var shipped = ConfigLoader.LoadFile(System.IO.Path.Combine(Repo.Root, "control", "packaging", "natd.yaml"));
            Assert.NotEmpty(shipped.Nat.Pool);
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }
}
