using System.Net.Sockets;
using System.Runtime.InteropServices;
using Microsoft.Extensions.Logging;
using Natd.Control.Config;
using Natd.Control.Daemon;
using Natd.Dataplane.Io;
using Natd.Dataplane.Packets;

namespace Natd.Control.Modes;

/// <summary>`natd run`: live forwarding on the configured interfaces until SIGTERM/SIGINT; SIGHUP reloads.</summary>
internal static class RunMode
{
    /// <summary>Exit status when natd stops because a poller kept failing (EX_SOFTWARE, sysexits.h).</summary>
    public const int FaultExitCode = 70;

    public static async Task<int> RunAsync(string? configPath, string? statePath, TextWriter stdout, TextWriter stderr)
    {
        var config = NatdMain.LoadConfig(configPath, stderr);
        StateSnapshot.FileModel? restore = null;
        if (statePath is not null)
        {
            try
            {
                restore = StateSnapshot.Read(statePath);
            }
            catch (Exception e) when (e is InvalidDataException or IOException or UnauthorizedAccessException)
            {
                // A bad snapshot must not keep the gateway down: start empty and say why.
                stderr.WriteLine($"natd: warning: state snapshot ignored: {e.Message}");
            }
        }
        using var loggers = NatdMain.Loggers(config.LogLevel);
        OpenedPorts ports;
        try
        {
            ports = PortFactory.Open(config, config.Workers);
        }
        catch (NativeIoException e)
        {
            stderr.WriteLine($"natd: cannot open the interfaces: {e.Message}");
            return 1;
        }
        foreach (var note in ports.Notes)
        {
            stderr.WriteLine($"natd: {note}");
        }

        try
        {
            return await ServeAsync(config, statePath, restore, ports, loggers, stdout, stderr).ConfigureAwait(false);
        }
        finally
        {
            // After the daemon closed its sockets: the kernel may merge frames again, another natd may start.
            foreach (string e in ports.Release())
            {
                stderr.WriteLine($"natd: warning: {e}");
            }
        }
    }

    private static async Task<int> ServeAsync(NatdConfig config, string? statePath, StateSnapshot.FileModel? restore, OpenedPorts ports, ILoggerFactory loggers,
        TextWriter stdout, TextWriter stderr)
    {
        using var stop = new CancellationTokenSource();
        NatDaemon daemon;
        try
        {
            daemon = await NatDaemon.StartAsync(config, ports.Pairs, loggers, startControl: true, stop.Token, restore).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or SocketException)
        {
            stderr.WriteLine($"natd: cannot start the control API on {config.ControlListen}: {e.Message}{ControlBindHint(e)}");
            return 1;
        }
        await using (daemon.ConfigureAwait(false))
        {
            using var term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => { c.Cancel = true; stop.Cancel(); });
            using var intr = PosixSignalRegistration.Create(PosixSignal.SIGINT, c => { c.Cancel = true; stop.Cancel(); });
            using var hup = PosixSignalRegistration.Create(PosixSignal.SIGHUP, c =>
            {
                c.Cancel = true;
                _ = Task.Run(async () =>
                {
                    var r = await daemon.ReloadAsync().ConfigureAwait(false);
                    stderr.WriteLine(r.Ok ? "natd: configuration reloaded" : "natd: reload rejected, running configuration kept: " + string.Join("; ", r.Messages));
                });
            });
            if (restore is not null)
            {
                stdout.WriteLine($"natd: restored {daemon.RestoredSessions} sessions from {statePath}");
                if (daemon.RestoredPcpMappings > 0)
                {
                    stdout.WriteLine($"natd: restored {daemon.RestoredPcpMappings} PCP mappings from {statePath}");
                }
            }
            stdout.WriteLine(ReadyLine(daemon, ports));
            stdout.Flush();
            var signalled = Task.Delay(Timeout.Infinite, stop.Token);
            using var unwatch = new CancellationTokenSource();
            Task<string> gone = WatchLinksAsync(ports, new LinkMtuWatch(ports, daemon, stderr), unwatch.Token);
            Task first = await Task.WhenAny(signalled, daemon.Faulted, gone).ConfigureAwait(false);
            await unwatch.CancelAsync().ConfigureAwait(false);
            if (first == daemon.Faulted)
            {
                // A shard lost its poller for good: stop, and say so in the exit status, so a service
                // manager restarts natd. No state is saved: the failure may lie in that very state.
                stderr.WriteLine($"natd: {await daemon.Faulted.ConfigureAwait(false)}");
                stdout.WriteLine("natd: stopping");
                return FaultExitCode;
            }
            int exit = 0;
            if (first == gone)
            {
                // The sockets are bound to an interface that no longer exists: stop as on SIGTERM (the
                // state is saved), but with a failure status, so that a service manager starts natd
                // again, which takes the interface up once it is back.
                stderr.WriteLine($"natd: {await gone.ConfigureAwait(false)}: natd's sockets cannot follow it; stopping, to be started again once it is back");
                exit = 1;
            }
            stdout.WriteLine("natd: stopping");
            if (statePath is not null)
            {
                try
                {
                    int saved = await daemon.SaveStateAsync(statePath).ConfigureAwait(false);
                    stdout.WriteLine($"natd: saved {saved} sessions to {statePath}");
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException or TimeoutException or Akka.Actor.AskTimeoutException)
                {
                    stderr.WriteLine($"natd: could not save the state snapshot: {e.Message}");
                }
            }
            return exit;
        }
    }

    /// <summary>
    /// Completes, with why, once an interface natd opened is gone (<see cref="OpenedPorts.Gone"/>);
    /// meanwhile tells the pollers when a link's MTU changes (<paramref name="mtus"/>). Looks once a second.
    /// </summary>
    private static async Task<string> WatchLinksAsync(OpenedPorts ports, LinkMtuWatch mtus, CancellationToken ct)
    {
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(1));
        try
        {
            while (await timer.WaitForNextTickAsync(ct).ConfigureAwait(false))
            {
                if (ports.Gone() is { } why)
                {
                    return why;
                }
                mtus.Check();
            }
        }
        catch (OperationCanceledException)
        {
        }
        return ""; // natd stopped for another reason first: nobody reads this
    }

    /// <summary>What to do about a control.listen address the host cannot bind (EADDRNOTAVAIL, EADDRINUSE).</summary>
    internal static string ControlBindHint(Exception e)
    {
        var socket = e as SocketException ?? e.InnerException as SocketException;
        return socket?.SocketErrorCode switch
        {
            SocketError.AddressNotAvailable => " (no interface of natd's network namespace holds that address: name one that does in control.listen; in a namespace of its own, bring loopback up with ip link set lo up)",
            SocketError.AddressAlreadyInUse => " (another process listens there: stop it, or give control.listen another port)",
            _ => "",
        };
    }

    public static string ReadyLine(NatDaemon d, OpenedPorts ports)
    {
        var n = d.Config.Nat;
        string pool = n.Pool.Count <= 4 ? string.Join(",", n.Pool.Select(Ipv4.Format)) : $"{Ipv4.Format(n.Pool[0])}..({n.Pool.Count} addresses)";
        string control = d.Control?.Address.Authority ?? d.Config.ControlListen;
        return $"natd: ready inside={n.Inside.Name} ({ports.InsideDriver}, {d.Engine.InsideMac}, {n.Inside.Address}) outside={n.Outside.Name} ({ports.OutsideDriver}, {d.Engine.OutsideMac}, {n.Outside.Address}) workers={d.Pollers.Count}{(ports.SharedUmem ? " umem=shared" : "")}{(ports.XdpFillFrames > 0 ? $" xdp-fill={ports.XdpFillFrames}" : "")} pool={pool} ports={n.PortMin}-{n.PortMax} control=http://{control}";
    }
}
