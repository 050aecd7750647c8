using System.Diagnostics;

namespace Natd.Ctl;

/// <summary>
/// `natctl config check FILE`: validates a configuration file without a running natd by running
/// `natd config check FILE`, the natd installed beside natctl (install.sh puts both in one
/// directory) or else the first on PATH. natctl does not link the configuration loader itself: natctl
/// references only the contracts assembly (no YAML parser, no dataplane), and the loader belongs to
/// natd, which must accept exactly what this check accepts.
/// </summary>
internal static class ConfigCheck
{
    /// <summary>The check parses one small file; anything longer is a hung process.</summary>
    private static readonly TimeSpan Limit = TimeSpan.FromSeconds(60);

    /// <summary>Environment variable naming the natd executable to run, overriding the search.</summary>
    public const string NatdEnvironmentVariable = "NATD_BIN";

    /// <returns>natd's exit code (0 valid, 2 rejected), 1 when natd cannot be found or run.</returns>
    public static async Task<int> RunAsync(string file, TextWriter stdout, TextWriter stderr, CancellationToken ct)
    {
        string? natd = FindNatd();
        if (natd is null)
        {
            await stderr.WriteLineAsync("natctl: config check runs 'natd config check FILE', and natd was not found beside natctl or on PATH (set NATD_BIN to its path)").ConfigureAwait(false);
            return Cli.Usage;
        }
        var psi = new ProcessStartInfo(natd)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        psi.ArgumentList.Add("config");
        psi.ArgumentList.Add("check");
        psi.ArgumentList.Add(file);
        using var process = new Process { StartInfo = psi };
        try
        {
            process.Start();
        }
        catch (System.ComponentModel.Win32Exception ex)
        {
            await stderr.WriteLineAsync($"natctl: cannot run {natd}: {ex.Message}").ConfigureAwait(false);
            return Cli.Usage;
        }
        var output = process.StandardOutput.ReadToEndAsync(ct);
        var errors = process.StandardError.ReadToEndAsync(ct);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(Limit);
        try
        {
            await process.WaitForExitAsync(timeout.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            await stderr.WriteLineAsync($"natctl: {natd} config check did not finish within {Limit.TotalSeconds} s").ConfigureAwait(false);
            return Cli.Usage;
        }
        await stdout.WriteAsync(await output.ConfigureAwait(false)).ConfigureAwait(false);
        await stderr.WriteAsync(await errors.ConfigureAwait(false)).ConfigureAwait(false);
        return process.ExitCode == 0 ? Cli.Ok : process.ExitCode == 1 ? Cli.Usage : Cli.Unreachable;
    }

    private static string? FindNatd()
    {
        if (Environment.GetEnvironmentVariable(NatdEnvironmentVariable) is { Length: > 0 } configured)
        {
            return configured;
        }
        string beside = Path.Combine(AppContext.BaseDirectory, "natd");
        if (File.Exists(beside))
        {
            return beside;
        }
        foreach (string dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries))
        {
            string candidate = Path.Combine(dir, "natd");
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }
        return null;
    }
}
