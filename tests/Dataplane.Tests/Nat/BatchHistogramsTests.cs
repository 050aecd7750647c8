using System.Diagnostics;
using Natd.Dataplane.Counters;
using Natd.Dataplane.Nat;
using Natd.Dataplane.Workers;

namespace Natd.Tests.Nat;

/// <summary>The pollers' per-batch histograms: bucket placement, one batch's share of the shard counters, shards adding up.</summary>
public sealed class BatchHistogramsTests
{
    [Theory]
    [InlineData(0, 0)]
    [InlineData(1, 1)]
    [InlineData(2, 2)]
    [InlineData(3, 3)]
    [InlineData(4, 3)]
    [InlineData(5, 4)]
    [InlineData(64, 7)]
    [InlineData(65, 8)]
    [InlineData(512, 10)]
    [InlineData(513, 11)]
    [InlineData(100_000, 11)]
    public void Frame_counts_take_the_first_bound_they_do_not_exceed(long frames, int bucket)
    {
        Assert.Equal(bucket, BatchHistograms.FrameBucket(frames));
        // The same answer as a scan of the bounds (the last index is +Inf).
        int scan = Array.FindIndex(BatchHistograms.FrameBounds, b => frames <= b);
        Assert.Equal(scan < 0 ? BatchHistograms.FrameBounds.Length : scan, bucket);
    }

    [Fact]
    public void Latency_takes_the_first_bound_it_does_not_exceed_in_ticks()
    {
        long[] t = BatchHistograms.LatencyTickBounds;
        Assert.Equal(0, BatchHistograms.LatencyBucket(0));
        Assert.Equal(0, BatchHistograms.LatencyBucket(t[0]));
        Assert.Equal(1, BatchHistograms.LatencyBucket(t[0] + 1));
        Assert.Equal(t.Length - 1, BatchHistograms.LatencyBucket(t[^1]));
        Assert.Equal(t.Length, BatchHistograms.LatencyBucket(t[^1] + 1));
        // The exported bounds are the tick bounds in seconds: 1 us .. 100 ms.
        var totals = BatchHistograms.NewLatencyTotals();
        Assert.Equal(BatchHistograms.LatencyBounds.Length, totals.Bounds.Length);
        for (int i = 0; i < t.Length; i++)
        {
            Assert.Equal(BatchHistograms.LatencyBounds[i], totals.Bounds[i], 12);
        }
    }

    [Fact]
    public void A_batch_records_its_own_share_of_the_shard_frame_counters()
    {
        var stats = new PollerStats();
        stats.FramesReceived += 100; // earlier batches
        stats.FramesTransmitted += 90;
        long start = stats.Histograms.Begin();
        stats.FramesReceived += 3;
        stats.FramesTransmitted += 2;
        stats.Histograms.End(start, System.Diagnostics.Stopwatch.GetTimestamp());

        var (rx, tx, latency) = Totals(stats.Histograms);
        Assert.Equal([0L, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0], rx.Counts); // 3 frames: (2, 4]
        Assert.Equal(3, rx.Sums[3]);
        Assert.Equal(1, tx.Counts[2]); // 2 frames: (1, 2]
        Assert.Equal(2, tx.Sums[2]);
        Assert.Equal(1, latency.Count);
        Assert.True(latency.Sums.Sum() > 0);
    }

    [Fact]
    public void Shards_add_up_bucket_by_bucket()
    {
        var a = new BatchHistograms(new CounterTable(NatCounters.Schema));
        var b = new BatchHistograms(new CounterTable(NatCounters.Schema));
        a.Record(64, 60, 2_000);
        a.Record(1, 0, 500);
        b.Record(64, 64, Stopwatch.Frequency); // one second: above every bound
        var rx = BatchHistograms.NewFrameTotals();
        var tx = BatchHistograms.NewFrameTotals();
        var latency = BatchHistograms.NewLatencyTotals();
        a.AddTo(rx, tx, latency);
        b.AddTo(rx, tx, latency);
        Assert.Equal(2, rx.Counts[7]); // 64 frames: (32, 64]
        Assert.Equal(128, rx.Sums[7]);
        Assert.Equal(1, rx.Counts[1]);
        Assert.Equal(1, tx.Counts[0]); // a batch that sent nothing
        Assert.Equal(2, tx.Counts[7]);
        Assert.Equal(124, tx.Sums[7]);
        Assert.Equal(3, latency.Count);
        Assert.Equal(1, latency.Counts[^1]);
        Assert.Equal(Stopwatch.Frequency + 2_500, latency.Sums.Sum());
    }

    private static (HistogramTotals Rx, HistogramTotals Tx, HistogramTotals Latency) Totals(BatchHistograms h)
    {
        var rx = BatchHistograms.NewFrameTotals();
        var tx = BatchHistograms.NewFrameTotals();
        var latency = BatchHistograms.NewLatencyTotals();
        h.AddTo(rx, tx, latency);
        return (rx, tx, latency);
    }
}
