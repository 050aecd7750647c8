using Natd.Dataplane.Io;
using Natd.Control.Api;
using Natd.Control.Daemon;
using Natd.Dataplane.Counters;
using Natd.Dataplane.Nat;
using Natd.Dataplane.Sessions;
using Natd.Tests.Control;
using Natd.Tests.Support;
using Natd.Dataplane.Workers;
using Xunit;
using static Natd.Tests.Support.Frames;

namespace Natd.Tests.Nat;

/// <summary>The one counter table of a shard: every slot declared once, every writer counting into it, readers through its view.</summary>
public sealed class CounterTableTests
{
    private const string In = EngineHarness.InsideHost;
    private const string Out = "203.0.113.9";

    [Fact]
    public void Every_slot_is_declared_once_with_a_unique_group_and_name()
    {
        CounterSchema schema = NatCounters.Schema;
        Assert.Equal(ShardCounters.Count + DropReasons.Count + 4 * NatCounters.AlgKinds + Natd.Dataplane.Pcp.PcpOutcomes.Count, schema.Count);
        var seen = new HashSet<(string, string)>();
        for (int i = 0; i < schema.Count; i++)
        {
            CounterDeclaration d = schema[i];
            Assert.Equal(i, d.Index);
            Assert.False(string.IsNullOrWhiteSpace(d.Help), $"slot {i} ({d.Group}/{d.Name}) has no help");
            Assert.True(seen.Add((d.Group, d.Name)), $"{d.Group}/{d.Name} declared twice");
        }
        foreach (ShardCounter c in Enum.GetValues<ShardCounter>())
        {
            Assert.Equal((int)c, ShardCounters.Declarations[(int)c].Index);
        }
        for (int r = 0; r < DropReasons.Count; r++)
        {
            Assert.Equal(NatCounters.DropBase + r, schema.IndexOf("drops", DropReasons.Label((DropReason)r)));
        }
        for (int o = 0; o < Natd.Dataplane.Pcp.PcpOutcomes.Count; o++)
        {
            Assert.Equal(NatCounters.PcpBase + o, schema.IndexOf("pcp", Natd.Dataplane.Pcp.PcpOutcomes.Label((Natd.Dataplane.Pcp.PcpOutcome)o)));
        }
    }

    [Fact]
    public void A_schema_refuses_a_slot_or_a_name_declared_twice()
    {
        Assert.Throws<ArgumentException>(() => new CounterSchema([new(0, "g", "a", "h"), new(0, "g", "b", "h")]));
        Assert.Throws<ArgumentException>(() => new CounterSchema([new(0, "g", "a", "h"), new(1, "g", "a", "h")]));
        Assert.Throws<ArgumentException>(() => new CounterSchema([new(1, "g", "a", "h")]));
    }

    [Fact]
    public void Named_members_write_the_slot_the_name_table_names()
    {
        var c = new NatCounters();
        c.PacketsIn2Out += 2;
        c.Hairpinned++;
        c.Drops[(int)DropReason.Martian] += 3;
        new AlgCounters(c).Frames[(int)AlgKind.Ftp] += 4;
        new AlgCounters(c).ExpectationsCreated++;
        var stats = new PollerStats(c.Table);
        stats.HandoffDrops += 5;
        CounterView v = c.View;
        Assert.Equal(2, v.Get("packets", "in2out"));
        Assert.Equal(1, v.Get("gateway", "hairpinned"));
        Assert.Equal(3, v.Get("drops", "martian"));
        Assert.Equal(4, v.Get("alg", "ftp/frames"));
        Assert.Equal(1, v.Get("expectations", "created"));
        Assert.Equal(5, v.Get("poller", "handoff-drops"));
        long total = 0;
        for (int i = 0; i < v.Count; i++)
        {
            total += v[i];
        }
        Assert.Equal(2 + 1 + 3 + 4 + 1 + 5, total); // nothing else moved
    }

    [Fact]
    public void The_session_table_and_the_sweep_count_into_the_engine_table()
    {
        var h = new EngineHarness(s => s with { Timeouts = new Timeouts(Udp: 300, Icmp: 60) });
        h.Out(Udp(In, 40000, Out, 53));
        h.Out(Udp(In, 40001, Out, 53));
        CounterView v = h.Engine.ReadView.Counters;
        Assert.Equal(2, v.Get("sessions", "created"));
        Assert.Equal(2, v.Get("sessions-now", "udp"));
        Assert.Equal(2, v.Get("state", "udp"));
        h.Now += 300_000;
        Assert.Equal(2, h.Engine.Sweep(h.Now, 100));
        Assert.Equal(2, v.Get("sessions", "swept"));
        Assert.Equal(2, v.Get("sessions", "deleted"));
        Assert.Equal(0, v.Get("sessions-now", "udp"));
    }

    [Fact]
    public void Handoff_drops_and_sweeps_show_in_stats_metrics_and_natctl()
    {
        var h = new EngineHarness(s => s with { Timeouts = new Timeouts(Udp: 300, Icmp: 60) });
        h.Out(Udp(In, 40000, Out, 53));
        var stats = new PollerStats(h.Engine.Counters.Table);
        stats.HandoffDrops += 7;
        stats.Handoffs += 11;
        h.Now += 300_000;
        Assert.Equal(1, h.Engine.Sweep(h.Now, 100));

        StatsSnapshot snap = DataplaneQuery.Snapshot([new PollerHandle(null!, h.Engine.ReadView, stats)]);
        Assert.Equal(7, snap.HandoffDrops);
        Assert.Equal(11, snap.Handoffs);
        Assert.Equal(1, snap.SessionsSwept);
        Assert.Equal(1, snap.SessionsCreated);

        string metrics = MetricsText.Of(snap);
        Assert.Contains("\nnatd_handoff_drops_total 7\n", metrics, StringComparison.Ordinal);
        Assert.Contains("\nnatd_sessions_swept_total 1\n", metrics, StringComparison.Ordinal);

        string table = Natd.Contracts.StatsTable.Render(WireViews.Stats(snap));
        Assert.Matches(@"(?m)^handoff drops\s+7$", table);
        Assert.Matches(@"(?m)^sessions swept\s+1$", table);
    }

    [Fact]
    public async Task Fill_ring_drops_are_summed_per_interface_into_stats_and_metrics()
    {
        var h = new EngineHarness();
        var stats = new PollerStats(h.Engine.Counters.Table);
        // Two pollers' sockets on the same two interfaces, as with two AF_XDP workers.
        PollerHandle Poller(long insideDrops, long insideEmpty) => new(null!, h.Engine.ReadView, stats,
            new CountedPort("natin", new PortStats { RxDropped = insideDrops, RxFillRingEmpty = insideEmpty }),
            new CountedPort("natout", new PortStats { RxDropped = 2 }));
        var query = new DataplaneQuery([Poller(10, 7), Poller(5, 5)]);

        StatsSnapshot snap = await query.GetStatsAsync();
        PortCounters inside = Assert.Single(snap.Ports, p => p.Interface == "natin");
        Assert.Equal(15, inside.RxDropped);
        Assert.Equal(12, inside.RxFillRingEmpty);
        Assert.Equal(0, Assert.Single(snap.Ports, p => p.Interface == "natout").RxFillRingEmpty);

        string metrics = MetricsText.Of(snap);
        Assert.Contains("\nnatd_port_rx_fill_ring_empty_total{interface=\"natin\"} 12\n", metrics, StringComparison.Ordinal);
        Assert.Contains("\nnatd_port_rx_dropped_total{interface=\"natin\"} 15\n", metrics, StringComparison.Ordinal);
        Assert.Contains("\nnatd_port_rx_fill_ring_empty_total{interface=\"natout\"} 0\n", metrics, StringComparison.Ordinal);
        Assert.Equal(12, Assert.Single(WireViews.Stats(snap).Ports, p => p.Interface == "natin").RxFillRingEmpty);
    }

    [Fact]
    public async Task Oversize_frames_are_summed_per_interface_into_stats_and_metrics()
    {
        var h = new EngineHarness();
        var stats = new PollerStats(h.Engine.Counters.Table);
        PollerHandle Poller(long insideOversize) => new(null!, h.Engine.ReadView, stats,
            new CountedPort("natin", new PortStats { RxOversize = insideOversize }),
            new CountedPort("natout", new PortStats()));
        var query = new DataplaneQuery([Poller(4), Poller(9)]);

        StatsSnapshot snap = await query.GetStatsAsync();
        Assert.Equal(13, Assert.Single(snap.Ports, p => p.Interface == "natin").RxOversize);
        string metrics = MetricsText.Of(snap);
        Assert.Contains("\nnatd_port_rx_oversize_total{interface=\"natin\"} 13\n", metrics, StringComparison.Ordinal);
        Assert.Contains("\nnatd_port_rx_oversize_total{interface=\"natout\"} 0\n", metrics, StringComparison.Ordinal);
        Assert.Equal(13, Assert.Single(WireViews.Stats(snap).Ports, p => p.Interface == "natin").RxOversize);
        string table = Natd.Contracts.StatsTable.Render(WireViews.Stats(snap));
        Assert.Matches(@"(?m)^interface natin rx oversize\s+13$", table);
        Assert.Matches(@"(?m)^interface natout rx oversize\s+0$", table);
        Assert.Matches(@"(?m)^interface natin rx dropped\s+0$", table);
    }

    [Fact]
    public async Task Transmit_kicks_are_summed_per_interface_into_stats_and_metrics()
    {
        var h = new EngineHarness();
        var stats = new PollerStats(h.Engine.Counters.Table);
        PollerHandle Poller(long kicks, long deferred, long errors) => new(null!, h.Engine.ReadView, stats,
            new CountedPort("natin", new PortStats { TxKicks = 1 }),
            new CountedPort("natout", new PortStats { TxKicks = kicks, TxKickDeferred = deferred, TxKickErrors = errors }));
        var query = new DataplaneQuery([Poller(100, 2, 0), Poller(40, 1, 3)]);

        StatsSnapshot snap = await query.GetStatsAsync();
        PortCounters outside = Assert.Single(snap.Ports, p => p.Interface == "natout");
        Assert.Equal((140, 3, 3), (outside.TxKicks, outside.TxKickDeferred, outside.TxKickErrors));
        Assert.Equal(2, Assert.Single(snap.Ports, p => p.Interface == "natin").TxKicks);

        string metrics = MetricsText.Of(snap);
        Assert.Contains("\nnatd_port_tx_kicks_total{interface=\"natout\"} 140\n", metrics, StringComparison.Ordinal);
        Assert.Contains("\nnatd_port_tx_kicks_total{interface=\"natin\"} 2\n", metrics, StringComparison.Ordinal);
        Assert.Contains("\nnatd_port_tx_kick_deferred_total{interface=\"natout\"} 3\n", metrics, StringComparison.Ordinal);
        Assert.Contains("\nnatd_port_tx_kick_errors_total{interface=\"natout\"} 3\n", metrics, StringComparison.Ordinal);
        Assert.Contains("\nnatd_port_tx_kick_errors_total{interface=\"natin\"} 0\n", metrics, StringComparison.Ordinal);
        var wire = Assert.Single(WireViews.Stats(snap).Ports, p => p.Interface == "natout");
        Assert.Equal((140, 3, 3), (wire.TxKicks, wire.TxKickDeferred, wire.TxKickErrors));
    }

    /// <summary>A port that only reports counters (the query reads nothing else of it).</summary>
    private sealed class CountedPort(string name, PortStats stats) : Natd.Dataplane.Io.IPacketPort
    {
        public string Name => name;
        public Natd.Dataplane.Packets.MacAddress Mac => default;
        public int PollDescriptor => -1;
        public PortStats Stats => stats;
        public int Receive(Natd.Dataplane.Io.FrameBatch batch) => 0;
        public bool TrySend(ReadOnlySpan<byte> frame) => false;
        public void Flush()
        {
        }

        public void Dispose()
        {
        }
    }
}
