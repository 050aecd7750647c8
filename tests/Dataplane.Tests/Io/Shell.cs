using System.Diagnostics;

namespace Natd.Tests.Io;

/// <summary>Runs a command with a time limit and returns its output; throws with stderr when it fails.</summary>
internal static class Shell
{
    public static string Run(string file, params string[] args) => Run(TimeSpan.FromSeconds(20), file, args);

    public static string Run(TimeSpan timeout, string file, params string[] args)
    {
        var (code, stdout, stderr) = TryRun(timeout, file, args);
        if (code != 0)
        {
            throw new InvalidOperationException($"'{file} {string.Join(' ', args)}' exited {code}: {stderr.Trim()} {stdout.Trim()}");
        }
        return stdout;
    }

    public static (int ExitCode, string Stdout, string Stderr) TryRun(TimeSpan timeout, string file, params string[] args)
    {
        var psi = new ProcessStartInfo(file)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (string a in args)
        {
            psi.ArgumentList.Add(a);
        }
        using var p = Process.Start(psi) ?? throw new InvalidOperationException($"cannot start {file}");
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(timeout))
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException($"'{file} {string.Join(' ', args)}' did not finish within {timeout}");
        }
        p.WaitForExit();
        return (p.ExitCode, stdout.Result, stderr.Result);
    }
}

/// <summary>
/// A uniquely named network namespace holding one veth pair (va, vb), both up, IPv6 off so the
/// kernel sends no router solicitations or DAD probes. Deleted on Dispose, even after failures.
/// </summary>
internal sealed class VethNamespace : IDisposable
{
    public const string A = "va";
    public const string B = "vb";

    public VethNamespace()
    {
        Name = $"natd-io-{Guid.NewGuid():N}"[..20];
        Shell.Run("ip", "netns", "add", Name);
        try
        {
            // Before the veths exist, so they are created with IPv6 off.
            Exec("sh", "-c", "echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6; echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6");
            Shell.Run("ip", "-n", Name, "link", "add", A, "type", "veth", "peer", "name", B);
            Exec("sh", "-c", $"echo 1 > /proc/sys/net/ipv6/conf/{A}/disable_ipv6; echo 1 > /proc/sys/net/ipv6/conf/{B}/disable_ipv6");
            Shell.Run("ip", "-n", Name, "link", "set", A, "up");
            Shell.Run("ip", "-n", Name, "link", "set", B, "up");
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    public string Name { get; }

    /// <summary>
    /// A pair whose end <see cref="A"/> holds <paramref name="sender"/>/24 and reaches
    /// <paramref name="peer"/> (not local, a permanent neighbour) out of A, so a kernel socket's
    /// datagram to it arrives at <see cref="B"/>.
    /// </summary>
    public static VethNamespace WithSender(string sender, string peer)
    {
        var ns = new VethNamespace();
        try
        {
            ns.Exec("ip", "addr", "add", $"{sender}/24", "dev", A);
            ns.Exec("ip", "neigh", "replace", peer, "lladdr", "02:00:00:00:00:09", "dev", A, "nud", "permanent");
            return ns;
        }
        catch
        {
            ns.Dispose();
            throw;
        }
    }

    /// <summary>Runs a command inside the namespace.</summary>
    public string Exec(string file, params string[] args)
        => Shell.Run("ip", ["netns", "exec", Name, file, .. args]);

    public void Dispose()
    {
        // Deleting the namespace also removes the veth pair inside it.
        Shell.TryRun(TimeSpan.FromSeconds(20), "ip", "netns", "delete", Name);
    }
}
