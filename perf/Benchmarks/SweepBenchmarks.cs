using BenchmarkDotNet.Attributes;
using Natd.Benchmarks.Support;
using Natd.Dataplane.Nat;

namespace Natd.Benchmarks;

/// <summary>
/// Expiry: each operation is one sweeper slice, <c>engine.Sweep(now, 4096)</c>, on a table of 1M UDP
/// sessions that have all passed their timeout, so every slice deletes exactly 4096 sessions
/// (index removal in both directions, LRU unlink, mapping and port release). The table is refilled
/// before every iteration; <see cref="InvocationsPerIteration"/> slices never empty it.
/// </summary>
[BenchmarkCategory(Categories.Expiry)]
[OperationUnit("session deleted")]
[InvocationCount(InvocationsPerIteration, 1)]
public class SweepBenchmarks
{
    /// <summary>Sessions per sweeper slice (the daemon's default budget).</summary>
    public const int Budget = 4096;

    /// <summary>Expired sessions in the table at the start of each iteration.</summary>
    public const int Sessions = 1_000_000;

    /// <summary>Slices per iteration: 240 * 4096 = 983,040 of the 1,000,000 sessions.</summary>
    public const int InvocationsPerIteration = 240;

    private NatEngine _engine = null!;
    private long _startAt;
    private long _sweepAt;
    private int _shortSlices;

    [GlobalSetup]
    public void Setup()
    {
        _engine = BenchLab.Engine(1 << 20);
        _startAt = BenchLab.StartMs;
        _sweepAt = 0;
    }

    [GlobalCleanup]
    public void Cleanup() => _engine = null!;

    [IterationSetup]
    public void Refill()
    {
        _engine.Flush();
        if (_sweepAt != 0)
        {
            // The last iteration's ports wait in the reuse quarantine (nat.port-reuse-delay) until
            // its sweep time plus the delay: this one starts after that, on a drained quarantine, or
            // the refill runs out of ports. The engine's clock only moves forward, as in the daemon.
            _startAt = _sweepAt + _engine.Settings.Cgnat.PortReuseDelaySeconds * 1000L + 1000;
            _engine.Sweep(_startAt, int.MaxValue);
        }
        BenchLab.Fill(_engine, Sessions, _startAt);
        _sweepAt = _startAt + (_engine.Settings.Timeouts.Udp + 1) * 1000L;
        _shortSlices = 0;
    }

    [IterationCleanup]
    public void Check()
    {
        if (_shortSlices != 0)
        {
            throw new InvalidOperationException($"{_shortSlices} sweep slices deleted fewer than {Budget} sessions");
        }
    }

    /// <summary>One expiry slice; returns sessions deleted.</summary>
    [Benchmark(OperationsPerInvoke = Budget)]
    public int SweepSlice()
    {
        int deleted = _engine.Sweep(_sweepAt, Budget);
        if (deleted != Budget)
        {
            _shortSlices++;
        }
        return deleted;
    }
}
