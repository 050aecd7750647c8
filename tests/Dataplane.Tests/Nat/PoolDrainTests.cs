using Natd.Dataplane.Io;
using Natd.Dataplane.Nat;
using Natd.Dataplane.Packets;
using Natd.Dataplane.Sessions;
using Natd.Tests.Support;
using static Natd.Tests.Support.CgnatKit;
using static Natd.Tests.Support.Frames;

namespace Natd.Tests.Nat;

/// <summary>
/// Taking a pool address out of service (<c>nat.drain</c>): no new pairing goes to it, a subscriber
/// paired there moves to a serving address at its next new flow (logged as pairing-move) while its
/// live sessions keep their ports, and the address empties as they end; port-less flows and a
/// subscriber at its block limit hold it there.
/// </summary>
public class PoolDrainTests
{
    private const string Out = EngineHarness.OutsideHost;
    private static readonly string Draining = Ipv4.Format(Pool4[1]);

    private static CgnatSettings WithDrain(CgnatSettings cgn, params uint[] addresses) => cgn with { Drain = new DrainingAddresses(addresses) };

    private static NatSettings WithPool(NatSettings s, int addresses) => s with { Pool = [.. Pool4.Take(addresses)] };

    /// <summary>The first host from 10 on whose first flow leaves from <see cref="Draining"/> (before the drain), and that flow's output.</summary>
    private static (int Host, byte[] Frame) HostOnDraining(EngineHarness h)
    {
        foreach (int host in (int[])[2, 3, .. Enumerable.Range(10, 50)])
        {
            byte[] o = h.Out(Udp(Host(host), 40000, Out, 53));
            if (Src(o) == Draining)
            {
                return (host, o);
            }
        }
        throw new InvalidOperationException("no subscriber was paired with " + Draining);
    }

    private static void ExpireUdp(EngineHarness h)
    {
        h.Now += (h.Engine.Settings.Timeouts.Udp + 1) * 1000L;
        while (h.Engine.Sweep(h.Now, 4096) > 0)
        {
        }
    }

    [Fact]
    public void No_new_subscriber_is_paired_with_a_draining_address()
    {
        var h = Harness(WithDrain(new CgnatSettings(), Pool4[1]), s => WithPool(s, 4), out _);
        Assert.NotNull(h.Engine.Subscribers); // a drain needs subscriber state, even with dynamic ports and no limits
        var perAddress = new Dictionary<string, int>();
        for (int host = 10; host < 70; host++)
        {
            string a = Src(h.Out(Udp(Host(host), 40000, Out, 53)));
            Assert.Equal(a, Src(h.Out(Tcp(Host(host), 41000, Out, 80, Natd.Dataplane.Packets.Tcp.Syn)))); // still paired (RFC 4787 REQ-2)
            perAddress[a] = perAddress.GetValueOrDefault(a) + 1;
        }
        Assert.False(perAddress.ContainsKey(Draining));
        Assert.Equal(3, perAddress.Count);
        Assert.All(perAddress.Values, n => Assert.Equal(20, n)); // the serving addresses fill evenly
    }

    [Fact]
    public void The_hash_that_pairs_without_subscriber_state_passes_over_a_draining_address()
    {
        var settings = WithPool(EngineHarness.LabSettings(), 4);
        var plain = new AddressPlan(settings, 42);
        var drained = new AddressPlan(settings with { Cgnat = WithDrain(new CgnatSettings(), Pool4[1]) }, 42);
        var seen = new HashSet<int>();
        for (int host = 1; host < 255; host++)
        {
            uint inside = Ipv4.Parse(Host(host));
            int i = drained.PoolIndexFor(inside);
            Assert.NotEqual(1, i);
            seen.Add(i);
            seen.Add(plain.PoolIndexFor(inside) + 10);
        }
        Assert.Equal(new HashSet<int> { 0, 2, 3, 10, 11, 12, 13 }, seen); // without the drain every address is used
    }

    [Fact]
    public void A_reload_that_drains_an_address_moves_its_subscribers_at_their_next_flow_and_keeps_their_sessions()
    {
        var h = Harness(new CgnatSettings { Limits = new SubscriberLimits(Sessions: 1000) }, s => WithPool(s, 2), out var events);
        int udp = SessionTable.ProtocolClass(IpProtocol.Udp);
        int reserved = h.Engine.Table.Ports.InUse(1, udp); // the IPsec ALG's NAT-T port
        var (host, first) = HostOnDraining(h);
        int oldPort = SrcPort(first);
        Drain(events);
        int heldThere = h.Engine.Table.Ports.InUse(1, udp);
        Assert.Equal(reserved + 1, heldThere);

        Assert.Null(h.Engine.UpdateSettings(h.Engine.Settings with { Cgnat = WithDrain(h.Engine.Settings.Cgnat, Pool4[1]) }));

        // The live session keeps its external address and port, both ways.
        byte[] again = h.Out(Udp(Host(host), 40000, Out, 53));
        Assert.Equal((Draining, oldPort), (Src(again), SrcPort(again)));
        byte[] reply = h.Out(EngineHarness.FromOutside(Udp(Out, 53, Draining, oldPort)), Side.Outside);
        Assert.Equal((Host(host), 40000), (Dst(reply), DstPort(reply)));
        Assert.Empty(Drain(events, NatEventType.PairingMoved)); // a packet of a live session moves nothing

        // Its next new flow leaves from the serving address, and so does every one after it.
        string serving = Ipv4.Format(Pool4[0]);
        Assert.Equal(serving, Src(h.Out(Udp(Host(host), 40001, Out, 53))));
        Assert.Equal(serving, Src(h.Out(Tcp(Host(host), 41000, Out, 80, Natd.Dataplane.Packets.Tcp.Syn))));
        var moved = Assert.Single(Drain(events, NatEventType.PairingMoved));
        Assert.Equal((Ipv4.Parse(Host(host)), Pool4[0]), (moved.InsideAddress, moved.ExternalAddress));
        Assert.Equal(Pool4[0], Subscriber(h, host).External);
        Assert.Equal(heldThere, h.Engine.Table.Ports.InUse(1, udp)); // no new port there; the old session's stays

        // New subscribers never get it; once the old session ends the address holds nothing.
        for (int other = 100; other < 110; other++)
        {
            Assert.Equal(serving, Src(h.Out(Udp(Host(other), 40000, Out, 53))));
        }
        ExpireUdp(h);
        h.Now += (h.Engine.Settings.Cgnat.PortReuseDelaySeconds + 1) * 1000L; // and its port's quarantine
        h.Engine.Sweep(h.Now, 4096);
        Assert.Equal(reserved, h.Engine.Table.Ports.InUse(1, udp));
    }

    [Fact]
    public void With_port_blocks_a_moved_subscriber_takes_a_block_on_a_serving_address_and_its_old_block_is_released()
    {
        var h = Harness(Pba(size: 64, perSubscriber: 2, delay: 60), s => WithPool(s, 2), out var events);
        var (host, first) = HostOnDraining(h);
        var oldBlock = Assert.Single(Drain(events, NatEventType.PortBlockAllocated), b => b.InsideAddress == Ipv4.Parse(Host(host)));
        Assert.Equal(Pool4[1], oldBlock.ExternalAddress);

        Assert.Null(h.Engine.UpdateSettings(h.Engine.Settings with { Cgnat = WithDrain(h.Engine.Settings.Cgnat, Pool4[1]) }));
        Assert.Empty(Drain(events, NatEventType.PortBlockAllocated)); // the reload logs no block again

        // The old block has room, yet new flows go to a new block on the serving address.
        var ports = new List<int>();
        for (int f = 1; f <= 5; f++)
        {
            byte[] o = h.Out(Udp(Host(host), 40000 + f, Out, 53));
            Assert.Equal(Ipv4.Format(Pool4[0]), Src(o));
            ports.Add(SrcPort(o));
        }
        var logged = Drain(events);
        Assert.Single(logged, e => e.Type == NatEventType.PairingMoved);
        var newBlock = Assert.Single(logged, e => e.Type == NatEventType.PortBlockAllocated);
        Assert.Equal(Pool4[0], newBlock.ExternalAddress);
        Assert.All(ports, p => Assert.InRange(p, newBlock.ExternalPort, newBlock.PortHigh));
        Assert.Equal(Draining, Src(h.Out(Udp(Host(host), 40000, Out, 53)))); // the live session stays
        Assert.Equal(2, Subscriber(h, host).Blocks.Count);

        // When its sessions end, the old block rests its quarantine and is released with the range it was logged with.
        ExpireUdp(h);
        h.Now += 61_000;
        h.Engine.Sweep(h.Now, 4096);
        var released = Drain(events, NatEventType.PortBlockReleased);
        Assert.Contains(released, r => r.ExternalAddress == Pool4[1] && r.ExternalPort == oldBlock.ExternalPort && r.PortHigh == oldBlock.PortHigh);
        Assert.Equal(0, h.Engine.Subscribers!.BlocksHeldOn(1));
        Assert.Equal(0, SubscriberOrNull(h, host)?.Ports ?? 0);
    }

    [Fact]
    public void Flushing_the_draining_address_ends_what_is_left_and_then_it_can_leave_the_pool()
    {
        var h = Harness(Pba(size: 64, perSubscriber: 2, delay: 60), s => WithPool(s, 2), out var events);
        var (host, first) = HostOnDraining(h);
        var cgn = WithDrain(h.Engine.Settings.Cgnat, Pool4[1]);
        Assert.Null(h.Engine.UpdateSettings(h.Engine.Settings with { Cgnat = cgn }));
        string serving = Ipv4.Format(Pool4[0]);
        byte[] moved = h.Out(Udp(Host(host), 40001, Out, 53));
        Assert.Equal(serving, Src(moved));
        var shrunk = h.Engine.Settings with { Pool = [Pool4[0]], Cgnat = cgn with { Drain = DrainingAddresses.None } };
        string refusal = h.Engine.UpdateSettings(shrunk)!;
        Assert.Contains("198.51.100.11 is no longer in the pool but natd holds 1 port block(s) on it", refusal, StringComparison.Ordinal);
        Assert.Contains("list it in nat.drain first", refusal, StringComparison.Ordinal);

        // The flush ends the session left on the draining address, and only that one.
        Assert.Equal(1, h.Engine.FlushExternal(Pool4[1]));
        Assert.Equal(0, h.Engine.FlushExternal(Pool4[1]));
        byte[] kept = h.Out(Udp(Host(host), 40001, Out, 53));
        Assert.Equal((serving, SrcPort(moved)), (Src(kept), SrcPort(kept)));
        byte[] again = h.Out(Udp(Host(host), 40000, Out, 53)); // the flushed flow starts again, on the serving address
        Assert.Equal(serving, Src(again));

        // Its block rests the reuse delay, is released, and the address leaves the pool.
        Drain(events);
        h.Now += 61_000;
        h.Engine.Sweep(h.Now, 4096);
        Assert.Contains(Drain(events, NatEventType.PortBlockReleased), r => r.ExternalAddress == Pool4[1]);
        Assert.Null(h.Engine.UpdateSettings(shrunk));
        Assert.Equal(serving, Src(h.Out(Udp(Host(host), 40002, Out, 53))));
    }

    [Fact]
    public void A_subscriber_at_its_block_limit_stays_and_uses_its_blocks_there()
    {
        var h = Harness(Pba(size: 64, perSubscriber: 1), s => WithPool(s, 2), out var events);
        var (host, first) = HostOnDraining(h);
        Assert.Null(h.Engine.UpdateSettings(h.Engine.Settings with { Cgnat = WithDrain(h.Engine.Settings.Cgnat, Pool4[1]) }));
        Drain(events);
        byte[] o = h.Out(Udp(Host(host), 40001, Out, 53));
        Assert.Equal(Draining, Src(o)); // no block elsewhere for it: refusing it would be worse than waiting
        Assert.Empty(Drain(events, NatEventType.PairingMoved));
        Assert.Equal(Pool4[1], Subscriber(h, host).External);
    }

    [Fact]
    public void Port_less_flows_hold_the_pairing_until_they_lapse()
    {
        var h = Harness(new CgnatSettings { Pairing = Pairing.Spill }, s => WithPool(s, 2), out var events);
        var (host, _) = HostOnDraining(h);
        uint inside = Ipv4.Parse(Host(host));
        Assert.Equal(1, h.Engine.Subscribers!.HoldPairing(inside, h.Now, 30_000)); // an ESP tunnel, say, on the address
        Assert.Null(h.Engine.UpdateSettings(h.Engine.Settings with { Cgnat = WithDrain(h.Engine.Settings.Cgnat, Pool4[1]) }));
        Drain(events);

        Assert.Equal(Draining, Src(h.Out(Udp(Host(host), 40001, Out, 53)))); // moving would change the tunnel's address
        Assert.Equal(1, h.Engine.Subscribers!.HoldPairing(inside, h.Now, 1_000));
        Assert.Empty(Drain(events, NatEventType.PairingMoved));

        h.Now += 31_000; // the hold lapsed: the next flow moves it
        Assert.Equal(Ipv4.Format(Pool4[0]), Src(h.Out(Udp(Host(host), 40002, Out, 53))));
        Assert.Single(Drain(events, NatEventType.PairingMoved));
        Assert.Equal(0, h.Engine.Subscribers!.HoldPairing(inside, h.Now, 1_000)); // new port-less flows follow it
    }

    [Fact]
    public void Spill_never_goes_to_a_draining_address()
    {
        // Two ports per address: the serving address fills, spill would take the draining one.
        var h = Harness(WithDrain(new CgnatSettings { Pairing = Pairing.Spill }, Pool4[1]),
            s => s with { Pool = [Pool4[0], Pool4[1], Pool4[2]], PortMin = 1024, PortMax = 1025 }, out var events);
        var sources = new List<string>();
        for (int f = 0; f < 4; f++)
        {
            sources.Add(Src(h.Out(Udp(Host(2), 40000 + f, Out, 53))));
        }
        Assert.DoesNotContain(Draining, sources);
        Assert.Equal(2, sources.Distinct().Count());
        Assert.Equal(Verdict.Drop, h.Run(Udp(Host(2), 40010, Out, 53), Side.Inside, out _));
    }

    [Fact]
    public void With_two_shards_a_tunnel_in_shard_0_holds_the_owners_pairing_until_it_lapses()
    {
        // As the daemon builds them: shard 1 owns the subscriber's TCP and UDP, shard 0 carries its GRE.
        var pairings = new PairingDirectory(2);
        static NatSettings Two(NatSettings s) => s with
        {
            Cgnat = Pba(size: 64, perSubscriber: 4),
            Pool = [Pool4[0], Pool4[1]],
            Rules = [new ForwardRule { Name = "all", Action = RuleAction.Masquerade }],
            DefaultPolicy = RuleAction.Deny,
        };
        var h0 = new EngineHarness(Two, seed: 7, options: new EngineOptions { Shard = 0, Shards = 2, Pairings = pairings });
        var h1 = new EngineHarness(Two, seed: 8, options: new EngineOptions { Shard = 1, Shards = 2, Pairings = pairings });
        var map = new ShardMap(h0.Engine.Settings, 2);
        byte[] Gre(string inside) => Wrap(inside, "203.0.113.9", IpProtocol.Gre, new byte[16], 64, null, null);
        string inside = Enumerable.Range(2, 60).Select(Host)
            .Where(a => map.OwnerOfInside(Ipv4.Parse(a)) == 1)
            .First(a => Src(h1.Out(Udp(a, 40000, Out, 53))) == Draining);
        Assert.Equal(Draining, Src(h0.Out(Gre(inside))));
        foreach (var h in new[] { h0, h1 })
        {
            Assert.Null(h.Engine.UpdateSettings(h.Engine.Settings with { Cgnat = WithDrain(h.Engine.Settings.Cgnat, Pool4[1]) }));
        }

        // Shard 1 does not move it while shard 0's tunnel holds the pairing: both keep one address.
        Assert.Equal(Draining, Src(h1.Out(Udp(inside, 40001, Out, 53))));
        Assert.Equal(Draining, Src(h0.Out(Gre(inside))));

        // The tunnel idles out in shard 0; shard 1's next flow moves the subscriber, and a new tunnel follows it.
        h0.Now += (h0.Engine.Settings.Timeouts.Udp + 1) * 1000L;
        while (h0.Engine.Sweep(h0.Now, 4096) > 0)
        {
        }
        Assert.Equal(Ipv4.Format(Pool4[0]), Src(h1.Out(Udp(inside, 40002, Out, 53))));
        Assert.Equal(Ipv4.Format(Pool4[0]), Src(h0.Out(Gre(inside))));
        Assert.Equal(Draining, Src(h1.Out(Udp(inside, 40000, Out, 53)))); // the first flow is still live
    }

    private static SubscriberInfo Subscriber(EngineHarness h, int host)
        => SubscriberOrNull(h, host) ?? throw new InvalidOperationException($"no subscriber {Host(host)}");

    private static SubscriberInfo? SubscriberOrNull(EngineHarness h, int host)
        => h.Engine.Subscribers!.List().SingleOrDefault(s => s.Subscriber == Ipv4.Parse(Host(host)));
}
