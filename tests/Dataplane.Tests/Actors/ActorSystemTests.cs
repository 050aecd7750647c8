using Natd.Dataplane.Actors;

namespace Natd.Tests.Actors;

public class ActorSystemTests
{
    [Fact]
    public async Task Tell_PreservesOrderPerSender()
    {
        using var system = ActorSystem.Create("order");
        var probe = new Probe();
        IActorRef actor = system.ActorOf(Props.Create(() => new ForwardActor(probe)).WithThroughput(7), "fwd");
        for (int i = 0; i < 1000; i++)
        {
            actor.Tell(i);
        }

        for (int i = 0; i < 1000; i++)
        {
            await probe.Expect(i);
        }
    }

    [Fact]
    public async Task Tell_FromManySendersKeepsEachSendersOrder()
    {
        using var system = ActorSystem.Create("order2");
        var probe = new Probe();
        IActorRef actor = system.ActorOf(Props.Create(() => new ForwardActor(probe)), "fwd");
        const int perSender = 500;
        Task[] senders = Enumerable.Range(0, 4)
            .Select(s => Task.Run(() =>
            {
                for (int i = 0; i < perSender; i++)
                {
                    actor.Tell((s, i));
                }
            }))
            .ToArray();
        await Within.Of(Task.WhenAll(senders));

        var next = new int[4];
        for (int n = 0; n < 4 * perSender; n++)
        {
            var (s, i) = ((int, int))await probe.Receive();
            Assert.Equal(next[s], i);
            next[s]++;
        }

        Assert.All(next, v => Assert.Equal(perSender, v));
    }

    [Fact]
    public async Task Ask_ReturnsReply()
    {
        using var system = ActorSystem.Create("ask");
        IActorRef echo = system.ActorOf(Props.Create(() => new EchoActor()), "echo");
        Assert.Equal("hello", await Within.Of(echo.Ask<string>("hello", TimeSpan.FromSeconds(5))));
        Assert.Equal(42, await Within.Of(echo.Ask<int>(42, TimeSpan.FromSeconds(5))));
    }

    [Fact]
    public async Task Ask_WithoutReply_ThrowsAskTimeoutException()
    {
        using var system = ActorSystem.Create("asktimeout");
        IActorRef silent = system.ActorOf(Props.Create(() => new SilentActor()), "silent");
        var ex = await Assert.ThrowsAsync<AskTimeoutException>(() => Within.Of(silent.Ask<string>("anyone?", TimeSpan.FromMilliseconds(100))));
        Assert.Contains(silent.Path, ex.Message);
    }

    [Fact]
    public async Task Ask_WrongReplyType_ThrowsInvalidCast_AndFailureReplyFaults()
    {
        using var system = ActorSystem.Create("asktypes");
        IActorRef echo = system.ActorOf(Props.Create(() => new EchoActor()), "echo");
        await Assert.ThrowsAsync<InvalidCastException>(() => Within.Of(echo.Ask<int>("not an int", TimeSpan.FromSeconds(5))));
        var failure = new Status.Failure(new FormatException("bad request"));
        var ex = await Assert.ThrowsAsync<FormatException>(() => Within.Of(echo.Ask<string>(failure, TimeSpan.FromSeconds(5))));
        Assert.Equal("bad request", ex.Message);
    }

    [Fact]
    public async Task Ask_Cancelled_ThrowsOperationCanceled()
    {
        using var system = ActorSystem.Create("askcancel");
        IActorRef silent = system.ActorOf(Props.Create(() => new SilentActor()), "silent");
        using var cts = new CancellationTokenSource();
        Task<string> ask = silent.Ask<string>("x", TimeSpan.FromMinutes(5), cts.Token);
        cts.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => Within.Of(ask));
    }

    private sealed class ParentActor(Events events) : ActorBase
    {
        protected override void PreStart()
        {
            Context.ActorOf(Props.Create(() => new LeafActor(events, "a")), "a");
            Context.ActorOf(Props.Create(() => new LeafActor(events, "b")), "b");
        }

        protected override void PostStop() => events.Add("PostStop parent");

        protected override void OnReceive(object message)
        {
            switch (message)
            {
                case "children":
                    Sender.Tell(Context.Children.Select(c => c.Path).Order().ToArray());
                    break;
                case string name when name.StartsWith("stop ", StringComparison.Ordinal):
                    Context.Stop(Context.Child(name[5..])!);
                    Sender.Tell("ok");
                    break;
                case string name when name.StartsWith("child ", StringComparison.Ordinal):
                    Sender.Tell(Context.Child(name[6..])!);
                    break;
                case "parent":
                    Sender.Tell(Context.Parent.Path);
                    break;
                default:
                    Unhandled(message);
                    break;
            }
        }
    }

    private sealed class LeafActor(Events events, string name) : ActorBase
    {
        protected override void PostStop() => events.Add($"PostStop {name}");

        protected override void OnReceive(object message) => Sender.Tell(Context.Parent);
    }

    [Fact]
    public async Task Children_HavePathsUnderParent_AndStopStopsChildrenFirst()
    {
        using var system = ActorSystem.Create("tree");
        var events = new Events();
        IActorRef parent = system.ActorOf(Props.Create(() => new ParentActor(events)), "parent");

        string[] children = await Within.Of(parent.Ask<string[]>("children", TimeSpan.FromSeconds(5)));
        Assert.Equal(["akka://tree/user/parent/a", "akka://tree/user/parent/b"], children);
        Assert.Equal("akka://tree/user", await Within.Of(parent.Ask<string>("parent", TimeSpan.FromSeconds(5))));

        system.Stop(parent);
        await Within.Stopped(parent);

        string[] all = events.All;
        Assert.Equal(3, all.Length);
        Assert.Equal("PostStop parent", all[2]);
        Assert.Contains("PostStop a", all);
        Assert.Contains("PostStop b", all);
    }

    [Fact]
    public async Task ContextStop_StopsOneChild_AndFreesItsName()
    {
        using var system = ActorSystem.Create("stopchild");
        var events = new Events();
        IActorRef parent = system.ActorOf(Props.Create(() => new ParentActor(events)), "parent");
        IActorRef a = await Within.Of(parent.Ask<IActorRef>("child a", TimeSpan.FromSeconds(5)));
        Assert.Equal("ok", await Within.Of(parent.Ask<string>("stop a", TimeSpan.FromSeconds(5))));

        // Completes only after the parent processed the child's end and dropped it from Children.
        await Within.Stopped(a);
        Assert.Contains("PostStop a", events.All);
        string[] children = await Within.Of(parent.Ask<string[]>("children", TimeSpan.FromSeconds(5)));
        Assert.Equal(["akka://stopchild/user/parent/b"], children);
        Assert.DoesNotContain("PostStop parent", events.All);
    }

    [Fact]
    public async Task StoppedActor_MessagesGoToDeadLetters()
    {
        using var system = ActorSystem.Create("dead");
        IActorRef echo = system.ActorOf(Props.Create(() => new EchoActor()), "echo");
        system.Stop(echo);
        await Within.Stopped(echo);
        long before = system.DeadLetterCount;
        echo.Tell("late");
        Assert.Equal(before + 1, system.DeadLetterCount);
    }

    [Fact]
    public async Task Unhandled_GoesToDeadLetters()
    {
        using var system = ActorSystem.Create("unhandled");
        IActorRef silent = system.ActorOf(Props.Create(() => new SilentActor()), "silent");
        silent.Tell("nobody wants this");
        silent.Tell("nor this");
        // The pill comes after both messages, so both were handled (and dropped) when it stops.
        Assert.True(await silent.GracefulStop(Within.Timeout));
        Assert.Equal(2, system.DeadLetterCount);
    }

    [Fact]
    public async Task GracefulStop_HandlesQueuedMessagesFirst()
    {
        using var system = ActorSystem.Create("graceful");
        var probe = new Probe();
        IActorRef actor = system.ActorOf(Props.Create(() => new ForwardActor(probe)), "fwd");
        actor.Tell(1);
        actor.Tell(2);
        actor.Tell(3);
        Assert.True(await actor.GracefulStop(Within.Timeout));
        Assert.Equal(3, probe.Pending);
        await probe.Expect(1);
        await probe.Expect(2);
        await probe.Expect(3);
    }

    private sealed class PathOnlyRef(string path) : IActorRef
    {
        public string Path { get; } = path;

        public void Tell(object message, IActorRef? sender = null) { }

        public Task<T> Ask<T>(object message, TimeSpan timeout, CancellationToken ct = default) => throw new NotSupportedException();
    }

    [Fact]
    public async Task ActorRefs_AreEqualByPath()
    {
        using var system = ActorSystem.Create("equality");
        IActorRef parent = system.ActorOf(Props.Create(() => new ParentActor(new Events())), "parent");
        IActorRef other = system.ActorOf(Props.Create(() => new EchoActor()), "other");

        // The echo replies with its Self: the same actor seen from inside.
        IActorRef self = await Within.Of(other.Ask<IActorRef>("self", TimeSpan.FromSeconds(5)));
        Assert.Equal(other, self);

        var samePath = new PathOnlyRef("akka://equality/user/parent");
        Assert.True(parent.Equals(samePath));
        Assert.Equal(parent.GetHashCode(), StringComparer.Ordinal.GetHashCode(samePath.Path));
        Assert.NotEqual(parent, other);
        Assert.False(parent.Equals(new PathOnlyRef("akka://equality/user/Parent")));
    }

    [Fact]
    public async Task ActorOf_RejectsBadAndDuplicateNames()
    {
        using var system = ActorSystem.Create("names");
        system.ActorOf(Props.Create(() => new EchoActor()), "echo");
        Assert.Throws<InvalidActorNameException>(() => system.ActorOf(Props.Create(() => new EchoActor()), "echo"));
        Assert.Throws<InvalidActorNameException>(() => system.ActorOf(Props.Create(() => new EchoActor()), ""));
        Assert.Throws<InvalidActorNameException>(() => system.ActorOf(Props.Create(() => new EchoActor()), "a/b"));
        Assert.Throws<InvalidActorNameException>(() => system.ActorOf(Props.Create(() => new EchoActor()), "$temp"));
        Assert.Throws<InvalidActorNameException>(() => ActorSystem.Create("bad name"));
        await Task.CompletedTask;
    }

    [Fact]
    public void Constructor_OutsidePropsFactory_Throws()
    {
        Assert.Throws<InvalidOperationException>(() => new EchoActor());
    }

    [Fact]
    public async Task Factory_ReturningSharedInstance_FailsInitialization()
    {
        var log = new List<string>();
        using var system = ActorSystem.Create("shared");
        system.Log += line => { lock (log) { log.Add(line); } };
        EchoActor? shared = null;
        var props = Props.Create(() => shared ??= new EchoActor())
            .WithSupervisorStrategy(SupervisorStrategy.DefaultStrategy);
        IActorRef first = system.ActorOf(props, "first");
        Assert.Equal("x", await Within.Of(first.Ask<string>("x", TimeSpan.FromSeconds(5))));
        IActorRef second = system.ActorOf(props, "second");
        await Within.Stopped(second);
        lock (log)
        {
            Assert.Contains(log, l => l.Contains("second") && l.Contains("new actor instance"));
        }
    }

    [Fact]
    public async Task Terminate_StopsEverything_ChildrenFirst()
    {
        var system = ActorSystem.Create("terminate");
        var events = new Events();
        IActorRef p1 = system.ActorOf(Props.Create(() => new ParentActor(events)), "p1");
        await Within.Of(p1.Ask<string[]>("children", TimeSpan.FromSeconds(5)));

        await Within.Of(system.Terminate());
        Assert.True(system.WhenTerminated.IsCompletedSuccessfully);
        string[] all = events.All;
        Assert.Equal(3, all.Length);
        Assert.Equal("PostStop parent", all[^1]);
        Assert.Throws<InvalidOperationException>(() => system.ActorOf(Props.Create(() => new EchoActor()), "late"));
        long before = system.DeadLetterCount;
        p1.Tell("after");
        Assert.Equal(before + 1, system.DeadLetterCount);
        Assert.Same(system.Terminate(), system.Terminate());
        ICancelable c = system.Scheduler.ScheduleTellOnce(TimeSpan.FromSeconds(1), p1, "x");
        Assert.True(c.IsCancellationRequested);
        await system.DisposeAsync();
    }
}
