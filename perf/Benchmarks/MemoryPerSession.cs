using System.Globalization;
using Natd.Benchmarks.Support;
using Natd.Dataplane.Nat;

namespace Natd.Benchmarks;

/// <summary>
/// Bytes per session (<c>--memory</c>), for each <c>nat.allocation</c> on the same traffic: an
/// engine sized for N sessions (default 1,000,000) is built and then filled with N of BenchLab's
/// UDP flows through <c>Process</c> (the real slow path: 4096 subscribers, about 245 flows each).
/// The managed heap (<c>GC.GetTotalMemory(true)</c>) is read before the engine exists, after it
/// is built (its tables are preallocated at their full size) and after the fill; the engine is
/// kept alive across the reads. Per session = (after fill - before) / N: what a session costs when
/// the table is full, the preallocated arrays included. A count, not a timing.
/// </summary>
public static class MemoryPerSession
{
    /// <summary>Runs the mode. Arguments: <c>[--sessions N]</c> (default 1,000,000).</summary>
    /// <returns>0 when every mode ran, 2 on an argument or setup error.</returns>
    public static int Run(IReadOnlyList<string> args)
    {
        int sessions = 1_000_000;
        for (int i = 0; i < args.Count; i++)
        {
            if (args[i] == "--sessions" && i + 1 < args.Count && int.TryParse(args[i + 1], NumberStyles.None, CultureInfo.InvariantCulture, out int n) && n > 0)
            {
                sessions = n;
                i++;
                continue;
            }
            Console.Error.WriteLine($"--memory: bad argument '{args[i]}' (--sessions N)");
            return 2;
        }
        Console.WriteLine($"## Managed memory per session: {sessions:N0} UDP sessions of {BenchLab.Hosts} subscribers, one shard, {Environment.Version}");
        Console.WriteLine();
        Console.WriteLine("| allocation | engine built, MB | after the fill, MB | bytes per session (whole engine) | of which added by the fill |");
        Console.WriteLine("|---|---:|---:|---:|---:|");
        foreach (var mode in new[] { PortAllocation.Dynamic, PortAllocation.PortBlock, PortAllocation.Deterministic })
        {
            try
            {
                var (built, filled) = Measure(mode, sessions);
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"| {BenchLab.Name(mode)} | {built / 1e6:0.0} | {filled / 1e6:0.0} | {(double)filled / sessions:0.0} | {(double)(filled - built) / sessions:0.0} |"));
            }
            catch (InvalidOperationException e)
            {
                Console.WriteLine($"| {BenchLab.Name(mode)} | - | - | - | setup failed: {e.Message} |");
                return 2;
            }
        }
        Console.WriteLine();
        Console.WriteLine("Port blocks add the shard's block arrays and a subscriber table; deterministic mode its map; both sized by the pool and the table, not per packet.");
        return 0;
    }

    /// <summary>Heap growth (bytes) from before the engine to its construction, and to its fill with <paramref name="sessions"/> sessions.</summary>
    private static (long Built, long Filled) Measure(PortAllocation mode, int sessions)
    {
        long before = GC.GetTotalMemory(forceFullCollection: true);
        NatEngine engine = BenchLab.Engine(sessions, mode);
        long built = GC.GetTotalMemory(forceFullCollection: true) - before;
        BenchLab.Fill(engine, sessions, BenchLab.StartMs);
        long filled = GC.GetTotalMemory(forceFullCollection: true) - before;
        GC.KeepAlive(engine);
        return (built, filled);
    }
}
