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

    /// <summary>
    /// Starts a UDP reflector on the outside host, port <paramref name="port"/>: it answers each
    /// datagram with the source address:port it saw (where natd made the sender appear), and is
    /// listening when this returns.
    /// </summary>
    public static LabProcess StartUdpReflector(LabTopology lab, int port)
    {
        string text = $$"""
            import socket
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("{{lab.OutsideHost}}", {{port}})); print("listening", flush=True)
            while True:
                data, peer = s.recvfrom(2048); s.sendto(("%s:%d" % peer).encode(), peer)
            """;
        var reflector = lab.StartIn(lab.OutsideNs, "python3", "-u", Script(lab, $"udp_reflector_{port}.py", text));
        if (reflector.WaitForLine(l => l == "listening", TimeSpan.FromSeconds(10)) is null)
        {
            reflector.Dispose();
            throw new InvalidOperationException($"the UDP reflector on port {port} did not start: " + string.Join('\n', reflector.StdErrLines));
        }
        return reflector;
    }

    /// <summary>
    /// Runs <paramref name="run"/> with the path of a NAT event log file in a temporary directory of
    /// its own, which outlives natd's (the gateway deletes that when disposed) and is removed after,
    /// also on failure.
    /// </summary>
    public static void WithEventLog(string prefix, Action<string> run)
    {
        var directory = Directory.CreateTempSubdirectory(prefix);
        try
        {
            run(Path.Combine(directory.FullName, "events.jsonl"));
        }
        finally
        {
            directory.Delete(recursive: true);
        }
    }

    /// <summary>Runs natctl (this build's) in the gateway namespace with <paramref name="args"/>, 30 s at most; the result whatever its exit code.</summary>
    public static ProcessResult Natctl(LabTopology lab, params string[] args)
    {
        string dotnet = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } dh ? dh : "dotnet";
        return lab.TryRunIn(lab.GatewayNs, TimeSpan.FromSeconds(30), dotnet, [Path.Combine(AppContext.BaseDirectory, "natctl.dll"), .. args]);
    }
}
