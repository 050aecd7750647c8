using Natd.Dataplane.Actors;

namespace Natd.Tests.Actors;

public class SchedulerTests
{
    private static ActorSystem ManualSystem(string name, ManualTimeProvider time) =>
        ActorSystem.Create(name, new ActorSystemOptions { TimeProvider = time });

    [Fact]
    public async Task TellOnce_DeliversAtDeadlineOnly()
    {
        var time = new ManualTimeProvider();
        using var system = ManualSystem("once", time);
        var probe = new Probe();
        var sender = new Probe("sender");
        ICancelable handle = system.Scheduler.ScheduleTellOnce(TimeSpan.FromSeconds(5), probe, "tick", sender);

        time.Advance(TimeSpan.FromSeconds(4.9));
        Assert.Equal(0, probe.Pending);
        time.Advance(TimeSpan.FromSeconds(0.1));
        Assert.Equal(1, probe.Pending);
        await probe.Expect("tick");
        time.Advance(TimeSpan.FromMinutes(1));
        Assert.Equal(0, probe.Pending);
        Assert.False(handle.IsCancellationRequested);
    }

    [Fact]
    public void TellOnce_Cancelled_NeverDelivers()
    {
        var time = new ManualTimeProvider();
        using var system = ManualSystem("oncecancel", time);
        var probe = new Probe();
        ICancelable handle = system.Scheduler.ScheduleTellOnce(TimeSpan.FromSeconds(5), probe, "tick");
        handle.Cancel();
        Assert.True(handle.IsCancellationRequested);
        time.Advance(TimeSpan.FromSeconds(10));
        Assert.Equal(0, probe.Pending);
    }

    [Fact]
    public async Task TellOnce_OrdersByDeadline_NotBySchedulingOrder()
    {
        var time = new ManualTimeProvider();
        using var system = ManualSystem("ordering", time);
        var probe = new Probe();
        system.Scheduler.ScheduleTellOnce(TimeSpan.FromSeconds(3), probe, "third");
        system.Scheduler.ScheduleTellOnce(TimeSpan.FromSeconds(1), probe, "first");
        system.Scheduler.ScheduleTellOnce(TimeSpan.FromSeconds(2), probe, "second");
        time.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(1, probe.Pending);
        time.Advance(TimeSpan.FromSeconds(5));
        await probe.Expect("first");
        await probe.Expect("second");
        await probe.Expect("third");
    }

    [Fact]
    public async Task TellRepeatedly_TicksEveryInterval_UntilCancelled()
    {
        var time = new ManualTimeProvider();
        using var system = ManualSystem("repeat", time);
        var probe = new Probe();
        ICancelable handle = system.Scheduler.ScheduleTellRepeatedly(
            TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(2), probe, "tick");

        time.Advance(TimeSpan.FromSeconds(0.5));
        Assert.Equal(0, probe.Pending);
        time.Advance(TimeSpan.FromSeconds(0.5)); // t = 1
        Assert.Equal(1, probe.Pending);
        time.Advance(TimeSpan.FromSeconds(1.5)); // t = 2.5
        Assert.Equal(1, probe.Pending);
        time.Advance(TimeSpan.FromSeconds(0.5)); // t = 3
        Assert.Equal(2, probe.Pending);
        time.Advance(TimeSpan.FromSeconds(2)); // t = 5
        Assert.Equal(3, probe.Pending);

        handle.Cancel();
        time.Advance(TimeSpan.FromSeconds(20));
        Assert.Equal(3, probe.Pending);
        for (int i = 0; i < 3; i++)
        {
            await probe.Expect("tick");
        }
    }

    [Fact]
    public void TellRepeatedly_AfterStall_DoesNotBurst()
    {
        var time = new ManualTimeProvider();
        using var system = ManualSystem("stall", time);
        var probe = new Probe();
        system.Scheduler.ScheduleTellRepeatedly(TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(1), probe, "tick");
        time.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(1, probe.Pending);

        // The timer thread misses ten ticks: one late tick, then on schedule again from there.
        time.Jump(TimeSpan.FromSeconds(10.5));
        time.Advance(TimeSpan.Zero);
        Assert.Equal(2, probe.Pending);
        time.Advance(TimeSpan.FromSeconds(0.9));
        Assert.Equal(2, probe.Pending);
        time.Advance(TimeSpan.FromSeconds(0.1));
        Assert.Equal(3, probe.Pending);
    }

    [Fact]
    public void TellRepeatedly_RejectsNonPositiveInterval()
    {
        using var system = ActorSystem.Create("badinterval");
        Assert.Throws<ArgumentOutOfRangeException>(() =>
            system.Scheduler.ScheduleTellRepeatedly(TimeSpan.Zero, TimeSpan.Zero, new Probe(), "x"));
    }

    [Fact]
    public async Task TellOnce_ZeroDelay_TellsAtOnce()
    {
        using var system = ActorSystem.Create("zero");
        var probe = new Probe();
        system.Scheduler.ScheduleTellOnce(TimeSpan.Zero, probe, "now");
        Assert.Equal(1, probe.Pending);
        await probe.Expect("now");
    }

    private sealed class TickCounter(TaskCompletionSource<int> reached, int target) : ActorBase
    {
        private int _ticks;

        protected override void OnReceive(object message)
        {
            if (message is "tick" && ++_ticks == target)
            {
                reached.TrySetResult(_ticks);
            }
        }
    }

    [Fact]
    public async Task RealClock_RepeatedTicksReachAnActor_AndCancelStopsThem()
    {
        using var system = ActorSystem.Create("realclock");
        var reached = new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously);
        IActorRef counter = system.ActorOf(Props.Create(() => new TickCounter(reached, 3)), "ticks");
        ICancelable handle = system.Scheduler.ScheduleTellRepeatedly(
            TimeSpan.FromMilliseconds(10), TimeSpan.FromMilliseconds(10), counter, "tick");
        Assert.Equal(3, await Within.Of(reached.Task));
        handle.Cancel();

        var probe = new Probe();
        system.Scheduler.ScheduleTellOnce(TimeSpan.FromMilliseconds(20), probe, "once");
        await probe.Expect("once");
    }

    [Fact]
    public async Task ScheduledMessage_CarriesSender()
    {
        var time = new ManualTimeProvider();
        using var system = ManualSystem("sender", time);
        IActorRef echo = system.ActorOf(Props.Create(() => new EchoActor()), "echo");
        var replyTo = new Probe();
        system.Scheduler.ScheduleTellOnce(TimeSpan.FromSeconds(1), echo, "hi", replyTo);
        time.Advance(TimeSpan.FromSeconds(1));
        await replyTo.Expect("hi");
    }
}
