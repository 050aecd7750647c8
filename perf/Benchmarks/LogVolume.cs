using System.Globalization;
using Natd.Benchmarks.Support;
using Natd.Dataplane.Rings;
using Natd.Dataplane.Io;
using Natd.Dataplane.Nat;
using Natd.Dataplane.Packets;
using Natd.Dataplane.Sessions;

namespace Natd.Benchmarks;

/// <summary>
/// NAT log records per 1,000,000 sessions (<c>--log-volume</c>), for each port allocation mode on
/// the same traffic: <see cref="BenchLab.Hosts"/> subscribers each opening the same number of
/// concurrent UDP sessions (BenchLab's flows), then every session expiring. The engine's event ring
/// is drained as the run goes and every event counted by type: each event is one JSON line, one
/// syslog message and one IPFIX data record, so the count is the record count of every sink. Next
/// to the measured count the table prints what the allocation mode should give on that traffic:
/// dynamic 2 records a session (create, delete), port-block 2 a block (allocate, release; a
/// subscriber needs ceil(sessions / port-block.size) blocks), deterministic none.
/// </summary>
public static class LogVolume
{
    /// <summary>
    /// Runs the mode. Arguments: <c>[--sessions-per-subscriber S]</c> (default 256: 1,048,576
    /// sessions over 4096 subscribers), <c>[--block-size B]</c> (default <see cref="BenchLab.BlockSize"/>:
    /// the default 512 gives one shard fewer blocks than BenchLab has subscribers).
    /// </summary>
    /// <returns>0 when every mode ran, 2 on an argument or setup error.</returns>
    public static int Run(IReadOnlyList<string> args)
    {
        int perSubscriber = 256, blockSize = BenchLab.BlockSize;
        for (int i = 0; i < args.Count; i++)
        {
            string value = i + 1 < args.Count ? args[i + 1] : "";
            switch (args[i])
            {
                case "--sessions-per-subscriber":
                    perSubscriber = int.Parse(value, CultureInfo.InvariantCulture);
                    i++;
                    break;
                case "--block-size":
                    blockSize = int.Parse(value, CultureInfo.InvariantCulture);
                    i++;
                    break;
                default:
                    Console.Error.WriteLine($"--log-volume: unknown argument '{args[i]}' (--sessions-per-subscriber S, --block-size B)");
                    return 2;
            }
        }
        int sessions = BenchLab.Hosts * perSubscriber;
        Console.WriteLine($"## NAT log records per 1,000,000 sessions: {BenchLab.Hosts} subscribers x {perSubscriber} concurrent UDP sessions = {sessions:N0} sessions, port-block.size {blockSize}");
        Console.WriteLine();
        Console.WriteLine("| allocation | records (engine) | per 1,000,000 sessions (engine) | per 1,000,000 sessions (mode's rule) | records by event |");
        Console.WriteLine("|---|---:|---:|---:|---|");
        foreach (var mode in new[] { PortAllocation.Dynamic, PortAllocation.PortBlock, PortAllocation.Deterministic })
        {
            try
            {
                var byType = Measure(mode, perSubscriber, blockSize);
                long records = byType.Values.Sum();
                double expected = mode switch
                {
                    PortAllocation.Dynamic => 2.0 * sessions,
                    PortAllocation.PortBlock => 2.0 * BenchLab.Hosts * ((perSubscriber + blockSize - 1) / blockSize),
                    _ => 0,
                };
                string detail = byType.Count == 0 ? "none" : string.Join(", ", byType.OrderBy(p => p.Key).Select(p => $"{p.Key} {p.Value:N0}"));
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"| {Name(mode)} | {records:N0} | {records * 1e6 / sessions:N0} | {expected * 1e6 / sessions:N0} | {detail} |"));
            }
            catch (InvalidOperationException e)
            {
                Console.WriteLine($"| {Name(mode)} | - | - | - | setup failed: {e.Message} |");
                return 2;
            }
        }
        Console.WriteLine();
        Console.WriteLine("The engine's count is what every sink writes; the rule is what the mode should give on this traffic: a difference is a logging bug.");
        return 0;
    }

    private static string Name(PortAllocation mode) => BenchLab.Name(mode);

    /// <summary>Creates every session, expires them all, and returns the events the engine queued, by type.</summary>
    private static Dictionary<NatEventType, long> Measure(PortAllocation mode, int perSubscriber, int blockSize)
    {
        int sessions = BenchLab.Hosts * perSubscriber;
        var settings = BenchLab.WithAllocation(BenchLab.Settings(sessions), mode, blockSize);
        var engine = new NatEngine(settings, BenchLab.InsideMac, BenchLab.OutsideMac, new EngineOptions { Seed = 0x5eed });
        var ring = new SpscRing<NatEvent>(1 << 16);
        engine.Table.Events = ring;
        var counts = new Dictionary<NatEventType, long>();
        var slot = new byte[FrameBatch.SlotSize];
        long now = BenchLab.StartMs;
        for (int i = 0; i < sessions; i++)
        {
            BenchLab.WriteIn2Out(slot, i);
            int len = BenchLab.FrameLength;
            var ctx = new PacketContext(engine.Counters, now);
            Verdict v = engine.Process(slot, ref len, Side.Inside, FrameFlags.None, ref ctx);
            if (v != Verdict.ToOutside)
            {
                throw new InvalidOperationException($"flow {i}: {v} ({DropReasons.Label(ctx.DropReason)})");
            }
            if ((i & 4095) == 4095)
            {
                Drain(ring, counts);
            }
        }
        Drain(ring, counts);
        // Every session idle past the longest timeout: all expire, and with them every block.
        now += 24L * 3600 * 1000;
        while (engine.Sweep(now, 4096) > 0)
        {
            Drain(ring, counts);
        }
        // Blocks rest in quarantine, then go: sweep past the reuse delay too.
        now += (settings.Cgnat.PortReuseDelaySeconds + 1) * 1000L;
        engine.Sweep(now, 4096);
        Drain(ring, counts);
        if (engine.Table.EventsDropped != 0)
        {
            throw new InvalidOperationException($"{engine.Table.EventsDropped} events dropped: ring too small");
        }
        return counts;
    }

    private static void Drain(SpscRing<NatEvent> ring, Dictionary<NatEventType, long> counts)
    {
        while (ring.TryDequeue(out NatEvent e))
        {
            counts[e.Type] = counts.GetValueOrDefault(e.Type) + 1;
        }
    }
}
