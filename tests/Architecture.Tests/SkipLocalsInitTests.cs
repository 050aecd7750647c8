using System.Runtime.CompilerServices;
using System.Text.RegularExpressions;

namespace Natd.Tests.Architecture;

/// <summary>
/// The dataplane skips the zeroing of locals (docs/architecture.md, "Native interop"): the module
/// carries <see cref="SkipLocalsInitAttribute"/>, and no local that is declared without a value has
/// its address taken, the one read of an unwritten local that C#'s definite assignment lets through
/// (a native call handed <c>&amp;x</c> would read what the stack held before).
/// </summary>
public sealed partial class SkipLocalsInitTests
{
    [Fact]
    public void The_dataplane_module_skips_zeroing_locals()
    {
        var module = typeof(Natd.Dataplane.Nat.NatEngine).Assembly.ManifestModule;
        Assert.True(module.IsDefined(typeof(SkipLocalsInitAttribute), inherit: false), "Natd.Dataplane lacks [module: SkipLocalsInit]");
    }

    [Fact]
    public void No_dataplane_local_declared_without_a_value_has_its_address_taken()
    {
        string dataplane = Path.Combine(RepositoryRoot(), "dataplane");
        var files = Directory.EnumerateFiles(dataplane, "*.cs", SearchOption.AllDirectories)
            .Where(f => !f.Contains($"{Path.DirectorySeparatorChar}bin{Path.DirectorySeparatorChar}", StringComparison.Ordinal)
                && !f.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}", StringComparison.Ordinal))
            .ToList();
        Assert.True(files.Count > 50, $"only {files.Count} source files under {dataplane}");
        var found = new List<string>();
        foreach (string file in files)
        {
            found.AddRange(UnwrittenAddressTaken(File.ReadAllText(file)).Select(l => $"{Path.GetRelativePath(dataplane, file)}: {l}"));
        }
        Assert.True(found.Count == 0, "locals passed by address before any value was written (give them `= default`):\n  " + string.Join("\n  ", found));
    }

    /// <summary>The scan itself: it finds an unwritten local whose address is taken, and passes one given a value.</summary>
    [Fact]
    public void The_scan_finds_an_unwritten_local_passed_by_address()
    {
        const string bad = "void F()\n{\n    ulong v;\n    _ = LibC.read(_fd, &v, sizeof(ulong));\n}\n";
        const string good = "void F()\n{\n    ulong v = 0;\n    _ = LibC.read(_fd, &v, sizeof(ulong));\n    Stats k;\n    k = Read();\n}\n";
        Assert.Equal(["line 3: ulong v;"], UnwrittenAddressTaken(bad));
        Assert.Empty(UnwrittenAddressTaken(good));
    }

    /// <summary>Declarations without a value (<c>T name;</c>) whose name is later used as <c>&amp;name</c> in the same file.</summary>
    private static List<string> UnwrittenAddressTaken(string source)
    {
        var found = new List<string>();
        string[] lines = source.Split('\n');
        for (int i = 0; i < lines.Length; i++)
        {
            var m = Declaration().Match(lines[i]);
            if (!m.Success || Modifier().IsMatch(lines[i]))
            {
                continue; // a field or a return, not a local
            }
            var address = new Regex($@"&{Regex.Escape(m.Groups["name"].Value)}\b");
            if (lines.Skip(i + 1).Any(address.IsMatch))
            {
                found.Add($"line {i + 1}: {lines[i].Trim()}");
            }
        }
        return found;
    }

    private static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Dataplane.sln")))
            {
                return dir.FullName;
            }
        }
        throw new InvalidOperationException($"no Dataplane.sln above {AppContext.BaseDirectory}");
    }

    [GeneratedRegex(@"^\s*[A-Za-z_][\w.<>\[\]]*\*?\s+(?<name>[a-z_]\w*);\s*$")]
    private static partial Regex Declaration();

    [GeneratedRegex(@"^\s*(return|private|public|internal|protected|static|readonly)\b")]
    private static partial Regex Modifier();
}
