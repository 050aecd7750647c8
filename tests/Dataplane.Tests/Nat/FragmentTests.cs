using System.Buffers.Binary;
using Natd.Dataplane.Io;
using Natd.Dataplane.Nat;
using Natd.Dataplane.Packets;
using Natd.Tests.Support;
using static Natd.Tests.Support.Frames;

namespace Natd.Tests.Nat;

/// <summary>
/// RFC 4787 REQ-14: fragments of TCP, UDP and ICMP datagrams by virtual reassembly. The parser's
/// marks, <see cref="FragmentTable"/> used directly (in order, reversed, first last, duplicates,
/// overlap, overflow, timeout, memory bound), and the engine: every fragment of a datagram takes the
/// first fragment's translation and leaves as a fragment; joined again, the translated fragments
/// are exactly the translated whole datagram.
/// </summary>
public class FragmentTests
{
    private const string In = EngineHarness.InsideHost, Out = EngineHarness.OutsideHost, Ext = EngineHarness.External;
    private const ulong Seed = 0x1234_5678_9ABC_DEF0UL;

    private static byte[] Payload(int n)
    {
        var p = new byte[n];
        for (int i = 0; i < n; i++)
        {
            p[i] = (byte)(i * 7 + 3);
        }
        return p;
    }

    /// <summary>A whole datagram as <see cref="FragmentKit.Join"/> rebuilds it: identification <paramref name="id"/>, no flags.</summary>
    private static byte[] As(byte[] f, ushort id)
    {
        var c = (byte[])f.Clone();
        BinaryPrimitives.WriteUInt16BigEndian(c.AsSpan(18), id);
        c[20] = 0;
        c[21] = 0;
        return FragmentKit.FixIpChecksum(c);
    }

    private static ParsedFrame Parse(byte[] f, Side side = Side.Inside)
    {
        FrameParser.Parse(f, side, Seed, out ParsedFrame p);
        return p;
    }

    // --- the parser ---

    [Fact]
    public void Parser_marks_a_first_fragment_and_reads_its_ports_whatever_the_udp_length_says()
    {
        var frags = FragmentKit.Split(Udp(In, 40000, Out, 53, Payload(4000)), 1480, id: 0x4242);
        var p = Parse(frags[0]);
        Assert.Equal(ParsedFrame.None, p.Drop);
        Assert.Equal(ParsedFrame.None, p.L4Drop); // the UDP length (4008) is the datagram's, beyond this fragment
        Assert.True(p.IsFragment);
        Assert.False(p.IsLaterFragment);
        Assert.True(p.MoreFragments);
        Assert.Equal(0, p.FragmentOffset);
        Assert.Equal(0x4242, BinaryPrimitives.ReverseEndianness(p.FragmentId));
        Assert.True(p.HasKey);
        Assert.Equal(40000, BinaryPrimitives.ReverseEndianness(p.Key.SourcePort));
    }

    [Fact]
    public void Parser_marks_a_later_fragment_without_a_key()
    {
        var frags = FragmentKit.Split(Udp(In, 40000, Out, 53, Payload(4000)), 1480, id: 7);
        var p = Parse(frags[2]);
        Assert.Equal(ParsedFrame.None, p.Drop);
        Assert.Equal(ParsedFrame.None, p.L4Drop);
        Assert.True(p.IsLaterFragment);
        Assert.False(p.MoreFragments);
        Assert.Equal(2960, p.FragmentOffset);
        Assert.False(p.HasKey);
    }

    [Fact]
    public void Parser_drops_a_fragment_reaching_past_65535_bytes()
    {
        var f = FragmentKit.Piece(Udp(In, 40000, Out, 53, Payload(1000)), 8, 200, more: false);
        f[20] = 0x1F; // offset 8191 units: 65,528 + 200 bytes
        f[21] = 0xFF;
        Assert.Equal(DropReason.BadTotalLength, Parse(FragmentKit.FixIpChecksum(f)).Drop);
    }

    [Fact]
    public void Parser_drops_a_fragmented_icmp_error()
    {
        var err = IcmpError(Out, Ext, 3, 3, Udp(Ext, 40000, Out, 53), quoteBytes: 64);
        var first = FragmentKit.Piece(err, 0, 32, more: true);
        Assert.Equal(DropReason.Fragment, Parse(first, Side.Outside).L4Drop);
    }

    // --- FragmentTable ---

    private static (FragmentTable T, NatCounters C) Table(int datagrams = 16, int perDatagram = 8, int timeout = 2)
    {
        var c = new NatCounters();
        return (new FragmentTable(new FragmentSettings(datagrams, perDatagram, timeout), c), c);
    }

    private static List<byte[]> Datagram(ushort id, int size = 4000, string src = In) => FragmentKit.Split(Udp(src, 40000, Out, 53, Payload(size)), 1480, id);

    [Fact]
    public void Table_in_order_completes_and_forgets_the_datagram()
    {
        var (t, _) = Table();
        var f = Datagram(1);
        int d = t.Track(Parse(f[0]), 0, out _);
        Assert.True(d >= 0);
        t.SetTranslated(d, 0x01020304);
        Assert.Equal(d, t.Track(Parse(f[1]), 1, out _));
        Assert.False(t.IsComplete(d));
        Assert.Equal(d, t.Track(Parse(f[2]), 2, out _));
        Assert.True(t.IsComplete(d));
        t.Remove(d);
        Assert.Equal(0, t.Count);
    }

    [Fact]
    public void Table_reversed_holds_the_later_fragments_until_the_first_in_arrival_order()
    {
        var (t, _) = Table();
        var f = Datagram(2);
        int d = t.Track(Parse(f[2]), 0, out _);
        Assert.Equal(FragmentState.Pending, t.StateOf(d));
        Assert.True(t.Hold(d, f[2], FrameFlags.None, 12));
        Assert.Equal(d, t.Track(Parse(f[1]), 0, out _));
        Assert.True(t.Hold(d, f[1], FrameFlags.None, 11));
        Assert.Equal(2, t.HeldCount);
        Assert.Equal(d, t.Track(Parse(f[0]), 0, out _));
        Assert.True(t.IsComplete(d));
        int h = t.TakeHeld(d);
        Assert.Equal(12, t.HeldTag(h));
        Assert.Equal(f[2], t.HeldFrame(h)[..t.HeldLength(h)].ToArray());
        t.FreeHeld(h);
        h = t.TakeHeld(d);
        Assert.Equal(11, t.HeldTag(h));
        t.FreeHeld(h);
        Assert.Equal(-1, t.TakeHeld(d));
        Assert.Equal(0, t.HeldCount);
    }

    [Fact]
    public void Table_first_last_completes_with_the_first()
    {
        var (t, _) = Table();
        var f = Datagram(3);
        int d = t.Track(Parse(f[1]), 0, out _);
        t.Track(Parse(f[2]), 0, out _);
        Assert.False(t.IsComplete(d));
        t.Track(Parse(f[0]), 0, out _);
        Assert.True(t.IsComplete(d));
    }

    [Fact]
    public void Table_drops_an_exact_duplicate_and_keeps_the_datagram()
    {
        var (t, _) = Table();
        var f = Datagram(4);
        int d = t.Track(Parse(f[0]), 0, out _);
        Assert.Equal(-1, t.Track(Parse(f[0]), 0, out DropReason why));
        Assert.Equal(DropReason.FragmentOverlap, why);
        Assert.Equal(d, t.Track(Parse(f[1]), 0, out _));
        Assert.Equal(FragmentState.Pending, t.StateOf(d));
    }

    [Fact]
    public void Table_refuses_a_datagram_with_overlapping_fragments_teardrop()
    {
        var (t, c) = Table();
        var whole = Udp(In, 40000, Out, 53, Payload(4000));
        int d = t.Track(Parse(FragmentKit.Piece(whole, 1480, 1480, more: true, id: 5)), 0, out _);
        Assert.True(t.Hold(d, FragmentKit.Piece(whole, 1480, 1480, more: true, id: 5), FrameFlags.None, 0));
        // Teardrop: a fragment starting inside the previous one.
        Assert.Equal(-1, t.Track(Parse(FragmentKit.Piece(whole, 2000, 1000, more: true, id: 5)), 0, out DropReason why));
        Assert.Equal(DropReason.FragmentOverlap, why);
        Assert.Equal(FragmentState.Dropped, t.StateOf(d));
        Assert.Equal(1, c.Drops[(int)DropReason.FragmentOfDroppedDatagram]); // the held one
        Assert.Equal(0, t.HeldCount);
        Assert.Equal(-1, t.Track(Parse(FragmentKit.Piece(whole, 0, 1480, more: true, id: 5)), 0, out why));
        Assert.Equal(DropReason.FragmentOfDroppedDatagram, why);
    }

    [Fact]
    public void Table_refuses_a_new_datagram_beyond_max_datagrams_and_a_fragment_beyond_max_per_datagram()
    {
        var (t, _) = Table(datagrams: 2, perDatagram: 2);
        Assert.True(t.Track(Parse(Datagram(10)[0]), 0, out _) >= 0);
        Assert.True(t.Track(Parse(Datagram(11)[0]), 0, out _) >= 0);
        Assert.Equal(-1, t.Track(Parse(Datagram(12)[0]), 0, out DropReason why));
        Assert.Equal(DropReason.FragmentDatagramLimit, why);

        var f = Datagram(10);
        int d = t.Track(Parse(f[1]), 0, out _);
        Assert.True(d >= 0);
        Assert.Equal(-1, t.Track(Parse(f[2]), 0, out why));
        Assert.Equal(DropReason.FragmentPerDatagramLimit, why);
        Assert.Equal(FragmentState.Dropped, t.StateOf(d));
    }

    [Fact]
    public void Table_times_out_held_fragments_and_reclaims_the_slot_for_a_new_datagram()
    {
        var (t, c) = Table(datagrams: 1, timeout: 2);
        var f = Datagram(20);
        int d = t.Track(Parse(f[2]), 1_000, out _);
        Assert.True(t.Hold(d, f[2], FrameFlags.None, 0));
        Assert.Equal(0, t.Sweep(2_999, 100)); // not yet
        Assert.Equal(-1, t.Track(Parse(Datagram(21)[0]), 2_999, out DropReason why));
        Assert.Equal(DropReason.FragmentDatagramLimit, why);
        Assert.True(t.Track(Parse(Datagram(21)[0]), 3_000, out _) >= 0); // the expired one gave its slot
        Assert.Equal(1, c.Drops[(int)DropReason.FragmentTimeout]);
        Assert.Equal(0, t.HeldCount);
        Assert.Equal(1, t.Sweep(5_000, 100));
        Assert.Equal(0, t.Count);
    }

    [Fact]
    public void Table_memory_is_bounded_and_nothing_is_allocated_per_fragment()
    {
        var (t, c) = Table(datagrams: 64, perDatagram: 4);
        var frames = new List<byte[]>();
        var parsed = new ParsedFrame[4000];
        for (int i = 0; i < parsed.Length; i++)
        {
            var f = FragmentKit.Piece(Udp(In, 40000, Out, 53, Payload(3000)), 1480, 1480, more: true, id: (ushort)i);
            frames.Add(f);
            parsed[i] = Parse(f);
        }
        long footprint = t.Footprint;
        t.Track(parsed[0], 0, out _); // warm up
        long before = GC.GetAllocatedBytesForCurrentThread();
        int held = 0, refused = 0;
        for (int i = 1; i < parsed.Length; i++)
        {
            int d = t.Track(parsed[i], i, out DropReason why);
            refused += why == DropReason.FragmentDatagramLimit ? 1 : 0;
            if (d >= 0 && t.Hold(d, frames[i], FrameFlags.None, i))
            {
                held++;
            }
            t.Sweep(i, 8);
        }
        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
        Assert.True(t.Count <= t.Capacity);
        Assert.True(t.HeldCount <= t.HeldCapacity);
        Assert.Equal(footprint, t.Footprint);
        Assert.True(refused > 0); // the engine counts a refused fragment (PacketContext.Drop)
        Assert.True(c.Drops[(int)DropReason.FragmentTimeout] > 0); // held ones whose first never came
        Assert.True(held > 0);
        Assert.True(t.Footprint < 64 * (FrameBatch.SlotSize + 1024) + 4096, $"footprint {t.Footprint}");
    }

    // --- through the engine ---

    private static EngineHarness Harness(Func<NatSettings, NatSettings>? tweak = null) => new(tweak);

    /// <summary>Runs fragments in the given order; returns every frame that left (direct verdicts and frames released through the sink), by side.</summary>
    private static List<byte[]> RunAll(EngineHarness h, IEnumerable<byte[]> frames, Side ingress, Side egress)
    {
        var outList = new List<byte[]>();
        foreach (var f in frames)
        {
            h.Sunk.Clear();
            var v = h.Run(f, ingress, out var o);
            if (v == (egress == Side.Inside ? Verdict.ToInside : Verdict.ToOutside))
            {
                outList.Add(o);
            }
            foreach (var (side, frame) in h.Sunk)
            {
                if (side == egress)
                {
                    outList.Add(frame);
                }
            }
        }
        return outList;
    }

    private static IEnumerable<byte[]> Order(List<byte[]> f, string order) => order switch
    {
        "in-order" => f,
        "reversed" => Enumerable.Reverse(f),
        "first-last" => [.. f.Skip(1), f[0]],
        "middle-first" => [f[1], f[0], f[2]],
        _ => throw new ArgumentException(order),
    };

    [Theory]
    [InlineData("in-order")]
    [InlineData("reversed")]
    [InlineData("first-last")]
    [InlineData("middle-first")]
    public void Udp_4000_bytes_each_way_in_any_order_joins_to_the_translated_datagram(string order)
    {
        var h = Harness();
        var whole = Udp(In, 40000, Out, 5000, Payload(4000));
        var outs = RunAll(h, Order(FragmentKit.Split(whole, 1480, id: 0x1111), order), Side.Inside, Side.Outside);
        Assert.Equal(3, outs.Count);
        Assert.All(outs, o => Assert.True(FragmentKit.IpChecksumValid(o)));
        Assert.All(outs, o => Assert.Equal(Ext, Src(o)));
        Assert.All(outs, o => Assert.Equal(OutsideHostMac, o[..6]));
        var joined = FragmentKit.Join(outs);
        Assert.True(ChecksumsValid(joined)); // the UDP checksum, patched in the first fragment, covers the whole datagram
        int ext = SrcPort(joined);
        Assert.Equal(As(WithMacs(Udp(Ext, ext, Out, 5000, Payload(4000), ttl: 63), GatewayOutsideMac, OutsideHostMac), 0x1111), joined);
        Assert.Equal(3, h.Engine.Counters[Natd.Dataplane.Counters.ShardCounter.FragmentsTranslated]);
        Assert.Equal(0, h.Engine.Fragments.Count); // all bytes passed: forgotten at once

        var reply = EngineHarness.FromOutside(Udp(Out, 5000, Ext, ext, Payload(3500)));
        var back = RunAll(h, Order(FragmentKit.Split(reply, 1480, id: 0x2222), order), Side.Outside, Side.Inside);
        Assert.Equal(3, back.Count);
        Assert.All(back, o => Assert.Equal(In, Dst(o)));
        var joinedBack = FragmentKit.Join(back);
        Assert.True(ChecksumsValid(joinedBack));
        Assert.Equal(As(WithMacs(Udp(Out, 5000, In, 40000, Payload(3500), ttl: 63), GatewayInsideMac, InsideHostMac), 0x2222), joinedBack);
        if (order != "in-order")
        {
            Assert.True(h.Engine.Counters[Natd.Dataplane.Counters.ShardCounter.FragmentsHeld] > 0);
            Assert.Equal(h.Engine.Counters[Natd.Dataplane.Counters.ShardCounter.FragmentsHeld], h.Engine.Counters[Natd.Dataplane.Counters.ShardCounter.FragmentsReleased]);
        }
    }

    [Fact]
    public void Ping_4000_bytes_request_and_reply_are_translated_by_identifier()
    {
        var h = Harness();
        var req = Icmp(In, Out, 8, 0, 777, 1, Payload(4000));
        var outs = RunAll(h, Enumerable.Reverse(FragmentKit.Split(req, 1480, id: 9)), Side.Inside, Side.Outside);
        var joined = FragmentKit.Join(outs);
        Assert.True(ChecksumsValid(joined));
        int id = IcmpId(joined);
        Assert.Equal(As(WithMacs(Icmp(Ext, Out, 8, 0, id, 1, Payload(4000), ttl: 63), GatewayOutsideMac, OutsideHostMac), 9), joined);

        var rep = EngineHarness.FromOutside(Icmp(Out, Ext, 0, 0, id, 1, Payload(4000)));
        var back = FragmentKit.Join(RunAll(h, FragmentKit.Split(rep, 1480, id: 10), Side.Outside, Side.Inside));
        Assert.True(ChecksumsValid(back));
        Assert.Equal(As(WithMacs(Icmp(Out, In, 0, 0, 777, 1, Payload(4000), ttl: 63), GatewayInsideMac, InsideHostMac), 10), back);
    }

    [Fact]
    public void Tcp_segment_in_fragments_is_translated_after_the_handshake()
    {
        var h = Harness();
        int ext = SrcPort(h.Out(Tcp(In, 33000, Out, 80, 0x02, seq: 1)));
        h.Out(EngineHarness.FromOutside(Tcp(Out, 80, Ext, ext, 0x12, seq: 500, ack: 2)), Side.Outside);
        var seg = Tcp(In, 33000, Out, 80, 0x18, seq: 2, ack: 501, payload: Payload(3000));
        var joined = FragmentKit.Join(RunAll(h, Order(FragmentKit.Split(seg, 1480, id: 3), "first-last"), Side.Inside, Side.Outside));
        Assert.True(ChecksumsValid(joined));
        Assert.Equal(As(WithMacs(Tcp(Ext, ext, Out, 80, 0x18, seq: 2, ack: 501, payload: Payload(3000), ttl: 63), GatewayOutsideMac, OutsideHostMac), 3), joined);
    }

    [Fact]
    public void Fragments_of_a_datagram_whose_first_fragment_is_dropped_are_dropped_too()
    {
        var h = Harness();
        // Unsolicited from outside: the first fragment has no session.
        var f = FragmentKit.Split(EngineHarness.FromOutside(Udp(Out, 5000, Ext, 40000, Payload(4000))), 1480, id: 77);
        Assert.Equal(Verdict.Consumed, h.Run(f[2], Side.Outside, out _));
        Assert.Equal(Verdict.Drop, h.Run(f[0], Side.Outside, out _));
        Assert.Equal(DropReason.NoSession, h.LastDrop);
        Assert.Equal(1, h.Drops(DropReason.FragmentOfDroppedDatagram)); // the held one
        Assert.Equal(Verdict.Drop, h.Run(f[1], Side.Outside, out _));
        Assert.Equal(DropReason.FragmentOfDroppedDatagram, h.LastDrop);
        Assert.Equal(2, h.Drops(DropReason.FragmentOfDroppedDatagram));
        Assert.Empty(h.Sunk);
    }

    [Fact]
    public void Overlapping_fragments_are_dropped_and_counted()
    {
        var h = Harness();
        var whole = Udp(In, 40000, Out, 53, Payload(4000));
        Assert.Equal(Verdict.ToOutside, h.Run(FragmentKit.Piece(whole, 0, 1480, more: true, id: 5), Side.Inside, out _));
        Assert.Equal(Verdict.Drop, h.Run(FragmentKit.Piece(whole, 1000, 1480, more: true, id: 5), Side.Inside, out _));
        Assert.Equal(DropReason.FragmentOverlap, h.LastDrop);
        Assert.Equal(Verdict.Drop, h.Run(FragmentKit.Piece(whole, 2960, 1048, more: false, id: 5), Side.Inside, out _));
        Assert.Equal(DropReason.FragmentOfDroppedDatagram, h.LastDrop);
    }

    [Fact]
    public void Held_fragments_whose_first_never_comes_time_out()
    {
        var h = Harness(s => s with { Fragments = new FragmentSettings(16, 8, 2) });
        var f = FragmentKit.Split(Udp(In, 40000, Out, 53, Payload(4000)), 1480, id: 6);
        Assert.Equal(Verdict.Consumed, h.Run(f[1], Side.Inside, out _));
        Assert.Equal(Verdict.Consumed, h.Run(f[2], Side.Inside, out _));
        h.Engine.Sweep(h.Now + 1_999, 100);
        Assert.Equal(0, h.Drops(DropReason.FragmentTimeout));
        h.Engine.Sweep(h.Now + 2_000, 100);
        Assert.Equal(2, h.Drops(DropReason.FragmentTimeout));
        Assert.Equal(0, h.Engine.Fragments.Count);
        Assert.Empty(h.Sunk);
    }

    [Fact]
    public void An_icmp_error_quoting_a_first_fragment_reaches_the_inside_host()
    {
        var h = Harness();
        var f = FragmentKit.Split(Udp(In, 40000, Out, 53, Payload(4000)), 1480, id: 8);
        var outs = RunAll(h, f, Side.Inside, Side.Outside);
        // The remote's error (e.g. reassembly time exceeded) quotes the translated first fragment.
        var err = EngineHarness.FromOutside(IcmpError(Out, Ext, 11, 1, outs[0]));
        var o = h.Out(err, Side.Outside);
        Assert.Equal(In, Dst(o));
        Assert.True(ChecksumsValid(o));
        Assert.Equal(In, new System.Net.IPAddress(o.AsSpan(14 + 20 + 8 + 12, 4)).ToString()); // the quote's source restored
    }

    [Fact]
    public void Port_less_and_hairpinned_fragments_stay_dropped_as_fragment()
    {
        var h = Harness();
        var gre = FixIp(Wrap(In, Out, 47, new byte[64], 64, null, null), f => f[20] = 0x20);
        Assert.Equal(Verdict.Drop, h.Run(gre, Side.Inside, out _));
        Assert.Equal(DropReason.Fragment, h.LastDrop);
        var hair = FragmentKit.Split(Udp(In, 40000, Ext, 5000, Payload(3000)), 1480, id: 1);
        Assert.Equal(Verdict.Drop, h.Run(hair[0], Side.Inside, out _));
        Assert.Equal(DropReason.Fragment, h.LastDrop);
    }

    [Fact]
    public void A_fragmented_ping_of_natd_itself_is_dropped_not_answered_in_part()
    {
        var h = Harness();
        var f = FragmentKit.Split(EngineHarness.FromOutside(Icmp(Out, Ext, 8, 0, 5, 1, Payload(3000))), 1480, id: 4);
        Assert.Equal(Verdict.Drop, h.Run(f[0], Side.Outside, out _));
        Assert.Equal(DropReason.Fragment, h.LastDrop);
        Assert.Equal(Verdict.Drop, h.Run(f[1], Side.Outside, out _));
        Assert.Equal(DropReason.FragmentOfDroppedDatagram, h.LastDrop);
        Assert.Equal(0, h.Engine.Counters.EchoRepliesSent);
    }

    [Fact]
    public void Fragmented_isakmp_with_ipsec_masquerading_takes_the_first_fragments_translation()
    {
        // IKE with certificates: UDP 500 to 500 is routed by cookies, not by a session.
        var h = Harness(s => s with { Algs = s.Algs with { Ipsec = s.Algs.Ipsec with { Enabled = true } } });
        var isakmp = new byte[3000];
        isakmp[0] = 0x11; // initiator cookie
        isakmp[7] = 0x22;
        var f = FragmentKit.Split(Udp(In, 500, Out, 500, isakmp), 1480, id: 12);
        var outs = RunAll(h, Order(f, "first-last"), Side.Inside, Side.Outside);
        Assert.Equal(3, outs.Count);
        Assert.All(outs, o => Assert.Equal(Ext, Src(o)));
        var joined = FragmentKit.Join(outs);
        Assert.True(ChecksumsValid(joined));
        Assert.Equal(500, SrcPort(joined));

        var answer = (byte[])isakmp.Clone();
        answer[8] = 0x33; // responder cookie
        var back = RunAll(h, Order(FragmentKit.Split(EngineHarness.FromOutside(Udp(Out, 500, Ext, 500, answer)), 1480, id: 13), "reversed"), Side.Outside, Side.Inside);
        Assert.Equal(3, back.Count);
        var joinedBack = FragmentKit.Join(back);
        Assert.True(ChecksumsValid(joinedBack));
        Assert.Equal(In, Dst(joinedBack));
        Assert.Equal(500, DstPort(joinedBack));
    }
}
