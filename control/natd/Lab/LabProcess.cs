using System.Diagnostics;
using System.Text;

namespace Natd.Control.Lab;

/// <summary>
/// A long-lived program started by the lab (a server, a capture, the daemon). Its standard output
/// and standard error are collected line by line so a test can wait for a readiness line and read
/// logs while the program runs. Disposing stops it: SIGTERM, a short grace period, then SIGKILL.
/// </summary>
public sealed class LabProcess : IDisposable
{
    private readonly Process _process;
    private readonly List<string> _stdout = [];
    private readonly List<string> _stderr = [];
    private readonly object _gate = new();

    private LabProcess(Process process, string commandLine)
    {
        _process = process;
        CommandLine = commandLine;
    }

    /// <summary>The command as a shell would show it.</summary>
    public string CommandLine { get; }

    /// <summary>Process id (for <c>ip netns exec</c> this is the executed program itself: ip execs it).</summary>
    public int Pid => _process.Id;

    /// <summary>True once the program has exited.</summary>
    public bool HasExited => _process.HasExited;

    /// <summary>Exit code; only meaningful after <see cref="HasExited"/> is true.</summary>
    public int ExitCode => _process.ExitCode;

    /// <summary>Standard output lines received so far (a copy).</summary>
    public IReadOnlyList<string> StdOutLines
    {
        get
        {
            lock (_gate)
            {
                return [.. _stdout];
            }
        }
    }

    /// <summary>Standard error lines received so far (a copy).</summary>
    public IReadOnlyList<string> StdErrLines
    {
        get
        {
            lock (_gate)
            {
                return [.. _stderr];
            }
        }
    }

    /// <summary>Everything printed so far, standard output then standard error, for diagnostics.</summary>
    public string Dump()
    {
        lock (_gate)
        {
            var sb = new StringBuilder();
            sb.Append("$ ").Append(CommandLine).Append('\n');
            foreach (var line in _stdout)
            {
                sb.Append("out| ").Append(line).Append('\n');
            }

            foreach (var line in _stderr)
            {
                sb.Append("err| ").Append(line).Append('\n');
            }

            return sb.ToString();
        }
    }

    /// <summary>Starts a program with captured output.</summary>
    /// <param name="file">Program name or path.</param>
    /// <param name="args">Arguments, passed verbatim.</param>
    /// <returns>The running program.</returns>
    /// <exception cref="LabException">The program could not start.</exception>
    public static LabProcess Start(string file, params string[] args)
    {
        var process = new Process { StartInfo = Sh.CreateStartInfo(file, args) };
        var handle = new LabProcess(process, Sh.Format(file, args));
        process.OutputDataReceived += (_, e) => handle.Add(handle._stdout, e.Data);
        process.ErrorDataReceived += (_, e) => handle.Add(handle._stderr, e.Data);
        try
        {
            process.Start();
        }
        catch (Exception e) when (e is System.ComponentModel.Win32Exception or InvalidOperationException)
        {
            process.Dispose();
            throw new LabException($"cannot start: {handle.CommandLine}: {e.Message}", e);
        }

        process.StandardInput.Close();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return handle;
    }

    /// <summary>
    /// Waits until a line (on standard output or standard error) satisfies <paramref name="match"/>.
    /// </summary>
    /// <param name="match">Predicate over one line.</param>
    /// <param name="timeout">Upper bound on the wait.</param>
    /// <returns>The first matching line, or null on time-out or if the program exited without printing one.</returns>
    public string? WaitForLine(Func<string, bool> match, TimeSpan timeout)
    {
        var lines = WaitForLines(match, 1, timeout);
        return lines.Count > 0 ? lines[0] : null;
    }

    /// <summary>
    /// Waits until at least <paramref name="count"/> lines (standard output, then standard error)
    /// satisfy <paramref name="match"/>. A program that prints a line and then answers a client
    /// can be answered before the line has come through the pipe reader, so a test that checks
    /// what a server printed after its client got the answer waits here rather than reading
    /// <see cref="StdOutLines"/> at once.
    /// </summary>
    /// <param name="match">Predicate over one line.</param>
    /// <param name="count">How many matching lines to wait for (at least 1).</param>
    /// <param name="timeout">Upper bound on the wait.</param>
    /// <returns>Every matching line seen, in order: fewer than <paramref name="count"/> on time-out
    /// or if the program exited without printing them.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="count"/> is below 1.</exception>
    public IReadOnlyList<string> WaitForLines(Func<string, bool> match, int count, TimeSpan timeout)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(count, 1);
        var deadline = Stopwatch.GetTimestamp() + (long)(timeout.TotalSeconds * Stopwatch.Frequency);
        var drained = false;
        while (true)
        {
            int seen;
            List<string> found;
            lock (_gate)
            {
                found = FindAll(match);
                if (found.Count >= count)
                {
                    return found;
                }

                seen = _stdout.Count + _stderr.Count;
            }

            var remaining = deadline - Stopwatch.GetTimestamp();
            if (drained || remaining <= 0)
            {
                return found;
            }

            if (_process.HasExited)
            {
                // The parameterless wait flushes the output readers; then scan one last time.
                _process.WaitForExit();
                drained = true;
                continue;
            }

            lock (_gate)
            {
                // Woken by every new line; the 100 ms cap notices a program that exited silently.
                if (_stdout.Count + _stderr.Count == seen)
                {
                    Monitor.Wait(_gate, TimeSpan.FromMilliseconds(Math.Min(100, remaining * 1000.0 / Stopwatch.Frequency)));
                }
            }
        }
    }

    private List<string> FindAll(Func<string, bool> match)
    {
        var found = new List<string>();
        foreach (var line in _stdout)
        {
            if (match(line))
            {
                found.Add(line);
            }
        }

        foreach (var line in _stderr)
        {
            if (match(line))
            {
                found.Add(line);
            }
        }

        return found;
    }

    /// <summary>Waits for the program to exit by itself.</summary>
    /// <param name="timeout">Upper bound on the wait.</param>
    /// <returns>True if it exited in time (output is then complete).</returns>
    public bool WaitForExit(TimeSpan timeout)
    {
        if (!_process.WaitForExit(timeout))
        {
            return false;
        }

        _process.WaitForExit();
        return true;
    }

    /// <summary>
    /// Stops the program: SIGTERM, up to <paramref name="grace"/> to exit, then SIGKILL.
    /// Safe to call more than once and after the program exited.
    /// </summary>
    /// <param name="grace">How long SIGTERM is given before SIGKILL.</param>
    public void Stop(TimeSpan grace)
    {
        try
        {
            if (!_process.HasExited)
            {
                Sh.Signal(_process.Id, Sh.SigTerm);
                if (!_process.WaitForExit(grace))
                {
                    Sh.TryKillTree(_process);
                }
            }

            _process.WaitForExit(2000);
        }
        catch (InvalidOperationException)
        {
            // Never started or already reaped.
        }

        lock (_gate)
        {
            Monitor.PulseAll(_gate);
        }
    }

    /// <summary>Stops the program (SIGTERM, 3 s grace, SIGKILL) and releases the process handle.</summary>
    public void Dispose()
    {
        Stop(TimeSpan.FromSeconds(3));
        _process.Dispose();
    }

    /// <summary>
    /// Waits, at most <paramref name="timeout"/>, until every line the program wrote to standard
    /// output has been read (its end seen): a timed wait for exit does not wait for the reader, so
    /// the last lines of a stopped program can otherwise still be in flight.
    /// </summary>
    /// <returns>True when the end of standard output was seen.</returns>
    public bool WaitForStdOutEnd(TimeSpan timeout)
    {
        long deadline = Stopwatch.GetTimestamp() + (long)(timeout.TotalSeconds * Stopwatch.Frequency);
        lock (_gate)
        {
            while (!_stdoutEnded)
            {
                long remaining = deadline - Stopwatch.GetTimestamp();
                if (remaining <= 0)
                {
                    return false;
                }
                Monitor.Wait(_gate, TimeSpan.FromMilliseconds(Math.Min(100, remaining * 1000.0 / Stopwatch.Frequency)));
            }
            return true;
        }
    }

    private bool _stdoutEnded;

    private void Add(List<string> lines, string? line)
    {
        if (line is null)
        {
            if (ReferenceEquals(lines, _stdout))
            {
                lock (_gate)
                {
                    _stdoutEnded = true;
                    Monitor.PulseAll(_gate);
                }
            }
            return;
        }

        lock (_gate)
        {
            lines.Add(line);
            Monitor.PulseAll(_gate);
        }
    }
}
