using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using Natd.Benchmarks.Support;

namespace Natd.Benchmarks;

/// <summary>
/// Entry point: <c>dotnet run -c Release --project perf/Benchmarks -- [--quick] [BenchmarkDotNet args]</c>,
/// or <c>-- --scaling [--sessions N[,N]] [--seconds S] [--pollers N]</c> for <see cref="Scaling"/>,
/// or <c>-- --log-volume [--sessions-per-subscriber S] [--block-size B]</c> for <see cref="LogVolume"/>,
/// or <c>-- --memory [--sessions N]</c> for <see cref="MemoryPerSession"/>,
/// or <c>-- --metrics-scrape [--scrapes N]</c> for <see cref="MetricsScrape"/>,
/// or <c>-- --wakeup [--messages N]</c> for <see cref="WakeupLatency"/>,
/// or <c>-- --allocation [--rounds N]</c> for <see cref="AllocationRatios"/>,
/// or <c>-- --floor [--sessions N[,N]] [--millis M]</c> for <see cref="FastPathFloor"/>.
/// Runs every benchmark unless a <c>--filter</c> is given, prints the compact table, and exits 1
/// when a fast-path benchmark allocated or any benchmark failed.
/// </summary>
public static class Program
{
    public static int Main(string[] args)
    {
        int scaling = Array.IndexOf(args, "--scaling");
        if (scaling >= 0)
        {
            // Multi-threaded aggregate throughput: not BenchmarkDotNet's kind of measurement.
            var scalingArgs = new List<string>(args);
            scalingArgs.RemoveAt(scaling);
            return Scaling.Run(scalingArgs);
        }
        int logVolume = Array.IndexOf(args, "--log-volume");
        if (logVolume >= 0)
        {
            // A count, not a timing.
            var logArgs = new List<string>(args);
            logArgs.RemoveAt(logVolume);
            return LogVolume.Run(logArgs);
        }
        int udpTimers = Array.IndexOf(args, "--udp-port-timers");
        if (udpTimers >= 0)
        {
            // A count of ports, not a timing.
            var timerArgs = new List<string>(args);
            timerArgs.RemoveAt(udpTimers);
            return UdpPortTimers.Run(timerArgs);
        }
        int memory = Array.IndexOf(args, "--memory");
        if (memory >= 0)
        {
            // A count, not a timing.
            var memoryArgs = new List<string>(args);
            memoryArgs.RemoveAt(memory);
            return MemoryPerSession.Run(memoryArgs);
        }
        int metrics = Array.IndexOf(args, "--metrics-scrape");
        if (metrics >= 0)
        {
            // A control-plane cost in microseconds per scrape, not a fast-path benchmark.
            var metricsArgs = new List<string>(args);
            metricsArgs.RemoveAt(metrics);
            return MetricsScrape.Run(metricsArgs);
        }
        int ratios = Array.IndexOf(args, "--allocation");
        if (ratios >= 0)
        {
            // Ratios of modes measured side by side in one process, not one process per mode.
            var ratiosArgs = new List<string>(args);
            ratiosArgs.RemoveAt(ratios);
            return AllocationRatios.Run(ratiosArgs);
        }
        int wakeup = Array.IndexOf(args, "--wakeup");
        if (wakeup >= 0)
        {
            // Latency of one thread waking another: not BenchmarkDotNet's kind of measurement either.
            var wakeupArgs = new List<string>(args);
            wakeupArgs.RemoveAt(wakeup);
            return WakeupLatency.Run(wakeupArgs);
        }
        int floor = Array.IndexOf(args, "--floor");
        if (floor >= 0)
        {
            // Stages of one path and probes of the memory under it, side by side in one process.
            var floorArgs = new List<string>(args);
            floorArgs.RemoveAt(floor);
            return FastPathFloor.Run(floorArgs);
        }
        bool quick = Array.IndexOf(args, "--quick") >= 0;
        var rest = new List<string>(args.Length + 2);
        foreach (string a in args)
        {
            if (a != "--quick")
            {
                rest.Add(a);
            }
        }
        bool informational = rest.Exists(a => a is "--list" or "--info" or "--help" or "-h" or "--version");
        if (!informational && !rest.Exists(a => a is "--filter" or "-f"))
        {
            rest.Add("--filter");
            rest.Add("*"); // no interactive prompt: run everything
        }

        var summaries = new List<Summary>(
            BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run([.. rest], new NoAllocationConfig(quick)));
        if (summaries.Count == 0)
        {
            if (informational)
            {
                return 0;
            }
            Console.Error.WriteLine("FAIL: no benchmark ran (does the filter match any?)");
            return 1;
        }

        Console.WriteLine();
        Console.WriteLine($"## natd micro-benchmarks ({(quick ? "quick" : "default")} job, {Environment.ProcessorCount} cores, .NET {Environment.Version})");
        Console.WriteLine();
        Console.Write(CompactReport.Render(summaries));
        Console.WriteLine();
        string allocation = CompactReport.RenderAllocation(summaries);
        if (allocation.Length > 0)
        {
            Console.WriteLine("## Carrier-grade allocation against dynamic (same run; figures, not a gate)");
            Console.WriteLine();
            Console.Write(allocation);
            Console.WriteLine();
        }

        List<string> problems = AllocationGate.Check(summaries);
        if (problems.Count > 0)
        {
            Console.Error.WriteLine($"FAIL: {problems.Count} problem(s):");
            foreach (string p in problems)
            {
                Console.Error.WriteLine("  " + p);
            }
            return 1;
        }
        Console.WriteLine($"PASS: every '{Categories.FastPath}' benchmark allocated 0 B/op.");
        return 0;
    }
}
