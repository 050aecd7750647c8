using Microsoft.Extensions.Logging;
using Natd.Control.Daemon;
using Natd.Dataplane.Io;
using Natd.Dataplane.Packets;
using Natd.Tests.Support;
using Xunit;

namespace Natd.Tests.Control;

/// <summary>The sweeper's check of failed transmit kicks: one warning per interface whose failures grew, summed over the pollers.</summary>
public sealed class TransmitKickWatchTests
{
    [Fact]
    public void Failed_kicks_are_logged_once_per_interface_as_they_grow()
    {
        var h = new EngineHarness();
        var stats = new Natd.Dataplane.Workers.PollerStats(h.Engine.Counters.Table);
        var outside0 = new KickingPort("natout");
        var outside1 = new KickingPort("natout");
        var inside0 = new KickingPort("natin");
        var watch = new TransmitKickWatch([
            new PollerHandle(null!, h.Engine.ReadView, stats, inside0, outside0),
            new PollerHandle(null!, h.Engine.ReadView, stats, new KickingPort("natin"), outside1),
        ]);
        var log = new CapturingLogger();

        watch.Check(log);
        Assert.Empty(log.Lines); // nothing failed

        outside0.Failures = (2, 100); // ENETDOWN
        outside1.Failures = (3, 100);
        watch.Check(log);
        string line = Assert.Single(log.Lines);
        Assert.StartsWith("Warning interface natout: 5 transmit kicks failed since the last check (5 in all; last errno 100, ", line, StringComparison.Ordinal);

        watch.Check(log);
        Assert.Single(log.Lines); // no new failures, no new line

        outside1.Failures = (4, 6); // ENXIO
        inside0.Failures = (1, 100);
        watch.Check(log);
        Assert.Equal(3, log.Lines.Count);
        Assert.Contains(log.Lines, l => l.StartsWith("Warning interface natout: 1 transmit kicks failed since the last check (6 in all; last errno 6, ", StringComparison.Ordinal));
        Assert.Contains(log.Lines, l => l.StartsWith("Warning interface natin: 1 transmit kicks failed since the last check (1 in all; last errno 100, ", StringComparison.Ordinal));
    }

    /// <summary>A port whose only state is its failed kicks.</summary>
    private sealed class KickingPort(string name) : IPacketPort
    {
        public (long Count, int LastErrno) Failures { get; set; }
        public string Name => name;
        public MacAddress Mac => default;
        public int PollDescriptor => -1;
        public PortStats Stats => default;
        public (long Count, int LastErrno) TxKickFailures => Failures;
        public int Receive(FrameBatch batch) => 0;
        public bool TrySend(ReadOnlySpan<byte> frame) => false;
        public void Flush()
        {
        }

        public void Dispose()
        {
        }
    }

    private sealed class CapturingLogger : ILogger
    {
        public List<string> Lines { get; } = [];

        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
            => Lines.Add($"{logLevel} {formatter(state, exception)}");
    }
}
