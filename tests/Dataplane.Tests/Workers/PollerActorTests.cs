using Natd.Control.Daemon;
using Natd.Dataplane.Actors;
using Natd.Dataplane.Io;
using Natd.Dataplane.Nat;
using Natd.Dataplane.Packets;
using Natd.Dataplane.Workers;
using Natd.Tests.Control;
using Natd.Tests.Support;
using static Natd.Tests.Support.Frames;
using Natd.Dataplane.Sessions;

namespace Natd.Tests.Workers;

/// <summary>The poller loop over in-memory ports: receive, translate, transmit, and answer its mailbox between batches.</summary>
public class PollerActorTests
{
    private static readonly TimeSpan Limit = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task Poller_translates_both_ways_and_lists_sessions()
    {
        var settings = EngineHarness.LabSettings();
        var engine = new NatEngine(settings, MacAddress.Read(GatewayInsideMac), MacAddress.Read(GatewayOutsideMac), new EngineOptions { Seed = 3 });
        engine.Learn(Side.Inside, Ipv4.Parse("10.0.0.2"), MacAddress.Read(InsideHostMac));
        engine.Learn(Side.Outside, Ipv4.Parse("198.51.100.2"), MacAddress.Read(OutsideHostMac));
        using var inside = new ConcurrentPort("in", MacAddress.Read(GatewayInsideMac));
        using var outside = new ConcurrentPort("out", MacAddress.Read(GatewayOutsideMac));
        var stats = new PollerStats();
        await using var system = ActorSystem.Create("t");
        var poller = system.ActorOf(Props.Create(() => new PollerActor(engine, inside, outside, new PollerOptions { BatchSize = 8, IdleWaitMilliseconds = 1 }, stats)), "poller");

        for (int i = 0; i < 20; i++)
        {
            inside.Inject(Udp("10.0.0.2", 40000 + i, "198.51.100.2", 53));
        }
        var sent = await Collect(outside, 20);
        Assert.All(sent, f => Assert.Equal("198.51.100.1", Src(f)));
        Assert.All(sent, f => Assert.True(ChecksumsValid(f)));

        var sessions = await poller.Ask<List<SessionInfo>>(GetSessions.Instance, Limit);
        Assert.Equal(20, sessions.Count);

        var s0 = sessions.First(s => s.InsidePort == 40005);
        outside.Inject(WithMacs(Udp("198.51.100.2", 53, "198.51.100.1", s0.ExternalPort), OutsideHostMac, GatewayOutsideMac));
        var back = Assert.Single(await Collect(inside, 1));
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
        await using var system = ActorSystem.Create("t");
        var poller = system.ActorOf(Props.Create(() => new PollerActor(engine, inside, outside, new PollerOptions(), new PollerStats())), "poller");
        var ok = await poller.Ask<ApplyResult>(new ApplySettings(settings with { Timeouts = new Timeouts(Udp: 30) }), Limit);
        Assert.True(ok.Applied);
        Assert.Equal(30, engine.Settings.Timeouts.Udp);
        var no = await poller.Ask<ApplyResult>(new ApplySettings(settings with { MaxSessions = 7 }), Limit);
        Assert.False(no.Applied);
        Assert.Contains("restart", no.Reason);
        Assert.Equal(30, engine.Settings.Timeouts.Udp);
    }

    [Fact]
    public async Task Each_batch_is_one_sample_of_the_poller_histograms_in_metrics()
    {
        var settings = EngineHarness.LabSettings();
        var engine = new NatEngine(settings, MacAddress.Read(GatewayInsideMac), MacAddress.Read(GatewayOutsideMac), new EngineOptions { Seed = 3 });
        engine.Learn(Side.Inside, Ipv4.Parse("10.0.0.2"), MacAddress.Read(InsideHostMac));
        engine.Learn(Side.Outside, Ipv4.Parse("198.51.100.2"), MacAddress.Read(OutsideHostMac));
        using var inside = new ConcurrentPort("in", MacAddress.Read(GatewayInsideMac));
        using var outside = new ConcurrentPort("out", MacAddress.Read(GatewayOutsideMac));
        var stats = new PollerStats(engine.Counters.Table);
        await using var system = ActorSystem.Create("t");
        system.ActorOf(Props.Create(() => new PollerActor(engine, inside, outside, new PollerOptions { BatchSize = 8, IdleWaitMilliseconds = 1 }, stats)), "poller");

        // One frame at a time, the next only once the last is out: every batch with frames has exactly one.
        const int batches = 12;
        var wall = System.Diagnostics.Stopwatch.StartNew();
        for (int i = 0; i < batches; i++)
        {
            inside.Inject(Udp("10.0.0.2", 41000 + i, "198.51.100.2", 53));
            Assert.Single(await Collect(outside, 1));
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

    private static async Task<List<byte[]>> Collect(ConcurrentPort port, int count)
    {
        var got = new List<byte[]>();
        var deadline = DateTime.UtcNow + Limit;
        while (got.Count < count && DateTime.UtcNow < deadline)
        {
            while (port.TryTake(out var f))
            {
                got.Add(f);
            }
            await Task.Delay(5);
        }
        Assert.Equal(count, got.Count);
        return got;
    }
}
