using System.Text.Json;
using Microsoft.Extensions.Logging.Abstractions;
using Natd.Control.Logging;
using Akka.Actor;
using Natd.Dataplane.Nat;
using Natd.Tests.Support;
using static Natd.Tests.Support.Frames;
using Natd.Dataplane.Sessions;

namespace Natd.Tests.Logging;

public sealed class FileSinkTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("natd-events-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static NatEvent Event(int insidePort) => new()
    {
        Type = NatEventType.SessionCreated, Protocol = 17, InsideAddress = 0x0200000a, InsidePort = (ushort)insidePort,
        ExternalAddress = 0x016433c6, ExternalPort = 50000,
    };

    [Fact]
    public async Task Lines_are_JSON_objects_with_time_event_protocol_and_endpoints()
    {
        string path = Path.Combine(_dir, "sub", "events.jsonl"); // the directory is created
        var h = new EngineHarness(s => s with { PortMin = 7000, PortMax = 7000 }) { Now = 2_000_042 };
        var stats = new EventLogStats();
        var settings = new EventLogSettings { Queue = 64, File = new FileSinkSettings(path, 1 << 20, 2) };
        NatEventLogger.AttachRing(h.Engine.Table, settings.Queue);
        await using (var system = AkkaSystem.Create("file"))
        {
            IReadOnlyList<SessionTable> tables = [h.Engine.Table];
            var logger = system.ActorOf(Props.Create(() => new NatEventLogger(settings, tables, stats, NullLogger.Instance,
                new EventLoggerOptions { EpochOffsetMs = LoggingTestSupport.EpochOffsetMs })), "event-log");
            byte[] o = h.Out(Udp(EngineHarness.InsideHost, 40000, EngineHarness.OutsideHost, 53));
            h.Run(Udp(EngineHarness.InsideHost, 40001, EngineHarness.OutsideHost, 53), Side.Inside, out _); // exhausted
            await logger.Ask<NatEventLogger.Flushed>(NatEventLogger.Flush.Instance, TimeSpan.FromSeconds(10));
            string[] lines = File.ReadAllLines(path);
            Assert.Equal(2, lines.Length);
            using var first = JsonDocument.Parse(lines[0]);
            var r = first.RootElement;
            Assert.Equal(DateTime.UnixEpoch.AddMilliseconds(h.Now + LoggingTestSupport.EpochOffsetMs),
                r.GetProperty("time").GetDateTime().ToUniversalTime());
            Assert.EndsWith("Z", r.GetProperty("time").GetString());
            Assert.Equal("session-create", r.GetProperty("event").GetString());
            Assert.Equal("udp", r.GetProperty("protocol").GetString());
            Assert.Equal("10.0.0.2:40000", r.GetProperty("inside").GetString());
            Assert.Equal($"{Src(o)}:{SrcPort(o)}", r.GetProperty("external").GetString());
            using var second = JsonDocument.Parse(lines[1]);
            Assert.Equal("port-exhausted", second.RootElement.GetProperty("event").GetString());
            Assert.Equal("10.0.0.2:40001", second.RootElement.GetProperty("inside").GetString());
            Assert.Equal(2, stats.FileWritten);
        }
    }

    [Fact]
    public void Rotation_keeps_N_files_each_within_max_bytes_newest_first()
    {
        string path = Path.Combine(_dir, "events.jsonl");
        var stats = new EventLogStats();
        var sink = new JsonLinesFileSink(new FileSinkSettings(path, 300, 2), stats, NullLogger.Instance);
        for (int i = 0; i < 20; i++)
        {
            sink.Write(Event(40000 + i), 1_000 * i);
        }
        sink.Dispose();

        Assert.True(File.Exists(JsonLinesFileSink.Numbered(path, 1)));
        Assert.True(File.Exists(JsonLinesFileSink.Numbered(path, 2)));
        Assert.False(File.Exists(JsonLinesFileSink.Numbered(path, 3)));
        var ports = new List<int>();
        foreach (var f in new[] { JsonLinesFileSink.Numbered(path, 2), JsonLinesFileSink.Numbered(path, 1), path })
        {
            Assert.InRange(new FileInfo(f).Length, 1, 300);
            foreach (var line in File.ReadAllLines(f))
            {
                using var doc = JsonDocument.Parse(line);
                ports.Add(int.Parse(doc.RootElement.GetProperty("inside").GetString()!.Split(':')[1], System.Globalization.CultureInfo.InvariantCulture));
            }
        }
        // The kept files hold the newest events, in order, ending with the last one written.
        Assert.Equal(Enumerable.Range(40020 - ports.Count, ports.Count), ports);
        Assert.True(stats.FileRotations >= 2);
        Assert.Equal(20, stats.FileWritten);
    }

    [Fact]
    public void An_unwritable_file_counts_errors_and_never_throws()
    {
        string blocker = Path.Combine(_dir, "not-a-dir");
        File.WriteAllText(blocker, "x");
        var stats = new EventLogStats();
        var sink = new JsonLinesFileSink(new FileSinkSettings(Path.Combine(blocker, "events.jsonl"), 1 << 20, 1), stats, NullLogger.Instance);
        for (int i = 0; i < 5; i++)
        {
            sink.Write(Event(40000 + i), 0);
        }
        sink.Flush();
        sink.Write(Event(1), 0);
        sink.Dispose();
        Assert.Equal(6, stats.FileErrors);
        Assert.Equal(0, stats.FileWritten);
    }

    [Fact]
    public void The_sinks_counts_show_in_stats_metrics_and_natctl()
    {
        // One file that works and one that cannot be written: what each sink wrote and lost reaches
        // StatsSnapshot.EventLog (as the daemon's query fills it), /metrics and natctl stats.
        var stats = new EventLogStats();
        var good = new JsonLinesFileSink(new FileSinkSettings(Path.Combine(_dir, "events.jsonl"), 1 << 20, 1), stats, NullLogger.Instance);
        for (int i = 0; i < 4; i++)
        {
            good.Write(Event(41000 + i), 0);
        }
        good.Dispose();
        string blocker = Path.Combine(_dir, "not-a-dir");
        File.WriteAllText(blocker, "x");
        var bad = new JsonLinesFileSink(new FileSinkSettings(Path.Combine(blocker, "events.jsonl"), 1 << 20, 1), stats, NullLogger.Instance);
        bad.Write(Event(42000), 0);
        bad.Write(Event(42001), 0);
        bad.Dispose();

        var snap = new StatsSnapshot
        {
            Drops = new Dictionary<string, long>(), Sessions = new Dictionary<string, long>(), Gateway = new Dictionary<string, long>(),
            EventLog = stats.Snapshot(),
        };
        Assert.Equal(4, snap.EventLog["file/written"]);
        Assert.Equal(2, snap.EventLog["file/errors"]);
        Assert.Equal(0, snap.EventLog["syslog/errors"]);

        string metrics = Natd.Tests.Control.MetricsText.Of(snap);
        Assert.Contains("# TYPE natd_event_log_records_total counter\n", metrics, StringComparison.Ordinal);
        Assert.Contains("\nnatd_event_log_records_total{sink=\"file\",outcome=\"written\"} 4\n", metrics, StringComparison.Ordinal);
        Assert.Contains("\nnatd_event_log_records_total{sink=\"file\",outcome=\"error\"} 2\n", metrics, StringComparison.Ordinal);
        Assert.Contains("\nnatd_event_log_records_total{sink=\"ipfix\",outcome=\"error\"} 0\n", metrics, StringComparison.Ordinal); // every sink's series exist
        Assert.Equal(6, metrics.Split('\n').Count(l => l.StartsWith("natd_event_log_records_total{", StringComparison.Ordinal)));

        string table = Natd.Contracts.StatsTable.Render(Natd.Control.Api.WireViews.Stats(snap));
        Assert.Matches(@"(?m)^event log file written\s+4$", table);
        Assert.Matches(@"(?m)^event log file errors\s+2$", table);
        Assert.DoesNotMatch(@"(?m)^event log syslog", table); // a sink that did nothing shows nothing
    }
}
