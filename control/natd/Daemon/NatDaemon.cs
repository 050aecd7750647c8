using Microsoft.Extensions.Logging;
using Natd.Control.Api;
using Natd.Control.Config;
using Natd.Control.Logging;
using Natd.Dataplane.Actors;
using Natd.Dataplane.Alg;
using Natd.Dataplane.Io;
using Natd.Dataplane.Nat;
using Natd.Dataplane.Workers;
using Natd.Dataplane.Sessions;

namespace Natd.Control.Daemon;

/// <summary>
/// A running natd: the actor tree (one poller per shard on its own pinned thread, the
/// ConfigActor, the SweeperActor and the NAT event logger under one ActorSystem) over the packet
/// ports, and the control API. Used by `natd run` and the lab.
/// </summary>
internal sealed class NatDaemon : IAsyncDisposable
{
    private readonly IReadOnlyList<(IPacketPort Inside, IPacketPort Outside)> _ports;
    private ICancelable? _sweepTimer;
    private ICancelable? _eventLogTimer;
    private ICancelable? _algTimer;

    private NatDaemon(NatdConfig config, IReadOnlyList<(IPacketPort, IPacketPort)> ports, ActorSystem system,
        IReadOnlyList<PollerHandle> pollers, IActorRef configActor, ShardLinks? links, NatEngine firstEngine)
    {
        Config = config;
        _ports = ports;
        System = system;
        Pollers = pollers;
        Engine = firstEngine; // for the MACs it resolved at start; other threads read shards through their views
        ConfigActor = configActor;
        Links = links;
        Query = new DataplaneQuery(Pollers);
        Operations = new ControlOperations(Pollers, configActor);
    }

    public NatdConfig Config { get; }
    public ActorSystem System { get; }

    /// <summary>Shard 0's engine (the only one with a single poller).</summary>
    public NatEngine Engine { get; }
    public IReadOnlyList<PollerHandle> Pollers { get; }
    public IActorRef ConfigActor { get; }
    public ControlServer? Control { get; private set; }
    public DataplaneQuery Query { get; }
    public ShardLinks? Links { get; }

    /// <summary>Parent of the ALG helpers (restarts them).</summary>
    public IActorRef? AlgSupervisor { get; private init; }

    /// <summary>ALG helpers by <see cref="AlgKind"/> (null: none).</summary>
    public IReadOnlyList<IActorRef?> AlgHelpers { get; private init; } = [];

    /// <summary>PCP and NAT-PMP mappings restored from the state snapshot at start.</summary>
    public int RestoredPcpMappings { get; private init; }

    /// <summary>Sessions restored from the state snapshot at start.</summary>
    public int RestoredSessions { get; private init; }

    /// <summary>NAT event log counters (all zero when log.events is absent).</summary>
    public EventLogStats EventLogStats { get; } = new();
    public ControlOperations Operations { get; }

    /// <summary>Starts one poller over one pair of ports (tests, single-queue setups).</summary>
    public static Task<NatDaemon> StartAsync(NatdConfig config, IPacketPort inside, IPacketPort outside,
        ILoggerFactory loggers, bool startControl, CancellationToken ct, StateSnapshot.FileModel? restore = null)
        => StartAsync(config, [(inside, outside)], loggers, startControl, ct, restore);

    /// <summary>Starts the dataplane over already opened ports (the daemon owns and disposes them): one poller per pair.</summary>
    /// <param name="config">Validated configuration.</param>
    /// <param name="ports">One (inside, outside) port pair per poller; the number of pairs is the number of shards.</param>
    /// <param name="loggers">Logging.</param>
    /// <param name="startControl">Whether to serve the control API.</param>
    /// <param name="ct">Cancels the start.</param>
    /// <param name="restore">A restart snapshot to restore before forwarding starts, or null.</param>
    /// <exception cref="IOException">The control API could not bind.</exception>
    public static async Task<NatDaemon> StartAsync(NatdConfig config, IReadOnlyList<(IPacketPort Inside, IPacketPort Outside)> ports,
        ILoggerFactory loggers, bool startControl, CancellationToken ct, StateSnapshot.FileModel? restore = null)
    {
        var log = loggers.CreateLogger("natd");
        int shards = ports.Count;
        var engines = new NatEngine[shards];
        long started = PollerActor.NowMs; // one PCP epoch for every shard
        for (int k = 0; k < shards; k++)
        {
            engines[k] = new NatEngine(config.Nat, ports[k].Inside.Mac, ports[k].Outside.Mac, new EngineOptions { Shard = k, Shards = shards, StartedMs = started });
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
        var system = ActorSystem.Create("natd");
        system.Log += m => log.LogWarning("actors: {Message}", m);
        if (config.Events is { } events)
        {
            foreach (var e in engines)
            {
                NatEventLogger.AttachRing(e.Table, events.Queue); // before the poller threads start: no cross-thread write
            }
        }
        // ALG helpers first: pollers hand them frames from their first batch on.
        var algHelpers = new IActorRef?[Enum.GetValues<AlgKind>().Length];
        var algSupervisor = system.ActorOf(Props.Create(() => new AlgSupervisorActor(AlgRegistry.Handlers, algHelpers))
            .WithSupervisorStrategy(AlgSupervisorActor.Strategy), "algs");
        await WaitForHelpersAsync(algHelpers, ct).ConfigureAwait(false);
        var handles = new PollerHandle[shards];
        for (int k = 0; k < shards; k++)
        {
            int shard = k;
            var options = new PollerOptions
            {
                BatchSize = config.BatchSize,
                Shard = shard,
                Links = links,
                AlgHelpers = algHelpers,
                GreOwner = shard == 0 ? null : handles[0].Actor,
            };
            var (inside, outside) = ports[shard];
            var engine = engines[shard];
            var stats = new PollerStats(engine.Counters.Table); // the poller counts into its shard's one table
            var props = Props.Create(() => new PollerActor(engine, inside, outside, options, stats));
            if (shards > 1)
            {
                props = props.WithDedicatedThread(() => CpuAffinity.PinCurrentThread(shard % Environment.ProcessorCount));
            }
            handles[k] = new PollerHandle(system.ActorOf(props, $"poller-{shard}"), engine.ReadView, stats, inside, outside);
        }
        // The carrier-grade settings in force, for the event log's quota records (a reload may change the limits).
        var cgnatInForce = new InForce<CgnatSettings>(config.Nat.Cgnat);
        var configActor = system.ActorOf(Props.Create(() => new ConfigActor(config, handles, loggers.CreateLogger("natd.config"),
            c => cgnatInForce.Value = c.Nat.Cgnat)), "config");
        var sweeper = system.ActorOf(Props.Create(() => new SweeperActor(handles, SweeperActor.SliceBudget, loggers.CreateLogger("natd.sweeper"))), "sweeper");
        var daemon = new NatDaemon(config, ports, system, handles, configActor, links, engines[0]) { RestoredSessions = restored, RestoredPcpMappings = restoredPcp, AlgSupervisor = algSupervisor, AlgHelpers = algHelpers };
        daemon.Query.AlgRestarts = kind => algHelpers[(int)kind] is { } h ? system.Stats.RestartsOf(h) : 0;
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
            var tables = engines.Select(e => e.Table).ToList();
            var eventLogger = system.ActorOf(Props.Create(() => new NatEventLogger(ev, tables, daemon.EventLogStats, loggers.CreateLogger("natd.events"),
                new EventLoggerOptions { MaxSessions = (uint)config.Nat.MaxSessions, Cgnat = () => cgnatInForce.Value })), "event-log");
            daemon._eventLogTimer = system.Scheduler.ScheduleTellRepeatedly(NatEventLogger.DrainInterval, NatEventLogger.DrainInterval, eventLogger, NatEventLogger.Drain.Instance);
        }
        daemon._sweepTimer = system.Scheduler.ScheduleTellRepeatedly(SweeperActor.Interval, SweeperActor.Interval, sweeper, SweeperActor.Tick.Instance);
        // Helper state of a control connection outlives any idle session it could belong to.
        var algIdle = new ExpireAlgState(config.Nat.Timeouts.TcpEstablished * 1000L);
        daemon._algTimer = system.Scheduler.ScheduleTellRepeatedly(TimeSpan.FromMinutes(1), TimeSpan.FromMinutes(1), algSupervisor, algIdle);
        return daemon;
    }

    /// <summary>The ALG supervisor fills the helper refs as it starts (on its own thread): wait for them, bounded.</summary>
    private static async Task WaitForHelpersAsync(IActorRef?[] helpers, CancellationToken ct)
    {
        int expected = AlgRegistry.Handlers.Count;
        for (int i = 0; i < 200; i++)
        {
            int n = 0;
            for (int k = 0; k < helpers.Length; k++)
            {
                n += Volatile.Read(ref helpers[k]) is null ? 0 : 1;
            }
            if (n >= expected)
            {
                return;
            }
            await Task.Delay(10, ct).ConfigureAwait(false);
        }
        throw new InvalidOperationException("the ALG helpers did not start within 2 s");
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
        _algTimer?.Cancel();
        _eventLogTimer?.Cancel(); // the logger drains what is left in its PostStop when the system terminates
        if (Control is not null)
        {
            await Control.DisposeAsync().ConfigureAwait(false);
        }
        await System.Terminate().ConfigureAwait(false);
        foreach (var (inside, outside) in _ports)
        {
            inside.Dispose();
            outside.Dispose();
        }
        Links?.Dispose();
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
