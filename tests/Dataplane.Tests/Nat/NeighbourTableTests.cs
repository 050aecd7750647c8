using System.Buffers.Binary;
using Natd.Dataplane.Io;
using Natd.Dataplane.Nat;
using Natd.Dataplane.Packets;
using Natd.Tests.Support;
using static Natd.Tests.Support.Frames;
using Natd.Dataplane.Sessions;

namespace Natd.Tests.Nat;

/// <summary>
/// The neighbour tables are bounded (limits.neighbours), age like the kernel's ARP (reachable 30 s,
/// then stale and re-confirmed, removed after 60 s unused), never age or evict static neighbours,
/// and bound the next hops being resolved, dropping held frames whose resolution is given up.
/// Deterministic: the engine's millisecond clock is the harness's.
/// </summary>
public class NeighbourTableTests
{
    private const int Million = 1_000_000;

    /// <summary>Inside on-link prefix of 16M addresses, so a million distinct neighbours fit.</summary>
    private static NatSettings WideInside(NatSettings s, int cap) => s with
    {
        Inside = s.Inside with { Address = Ipv4Prefix.Parse("10.0.0.1/8"), Networks = [Ipv4Prefix.Parse("10.0.0.0/8")] },
        MaxNeighbours = cap,
    };

    /// <summary>An ARP request for natd's inside address from <c>10.0.0.0 + n</c> (the frame is patched in place).</summary>
    private static void SetSender(byte[] arp, int n)
    {
        uint host = 0x0A00_0000u + (uint)n + 2;
        BinaryPrimitives.WriteUInt32BigEndian(arp.AsSpan(28), host);
        arp[6 + 5] = arp[22 + 5] = (byte)(n | 2); // a unicast MAC per sender
    }

    private static byte[] ArpTemplate() => Arp(1, InsideHostMac, "10.0.0.2", new byte[6], "10.0.0.1");

    private static void Learn(EngineHarness h, byte[] arp, byte[] slot)
    {
        arp.CopyTo(slot, 0);
        int len = arp.Length;
        Assert.Equal(Verdict.ToInside, h.Process(slot, ref len, Side.Inside, FrameFlags.None, h.Now));
    }

    [Fact]
    public void A_million_neighbours_learned_leave_the_table_at_its_cap_with_evictions_counted()
    {
        var h = new EngineHarness(s => WideInside(s, 1024), learnNeighbours: false);
        var arp = ArpTemplate();
        var slot = new byte[FrameBatch.SlotSize];
        for (int n = 0; n < Million; n++)
        {
            SetSender(arp, n);
            Learn(h, arp, slot);
        }
        Assert.Equal(1024, h.Engine.LearnedNeighbourCount(Side.Inside));
        Assert.Equal(Million - 1024, h.Engine.Counters.NeighboursEvicted);
        // The survivors are the youngest: the last sender is known, the first is not.
        var known = h.Engine.Neighbours(Side.Inside);
        Assert.Equal(1024, known.Count);
        Assert.Contains(known, kv => kv.Key == Ipv4.Parse("10.15.66.65")); // 10.0.0.2 + 999 999
        Assert.DoesNotContain(known, kv => kv.Key == Ipv4.Parse("10.0.0.2"));
    }

    [Fact]
    public void A_million_next_hops_asked_leave_the_pending_table_at_its_cap_and_their_held_frames_dropped()
    {
        // Outbound UDP to a million distinct on-link outside addresses, nobody answering ARP.
        // Sessions last 1 s and the clock moves 1 ms a frame, so the session table never fills.
        var h = new EngineHarness(s => s with
        {
            Outside = s.Outside with { Address = Ipv4Prefix.Parse("100.64.0.1/10"), Gateway = 0 },
            Timeouts = new Timeouts(Udp: 1),
            MaxNeighbours = 256,
        });
        h.Engine.AttachSink(new DiscardLog()); // a million ARP requests: count them, keep none
        var f = Udp(EngineHarness.InsideHost, 40000, "100.64.0.2", 53);
        var slot = new byte[FrameBatch.SlotSize];
        for (int n = 0; n < Million; n++)
        {
            var dst = f.AsSpan(30, 4);
            uint old = BinaryPrimitives.ReadUInt32BigEndian(dst);
            BinaryPrimitives.WriteUInt32BigEndian(dst, 0x6440_0002u + (uint)n);
            if (n > 0)
            {
                Checksum16Adjust(f, old, 0x6440_0002u + (uint)n);
            }
            f.CopyTo(slot, 0);
            int len = f.Length;
            h.Now++;
            var v = h.Process(slot, ref len, Side.Inside, FrameFlags.None, h.Now);
            Assert.True(v is Verdict.Consumed or Verdict.Drop, $"frame {n}: {v} ({h.LastDrop})");
            Assert.True(v == Verdict.Consumed || h.LastDrop == DropReason.NeighbourUnresolved, $"frame {n}: {h.LastDrop}");
        }
        Assert.Equal(256, h.Engine.PendingNeighbourCount(Side.Outside));
        Assert.Equal(Million - 256, h.Engine.Counters.PendingNeighboursEvicted);
        Assert.Equal(0, h.Engine.LearnedNeighbourCount(Side.Outside));
        // Every frame was either held then dropped, or dropped at once: none vanished or went out.
        h.Engine.DiscardHeld();
        Assert.Equal(Million, h.Engine.Counters.Drops[(int)DropReason.NeighbourUnresolved]);
        Assert.Equal(Million, h.Engine.Counters.ArpRequestsSent);
    }

    /// <summary>Keeps the IPv4 header and UDP checksums right after changing the destination from <paramref name="from"/> to <paramref name="to"/>.</summary>
    private static void Checksum16Adjust(byte[] f, uint from, uint to)
    {
        static ushort Adjust(ushort sum, uint a, uint b)
        {
            uint s = (uint)(~sum & 0xFFFF);
            s += (~(a >> 16) & 0xFFFF) + (~a & 0xFFFF) + (b >> 16) + (b & 0xFFFF);
            while ((s >> 16) != 0)
            {
                s = (s & 0xFFFF) + (s >> 16);
            }
            return (ushort)~s;
        }
        var ipSum = f.AsSpan(24, 2);
        BinaryPrimitives.WriteUInt16BigEndian(ipSum, Adjust(BinaryPrimitives.ReadUInt16BigEndian(ipSum), from, to));
        var udpSum = f.AsSpan(L4Offset(f) + 6, 2);
        ushort u = BinaryPrimitives.ReadUInt16BigEndian(udpSum);
        if (u != 0)
        {
            ushort nu = Adjust(u, from, to);
            BinaryPrimitives.WriteUInt16BigEndian(udpSum, nu == 0 ? (ushort)0xFFFF : nu);
        }
    }

    /// <summary>The lab without the router known; only the inside host (static) and outside host 198.51.100.2 (learned by ARP).</summary>
    private static EngineHarness LearnsOutsideHostByArp(out byte[] probeTarget)
    {
        var h = new EngineHarness(learnNeighbours: false);
        h.Engine.Learn(Side.Inside, Ipv4.Parse(EngineHarness.InsideHost), MacAddress.Read(InsideHostMac));
        var reply = Arp(2, OutsideHostMac, EngineHarness.OutsideHost, GatewayOutsideMac, EngineHarness.External, GatewayOutsideMac);
        Assert.Equal(Verdict.Consumed, h.Run(reply, Side.Outside, out _));
        probeTarget = Ip(EngineHarness.OutsideHost);
        return h;
    }

    [Fact]
    public void A_learned_neighbour_is_stale_after_30_s_and_reconfirmed_by_a_unicast_request()
    {
        var h = LearnsOutsideHostByArp(out var target);
        h.Now += 29_000;
        h.Out(Udp(EngineHarness.InsideHost, 40000, EngineHarness.OutsideHost, 53));
        Assert.Empty(h.Sunk); // reachable: no ARP
        h.Now += 2_000; // 31 s after the confirmation: stale, still used, and probed at its MAC
        var o = h.Out(Udp(EngineHarness.InsideHost, 40000, EngineHarness.OutsideHost, 53));
        Assert.Equal(OutsideHostMac, o[..6]);
        var (side, probe) = Assert.Single(h.Sunk);
        Assert.Equal(Side.Outside, side);
        Assert.Equal(OutsideHostMac, probe[..6]); // unicast, like the kernel's PROBE state
        Assert.Equal(target, probe.AsSpan(38, 4).ToArray());
        // At most one probe a second.
        h.Out(Udp(EngineHarness.InsideHost, 40000, EngineHarness.OutsideHost, 53));
        Assert.Single(h.Sunk);
    }

    [Fact]
    public void A_learned_neighbour_unused_for_60_s_expires_on_lookup_and_by_the_sweep()
    {
        var h = LearnsOutsideHostByArp(out _);
        // Used at 50 s: the 60 s count starts again.
        h.Now += 50_000;
        h.Out(Udp(EngineHarness.InsideHost, 40000, EngineHarness.OutsideHost, 53));
        h.Now += 59_999;
        h.Out(Udp(EngineHarness.InsideHost, 40000, EngineHarness.OutsideHost, 53));
        Assert.Equal(0, h.Engine.Counters.NeighboursExpired);
        // 60 s unused: the next frame finds it gone, is held and the address asked again.
        h.Now += 60_000;
        h.Sunk.Clear();
        Assert.Equal(Verdict.Consumed, h.Run(Udp(EngineHarness.InsideHost, 40000, EngineHarness.OutsideHost, 53), Side.Inside, out _));
        Assert.Equal(1, h.Engine.Counters.NeighboursExpired);
        var (_, ask) = Assert.Single(h.Sunk);
        Assert.Equal(MacAddress.Broadcast, MacAddress.Read(ask));

        // The sweep removes what nobody looks up.
        var h2 = LearnsOutsideHostByArp(out _);
        h2.Engine.Sweep(h2.Now + 59_999, 128);
        Assert.Equal(1, h2.Engine.LearnedNeighbourCount(Side.Outside));
        h2.Engine.Sweep(h2.Now + 60_000, 128);
        Assert.Equal(0, h2.Engine.LearnedNeighbourCount(Side.Outside));
        Assert.Equal(0, h2.Engine.LearnedNeighbourCount(Side.Inside)); // learned before the clock: counted from its start
        Assert.Equal(2, h2.Engine.Counters.NeighboursExpired);
    }

    [Fact]
    public void A_sweep_slice_is_bounded_and_stops_at_the_first_young_entry()
    {
        var h = new EngineHarness(s => WideInside(s, 4096), learnNeighbours: false);
        for (int n = 0; n < 1000; n++)
        {
            h.Engine.Learn(Side.Inside, 0x0A00_0000u + (uint)n + 2, new MacAddress(0x02_00_00_00_10_00UL + (ulong)n), h.Now + n);
        }
        h.Engine.Sweep(h.Now + 60_000 + 599, 0); // 600 are due; a slice takes at most 256 of them
        Assert.Equal(1000 - 256, h.Engine.LearnedNeighbourCount(Side.Inside));
        h.Engine.Sweep(h.Now + 60_000 + 599, 0);
        h.Engine.Sweep(h.Now + 60_000 + 599, 0);
        Assert.Equal(400, h.Engine.LearnedNeighbourCount(Side.Inside));
        Assert.Equal(600, h.Engine.Counters.NeighboursExpired);
    }

    [Fact]
    public void A_static_neighbour_never_expires_is_never_evicted_and_keeps_its_mac()
    {
        // The harness's neighbours are static (configuration); the table holds 4 learned ones.
        var h = new EngineHarness(s => WideInside(s, 4));
        for (int n = 100; n < 10_100; n++)
        {
            h.Engine.Learn(Side.Inside, 0x0A00_0000u + (uint)n, new MacAddress(0x02_00_00_00_20_00UL + (ulong)n), h.Now);
        }
        Assert.Equal(4, h.Engine.LearnedNeighbourCount(Side.Inside));
        h.Engine.Learn(Side.Outside, Ipv4.Parse(EngineHarness.OutsideHost), new MacAddress(0x02_66_66_66_66_66)); // ARP does not override it
        h.Now += 86_400_000; // a day, swept
        for (int i = 0; i < 100; i++)
        {
            h.Engine.Sweep(h.Now, 4096);
        }
        var o = h.Out(Udp(EngineHarness.InsideHost, 40000, EngineHarness.OutsideHost, 53));
        Assert.Equal(OutsideHostMac, o[..6]);
        var back = h.Out(EngineHarness.FromOutside(Udp(EngineHarness.OutsideHost, 53, EngineHarness.External, SrcPort(o))), Side.Outside);
        Assert.Equal(InsideHostMac, back[..6]);
        Assert.Empty(h.Sunk); // no ARP for a static neighbour, ever
        Assert.Contains(h.Engine.Neighbours(Side.Outside), kv => kv.Key == Ipv4.Parse(EngineHarness.OutsideHost) && kv.Value == MacAddress.Read(OutsideHostMac));
    }

    [Fact]
    public void A_reload_that_changes_or_removes_a_static_neighbour_holds_from_the_next_frame()
    {
        // The per-side memo of the last static next hop must not outlive the configuration it came from.
        var h = new EngineHarness();
        byte[] newMac = [0x02, 0, 0, 0, 0, 0x7e];
        uint remote = Ipv4.Parse(EngineHarness.OutsideHost);
        Assert.Equal(OutsideHostMac, h.Out(Udp(EngineHarness.InsideHost, 40000, EngineHarness.OutsideHost, 53))[..6]);

        NatSettings s = h.Engine.Settings;
        var changed = s.Outside.Neighbours.Select(kv => kv.Key == remote ? new KeyValuePair<uint, MacAddress>(remote, MacAddress.Read(newMac)) : kv).ToList();
        Assert.Null(h.Engine.UpdateSettings(s with { Outside = s.Outside with { Neighbours = changed } }));
        Assert.Equal(newMac, h.Out(Udp(EngineHarness.InsideHost, 40000, EngineHarness.OutsideHost, 53))[..6]);

        s = h.Engine.Settings;
        var removed = s.Outside.Neighbours.Where(kv => kv.Key != remote).ToList();
        Assert.Null(h.Engine.UpdateSettings(s with { Outside = s.Outside with { Neighbours = removed } }));
        h.Sunk.Clear();
        byte[] frame = Udp(EngineHarness.InsideHost, 40000, EngineHarness.OutsideHost, 53);
        int len = frame.Length;
        var slot = new byte[FrameBatch.SlotSize];
        frame.CopyTo(slot, 0);
        Assert.Equal(Verdict.Consumed, h.Process(slot, ref len, Side.Inside, FrameFlags.None, h.Now)); // resolved again: held, ARP asked
        Assert.Contains(h.Sunk, f => f.Side == Side.Outside && BinaryPrimitives.ReadUInt16BigEndian(f.Frame.AsSpan(12)) == EtherType.Arp);
    }

    internal sealed class DiscardLog : IFrameSink
    {
        public List<(Side Side, DropReason Reason, long Tag)> Discarded { get; } = [];
        public List<long> Released { get; } = [];

        public bool Send(Side side, ReadOnlySpan<byte> frame) => true;

        public void Discard(Side side, ReadOnlySpan<byte> frame, DropReason reason, long holdTag) => Discarded.Add((side, reason, holdTag));

        void IFrameSink.Released(Side side, long holdTag) => Released.Add(holdTag);
    }

    [Fact]
    public void A_held_frame_of_an_evicted_pending_neighbour_is_dropped_as_neighbour_unresolved()
    {
        var h = new EngineHarness(s => s with { Outside = s.Outside with { Gateway = 0 }, MaxNeighbours = 2 });
        var log = new DiscardLog();
        h.Engine.AttachSink(log);
        foreach (var (dst, tag) in new[] { ("198.51.100.10", 1L), ("198.51.100.11", 2L), ("198.51.100.12", 3L) })
        {
            h.HoldTag = tag;
            Assert.Equal(Verdict.Consumed, h.Run(Udp(EngineHarness.InsideHost, 40000, dst, 53), Side.Inside, out _));
        }
        // The third resolution evicted the first: its frame is given up at once.
        Assert.Equal(2, h.Engine.PendingNeighbourCount(Side.Outside));
        Assert.Equal(1, h.Engine.Counters.PendingNeighboursEvicted);
        Assert.Equal((Side.Outside, DropReason.NeighbourUnresolved, 1L), Assert.Single(log.Discarded));
        Assert.Equal(1, h.Engine.Counters.Drops[(int)DropReason.NeighbourUnresolved]);
        // An answer for the second releases its frame (and says so to the sink).
        var reply = Arp(2, OutsideHostMac, "198.51.100.11", GatewayOutsideMac, EngineHarness.External, GatewayOutsideMac);
        Assert.Equal(Verdict.Consumed, h.Run(reply, Side.Outside, out _));
        Assert.Equal([2L], log.Released);
        Assert.Equal(1, h.Engine.PendingNeighbourCount(Side.Outside));
        // The third never answers: its resolution fails after a second, its frame dropped.
        h.Engine.Sweep(h.Now + 999, 128);
        Assert.Single(log.Discarded);
        h.Engine.Sweep(h.Now + 1000, 128);
        Assert.Equal(0, h.Engine.PendingNeighbourCount(Side.Outside));
        Assert.Equal(1, h.Engine.Counters.PendingNeighboursExpired);
        Assert.Equal((Side.Outside, DropReason.NeighbourUnresolved, 3L), log.Discarded[1]);
    }

    [Fact]
    public void Limits_neighbours_sets_the_capacity_default_4096_and_needs_a_restart()
    {
        Assert.Equal(4096, Natd.Control.Config.ConfigLoader.Default().Nat.MaxNeighbours);
        var c = Natd.Control.Config.ConfigLoader.Parse("limits: { neighbours: 100 }", "n.yaml");
        Assert.Equal(100, c.Nat.MaxNeighbours);
        var e = new NatEngine(c.Nat, new MacAddress(0x02_00_00_00_00_01), new MacAddress(0x02_00_00_00_00_02), new EngineOptions { Seed = 1 });
        Assert.Equal(100, e.NeighbourCapacity);
        Assert.Contains("limits.neighbours", e.UpdateSettings(c.Nat with { MaxNeighbours = 200 }));
    }

    [Fact]
    public void Looking_up_a_learned_neighbour_allocates_nothing()
    {
        var h = LearnsOutsideHostByArp(out _);
        h.Engine.AttachSink(new DiscardLog()); // sends nothing anywhere, allocates nothing
        var f = Udp(EngineHarness.InsideHost, 40000, EngineHarness.OutsideHost, 53);
        var slot = new byte[FrameBatch.SlotSize];
        int Run(int from, int to)
        {
            int forwarded = 0;
            for (int i = from; i < to; i++)
            {
                f.CopyTo(slot, 0);
                int len = f.Length;
                // 10 ms apart: past 30 s the entry is stale and re-confirmed once a second.
                forwarded += h.Process(slot, ref len, Side.Inside, FrameFlags.None, h.Now + i * 10L) == Verdict.ToOutside ? 1 : 0;
            }
            return forwarded;
        }
        Assert.Equal(10_000, Run(0, 10_000)); // warm up every path (reachable, stale, probe) so the JIT is done
        long probes = h.Engine.Counters.ArpRequestsSent;
        long before = GC.GetAllocatedBytesForCurrentThread();
        int sent = Run(10_000, 20_000);
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Equal(10_000, sent);
        Assert.Equal(0, allocated);
        Assert.True(h.Engine.Counters.ArpRequestsSent > probes, "the measured run included probes");
    }
}

/// <summary>
/// Memory stays flat whatever the number of distinct neighbours: a million ARP senders churned
/// through the default-size table allocate nothing once it exists (before the fix the table was a
/// dictionary that grew by about 240 B a neighbour). Only uses APIs that predate the fix.
/// </summary>
public class NeighbourMemoryTests
{
    [Fact]
    public void Churning_a_million_neighbours_through_the_table_keeps_memory_flat()
    {
        var h = new EngineHarness(s => s with
        {
            Inside = s.Inside with { Address = Ipv4Prefix.Parse("10.0.0.1/8"), Networks = [Ipv4Prefix.Parse("10.0.0.0/8")] },
        }, learnNeighbours: false);
        var arp = Arp(1, InsideHostMac, "10.0.0.2", new byte[6], "10.0.0.1");
        var slot = new byte[FrameBatch.SlotSize];
        void Churn(int from, int to)
        {
            for (int n = from; n < to; n++)
            {
                BinaryPrimitives.WriteUInt32BigEndian(arp.AsSpan(28), 0x0A00_0000u + (uint)n + 2);
                arp.CopyTo(slot, 0);
                int len = arp.Length;
                h.Process(slot, ref len, Side.Inside, FrameFlags.None, h.Now);
            }
        }
        Churn(0, 10_000); // warm up: the table is full, code is jitted
        long before = GC.GetAllocatedBytesForCurrentThread();
        Churn(10_000, 1_000_000);
        long grown = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.True(grown < 64 * 1024, $"churning 990,000 neighbours allocated {grown:N0} bytes");
        GC.KeepAlive(h);
    }
}
