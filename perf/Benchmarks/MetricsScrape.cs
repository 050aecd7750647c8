using System.Diagnostics;
using System.Globalization;
using Natd.Control.Api;
using Natd.Dataplane.Counters;
using Natd.Dataplane.Nat;

namespace Natd.Benchmarks;

/// <summary>
/// Cost of one /metrics scrape after the snapshot is taken (<c>--metrics-scrape</c>): from a
/// <see cref="StatsSnapshot"/> to the exposition bytes in a stream, the way the control server
/// answers. A stopwatch loop (a scrape is milliseconds, not nanoseconds): mean time per scrape and
/// bytes allocated per scrape (<c>GC.GetTotalAllocatedBytes(precise)</c>, all threads). The hand-written
/// formatter this replaced measured 270-410 us and 84,300 bytes per scrape for 13,036 bytes of text
/// on the same machine (README, dependencies).
/// </summary>
public static class MetricsScrape
{
    /// <summary>Runs the mode. Arguments: <c>[--scrapes N]</c> (default 2000).</summary>
    /// <returns>0, or 2 on an argument error.</returns>
    public static int Run(IReadOnlyList<string> args)
    {
        int scrapes = 2000;
        for (int i = 0; i < args.Count; i++)
        {
            if (args[i] == "--scrapes" && i + 1 < args.Count && int.TryParse(args[i + 1], NumberStyles.None, CultureInfo.InvariantCulture, out int n) && n > 0)
            {
                scrapes = n;
                i++;
                continue;
            }
            Console.Error.WriteLine($"--metrics-scrape: bad argument '{args[i]}' (--scrapes N)");
            return 2;
        }
        StatsSnapshot stats = Snapshot();
        Console.WriteLine($"## /metrics scrape, snapshot to bytes ({scrapes:N0} scrapes, {Environment.ProcessorCount} cores, .NET {Environment.Version})");
        Console.WriteLine();
        Console.WriteLine("| exporter | us per scrape | bytes allocated per scrape | bytes of text |");
        Console.WriteLine("|---|---:|---:|---:|");
        using (var natdOnly = new MetricsExporter(processMetrics: false))
        {
            Measure("prometheus-net, natd families", scrapes, stream =>
            {
                natdOnly.Publish(stats);
                return natdOnly.Registry.CollectAndExportAsTextAsync(stream);
            });
            Measure("  of which setting the series (Publish)", scrapes, stream =>
            {
                natdOnly.Publish(stats);
                return Task.CompletedTask;
            });
        }
        using (var full = new MetricsExporter(processMetrics: true))
        {
            Measure("prometheus-net, natd + process + runtime", scrapes, stream =>
            {
                full.Publish(stats);
                return full.Registry.CollectAndExportAsTextAsync(stream);
            });
        }
        // The two sources of the process and runtime metrics, each alone on an empty registry: what each adds to a scrape.
        var processOnly = Prometheus.Metrics.NewCustomRegistry();
        Prometheus.DotNetStats.Register(processOnly);
        Measure("  of which DotNetStats (process_*, dotnet_*) alone", scrapes, stream => processOnly.CollectAndExportAsTextAsync(stream));
        var runtimeOnly = Prometheus.Metrics.NewCustomRegistry();
        using (Prometheus.MeterAdapter.StartListening(new Prometheus.MeterAdapterOptions
        {
            Registry = runtimeOnly,
            MetricFactory = Prometheus.Metrics.WithCustomRegistry(runtimeOnly),
            InstrumentFilterPredicate = static i => i.Meter.Name == "System.Runtime" && !i.Name.EndsWith(".count", StringComparison.Ordinal),
        }))
        {
            Measure("  of which the System.Runtime meter adapter alone", scrapes, stream => runtimeOnly.CollectAndExportAsTextAsync(stream));
        }
        return 0;
    }

    private static void Measure(string name, int scrapes, Func<MemoryStream, Task> scrape)
    {
        var stream = new MemoryStream(64 * 1024);
        for (int i = 0; i < Math.Max(50, scrapes / 10); i++)
        {
            stream.SetLength(0);
            scrape(stream).GetAwaiter().GetResult();
        }
        GC.Collect();
        long allocated = GC.GetTotalAllocatedBytes(precise: true);
        long start = Stopwatch.GetTimestamp();
        for (int i = 0; i < scrapes; i++)
        {
            stream.SetLength(0);
            scrape(stream).GetAwaiter().GetResult();
        }
        double us = Stopwatch.GetElapsedTime(start).TotalMicroseconds / scrapes;
        long bytes = (GC.GetTotalAllocatedBytes(precise: true) - allocated) / scrapes;
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| {name} | {us:0.0} | {bytes:N0} | {stream.Length:N0} |"));
    }

    /// <summary>A busy natd's snapshot: every counter of the schema non-zero, 4 pool addresses, 8 rules, 2 interfaces.</summary>
    public static StatsSnapshot Snapshot()
    {
        var drops = new Dictionary<string, long>();
        var gateway = new Dictionary<string, long>();
        var algEvents = new Dictionary<string, long>();
        var expectations = new Dictionary<string, long>();
        var fragments = new Dictionary<string, long>();
        var byState = new Dictionary<string, long>();
        long v = 1_000_003;
        foreach (CounterDeclaration d in NatCounters.Schema.Declarations)
        {
            v = v * 31 % 1_000_000_007;
            switch (d.Group)
            {
                case "drops": drops[d.Name] = v; break;
                case "gateway": gateway[d.Name] = v; break;
                case "state": byState[d.Name] = v % 100_000; break;
                case "expectations": expectations[d.Name] = v % 1000; break;
                case "fragments": fragments[d.Name] = v; break;
                case "alg" when !d.Name.StartsWith("none/", StringComparison.Ordinal): algEvents[d.Name] = v; break;
            }
        }
        var ports = new List<PortUsage>();
        foreach (string address in (string[])["198.51.100.1", "198.51.100.2", "198.51.100.3", "198.51.100.4"])
        {
            foreach (string protocol in (string[])["tcp", "udp", "icmp"])
            {
                ports.Add(new PortUsage(address, protocol, 20_000, 64_512));
            }
        }
        var rules = new Dictionary<string, long>();
        for (int r = 0; r < 8; r++)
        {
            rules["rule-" + r.ToString(CultureInfo.InvariantCulture)] = 1000L * r;
        }
        return new StatsSnapshot
        {
            PacketsIn2Out = 123_456_789_012, PacketsOut2In = 98_765_432_109, BytesIn2Out = 123_456_789_012_345, BytesOut2In = 98_765_432_109_876,
            FramesReceived = 222_222_222_121, FramesTransmitted = 222_222_222_000,
            Drops = drops,
            Sessions = new Dictionary<string, long> { ["tcp"] = 400_000, ["udp"] = 550_000, ["icmp"] = 50_000, ["esp"] = 2, ["isakmp"] = 2 },
            SessionsCreated = 88_000_000, SessionsDeleted = 87_000_000, SessionsSwept = 80_000_000,
            Gateway = gateway,
            SessionsByState = byState,
            PortUsage = ports,
            RuleHits = rules,
            PollerBusyRatio = 0.4375,
            Handoffs = 1_000_000, HandoffDrops = 12, EventsDropped = 3,
            AlgEvents = algEvents,
            Expectations = expectations,
            Fragments = fragments,
            Subscribers = 4096,
            PortBlocks = [new PortBlockUsage("198.51.100.1", 120, 126), new PortBlockUsage("198.51.100.2", 110, 126)],
            SubscriberPorts = [10, 200, 3000, 800, 80, 6, 0, 0],
            SubscriberPortsSum = 900_000,
            Ports = [new PortCounters("veth-in", 111_111_111_000, 111_111_110_000, 5, 0), new PortCounters("veth-out", 111_111_111_121, 111_111_112_000, 0, 2)],
        };
    }
}
