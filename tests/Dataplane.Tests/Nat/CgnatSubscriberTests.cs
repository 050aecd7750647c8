using Natd.Dataplane.Rings;
using Natd.Dataplane.Io;
using Natd.Dataplane.Nat;
using Natd.Dataplane.Packets;
using Natd.Dataplane.Sessions;
using Natd.Tests.Support;
using static Natd.Tests.Support.CgnatKit;
using static Natd.Tests.Support.Frames;

namespace Natd.Tests.Nat;

/// <summary>
/// Carrier-grade NAT on the engine (RFC 6888): port-block allocation, paired pooling, per-subscriber
/// limits and the port quarantine, driven by the engine clock (<see cref="EngineHarness.Now"/>).
/// </summary>
public class CgnatSubscriberTests
{
    private const string Out = EngineHarness.OutsideHost;

    [Fact]
    public void Port_block_mappings_draw_from_the_subscribers_block_and_log_it_once()
    {
        var h = Harness(Pba(size: 64), null, out var events);
        var ports = Enumerable.Range(0, 20).Select(i => SrcPort(h.Out(Udp(Host(2), 40000 + i, Out, 53)))).ToList();
        h.Out(Tcp(Host(2), 41000, Out, 80, Natd.Dataplane.Packets.Tcp.Syn)); // TCP shares the block's port numbers
        var blocks = Drain(events, NatEventType.PortBlockAllocated);
        var b = Assert.Single(blocks);
        Assert.Equal(Ipv4.Parse(Host(2)), b.InsideAddress);
        Assert.Equal(Ipv4.Parse(EngineHarness.External), b.ExternalAddress);
        Assert.Equal(b.ExternalPort + 63, b.PortHigh);
        Assert.Equal(1, b.PortStep);
        Assert.All(ports, p => Assert.InRange(p, b.ExternalPort, b.PortHigh));
        Assert.Equal(20, ports.Distinct().Count());
        Assert.NotEqual(Enumerable.Range(b.ExternalPort, 20), ports); // random inside the block (RFC 6056), not sequential
        var sub = Assert.Single(h.Engine.Subscribers!.List());
        Assert.Equal(21, sub.Ports);
        Assert.Equal(21, sub.Sessions);
    }

    [Fact]
    public void A_full_block_takes_the_next_and_the_block_limit_refuses_with_PairedAddressFull()
    {
        var h = Harness(Pba(size: 16, perSubscriber: 2), null, out var events);
        for (int i = 0; i < 32; i++)
        {
            h.Out(Udp(Host(2), 40000 + i, Out, 53));
        }
        Assert.Equal(2, Drain(events, NatEventType.PortBlockAllocated).Count);
        Assert.Equal(Verdict.Drop, h.Run(Udp(Host(2), 45000, Out, 53), Side.Inside, out _));
        Assert.Equal(DropReason.PairedAddressFull, h.LastDrop);
        h.Run(Udp(Host(2), 45001, Out, 53), Side.Inside, out _);
        Assert.Equal(2, h.Drops(DropReason.PairedAddressFull));
        var limit = Assert.Single(Drain(events, NatEventType.SubscriberLimit)); // rate limited per subscriber
        Assert.Equal((byte)NatLimitKind.Blocks, limit.Detail);
        h.Out(Udp(Host(3), 40000, Out, 53)); // another subscriber is unaffected
    }

    [Fact]
    public void Pairing_holds_and_subscribers_fill_the_pool_evenly()
    {
        var h = Harness(Pba(size: 64), s => s with { Pool = Pool4 }, out _);
        var addressOf = new Dictionary<int, HashSet<string>>();
        for (int host = 10; host < 50; host++)
        {
            addressOf[host] = [];
            for (int f = 0; f < 3; f++)
            {
                addressOf[host].Add(Src(h.Out(Udp(Host(host), 40000 + f, Out, 53))));
                addressOf[host].Add(Src(h.Out(Icmp(Host(host), Out, 8, 0, 100 + f, 1))));
            }
        }
        Assert.All(addressOf.Values, a => Assert.Single(a)); // RFC 4787 REQ-2: one external address per subscriber
        var perAddress = addressOf.Values.GroupBy(a => a.Single()).Select(g => g.Count()).ToList();
        Assert.Equal(4, perAddress.Count);
        Assert.All(perAddress, n => Assert.Equal(10, n));
    }

    [Fact]
    public void Dynamic_allocation_with_subscriber_tracking_pairs_a_subscriber_prefix_on_one_address()
    {
        var cgn = new CgnatSettings { SubscriberPrefix = 30, Limits = new SubscriberLimits(Sessions: 1000) };
        var h = Harness(cgn, s => s with { Pool = Pool4 }, out _);
        for (int host = 8; host < 40; host += 4)
        {
            var used = Enumerable.Range(host, 4).SelectMany(a => Enumerable.Range(0, 4).Select(f => Src(h.Out(Udp(Host(a), 40000 + f, Out, 53))))).Distinct();
            Assert.Single(used);
        }
    }

    [Theory]
    [InlineData(Pairing.Strict)]
    [InlineData(Pairing.Spill)]
    public void A_full_paired_address_refuses_strictly_or_spills_and_says_so(Pairing pairing)
    {
        // Two addresses of two 16-port blocks each (ports 1024-1055).
        var h = Harness(Pba(size: 16, perSubscriber: 8, pairing: pairing),
            s => s with { Pool = [Pool4[0], Pool4[1]], PortMin = 1024, PortMax = 1055 }, out var events);
        var first = h.Out(Udp(Host(2), 40000, Out, 53));
        for (int i = 1; i < 32; i++)
        {
            Assert.Equal(Src(first), Src(h.Out(Udp(Host(2), 40000 + i, Out, 53))));
        }
        Verdict v = h.Run(Udp(Host(2), 45000, Out, 53), Side.Inside, out var spilled);
        if (pairing == Pairing.Strict)
        {
            Assert.Equal(Verdict.Drop, v);
            Assert.Equal(DropReason.PairedAddressFull, h.LastDrop);
            Assert.Single(Drain(events, NatEventType.PortExhausted));
        }
        else
        {
            Assert.Equal(Verdict.ToOutside, v);
            Assert.NotEqual(Src(first), Src(spilled));
            var spill = Assert.Single(Drain(events, NatEventType.PairingSpill));
            Assert.Equal(Ipv4.Parse(Src(spilled)), spill.ExternalAddress);
        }
    }

    [Fact]
    public void Port_less_flows_leave_from_the_subscribers_paired_address()
    {
        // Four addresses; the least-loaded pairing (not the address hash) decides, and GRE follows it.
        var h = Harness(Pba(size: 64), s => s with
        {
            Pool = Pool4,
            Rules = [new ForwardRule { Name = "gre", Action = RuleAction.Masquerade, Protocol = 47 }, new ForwardRule { Name = "all", Action = RuleAction.Masquerade }],
            DefaultPolicy = RuleAction.Deny,
        }, out _);
        for (int host = 10; host < 18; host++)
        {
            string udp = Src(h.Out(Udp(Host(host), 40000, Out, 53)));
            string gre = Src(h.Out(Wrap(Host(host), $"203.0.113.{host}", 47, new byte[16], 64, null, null)));
            Assert.Equal(udp, gre);
        }
    }

    [Fact]
    public void The_session_limit_refuses_new_flows_keeps_the_old_ones_and_spares_other_subscribers()
    {
        var h = Harness(new CgnatSettings { Limits = new SubscriberLimits(Sessions: 3) }, null, out var events);
        for (int i = 0; i < 3; i++)
        {
            h.Out(Udp(Host(2), 40000 + i, Out, 53));
        }
        // The first refusal is answered with ICMP administratively prohibited (type 3 code 13).
        Assert.Equal(Verdict.ToInside, h.Run(Udp(Host(2), 41000, Out, 53), Side.Inside, out var icmp));
        Assert.Equal((Natd.Dataplane.Packets.Icmp.DestinationUnreachable, 13), (icmp[L4Offset(icmp)], icmp[L4Offset(icmp) + 1]));
        Assert.Equal(Host(2), Dst(icmp));
        for (int i = 0; i < 5; i++)
        {
            Assert.NotEqual(Verdict.ToOutside, h.Run(Udp(Host(2), 41000 + i, Out, 53), Side.Inside, out _));
            Assert.Equal(DropReason.SubscriberSessionLimit, h.LastDrop);
        }
        Assert.Equal(6, h.Drops(DropReason.SubscriberSessionLimit));
        h.Out(Udp(Host(2), 40000, Out, 53)); // never evicted
        h.Out(Udp(Host(3), 40000, Out, 53));
        var ev = Assert.Single(Drain(events, NatEventType.SubscriberLimit)); // one per subscriber per 10 s
        Assert.Equal((byte)NatLimitKind.Sessions, ev.Detail);
        Assert.Equal(Ipv4.Parse(Host(2)), ev.InsideAddress);
        h.Now += SubscriberPorts.LimitEventIntervalMs;
        h.Run(Udp(Host(2), 42000, Out, 53), Side.Inside, out _);
        Assert.Single(Drain(events, NatEventType.SubscriberLimit));
        Assert.Equal(7, h.Engine.Subscribers!.List().Single(s => s.Subscriber == Ipv4.Parse(Host(2))).SessionHits);
    }

    [Fact]
    public void The_port_limit_counts_mappings_of_every_protocol()
    {
        var h = Harness(new CgnatSettings { Limits = new SubscriberLimits(Ports: 2) }, null, out _);
        h.Out(Udp(Host(2), 40000, Out, 53));
        h.Out(Icmp(Host(2), Out, 8, 0, 7, 1));
        h.Out(Udp(Host(2), 40000, "198.51.100.3", 53)); // same mapping (endpoint-independent): no new port
        Assert.NotEqual(Verdict.ToOutside, h.Run(Tcp(Host(2), 40001, Out, 80, Natd.Dataplane.Packets.Tcp.Syn), Side.Inside, out _));
        Assert.Equal(DropReason.SubscriberPortLimit, h.LastDrop);
    }

    [Fact]
    public void The_rate_limit_is_a_one_second_token_bucket_on_the_engine_clock()
    {
        var h = Harness(new CgnatSettings { Limits = new SubscriberLimits(NewSessionsPerSecond: 5) }, null, out var events);
        for (int i = 0; i < 5; i++)
        {
            h.Out(Udp(Host(2), 40000 + i, Out, 53));
        }
        Assert.NotEqual(Verdict.ToOutside, h.Run(Udp(Host(2), 40005, Out, 53), Side.Inside, out _));
        Assert.Equal(DropReason.SubscriberRateLimit, h.LastDrop);
        h.Out(Udp(Host(2), 40000, Out, 53)); // an existing session is no new session
        h.Now += 1_000;
        h.Out(Udp(Host(2), 40005, Out, 53));
        Assert.Equal((byte)NatLimitKind.Rate, Assert.Single(Drain(events, NatEventType.SubscriberLimit)).Detail);
    }

    [Fact]
    public void A_released_port_rests_for_the_reuse_delay_before_anyone_gets_it()
    {
        // One port: a new flow can only get it back.
        var h = new EngineHarness(s => s with { PortMin = 6000, PortMax = 6000, Cgnat = new CgnatSettings { PortReuseDelaySeconds = 120 } });
        Assert.Equal(6000, SrcPort(h.Out(Udp(Host(2), 40000, Out, 53))));
        h.Now += 301_000;
        Assert.Equal(1, h.Engine.Sweep(h.Now, 10));
        long released = h.Now;
        Assert.Equal(Verdict.Drop, h.Run(Udp(Host(3), 40000, Out, 53), Side.Inside, out _));
        Assert.Equal(DropReason.PortExhausted, h.LastDrop);
        // A reply to the closed mapping is unsolicited, not a partial match.
        Assert.Equal(Verdict.Drop, h.Run(EngineHarness.FromOutside(Udp(Out, 53, EngineHarness.External, 6000)), Side.Outside, out _));
        Assert.Equal(DropReason.NoSession, h.LastDrop);
        h.Now = released + 119_999;
        h.Engine.Sweep(h.Now, 10);
        Assert.Equal(Verdict.Drop, h.Run(Udp(Host(3), 40000, Out, 53), Side.Inside, out _));
        h.Now = released + 120_000;
        h.Engine.Sweep(h.Now, 10);
        Assert.Equal(6000, SrcPort(h.Out(Udp(Host(3), 40000, Out, 53))));
    }

    [Fact]
    public void An_empty_block_rests_for_the_reuse_delay_then_is_released_and_logged()
    {
        // One block of 16 ports on one address.
        var h = Harness(Pba(size: 16, perSubscriber: 1, delay: 120), s => s with { PortMin = 1024, PortMax = 1039 }, out var events);
        h.Out(Udp(Host(2), 40000, Out, 53));
        h.Now += 301_000;
        h.Engine.Sweep(h.Now, 10);
        long emptied = h.Now;
        Assert.Equal(Verdict.Drop, h.Run(Udp(Host(3), 40000, Out, 53), Side.Inside, out _));
        Assert.Equal(DropReason.PortExhausted, h.LastDrop); // one address: the pool is exhausted
        Assert.Empty(Drain(events, NatEventType.PortBlockReleased));
        h.Now = emptied + 120_000;
        h.Engine.Sweep(h.Now, 10);
        var rel = Assert.Single(Drain(events, NatEventType.PortBlockReleased));
        Assert.Equal(Ipv4.Parse(Host(2)), rel.InsideAddress);
        Assert.Equal((1024, 1039), (rel.ExternalPort, rel.PortHigh));
        Assert.InRange(SrcPort(h.Out(Udp(Host(3), 40000, Out, 53))), 1024, 1039);
        Assert.Equal(Ipv4.Parse(Host(3)), Assert.Single(Drain(events, NatEventType.PortBlockAllocated)).InsideAddress);
        Assert.DoesNotContain(h.Engine.Subscribers!.List(), s => s.Subscriber == Ipv4.Parse(Host(2))); // it holds nothing: forgotten
    }

    [Fact]
    public void A_subscriber_back_within_the_delay_keeps_its_block()
    {
        var h = Harness(Pba(size: 16, perSubscriber: 1, delay: 120), null, out var events);
        int first = SrcPort(h.Out(Udp(Host(2), 40000, Out, 53)));
        h.Now += 301_000;
        h.Engine.Sweep(h.Now, 10);
        h.Now += 60_000;
        int again = SrcPort(h.Out(Udp(Host(2), 40001, Out, 53)));
        h.Now += 200_000;
        h.Engine.Sweep(h.Now, 10);
        Assert.Single(Drain(events, NatEventType.PortBlockAllocated));
        Assert.Empty(Drain(events, NatEventType.PortBlockReleased));
        Assert.Equal(first / 16, again / 16);
    }

    [Fact]
    public void Restored_sessions_bring_back_their_subscribers_block_pairing_and_counts()
    {
        var h = Harness(Pba(size: 64), s => s with { Pool = Pool4 }, out var events);
        var ports = Enumerable.Range(0, 5).Select(i => SrcPort(h.Out(Udp(Host(2), 40000 + i, Out, 53)))).ToList();
        var block = Assert.Single(Drain(events, NatEventType.PortBlockAllocated));
        var saved = new List<SessionRecord>();
        h.Engine.ExportSessions(saved, h.Now);

        var restored = Harness(Pba(size: 64), s => s with { Pool = Pool4 }, out _);
        Assert.Equal(5, restored.Engine.ImportSessions(saved, restored.Now));
        var sub = Assert.Single(restored.Engine.Subscribers!.List());
        Assert.Equal((5, 5), (sub.Ports, sub.Sessions));
        Assert.Equal(block.ExternalAddress, sub.External);
        Assert.Equal([(block.ExternalPort, (int)block.PortHigh)], sub.Blocks);
        // A new flow goes on in the same block and address.
        var o = restored.Out(Udp(Host(2), 41000, Out, 53));
        Assert.Equal(block.ExternalAddress, Ipv4.Parse(Src(o)));
        Assert.InRange(SrcPort(o), block.ExternalPort, block.PortHigh);
        Assert.DoesNotContain(SrcPort(o), ports);
    }

    [Fact]
    public void A_block_restored_with_its_sessions_is_not_logged_again_and_its_release_is()
    {
        // The restart snapshot keeps the holding the first run logged: no second allocation record.
        var h = Harness(Pba(size: 64, delay: 0), null, out var events);
        h.Out(Udp(Host(2), 40000, Out, 53));
        var block = Assert.Single(Drain(events, NatEventType.PortBlockAllocated));
        var saved = new List<SessionRecord>();
        h.Engine.ExportSessions(saved, h.Now);

        var restored = Harness(Pba(size: 64, delay: 0), null, out var after);
        Assert.Equal(1, restored.Engine.ImportSessions(saved, restored.Now));
        Assert.Empty(Drain(after, NatEventType.PortBlockAllocated));
        restored.Now += 400_000; // past the UDP timeout: the session ends, the block goes
        restored.Engine.Sweep(restored.Now, 1000);
        restored.Engine.Sweep(restored.Now + 1, 1000);
        var release = Assert.Single(Drain(after, NatEventType.PortBlockReleased));
        Assert.Equal((block.InsideAddress, block.ExternalAddress, block.ExternalPort, block.PortHigh), (release.InsideAddress, release.ExternalAddress, release.ExternalPort, release.PortHigh));
    }

    [Fact]
    public void Held_blocks_are_logged_again_every_interim_period()
    {
        var h = Harness(Pba(size: 16, interim: 60), null, out var events);
        h.Out(Tcp(Host(2), 40000, Out, 80, Natd.Dataplane.Packets.Tcp.Syn));
        var alloc = Assert.Single(Drain(events, NatEventType.PortBlockAllocated));
        h.Now += 59_999;
        h.Engine.Sweep(h.Now, 10);
        Assert.Empty(Drain(events, NatEventType.PortBlockInterim));
        h.Now += 1;
        h.Engine.Sweep(h.Now, 10);
        var interim = Assert.Single(Drain(events, NatEventType.PortBlockInterim));
        Assert.Equal((alloc.ExternalPort, alloc.PortHigh, alloc.InsideAddress), (interim.ExternalPort, interim.PortHigh, interim.InsideAddress));
        h.Now += 60_000;
        h.Engine.Sweep(h.Now, 10);
        Assert.Single(Drain(events, NatEventType.PortBlockInterim));
    }

    [Theory]
    [InlineData(2)]
    [InlineData(3)]
    public void With_several_shards_a_block_is_every_shard_th_port_and_stays_in_its_shard(int shards)
    {
        var s = EngineHarness.LabSettings() with { Cgnat = Pba(size: 32) };
        for (int k = 0; k < shards; k++)
        {
            var engine = new NatEngine(s, MacAddress.Read(GatewayInsideMac), MacAddress.Read(GatewayOutsideMac), new EngineOptions { Seed = 5, Shard = k, Shards = shards });
            var ring = new SpscRing<NatEvent>(64);
            engine.Table.Events = ring;
            int port = engine.Table.AllocatePort(Ipv4.Parse(Host(2)), 1, false, 0, out _);
            Assert.True(ring.TryDequeue(out var b));
            Assert.Equal(NatEventType.PortBlockAllocated, b.Type);
            Assert.Equal(shards, b.PortStep);
            Assert.Equal(b.ExternalPort + 31 * shards, b.PortHigh);
            Assert.Equal(k, ShardMap.OwnerOfPort(b.ExternalPort, shards));
            Assert.Equal(k, ShardMap.OwnerOfPort(port, shards));
            Assert.Equal(0, (port - b.ExternalPort) % shards);
        }
    }

    /// <summary>
    /// A block whose ports of the flow's protocol are all reserved (here a UDP forward over most of
    /// the range; a trigger's open range does the same) is passed over for a block with room, so no
    /// new flow is refused while such blocks are free. Before, a subscriber whose first block landed
    /// there lost the flow (and held the useless block through the quarantine).
    /// </summary>
    [Fact]
    public void A_new_block_has_a_free_port_of_the_flows_protocol()
    {
        var h = Harness(Pba(size: 64), s => s with
        {
            Forwards =
            [
                new PortForward
                {
                    Protocol = IpProtocol.Udp, ExternalAddress = Ipv4.Parse(EngineHarness.External), ExternalPorts = new PortRange(1024, 60000),
                    Backends = [new(Ipv4.Parse("10.0.0.3"), 0)],
                },
            ],
        }, out var events);
        for (int i = 10; i < 50; i++)
        {
            Assert.InRange(SrcPort(h.Out(Udp($"10.0.0.{i}", 40000, Out, 53))), 60001, 65535);
        }
        var blocks = Drain(events, NatEventType.PortBlockAllocated);
        Assert.Equal(40, blocks.Count);
        Assert.All(blocks, b => Assert.True(b.PortHigh > 60000, $"block {b.ExternalPort}-{b.PortHigh} has no UDP port free"));
        Assert.Equal(0, h.Drops(DropReason.PairedAddressFull) + h.Drops(DropReason.PortExhausted));
        // The blocks passed over stay free for TCP.
        Assert.InRange(SrcPort(h.Out(Tcp("10.0.0.60", 40000, Out, 80, Natd.Dataplane.Packets.Tcp.Syn))), 1024, 65535);
    }

    [Fact]
    public void An_alg_reservation_comes_from_the_subscribers_block()
    {
        var h = Harness(Pba(size: 64), null, out var events);
        var table = h.Engine.Table;
        int ctl = SrcPort(h.Out(Tcp(Host(2), 40000, Out, 21, Natd.Dataplane.Packets.Tcp.Syn)));
        var b = Assert.Single(Drain(events, NatEventType.PortBlockAllocated));
        int port = table.AllocatePort(Ipv4.Parse(Host(2)), 0, false, 0, out int pool);
        Assert.InRange(port, b.ExternalPort, b.PortHigh);
        Assert.InRange(ctl, b.ExternalPort, b.PortHigh);
        table.FreeUnusedPort(Ipv4.Parse(Host(2)), pool, 0, port);
        Assert.False(table.Ports.IsUsed(pool, 0, port));
        Assert.Equal(1, h.Engine.Subscribers!.List().Single().Ports);
    }

    [Fact]
    public void An_ftp_port_commands_reserved_port_comes_from_the_block()
    {
        var h = new EngineHarness(s => s with { Cgnat = Pba(size: 64) }) { CompleteAlgFrames = false };
        var events = new SpscRing<NatEvent>(64);
        h.Engine.Table.Events = events;
        Assert.NotEqual(Verdict.Drop, h.Run(Tcp(Host(2), 40000, Out, 21, Natd.Dataplane.Packets.Tcp.Syn), Side.Inside, out _)); // to the FTP helper
        var b = Assert.Single(Drain(events, NatEventType.PortBlockAllocated));
        var data = Tcp(Host(2), 40000, Out, 21, Natd.Dataplane.Packets.Tcp.Ack, seq: 1001, ack: 1, payload: "PORT 10,0,0,2,156,65\r\n"u8.ToArray());
        Assert.Equal(Verdict.ToHelper, h.Run(data, Side.Inside, out _));
        Assert.InRange(h.PendingAlg.ReservedPort, b.ExternalPort, b.PortHigh);
        Assert.Equal(2, h.Engine.Subscribers!.List().Single().Ports); // the control mapping and the reservation
    }

    /// <summary>
    /// Property: for random block sizes, shard counts and churn, the blocks held at any moment (all
    /// shards, all subscribers) never share a port, and every port of a block is its shard's.
    /// </summary>
    [Fact]
    public void Blocks_of_different_shards_and_subscribers_never_overlap()
    {
        var rnd = new Random(20261205);
        for (int round = 0; round < 40; round++)
        {
            int shards = rnd.Next(1, 9);
            int size = rnd.Next(16, 2048);
            int lo = rnd.Next(1024, 20000), hi = rnd.Next(lo + size * shards, 65536);
            const int addresses = 3;
            var perShard = Enumerable.Range(0, shards).Select(k => new PortBlocks(addresses, lo, hi, k, shards, size)).ToArray();
            var held = Enumerable.Range(0, shards).Select(_ => new List<int>()).ToArray();
            for (int step = 0; step < 300; step++)
            {
                int k = rnd.Next(shards);
                if (held[k].Count > 0 && rnd.Next(3) == 0)
                {
                    int i = rnd.Next(held[k].Count);
                    perShard[k].Return(held[k][i]);
                    held[k].RemoveAt(i);
                    continue;
                }
                // Any block of any address, as the allocator's scan from a random start tries them.
                PortBlocks blocks = perShard[k];
                int b = rnd.Next(addresses) * blocks.PerAddress + rnd.Next(blocks.PerAddress);
                bool free = !held[k].Contains(b);
                Assert.Equal(free, blocks.TryTake(b, (uint)rnd.Next(1, 50)));
                if (free)
                {
                    held[k].Add(b);
                }
                var seen = new HashSet<(int Address, int Port)>();
                for (int s = 0; s < shards; s++)
                {
                    foreach (int blk in held[s])
                    {
                        PortBlocks pb = perShard[s];
                        for (int j = 0; j < size; j++)
                        {
                            int port = pb.PortAt(blk, j);
                            Assert.InRange(port, lo, hi);
                            Assert.Equal(s, ShardMap.OwnerOfPort(port, shards));
                            Assert.Equal(blk, pb.BlockOf(pb.AddressOf(blk), port));
                            Assert.True(seen.Add((pb.AddressOf(blk), port)), $"port {port} in two blocks ({shards} shards, size {size})");
                        }
                    }
                }
            }
        }
    }
}

/// <summary>Paired pooling fills the pool evenly (issue: the distribution across addresses for 10,000 subscribers).</summary>
public class CgnatDistributionTests(Xunit.Abstractions.ITestOutputHelper output)
{
    private const int Subscribers = 10_000, Addresses = 16;

    private static int[] Distribution(CgnatSettings cgn)
    {
        var pool = Enumerable.Range(1, Addresses).Select(i => Ipv4.Parse($"198.51.100.{100 + i}")).ToArray();
        var s = EngineHarness.LabSettings() with { Pool = pool, MaxSessions = 2 * Subscribers, Cgnat = cgn };
        var engine = new NatEngine(s, default, default, new EngineOptions { Seed = 7 });
        var perAddress = new int[Addresses];
        for (int i = 0; i < Subscribers; i++)
        {
            uint inside = Ipv4.FromHostOrder(0x0A40_0000u + (uint)i); // 10.64.0.0 upwards
            int port = engine.Subscribers!.Allocate(inside, 1, false, engine.Table.NowMs, out int poolIndex, out var reason);
            Assert.True(port > 0, $"subscriber {i}: {reason}");
            perAddress[poolIndex]++;
        }
        return perAddress;
    }

    [Fact]
    public void Ten_thousand_subscribers_spread_evenly_over_sixteen_addresses()
    {
        var pba = Distribution(new CgnatSettings { Allocation = PortAllocation.PortBlock, PortBlock = new PortBlockSettings(Size: 64) });
        var tracked = Distribution(new CgnatSettings { Limits = new SubscriberLimits(Sessions: 100) });
        output.WriteLine($"port-block, least-loaded: {string.Join(' ', pba)} (min {pba.Min()}, max {pba.Max()})");
        output.WriteLine($"dynamic with subscriber state, least-loaded: {string.Join(' ', tracked)} (min {tracked.Min()}, max {tracked.Max()})");
        Assert.Equal(Subscribers, pba.Sum());
        Assert.True(pba.Max() - pba.Min() <= 1, string.Join(' ', pba));
        Assert.True(tracked.Max() - tracked.Min() <= 1, string.Join(' ', tracked));
    }
}
