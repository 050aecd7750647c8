using Natd.Dataplane.Actors;

namespace Natd.Tests.Actors;

public class SupervisionTests
{
    private static readonly TimeSpan AskTimeout = TimeSpan.FromSeconds(5);

    private static ActorSystem SystemWith(string name, SupervisorStrategy guardianStrategy, TimeProvider? time = null) =>
        ActorSystem.Create(name, new ActorSystemOptions { GuardianStrategy = guardianStrategy, TimeProvider = time });

    [Fact]
    public async Task Restart_CreatesNewInstance_DropsFailingMessage_KeepsLaterMessages()
    {
        using var system = ActorSystem.Create("restart");
        var lines = new List<string>();
        system.Log += l => { lock (lines) { lines.Add(l); } };
        var instances = new InstanceCounter();
        var events = new Events();
        IActorRef counter = system.ActorOf(Props.Create(() => new CounterActor(instances, events)), "counter");

        counter.Tell("inc");
        counter.Tell("inc");
        counter.Tell("boom");
        counter.Tell("inc");
        var (instance, count) = await Within.Of(counter.Ask<(int, int)>("get", AskTimeout));

        Assert.Equal(2, instance);
        Assert.Equal(1, count); // state was reset; the "inc" queued behind the failure was kept
        Assert.Equal(1, events.Count("receive 1 boom"));
        Assert.Equal(0, events.Count("receive 2 boom"));
        string[] all = events.All;
        Assert.True(events.IndexOf("PreRestart 1 boom boom") < events.IndexOf("PostStop 1"));
        Assert.True(events.IndexOf("PostStop 1") < events.IndexOf("PostRestart 2 boom"));
        Assert.True(events.IndexOf("PostRestart 2 boom") < events.IndexOf("PreStart 2"));
        Assert.Equal(1, system.Stats.Failures);
        Assert.Equal(1, system.Stats.Restarts);
        Assert.Equal(1, system.Stats.RestartsOf(counter));
        lock (lines)
        {
            Assert.Contains(lines, l => l.Contains(counter.Path) && l.Contains("restarting"));
        }

        Assert.NotEmpty(all);
    }

    [Fact]
    public async Task Resume_KeepsInstanceAndState()
    {
        using var system = SystemWith("resume", new OneForOneStrategy(_ => Directive.Resume));
        var instances = new InstanceCounter();
        var events = new Events();
        IActorRef counter = system.ActorOf(Props.Create(() => new CounterActor(instances, events)), "counter");

        counter.Tell("inc");
        counter.Tell("boom");
        counter.Tell("inc");
        var (instance, count) = await Within.Of(counter.Ask<(int, int)>("get", AskTimeout));

        Assert.Equal(1, instance);
        Assert.Equal(2, count);
        Assert.Equal(1, events.Count("receive 1 boom"));
        Assert.Equal(1, system.Stats.Resumes);
        Assert.Equal(0, system.Stats.Restarts);
    }

    [Fact]
    public async Task StopDirective_StopsActor_QueuedMessagesBecomeDeadLetters()
    {
        using var system = SystemWith("stopdir", SupervisorStrategy.StoppingStrategy);
        var instances = new InstanceCounter();
        var events = new Events();
        IActorRef counter = system.ActorOf(Props.Create(() => new CounterActor(instances, events)), "counter");
        counter.Tell("boom");
        await Within.Stopped(counter);

        Assert.Equal(1, instances.Count);
        Assert.Contains("PostStop 1", events.All);
        Assert.Equal(1, system.Stats.Stops);
        long dead = system.DeadLetterCount;
        counter.Tell("inc");
        Assert.Equal(dead + 1, system.DeadLetterCount);
    }

    [Fact]
    public async Task RestartLimitExceeded_StopsActor()
    {
        using var system = SystemWith("limit", new OneForOneStrategy(2, TimeSpan.FromMinutes(1), _ => Directive.Restart));
        var instances = new InstanceCounter();
        var events = new Events();
        IActorRef counter = system.ActorOf(Props.Create(() => new CounterActor(instances, events)), "counter");
        counter.Tell("boom");
        counter.Tell("boom");
        counter.Tell("boom");
        counter.Tell("boom");
        await Within.Stopped(counter);

        Assert.Equal(3, instances.Count); // the first and two restarts
        Assert.Equal(2, system.Stats.Restarts);
        Assert.Equal(1, system.Stats.Stops);
        Assert.Equal(3, system.Stats.Failures);
        Assert.Equal(0, events.Count("receive 3 boom") - 1); // the third instance failed once, then was stopped
    }

    [Fact]
    public async Task RestartWindow_ForgetsOldRestarts()
    {
        var time = new ManualTimeProvider();
        using var system = SystemWith("window", new OneForOneStrategy(1, TimeSpan.FromSeconds(10), _ => Directive.Restart), time);
        var probe = new Probe();
        var instances = new InstanceCounter();
        IActorRef counter = system.ActorOf(Props.Create(() => new CounterActor(instances, new Events(), probe)), "counter");
        await probe.Expect("started 1");

        counter.Tell("boom");
        await probe.Expect("stopped 1");
        await probe.Expect("started 2");

        time.Advance(TimeSpan.FromSeconds(11));
        counter.Tell("boom");
        await probe.Expect("stopped 2");
        await probe.Expect("started 3"); // a new window: one more restart allowed

        counter.Tell("boom");
        await probe.Expect("stopped 3");
        await Within.Stopped(counter); // second restart within 10 s: over budget
        Assert.Equal(3, instances.Count);
        Assert.Equal(2, system.Stats.Restarts);
    }

    [Fact]
    public async Task InitializationFailure_StopsByDefault()
    {
        using var system = ActorSystem.Create("initfail");
        int attempts = 0;
        IActorRef actor = system.ActorOf(Props.Create<EchoActor>(() =>
        {
            Interlocked.Increment(ref attempts);
            throw new InvalidDataException("no config");
        }), "broken");
        await Within.Stopped(actor);
        Assert.Equal(1, attempts);
        Assert.Equal(1, system.Stats.Stops);
        Assert.Equal(0, system.Stats.Restarts);
    }

    private sealed class DeciderRecorder(Directive directive, IActorRef probe)
    {
        public Directive Decide(Exception ex)
        {
            probe.Tell($"decided {ex.GetType().Name} {ex.Message}");
            return directive;
        }
    }

    /// <summary>Creates one counter child "c" and reports its reference to the probe on every start.</summary>
    private sealed class MiddleActor(IActorRef probe, InstanceCounter childInstances, Events events, InstanceCounter myInstances) : ActorBase
    {
        private readonly int _instance = myInstances.Next();

        protected override void PreStart()
        {
            IActorRef child = Context.ActorOf(Props.Create(() => new CounterActor(childInstances, events, probe)), "c");
            probe.Tell($"middle started {_instance}");
            probe.Tell(child);
        }

        protected override void OnReceive(object message) => Unhandled(message);
    }

    private sealed class TopActor(Props middle) : ActorBase
    {
        protected override void PreStart() => Context.ActorOf(middle, "middle");

        protected override void OnReceive(object message) => Unhandled(message);
    }

    [Fact]
    public async Task Escalate_FailsParent_WhichItsParentRestarts()
    {
        using var system = ActorSystem.Create("escalate");
        var probe = new Probe();
        var childInstances = new InstanceCounter();
        var middleInstances = new InstanceCounter();
        var events = new Events();
        Props middle = Props.Create(() => new MiddleActor(probe, childInstances, events, middleInstances))
            .WithSupervisorStrategy(new OneForOneStrategy(_ => Directive.Escalate));
        Props top = Props.Create(() => new TopActor(middle))
            .WithSupervisorStrategy(new OneForOneStrategy(new DeciderRecorder(Directive.Restart, probe).Decide));
        system.ActorOf(top, "top");

        IActorRef child = await ExpectStarts(probe, 1);
        Assert.Equal("akka://escalate/user/top/middle/c", child.Path);

        child.Tell("boom");
        // Top decides about the middle actor with the child's exception; the middle restart stops the
        // old child (default PreRestart) and only then does its new PreStart create a new one.
        await probe.Expect("decided InvalidOperationException boom");
        await probe.Expect("stopped 1");
        IActorRef newChild = await ExpectStarts(probe, 2);
        Assert.Equal(child, newChild);
        Assert.Equal((2, 0), await Within.Of(newChild.Ask<(int, int)>("get", AskTimeout)));
        Assert.Equal(1, system.Stats.Escalations);
        Assert.Equal(1, system.Stats.Restarts);
        Assert.Equal(1, system.Stats.RestartsOf(new ActorPathRef("akka://escalate/user/top/middle")));
    }

    [Fact]
    public async Task Escalate_ThenResume_ResumesTheFailedChild()
    {
        using var system = ActorSystem.Create("escresume");
        var probe = new Probe();
        var childInstances = new InstanceCounter();
        var events = new Events();
        Props middle = Props.Create(() => new MiddleActor(probe, childInstances, events, new InstanceCounter()))
            .WithSupervisorStrategy(new OneForOneStrategy(_ => Directive.Escalate));
        Props top = Props.Create(() => new TopActor(middle))
            .WithSupervisorStrategy(new OneForOneStrategy(_ => Directive.Resume));
        system.ActorOf(top, "top");

        IActorRef child = await ExpectStarts(probe, 1);
        child.Tell("inc");
        child.Tell("boom");
        child.Tell("inc");
        Assert.Equal((1, 2), await Within.Of(child.Ask<(int, int)>("get", AskTimeout)));
        Assert.Equal(1, system.Stats.Resumes);
    }

    /// <summary>The child's "started n" races the middle actor's own reports; accept any interleaving.</summary>
    private static async Task<IActorRef> ExpectStarts(Probe probe, int n)
    {
        IActorRef? child = null;
        var seen = new List<string>();
        for (int i = 0; i < 3; i++)
        {
            object m = await probe.Receive();
            if (m is IActorRef r)
            {
                Assert.Contains($"middle started {n}", seen); // reported before the ref
                child = r;
            }
            else
            {
                seen.Add((string)m);
            }
        }

        Assert.Equal([$"middle started {n}", $"started {n}"], seen.Order());
        return child!;
    }

    private sealed class ActorPathRef(string path) : IActorRef
    {
        public string Path { get; } = path;

        public void Tell(object message, IActorRef? sender = null) { }

        public Task<T> Ask<T>(object message, TimeSpan timeout, CancellationToken ct = default) => throw new NotSupportedException();
    }

    private sealed class PairActor(Props child) : ActorBase
    {
        protected override void PreStart()
        {
            Context.ActorOf(child, "x");
            Context.ActorOf(child, "y");
        }

        protected override void OnReceive(object message) =>
            Context.Child((string)message)!.Tell("boom");
    }

    [Fact]
    public async Task AllForOne_RestartsSiblings()
    {
        using var system = ActorSystem.Create("allforone");
        var probe = new Probe();
        var instances = new InstanceCounter();
        Props child = Props.Create(() => new CounterActor(instances, new Events(), probe));
        Props pair = Props.Create(() => new PairActor(child))
            .WithSupervisorStrategy(new AllForOneStrategy(5, TimeSpan.FromMinutes(1), _ => Directive.Restart));
        IActorRef parent = system.ActorOf(pair, "pair");
        var started = new HashSet<object> { await probe.Receive(), await probe.Receive() };
        Assert.Equal(new HashSet<object> { "started 1", "started 2" }, started);

        parent.Tell("x");
        var after = new HashSet<object>();
        for (int i = 0; i < 4; i++)
        {
            after.Add(await probe.Receive());
        }

        Assert.Equal(new HashSet<object> { "stopped 1", "stopped 2", "started 3", "started 4" }, after);
        Assert.Equal(2, system.Stats.Restarts);
    }
}

public class SupervisionEdgeTests
{
    private static readonly TimeSpan AskTimeout = TimeSpan.FromSeconds(5);

    /// <summary>Keeps its children across restarts (overrides PreRestart), so they restart with it (Akka's rule).</summary>
    private sealed class KeeperActor(IActorRef probe, InstanceCounter childInstances, InstanceCounter myInstances) : ActorBase
    {
        private readonly int _instance = myInstances.Next();

        protected override void PreStart()
        {
            if (Context.Child("kept") is null)
            {
                Context.ActorOf(Props.Create(() => new CounterActor(childInstances, new Events(), probe)), "kept");
            }

            probe.Tell($"keeper started {_instance}");
        }

        protected override void PreRestart(Exception reason, object? message) { }

        protected override void OnReceive(object message)
        {
            switch (message)
            {
                case "boom":
                    throw new InvalidOperationException("keeper boom");
                case "stop kept twice":
                    IActorRef kept = Context.Child("kept")!;
                    Context.Stop(kept);
                    Context.Stop(kept);
                    Sender.Tell("ok");
                    break;
                default:
                    Sender.Tell(Context.Child("kept")!);
                    break;
            }
        }
    }

    [Fact]
    public async Task Restart_KeptChildrenAreRestartedToo()
    {
        using var system = ActorSystem.Create("survivors");
        var probe = new Probe();
        var childInstances = new InstanceCounter();
        var keeperInstances = new InstanceCounter();
        IActorRef keeper = system.ActorOf(Props.Create(() => new KeeperActor(probe, childInstances, keeperInstances)), "keeper");
        var first = new HashSet<object> { await probe.Receive(), await probe.Receive() };
        Assert.Equal(new HashSet<object> { "started 1", "keeper started 1" }, first);
        IActorRef kept = await Within.Of(keeper.Ask<IActorRef>("kept?", AskTimeout));

        keeper.Tell("boom");
        var second = new HashSet<object> { await probe.Receive(), await probe.Receive(), await probe.Receive() };
        Assert.Equal(new HashSet<object> { "keeper started 2", "stopped 1", "started 2" }, second);
        Assert.Equal(kept, await Within.Of(keeper.Ask<IActorRef>("kept?", AskTimeout)));
        Assert.Equal((2, 0), await Within.Of(kept.Ask<(int, int)>("get", AskTimeout)));
        Assert.Equal(2, system.Stats.Restarts); // keeper and the kept child
    }

    [Fact]
    public async Task ContextStop_TwiceOnSameChild_IsHarmless()
    {
        using var system = ActorSystem.Create("stoptwice");
        var probe = new Probe();
        IActorRef keeper = system.ActorOf(Props.Create(() => new KeeperActor(probe, new InstanceCounter(), new InstanceCounter())), "keeper");
        Assert.Equal("ok", await Within.Of(keeper.Ask<string>("stop kept twice", AskTimeout)));
        Assert.Equal(0, system.Stats.Failures);
    }

    [Fact]
    public async Task EscalationAtGuardian_StopsTopLevelActor()
    {
        using var system = ActorSystem.Create("guardianesc", new ActorSystemOptions
        {
            GuardianStrategy = new OneForOneStrategy(_ => Directive.Escalate),
        });
        var lines = new List<string>();
        system.Log += l => { lock (lines) { lines.Add(l); } };
        system.Log += _ => throw new InvalidOperationException("broken sink");
        IActorRef counter = system.ActorOf(Props.Create(() => new CounterActor(new InstanceCounter(), new Events())), "counter");
        counter.Tell("boom");
        await Within.Stopped(counter);
        lock (lines)
        {
            Assert.Contains(lines, l => l.Contains("escalation reached the user guardian"));
        }

        // The guardian itself carries on.
        IActorRef echo = system.ActorOf(Props.Create(() => new EchoActor()), "echo");
        Assert.Equal("x", await Within.Of(echo.Ask<string>("x", AskTimeout)));
    }

    [Fact]
    public async Task DeciderThatThrows_Escalates()
    {
        using var system = ActorSystem.Create("baddecider", new ActorSystemOptions
        {
            GuardianStrategy = new OneForOneStrategy(_ => throw new InvalidOperationException("the decider itself fails")),
        });
        IActorRef counter = system.ActorOf(Props.Create(() => new CounterActor(new InstanceCounter(), new Events())), "counter");
        counter.Tell("boom");
        await Within.Stopped(counter);
        Assert.Equal(1, system.Stats.Escalations);
    }
}
