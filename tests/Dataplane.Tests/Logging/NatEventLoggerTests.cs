using System.Diagnostics;
using Microsoft.Extensions.Logging.Abstractions;
using Natd.Control.Logging;
using Akka.Actor;
using Natd.Dataplane.Nat;
using Natd.Tests.Support;
using static Natd.Tests.Support.Frames;
using Natd.Dataplane.Sessions;

namespace Natd.Tests.Logging;

public class NatEventLoggerTests
{
    /// <summary>A sink that blocks in Write until released, as a stuck disk or socket would.</summary>
    private sealed class StuckSink : INatEventSink
    {
        public readonly ManualResetEventSlim Entered = new();
        public readonly ManualResetEventSlim Release = new();
        public int Written;

        public string Name => "stuck";

        public void Write(in NatEvent e, long unixMs)
        {
            Entered.Set();
            Release.Wait(TimeSpan.FromSeconds(30));
            Written++;
        }

        public void Flush() { }

        public void Dispose() => Release.Set();
    }

    [Fact]
    public async Task A_full_ring_drops_and_counts_and_the_logger_reports_the_losses()
    {
        var h = new EngineHarness();
        var stats = new EventLogStats();
        var settings = new EventLogSettings { Queue = 4 };
        var ring = NatEventLogger.AttachRing(h.Engine.Table, settings.Queue);
        Assert.Same(ring, NatEventLogger.AttachRing(h.Engine.Table, 1024)); // attaching again keeps the ring
        for (int i = 0; i < 10; i++)
        {
            h.Out(Udp(EngineHarness.InsideHost, 40000 + i, EngineHarness.OutsideHost, 53));
        }
        Assert.Equal(6, h.Engine.Table.EventsDropped);
        await using var system = AkkaSystem.Create("drops");
        IReadOnlyList<SessionTable> tables = [h.Engine.Table];
        var logger = system.ActorOf(Props.Create(() => new NatEventLogger(settings, tables, stats, NullLogger.Instance)), "event-log");
        var reply = await logger.Ask<NatEventLogger.Flushed>(NatEventLogger.Flush.Instance, TimeSpan.FromSeconds(10));
        Assert.Equal(4, reply.Drained);
        Assert.Equal(6, Volatile.Read(ref stats.Dropped));
        // Drained, the ring takes events again.
        h.Out(Udp(EngineHarness.InsideHost, 41000, EngineHarness.OutsideHost, 53));
        Assert.Equal(6, h.Engine.Table.EventsDropped);
        Assert.Equal(1, ring.Count);
    }

    [Fact]
    public async Task A_stuck_sink_never_blocks_the_poller_thread()
    {
        var h = new EngineHarness();
        var stats = new EventLogStats();
        var sink = new StuckSink();
        NatEventLogger.AttachRing(h.Engine.Table, 256);
        await using var system = AkkaSystem.Create("stuck");
        IReadOnlyList<SessionTable> tables = [h.Engine.Table];
        Func<IReadOnlyList<INatEventSink>> sinks = () => [sink];
        var logger = system.ActorOf(FactoryProps.Of(() => new NatEventLogger(tables, sinks, stats, NullLogger.Instance, null, 256)), "event-log");

        h.Out(Udp(EngineHarness.InsideHost, 40000, EngineHarness.OutsideHost, 53));
        logger.Tell(NatEventLogger.Drain.Instance);
        Assert.True(sink.Entered.Wait(TimeSpan.FromSeconds(10)), "the logger never reached the sink");

        // The logger's thread is now stuck in the sink; this thread plays the poller.
        var sw = Stopwatch.StartNew();
        for (int i = 1; i <= 2000; i++)
        {
            h.Out(Udp(EngineHarness.InsideHost, 40000 + i, EngineHarness.OutsideHost, 53));
        }
        sw.Stop();
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(5), $"2000 new flows took {sw.Elapsed} with the sink stuck");
        Assert.Equal(2000 - 256, h.Engine.Table.EventsDropped); // the ring filled; the rest were counted, not waited for
        Assert.Equal(2001, h.Engine.Table.Count);

        sink.Release.Set();
        var reply = await logger.Ask<NatEventLogger.Flushed>(NatEventLogger.Flush.Instance, TimeSpan.FromSeconds(10));
        Assert.Equal(257, reply.Drained);
        Assert.Equal(257, sink.Written);
        Assert.Equal(2000 - 256, Volatile.Read(ref stats.Dropped));
    }
}
