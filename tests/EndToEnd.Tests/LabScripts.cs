using Natd.Control.Lab;

namespace Natd.Tests.EndToEnd;

/// <summary>Helper programs the end-to-end tests write into the lab's work directory.</summary>
internal static class LabScripts
{
    /// <summary>Writes <paramref name="text"/> (line ends made LF) as <paramref name="name"/> in the lab's work directory; returns its path.</summary>
    public static string Script(LabTopology lab, string name, string text)
    {
        var path = Path.Combine(lab.WorkDirectory, name);
        File.WriteAllText(path, text.Replace("\r", "", StringComparison.Ordinal) + "\n");
        return path;
    }

    /// <summary>Runs natctl (this build's) in the gateway namespace with <paramref name="args"/>, 30 s at most; the result whatever its exit code.</summary>
    public static ProcessResult Natctl(LabTopology lab, params string[] args)
    {
        string dotnet = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } dh ? dh : "dotnet";
        return lab.TryRunIn(lab.GatewayNs, TimeSpan.FromSeconds(30), dotnet, [Path.Combine(AppContext.BaseDirectory, "natctl.dll"), .. args]);
    }
}
