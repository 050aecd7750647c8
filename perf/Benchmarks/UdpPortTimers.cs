using System.Globalization;
using Natd.Benchmarks.Support;
using Natd.Dataplane.Io;
using Natd.Dataplane.Nat;
using Natd.Dataplane.Packets;
using Natd.Dataplane.Sessions;

namespace Natd.Benchmarks;

/// <summary>
/// External ports DNS holds (<c>--udp-port-timers</c>), with and without a timer of its own for
/// port 53 (<c>timeouts.udp-ports</c>, RFC 4787 REQ-5a), with and without the port quarantine
/// (<c>nat.port-reuse-delay</c>). Subscribers each ask a resolver once every 10 s, each query from a
/// fresh random source port as stub resolvers do, and get the answer 20 ms later; the engine is
/// swept every simulated second, as the sweeper does. After the run, every port of the external
/// address is counted that is mapped or resting in the quarantine. Next to it the table prints the
/// rule: queries a second x (the session's timeout + the reuse delay).
/// </summary>
public static class UdpPortTimers
{
    /// <summary>
    /// Runs the mode. Arguments: <c>[--subscribers N]</c> (default 1000), <c>[--minutes M]</c>
    /// simulated (default 15), <c>[--dns-timeout S]</c> (default 30).
    /// </summary>
    /// <returns>0 when every row ran, 2 on a bad argument, 1 when a query went unanswered.</returns>
    public static int Run(IReadOnlyList<string> args)
    {
        int subscribers = 1000, minutes = 15, dnsTimeout = 30;
        for (int i = 0; i < args.Count; i++)
        {
            string value = i + 1 < args.Count ? args[i + 1] : "";
            if (!int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out int n) || n < 1)
            {
                Console.Error.WriteLine($"--udp-port-timers: '{args[i]}' needs a positive whole number (--subscribers N, --minutes M, --dns-timeout S)");
                return 2;
            }
            switch (args[i])
            {
                case "--subscribers" when n <= 60_000:
                    subscribers = n;
                    break;
                case "--minutes":
                    minutes = n;
                    break;
                case "--dns-timeout":
                    dnsTimeout = n;
                    break;
                default:
                    Console.Error.WriteLine($"--udp-port-timers: unknown argument '{args[i]}' (--subscribers N up to 60000, --minutes M, --dns-timeout S)");
                    return 2;
            }
            i++;
        }
        const int QueryEverySeconds = 10;
        double perSecond = (double)subscribers / QueryEverySeconds;
        int udp = new Timeouts().Udp;
        Console.WriteLine($"## Ports DNS holds: {subscribers} subscribers, a query each every {QueryEverySeconds} s ({perSecond:F0}/s) from a fresh port, {minutes} simulated minutes, one external address");
        Console.WriteLine();
        Console.WriteLine("| port-reuse-delay | timeouts.udp-ports | queries answered | ports held at the end (mapped + quarantined) | rule: queries/s x (timeout + delay) | per subscriber |");
        Console.WriteLine("|---:|---|---:|---:|---:|---:|");
        foreach (int reuse in new[] { 120, 0 })
        {
            foreach (bool timer in new[] { false, true })
            {
                var (queries, answered, held) = Measure(subscribers, minutes, reuse, timer ? dnsTimeout : 0);
                if (answered != queries)
                {
                    Console.Error.WriteLine($"--udp-port-timers: {queries - answered} of {queries} queries went unanswered");
                    return 1;
                }
                double rule = perSecond * ((timer ? dnsTimeout : udp) + reuse);
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"| {reuse} s | {(timer ? $"{{ 53: {dnsTimeout} }}" : "none (udp: " + udp + ")")} | {answered:N0} | {held:N0} | {rule:N0} | {(double)held / subscribers:F1} |"));
            }
        }
        return 0;
    }

    private static (long Queries, long Answered, int Held) Measure(int subscribers, int minutes, int reuseSeconds, int dnsTimeout)
    {
        var s = BenchLab.Settings(1 << 20, poolSize: 1);
        s = s with
        {
            Timeouts = new Timeouts { UdpPorts = dnsTimeout > 0 ? UdpPortTimeouts.Create([new(53, dnsTimeout)], out _)! : UdpPortTimeouts.None },
            Cgnat = s.Cgnat with { PortReuseDelaySeconds = reuseSeconds },
        };
        var engine = new NatEngine(s, BenchLab.InsideMac, BenchLab.OutsideMac, new EngineOptions { Seed = 7 });
        var rnd = new Random(1);
        var frame = new byte[BenchLab.Stride];
        uint resolver = Ipv4.Parse("203.0.113.53");
        uint firstHost = Ipv4.ToHostOrder(Ipv4.Parse("10.16.0.0"));
        long now = BenchLab.StartMs, queries = 0, answered = 0;
        for (int second = 0; second < minutes * 60; second++)
        {
            for (int h = second % 10; h < subscribers; h += 10)
            {
                uint host = Ipv4.FromHostOrder(firstHost + (uint)h);
                BenchLab.WriteUdp(frame, BenchLab.InsideRouterMac, BenchLab.InsideMac, host, (ushort)rnd.Next(32768, 61000), resolver, 53);
                int len = BenchLab.FrameLength;
                var ctx = new PacketContext(engine.Counters, now);
                queries++;
                if (engine.Process(frame, ref len, Side.Inside, FrameFlags.None, ref ctx) != Verdict.ToOutside)
                {
                    continue;
                }
                var translated = new Ipv4Header(frame.AsSpan(EthernetHeader.Length));
                ushort external = (ushort)((frame[EthernetHeader.Length + Ipv4Header.MinLength] << 8) | frame[EthernetHeader.Length + Ipv4Header.MinLength + 1]);
                BenchLab.WriteUdp(frame, BenchLab.OutsideRouterMac, BenchLab.OutsideMac, resolver, 53, translated.Source, external);
                len = BenchLab.FrameLength;
                ctx = new PacketContext(engine.Counters, now + 20);
                if (engine.Process(frame, ref len, Side.Outside, FrameFlags.None, ref ctx) == Verdict.ToInside)
                {
                    answered++;
                }
            }
            now += 1000;
            engine.Sweep(now, 1 << 20);
        }
        int held = 0;
        for (int p = 1; p <= ushort.MaxValue; p++)
        {
            if (engine.Table.Ports.IsUsed(0, 1, p) || engine.Table.Ports.IsQuarantined(0, 1, p))
            {
                held++;
            }
        }
        return (queries, answered, held);
    }
}
