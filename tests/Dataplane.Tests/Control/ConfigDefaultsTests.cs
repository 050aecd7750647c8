using Natd.Control.Config;
using Natd.Dataplane.Nat;

namespace Natd.Tests.Control;

/// <summary>
/// Each default is written once (NatSettings' and NatdConfig's initialisers); what the loader fills
/// in for an empty file, the README's configuration block and `natd config describe`'s text must
/// all say the same.
/// </summary>
public class ConfigDefaultsTests
{
    private static readonly NatSettings Initialisers = new() { Inside = null!, Outside = null!, Pool = [] };

    public static TheoryData<string> Documents => ["README.md", "describe"];

    [Fact]
    public void Empty_file_gets_the_settings_initialisers()
    {
        var d = ConfigLoader.Default();
        AssertSameDefaults(Initialisers, new NatdConfig { Nat = Initialisers, ControlListen = "", LogLevel = "" }.BatchSize, d, "ConfigLoader.Default()");
    }

    [Theory]
    [MemberData(nameof(Documents))]
    public void Documented_defaults_equal_the_code(string document)
    {
        string yaml = document == "README.md" ? ReadmeConfigBlock() : ConfigLoader.Describe();
        var documented = ConfigLoader.Parse(yaml, document);
        var d = ConfigLoader.Default();
        AssertSameDefaults(d.Nat, d.BatchSize, documented, document);
    }

    [Theory]
    [MemberData(nameof(Documents))]
    public void Every_key_the_loader_reads_is_documented(string document)
    {
        // The loader names the keys it accepts in its *Keys tables; each must appear as "key:" in the
        // document (as a setting or a commented example), so a new key cannot go undocumented.
        string yaml = document == "README.md" ? ReadmeYamlBlocks() : ConfigLoader.Describe();
        var missing = new List<string>();
        int tables = 0;
        foreach (var field in typeof(ConfigLoader).GetFields(System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Static))
        {
            if (!field.Name.EndsWith("Keys", StringComparison.Ordinal) || field.GetValue(null) is not string[] keys)
            {
                continue;
            }
            tables++;
            foreach (string key in keys)
            {
                if (!System.Text.RegularExpressions.Regex.IsMatch(yaml, $@"(^|[\s{{,#-]){System.Text.RegularExpressions.Regex.Escape(key)}:", System.Text.RegularExpressions.RegexOptions.Multiline))
                {
                    missing.Add($"{field.Name}: {key}");
                }
            }
        }
        Assert.True(tables >= 20, $"only {tables} key tables found in ConfigLoader");
        Assert.True(missing.Count == 0, $"{document} does not document: {string.Join(", ", missing)}");
    }

    private static void AssertSameDefaults(NatSettings expected, int expectedBatch, NatdConfig actual, string what)
    {
        var a = actual.Nat;
        Assert.True(expected.Timeouts == a.Timeouts, $"{what}: timeouts {a.Timeouts}, defaults {expected.Timeouts}");
        Assert.True(expected.MaxSessions == a.MaxSessions, $"{what}: limits.sessions {a.MaxSessions}, default {expected.MaxSessions}");
        Assert.True(expected.MaxNeighbours == a.MaxNeighbours, $"{what}: limits.neighbours {a.MaxNeighbours}, default {expected.MaxNeighbours}");
        Assert.True(expected.PortMin == a.PortMin && expected.PortMax == a.PortMax, $"{what}: nat.ports {a.PortMin}-{a.PortMax}, default {expected.PortMin}-{expected.PortMax}");
        Assert.True(expected.Mapping == a.Mapping, $"{what}: nat.mapping {a.Mapping}, default {expected.Mapping}");
        Assert.True(expected.Filtering == a.Filtering, $"{what}: nat.filtering {a.Filtering}, default {expected.Filtering}");
        Assert.True(expected.VerifyL4Checksums == a.VerifyL4Checksums, $"{what}: dataplane.verify-checksums {a.VerifyL4Checksums}, default {expected.VerifyL4Checksums}");
        Assert.True(expected.MartianFilter == a.MartianFilter, $"{what}: interfaces.outside.martian-filter {a.MartianFilter}, default {expected.MartianFilter}");
        Assert.True(expectedBatch == actual.BatchSize, $"{what}: dataplane.batch {actual.BatchSize}, default {expectedBatch}");
    }

    /// <summary>Every ```yaml block of README.md (the configuration block and each section's own), one after the other.</summary>
    private static string ReadmeYamlBlocks()
    {
        string text = File.ReadAllText(Path.Combine(Ops.Repo.Root, "README.md"));
        var blocks = new System.Text.StringBuilder();
        for (int start = text.IndexOf("```yaml\n", StringComparison.Ordinal); start >= 0; start = text.IndexOf("```yaml\n", start, StringComparison.Ordinal))
        {
            start += "```yaml\n".Length;
            int end = text.IndexOf("```", start, StringComparison.Ordinal);
            blocks.Append(text[start..end]);
            start = end + 3;
        }
        return blocks.ToString();
    }

    /// <summary>The first ```yaml block of README.md (the documented configuration), without its trailing addendum.</summary>
    private static string ReadmeConfigBlock()
    {
        string text = File.ReadAllText(Path.Combine(Ops.Repo.Root, "README.md"));
        int start = text.IndexOf("```yaml\n", StringComparison.Ordinal);
        Assert.True(start >= 0, "README.md has no ```yaml block");
        start += "```yaml\n".Length;
        int end = text.IndexOf("```", start, StringComparison.Ordinal);
        string block = text[start..end];
        // The block ends with a second "interfaces:" listing per-interface extras as comments; the
        // configuration proper is what comes before it.
        int again = block.IndexOf("\ninterfaces:", StringComparison.Ordinal);
        return again > 0 ? block[..(again + 1)] : block;
    }
}
