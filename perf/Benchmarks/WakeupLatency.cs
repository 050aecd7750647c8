using System.Diagnostics;
using System.Globalization;
using Akka.Actor;
using Natd.Benchmarks.Support;
using Natd.Dataplane.Io;
using Natd.Dataplane.Packets;
using Natd.Dataplane.Workers;

namespace Natd.Benchmarks;

/// <summary>
/// Idle-poller wakeup latency (<c>--wakeup</c>): one real <see cref="PollerActor"/> on its pinned
/// thread over two ports that never have frames but do have descriptors, so it sleeps in poll(2)
/// with a 10 s idle timeout, as an idle natd does. Each message (a session listing) is told while
/// the poller sleeps; the time from the tell to the poller's reply, taken in the reply's receiver
/// on the poller's own thread (no task continuation in the way), is the wakeup-to-handled latency
/// the poller mailbox's eventfd signal gives. Target: p99 &lt;= 1 ms.
/// </summary>
public static class WakeupLatency
{
    /// <summary>The issue's target for the 99th percentile, milliseconds.</summary>
    public const double TargetP99Ms = 1.0;

    /// <summary>Runs the mode. Arguments: <c>[--messages N]</c> (default 2000).</summary>
    /// <returns>0 when the target is met, 1 when missed, 2 on an error.</returns>
    public static int Run(IReadOnlyList<string> args)
    {
        int messages = 2000;
        if (!ModeArguments.TryCount(args, "--wakeup", "--messages", ref messages))
        {
            return 2;
        }
        var system = ActorSystem.Create("wakeup", Support.PollerSystemConfig.Quiet);
        using var wake = new Wakeup();
        using var inside = new IdlePort("natin", BenchLab.InsideMac);
        using var outside = new IdlePort("natout", BenchLab.OutsideMac);
        var stats = new PollerStats();
        try
        {
            var options = new PollerOptions { IdleWaitMilliseconds = 10_000, Wakeup = wake };
            var poller = system.ActorOf(PollerActor.Props(BenchLab.Engine(1000), inside, outside, options, stats), "poller-0");
            var replies = new ReplyClock(((ExtendedActorSystem)system).Provider);
            var latencies = new double[messages];
            var rng = new Random(7);
            WaitFor(() => Volatile.Read(ref stats.IdleWaits) > 0);
            for (int i = 0; i < messages; i++)
            {
                Thread.Sleep(1 + rng.Next(2));
                // Asleep: the count moves just before each poll(2), and the reply's batch polls again.
                long asleep = Volatile.Read(ref stats.IdleWaits);
                long sent = Stopwatch.GetTimestamp();
                poller.Tell(GetSessions.Instance, replies);
                long handled = replies.Await();
                latencies[i] = Stopwatch.GetElapsedTime(sent, handled).TotalMilliseconds;
                WaitFor(() => Volatile.Read(ref stats.IdleWaits) > asleep); // back in poll(2)
            }
            Array.Sort(latencies);
            double p50 = latencies[messages / 2], p99 = latencies[Math.Min(messages - 1, (int)(messages * 0.99))], max = latencies[^1];
            Console.WriteLine($"idle poller wakeup: {messages} messages to a poller asleep in poll(2) (idle timeout 10 s), tell to handled");
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"p50 {p50 * 1000:0} us   p90 {latencies[(int)(messages * 0.9)] * 1000:0} us   p99 {p99 * 1000:0} us   max {max * 1000:0} us   (poller idle waits {stats.IdleWaits})"));
            bool met = p99 <= TargetP99Ms;
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"target p99 <= {TargetP99Ms} ms: {(met ? "MET" : "MISSED")}"));
            return met ? 0 : 1;
        }
        finally
        {
            // A PoisonPill is a user message: the mailbox wakes the poller for it, no 10 s wait.
            system.ActorSelection("/user/poller-0").Tell(PoisonPill.Instance);
            system.Terminate().Wait(TimeSpan.FromSeconds(30));
        }
    }

    private static void WaitFor(Func<bool> condition)
    {
        var deadline = Stopwatch.StartNew();
        while (!condition() && deadline.Elapsed < TimeSpan.FromSeconds(10))
        {
            Thread.Sleep(1);
        }
    }

    /// <summary>A reply receiver that stamps the time on the sender's (the poller's) thread.</summary>
    private sealed class ReplyClock(IActorRefProvider provider) : MinimalActorRef
    {
        private readonly SemaphoreSlim _replied = new(0);
        private long _at;

        public override ActorPath Path { get; } = new RootActorPath(provider.DefaultAddress) / "temp" / "wakeup-clock";

        public override IActorRefProvider Provider { get; } = provider;

        protected override void TellInternal(object message, IActorRef sender)
        {
            Volatile.Write(ref _at, Stopwatch.GetTimestamp());
            _replied.Release();
        }

        public long Await()
        {
            if (!_replied.Wait(TimeSpan.FromSeconds(30)))
            {
                throw new TimeoutException("the poller did not answer within 30 s");
            }
            return Volatile.Read(ref _at);
        }
    }

    /// <summary>A port with a descriptor (an eventfd nobody signals) and never a frame: the idle rings of an idle natd.</summary>
    private sealed class IdlePort(string name, MacAddress mac) : IPacketPort
    {
        private readonly Wakeup _fd = new();

        public string Name { get; } = name;
        public MacAddress Mac { get; } = mac;
        public int PollDescriptor => _fd.Descriptor;
        public PortStats Stats => default;

        public int Receive(FrameBatch batch) => 0;

        public bool TrySend(ReadOnlySpan<byte> frame) => true;

        public void Flush()
        {
        }

        public void Dispose() => _fd.Dispose();
    }
}
