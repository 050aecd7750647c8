using System.Diagnostics;
using System.Numerics;
using System.Runtime.CompilerServices;

namespace Natd.Dataplane.Counters;

/// <summary>
/// One distribution as fixed buckets, summed over shards at one instant: what the metrics exporter
/// publishes as a Prometheus histogram. Buckets are NOT cumulative: <c>Counts[i]</c> are the
/// samples in (<c>Bounds[i-1]</c>, <c>Bounds[i]</c>], the last entry those above every bound
/// (+Inf). <c>Sums[i]</c> is the sum of bucket i's samples in raw units (frames, Stopwatch ticks),
/// so the exporter can rebuild the exact <c>_sum</c> with every sample in its right bucket.
/// </summary>
public sealed class HistogramTotals
{
    /// <summary>Creates zeroed totals over <paramref name="rawBounds"/>.</summary>
    /// <param name="rawBounds">Inclusive upper bounds in raw units (frames, Stopwatch ticks), increasing.</param>
    /// <param name="rawPerUnit">Raw units per exported unit (1 for frames; <see cref="Stopwatch.Frequency"/> for seconds).</param>
    public HistogramTotals(long[] rawBounds, double rawPerUnit)
    {
        ArgumentNullException.ThrowIfNull(rawBounds);
        RawBounds = rawBounds;
        RawPerUnit = rawPerUnit;
        // Bounds and samples are both raw / rawPerUnit: one correctly rounded division each, so a
        // sample lands under the same bound in either unit.
        Bounds = Array.ConvertAll(rawBounds, b => b / rawPerUnit);
        Counts = new long[rawBounds.Length + 1];
        Sums = new long[rawBounds.Length + 1];
    }

    /// <summary>Inclusive upper bounds in the exported unit (frames, seconds): <see cref="RawBounds"/> / <see cref="RawPerUnit"/>.</summary>
    public double[] Bounds { get; }

    /// <summary>The bounds in raw units (frames, Stopwatch ticks).</summary>
    public long[] RawBounds { get; }

    /// <summary>Raw units per exported unit.</summary>
    public double RawPerUnit { get; }

    /// <summary>Samples per bucket, the last above every bound (not cumulative).</summary>
    public long[] Counts { get; }

    /// <summary>Sum of each bucket's samples, raw units.</summary>
    public long[] Sums { get; }

    /// <summary>Samples in all buckets (the histogram's _count).</summary>
    public long Count
    {
        get
        {
            long n = 0;
            foreach (long c in Counts)
            {
                n += c;
            }
            return n;
        }
    }
}

/// <summary>
/// A poller's per-batch distributions, as fixed-bucket histograms: frames received per poll (both
/// ports), frames transmitted per batch, and poll-to-transmit latency per batch (from the poll that
/// starts the batch to the flush that ends it). Recorded once per batch that carried a frame, by
/// the owning poller only: plain stores, no lock, no allocation. Each bucket keeps a count and the
/// sum of its samples; the count is written last with release semantics, so a reader that sees a
/// count also sees its samples' sum (it may see a newer batch's sum too: a scrape racing a batch
/// is at most that batch off, and the next scrape is exact). The arrays are padded by a cache line
/// at each end, like <see cref="CounterTable"/>.
/// </summary>
public sealed class BatchHistograms
{
    private const int Pad = 8; // 8 longs = one 64-byte cache line

    /// <summary>Upper bounds of the two frame-count histograms: 0 (a batch of hand-offs only), then powers of two up to 512.</summary>
    public static readonly long[] FrameBounds = [0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512];

    /// <summary>Upper bounds of the latency histogram, seconds: 1 us to 100 ms.</summary>
    public static readonly double[] LatencyBounds = [1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 0.1];

    /// <summary><see cref="LatencyBounds"/> in Stopwatch ticks (exact on Linux, where a tick is 1 ns).</summary>
    public static readonly long[] LatencyTickBounds = ToTicks(LatencyBounds);

    private static readonly int FrameBuckets = FrameBounds.Length + 1;
    private static readonly int LatencyBuckets = LatencyBounds.Length + 1;

    // Layout after the pad: received counts, received sums, transmitted counts, transmitted sums, latency counts, latency sums.
    private const int ReceivedAt = Pad;
    private static readonly int TransmittedAt = ReceivedAt + 2 * FrameBuckets;
    private static readonly int LatencyAt = TransmittedAt + 2 * FrameBuckets;

    private readonly long[] _v = new long[LatencyAt + 2 * LatencyBuckets + Pad];
    private readonly CounterTable _table;
    private long _received0;
    private long _transmitted0;

    /// <summary>Histograms of the poller that counts its frames into <paramref name="table"/> (the shard's table).</summary>
    public BatchHistograms(CounterTable table) => _table = table ?? throw new ArgumentNullException(nameof(table));

    /// <summary>
    /// Marks the start of a batch (before its first receive): notes the frame counters, so
    /// <see cref="End"/> takes this batch's share of them. Owner thread only.
    /// </summary>
    /// <returns>The Stopwatch timestamp of the start, for <see cref="End"/>.</returns>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public long Begin()
    {
        _received0 = _table[(int)ShardCounter.FramesReceived];
        _transmitted0 = _table[(int)ShardCounter.FramesTransmitted];
        return Stopwatch.GetTimestamp();
    }

    /// <summary>
    /// Records a batch that carried frames, after its flush: frames received and transmitted since
    /// <see cref="Begin"/> and the ticks since <paramref name="start"/>. Owner thread only.
    /// </summary>
    /// <param name="start"><see cref="Begin"/>'s timestamp.</param>
    /// <param name="end">The Stopwatch timestamp after the flush (the poller reads it once for this and its busy time).</param>
    public void End(long start, long end)
        => Record(_table[(int)ShardCounter.FramesReceived] - _received0, _table[(int)ShardCounter.FramesTransmitted] - _transmitted0,
            end - start);

    /// <summary>Records one batch. Owner thread only.</summary>
    /// <param name="received">Frames received by the poll (both ports).</param>
    /// <param name="transmitted">Frames queued for transmission in the batch.</param>
    /// <param name="elapsedTicks">Stopwatch ticks from the poll to the flush.</param>
    public void Record(long received, long transmitted, long elapsedTicks)
    {
        Add(ReceivedAt, FrameBuckets, FrameBucket(received), received);
        Add(TransmittedAt, FrameBuckets, FrameBucket(transmitted), transmitted);
        Add(LatencyAt, LatencyBuckets, LatencyBucket(elapsedTicks), elapsedTicks);
    }

    /// <summary>New zeroed totals shaped for the frames-received histogram.</summary>
    public static HistogramTotals NewFrameTotals() => new(FrameBounds, 1);

    /// <summary>New zeroed totals shaped for the latency histogram (seconds).</summary>
    public static HistogramTotals NewLatencyTotals() => new(LatencyTickBounds, Stopwatch.Frequency);

    /// <summary>Adds this poller's three histograms into totals (any thread; volatile reads).</summary>
    /// <param name="received">Frames received per poll; from <see cref="NewFrameTotals"/>.</param>
    /// <param name="transmitted">Frames transmitted per batch; from <see cref="NewFrameTotals"/>.</param>
    /// <param name="latency">Poll-to-transmit latency; from <see cref="NewLatencyTotals"/>.</param>
    public void AddTo(HistogramTotals received, HistogramTotals transmitted, HistogramTotals latency)
    {
        ArgumentNullException.ThrowIfNull(received);
        ArgumentNullException.ThrowIfNull(transmitted);
        ArgumentNullException.ThrowIfNull(latency);
        AddTo(ReceivedAt, FrameBuckets, received);
        AddTo(TransmittedAt, FrameBuckets, transmitted);
        AddTo(LatencyAt, LatencyBuckets, latency);
    }

    private void AddTo(int at, int buckets, HistogramTotals into)
    {
        if (into.Counts.Length != buckets)
        {
            throw new ArgumentException($"totals have {into.Counts.Length} buckets, this histogram {buckets}", nameof(into));
        }
        for (int b = 0; b < buckets; b++)
        {
            // Count first (acquire): the sum read after it holds at least those samples.
            into.Counts[b] += Volatile.Read(ref _v[at + b]);
            into.Sums[b] += Volatile.Read(ref _v[at + buckets + b]);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void Add(int at, int buckets, int bucket, long value)
    {
        _v[at + buckets + bucket] += value;
        Volatile.Write(ref _v[at + bucket], _v[at + bucket] + 1); // release: the sum above is visible first
    }

    /// <summary>Bucket of a frame count: 0 for none, then (2^(k-1), 2^k] is bucket k + 1; above 512, +Inf.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static int FrameBucket(long frames)
    {
        if (frames <= 0)
        {
            return 0;
        }
        int k = 64 - BitOperations.LeadingZeroCount((ulong)(frames - 1)); // ceil(log2(frames))
        return Math.Min(k + 1, FrameBounds.Length);
    }

    /// <summary>Bucket of a latency in ticks: the first bound it does not exceed, else +Inf.</summary>
    internal static int LatencyBucket(long ticks)
    {
        long[] bounds = LatencyTickBounds;
        int i = 0;
        while (i < bounds.Length && ticks > bounds[i])
        {
            i++;
        }
        return i;
    }

    private static long[] ToTicks(double[] seconds)
    {
        var ticks = new long[seconds.Length];
        for (int i = 0; i < ticks.Length; i++)
        {
            ticks[i] = (long)Math.Round(seconds[i] * Stopwatch.Frequency);
        }
        return ticks;
    }
}
