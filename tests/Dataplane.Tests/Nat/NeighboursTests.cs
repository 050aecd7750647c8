using Natd.Dataplane.Io;
using Natd.Dataplane.Nat;
using Natd.Dataplane.Packets;
using Natd.Tests.Support;
using static Natd.Tests.Support.Frames;

namespace Natd.Tests.Nat;

/// <summary>
/// The neighbour component on its own (no engine): the hold queue keeps frames for an unresolved
/// next hop, sends them in the order they came when the next hop answers, and gives them up as
/// neighbour-unresolved after the hold time; ARP for natd's addresses is answered and teaches.
/// </summary>
public class NeighboursTests
{
    private const long T0 = 1_000_000;
    private static readonly MacAddress InMac = new(0x02_00_00_00_00_01);
    private static readonly MacAddress OutMac = new(0x02_00_00_00_00_02);
    private static readonly MacAddress HostA = new(0x02_00_00_00_00_aa);
    private static readonly MacAddress HostB = new(0x02_00_00_00_00_bb);

    private sealed class Sink : IFrameSink
    {
        public List<(Side Side, byte[] Frame)> Sent { get; } = [];
        public List<(long Tag, DropReason Reason)> Discarded { get; } = [];
        public List<long> Released { get; } = [];

        public bool Send(Side side, ReadOnlySpan<byte> frame)
        {
            Sent.Add((side, frame.ToArray()));
            return true;
        }

        void IFrameSink.Discard(Side side, ReadOnlySpan<byte> frame, DropReason reason, long holdTag) => Discarded.Add((holdTag, reason));

        void IFrameSink.Released(Side side, long holdTag) => Released.Add(holdTag);

        /// <summary>Frames sent that are IPv4 (not ARP requests).</summary>
        public List<byte[]> Ipv4Sent() => [.. Sent.Where(s => s.Frame[12] == 0x08 && s.Frame[13] == 0x00).Select(s => s.Frame)];
    }

    private static (Neighbours N, NatCounters C, Sink S) Make()
    {
        var settings = EngineHarness.LabSettings();
        var counters = new NatCounters();
        var n = new Neighbours(settings, new AddressPlan(settings, 42), InMac, OutMac, counters, learnFromTraffic: false);
        var sink = new Sink();
        n.Attach(sink);
        return (n, counters, sink);
    }

    /// <summary>Offers an outside-bound UDP frame with source port <paramref name="mark"/> towards <paramref name="nextHop"/>.</summary>
    private static Verdict Offer(Neighbours n, NatCounters c, string nextHop, int mark, long now, out PacketContext ctx)
    {
        byte[] f = Udp(EngineHarness.External, mark, nextHop, 53);
        ctx = new PacketContext(c, now, holdTag: mark);
        return n.SendTo(Side.Outside, f, Ipv4.Parse(nextHop), ref ctx);
    }

    private static Verdict Offer(Neighbours n, NatCounters c, string nextHop, int mark, long now) => Offer(n, c, nextHop, mark, now, out _);

    [Fact]
    public void HeldFramesLeaveInTheOrderTheyCameWhenTheNextHopAnswers()
    {
        var (n, c, sink) = Make();
        Assert.Equal(Verdict.Consumed, Offer(n, c, "198.51.100.7", 1, T0));
        Assert.Equal(Verdict.Consumed, Offer(n, c, "198.51.100.8", 100, T0));
        Assert.Equal(Verdict.Consumed, Offer(n, c, "198.51.100.7", 2, T0 + 1));
        n.Learn(Side.Outside, Ipv4.Parse("198.51.100.8"), HostB, T0 + 2); // frees a slot before A's frames
        Assert.Equal(Verdict.Consumed, Offer(n, c, "198.51.100.7", 3, T0 + 3)); // takes the freed slot
        Assert.Equal(2, sink.Sent.Count(s => s.Frame[12] == 0x08 && s.Frame[13] == 0x06)); // one ARP request per next hop
        sink.Sent.Clear();

        n.Learn(Side.Outside, Ipv4.Parse("198.51.100.7"), HostA, T0 + 4);

        var sent = sink.Ipv4Sent();
        Assert.Equal([1, 2, 3], sent.Select(SrcPort));
        Assert.All(sent, f => Assert.Equal(HostA, MacAddress.Read(f)));
        Assert.All(sent, f => Assert.Equal(OutMac, MacAddress.Read(f.AsSpan(6))));
        Assert.Equal([100, 1, 2, 3], sink.Released);
        Assert.Equal(0, n.HeldCount);
        Assert.Equal(4, c.FramesHeld);
    }

    [Fact]
    public void AHeldFrameIsGivenUpAsNeighbourUnresolvedAfterTheHoldTime()
    {
        var (n, c, sink) = Make();
        Assert.Equal(Verdict.Consumed, Offer(n, c, "198.51.100.7", 7, T0));
        Assert.Equal(1, n.PendingCount(Side.Outside));

        n.Sweep(T0 + Neighbours.HoldMs - 1);
        Assert.Equal(1, n.HeldCount);
        Assert.Empty(sink.Discarded);

        n.Sweep(T0 + Neighbours.HoldMs);
        Assert.Equal(0, n.HeldCount);
        Assert.Equal([(7L, DropReason.NeighbourUnresolved)], sink.Discarded);
        Assert.Equal(1, c.Drops[(int)DropReason.NeighbourUnresolved]);
        Assert.Equal(0, n.PendingCount(Side.Outside)); // the resolution failed with it
        Assert.Equal(1, c.PendingNeighboursExpired);
        Assert.Empty(sink.Ipv4Sent());
    }

    [Fact]
    public void AFullHoldQueueDropsTheFrameWithNeighbourUnresolved()
    {
        var (n, c, _) = Make();
        for (int i = 0; i < Neighbours.HoldSlots; i++)
        {
            Assert.Equal(Verdict.Consumed, Offer(n, c, "198.51.100.7", 1000 + i, T0));
        }
        Assert.Equal(Verdict.Drop, Offer(n, c, "198.51.100.7", 9, T0, out var ctx));
        Assert.Equal(DropReason.NeighbourUnresolved, ctx.DropReason);
        Assert.Equal(1, c.Drops[(int)DropReason.NeighbourUnresolved]);
        Assert.Equal(Neighbours.HoldSlots, n.HeldCount);
    }

    [Fact]
    public void AKnownNeighbourGetsTheFrameAtOnceWithTheSidesAddresses()
    {
        var (n, c, sink) = Make();
        n.Learn(Side.Inside, Ipv4.Parse("10.0.0.9"), HostA, T0);
        byte[] f = Udp("198.51.100.2", 53, "10.0.0.9", 4000);
        var ctx = new PacketContext(c, T0 + 10);
        Assert.Equal(Verdict.ToInside, n.SendTo(Side.Inside, f, Ipv4.Parse("10.0.0.9"), ref ctx));
        Assert.Equal(HostA, MacAddress.Read(f));
        Assert.Equal(InMac, MacAddress.Read(f.AsSpan(6)));
        Assert.Empty(sink.Sent);
    }

    [Fact]
    public void AnArpRequestForNatdIsAnsweredInPlaceAndTeachesTheAsker()
    {
        var (n, c, _) = Make();
        byte[] slot = new byte[FrameBatch.SlotSize];
        Arp(1, InsideHostMac, "10.0.0.2", new byte[6], "10.0.0.1").CopyTo(slot, 0);
        int len = 42;
        var ctx = new PacketContext(c, T0);
        Assert.Equal(Verdict.ToInside, n.HandleArp(slot.AsSpan(0, len), ref len, Side.Inside, ref ctx));
        var arp = new ArpPacket(slot.AsSpan(EthernetHeader.Length));
        Assert.Equal(ArpPacket.OpReply, arp.Operation);
        Assert.Equal(InMac, arp.SenderMac);
        Assert.Equal(Ipv4.Parse("10.0.0.1"), arp.SenderIp);
        Assert.Equal(Ipv4.Parse("10.0.0.2"), arp.TargetIp);
        Assert.Equal(1, n.LearnedCount(Side.Inside));
        Assert.Equal(1, c.ArpRepliesSent);

        Arp(1, InsideHostMac, "10.0.0.2", new byte[6], "10.0.0.77").CopyTo(slot, 0); // not natd's address
        len = 42;
        ctx = new PacketContext(c, T0);
        Assert.Equal(Verdict.Drop, n.HandleArp(slot.AsSpan(0, len), ref len, Side.Inside, ref ctx));
        Assert.Equal(DropReason.NotForUs, ctx.DropReason);
    }
}
