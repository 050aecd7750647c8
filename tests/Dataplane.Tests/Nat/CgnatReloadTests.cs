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
/// Reloads under live carrier-grade state (issue 11 item 10): limits and the block size change
/// without disturbing held blocks (a new size for new blocks only), and changes that would strand a
/// live block or mapping are refused with the key and the state, the running settings kept.
/// </summary>
public class CgnatReloadTests
{
    private const string Out = EngineHarness.OutsideHost;

    private static SubscriberInfo Subscriber(EngineHarness h, int host)
        => h.Engine.Subscribers!.List().Single(s => s.Subscriber == Ipv4.Parse(Host(host)));

    /// <summary>Lets every UDP session expire (the sweep); emptied blocks start their quarantine now.</summary>
    private static void Expire(EngineHarness h)
    {
        h.Now += (h.Engine.Settings.Timeouts.Udp + 1) * 1000L;
        while (h.Engine.Sweep(h.Now, 4096) > 0)
        {
        }
    }

    [Fact]
    public void A_reload_of_the_limits_keeps_blocks_pairing_and_quarantine_and_logs_no_block_again()
    {
        var h = Harness(Pba(size: 64), s => s with { Pool = Pool4 }, out var events);
        for (int i = 0; i < 5; i++)
        {
            h.Out(Udp(Host(2), 40000 + i, Out, 53));
        }
        h.Now += 1000;
        h.Out(Udp(Host(3), 40000, Out, 53));
        Assert.Equal(2, Drain(events, NatEventType.PortBlockAllocated).Count);
        // Host 3's session expires; host 2's are kept alive past the sweep.
        h.Now += (h.Engine.Settings.Timeouts.Udp - 10) * 1000L;
        for (int i = 0; i < 5; i++)
        {
            h.Out(Udp(Host(2), 40000 + i, Out, 53));
        }
        h.Now += 20_000;
        h.Engine.Sweep(h.Now, 4096);
        long emptied = h.Now;
        var before2 = Subscriber(h, 2);
        var before3 = Subscriber(h, 3); // its empty block rests in quarantine
        Assert.Equal((0, 1), (before3.Ports, before3.Blocks.Count));

        Assert.Null(h.Engine.UpdateSettings(h.Engine.Settings with
        {
            Cgnat = Pba(size: 64) with { Limits = new SubscriberLimits(Sessions: 6) },
        }));

        Assert.Empty(Drain(events, NatEventType.PortBlockAllocated)); // logged when taken, not again
        var after2 = Subscriber(h, 2);
        Assert.Equal((before2.External, before2.Ports, before2.Sessions), (after2.External, after2.Ports, after2.Sessions));
        Assert.Equal(before2.Blocks, after2.Blocks);
        Assert.Equal(before3.Blocks, Subscriber(h, 3).Blocks);
        // The new limit holds against the sessions already counted: 5 live, one more, then refused.
        var o = h.Out(Udp(Host(2), 41000, Out, 53));
        Assert.InRange(SrcPort(o), after2.Blocks[0].Low, after2.Blocks[0].High);
        Assert.NotEqual(Verdict.ToOutside, h.Run(Udp(Host(2), 41001, Out, 53), Side.Inside, out _)); // dropped (and answered with ICMP)
        Assert.Equal(DropReason.SubscriberSessionLimit, h.LastDrop);
        // Host 3's block still rests until its quarantine is over, then is released and logged once.
        h.Now = emptied + 119_000;
        h.Engine.Sweep(h.Now, 4096);
        Assert.Empty(Drain(events, NatEventType.PortBlockReleased));
        h.Now = emptied + 120_000;
        h.Engine.Sweep(h.Now, 4096);
        var released = Assert.Single(Drain(events, NatEventType.PortBlockReleased));
        Assert.Equal((Ipv4.Parse(Host(3)), before3.Blocks[0].Low), (released.InsideAddress, (int)released.ExternalPort));
    }

    [Fact]
    public void A_new_block_size_applies_to_new_blocks_while_live_blocks_keep_theirs_until_released()
    {
        var h = Harness(Pba(size: 64, delay: 60), null, out var events);
        h.Out(Udp(Host(2), 40000, Out, 53));
        var old = Assert.Single(Drain(events, NatEventType.PortBlockAllocated));
        Assert.Equal(old.ExternalPort + 63, old.PortHigh);

        Assert.Null(h.Engine.UpdateSettings(h.Engine.Settings with { Cgnat = Pba(size: 32, delay: 60) }));

        Assert.Empty(Drain(events, NatEventType.PortBlockAllocated));
        Assert.Equal([(old.ExternalPort, (int)old.PortHigh)], Subscriber(h, 2).Blocks);
        // Host 2 goes on in its block of 64 (40 more flows than a block of 32 holds).
        for (int i = 1; i < 41; i++)
        {
            Assert.InRange(SrcPort(h.Out(Udp(Host(2), 40000 + i, Out, 53))), old.ExternalPort, old.PortHigh);
        }
        Assert.Empty(Drain(events, NatEventType.PortBlockAllocated));
        // A new subscriber gets a block of 32, clear of host 2's.
        var fresh = new List<NatEvent>();
        for (int host = 3; host < 40; host++)
        {
            h.Out(Udp(Host(host), 40000, Out, 53));
            fresh.AddRange(Drain(events, NatEventType.PortBlockAllocated));
        }
        Assert.Equal(37, fresh.Count);
        Assert.All(fresh, b => Assert.Equal(b.ExternalPort + 31, b.PortHigh));
        Assert.All(fresh, b => Assert.True(b.PortHigh < old.ExternalPort || b.ExternalPort > old.PortHigh, $"{b.ExternalPort}-{b.PortHigh} overlaps {old.ExternalPort}-{old.PortHigh}"));
        PortBlocks blocks = h.Engine.Subscribers!.Blocks!;
        int free = blocks.FreeOn(0);

        // Host 2's block is released with the size it was logged with, and its ports serve new blocks again.
        Expire(h);
        h.Now += 60_000;
        h.Engine.Sweep(h.Now, 4096);
        var released = Drain(events, NatEventType.PortBlockReleased);
        var mine = Assert.Single(released, e => e.InsideAddress == Ipv4.Parse(Host(2)));
        Assert.Equal((old.ExternalPort, old.PortHigh), (mine.ExternalPort, mine.PortHigh));
        Assert.Equal(free + 37 + 2, blocks.FreeOn(0)); // the 37 blocks of 32 and the two its block of 64 covered
    }

    [Fact]
    public void Switching_the_allocation_while_blocks_are_held_is_refused_and_accepted_once_they_are_released()
    {
        var h = Harness(Pba(size: 64, delay: 60), null, out _);
        int port = SrcPort(h.Out(Udp(Host(2), 40000, Out, 53)));
        NatSettings running = h.Engine.Settings;

        string? refused = h.Engine.UpdateSettings(running with { Cgnat = new CgnatSettings() });

        Assert.NotNull(refused);
        Assert.StartsWith("nat.allocation:", refused, StringComparison.Ordinal);
        Assert.Contains("1 port block(s)", refused, StringComparison.Ordinal);
        Assert.Contains($"10.0.0.2 holds {EngineHarness.External}:", refused, StringComparison.Ordinal);
        Assert.Contains("running configuration stays", refused, StringComparison.Ordinal);
        Assert.Same(running, h.Engine.Settings);
        Assert.Equal(port, SrcPort(h.Out(Udp(Host(2), 40000, Out, 53)))); // still translating as before
        Assert.Null(h.Engine.CheckSettings(running with { Cgnat = Pba(size: 64, delay: 30) }));
        Assert.Equal(refused, h.Engine.CheckSettings(running with { Cgnat = new CgnatSettings() }));

        // Released blocks strand nothing: the same change then applies.
        Expire(h);
        h.Now += 60_000;
        h.Engine.Sweep(h.Now, 4096);
        Assert.Null(h.Engine.UpdateSettings(running with { Cgnat = new CgnatSettings() }));
        Assert.Equal(PortAllocation.Dynamic, h.Engine.Settings.Cgnat.Allocation);
    }

    [Fact]
    public void Switching_to_port_blocks_while_mappings_hold_ports_allocated_per_session_is_refused()
    {
        var h = Harness(new CgnatSettings(), null, out _);
        int port = SrcPort(h.Out(Udp(Host(2), 40000, Out, 53)));

        string? refused = h.Engine.UpdateSettings(h.Engine.Settings with { Cgnat = Pba() });

        Assert.NotNull(refused);
        Assert.StartsWith("nat.allocation: cannot change dynamic to port-block", refused, StringComparison.Ordinal);
        Assert.Contains($"10.0.0.2 on {EngineHarness.External}:{port}", refused, StringComparison.Ordinal);
        Assert.Equal(PortAllocation.Dynamic, h.Engine.Settings.Cgnat.Allocation);
        Assert.Null(h.Engine.Subscribers);
    }

    [Fact]
    public void Removing_a_pool_address_that_holds_blocks_is_refused_naming_it()
    {
        var h = Harness(Pba(size: 64), s => s with { Pool = Pool4 }, out _);
        uint external = Ipv4.Parse(Src(h.Out(Udp(Host(2), 40000, Out, 53))));
        NatSettings running = h.Engine.Settings;

        string? refused = h.Engine.UpdateSettings(running with { Pool = [.. Pool4.Where(a => a != external)] });

        Assert.NotNull(refused);
        Assert.StartsWith($"nat.pool: {Ipv4.Format(external)} is no longer in the pool but natd holds 1 port block(s) on it", refused, StringComparison.Ordinal);
        Assert.Same(running, h.Engine.Settings);
        // Removing an address without blocks is a reload like any other, and the block moves with its address's new index.
        uint idle = Pool4.First(a => a != external);
        var before = Subscriber(h, 2);
        Assert.Null(h.Engine.UpdateSettings(running with { Pool = [.. Pool4.Where(a => a != idle)] }));
        Assert.Equal(before.External, Subscriber(h, 2).External);
        Assert.Equal(before.Blocks, Subscriber(h, 2).Blocks);
        Assert.Equal(Ipv4.Format(external), Src(h.Out(Udp(Host(2), 40001, Out, 53))));
    }

    [Fact]
    public void Shrinking_nat_ports_so_a_live_block_falls_outside_is_refused()
    {
        var h = Harness(Pba(size: 64), null, out var events);
        h.Out(Udp(Host(2), 40000, Out, 53));
        var block = Assert.Single(Drain(events, NatEventType.PortBlockAllocated));
        NatSettings running = h.Engine.Settings;

        string? refused = h.Engine.UpdateSettings(running with { PortMax = (ushort)(block.PortHigh - 1) });

        Assert.NotNull(refused);
        Assert.StartsWith($"nat.ports: 1024-{block.PortHigh - 1} leaves 1 held port block(s) outside the range", refused, StringComparison.Ordinal);
        Assert.Contains($"{EngineHarness.External}:{block.ExternalPort}-{block.PortHigh}", refused, StringComparison.Ordinal);
        Assert.Same(running, h.Engine.Settings);
        // A range that still holds the block applies.
        Assert.Null(h.Engine.UpdateSettings(running with { PortMax = block.PortHigh }));
        Assert.Equal([(block.ExternalPort, (int)block.PortHigh)], Subscriber(h, 2).Blocks);
    }
}
