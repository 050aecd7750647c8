using Natd.Dataplane.Actors;

namespace Natd.Tests.Actors;

public class LoopActorTests
{
    private static readonly TimeSpan AskTimeout = TimeSpan.FromSeconds(5);

    /// <summary>Reports through the probe: thread of each hook, RunOnce and Idle counts; scripted work and failures.</summary>
    private sealed class Poller : LoopActor
    {
        private readonly IActorRef _probe;
        private readonly Func<int, bool> _work;
        private readonly int _instance;
        private readonly Events _events;
        private int _runs;
        private int _idles;

        public Poller(IActorRef probe, Func<int, bool> work, InstanceCounter instances, Events events, TimeSpan? idleWait = null)
        {
            _probe = probe;
            _work = work;
            _events = events;
            _instance = instances.Next();
            if (idleWait is { } w)
            {
                IdleWait = w;
            }
        }

        public static int FailAt { get; set; } = -1;

        protected override void PreStart() => _probe.Tell($"started {_instance} on {Thread.CurrentThread.Name}");

        protected override void PostStop()
        {
            _events.Add($"PostStop {_instance} on {Thread.CurrentThread.ManagedThreadId}");
            _probe.Tell(Thread.CurrentThread);
        }

        protected override bool RunOnce()
        {
            _runs++;
            _events.Add($"run {_instance}");
            if (_runs == 1)
            {
                _probe.Tell(Thread.CurrentThread);
            }

            return _work(_runs);
        }

        protected override void Idle(TimeSpan maxWait)
        {
            _idles++;
            if (_idles == 3)
            {
                _probe.Tell($"idled 3 times, maxWait {maxWait.TotalMilliseconds}");
            }

            base.Idle(maxWait);
        }

        protected override void OnReceive(object message)
        {
            _events.Add($"msg {_instance} {message}");
            switch (message)
            {
                case "runs":
                    Sender.Tell(_runs);
                    break;
                case "thread":
                    Sender.Tell(Thread.CurrentThread);
                    break;
                default:
                    Sender.Tell(message);
                    break;
            }
        }
    }

    private static Props PollerProps(Probe probe, Func<int, bool> work, InstanceCounter? instances = null, Events? events = null, TimeSpan? idleWait = null) =>
        Props.Create(() => new Poller(probe, work, instances ?? new InstanceCounter(), events ?? new Events(), idleWait));

    [Fact]
    public async Task RunsOnNamedBackgroundThread_AndCallsRunOnceRepeatedly()
    {
        using var system = ActorSystem.Create("loop");
        var probe = new Probe();
        IActorRef poller = system.ActorOf(PollerProps(probe, n => n < 100), "poller-0");
        await probe.Expect("started 1 on poller-0");
        var thread = await probe.Expect<Thread>();
        Assert.True(thread.IsBackground);
        Assert.Equal("poller-0", thread.Name);

        int runs = 0;
        for (int i = 0; i < 100 && runs < 100; i++)
        {
            runs = await Within.Of(poller.Ask<int>("runs", AskTimeout));
        }

        Assert.True(runs >= 100, $"RunOnce ran only {runs} times");
        Assert.Same(thread, await Within.Of(poller.Ask<Thread>("thread", AskTimeout)));
    }

    [Fact]
    public async Task MailboxIsDrainedBetweenRuns_EvenWhenAlwaysBusy()
    {
        using var system = ActorSystem.Create("busy");
        var probe = new Probe();
        var events = new Events();
        IActorRef poller = system.ActorOf(PollerProps(probe, _ => true, events: events), "poller");
        await probe.Expect("started 1 on poller");
        await probe.Expect<Thread>();

        // RunOnce never reports idle; messages must still be handled between its calls.
        Assert.Equal("ping", await Within.Of(poller.Ask<string>("ping", AskTimeout)));
        Assert.Equal("pong", await Within.Of(poller.Ask<string>("pong", AskTimeout)));

        // And RunOnce goes on between messages (two asks may share one drain, so retry a bounded number of times).
        int first = await Within.Of(poller.Ask<int>("runs", AskTimeout));
        int later = first;
        for (int i = 0; i < 100 && later == first; i++)
        {
            later = await Within.Of(poller.Ask<int>("runs", AskTimeout));
        }

        Assert.True(later > first, "RunOnce did not run between mailbox drains");
        Assert.Contains("msg 1 ping", events.All);
    }

    [Fact]
    public async Task IdleIsCalledWhenNoWork_WithIdleWait()
    {
        using var system = ActorSystem.Create("idle");
        var probe = new Probe();
        system.ActorOf(PollerProps(probe, _ => false, idleWait: TimeSpan.FromMilliseconds(2)), "poller");
        await probe.Expect("started 1 on poller");
        await probe.Expect<Thread>();
        await probe.Expect("idled 3 times, maxWait 2");
    }

    [Fact]
    public async Task DefaultIdle_WakesOnMessage()
    {
        using var system = ActorSystem.Create("wake");
        var probe = new Probe();
        // An idle wait far beyond the test's patience: only the mailbox signal can answer in time.
        IActorRef poller = system.ActorOf(PollerProps(probe, _ => false, idleWait: TimeSpan.FromMinutes(5)), "poller");
        await probe.Expect("started 1 on poller");
        await probe.Expect<Thread>();
        for (int i = 0; i < 3; i++)
        {
            Assert.Equal(i, await Within.Of(poller.Ask<int>(i, AskTimeout)));
        }
    }

    [Fact]
    public async Task ExceptionInRunOnce_RestartsActorOnSameThread()
    {
        using var system = ActorSystem.Create("loopfail");
        var probe = new Probe();
        var instances = new InstanceCounter();
        IActorRef poller = system.ActorOf(
            PollerProps(probe, n => n == 3 && instances.Count == 1 ? throw new IOException("ring broke") : false, instances),
            "poller");
        await probe.Expect("started 1 on poller");
        var thread = await probe.Expect<Thread>();
        Assert.Same(thread, await probe.Expect<Thread>()); // old instance's PostStop, from the default PreRestart
        await probe.Expect("started 2 on poller");
        Assert.Same(thread, await probe.Expect<Thread>()); // the new instance's first RunOnce
        Assert.Equal(1, system.Stats.Restarts);
        Assert.Equal(1, system.Stats.RestartsOf(poller));
        Assert.Equal("still here", await Within.Of(poller.Ask<string>("still here", AskTimeout)));
    }

    [Fact]
    public async Task Stop_RunsPostStopOnLoopThread_AndJoinsIt()
    {
        using var system = ActorSystem.Create("loopstop");
        var probe = new Probe();
        var events = new Events();
        IActorRef poller = system.ActorOf(PollerProps(probe, _ => true, events: events), "poller");
        await probe.Expect("started 1 on poller");
        var thread = await probe.Expect<Thread>();

        system.Stop(poller);
        await Within.Stopped(poller);
        Assert.False(thread.IsAlive);
        Assert.Same(thread, await probe.Expect<Thread>()); // PostStop ran on the loop thread
        Assert.Contains($"PostStop 1 on {thread.ManagedThreadId}", events.All);
    }

    [Fact]
    public async Task ThreadSetup_RunsFirstOnTheThread()
    {
        using var system = ActorSystem.Create("setup");
        var probe = new Probe();
        string? setupThread = null;
        Props props = PollerProps(probe, _ => false).WithDedicatedThread(() => setupThread = Thread.CurrentThread.Name);
        system.ActorOf(props, "pinned");
        await probe.Expect("started 1 on pinned");
        Assert.Equal("pinned", setupThread);
    }

    [Fact]
    public async Task ThreadSetupFailure_StopsActor()
    {
        using var system = ActorSystem.Create("setupfail");
        var probe = new Probe();
        Props props = PollerProps(probe, _ => false).WithDedicatedThread(() => throw new PlatformNotSupportedException("no cpu 9"));
        IActorRef poller = system.ActorOf(props, "pinned");
        await Within.Stopped(poller);
        Assert.False(((LocalActorRef)poller).Cell.DedicatedThread!.IsAlive);
        Assert.Equal(0, probe.Pending);
    }

    private sealed class NotALoop : ActorBase
    {
        protected override void OnReceive(object message) => Sender.Tell(Thread.CurrentThread.Name ?? "pool");
    }

    [Fact]
    public async Task PlainActor_CanHaveDedicatedThread()
    {
        using var system = ActorSystem.Create("plain");
        IActorRef actor = system.ActorOf(Props.Create(() => new NotALoop()).WithDedicatedThread(), "own");
        Assert.Equal("own", await Within.Of(actor.Ask<string>("who", AskTimeout)));
        IActorRef pooled = system.ActorOf(Props.Create(() => new NotALoop()), "pooled");
        Assert.NotEqual("pooled", await Within.Of(pooled.Ask<string>("who", AskTimeout)));
    }

    [Fact]
    public async Task Terminate_StopsLoopActorsAndTheirThreads()
    {
        var system = ActorSystem.Create("loopterm");
        var probe = new Probe();
        IActorRef poller = system.ActorOf(PollerProps(probe, _ => true), "poller");
        await probe.Expect("started 1 on poller");
        var thread = await probe.Expect<Thread>();
        await Within.Of(system.Terminate());
        Assert.False(thread.IsAlive);
        Assert.True(ActorSystem.WhenStopped(poller).IsCompletedSuccessfully);
    }
}
