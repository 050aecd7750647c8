using System.Buffers.Binary;
using Natd.Dataplane.Counters;
using Natd.Dataplane.Nat;
using Natd.Dataplane.Packets;
using Natd.Tests.Support;
using Xunit;

namespace Natd.Tests.Nat;

/// <summary>
/// The egress MTU (RFC 791 fragmentation, RFC 1191 fragmentation-needed) and TCP MSS clamping
/// (RFC 6691), through the engine as the poller drives it.
/// </summary>
public class EgressMtuTests
{
    private const string In = EngineHarness.InsideHost;
    private const string Out = EngineHarness.OutsideHost;
    private const string Ext = EngineHarness.External;

    private static EngineHarness Harness(int insideMtu = 0, int outsideMtu = 0, int insideLink = 0, int outsideLink = 0, int mssClamp = 0)
        => new(s => s with
        {
            Inside = s.Inside with { Mtu = insideMtu },
            Outside = s.Outside with { Mtu = outsideMtu },
            MssClamp = mssClamp,
        }, options: new EngineOptions { InsideLinkMtu = insideLink, OutsideLinkMtu = outsideLink });

    private static byte[] Payload(int n)
    {
        var p = new byte[n];
        for (int i = 0; i < n; i++)
        {
            p[i] = (byte)(i * 7 + 3);
        }
        return p;
    }

    private static byte[] NoDf(byte[] frame) => Frames.FixIp(frame, f => f[20] &= 0xBF);

    /// <summary>Rebuilds the datagram the fragments carry (RFC 815), checking each fragment's own shape.</summary>
    private static byte[] Reassemble(List<byte[]> fragments, int mtu)
    {
        var ordered = fragments.Select(f => (Offset: (BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(20)) & 0x1FFF) * 8, Frame: f)).OrderBy(x => x.Offset).ToList();
        int ihl0 = (ordered[0].Frame[14] & 0xF) * 4;
        var data = new List<byte>();
        for (int i = 0; i < ordered.Count; i++)
        {
            byte[] f = ordered[i].Frame;
            int ihl = (f[14] & 0xF) * 4;
            int total = BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(16));
            Assert.True(total <= mtu, $"fragment of {total} bytes above the MTU {mtu}");
            Assert.Equal(14 + total, f.Length);
            Assert.Equal(0, Frames.PlainChecksum(f.AsSpan(14, ihl)));
            Assert.Equal(0, f[20] & 0x40); // DF stays clear
            bool more = (f[20] & 0x20) != 0;
            Assert.Equal(i < ordered.Count - 1, more);
            Assert.Equal(data.Count, ordered[i].Offset);
            if (more)
            {
                Assert.Equal(0, (total - ihl) % 8);
            }
            data.AddRange(f.AsSpan(14 + ihl, total - ihl).ToArray());
        }
        byte[] whole = new byte[14 + ihl0 + data.Count];
        ordered[0].Frame.AsSpan(0, 14 + ihl0).CopyTo(whole);
        data.ToArray().CopyTo(whole, 14 + ihl0);
        BinaryPrimitives.WriteUInt16BigEndian(whole.AsSpan(16), (ushort)(ihl0 + data.Count));
        BinaryPrimitives.WriteUInt16BigEndian(whole.AsSpan(20), 0);
        whole[24] = whole[25] = 0;
        ushort c = Frames.PlainChecksum(whole.AsSpan(14, ihl0));
        BinaryPrimitives.WriteUInt16BigEndian(whole.AsSpan(24), c);
        return whole;
    }

    [Theory]
    [InlineData(1000, 1400)]
    [InlineData(576, 1472)]
    [InlineData(1280, 1281)]
    public void In2out_larger_than_the_outside_mtu_without_df_leaves_translated_in_fragments(int mtu, int size)
    {
        var h = Harness(outsideMtu: mtu);
        byte[] frame = NoDf(Frames.Udp(In, 40000, Out, 53, Payload(size - 28)));
        Assert.Equal(Verdict.Consumed, h.Run(frame, Side.Inside, out _));

        var fragments = h.Sunk.Where(s => s.Side == Side.Outside).Select(s => s.Frame).ToList();
        Assert.Equal((size - 20 + ((mtu - 20) & ~7) - 1) / ((mtu - 20) & ~7), fragments.Count);
        Assert.All(fragments, f => Assert.Equal(Ext, Frames.Src(f)));
        Assert.All(fragments, f => Assert.Equal(Frames.OutsideHostMac, f[..6]));
        byte[] whole = Reassemble(fragments, mtu);
        Assert.Equal(size, whole.Length - 14);
        Assert.True(Frames.ChecksumsValid(whole), "the reassembled datagram's UDP checksum covers the translated port");
        Assert.Equal(Payload(size - 28), whole.AsSpan(14 + 28).ToArray());
        Assert.Equal(53, Frames.DstPort(whole));
        Assert.Equal(1, h.Engine.Counters[ShardCounter.DatagramsFragmented]);
        Assert.Equal(fragments.Count, h.Engine.Counters[ShardCounter.FragmentsMade]);
        Assert.Equal(1, h.Engine.Counters.PacketsIn2Out);
    }

    [Fact]
    public void A_datagram_within_the_mtu_leaves_whole()
    {
        var h = Harness(outsideMtu: 1000);
        byte[] o = h.Out(NoDf(Frames.Udp(In, 40000, Out, 53, Payload(1000 - 28))));
        Assert.Equal(1014, o.Length);
        Assert.Empty(h.Sunk);
        Assert.Equal(0, h.Engine.Counters[ShardCounter.DatagramsFragmented]);
    }

    [Fact]
    public void In2out_larger_than_the_outside_mtu_with_df_is_answered_with_fragmentation_needed_quoting_what_the_host_sent()
    {
        var h = Harness(outsideMtu: 1000);
        byte[] frame = Frames.Udp(In, 40000, Out, 53, Payload(1400 - 28));
        Assert.Equal(Verdict.ToInside, h.Run(frame, Side.Inside, out byte[] reply));

        Assert.Equal(DropReason.FragmentationNeeded, h.LastDrop);
        Assert.Equal(1, h.Drops(DropReason.FragmentationNeeded));
        Assert.Equal("10.0.0.1", Frames.Src(reply));
        Assert.Equal(In, Frames.Dst(reply));
        Assert.Equal(Frames.InsideHostMac, reply[..6]);
        int icmp = Frames.L4Offset(reply);
        Assert.Equal(Icmp.DestinationUnreachable, reply[icmp]);
        Assert.Equal(Icmp.FragmentationNeededCode, reply[icmp + 1]);
        Assert.Equal(1000, BinaryPrimitives.ReadUInt16BigEndian(reply.AsSpan(icmp + 6)));
        Assert.True(Frames.ChecksumsValid(reply));
        // The quote: the inside host's own header and ports, untranslated.
        Assert.Equal(frame.AsSpan(14, 28).ToArray(), reply.AsSpan(icmp + 8, 28).ToArray());
        Assert.Equal(0, h.Engine.Counters.PacketsIn2Out);
        Assert.Equal(1, h.Engine.Counters.IcmpErrorsSent);
    }

    [Fact]
    public void Out2in_larger_than_the_inside_mtu_with_df_is_answered_from_the_external_address_and_without_df_is_fragmented()
    {
        var h = Harness(insideMtu: 1200);
        byte[] first = h.Out(Frames.Udp(In, 40000, Out, 53));
        int port = Frames.SrcPort(first);

        byte[] big = EngineHarness.FromOutside(Frames.Udp(Out, 53, Ext, port, Payload(1500 - 28)));
        Assert.Equal(Verdict.ToOutside, h.Run(big, Side.Outside, out byte[] reply));
        Assert.Equal(Ext, Frames.Src(reply));
        Assert.Equal(Out, Frames.Dst(reply));
        int icmp = Frames.L4Offset(reply);
        Assert.Equal((Icmp.DestinationUnreachable, Icmp.FragmentationNeededCode), (reply[icmp], reply[icmp + 1]));
        Assert.Equal(1200, BinaryPrimitives.ReadUInt16BigEndian(reply.AsSpan(icmp + 6)));
        Assert.Equal(big.AsSpan(14, 28).ToArray(), reply.AsSpan(icmp + 8, 28).ToArray());

        Assert.Equal(Verdict.Consumed, h.Run(NoDf(big), Side.Outside, out _));
        var fragments = h.Sunk.Where(s => s.Side == Side.Inside).Select(s => s.Frame).ToList();
        Assert.Equal(2, fragments.Count);
        byte[] whole = Reassemble(fragments, 1200);
        Assert.Equal(In, Frames.Dst(whole));
        Assert.Equal(40000, Frames.DstPort(whole));
        Assert.True(Frames.ChecksumsValid(whole));
    }

    [Fact]
    public void The_link_mtu_applies_unless_the_configuration_names_one()
    {
        var link = Harness(outsideLink: 1000);
        Assert.Equal(Verdict.ToInside, link.Run(Frames.Udp(In, 40000, Out, 53, Payload(1100 - 28)), Side.Inside, out _));
        Assert.Equal(DropReason.FragmentationNeeded, link.LastDrop);

        var configured = Harness(outsideMtu: 1200, outsideLink: 1000);
        configured.Out(Frames.Udp(In, 40000, Out, 53, Payload(1100 - 28)));

        var none = Harness();
        none.Out(Frames.Udp(In, 40000, Out, 53, Payload(2000 - 28)));
    }

    [Fact]
    public void A_link_mtu_changed_while_natd_runs_is_followed_unless_one_is_configured()
    {
        var h = Harness(outsideLink: 1500, mssClamp: NatSettings.MssClampAuto);
        h.Out(Frames.Udp(In, 40000, Out, 53, Payload(1400 - 28)));
        h.Engine.SetLinkMtus(1500, 1300);
        Assert.Equal(Verdict.ToInside, h.Run(Frames.Udp(In, 40000, Out, 53, Payload(1400 - 28)), Side.Inside, out byte[] reply));
        Assert.Equal(1300, BinaryPrimitives.ReadUInt16BigEndian(reply.AsSpan(Frames.L4Offset(reply) + 6)));
        Assert.Equal(1260, h.Engine.MssClampInForce);

        var configured = Harness(outsideMtu: 1500, outsideLink: 1500);
        configured.Engine.SetLinkMtus(1500, 1300);
        configured.Out(Frames.Udp(In, 40000, Out, 53, Payload(1400 - 28)));
    }

    [Fact]
    public void A_reload_changes_the_configured_mtu()
    {
        var h = Harness(outsideMtu: 1500);
        h.Out(Frames.Udp(In, 40000, Out, 53, Payload(1400 - 28)));
        Assert.Null(h.Engine.UpdateSettings(h.Engine.Settings with { Outside = h.Engine.Settings.Outside with { Mtu = 1300 } }));
        Assert.Equal(Verdict.ToInside, h.Run(Frames.Udp(In, 40000, Out, 53, Payload(1400 - 28)), Side.Inside, out _));
        Assert.Equal(DropReason.FragmentationNeeded, h.LastDrop);
    }

    [Fact]
    public void A_fragment_too_large_is_split_keeping_its_offset_and_the_last_piece_its_more_fragments_flag()
    {
        var h = Harness(insideMtu: 600);
        byte[] first = h.Out(Frames.Udp(In, 40000, Out, 53));
        int port = Frames.SrcPort(first);
        // The first fragment of a datagram from outside: 1,000 bytes of data at offset 0, more to come.
        byte[] whole = EngineHarness.FromOutside(Frames.Udp(Out, 53, Ext, port, Payload(1600)));
        byte[] frag = new byte[14 + 20 + 1000];
        whole.AsSpan(0, frag.Length).CopyTo(frag);
        frag = Frames.FixIp(frag, f =>
        {
            BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(16), 1020);
            BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(20), 0x2000); // MF, offset 0, DF clear
        });
        Assert.Equal(Verdict.Consumed, h.Run(frag, Side.Outside, out _));
        var pieces = h.Sunk.Where(s => s.Side == Side.Inside).Select(s => s.Frame).ToList();
        Assert.Equal(2, pieces.Count);
        Assert.All(pieces, p => Assert.NotEqual(0, p[20] & 0x20)); // the datagram goes on after the last piece
        Assert.Equal(0, BinaryPrimitives.ReadUInt16BigEndian(pieces[0].AsSpan(20)) & 0x1FFF);
        Assert.Equal(576 / 8, BinaryPrimitives.ReadUInt16BigEndian(pieces[1].AsSpan(20)) & 0x1FFF);
        Assert.Equal(20 + 576, BinaryPrimitives.ReadUInt16BigEndian(pieces[0].AsSpan(16)));
        Assert.Equal(20 + 1000 - 576, BinaryPrimitives.ReadUInt16BigEndian(pieces[1].AsSpan(16)));
        Assert.All(pieces, p => Assert.Equal(In, Frames.Dst(p)));
    }

    [Fact]
    public void Options_without_the_copied_flag_stay_in_the_first_fragment_only()
    {
        // Router alert (148: copied), record route (7: not copied, 7 bytes), a NOP and end of list.
        byte[] header = new byte[20 + 16];
        header[0] = 0x49;
        byte[] options = [148, 4, 0, 0, 7, 7, 4, 0, 0, 0, 0, 1, 0, 0, 0, 0];
        options.CopyTo(header, 20);
        Span<byte> later = stackalloc byte[60];
        int n = EgressMtu.CopiedOptions(header, later);
        Assert.Equal(24, n);
        Assert.Equal(0x46, later[0]);
        Assert.Equal(new byte[] { 148, 4, 0, 0 }, later[20..24].ToArray());

        // A malformed list (an option longer than the header) copies what came before it.
        byte[] broken = (byte[])header.Clone();
        broken[25] = 40;
        Assert.Equal(24, EgressMtu.CopiedOptions(broken, later));
    }

    [Fact]
    public void An_oversize_frame_waiting_for_arp_leaves_in_fragments_when_the_neighbour_answers()
    {
        var h = new EngineHarness(s => s with { Outside = s.Outside with { Mtu = 1000 } }, learnNeighbours: false);
        Assert.Equal(Verdict.Consumed, h.Run(NoDf(Frames.Udp(In, 40000, "203.0.113.9", 53, Payload(1400 - 28))), Side.Inside, out _));
        Assert.Single(h.Sunk); // the ARP request for the gateway
        byte[] reply = Frames.Arp(ArpPacket.OpReply, EngineHarness.RouterMac, "198.51.100.254", Frames.GatewayOutsideMac, Ext, Frames.GatewayOutsideMac);
        h.Run(reply, Side.Outside, out _);
        var fragments = h.Sunk.Skip(1).Where(s => s.Side == Side.Outside).Select(s => s.Frame).ToList();
        Assert.Equal(2, fragments.Count);
        Assert.All(fragments, f => Assert.Equal(EngineHarness.RouterMac, f[..6]));
        Assert.True(Frames.ChecksumsValid(Reassemble(fragments, 1000)));
    }

    [Fact]
    public void An_oversize_datagram_with_df_natd_cannot_quote_is_dropped_and_counted()
    {
        // An ICMP error from outside about an inside host's datagram, quoting more than the inside MTU: translated, then too large.
        var h = Harness(insideMtu: 600);
        byte[] sent = h.Out(Frames.Udp(In, 40000, Out, 53, Payload(1000)));
        byte[] error = EngineHarness.FromOutside(Frames.IcmpError(Out, Ext, Icmp.DestinationUnreachable, 3, sent, quoteBytes: 700));
        Assert.Equal(Verdict.Drop, h.Run(error, Side.Outside, out _));
        Assert.Equal(DropReason.FragmentationNeeded, h.LastDrop);
        Assert.Equal(0, h.Engine.Counters.IcmpErrorsSent);
    }

    private static byte[] SynWithMss(string src, int sport, string dst, int dport, ushort mss, bool nopFirst, byte flags = Tcp.Syn)
    {
        byte[] options = nopFirst ? [1, 2, 4, (byte)(mss >> 8), (byte)mss, 1, 1, 0] : [2, 4, (byte)(mss >> 8), (byte)mss];
        var l4 = new byte[20 + options.Length];
        BinaryPrimitives.WriteUInt16BigEndian(l4, (ushort)sport);
        BinaryPrimitives.WriteUInt16BigEndian(l4.AsSpan(2), (ushort)dport);
        BinaryPrimitives.WriteUInt32BigEndian(l4.AsSpan(4), 1000);
        l4[12] = (byte)((l4.Length / 4) << 4);
        l4[13] = flags;
        BinaryPrimitives.WriteUInt16BigEndian(l4.AsSpan(14), 65535);
        options.CopyTo(l4, 20);
        BinaryPrimitives.WriteUInt16BigEndian(l4.AsSpan(16), Frames.PlainChecksum(l4, Frames.Pseudo(Frames.Ip(src), Frames.Ip(dst), 6, l4.Length)));
        return Frames.Wrap(src, dst, 6, l4, 64, null, null);
    }

    private static int Mss(byte[] f, bool nopFirst) => BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(Frames.L4Offset(f) + (nopFirst ? 23 : 22)));

    [Theory]
    [InlineData(false)]
    [InlineData(true)] // the MSS value at an odd offset: the checksum update swaps its bytes
    public void Mss_clamping_lowers_the_syn_and_syn_ack_either_way_with_valid_checksums(bool nopFirst)
    {
        var h = Harness(mssClamp: 1200);
        byte[] syn = h.Out(SynWithMss(In, 40000, Out, 80, 1460, nopFirst));
        Assert.Equal(1200, Mss(syn, nopFirst));
        Assert.True(Frames.ChecksumsValid(syn));
        int port = Frames.SrcPort(syn);

        byte[] synAck = h.Out(EngineHarness.FromOutside(SynWithMss(Out, 80, Ext, port, 8960, nopFirst, Tcp.Syn | Tcp.Ack)), Side.Outside);
        Assert.Equal(1200, Mss(synAck, nopFirst));
        Assert.True(Frames.ChecksumsValid(synAck));
        Assert.Equal(2, h.Engine.Counters[ShardCounter.MssClamped]);
    }

    [Fact]
    public void Mss_clamping_leaves_a_smaller_mss_and_a_segment_without_syn_alone_and_is_off_by_default()
    {
        var h = Harness(mssClamp: 1200);
        Assert.Equal(1000, Mss(h.Out(SynWithMss(In, 40000, Out, 80, 1000, false)), false));
        Assert.Equal(1460, Mss(h.Out(SynWithMss(In, 40000, Out, 80, 1460, false, Tcp.Ack)), false));
        Assert.Equal(0, h.Engine.Counters[ShardCounter.MssClamped]);

        var off = Harness();
        Assert.Equal(1460, Mss(off.Out(SynWithMss(In, 40001, Out, 80, 1460, false)), false));
    }

    [Fact]
    public void Mss_clamp_auto_is_the_smaller_mtu_less_40_and_off_with_no_mtu_known()
    {
        Assert.Equal(1452, Harness(outsideLink: 1492, insideLink: 1500, mssClamp: NatSettings.MssClampAuto).Engine.MssClampInForce);
        Assert.Equal(1360, Harness(insideMtu: 1400, mssClamp: NatSettings.MssClampAuto).Engine.MssClampInForce);
        Assert.Equal(0, Harness(mssClamp: NatSettings.MssClampAuto).Engine.MssClampInForce);
        var h = Harness(outsideLink: 1492, mssClamp: NatSettings.MssClampAuto);
        Assert.Equal(1452, Mss(h.Out(SynWithMss(In, 40000, Out, 80, 1460, false)), false));
    }
}
