namespace Natd.Tests.Io;

/// <summary>Finds the shared real-world captures: ../shared/captures beside the repository root.</summary>
internal static class Captures
{
    /// <summary>Overrides the location (for a checkout that is not beside shared/, e.g. a git worktree).</summary>
    public const string OverrideVariable = "NATD_CAPTURES_DIR";

    public static string Directory
    {
        get
        {
            string? overridden = Environment.GetEnvironmentVariable(OverrideVariable);
            if (!string.IsNullOrEmpty(overridden))
            {
                Assert.True(System.IO.Directory.Exists(overridden), $"{OverrideVariable}={overridden} does not exist");
                return overridden;
            }
            var dir = new DirectoryInfo(AppContext.BaseDirectory);
            while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Dataplane.sln")))
            {
                dir = dir.Parent;
            }
            Assert.True(dir is not null, $"no folder containing Dataplane.sln above {AppContext.BaseDirectory}");
            string path = Path.GetFullPath(Path.Combine(dir!.FullName, "..", "shared", "captures"));
            Assert.True(System.IO.Directory.Exists(path),
                $"the shared captures are missing: expected {path} (../shared/captures beside the repository root), or set {OverrideVariable}");
            return path;
        }
    }

    public static string Tcpdump => Path.Combine(Directory, "tcpdump");
}
