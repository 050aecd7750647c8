using System.Diagnostics;
using System.Globalization;
using Natd.Benchmarks.Support;
using Akka.Actor;
using Natd.Dataplane.Io;
using Natd.Dataplane.Nat;
using Natd.Dataplane.Packets;
using Natd.Dataplane.Workers;

namespace Natd.Benchmarks;

/// <summary>
/// In-memory poller scaling (<c>--scaling</c>): aggregate established packets/s of 1 poller, then of
/// 2, each a real <see cref="PollerActor"/> on its own dedicated thread pinned to its own core (as
/// natd pins them), each with its own <see cref="NatEngine"/> holding its own sessions and its own
/// pair of <see cref="ReplayPort"/>s. There is no generator thread: a port's receive copies the next
/// precomputed frames into the batch (the NIC's DMA stands in) and its transmit counts the frame,
/// so all the work measured is the pollers' own. BenchmarkDotNet times one thread, hence this mode.
/// </summary>
public static class Scaling
{
    /// <summary>The issue's target: 2 pollers deliver at least this times what 1 does.</summary>
    public const double Target = 1.8;

    private const int FramesPerPort = 1 << 16;

    /// <summary>
    /// Runs the mode. Arguments: <c>[--sessions N[,N...]]</c> sessions per poller (default
    /// 1000,1000000), <c>[--seconds S]</c> measured seconds per row (default 5), <c>[--pollers N]</c>
    /// the largest poller count (default 2).
    /// </summary>
    /// <returns>0 when every row ran and the target is met, 1 when it is missed, 2 on an error.</returns>
    public static int Run(IReadOnlyList<string> args)
    {
        int[] sessions = [1_000, 1_000_000];
        int seconds = 5, maxPollers = 2;
        for (int i = 0; i < args.Count; i++)
        {
            string value = i + 1 < args.Count ? args[i + 1] : "";
            switch (args[i])
            {
                case "--sessions":
                    sessions = Array.ConvertAll(value.Split(','), s => int.Parse(s, CultureInfo.InvariantCulture));
                    i++;
                    break;
                case "--seconds":
                    seconds = int.Parse(value, CultureInfo.InvariantCulture);
                    i++;
                    break;
                case "--pollers":
                    maxPollers = int.Parse(value, CultureInfo.InvariantCulture);
                    i++;
                    break;
                default:
                    Console.Error.WriteLine($"--scaling: unknown argument '{args[i]}' (--sessions N[,N], --seconds S, --pollers N)");
                    return 2;
            }
        }

        Console.WriteLine($"## In-memory poller scaling: {Environment.ProcessorCount} cores, .NET {Environment.Version}, {seconds} s a row (median of 1 s windows), load {LoadAverage()} before");
        Console.WriteLine();
        Console.WriteLine("| Sessions per poller | Pollers | Established packets/s | Per poller | vs 1 poller | Per poller CPU-second | CPU-normalised vs 1 poller | Frames not forwarded |");
        Console.WriteLine("|---:|---:|---:|---:|---:|---:|---:|---:|");
        int status = 0;
        var verdicts = new List<string>();
        foreach (int n in sessions)
        {
            double one = 0, oneCpu = 0;
            for (int pollers = 1; pollers <= maxPollers; pollers++)
            {
                (double pps, double perCpuSecond, long lost) = Measure(n, pollers, seconds);
                if (pollers == 1)
                {
                    one = pps;
                    oneCpu = perCpuSecond;
                }
                double ratio = one > 0 ? pps / one : 0;
                // What N pollers would deliver with a core each to themselves: N x their rate per CPU-second.
                double cpuRatio = oneCpu > 0 ? pollers * perCpuSecond / oneCpu : 0;
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"| {n:N0} | {pollers} | {pps / 1e6:0.00} M | {pps / pollers / 1e6:0.00} M | {ratio:0.00}x | {perCpuSecond / 1e6:0.00} M | {cpuRatio:0.00}x | {lost} |"));
                if (lost != 0)
                {
                    status = 2;
                }
                if (pollers == 2)
                {
                    bool met = ratio >= Target;
                    status = Math.Max(status, met ? 0 : 1);
                    verdicts.Add(string.Create(CultureInfo.InvariantCulture,
                        $"target 2 pollers >= {Target}x 1 poller, {n:N0} sessions each: {(met ? "MET" : "NOT MET")} ({ratio:0.00}x)"));
                }
            }
        }
        Console.WriteLine();
        foreach (string v in verdicts)
        {
            Console.WriteLine(v);
        }
        Console.WriteLine($"load after: {LoadAverage()}");
        return status;
    }

    /// <summary>
    /// Aggregate received packets/s of <paramref name="pollers"/> pollers (wall clock), packets per
    /// second of the pollers' own CPU time (what a poller does while it runs, whatever else the
    /// shared cores run), and frames received but not transmitted.
    /// </summary>
    private static (double Pps, double PerCpuSecond, long Lost) Measure(int sessions, int pollers, int seconds)
    {
        var tids = new int[pollers];
        var engines = new NatEngine[pollers];
        var stats = new PollerStats[pollers];
        var inside = new ReplayPort[pollers];
        var outside = new ReplayPort[pollers];
        for (int k = 0; k < pollers; k++)
        {
            // Sessions are made at the pollers' clock so none has expired when they run.
            long now = PollerActor.NowMs;
            engines[k] = BenchLab.Engine(sessions);
            var replies = new byte[sessions * BenchLab.Stride];
            BenchLab.Fill(engines[k], sessions, now, replies);
            var in2out = new byte[FramesPerPort * BenchLab.Stride];
            var out2in = new byte[FramesPerPort * BenchLab.Stride];
            var rng = new Random(12345 + k);
            for (int i = 0; i < FramesPerPort; i++)
            {
                int flow = rng.Next(sessions);
                BenchLab.WriteIn2Out(in2out.AsSpan(i * BenchLab.Stride), flow);
                replies.AsSpan(flow * BenchLab.Stride, BenchLab.Stride).CopyTo(out2in.AsSpan(i * BenchLab.Stride));
            }
            inside[k] = new ReplayPort("natin", BenchLab.InsideMac, in2out);
            outside[k] = new ReplayPort("natout", BenchLab.OutsideMac, out2in);
            stats[k] = new PollerStats();
        }
        GC.Collect();
        GC.WaitForPendingFinalizers();

        var system = ActorSystem.Create("scaling", PollerSystemConfig.Quiet);
        var wakeups = new Wakeup[pollers];
        try
        {
            for (int k = 0; k < pollers; k++)
            {
                int k2 = k;
                wakeups[k] = new Wakeup();
                var options = new PollerOptions
                {
                    BatchSize = BenchLab.BatchSize,
                    Wakeup = wakeups[k],
                    Cpu = k % Environment.ProcessorCount,
                    OnThreadStart = () => tids[k2] = ThreadId(),
                };
                system.ActorOf(PollerActor.Props(engines[k], inside[k], outside[k], options, stats[k]), $"poller-{k}");
            }
            Thread.Sleep(1000); // warm-up: JIT tiers, caches, the first LRU moves
            var windows = new double[seconds];
            long last = Received(stats);
            long cpu0 = CpuNs(tids), first = last;
            long t0 = Stopwatch.GetTimestamp();
            for (int w = 0; w < seconds; w++)
            {
                Thread.Sleep(1000);
                long r = Received(stats);
                long t1 = Stopwatch.GetTimestamp();
                windows[w] = (r - last) / Stopwatch.GetElapsedTime(t0, t1).TotalSeconds;
                last = r;
                t0 = t1;
            }
            double perCpuSecond = (last - first) / ((CpuNs(tids) - cpu0) / 1e9) / pollers;
            Array.Sort(windows);
            double median = windows.Length % 2 == 1 ? windows[windows.Length / 2] : (windows[windows.Length / 2 - 1] + windows[windows.Length / 2]) / 2;
            if (!system.Terminate().Wait(TimeSpan.FromSeconds(30)))
            {
                throw new TimeoutException("the pollers did not stop within 30 s");
            }
            long lost = 0;
            for (int k = 0; k < pollers; k++)
            {
                lost += inside[k].Stats.RxFrames + outside[k].Stats.RxFrames - inside[k].Stats.TxFrames - outside[k].Stats.TxFrames;
            }
            return (median, perCpuSecond, lost);
        }
        finally
        {
            system.Terminate().Wait(TimeSpan.FromSeconds(30));
            foreach (var w in wakeups)
            {
                w?.Dispose();
            }
        }
    }

    private static long Received(PollerStats[] stats)
    {
        long n = 0;
        foreach (PollerStats s in stats)
        {
            n += Volatile.Read(ref s.FramesReceived);
        }
        return n;
    }

    /// <summary>The calling thread's kernel id (the first field of /proc/thread-self/stat).</summary>
    private static int ThreadId()
    {
        string stat = File.ReadAllText("/proc/thread-self/stat");
        return int.Parse(stat.AsSpan(0, stat.IndexOf(' ', StringComparison.Ordinal)), CultureInfo.InvariantCulture);
    }

    /// <summary>Nanoseconds the threads have run on a CPU (schedstat's first field, summed).</summary>
    private static long CpuNs(int[] tids)
    {
        long ns = 0;
        foreach (int tid in tids)
        {
            string s = File.ReadAllText($"/proc/self/task/{tid}/schedstat");
            ns += long.Parse(s.AsSpan(0, s.IndexOf(' ', StringComparison.Ordinal)), CultureInfo.InvariantCulture);
        }
        return ns;
    }

    private static string LoadAverage()
    {
        try
        {
            return string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ', 4)[..3]);
        }
        catch (IOException)
        {
            return "?";
        }
    }
}

/// <summary>
/// A port that never runs dry: each receive fills the batch with the next precomputed frames
/// (cyclically, <see cref="BenchLab.Stride"/> bytes apart, <see cref="BenchLab.FrameLength"/> long),
/// copied into the batch's slots as a NIC's DMA would write them; a transmit only counts the frame
/// (a shared-UMEM AF_XDP forward hands the buffer over without a copy). Owned by one poller thread.
/// </summary>
public sealed class ReplayPort(string name, MacAddress mac, byte[] frames) : IPacketPort
{
    private readonly int _count = frames.Length / BenchLab.Stride;
    private int _next;
    private PortStats _stats;

    /// <inheritdoc />
    public string Name => name;

    /// <inheritdoc />
    public MacAddress Mac => mac;

    /// <summary>Always -1: the port always has frames, the poller never idles.</summary>
    public int PollDescriptor => -1;

    /// <inheritdoc />
    public PortStats Stats => _stats;

    /// <inheritdoc />
    public int Receive(FrameBatch batch)
    {
        int added = 0;
        int next = _next;
        while (batch.Count < batch.Capacity)
        {
            batch.TryAdd(frames.AsSpan(next * BenchLab.Stride, BenchLab.FrameLength));
            next = next + 1 == _count ? 0 : next + 1;
            added++;
        }
        _next = next;
        _stats.RxFrames += added;
        return added;
    }

    /// <inheritdoc />
    public bool TrySend(ReadOnlySpan<byte> frame)
    {
        _stats.TxFrames++;
        return true;
    }

    /// <inheritdoc />
    public bool TryForward(FrameBatch batch, int index, int length)
    {
        _stats.TxFrames++;
        return true;
    }

    /// <inheritdoc />
    public void Flush()
    {
    }

    /// <inheritdoc />
    public void Dispose()
    {
    }
}
