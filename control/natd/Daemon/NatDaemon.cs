using Akka.Actor;
using Akka.Configuration;
using Akka.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Natd.Control.Api;
using Natd.Control.Config;
using Natd.Control.Logging;
using Natd.Dataplane.Alg;
using Natd.Dataplane.Io;
using Natd.Dataplane.Nat;
using Natd.Dataplane.Workers;
using Natd.Dataplane.Sessions;

namespace Natd.Control.Daemon;

/// <summary>
/// A running natd: a generic host whose ActorSystem (Akka.Hosting) runs the actor tree (one poller
/// per shard on its own pinned thread, the ALG helpers under their supervisor, the ConfigActor,
/// the SweeperActor and the NAT event logger) over the packet ports, and the control API. Used by
/// `natd run` and the lab (docs/architecture.md, "Actors").
/// </summary>
internal sealed class NatDaemon : IAsyncDisposable
{
    /// <summary>
    /// natd's Akka settings: quiet (warnings and errors only, routed to natd's logging), no
    /// dead-letter chatter at shutdown, the pollers' dispatcher and mailbox. Akka's own SIGTERM
    /// and process-exit hook is off: natd's mode owns the signals, and on SIGTERM the pollers
    /// must still answer for the state snapshot before the system stops (the hook stopped them
    /// first, at random, and the snapshot was lost).
    /// </summary>
    private static readonly Akka.Configuration.Config AkkaConfig = ConfigurationFactory.ParseString("""
        akka {
          loglevel = WARNING
          stdout-loglevel = WARNING
          log-dead-letters = off
          log-dead-letters-during-shutdown = off
          coordinated-shutdown.run-by-clr-shutdown-hook = off
        }
        """).WithFallback(PollerActor.Config);

    private readonly IReadOnlyList<(IPacketPort Inside, IPacketPort Outside)> _ports;
    private readonly IHost _host;
    private readonly Wakeup[] _wakeups;
    private ICancelable? _sweepTimer;
    private ICancelable? _eventLogTimer;
    private ICancelable? _algTimer;

    private NatDaemon(NatdConfig config, IReadOnlyList<(IPacketPort, IPacketPort)> ports, IHost host, ActorSystem system,
        ActorTree tree, ShardLinks? links, Wakeup[] wakeups, NatEngine firstEngine, EventLogStats eventLogStats)
    {
        Config = config;
        _ports = ports;
        _host = host;
        _wakeups = wakeups;
        System = system;
        Pollers = tree.Pollers;
        Engine = firstEngine; // for the MACs it resolved at start; other threads read shards through their views
        ConfigActor = tree.Config;
        AlgSupervisor = tree.Algs;
        AlgHelpers = tree.AlgHelpers;
        Links = links;
        EventLogStats = eventLogStats;
        Query = new DataplaneQuery(Pollers) { AlgRestarts = tree.AlgRestarts.Of, EventLog = eventLogStats.Snapshot };
        var critical = new List<IActorRef>(Pollers.Count + 3) { tree.Config, tree.Sweeper };
        foreach (var p in Pollers)
        {
            critical.Add(p.Actor);
        }
        if (tree.EventLogger is { } eventLogger)
        {
            critical.Add(eventLogger);
        }
        _watch = system.ActorOf(Props.Create(() => new ActorWatch(critical, _faulted)), "watch");
        Operations = new ControlOperations(Pollers, ConfigActor);
    }

    public NatdConfig Config { get; }
    public ActorSystem System { get; }

    private readonly TaskCompletionSource<string> _faulted = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly IActorRef _watch;

    /// <summary>
    /// Completes with the reason when a poller, the config actor, the sweeper or the event logger
    /// stopped on its own (it kept failing: <see cref="PollerSupervision"/>); <c>natd run</c> then
    /// stops with an error. Never completes on a normal stop.
    /// </summary>
    public Task<string> Faulted => _faulted.Task;

    /// <summary>Shard 0's engine (the only one with a single poller).</summary>
    public NatEngine Engine { get; }
    public IReadOnlyList<PollerHandle> Pollers { get; }
    public IActorRef ConfigActor { get; }
    public ControlServer? Control { get; private set; }
    public DataplaneQuery Query { get; }
    public ShardLinks? Links { get; }

    /// <summary>Parent of the ALG helpers (restarts them).</summary>
    public IActorRef AlgSupervisor { get; }

    /// <summary>ALG helpers by <see cref="AlgKind"/> (null: none).</summary>
    public IReadOnlyList<IActorRef?> AlgHelpers { get; }

    /// <summary>PCP and NAT-PMP mappings restored from the state snapshot at start.</summary>
    public int RestoredPcpMappings { get; private init; }

    /// <summary>Sessions restored from the state snapshot at start.</summary>
    public int RestoredSessions { get; private init; }

    /// <summary>NAT event log counters (all zero when log.events is absent).</summary>
    public EventLogStats EventLogStats { get; }
    public ControlOperations Operations { get; }

    /// <summary>The actors <see cref="BuildTree"/> made, for the daemon to hold.</summary>
    private sealed record ActorTree(IReadOnlyList<PollerHandle> Pollers, IActorRef Config, IActorRef Sweeper, IActorRef Algs,
        IReadOnlyList<IActorRef?> AlgHelpers, AlgRestarts AlgRestarts, IActorRef? EventLogger);

    /// <summary>Starts one poller over one pair of ports (tests, single-queue setups).</summary>
    public static Task<NatDaemon> StartAsync(NatdConfig config, IPacketPort inside, IPacketPort outside,
        ILoggerFactory loggers, bool startControl, CancellationToken ct, StateSnapshot.FileModel? restore = null)
        => StartAsync(config, [(inside, outside)], loggers, startControl, ct, restore);

    /// <summary>Starts the dataplane over already opened ports (the daemon owns and disposes them): one poller per pair.</summary>
    /// <param name="config">Validated configuration.</param>
    /// <param name="ports">One (inside, outside) port pair per poller; the number of pairs is the number of shards.</param>
    /// <param name="loggers">Logging (Akka's own log events go here too).</param>
    /// <param name="startControl">Whether to serve the control API.</param>
    /// <param name="ct">Cancels the start.</param>
    /// <param name="restore">A restart snapshot to restore before forwarding starts, or null.</param>
    /// <exception cref="IOException">The control API could not bind.</exception>
    /// <exception cref="InvalidOperationException">The actor tree did not start (the reason is logged).</exception>
    public static async Task<NatDaemon> StartAsync(NatdConfig config, IReadOnlyList<(IPacketPort Inside, IPacketPort Outside)> ports,
        ILoggerFactory loggers, bool startControl, CancellationToken ct, StateSnapshot.FileModel? restore = null)
    {
        var log = loggers.CreateLogger("natd");
        int shards = ports.Count;
        var engines = new NatEngine[shards];
        long started = PollerActor.NowMs; // one PCP epoch for every shard
        // Shard 0 carries every subscriber's port-less flows: it reads the other shards' pairings here.
        var pairings = shards > 1 ? new PairingDirectory(shards) : null;
        for (int k = 0; k < shards; k++)
        {
            engines[k] = new NatEngine(config.Nat, ports[k].Inside.Mac, ports[k].Outside.Mac,
                new EngineOptions
                {
                    Shard = k, Shards = shards, StartedMs = started, Pairings = pairings,
                    InsideLinkMtu = ports[k].Inside.LinkMtu, OutsideLinkMtu = ports[k].Outside.LinkMtu,
                });
        }
        // ShardMap.DefaultSeed: a subscriber lands on the same shard after a restart, where its restored ports belong.
        var links = shards > 1 ? new ShardLinks(shards, new ShardMap(config.Nat, shards)) : null;
        int restored = 0, restoredPcp = 0;
        if (restore is not null)
        {
            // Before any poller thread exists: the engines have no other user yet.
            int n = 0, pcp = 0;
            foreach (var part in Partition(restore, links, engines.Length))
            {
                n += StateSnapshot.Restore(part.Model, engines[part.Shard], DateTimeOffset.UtcNow, PollerActor.NowMs, out int p);
                pcp += p;
            }
            log.LogInformation("restored {Restored} of {Saved} sessions from the state snapshot", n, restore.Sessions.Count);
            if (restore.PcpMappings is { Count: > 0 } saved)
            {
                log.LogInformation("restored {Restored} of {Saved} PCP mappings from the state snapshot", pcp, saved.Count);
            }
            restored = n;
            restoredPcp = pcp;
        }
        if (config.Events is { } events)
        {
            foreach (var e in engines)
            {
                NatEventLogger.AttachRing(e.Table, events.Queue); // before the poller threads start: no cross-thread write
            }
        }
        // A single poller has no shard links: its mailbox's eventfd is the daemon's.
        Wakeup[] wakeups = links is null ? [new Wakeup()] : [];
        var eventLogStats = new EventLogStats();
        ActorTree? tree = null;
        Exception? failure = null;
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Services.AddSingleton(loggers);
        builder.Services.AddSingleton<IHostLifetime, CallerLifetime>(); // natd's modes own the signals and the console
        builder.Services.AddAkka("natd", akka => akka
            .AddHocon(AkkaConfig, HoconAddMode.Prepend)
            .ConfigureLoggers(l =>
            {
                l.LogLevel = Akka.Event.LogLevel.WarningLevel;
                l.ClearLoggers();
                l.AddLoggerFactory(loggers);
            })
            .WithActors((system, registry) =>
            {
                try
                {
                    tree = BuildTree(system, config, engines, ports, links, wakeups, loggers, eventLogStats);
                    registry.Register<ConfigActor>(tree.Config);
                    registry.Register<SweeperActor>(tree.Sweeper);
                    registry.Register<AlgSupervisorActor>(tree.Algs);
                }
                catch (Exception e) when (e is AskTimeoutException or InvalidOperationException or ArgumentException)
                {
                    failure = e;
                }
            }));
        var host = builder.Build();
        try
        {
            await host.StartAsync(ct).ConfigureAwait(false);
            if (tree is null)
            {
                throw new InvalidOperationException("natd's actor tree did not start: " + (failure?.Message ?? "see the log"), failure);
            }
        }
        catch
        {
            await StopHostAsync(host).ConfigureAwait(false);
            DisposeAll(ports, links, wakeups);
            throw;
        }
        var system = host.Services.GetRequiredService<ActorSystem>();
        var daemon = new NatDaemon(config, ports, host, system, tree, links, wakeups, engines[0], eventLogStats) { RestoredSessions = restored, RestoredPcpMappings = restoredPcp };
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
        var scheduler = system.Scheduler;
        if (tree.EventLogger is { } eventLogger)
        {
            daemon._eventLogTimer = scheduler.ScheduleTellRepeatedlyCancelable(NatEventLogger.DrainInterval, NatEventLogger.DrainInterval,
                eventLogger, NatEventLogger.Drain.Instance, ActorRefs.NoSender);
        }
        daemon._sweepTimer = scheduler.ScheduleTellRepeatedlyCancelable(SweeperActor.Interval, SweeperActor.Interval,
            tree.Sweeper, SweeperActor.Tick.Instance, ActorRefs.NoSender);
        // Helper state of a control connection outlives any idle session it could belong to.
        var algIdle = new ExpireAlgState(config.Nat.Timeouts.TcpEstablished * 1000L);
        daemon._algTimer = scheduler.ScheduleTellRepeatedlyCancelable(TimeSpan.FromMinutes(1), TimeSpan.FromMinutes(1), tree.Algs, algIdle, ActorRefs.NoSender);
        return daemon;
    }

    /// <summary>
    /// The actor tree, made inside Akka.Hosting's start: the ALG helpers first (pollers hand them
    /// frames from their first batch on), then one poller per shard, then the control actors.
    /// </summary>
    private static ActorTree BuildTree(ActorSystem system, NatdConfig config, NatEngine[] engines,
        IReadOnlyList<(IPacketPort Inside, IPacketPort Outside)> ports, ShardLinks? links, Wakeup[] wakeups, ILoggerFactory loggers,
        EventLogStats eventLogStats)
    {
        var restarts = new AlgRestarts();
        var algs = system.ActorOf(Props.Create(() => new AlgSupervisorActor(AlgRegistry.Handlers, restarts)), "algs");
        // Blocking here is the host's start, not an actor's thread: the supervisor answers once its children exist.
        // Generous: on a loaded box (both cores busy, everything still being JIT-compiled) 5 s was seen to run out.
        var algHelpers = algs.Ask<IReadOnlyList<IActorRef?>>(AlgSupervisorActor.GetHelpers.Instance, TimeSpan.FromSeconds(30))
            .GetAwaiter().GetResult();
        int shards = engines.Length;
        var handles = new PollerHandle[shards];
        for (int k = 0; k < shards; k++)
        {
            var options = new PollerOptions
            {
                BatchSize = config.BatchSize,
                Shard = k,
                Links = links,
                Wakeup = links is null ? wakeups[0] : null,
                AlgHelpers = algHelpers,
                GreOwner = k == 0 ? null : handles[0].Actor,
                Cpu = shards > 1 ? k % Environment.ProcessorCount : null,
            };
            var (inside, outside) = ports[k];
            var engine = engines[k];
            var stats = new PollerStats(engine.Counters.Table); // the poller counts into its shard's one table
            handles[k] = new PollerHandle(system.ActorOf(PollerActor.Props(engine, inside, outside, options, stats), $"poller-{k}"),
                engine.ReadView, stats, inside, outside);
        }
        // The carrier-grade settings in force, for the event log's quota records (a reload may change the limits).
        var cgnatInForce = new InForce<CgnatSettings>(config.Nat.Cgnat);
        var configLogger = loggers.CreateLogger("natd.config");
        Action<NatdConfig> applied = c => cgnatInForce.Value = c.Nat.Cgnat;
        var configActor = system.ActorOf(Props.Create(() => new ConfigActor(config, handles, configLogger, applied, null)), "config");
        var sweeperLogger = loggers.CreateLogger("natd.sweeper");
        var sweeper = system.ActorOf(Props.Create(() => new SweeperActor(handles, SweeperActor.SliceBudget, sweeperLogger)), "sweeper");
        IActorRef? eventLogger = null;
        if (config.Events is { } ev)
        {
            var tables = engines.Select(e => e.Table).ToList();
            var eventsLogger = loggers.CreateLogger("natd.events");
            var options = new EventLoggerOptions { MaxSessions = (uint)config.Nat.MaxSessions, Cgnat = () => cgnatInForce.Value };
            eventLogger = system.ActorOf(Props.Create(() => new NatEventLogger(ev, tables, eventLogStats, eventsLogger, options)), "event-log");
        }
        return new ActorTree(handles, configActor, sweeper, algs, algHelpers, restarts, eventLogger);
    }

    /// <summary>Splits a snapshot's sessions and PCP mappings by the shard that owns them now (the shard count may have changed).</summary>
    private static IEnumerable<(int Shard, StateSnapshot.FileModel Model)> Partition(StateSnapshot.FileModel model, ShardLinks? links, int shards)
    {
        if (links is null)
        {
            yield return (0, model);
            yield break;
        }
        var map = links.Map;
        for (int k = 0; k < shards; k++)
        {
            int shard = k;
            var mine = model.Sessions.Where(s => map.OwnerOf(s) == shard).ToList();
            // A PCP mapping lives in the shard of its internal host, as the host's requests are answered there.
            var pcp = model.PcpMappings?.Where(m => map.OwnerOfInside(m.Internal) == shard).ToList();
            yield return (shard, model with { Sessions = mine, PcpMappings = pcp });
        }
    }

    /// <summary>Writes every shard's sessions and neighbours to <paramref name="path"/> (clean shutdown).</summary>
    /// <returns>Sessions saved.</returns>
    public async Task<int> SaveStateAsync(string path)
    {
        // Every shard exports at once, on its own thread: the wait is the slowest shard's, not the sum.
        var asks = new Task<ShardState>[Pollers.Count];
        for (int k = 0; k < asks.Length; k++)
        {
            asks[k] = Pollers[k].Actor.Ask<ShardState>(ExportState.Instance, TimeSpan.FromSeconds(30));
        }
        ShardState[] shards = await Task.WhenAll(asks).ConfigureAwait(false);
        StateSnapshot.Write(path, shards, DateTimeOffset.UtcNow);
        return shards.Sum(s => s.Sessions.Count);
    }

    /// <summary>Asks the ConfigActor to reload (SIGHUP).</summary>
    public Task<ConfigActor.ReloadResult> ReloadAsync(string? path = null)
        => ConfigActor.Ask<ConfigActor.ReloadResult>(new ConfigActor.Reload(path), TimeSpan.FromSeconds(10));

    public async ValueTask DisposeAsync()
    {
        _sweepTimer?.Cancel();
        _algTimer?.Cancel();
        _eventLogTimer?.Cancel(); // the logger drains what is left in its PostStop when the system terminates
        if (Control is not null)
        {
            await Control.DisposeAsync().ConfigureAwait(false);
        }
        try
        {
            await _watch.Ask<Akka.Done>(ActorWatch.Stopping.Instance, TimeSpan.FromSeconds(5)).ConfigureAwait(false);
        }
        catch (AskTimeoutException)
        {
            // The watch is gone with the system: nothing left to report a poller's end to.
        }
        // A PoisonPill is a user message: the poller's mailbox wakes it out of poll(2) at once,
        // where a system stop would wait for its idle timeout.
        var stops = new List<Task>(Pollers.Count);
        foreach (var p in Pollers)
        {
            stops.Add(p.Actor.GracefulStop(TimeSpan.FromSeconds(5)));
        }
        try
        {
            await Task.WhenAll(stops).ConfigureAwait(false);
        }
        catch (TaskCanceledException)
        {
            // A poller stuck in a batch: the system's termination below stops it anyway.
        }
        await StopHostAsync(_host).ConfigureAwait(false);
        DisposeAll(_ports, Links, _wakeups);
    }

    /// <summary>Stops the host (Akka.Hosting terminates the ActorSystem through CoordinatedShutdown) and disposes it.</summary>
    private static async Task StopHostAsync(IHost host)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await host.StopAsync(timeout.Token).ConfigureAwait(false);
        host.Dispose();
    }

    private static void DisposeAll(IReadOnlyList<(IPacketPort Inside, IPacketPort Outside)> ports, ShardLinks? links, Wakeup[] wakeups)
    {
        foreach (var (inside, outside) in ports)
        {
            inside.Dispose();
            outside.Dispose();
        }
        links?.Dispose();
        foreach (var w in wakeups)
        {
            w.Dispose();
        }
    }

    /// <summary>A value one thread publishes and others read (the reference is swapped whole).</summary>
    private sealed class InForce<T>(T initial) where T : class
    {
        private T _value = initial;

        public T Value
        {
            get => Volatile.Read(ref _value);
            set => Volatile.Write(ref _value, value);
        }
    }
}
