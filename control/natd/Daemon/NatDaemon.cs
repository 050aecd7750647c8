using Microsoft.Extensions.Logging;
using Natd.Control.Api;
using Natd.Control.Config;
using Natd.Control.Logging;
using Natd.Dataplane.Actors;
using Natd.Dataplane.Io;
using Natd.Dataplane.Nat;
using Natd.Dataplane.Workers;

namespace Natd.Control.Daemon;

/// <summary>
/// A running natd: the actor tree (a poller per shard, the ConfigActor and the SweeperActor under
/// one ActorSystem) over two packet ports, and the control API. Used by `natd run` and the lab.
/// </summary>
internal sealed class NatDaemon : IAsyncDisposable
{
    private readonly IPacketPort _inside;
    private readonly IPacketPort _outside;
    private ICancelable? _sweepTimer;
    private ICancelable? _eventLogTimer;

    private NatDaemon(NatdConfig config, IPacketPort inside, IPacketPort outside, ActorSystem system, NatEngine engine,
        PollerHandle poller, IActorRef configActor, ControlServer? control)
    {
        Config = config;
        _inside = inside;
        _outside = outside;
        System = system;
        Engine = engine;
        Pollers = [poller];
        ConfigActor = configActor;
        Control = control;
        Query = new DataplaneQuery(Pollers);
        Operations = new ControlOperations(Pollers, configActor);
    }

    public NatdConfig Config { get; }
    public ActorSystem System { get; }
    public NatEngine Engine { get; }
    public IReadOnlyList<PollerHandle> Pollers { get; }
    public IActorRef ConfigActor { get; }
    public ControlServer? Control { get; private set; }
    public DataplaneQuery Query { get; }
    /// <summary>NAT event log counters (all zero when log.events is absent).</summary>
    public EventLogStats EventLogStats { get; } = new();
    public ControlOperations Operations { get; }

    /// <summary>Starts the dataplane over already opened ports (the daemon owns and disposes them).</summary>
    /// <exception cref="IOException">The control API could not bind.</exception>
    /// <param name="config">Validated configuration.</param>
    /// <param name="inside">Inside port.</param>
    /// <param name="outside">Outside port.</param>
    /// <param name="loggers">Logging.</param>
    /// <param name="startControl">Whether to serve the control API.</param>
    /// <param name="ct">Cancels the start.</param>
    /// <param name="restore">A restart snapshot to restore before forwarding starts, or null.</param>
    public static async Task<NatDaemon> StartAsync(NatdConfig config, IPacketPort inside, IPacketPort outside,
        ILoggerFactory loggers, bool startControl, CancellationToken ct, StateSnapshot.FileModel? restore = null)
    {
        var log = loggers.CreateLogger("natd");
        var engine = new NatEngine(config.Nat, inside.Mac, outside.Mac);
        if (restore is not null)
        {
            // Before the poller thread exists: the engine has no other user yet.
            int n = StateSnapshot.Restore(restore, engine, DateTimeOffset.UtcNow, PollerActor.NowMs);
            log.LogInformation("restored {Restored} of {Saved} sessions from the state snapshot", n, restore.Sessions.Count);
        }
        var system = ActorSystem.Create("natd");
        system.Log += m => log.LogWarning("actors: {Message}", m);
        var stats = new PollerStats();
        if (config.Events is { } events)
        {
            NatEventLogger.AttachRing(engine.Table, events.Queue); // before the poller thread starts: no cross-thread write
        }
        var pollerRef = system.ActorOf(
            Props.Create(() => new PollerActor(engine, inside, outside, new PollerOptions { BatchSize = config.BatchSize }, stats)),
            "poller-0");
        var handle = new PollerHandle(pollerRef, engine, stats);
        var configActor = system.ActorOf(Props.Create(() => new ConfigActor(config, [handle], loggers.CreateLogger("natd.config"))), "config");
        var sweeper = system.ActorOf(Props.Create(() => new SweeperActor([handle], 4096, loggers.CreateLogger("natd.sweeper"))), "sweeper");
        var daemon = new NatDaemon(config, inside, outside, system, engine, handle, configActor, null);
        if (startControl)
        {
            try
            {
                daemon.Control = await ControlServer.StartAsync(config.ControlListen, daemon.Query, daemon.Operations, loggers, ct).ConfigureAwait(false);
            }
            catch
            {
                await daemon.DisposeAsync().ConfigureAwait(false);
                throw;
            }
        }
        if (config.Events is { } ev)
        {
            var eventLogger = system.ActorOf(Props.Create(() => new NatEventLogger(ev, [engine.Table], daemon.EventLogStats, loggers.CreateLogger("natd.events"),
                new EventLoggerOptions { MaxSessions = (uint)config.Nat.MaxSessions })), "event-log");
            daemon._eventLogTimer = system.Scheduler.ScheduleTellRepeatedly(NatEventLogger.DrainInterval, NatEventLogger.DrainInterval, eventLogger, NatEventLogger.Drain.Instance);
        }
        daemon._sweepTimer = system.Scheduler.ScheduleTellRepeatedly(TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(1), sweeper, SweeperActor.Tick.Instance);
        return daemon;
    }

    /// <summary>Writes every shard's sessions and neighbours to <paramref name="path"/> (clean shutdown).</summary>
    /// <returns>Sessions saved.</returns>
    public async Task<int> SaveStateAsync(string path)
    {
        var shards = new List<ShardState>();
        foreach (var p in Pollers)
        {
            shards.Add(await p.Actor.Ask<ShardState>(ExportState.Instance, TimeSpan.FromSeconds(30)).ConfigureAwait(false));
        }
        StateSnapshot.Write(path, shards, DateTimeOffset.UtcNow);
        return shards.Sum(s => s.Sessions.Count);
    }

    /// <summary>Asks the ConfigActor to reload (SIGHUP).</summary>
    public Task<ConfigActor.ReloadResult> ReloadAsync(string? path = null)
        => ConfigActor.Ask<ConfigActor.ReloadResult>(new ConfigActor.Reload(path), TimeSpan.FromSeconds(10));

    public async ValueTask DisposeAsync()
    {
        _sweepTimer?.Cancel();
        _eventLogTimer?.Cancel(); // the logger drains what is left in its PostStop when the system terminates
        if (Control is not null)
        {
            await Control.DisposeAsync().ConfigureAwait(false);
        }
        await System.Terminate().ConfigureAwait(false);
        _inside.Dispose();
        _outside.Dispose();
    }
}
