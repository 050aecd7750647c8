using Natd.Dataplane.Actors;

namespace Natd.Tests.Actors;

public class MailboxTests
{
    /// <summary>
    /// Blocks in its first message until the test releases it, so the test can queue messages behind it;
    /// records every message with the mailbox run it was handled in.
    /// </summary>
    private sealed class GatedActor(SemaphoreSlim started, SemaphoreSlim release, Events events, IActorRef probe, int expected) : ActorBase
    {
        private int _handled;

        protected override void PostStop() => events.Add("PostStop");

        protected override void OnReceive(object message)
        {
            long run = ((ActorCell)Context).RunCount;
            events.Add($"{message}@{run}");
            if (message is "block")
            {
                started.Release();
                Assert.True(release.Wait(Within.Timeout), "test never released the gate");
            }

            if (++_handled == expected)
            {
                probe.Tell("done");
            }
        }
    }

    [Fact]
    public async Task SystemMessages_AreHandledBeforeQueuedUserMessages()
    {
        using var system = ActorSystem.Create("sysfirst");
        using var started = new SemaphoreSlim(0);
        using var release = new SemaphoreSlim(0);
        var events = new Events();
        var probe = new Probe();
        IActorRef actor = system.ActorOf(Props.Create(() => new GatedActor(started, release, events, probe, 99)), "gated");

        actor.Tell("block");
        Within.Acquire(started);
        actor.Tell("a");
        actor.Tell("b");
        actor.Tell("c");
        system.Stop(actor); // a system message queued after a, b and c
        release.Release();
        await Within.Stopped(actor);

        string[] all = events.All;
        Assert.Equal(2, all.Length);
        Assert.StartsWith("block@", all[0]);
        Assert.Equal("PostStop", all[1]);
        Assert.Equal(3, system.DeadLetterCount); // a, b, c
    }

    [Theory]
    [InlineData(3)]
    [InlineData(1)]
    public async Task Throughput_CapsMessagesPerRun(int throughput)
    {
        using var system = ActorSystem.Create("throughput");
        using var started = new SemaphoreSlim(0);
        using var release = new SemaphoreSlim(0);
        var events = new Events();
        var probe = new Probe();
        const int total = 10;
        IActorRef actor = system.ActorOf(
            Props.Create(() => new GatedActor(started, release, events, probe, total)).WithThroughput(throughput), "gated");

        actor.Tell("block");
        Within.Acquire(started);
        for (int i = 1; i < total; i++)
        {
            actor.Tell(i);
        }

        release.Release();
        await probe.Expect("done");

        var perRun = events.All.GroupBy(e => e[(e.IndexOf('@') + 1)..]).Select(g => g.Count()).ToArray();
        Assert.All(perRun, n => Assert.True(n <= throughput, $"a run handled {n} > {throughput} messages"));
        Assert.True(perRun.Length >= (total + throughput - 1) / throughput);
    }

    [Fact]
    public async Task Throughput_Large_HandlesQueuedMessagesInOneRun()
    {
        // The control for the cap test: with room, everything queued behind the gate goes in the same run.
        using var system = ActorSystem.Create("throughputlarge");
        using var started = new SemaphoreSlim(0);
        using var release = new SemaphoreSlim(0);
        var events = new Events();
        var probe = new Probe();
        IActorRef actor = system.ActorOf(
            Props.Create(() => new GatedActor(started, release, events, probe, 10)).WithThroughput(100), "gated");
        actor.Tell("block");
        Within.Acquire(started);
        for (int i = 1; i < 10; i++)
        {
            actor.Tell(i);
        }

        release.Release();
        await probe.Expect("done");
        Assert.Single(events.All.Select(e => e[(e.IndexOf('@') + 1)..]).Distinct());
    }

    [Fact]
    public async Task BoundedMailbox_DropsAndCountsWhenFull()
    {
        using var system = ActorSystem.Create("bounded");
        using var started = new SemaphoreSlim(0);
        using var release = new SemaphoreSlim(0);
        var events = new Events();
        var probe = new Probe();
        IActorRef actor = system.ActorOf(
            Props.Create(() => new GatedActor(started, release, events, probe, 3)).WithMailboxCapacity(2), "gated");

        actor.Tell("block");
        Within.Acquire(started); // "block" has left the mailbox: two free slots
        for (int i = 1; i <= 5; i++)
        {
            actor.Tell(i);
        }

        Assert.Equal(3, system.MailboxDropCount);
        Assert.Equal(3, ((LocalActorRef)actor).Cell.DroppedCount);

        // System messages are not bounded: a stop still gets through after the handled messages.
        release.Release();
        await probe.Expect("done");
        Assert.Equal(["block", "1", "2"], events.All.Select(e => e[..e.IndexOf('@')]));
        system.Stop(actor);
        await Within.Stopped(actor);
        Assert.Equal(3, system.MailboxDropCount);
    }

    [Fact]
    public async Task FullMailbox_StillAcceptsStop()
    {
        using var system = ActorSystem.Create("fullstop");
        using var started = new SemaphoreSlim(0);
        using var release = new SemaphoreSlim(0);
        var events = new Events();
        IActorRef actor = system.ActorOf(
            Props.Create(() => new GatedActor(started, release, events, new Probe(), 99)).WithMailboxCapacity(1), "gated");
        actor.Tell("block");
        Within.Acquire(started);
        actor.Tell("fills");
        actor.Tell("dropped");
        Assert.Equal(1, system.MailboxDropCount);
        system.Stop(actor);
        release.Release();
        await Within.Stopped(actor);
        Assert.Equal("PostStop", events.All[^1]);
    }

    [Fact]
    public void Props_RejectsNonsense()
    {
        Props p = Props.Create(() => new EchoActor());
        Assert.Throws<ArgumentOutOfRangeException>(() => p.WithMailboxCapacity(0));
        Assert.Throws<ArgumentOutOfRangeException>(() => p.WithThroughput(0));
        Props q = p.WithThroughput(5).WithMailboxCapacity(7);
        Assert.Equal(Props.DefaultThroughput, p.Throughput); // immutable
        Assert.Equal(Props.DefaultMailboxCapacity, p.MailboxCapacity);
        Assert.Equal(5, q.Throughput);
        Assert.Equal(7, q.MailboxCapacity);
        Assert.False(q.DedicatedThread);
        Assert.True(q.WithDedicatedThread().DedicatedThread);
    }

    private sealed class SameThreadCheckActor(IActorRef probe, int expected) : ActorBase
    {
        private int _inside;
        private int _handled;

        protected override void OnReceive(object message)
        {
            if (Interlocked.Increment(ref _inside) != 1)
            {
                probe.Tell("concurrent!");
            }

            Thread.SpinWait(200);
            Interlocked.Decrement(ref _inside);
            if (++_handled == expected)
            {
                probe.Tell("done");
            }
        }
    }

    [Fact]
    public async Task OneMessageAtATime_UnderConcurrentSenders()
    {
        using var system = ActorSystem.Create("serial");
        var probe = new Probe();
        IActorRef actor = system.ActorOf(Props.Create(() => new SameThreadCheckActor(probe, 4000)).WithThroughput(2), "serial");
        Task[] senders = Enumerable.Range(0, 4)
            .Select(_ => Task.Run(() => { for (int i = 0; i < 1000; i++) { actor.Tell(i); } }))
            .ToArray();
        await Within.Of(Task.WhenAll(senders));
        Assert.Equal("done", await probe.Receive());
    }
}
