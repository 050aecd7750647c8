using System.Collections.Concurrent;
using System.Diagnostics;
using Akka.Actor;
using Akka.TestKit.Xunit2;
using Natd.Control.Daemon;
using Natd.Dataplane.Io;
using Natd.Dataplane.Nat;
using Natd.Dataplane.Packets;
using Natd.Dataplane.Sessions;
using Natd.Dataplane.Workers;
using Natd.Tests.Control;
using Natd.Tests.Support;
using Xunit.Abstractions;
using static Natd.Tests.Support.Frames;

namespace Natd.Tests.Workers;

/// <summary>
/// The poller actor over in-memory ports: receive, translate, transmit, answer its mailbox between
/// batches, wake out of poll(2) for a message, and survive its own restart with its shard's state.
/// </summary>
public sealed class PollerActorTests : TestKit
{
    private static readonly TimeSpan Limit = TimeSpan.FromSeconds(10);
    private readonly Wakeup _wake = new();

    public PollerActorTests(ITestOutputHelper output) : base(PollerActor.Config, output: output)
    {
    }

    /// <summary>
    /// A port with a real descriptor in the poller's poll set (an eventfd that <see cref="Inject"/>
    /// signals), which can be told to throw on its next receive.
    /// </summary>
    private sealed class PollablePort(string name, MacAddress mac) : IPacketPort
    {
        private readonly ConcurrentPort _inner = new(name, mac);
        private readonly Wakeup _readable = new();
        private int _failNext;

        public string Name => _inner.Name;
        public MacAddress Mac => _inner.Mac;
        public int PollDescriptor => _readable.Descriptor;
        public PortStats Stats => _inner.Stats;

        public void Inject(byte[] frame)
        {
            _inner.Inject(frame);
            _readable.Signal();
        }

        public void FailNextReceive() => Volatile.Write(ref _failNext, 1);

        public bool TryTake(out byte[] frame) => _inner.TryTake(out frame);

        public int Receive(FrameBatch batch)
        {
            if (Interlocked.Exchange(ref _failNext, 0) == 1)
            {
                throw new IOException("ring broke");
            }
            _readable.Drain();
            return _inner.Receive(batch);
        }

        public bool TrySend(ReadOnlySpan<byte> frame) => _inner.TrySend(frame);

        public void Flush()
        {
        }

        public void Dispose() => _readable.Dispose();
    }

    private static NatEngine LabEngine(NatSettings settings)
    {
        var engine = new NatEngine(settings, MacAddress.Read(GatewayInsideMac), MacAddress.Read(GatewayOutsideMac), new EngineOptions { Seed = 3 });
        engine.Learn(Side.Inside, Ipv4.Parse("10.0.0.2"), MacAddress.Read(InsideHostMac));
        engine.Learn(Side.Outside, Ipv4.Parse("198.51.100.2"), MacAddress.Read(OutsideHostMac));
        return engine;
    }

    [Fact]
    public async Task Poller_translates_both_ways_and_lists_sessions()
    {
        var engine = LabEngine(EngineHarness.LabSettings());
        using var inside = new ConcurrentPort("in", MacAddress.Read(GatewayInsideMac));
        using var outside = new ConcurrentPort("out", MacAddress.Read(GatewayOutsideMac));
        var stats = new PollerStats();
        var poller = Sys.ActorOf(PollerActor.Props(engine, inside, outside, new PollerOptions { BatchSize = 8, IdleWaitMilliseconds = 1, Wakeup = _wake }, stats), "poller");

        for (int i = 0; i < 20; i++)
        {
            inside.Inject(Udp("10.0.0.2", 40000 + i, "198.51.100.2", 53));
        }
        var sent = await Collect(outside.TryTake, 20);
        Assert.All(sent, f => Assert.Equal("198.51.100.1", Src(f)));
        Assert.All(sent, f => Assert.True(ChecksumsValid(f)));

        var sessions = await poller.Ask<List<SessionInfo>>(GetSessions.Instance, Limit);
        Assert.Equal(20, sessions.Count);

        var s0 = sessions.First(s => s.InsidePort == 40005);
        outside.Inject(WithMacs(Udp("198.51.100.2", 53, "198.51.100.1", s0.ExternalPort), OutsideHostMac, GatewayOutsideMac));
        var back = Assert.Single(await Collect(inside.TryTake, 1));
        Assert.Equal(40005, DstPort(back));
        Assert.Equal("10.0.0.2", Dst(back));

        Assert.Equal(0, await poller.Ask<int>(new SweepSlice(100), Limit));
        Assert.Equal(20, await poller.Ask<int>(FlushSessions.Instance, Limit));
        Assert.Equal(21, stats.FramesReceived);
        Assert.True(stats.IdleWaits > 0);
    }

    [Fact]
    public async Task Settings_swap_applies_timeouts_and_refuses_table_size_change()
    {
        var settings = EngineHarness.LabSettings();
        var engine = new NatEngine(settings, MacAddress.Read(GatewayInsideMac), MacAddress.Read(GatewayOutsideMac));
        using var inside = new MemoryPort("in", MacAddress.Read(GatewayInsideMac));
        using var outside = new MemoryPort("out", MacAddress.Read(GatewayOutsideMac));
        var poller = Sys.ActorOf(PollerActor.Props(engine, inside, outside, new PollerOptions { Wakeup = _wake }, new PollerStats()), "poller");
        var ok = await poller.Ask<ApplyResult>(new ApplySettings(settings with { Timeouts = new Timeouts(Udp: 30) }, 7), Limit);
        Assert.True(ok.Applied);
        Assert.Equal(7, ok.Id); // the answer names the reload it answers
        Assert.Equal(30, engine.Settings.Timeouts.Udp);
        var no = await poller.Ask<ApplyResult>(new ApplySettings(settings with { MaxSessions = 7 }), Limit);
        Assert.False(no.Applied);
        Assert.Contains("restart", no.Reason);
        Assert.Equal(30, engine.Settings.Timeouts.Udp);
    }

    /// <summary>
    /// An idle poller sleeps in poll(2) on its ports and its eventfd for up to IdleWait (10 s here);
    /// its mailbox signals the eventfd, so each message is handled at once, not at the timeout. A
    /// PoisonPill is a message too: the stop does not wait for the timeout either.
    /// </summary>
    [Fact]
    public async Task An_idle_poller_with_a_10_s_poll_timeout_handles_each_message_within_2_s()
    {
        var engine = LabEngine(EngineHarness.LabSettings());
        using var inside = new PollablePort("in", MacAddress.Read(GatewayInsideMac));
        using var outside = new PollablePort("out", MacAddress.Read(GatewayOutsideMac));
        var stats = new PollerStats();
        var options = new PollerOptions { IdleWaitMilliseconds = 10_000, Wakeup = _wake };
        var poller = Sys.ActorOf(PollerActor.Props(engine, inside, outside, options, stats), "poller");
        await AwaitAssertAsync(() => Assert.True(stats.IdleWaits > 0), Limit); // asleep in poll(2)

        for (int i = 0; i < 5; i++)
        {
            await Task.Delay(50); // back asleep
            var watch = Stopwatch.StartNew();
            var sessions = await poller.Ask<List<SessionInfo>>(GetSessions.Instance, TimeSpan.FromSeconds(2));
            Assert.Empty(sessions);
            Assert.True(watch.Elapsed < TimeSpan.FromSeconds(2), $"message {i} handled after {watch.Elapsed.TotalMilliseconds:0} ms");
        }

        Watch(poller);
        var stopWatch = Stopwatch.StartNew();
        poller.Tell(PoisonPill.Instance);
        ExpectTerminated(poller, TimeSpan.FromSeconds(2));
        Assert.True(stopWatch.Elapsed < TimeSpan.FromSeconds(2));
    }

    /// <summary>
    /// An exception inside a batch restarts the poller (PollerSupervision: restarted, logged as an error)
    /// over the same engine and ports: the sessions made before survive and keep translating.
    /// </summary>
    [Fact]
    public async Task A_poller_that_throws_restarts_with_its_sessions_and_keeps_forwarding()
    {
        var engine = LabEngine(EngineHarness.LabSettings());
        using var inside = new PollablePort("in", MacAddress.Read(GatewayInsideMac));
        using var outside = new PollablePort("out", MacAddress.Read(GatewayOutsideMac));
        var poller = Sys.ActorOf(PollerActor.Props(engine, inside, outside, new PollerOptions { IdleWaitMilliseconds = 1, Wakeup = _wake }, new PollerStats()), "poller");
        for (int i = 0; i < 3; i++)
        {
            inside.Inject(Udp("10.0.0.2", 41000 + i, "198.51.100.2", 53));
        }
        Assert.Equal(3, (await Collect(outside.TryTake, 3)).Count);
        var before = await poller.Ask<List<SessionInfo>>(GetSessions.Instance, Limit);
        Assert.Equal(3, before.Count);

        await EventFilter.Exception<IOException>("ring broke").ExpectOneAsync(() =>
        {
            inside.FailNextReceive();
            inside.Inject(Udp("10.0.0.2", 41003, "198.51.100.2", 53)); // wakes the poll; this receive throws
            return Task.CompletedTask;
        });

        var after = await poller.Ask<List<SessionInfo>>(GetSessions.Instance, Limit);
        Assert.Equal(before.Select(s => s.ExternalPort).Order(), after.Where(s => s.InsidePort < 41003).Select(s => s.ExternalPort).Order());
        var s0 = before.First(s => s.InsidePort == 41001);
        outside.Inject(WithMacs(Udp("198.51.100.2", 53, "198.51.100.1", s0.ExternalPort), OutsideHostMac, GatewayOutsideMac));
        var back = Assert.Single(await Collect(inside.TryTake, 1));
        Assert.Equal(41001, DstPort(back));
    }

    /// <summary>
    /// A fault a restart does not clear (the port throws on every receive): the poller restarts
    /// <see cref="PollerSupervision.MaxRestarts"/> times, then stops instead of looping, each
    /// failure logged.
    /// </summary>
    [Fact]
    public async Task A_poller_that_fails_on_every_batch_stops_after_the_bounded_restarts()
    {
        var engine = LabEngine(EngineHarness.LabSettings());
        var inside = new FailingPort("in", MacAddress.Read(GatewayInsideMac));
        var outside = new FailingPort("out", MacAddress.Read(GatewayOutsideMac));
        IActorRef poller = ActorRefs.Nobody;
        await EventFilter.Exception<IOException>("ring broke for good").ExpectAsync(PollerSupervision.MaxRestarts + 1, () =>
        {
            poller = Sys.ActorOf(PollerActor.Props(engine, inside, outside, new PollerOptions { IdleWaitMilliseconds = 1, Wakeup = _wake }, new PollerStats()), "failing");
            Watch(poller);
            return Task.CompletedTask;
        });
        ExpectTerminated(poller, Limit);
        Assert.Equal(PollerSupervision.MaxRestarts + 1, inside.Receives);
    }

    /// <summary>A port whose every receive throws.</summary>
    private sealed class FailingPort(string name, MacAddress mac) : IPacketPort
    {
        private int _receives;

        public int Receives => Volatile.Read(ref _receives);
        public string Name { get; } = name;
        public MacAddress Mac { get; } = mac;
        public int PollDescriptor => -1;
        public PortStats Stats => default;

        public int Receive(FrameBatch batch)
        {
            Interlocked.Increment(ref _receives);
            throw new IOException("ring broke for good");
        }

        public bool TrySend(ReadOnlySpan<byte> f) => true;

        public void Flush()
        {
        }

        public void Dispose()
        {
        }
    }

    /// <summary>A port that has a frame on every receive (a link that never goes quiet) and records the threads that read it.</summary>
    private sealed class BusyPort(string name, MacAddress mac, byte[] frame) : IPacketPort
    {
        public readonly ConcurrentBag<int> Threads = [];

        public string Name { get; } = name;
        public MacAddress Mac { get; } = mac;
        public int PollDescriptor => -1;
        public PortStats Stats => default;

        public int Receive(FrameBatch batch)
        {
            Threads.Add(Thread.CurrentThread.IsThreadPoolThread ? -1 : Environment.CurrentManagedThreadId);
            batch.TryAdd(frame);
            return 1;
        }

        public bool TrySend(ReadOnlySpan<byte> f) => true;

        public void Flush()
        {
        }

        public void Dispose()
        {
        }
    }

    /// <summary>
    /// A poller that always has frames never idles, yet answers its mailbox between batches; every
    /// batch runs on the one thread its PinnedDispatcher gave it, where PreStart ran its thread hook.
    /// </summary>
    [Fact]
    public async Task A_poller_that_is_never_idle_answers_between_batches_on_its_own_pinned_thread()
    {
        var engine = LabEngine(EngineHarness.LabSettings());
        var inside = new BusyPort("in", MacAddress.Read(GatewayInsideMac), Udp("10.0.0.2", 42000, "198.51.100.2", 53));
        var outside = new BusyPort("out", MacAddress.Read(GatewayOutsideMac), WithMacs(Udp("198.51.100.2", 53, "198.51.100.1", 9), OutsideHostMac, GatewayOutsideMac));
        int hookThread = -1;
        var stats = new PollerStats();
        var options = new PollerOptions { Wakeup = _wake, OnThreadStart = () => Volatile.Write(ref hookThread, Environment.CurrentManagedThreadId) };
        var poller = Sys.ActorOf(PollerActor.Props(engine, inside, outside, options, stats), "poller");
        await AwaitAssertAsync(() => Assert.True(stats.Batches > 0), Limit); // the first batch opened the session

        for (int i = 0; i < 5; i++)
        {
            long batches = stats.Batches;
            var sessions = await poller.Ask<List<SessionInfo>>(GetSessions.Instance, Limit);
            Assert.Single(sessions);
            await AwaitAssertAsync(() => Assert.True(stats.Batches > batches), Limit); // and batches go on after it
        }
        Assert.Equal(0, stats.IdleWaits);
        int thread = Volatile.Read(ref hookThread); // -1 in Threads: a batch ran on a thread-pool thread
        Assert.NotEqual(-1, thread);
        Assert.All(inside.Threads, t => Assert.Equal(thread, t));
        Assert.All(outside.Threads, t => Assert.Equal(thread, t));
    }

    [Fact]
    public async Task Each_batch_is_one_sample_of_the_poller_histograms_in_metrics()
    {
        var engine = LabEngine(EngineHarness.LabSettings());
        using var inside = new ConcurrentPort("in", MacAddress.Read(GatewayInsideMac));
        using var outside = new ConcurrentPort("out", MacAddress.Read(GatewayOutsideMac));
        var stats = new PollerStats(engine.Counters.Table);
        Sys.ActorOf(PollerActor.Props(engine, inside, outside, new PollerOptions { BatchSize = 8, IdleWaitMilliseconds = 1, Wakeup = _wake }, stats), "poller");

        // One frame at a time, the next only once the last is out: every batch with frames has exactly one.
        const int batches = 12;
        var wall = Stopwatch.StartNew();
        for (int i = 0; i < batches; i++)
        {
            inside.Inject(Udp("10.0.0.2", 41000 + i, "198.51.100.2", 53));
            Assert.Single(await Collect(outside.TryTake, 1));
        }
        var handle = new PollerHandle(null!, engine.ReadView, stats);
        var deadline = DateTime.UtcNow + Limit;
        while (DataplaneQuery.Snapshot([handle]).BatchLatency.Count < batches && DateTime.UtcNow < deadline)
        {
            await Task.Delay(5); // the last batch records after its flush, a moment after its frame left
        }

        StatsSnapshot snap = DataplaneQuery.Snapshot([handle]);
        double wallSeconds = wall.Elapsed.TotalSeconds;
        Assert.Equal(batches, stats.Batches);
        string text = MetricsText.Of(snap);
        foreach (string name in (string[])["natd_poller_batch_received_frames", "natd_poller_batch_transmitted_frames"])
        {
            Assert.Contains($"\n{name}_bucket{{le=\"0\"}} 0\n", text, StringComparison.Ordinal);
            Assert.Contains($"\n{name}_bucket{{le=\"1\"}} {batches}\n", text, StringComparison.Ordinal);
            Assert.Contains($"\n{name}_bucket{{le=\"+Inf\"}} {batches}\n", text, StringComparison.Ordinal);
            Assert.Contains($"\n{name}_sum {batches}\n", text, StringComparison.Ordinal);
            Assert.Contains($"\n{name}_count {batches}\n", text, StringComparison.Ordinal);
        }
        Assert.Contains($"\nnatd_poller_batch_latency_seconds_count {batches}\n", text, StringComparison.Ordinal);
        Assert.Contains($"\nnatd_poller_batch_latency_seconds_bucket{{le=\"+Inf\"}} {batches}\n", text, StringComparison.Ordinal);
        // Every batch took some time, all of them inside the test's own span.
        var sum = System.Text.RegularExpressions.Regex.Match(text, @"\nnatd_poller_batch_latency_seconds_sum (\S+)\n");
        Assert.True(sum.Success);
        double seconds = double.Parse(sum.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
        Assert.InRange(seconds, double.Epsilon, wallSeconds);
    }

    private delegate bool TryTake(out byte[] frame);

    private static async Task<List<byte[]>> Collect(TryTake take, int count)
    {
        var got = new List<byte[]>();
        var deadline = DateTime.UtcNow + Limit;
        while (got.Count < count && DateTime.UtcNow < deadline)
        {
            while (take(out var f))
            {
                got.Add(f);
            }
            await Task.Delay(5);
        }
        Assert.Equal(count, got.Count);
        return got;
    }

    protected override void Dispose(bool disposing)
    {
        base.Dispose(disposing); // the actor system first: its pollers poll the wakeup
        if (disposing)
        {
            _wake.Dispose();
        }
    }
}
