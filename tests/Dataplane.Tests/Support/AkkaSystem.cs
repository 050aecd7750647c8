using Akka.Actor;
using Natd.Dataplane.Workers;

namespace Natd.Tests.Support;

/// <summary>
/// An Akka ActorSystem for a test that needs no probes (the sink tests): natd's poller settings,
/// warnings only, and termination on <c>await using</c> (Akka's own Dispose does not wait for the
/// actors' PostStop, which the sink tests read after).
/// </summary>
internal sealed class AkkaSystem : IAsyncDisposable
{
    private AkkaSystem(ActorSystem system) => System = system;

    public ActorSystem System { get; }

    public static AkkaSystem Create(string name) =>
        new(ActorSystem.Create(name, Akka.Configuration.ConfigurationFactory.ParseString("akka.loglevel = WARNING").WithFallback(PollerActor.Config)));

    public IActorRef ActorOf(Props props, string name) => System.ActorOf(props, name);

    public async ValueTask DisposeAsync() => await System.Terminate().WaitAsync(TimeSpan.FromSeconds(30));
}

/// <summary>Props from a factory, for actors whose constructor Akka's activator cannot reach (internal ones).</summary>
internal static class FactoryProps
{
    public static Props Of<TActor>(Func<TActor> create) where TActor : ActorBase => Props.CreateBy(new Producer<TActor>(create));

    private sealed class Producer<TActor>(Func<TActor> create) : IIndirectActorProducer where TActor : ActorBase
    {
        public Type ActorType => typeof(TActor);

        public ActorBase Produce() => create();

        public void Release(ActorBase actor)
        {
        }
    }
}
