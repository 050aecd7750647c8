using Akka.Actor;

namespace Natd.Dataplane.Workers;

/// <summary>
/// How natd's top-level actors (the pollers, the config, sweeper and event-log actors, the ALG
/// supervisor) are supervised: an exception restarts the actor (a poller over the same engine, so
/// its sessions survive a transient fault), at most <see cref="MaxRestarts"/> times within
/// <see cref="Window"/>; past that the actor is stopped instead of restarted again. A poller that
/// fails on every batch (a fault that a restart does not clear) would otherwise loop, burning its
/// core and logging an error per batch while its shard forwards nothing; stopped, it lets the
/// daemon fail fast (<c>natd run</c> exits with a clear message, and a service manager restarts it),
/// as Erlang/OTP and Akka's own bounded strategies intend. Configured as the user guardian's strategy:
/// <c>akka.actor.guardian-supervisor-strategy</c> = <see cref="ConfiguratorName"/>.
/// docs/architecture.md, "Actors on Akka.NET".
/// </summary>
public sealed class PollerSupervision : SupervisorStrategyConfigurator
{
    /// <summary>Restarts allowed within <see cref="Window"/> before the actor is stopped.</summary>
    public const int MaxRestarts = 10;

    /// <summary>The window <see cref="MaxRestarts"/> counts over.</summary>
    public static readonly TimeSpan Window = TimeSpan.FromMinutes(1);

    /// <summary>The configurator's type name for <c>akka.actor.guardian-supervisor-strategy</c>.</summary>
    public const string ConfiguratorName = "Natd.Dataplane.Workers.PollerSupervision, Natd.Dataplane";

    /// <summary>HOCON selecting this strategy for the user guardian.</summary>
    public const string Hocon = "akka.actor.guardian-supervisor-strategy = \"" + ConfiguratorName + "\"";

    /// <summary>The strategy: restart on any exception but a failed start (stopped, as Akka's default does), bounded as above.</summary>
    public static SupervisorStrategy Strategy { get; } = new OneForOneStrategy(MaxRestarts, Window, static e =>
        e is ActorInitializationException or ActorKilledException or DeathPactException ? Directive.Stop : Directive.Restart);

    /// <inheritdoc />
    public override SupervisorStrategy Create() => Strategy;
}
