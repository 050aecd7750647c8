using Akka.Configuration;
using Natd.Dataplane.Workers;

namespace Natd.Benchmarks.Support;

/// <summary>The actor system configuration of the modes that run real pollers (<c>--scaling</c>, <c>--wakeup</c>).</summary>
public static class PollerSystemConfig
{
    /// <summary>
    /// <see cref="PollerActor.Config"/> with warnings and errors logged only: the system's start and
    /// shutdown notices would otherwise land in the middle of the printed tables.
    /// </summary>
    public static Config Quiet { get; } = ConfigurationFactory.ParseString("akka.loglevel = WARNING").WithFallback(PollerActor.Config);
}
