using Natd.Dataplane.Nat;
using Natd.Dataplane.Packets;
using Natd.Tests.Support;
using static Natd.Tests.Support.Frames;
using Natd.Dataplane.Sessions;
using Natd.Dataplane.Rings;

namespace Natd.Tests.Nat;

/// <summary>RFC 4787 / 5382 / 6056 / 6888 behaviours of mapping, filtering, ports and expiry.</summary>
public class BehaviourTests
{
    private const string In = EngineHarness.InsideHost, Out = EngineHarness.OutsideHost, Ext = EngineHarness.External;

    [Fact]
    public void Rfc4787_req1_endpoint_independent_mapping_reuses_external_port()
    {
        var h = new EngineHarness();
        int a = SrcPort(h.Out(Udp(In, 40000, Out, 53)));
        int b = SrcPort(h.Out(Udp(In, 40000, "198.51.100.3", 5353)));
        Assert.Equal(a, b);
        Assert.Equal(2, h.Engine.Table.Count);
        Assert.Equal(1, h.Engine.Table.MappingCount);
    }

    [Fact]
    public void Address_and_port_dependent_mapping_uses_new_port_per_remote()
    {
        var h = new EngineHarness(s => s with { Mapping = MappingBehaviour.AddressAndPortDependent });
        int a = SrcPort(h.Out(Udp(In, 40000, Out, 53)));
        int b = SrcPort(h.Out(Udp(In, 40000, "198.51.100.3", 5353)));
        Assert.NotEqual(a, b);
        Assert.Equal(2, h.Engine.Table.MappingCount);
    }

    [Fact]
    public void Cve_2000_0289_unsolicited_datagram_from_third_party_is_dropped_and_session_unchanged()
    {
        var h = new EngineHarness();
        int ext = SrcPort(h.Out(Udp(In, 40000, Out, 9999)));
        // Same port, other address; and same address, other port: both only partial matches.
        var third = EngineHarness.FromOutside(Udp("198.51.100.3", 9999, Ext, ext));
        Assert.Equal(Verdict.Drop, h.Run(third, Side.Outside, out _));
        Assert.Equal(DropReason.Filtered, h.LastDrop);
        Assert.Equal(Verdict.Drop, h.Run(EngineHarness.FromOutside(Udp(Out, 1234, Ext, ext)), Side.Outside, out _));
        var s = h.Engine.CollectSessionsList(h.Now).Single();
        Assert.Equal(Ipv4.Parse(Out), s.RemoteAddress);
        Assert.Equal(9999, s.RemotePort);
        // The real remote still gets through.
        h.Out(EngineHarness.FromOutside(Udp(Out, 9999, Ext, ext)), Side.Outside);
    }

    [Fact]
    public void Address_dependent_filtering_admits_other_port_of_same_remote_only()
    {
        var h = new EngineHarness(s => s with { Filtering = FilteringBehaviour.AddressDependent });
        int ext = SrcPort(h.Out(Udp(In, 40000, Out, 9999)));
        var o = h.Out(EngineHarness.FromOutside(Udp(Out, 1234, Ext, ext)), Side.Outside);
        Assert.Equal(40000, DstPort(o));
        Assert.Equal(Verdict.Drop, h.Run(EngineHarness.FromOutside(Udp("198.51.100.3", 9999, Ext, ext)), Side.Outside, out _));
        Assert.Equal(DropReason.Filtered, h.LastDrop);
        Assert.Equal(2, h.Engine.Table.Count);
    }

    [Fact]
    public void Endpoint_independent_filtering_admits_anyone_to_a_mapping_but_not_unmapped_ports()
    {
        var h = new EngineHarness(s => s with { Filtering = FilteringBehaviour.EndpointIndependent });
        int ext = SrcPort(h.Out(Udp(In, 40000, Out, 9999)));
        var o = h.Out(EngineHarness.FromOutside(Udp("198.51.100.3", 7, Ext, ext)), Side.Outside);
        Assert.Equal(In, Dst(o));
        int other = ext == 65535 ? ext - 1 : ext + 1;
        Assert.Equal(Verdict.Drop, h.Run(EngineHarness.FromOutside(Udp("198.51.100.3", 7, Ext, other)), Side.Outside, out _));
        Assert.Equal(DropReason.NoSession, h.LastDrop);
    }

    [Fact]
    public void Port_scan_of_external_address_delivers_nothing()
    {
        var h = new EngineHarness();
        h.Out(Udp(In, 40000, Out, 9999));
        int forwarded = 0;
        for (int p = 1; p < 65536; p += 7)
        {
            if (h.Run(EngineHarness.FromOutside(Udp("198.51.100.3", 4444, Ext, p)), Side.Outside, out _) != Verdict.Drop)
            {
                forwarded++;
            }
            if (h.Run(EngineHarness.FromOutside(Tcp("198.51.100.3", 4444, Ext, p, 0x02)), Side.Outside, out _) != Verdict.Drop)
            {
                forwarded++;
            }
        }
        Assert.Equal(0, forwarded);
        Assert.Equal(1, h.Engine.Table.Count);
    }

    [Fact]
    public void Rfc6056_ports_are_random_within_range_and_keep_port_class()
    {
        var h = new EngineHarness(s => s with { PortMin = 20000, PortMax = 20999 });
        var ports = new HashSet<int>();
        for (int i = 0; i < 200; i++)
        {
            int p = SrcPort(h.Out(Udp(In, 30000 + i, Out, 53)));
            Assert.InRange(p, 20000, 20999);
            ports.Add(p);
        }
        Assert.Equal(200, ports.Count);
        // Not sequential: consecutive allocations are not mostly +1 apart (2.2's 61000+ sequence).
        int priv = SrcPort(h.Out(Udp(In, 123, Out, 123)));
        Assert.InRange(priv, 1, 1023);
    }

    [Fact]
    public void Rfc6056_allocation_is_not_sequential()
    {
        var h = new EngineHarness();
        var list = new List<int>();
        for (int i = 0; i < 100; i++)
        {
            list.Add(SrcPort(h.Out(Udp(In, 30000 + i, Out, 53))));
        }
        int sequential = 0;
        for (int i = 1; i < list.Count; i++)
        {
            if (list[i] == list[i - 1] + 1)
            {
                sequential++;
            }
        }
        Assert.True(sequential < 5, $"{sequential} sequential allocations");
    }

    [Fact]
    public void Rfc6888_port_exhaustion_is_counted_and_existing_sessions_keep_working()
    {
        var h = new EngineHarness(s => s with { PortMin = 5000, PortMax = 5009 });
        var ext = new List<int>();
        for (int i = 0; i < 10; i++)
        {
            ext.Add(SrcPort(h.Out(Udp(In, 30000 + i, Out, 53))));
        }
        Assert.Equal(Verdict.Drop, h.Run(Udp(In, 31000, Out, 53), Side.Inside, out _));
        Assert.Equal(DropReason.PortExhausted, h.LastDrop);
        Assert.Equal(1, h.Drops(DropReason.PortExhausted));
        // Existing sessions unaffected both ways (no eviction).
        Assert.Equal(ext[3], SrcPort(h.Out(Udp(In, 30003, Out, 53))));
        Assert.Equal(30003, DstPort(h.Out(EngineHarness.FromOutside(Udp(Out, 53, Ext, ext[3])), Side.Outside)));
        Assert.Equal(10, h.Engine.Table.Count);
    }

    [Fact]
    public void Session_limit_is_counted()
    {
        var h = new EngineHarness(s => s with { MaxSessions = 3 });
        for (int i = 0; i < 3; i++)
        {
            h.Out(Udp(In, 30000 + i, Out, 53));
        }
        Assert.Equal(Verdict.Drop, h.Run(Udp(In, 31000, Out, 53), Side.Inside, out _));
        Assert.Equal(DropReason.SessionLimit, h.LastDrop);
    }

    [Fact]
    public void Sessions_expire_after_their_timeout_and_free_the_port()
    {
        var h = new EngineHarness(s => s with { Timeouts = new Timeouts(Udp: 300, Icmp: 60) });
        int ext = SrcPort(h.Out(Udp(In, 40000, Out, 53)));
        h.Out(Icmp(In, Out, 8, 0, 5, 1));
        h.Now += 59_000;
        Assert.Equal(0, h.Engine.Sweep(h.Now, 100));
        h.Now += 1_000;
        Assert.Equal(1, h.Engine.Sweep(h.Now, 100)); // ICMP at 60 s
        h.Now += 239_999;
        Assert.Equal(0, h.Engine.Sweep(h.Now, 100));
        h.Now += 1;
        Assert.Equal(1, h.Engine.Sweep(h.Now, 100)); // UDP at 300 s
        Assert.Equal(0, h.Engine.Table.Count);
        Assert.Equal(0, h.Engine.Table.MappingCount);
        Assert.False(h.Engine.Table.Ports.IsUsed(0, 1, ext));
        Assert.Equal(Verdict.Drop, h.Run(EngineHarness.FromOutside(Udp(Out, 53, Ext, ext)), Side.Outside, out _));
    }

    [Fact]
    public void Activity_refreshes_and_sweep_is_bounded_by_budget()
    {
        var h = new EngineHarness();
        for (int i = 0; i < 50; i++)
        {
            h.Out(Udp(In, 30000 + i, Out, 53));
        }
        h.Now += 200_000;
        h.Out(Udp(In, 30000, Out, 53)); // refresh one
        h.Now += 100_000;
        Assert.Equal(10, h.Engine.Sweep(h.Now, 10));
        Assert.Equal(39, h.Engine.Sweep(h.Now, 1000));
        Assert.Equal(1, h.Engine.Table.Count);
    }

    [Fact]
    public void Gateway_answers_arp_and_ping_for_its_addresses()
    {
        var h = new EngineHarness(learnNeighbours: false);
        var req = Arp(1, InsideHostMac, In, new byte[6], "10.0.0.1");
        Assert.Equal(Verdict.ToInside, h.Run(req, Side.Inside, out var rep));
        Assert.Equal(InsideHostMac, rep[..6]);
        Assert.Equal(2, rep[21]);
        Assert.Equal(GatewayInsideMac, rep.AsSpan(22, 6).ToArray());
        Assert.Equal(Ip("10.0.0.1"), rep.AsSpan(28, 4).ToArray());
        // ARP for someone else is not answered.
        Assert.Equal(Verdict.Drop, h.Run(Arp(1, InsideHostMac, In, new byte[6], "10.0.0.9"), Side.Inside, out _));
        // Ping of the inside address is answered, to the MAC the ARP taught.
        Assert.Equal(Verdict.ToInside, h.Run(Icmp(In, "10.0.0.1", 8, 0, 9, 1), Side.Inside, out var pong));
        Assert.Equal(0, pong[L4Offset(pong)]);
        Assert.Equal("10.0.0.1", Src(pong));
        Assert.True(ChecksumsValid(pong));
        // Ping of the external address from outside too.
        Assert.Equal(Verdict.ToOutside, h.Run(EngineHarness.FromOutside(Icmp(Out, Ext, 8, 0, 9, 1)), Side.Outside, out var pong2));
        Assert.Equal(Ext, Src(pong2));
    }

    [Fact]
    public void Unknown_next_hop_is_resolved_by_arp_and_held_frame_released()
    {
        var h = new EngineHarness(learnNeighbours: false);
        h.Run(Arp(1, InsideHostMac, In, new byte[6], "10.0.0.1"), Side.Inside, out _); // teach inside host
        var v = h.Run(Udp(In, 40000, Out, 53), Side.Inside, out _);
        Assert.Equal(Verdict.Consumed, v);
        var (side, arpReq) = Assert.Single(h.Sunk);
        Assert.Equal(Side.Outside, side);
        Assert.Equal(Ip(Out), arpReq.AsSpan(38, 4).ToArray());
        Assert.Equal(Ip(Ext), arpReq.AsSpan(28, 4).ToArray());
        var reply = Arp(2, OutsideHostMac, Out, GatewayOutsideMac, Ext, GatewayOutsideMac);
        Assert.Equal(Verdict.Consumed, h.Run(reply, Side.Outside, out _));
        Assert.Equal(2, h.Sunk.Count);
        var released = h.Sunk[1].Frame;
        Assert.Equal(OutsideHostMac, released[..6]);
        Assert.Equal(Ext, Src(released));
        Assert.True(ChecksumsValid(released));
    }
}

public class NatEventTests
{
    [Fact]
    public void Session_lifecycle_and_exhaustion_are_queued_as_events_and_a_full_queue_counts_losses()
    {
        // Ports come back at once after expiry here (no quarantine): the test refills the ring with new flows.
        var h = new EngineHarness(s => s with { PortMin = 6000, PortMax = 6001, Cgnat = new CgnatSettings { PortReuseDelaySeconds = 0 } });
        var ring = new Natd.Dataplane.Rings.SpscRing<NatEvent>(4);
        h.Engine.Table.Events = ring;
        int ext = SrcPort(h.Out(Udp(EngineHarness.InsideHost, 40000, EngineHarness.OutsideHost, 53)));
        h.Out(Udp(EngineHarness.InsideHost, 40001, EngineHarness.OutsideHost, 53));
        h.Run(Udp(EngineHarness.InsideHost, 40002, EngineHarness.OutsideHost, 53), Side.Inside, out _); // no port left
        Assert.True(ring.TryDequeue(out var created));
        Assert.Equal(NatEventType.SessionCreated, created.Type);
        Assert.Equal(Ipv4.Parse(EngineHarness.InsideHost), created.InsideAddress);
        Assert.Equal(40000, created.InsidePort);
        Assert.Equal(ext, created.ExternalPort);
        Assert.Equal(h.Now, created.TimeMs);
        Assert.True(ring.TryDequeue(out _));
        Assert.True(ring.TryDequeue(out var refused));
        Assert.Equal(NatEventType.PortExhausted, refused.Type);
        Assert.Equal(40002, refused.InsidePort);
        h.Now += 301_000;
        Assert.Equal(2, h.Engine.Sweep(h.Now, 10));
        Assert.True(ring.TryDequeue(out var deleted));
        Assert.Equal(NatEventType.SessionDeleted, deleted.Type);
        Assert.Equal(h.Now, deleted.TimeMs);
        // Fill the ring without draining: losses are counted, the dataplane carries on.
        for (int i = 0; i < 8; i++)
        {
            h.Out(Udp(EngineHarness.InsideHost, 41000 + i % 2, EngineHarness.OutsideHost, 53 + i));
        }
        Assert.True(h.Engine.Table.EventsDropped > 0);
    }
}

public class SessionControlTests
{
    [Fact]
    public void Delete_removes_only_the_named_sessions_and_frees_the_port()
    {
        var h = new EngineHarness();
        int ext = SrcPort(h.Out(Udp(EngineHarness.InsideHost, 40000, EngineHarness.OutsideHost, 53)));
        h.Out(Udp(EngineHarness.InsideHost, 40000, "198.51.100.3", 53));
        h.Out(Udp(EngineHarness.InsideHost, 40001, EngineHarness.OutsideHost, 53));
        Assert.Equal(1, h.Engine.DeleteSessions(17, Ipv4.Parse(EngineHarness.InsideHost), 40000, Ipv4.Parse("198.51.100.3"), 53));
        Assert.Equal(2, h.Engine.Table.Count);
        Assert.True(h.Engine.Table.Ports.IsUsed(0, 1, ext)); // the mapping still has a session
        Assert.Equal(1, h.Engine.DeleteSessions(17, Ipv4.Parse(EngineHarness.InsideHost), 40000, 0, 0));
        Assert.False(h.Engine.Table.Ports.IsUsed(0, 1, ext));
        Assert.Equal(0, h.Engine.DeleteSessions(6, Ipv4.Parse(EngineHarness.InsideHost), 40001, 0, 0));
        Assert.Equal(1, h.Engine.Table.Count);
    }
}

public class LargePoolTests
{
    [Fact]
    public void A_pool_of_hundreds_of_addresses_pairs_each_inside_host_with_one_external_address()
    {
        var pool = Enumerable.Range(10, 241).Select(i => Ipv4.Parse($"198.51.100.{i}")).ToList();
        var h = new EngineHarness(s => s with { Pool = pool });
        var seen = new Dictionary<string, string>();
        for (int host = 2; host < 60; host++)
        {
            string inside = $"10.0.0.{host}";
            h.Engine.Learn(Side.Inside, Ipv4.Parse(inside), MacAddress.Read(InsideHostMac));
            for (int p = 0; p < 3; p++)
            {
                var o = h.Out(Udp(inside, 30000 + p, EngineHarness.OutsideHost, 53 + p));
                string ext = Src(o);
                Assert.Contains(Ipv4.Parse(ext), pool);
                Assert.Equal(seen.TryAdd(inside, ext) ? ext : seen[inside], ext); // RFC 4787 REQ-2: paired
                var back = h.Out(EngineHarness.FromOutside(Udp(EngineHarness.OutsideHost, 53 + p, ext, SrcPort(o))), Side.Outside);
                Assert.Equal(inside, Dst(back));
            }
        }
        Assert.True(seen.Values.Distinct().Count() > 20, "hosts spread over the pool");
    }
}

public class PrefetchTests
{
    [Fact]
    public void Prefetch_hints_change_nothing_and_survive_any_frame()
    {
        var h = new EngineHarness(s => s with { MaxSessions = NatEngine.PrefetchThreshold + 1000 });
        for (int i = 0; i < NatEngine.PrefetchThreshold + 10; i++)
        {
            // Endpoint-independent mapping: 1,000 inside endpoints, each to 66 remote ports (few external ports).
            h.Out(Udp($"10.0.0.{2 + i % 200}", 1024 + (i / 200) % 5, EngineHarness.OutsideHost, 1000 + i / 1000));
        }
        long count = h.Engine.Table.Count;
        long drops = h.Engine.Counters.Drops.ToArray().Sum();
        var frame = Udp(EngineHarness.InsideHost, 1024, EngineHarness.OutsideHost, 53);
        var rnd = new Random(5);
        for (int i = 0; i < 5000; i++)
        {
            var f = (byte[])frame.Clone();
            f[rnd.Next(f.Length)] = (byte)rnd.Next(256);
            var cut = f.AsSpan(0, rnd.Next(f.Length + 1));
            h.Engine.Prefetch(cut, i % 2 == 0 ? Side.Inside : Side.Outside, session: i % 3 == 0);
        }
        Assert.Equal(count, h.Engine.Table.Count);
        Assert.Equal(drops, h.Engine.Counters.Drops.ToArray().Sum());
        Assert.Equal(Verdict.ToOutside, h.Run(frame, Side.Inside, out _));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void The_batch_pipeline_translates_exactly_as_frames_sent_one_by_one(bool portBlocks)
    {
        // Two twin engines over a table big enough for prefetching; one runs batches as the poller
        // does (parse, PrefetchBatch, PrefetchAhead before each frame), the other frame by frame.
        // With port blocks the pipeline also follows a probable new flow's subscriber to its block.
        NatSettings Big(NatSettings s) => s with
        {
            MaxSessions = NatEngine.PrefetchThreshold + 5000,
            Cgnat = portBlocks ? new CgnatSettings { Allocation = PortAllocation.PortBlock, PortBlock = new PortBlockSettings(64) } : s.Cgnat,
        };
        // Endpoint-independent mapping: 1,000 inside endpoints, each to 66 remote ports (few external ports).
        static byte[] Flow(int i) => Udp($"10.0.0.{2 + i % 200}", 1024 + (i / 200) % 5, EngineHarness.OutsideHost, 1000 + i / 1000);
        var piped = new EngineHarness(Big);
        var single = new EngineHarness(Big);
        var replies = new List<byte[]>();
        for (int i = 0; i < NatEngine.PrefetchThreshold + 10; i++)
        {
            var f = Flow(i);
            byte[] o = single.Out(f);
            Assert.Equal(o, piped.Out(f));
            if (i % 500 == 0)
            {
                replies.Add(EngineHarness.FromOutside(Udp(Dst(o), DstPort(o), Src(o), SrcPort(o))));
            }
        }
        Assert.True(piped.Engine.Table.Count > NatEngine.PrefetchThreshold);

        var rnd = new Random(17);
        int forwarded = 0, created = 0;
        // 1 and 2 frames (shorter than every distance), 13, 64 (the new-flow mask's width) and 100 (past it).
        foreach (int size in new[] { 1, 2, 13, 64, 100, 64 })
        {
            var frames = new List<(byte[] Frame, Side Side)>();
            for (int i = 0; i < size; i++)
            {
                int kind = rnd.Next(5);
                int n = rnd.Next(NatEngine.PrefetchThreshold);
                frames.Add(kind switch
                {
                    0 or 1 => (Flow(n), Side.Inside), // established
                    // A new flow: its endpoint's mapping exists; with port blocks, a new endpoint (a port from its subscriber's block).
                    2 => (Udp($"10.0.0.{2 + n % 200}", portBlocks ? 2000 + n % 3000 : 1024 + n % 5, "203.0.113.9", 1 + rnd.Next(60000)), Side.Inside),
                    3 => (replies[rnd.Next(replies.Count)], Side.Outside), // a reply
                    _ => (Udp(EngineHarness.InsideHost, 1024, EngineHarness.OutsideHost, 53)[..rnd.Next(10, 40)], Side.Inside), // truncated
                });
            }
            var expected = new List<(Verdict, byte[])>();
            foreach (var (f, side) in frames)
            {
                Verdict v = single.Run(f, side, out byte[] o);
                expected.Add((v, o));
            }

            var slots = new byte[size][];
            var parsed = new ParsedFrame[size];
            for (int i = 0; i < size; i++)
            {
                slots[i] = new byte[Natd.Dataplane.Io.FrameBatch.SlotSize];
                frames[i].Frame.CopyTo(slots[i], 0);
                FrameParser.Parse(slots[i].AsSpan(0, frames[i].Frame.Length), frames[i].Side, piped.Engine.Table.HashSeed, out parsed[i]);
            }
            int before = piped.Engine.Table.Count;
            piped.Engine.PrefetchBatch(parsed);
            for (int i = 0; i < size; i++)
            {
                piped.Engine.PrefetchAhead(parsed, i);
                int len = frames[i].Frame.Length;
                var ctx = new PacketContext(piped.Engine.Counters, piped.Now);
                Verdict v = piped.Engine.Process(slots[i], ref len, frames[i].Side, Natd.Dataplane.Io.FrameFlags.None, parsed[i], ref ctx);
                Assert.Equal(expected[i].Item1, v);
                Assert.Equal(expected[i].Item2, slots[i].AsSpan(0, len).ToArray());
                forwarded += v is Verdict.ToOutside or Verdict.ToInside ? 1 : 0;
            }
            created += piped.Engine.Table.Count - before;
            Assert.Equal(single.Engine.Table.Count, piped.Engine.Table.Count);
        }
        Assert.True(forwarded > 100 && created > 20, $"{forwarded} forwarded, {created} created: the batches must mix hits and new flows");
        Assert.Equal(single.Engine.Counters.Drops.ToArray(), piped.Engine.Counters.Drops.ToArray());
    }
}
