using Natd.Control.Api;
using Natd.Control.Daemon;
using Natd.Dataplane.Rings;
using Natd.Dataplane.Io;
using Natd.Dataplane.Nat;
using Natd.Dataplane.Packets;
using Natd.Dataplane.Sessions;
using Natd.Dataplane.Workers;
using Natd.Tests.Control;
using Natd.Tests.Support;
using static Natd.Tests.Support.CgnatKit;
using static Natd.Tests.Support.Frames;

namespace Natd.Tests.Nat;

/// <summary>
/// The operator views of carrier-grade NAT on a real engine: the subscriber and block listings
/// (natctl subscribers, natctl blocks), the stats and metrics read off the shard
/// (natd_port_blocks_in_use, natd_subscribers, natd_subscriber_ports) and the pool utilisation
/// threshold event (nat.pool-threshold, with its hysteresis).
/// </summary>
public class CgnatViewsTests
{
    private const string Out = EngineHarness.OutsideHost;

    /// <summary>Port blocks of 16 on one address; <paramref name="blocks"/> blocks in all; released the moment they empty.</summary>
    private static EngineHarness Pba(int blocks, int threshold, out SpscRing<NatEvent> events, int perSubscriber = 2, SubscriberLimits? limits = null)
    {
        var cgn = new CgnatSettings
        {
            Allocation = PortAllocation.PortBlock, PortBlock = new PortBlockSettings(16, perSubscriber, 0), PortReuseDelaySeconds = 0,
            PoolThresholdPercent = threshold, Limits = limits ?? new SubscriberLimits(),
        };
        var h = new EngineHarness(s => s with { Cgnat = cgn, PortMin = 1024, PortMax = (ushort)(1024 + 16 * blocks - 1) });
        events = new SpscRing<NatEvent>(1024);
        h.Engine.Table.Events = events;
        return h;
    }

    private static List<NatEvent> Thresholds(SpscRing<NatEvent> ring)
    {
        var list = new List<NatEvent>();
        while (ring.TryDequeue(out var e))
        {
            if (e.Type == NatEventType.PoolThreshold)
            {
                list.Add(e);
            }
        }
        return list;
    }

    private static void Open(EngineHarness h, int host) => h.Out(Udp(Host(host), 40000, Out, 53));

    private static void Close(EngineHarness h, int host)
        => Assert.Equal(1, h.Engine.DeleteSessions(IpProtocol.Udp, Ipv4.Parse(Host(host)), 40000, 0, 0));

    [Fact]
    public void An_address_past_the_threshold_logs_once_and_again_only_after_falling_5_points_below()
    {
        // 20 blocks of 16: each subscriber's first flow takes one, 5% of the address.
        var h = Pba(blocks: 20, threshold: 50, out var events);
        for (int i = 2; i < 11; i++)
        {
            Open(h, i); // 9 blocks: 45%
        }
        h.Engine.Sweep(h.Now, 128);
        Assert.Empty(Thresholds(events));
        Assert.False(h.Engine.ReadView.AboveThreshold(0));

        Open(h, 11); // 50%
        h.Engine.Sweep(h.Now, 128);
        var e = Assert.Single(Thresholds(events));
        Assert.Equal(Ipv4.Parse(EngineHarness.External), e.ExternalAddress);
        Assert.Equal(50, e.Detail);
        Assert.True(h.Engine.ReadView.AboveThreshold(0));

        Open(h, 12); // 55%: still past, no second record
        h.Engine.Sweep(h.Now, 128);
        Assert.Empty(Thresholds(events));

        // Down to 45% (threshold minus 5) and back: hovering at the threshold is not re-logged.
        Close(h, 12);
        Close(h, 11);
        h.Engine.Sweep(h.Now, 128);
        Assert.True(h.Engine.ReadView.AboveThreshold(0));
        Open(h, 11);
        h.Engine.Sweep(h.Now, 128);
        Assert.Empty(Thresholds(events));

        // Below 45%: re-armed; the next pass logs again.
        Close(h, 11);
        Close(h, 10);
        h.Engine.Sweep(h.Now, 128);
        Assert.False(h.Engine.ReadView.AboveThreshold(0));
        Open(h, 10);
        Open(h, 11);
        h.Engine.Sweep(h.Now, 128);
        Assert.Equal(50, Assert.Single(Thresholds(events)).Detail);
    }

    [Fact]
    public void Dynamic_allocation_measures_ports_in_use_and_zero_turns_the_event_off()
    {
        // 20 ports, dynamic: the event comes with the flow that takes the busiest class to 50%.
        var on = new EngineHarness(s => s with { PortMin = 1024, PortMax = 1043, Cgnat = new CgnatSettings { PoolThresholdPercent = 50 } });
        var onEvents = on.Engine.Table.Events = new SpscRing<NatEvent>(1024);
        var off = new EngineHarness(s => s with { PortMin = 1024, PortMax = 1043, Cgnat = new CgnatSettings { PoolThresholdPercent = 0 } });
        var offEvents = off.Engine.Table.Events = new SpscRing<NatEvent>(1024);
        var ports = on.Engine.Table.Ports;
        Assert.Equal(20, ports.RangeSize);
        for (int p = 0; p < 12; p++)
        {
            foreach (var h in (EngineHarness[])[on, off])
            {
                h.Out(Udp(Host(2), 40000 + p, Out, 53));
                h.Engine.Sweep(h.Now, 128);
            }
            int percent = 100 * ports.InUse(0, SessionTable.ProtocolClass(IpProtocol.Udp)) / 20;
            var logged = Thresholds(onEvents);
            if (percent == 50)
            {
                Assert.Equal(50, Assert.Single(logged).Detail); // the crossing
            }
            else
            {
                Assert.Empty(logged); // below it, or past it already
            }
        }
        Assert.True(on.Engine.ReadView.AboveThreshold(0));
        Assert.Empty(Thresholds(offEvents));
        Assert.False(off.Engine.ReadView.AboveThreshold(0));
    }

    [Fact]
    public void Subscribers_and_blocks_list_what_each_subscriber_holds_with_limits_and_hits()
    {
        var h = Pba(blocks: 8, threshold: 0, out _, perSubscriber: 1, limits: new SubscriberLimits(Sessions: 3));
        for (int p = 0; p < 3; p++)
        {
            h.Out(Udp(Host(2), 40000 + p, Out, 53));
        }
        h.Run(Udp(Host(2), 40003, Out, 53), Side.Inside, out _); // refused (answered with ICMP administratively prohibited)
        Assert.Equal(1, h.Drops(DropReason.SubscriberSessionLimit));
        Open(h, 3);
        h.Now += 5_000;

        var subscribers = new List<SubscriberInfo>();
        h.Engine.CollectSubscribers(subscribers);
        var rows = subscribers.Select(WireViews.Subscriber).OrderBy(r => r.Subscriber, StringComparer.Ordinal).ToList();
        Assert.Equal(2, rows.Count);
        var two = rows[0];
        Assert.Equal(Host(2), two.Subscriber);
        Assert.Equal(EngineHarness.External, two.External);
        Assert.Equal((3, 3, 3, 16), (two.Ports, two.Sessions, two.SessionLimit, two.PortLimit)); // one block of 16: its port ceiling
        Assert.Equal(1, two.LimitHits["sessions"]);
        Assert.Equal(0, two.LimitHits["ports"]);
        var block = Assert.Single(two.Blocks);
        Assert.Matches(@"^\d+-\d+$", block); // one shard: contiguous, no step

        var blocks = new List<BlockInfo>();
        h.Engine.CollectBlocks(blocks, h.Now);
        Assert.Equal(2, blocks.Count);
        var b2 = blocks.Single(b => b.Subscriber == Ipv4.Parse(Host(2)));
        Assert.Equal(block, $"{b2.Low}-{b2.High}");
        Assert.Equal((3, 1, 5.0), (b2.PortsInUse, b2.Step, b2.AgeSeconds));
        var now = DateTimeOffset.Parse("2026-01-01T12:00:00Z", System.Globalization.CultureInfo.InvariantCulture);
        Assert.Equal("2026-01-01T11:59:55Z", WireViews.Block(b2, now).AllocatedAt);
    }

    [Fact]
    public void Stats_and_metrics_count_subscribers_blocks_per_address_and_ports_per_subscriber()
    {
        var h = Pba(blocks: 8, threshold: 0, out _, perSubscriber: 4);
        for (int p = 0; p < 20; p++)
        {
            h.Out(Udp(Host(2), 40000 + p, Out, 53)); // 20 ports: two blocks, bucket le=64
        }
        Open(h, 3); // 1 port: bucket le=16
        h.Engine.DeleteSessions(IpProtocol.Udp, Ipv4.Parse(Host(2)), 40000, 0, 0); // 19 left

        var snap = DataplaneQuery.Snapshot([new PollerHandle(null!, h.Engine.ReadView, new PollerStats())]);
        Assert.Equal(2, snap.Subscribers);
        var usage = Assert.Single(snap.PortBlocks);
        Assert.Equal((EngineHarness.External, 3L, 8L), (usage.ExternalAddress, usage.InUse, usage.Capacity));
        Assert.Equal([0L, 1, 1, 0, 0, 0, 0, 0], snap.SubscriberPorts);
        Assert.Equal(20, snap.SubscriberPortsSum);

        string metrics = MetricsText.Of(snap);
        Assert.Contains("\nnatd_subscribers 2\n", metrics, StringComparison.Ordinal);
        Assert.Contains("\nnatd_port_blocks_in_use{external=\"198.51.100.1\"} 3\n", metrics, StringComparison.Ordinal);
        Assert.Contains("\nnatd_subscriber_ports_bucket{le=\"16\"} 1\n", metrics, StringComparison.Ordinal);
        Assert.Contains("\nnatd_subscriber_ports_bucket{le=\"64\"} 2\n", metrics, StringComparison.Ordinal);
        Assert.Contains("\nnatd_subscriber_ports_bucket{le=\"+Inf\"} 2\n", metrics, StringComparison.Ordinal);
        Assert.Contains("\nnatd_subscriber_ports_sum 20\n", metrics, StringComparison.Ordinal);

        string table = Natd.Contracts.StatsTable.Render(WireViews.Stats(snap));
        Assert.Matches(@"(?m)^subscribers\s+2$", table);
        Assert.Matches(@"(?m)^port blocks 198\.51\.100\.1\s+3/8 \(37\.5%\)$", table);
    }

    [Fact]
    public void A_subscribers_ports_bucket_is_the_first_bound_it_does_not_exceed()
    {
        // BucketOf computes the bucket; the bounds (PortBuckets) are what operators read. Every
        // count a subscriber can hold lands where a walk of the bounds puts it.
        for (int ports = 0; ports <= 65536; ports++)
        {
            int walk = SubscriberPorts.PortBuckets.Length;
            for (int i = 0; i < SubscriberPorts.PortBuckets.Length; i++)
            {
                if (ports <= SubscriberPorts.PortBuckets[i])
                {
                    walk = i;
                    break;
                }
            }
            Assert.True(walk == SubscriberPorts.BucketOf(ports), $"{ports} ports: bucket {SubscriberPorts.BucketOf(ports)}, bounds say {walk}");
        }
    }

    [Fact]
    public void The_ports_histogram_follows_subscribers_as_they_grow_shrink_and_go()
    {
        var h = Pba(blocks: 8, threshold: 0, out _, perSubscriber: 4);
        var buckets = new long[SubscriberPorts.PortBuckets.Length + 1];
        for (int p = 0; p < 17; p++)
        {
            h.Out(Udp(Host(2), 40000 + p, Out, 53));
        }
        Assert.Equal(17, h.Engine.ReadView.AddSubscriberPorts(buckets));
        Assert.Equal([0L, 0, 1, 0, 0, 0, 0, 0], buckets); // 17 ports: above 16, at most 64
        for (int p = 0; p < 17; p++)
        {
            Assert.Equal(1, h.Engine.DeleteSessions(IpProtocol.Udp, Ipv4.Parse(Host(2)), (ushort)(40000 + p), 0, 0));
        }
        Array.Clear(buckets);
        Assert.Equal(0, h.Engine.ReadView.AddSubscriberPorts(buckets));
        Assert.Equal(new long[buckets.Length], buckets); // gone with its last port and block
        Assert.Equal(0, h.Engine.ReadView.Subscribers);
    }
}
