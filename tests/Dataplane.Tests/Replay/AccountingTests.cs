using Natd.Dataplane.Nat;
using Natd.Tests.Support;

namespace Natd.Tests.Replay;

/// <summary>
/// Every frame read is accounted for: sent (OUT), dropped with a reason (summary and drops file),
/// or skipped for its link type. A frame natd holds while it asks ARP for the next hop must end in
/// one of those too, in replay where no ARP reply will ever come.
/// </summary>
public class AccountingTests
{
    private static readonly string Unresolved = DropReasons.Label(DropReason.NeighbourUnresolved);

    /// <summary>An outbound datagram with no router MAC known: natd holds it and asks ARP for 198.51.100.254.</summary>
    private static CapFrame Orphan(long ts) => new(Frames.Udp("10.0.0.2", 5353, "203.0.113.53", 53, "query"u8.ToArray()), ts, "inside");

    [Fact]
    public void Frame_still_held_for_an_unresolved_neighbour_at_the_end_is_reported_as_dropped()
    {
        var orphan = Orphan(ReplayKit.T0);
        var r = ReplayKit.Run(ReplayKit.PcapNg([orphan]));
        // natd asked for the router (that is all OUT holds) ...
        var arp = Assert.Single(r.Out);
        Assert.True(ReplayKit.IsArp(arp.Data));
        // ... and the datagram itself must not vanish: it is a drop, counted and written.
        Assert.Equal(1, r.Summary.Drops.GetValueOrDefault(Unresolved));
        var d = Assert.Single(r.Drops);
        Assert.Equal((Unresolved, orphan.TimestampNs, "inside"), (d.Comment, d.TimestampNs, d.Interface));
        Assert.Equal(orphan.Data, d.Data);
    }

    [Fact]
    public void Frame_whose_hold_expires_is_written_to_the_drops_file()
    {
        var orphan = Orphan(ReplayKit.T0);
        // 2 s later (the hold time is 1 s) another inside frame moves the clock on.
        var later = new CapFrame(Frames.Udp("10.0.0.2", 5354, "203.0.113.53", 53, "again"u8.ToArray()), ReplayKit.T0 + 2_000_000_000L, "inside");
        var r = ReplayKit.Run(ReplayKit.PcapNg([orphan, later]));
        Assert.True(r.Summary.Drops.GetValueOrDefault(Unresolved) >= 1, "the expired hold is counted");
        Assert.Contains(r.Drops, d => d.Comment == Unresolved && d.TimestampNs == orphan.TimestampNs && d.Data.AsSpan().SequenceEqual(orphan.Data));
    }

    [Fact]
    public void Held_frame_released_by_a_learned_neighbour_is_sent_once()
    {
        // The outbound frame waits for the router's MAC; the router's own frame (an ARP request
        // for natd's outside address) teaches it and releases the frame.
        var orphan = Orphan(ReplayKit.T0);
        var r = ReplayKit.Run(ReplayKit.PcapNg([orphan, Lab.RouterArp(ReplayKit.T0 + 500_000_000L)]));
        var sent = Assert.Single(r.Out, f => f.Interface == "outside" && ReplayKit.IsIpv4(f.Data));
        Assert.Equal("198.51.100.1", Frames.Src(sent.Data));
        Assert.Equal(ReplayKit.RouterMac, sent.Data[0..6]);
        Assert.True(Frames.ChecksumsValid(sent.Data));
        Assert.Empty(r.Drops);
        Assert.Equal(0, r.Summary.TotalDrops);
    }
}

/// <summary>
/// Replay with --drops keeps each held frame's original until the engine sends or drops the frame;
/// frames released by a learned neighbour must be forgotten too, or the bookkeeping grows with
/// every frame ever held.
/// </summary>
public class HeldOriginalsTests
{
    [Fact]
    public void Held_originals_stay_bounded_over_many_held_then_released_frames()
    {
        // 200 rounds, 70 s apart (the router's entry ages out in between): 10 datagrams wait
        // for the router, whose ARP request then releases them.
        var frames = new List<CapFrame>();
        for (int round = 0; round < 200; round++)
        {
            long t = ReplayKit.T0 + round * 70_000_000_000L;
            for (int i = 0; i < 10; i++)
            {
                frames.Add(new(Frames.Udp("10.0.0.2", 20000 + i, "203.0.113.53", 53, "q"u8.ToArray()), t + i * 1_000_000L, "inside"));
            }
            frames.Add(Lab.RouterArp(t + 500_000_000L));
        }
        var r = ReplayKit.Run(ReplayKit.PcapNg(frames));
        Assert.Equal(2000, r.Out.Count(f => f.Interface == "outside" && ReplayKit.IsIpv4(f.Data)));
        Assert.Equal(0, r.Summary.TotalDrops);
        Assert.InRange(r.Summary.HeldOriginalsPeak, 10, 64);
    }
}
