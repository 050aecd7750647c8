using Natd.Dataplane.Rings;
using Natd.Dataplane.Nat;
using Natd.Dataplane.Packets;
using Natd.Dataplane.Sessions;

namespace Natd.Tests.Support;

/// <summary>Shared pieces of the carrier-grade NAT engine tests: a harness with an event queue, port-block settings, inside hosts and event draining.</summary>
internal static class CgnatKit
{
    /// <summary>Four pool addresses: the lab's external address and three more.</summary>
    public static readonly uint[] Pool4 = [.. new[] { "198.51.100.1", "198.51.100.11", "198.51.100.12", "198.51.100.13" }.Select(Ipv4.Parse)];

    /// <summary>An engine harness with <paramref name="cgn"/> (and <paramref name="more"/> applied after), its NAT events queued in <paramref name="events"/> (4096).</summary>
    public static EngineHarness Harness(CgnatSettings cgn, Func<NatSettings, NatSettings>? more, out SpscRing<NatEvent> events)
    {
        var h = new EngineHarness(s => (more ?? (x => x))(s with { Cgnat = cgn }));
        events = new SpscRing<NatEvent>(4096);
        h.Engine.Table.Events = events;
        return h;
    }

    /// <summary>Takes every queued event, keeping those of type <paramref name="only"/> (all when null).</summary>
    public static List<NatEvent> Drain(SpscRing<NatEvent> ring, NatEventType? only = null)
    {
        var list = new List<NatEvent>();
        while (ring.TryDequeue(out var e))
        {
            if (only is null || e.Type == only)
            {
                list.Add(e);
            }
        }
        return list;
    }

    /// <summary>Inside host number <paramref name="i"/> of the lab's 10.0.0.0/24.</summary>
    public static string Host(int i) => $"10.0.0.{i}";

    /// <summary>Port-block settings: blocks of <paramref name="size"/> ports, <paramref name="perSubscriber"/> a subscriber, the reuse delay and interim period in seconds.</summary>
    public static CgnatSettings Pba(int size = 64, int perSubscriber = 2, int delay = 120, int interim = 0, Pairing pairing = Pairing.Strict)
        => new() { Allocation = PortAllocation.PortBlock, PortBlock = new PortBlockSettings(size, perSubscriber, interim), PortReuseDelaySeconds = delay, Pairing = pairing };
}
