using Natd.Dataplane.Alg;
using Natd.Dataplane.Alg.Ipsec;
using Natd.Dataplane.Alg.Pptp;
using Natd.Dataplane.Packets;
using Natd.Dataplane.Sessions;

namespace Natd.Tests.Sessions;

/// <summary>
/// Expiry sweeps cost what expires, not the table size (issue 9, bug 5): counted, not timed. A
/// sweep with nothing due visits no entry whatever the capacity, and a sweep with something due
/// deletes exactly that.
/// </summary>
public class SweepCostTests
{
    private const long T0 = 1_000_000;
    private static readonly uint Ext = Ipv4.Parse("198.51.100.1");

    private static IpsecMasq Full(int capacity, int esp = 60)
    {
        var m = new IpsecMasq(new IpsecSettings(true, 10, 3, true, esp, 28800), capacity);
        for (int i = 0; i < capacity; i++)
        {
            uint inside = Ipv4.Parse($"10.{(i >> 8) & 0xFF}.{i & 0xFF}.1");
            uint remote = Ipv4.Parse($"203.0.{(i >> 8) & 0xFF}.{i & 0xFF}");
            Assert.Equal(IpsecVerdict.Forward, m.EspOut(inside, remote, 0x1000u + (uint)i, Ext, T0 + i % 1000));
        }
        return m;
    }

    [Theory]
    [InlineData(64)]
    [InlineData(4096)]
    public void Ipsec_sweep_with_nothing_due_visits_no_entry_whatever_the_table_size(int capacity)
    {
        var m = Full(capacity);
        long before = m.SweepVisits;
        // A minute of 100 ms slices, all before the first entry's ESP timeout (60 s).
        for (long t = T0 + 1000; t < T0 + 59_000; t += 100)
        {
            Assert.Equal(0, m.Expire(t, 128));
        }
        long visits = m.SweepVisits - before;
        Assert.True(visits <= 4, $"{visits} entries visited by 580 sweeps of a table of {capacity} with nothing due");
        Assert.Equal(capacity, m.EspCount);
    }

    [Fact]
    public void Ipsec_sweep_deletes_exactly_what_is_due_and_keeps_refreshed_entries()
    {
        var m = new IpsecMasq(new IpsecSettings(true, 10, 3, true, 60, 28800), 256);
        uint Host(int i) => Ipv4.Parse($"10.0.1.{i + 1}");
        uint Peer(int i) => Ipv4.Parse($"203.0.113.{i + 1}");
        for (int i = 0; i < 30; i++)
        {
            // Ten SPIs at T0, ten at T0 + 20 s, ten at T0 + 40 s.
            Assert.Equal(IpsecVerdict.Forward, m.EspOut(Host(i), Peer(i), 7, Ext, T0 + i / 10 * 20_000));
        }
        // Five of the first ten are used again at T0 + 30 s: they live until T0 + 90 s.
        for (int i = 0; i < 5; i++)
        {
            Assert.Equal(IpsecVerdict.Forward, m.EspOut(Host(i), Peer(i), 7, Ext, T0 + 30_000));
        }
        Assert.Equal(0, m.Expire(T0 + 59_999, 1000));
        Assert.Equal(30, m.EspCount);
        // At T0 + 60 s exactly the five idle SPIs of the first ten go (their remote host records stay:
        // those live max(ESP, ISAKMP) timeouts).
        Assert.Equal(5, m.Expire(T0 + 60_000, 1000));
        Assert.Equal(25, m.EspCount);
        for (int i = 0; i < 5; i++)
        {
            Assert.Equal(IpsecVerdict.Forward, m.EspOut(Host(i), Peer(i), 7, Ext, T0 + 60_001)); // still known: refreshed, not re-created
        }
        Assert.Equal(25, m.EspCount);
        Assert.Equal(10, m.Expire(T0 + 80_000, 1000)); // the T0 + 20 s group
        Assert.Equal(15, m.EspCount);
        Assert.Equal(10, m.Expire(T0 + 100_000, 1000)); // the T0 + 40 s group
        Assert.Equal(5, m.EspCount);
        Assert.Equal(5, m.Expire(T0 + 120_001, 1000)); // the refreshed five, last used at T0 + 60.001 s
        Assert.Equal(0, m.EspCount);
    }

    [Fact]
    public void Ipsec_timeout_change_on_reload_requeues_entries_at_their_new_deadline()
    {
        var m = new IpsecMasq(new IpsecSettings(true, 10, 3, true, 600, 28800), 64);
        Assert.Equal(IpsecVerdict.Forward, m.EspOut(Ipv4.Parse("10.0.0.2"), Ipv4.Parse("203.0.113.5"), 7, Ext, T0));
        Assert.Equal(0, m.Expire(T0 + 60_000, 100));
        m.Settings = m.Settings with { EspTimeout = 60 };
        Assert.Equal(1, m.Expire(T0 + 60_000, 100));
        Assert.Equal(0, m.EspCount);
    }

    [Theory]
    [InlineData(16)]
    [InlineData(4096)]
    public void Gre_call_sweep_with_nothing_due_visits_no_call_whatever_the_table_size(int capacity)
    {
        var t = new GreCallTable(capacity);
        for (int i = 0; i < capacity; i++)
        {
            Assert.True(t.Add(new GreCall(true, 0x0100000Au + (uint)i, 7, 0x0200000A, (ushort)i, 0x0300000A, (ushort)i), T0));
        }
        for (long now = T0 + 100; now < T0 + 30_000; now += 100)
        {
            Assert.Equal(0, t.Expire(now, 30_000, 128));
        }
        Assert.Equal(0, t.SweepVisits);
        Assert.Equal(capacity, t.Expire(T0 + 30_000, 30_000, capacity));
        Assert.Equal(capacity, t.SweepVisits);
    }

    [Fact]
    public void Gre_call_seen_again_is_kept_and_checked_again_at_its_new_idle_time()
    {
        var t = new GreCallTable(8);
        var call = new GreCall(true, 0x0100000A, 7, 0x0200000A, 9, 0x0300000A, 11);
        Assert.True(t.Add(call, T0));
        t.Entries[t.FindOut2In(0x0200000A, 0x0300000A, 11)].LastSeenMs = T0 + 20_000; // a packet, as the engine records it
        Assert.Equal(0, t.Expire(T0 + 30_000, 30_000, 10));
        Assert.Equal(1, t.Count);
        Assert.Equal(0, t.Expire(T0 + 49_999, 30_000, 10));
        Assert.Equal(1, t.Expire(T0 + 50_000, 30_000, 10));
        Assert.Equal(2, t.SweepVisits);
    }

    [Fact]
    public void Deadline_queue_pops_due_slots_in_deadline_order()
    {
        var rng = new Random(7);
        var q = new DeadlineQueue(500);
        var expected = new List<(long Deadline, int Slot)>();
        for (int s = 0; s < 500; s++)
        {
            long d = rng.Next(0, 10_000);
            q.Ensure(s, d);
            q.Ensure(s, d + 1); // already queued: ignored
            expected.Add((d, s));
        }
        Assert.Equal(500, q.Count);
        Assert.False(q.TryPopDue(expected.Min(e => e.Deadline) - 1, out _));
        var popped = new List<long>();
        while (q.TryPopDue(5_000, out int slot))
        {
            popped.Add(expected[slot].Deadline);
        }
        Assert.Equal(expected.Where(e => e.Deadline <= 5_000).Select(e => e.Deadline).Order(), popped);
        Assert.Equal(expected.Count(e => e.Deadline > 5_000), q.Count);
    }
}
