using Natd.Control.Lab;

namespace Natd.Tests.EndToEnd;

/// <summary>
/// The real PCP and NAT-PMP clients the PCP tests drive: <c>pcpnatpmpc</c> (Cisco's libpcp, built
/// once per test run by <c>../shared/tools/build-pcp-client.sh</c> into a cache directory) and
/// <c>natpmpc</c> (Debian's libnatpmp client, from control/install-deps.sh).
/// </summary>
internal static class PcpClients
{
    /// <summary>Overrides where build-pcp-client.sh lives (default: ../shared/tools beside the repository root, or beside NATD_CAPTURES_DIR).</summary>
    public const string ToolsVariable = "NATD_TOOLS_DIR";

    /// <summary>A ready pcpnatpmpc binary to use instead of building one.</summary>
    public const string ClientVariable = "NATD_PCPNATPMPC";

    private static readonly Lazy<string> Built = new(Build, LazyThreadSafetyMode.ExecutionAndPublication);

    /// <summary>The pcpnatpmpc binary (built on first use).</summary>
    public static string Pcpnatpmpc => Built.Value;

    /// <summary>The shared tools directory: <see cref="ToolsVariable"/>, else beside NATD_CAPTURES_DIR, else ../shared/tools beside the repository root.</summary>
    public static string ToolsDirectory
    {
        get
        {
            if (Environment.GetEnvironmentVariable(ToolsVariable) is { Length: > 0 } tools)
            {
                return tools;
            }
            if (Environment.GetEnvironmentVariable("NATD_CAPTURES_DIR") is { Length: > 0 } captures)
            {
                return Path.GetFullPath(Path.Combine(captures, "..", "tools"));
            }
            var dir = new DirectoryInfo(AppContext.BaseDirectory);
            while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Dataplane.sln")))
            {
                dir = dir.Parent;
            }
            if (dir is null)
            {
                throw new InvalidOperationException($"no folder containing Dataplane.sln above {AppContext.BaseDirectory}; set {ToolsVariable}");
            }
            return Path.GetFullPath(Path.Combine(dir.FullName, "..", "shared", "tools"));
        }
    }

    private static string Build()
    {
        if (Environment.GetEnvironmentVariable(ClientVariable) is { Length: > 0 } given)
        {
            return given;
        }
        string script = Path.Combine(ToolsDirectory, "build-pcp-client.sh");
        if (!File.Exists(script))
        {
            throw new FileNotFoundException($"the PCP client's build script is missing (set {ToolsVariable} or {ClientVariable})", script);
        }
        // One build per sources: the cache is keyed by the libpcp version file, so a run reuses the last build.
        string version = File.Exists(Path.Combine(ToolsDirectory, "libpcp.VERSION"))
            ? File.ReadAllText(Path.Combine(ToolsDirectory, "libpcp.VERSION")).Trim() : "unknown";
        string cache = Path.Combine(Path.GetTempPath(), "natd-pcp-client-" + (uint)StableHash(version));
        string binary = Path.Combine(cache, "pcpnatpmpc");
        if (File.Exists(binary))
        {
            return binary;
        }
        var r = Sh.TryRun(TimeSpan.FromMinutes(10), "bash", script, cache);
        if (r.ExitCode != 0 || !File.Exists(binary))
        {
            throw new InvalidOperationException("building pcpnatpmpc failed:\n" + r.Combined);
        }
        return binary;
    }

    private static int StableHash(string s)
    {
        int h = 17;
        foreach (char c in s)
        {
            h = unchecked(h * 31 + c);
        }
        return h;
    }
}
