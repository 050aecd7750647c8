using Microsoft.Extensions.Logging;
using Natd.Control.Api;
using Natd.Control.Config;
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
    public ControlOperations Operations { get; }

    /// <summary>Starts the dataplane over already opened ports (the daemon owns and disposes them).</summary>
    /// <exception cref="IOException">The control API could not bind.</exception>
    public static async Task<NatDaemon> StartAsync(NatdConfig config, IPacketPort inside, IPacketPort outside,
        ILoggerFactory loggers, bool startControl, CancellationToken ct)
    {
        var log = loggers.CreateLogger("natd");
        var engine = new NatEngine(config.Nat, inside.Mac, outside.Mac);
        var system = ActorSystem.Create("natd");
        system.Log += m => log.LogWarning("actors: {Message}", m);
        var stats = new PollerStats();
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
        daemon._sweepTimer = system.Scheduler.ScheduleTellRepeatedly(TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(1), sweeper, SweeperActor.Tick.Instance);
        return daemon;
    }

    /// <summary>Asks the ConfigActor to reload (SIGHUP).</summary>
    public Task<ConfigActor.ReloadResult> ReloadAsync(string? path = null)
        => ConfigActor.Ask<ConfigActor.ReloadResult>(new ConfigActor.Reload(path), TimeSpan.FromSeconds(10));

    public async ValueTask DisposeAsync()
    {
        _sweepTimer?.Cancel();
        if (Control is not null)
        {
            await Control.DisposeAsync().ConfigureAwait(false);
        }
        await System.Terminate().ConfigureAwait(false);
        _inside.Dispose();
        _outside.Dispose();
    }
}
