using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text;

namespace Natd.Control.Lab;

/// <summary>
/// Thrown when a lab command fails: non-zero exit, time-out, or a program that cannot be started.
/// The message carries the full command line and the command's standard error.
/// </summary>
public sealed class LabException : Exception
{
    /// <summary>Creates the exception with a message that already names the command.</summary>
    /// <param name="message">Command line, exit status and captured standard error.</param>
    public LabException(string message) : base(message)
    {
    }

    /// <summary>Creates the exception wrapping the error that prevented the command from running.</summary>
    /// <param name="message">Command line and what went wrong.</param>
    /// <param name="inner">The underlying error (for example a missing executable).</param>
    public LabException(string message, Exception inner) : base(message, inner)
    {
    }
}

/// <summary>The outcome of a finished command: exit code and everything it printed.</summary>
/// <param name="CommandLine">The command as a shell would show it, for messages.</param>
/// <param name="ExitCode">The process exit status (0 = success).</param>
/// <param name="StdOut">Everything written to standard output.</param>
/// <param name="StdErr">Everything written to standard error.</param>
public sealed record ProcessResult(string CommandLine, int ExitCode, string StdOut, string StdErr)
{
    /// <summary>Standard output and standard error together, for diagnostics.</summary>
    public string Combined => StdErr.Length == 0 ? StdOut : StdOut + StdErr;
}

/// <summary>
/// The one place the lab runs external programs (ip, ethtool, nft, python3, curl...). Every call
/// has a time-out and captures both output streams, so a hung tool fails the test instead of
/// hanging it, and a failure names the exact command.
/// </summary>
public static partial class Sh
{
    /// <summary>Time-out applied by <see cref="Run(string, string[])"/>: 20 seconds.</summary>
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(20);

    /// <summary>Runs <paramref name="file"/> with arguments and waits up to <see cref="DefaultTimeout"/>.</summary>
    /// <param name="file">Program name (looked up on PATH) or path.</param>
    /// <param name="args">Arguments, passed verbatim (no shell parsing).</param>
    /// <returns>The finished command's output.</returns>
    /// <exception cref="LabException">Non-zero exit, time-out, or the program could not start.</exception>
    public static ProcessResult Run(string file, params string[] args) => Run(DefaultTimeout, file, args);

    /// <summary>Runs a command with an explicit time-out and throws on failure.</summary>
    /// <param name="timeout">How long to wait before killing the command.</param>
    /// <param name="file">Program name or path.</param>
    /// <param name="args">Arguments, passed verbatim.</param>
    /// <returns>The finished command's output.</returns>
    /// <exception cref="LabException">Non-zero exit, time-out, or the program could not start.</exception>
    public static ProcessResult Run(TimeSpan timeout, string file, params string[] args)
    {
        var result = TryRun(timeout, file, args);
        if (result.ExitCode != 0)
        {
            throw new LabException(
                $"command failed (exit {result.ExitCode}): {result.CommandLine}\n{result.StdErr.TrimEnd()}");
        }

        return result;
    }

    /// <summary>
    /// Runs a command and returns its result whatever the exit code; for clean-up paths and for
    /// commands whose failure is an expected answer (for example ping with no replies).
    /// </summary>
    /// <param name="timeout">How long to wait before killing the command.</param>
    /// <param name="file">Program name or path.</param>
    /// <param name="args">Arguments, passed verbatim.</param>
    /// <returns>The finished command's output and exit code.</returns>
    /// <exception cref="LabException">Time-out, or the program could not start.</exception>
    public static ProcessResult TryRun(TimeSpan timeout, string file, params string[] args)
    {
        var commandLine = Format(file, args);
        using var process = new Process { StartInfo = CreateStartInfo(file, args) };
        var stdout = new StringBuilder();
        var stderr = new StringBuilder();
        process.OutputDataReceived += (_, e) => Append(stdout, e.Data);
        process.ErrorDataReceived += (_, e) => Append(stderr, e.Data);
        try
        {
            process.Start();
        }
        catch (Exception e) when (e is System.ComponentModel.Win32Exception or InvalidOperationException)
        {
            throw new LabException($"cannot start: {commandLine}: {e.Message}", e);
        }

        process.StandardInput.Close();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        if (!process.WaitForExit(timeout))
        {
            TryKillTree(process);
            throw new LabException(
                $"command timed out after {timeout.TotalSeconds:0.#} s: {commandLine}\n{Snapshot(stderr).TrimEnd()}");
        }

        // The parameterless wait flushes the asynchronous output readers.
        process.WaitForExit();
        return new ProcessResult(commandLine, process.ExitCode, Snapshot(stdout), Snapshot(stderr));
    }

    /// <summary>Runs a command inside a network namespace (<c>ip netns exec NS ...</c>) and throws on failure.</summary>
    /// <param name="ns">Network namespace name.</param>
    /// <param name="file">Program name or path, resolved by <c>ip</c> on PATH.</param>
    /// <param name="args">Arguments, passed verbatim.</param>
    /// <returns>The finished command's output.</returns>
    /// <exception cref="LabException">Non-zero exit, time-out, or the program could not start.</exception>
    public static ProcessResult RunIn(string ns, string file, params string[] args) =>
        Run("ip", InNamespace(ns, file, args));

    /// <summary>Starts a long-lived program inside a network namespace; its output is captured line by line.</summary>
    /// <param name="ns">Network namespace name.</param>
    /// <param name="file">Program name or path.</param>
    /// <param name="args">Arguments, passed verbatim.</param>
    /// <returns>A handle that is killed on dispose.</returns>
    /// <exception cref="LabException">The program could not start.</exception>
    public static LabProcess StartIn(string ns, string file, params string[] args) =>
        LabProcess.Start("ip", InNamespace(ns, file, args));

    /// <summary>Builds the argument vector of <c>ip netns exec NS file args...</c>.</summary>
    /// <param name="ns">Network namespace name.</param>
    /// <param name="file">Program to execute in it.</param>
    /// <param name="args">Its arguments.</param>
    /// <returns>Arguments for the <c>ip</c> program.</returns>
    public static string[] InNamespace(string ns, string file, string[] args)
    {
        var all = new string[args.Length + 4];
        all[0] = "netns";
        all[1] = "exec";
        all[2] = ns;
        all[3] = file;
        args.CopyTo(all, 4);
        return all;
    }

    /// <summary>Sends a POSIX signal to a process; returns false if it no longer exists.</summary>
    /// <param name="pid">Process id.</param>
    /// <param name="signal">Signal number (15 = SIGTERM, 9 = SIGKILL).</param>
    /// <returns>True when the signal was delivered.</returns>
    public static bool Signal(int pid, int signal) => Kill(pid, signal) == 0;

    /// <summary>SIGTERM: asks a process to exit.</summary>
    public const int SigTerm = 15;

    /// <summary>SIGKILL: ends a process unconditionally.</summary>
    public const int SigKill = 9;

    /// <summary>SIGHUP: asks a daemon to reload its configuration.</summary>
    public const int SigHup = 1;

    internal static ProcessStartInfo CreateStartInfo(string file, string[] args)
    {
        var info = new ProcessStartInfo(file)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        foreach (var arg in args)
        {
            info.ArgumentList.Add(arg);
        }

        // Unbuffered python so log lines arrive as they happen, not at exit.
        info.Environment["PYTHONUNBUFFERED"] = "1";
        return info;
    }

    internal static string Format(string file, string[] args)
    {
        var sb = new StringBuilder(file);
        foreach (var arg in args)
        {
            sb.Append(' ');
            sb.Append(arg.Length == 0 || arg.AsSpan().IndexOfAny(" \"'$;|&<>*?\n") >= 0
                ? "'" + arg.Replace("'", "'\\''", StringComparison.Ordinal) + "'"
                : arg);
        }

        return sb.ToString();
    }

    internal static void TryKillTree(Process process)
    {
        try
        {
            process.Kill(entireProcessTree: true);
            process.WaitForExit(2000);
        }
        catch (InvalidOperationException)
        {
            // Already exited.
        }
    }

    private static void Append(StringBuilder sb, string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (sb)
        {
            sb.Append(line).Append('\n');
        }
    }

    private static string Snapshot(StringBuilder sb)
    {
        lock (sb)
        {
            return sb.ToString();
        }
    }

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int Kill(int pid, int sig);
}
