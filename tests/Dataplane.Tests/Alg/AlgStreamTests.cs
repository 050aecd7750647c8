using Natd.Dataplane.Alg;
using Natd.Dataplane.Alg.Ftp;
using Natd.Dataplane.Alg.Irc;
using Natd.Dataplane.Alg.Pptp;
using Natd.Dataplane.Packets;
using Natd.Tests.Support;
using static Natd.Tests.Alg.AlgFrames;

namespace Natd.Tests.Alg;

/// <summary>
/// ALG control streams (docs/architecture.md, "ALG control streams"): commands and messages split
/// across segments are held in the connection's cumulation buffer and go out whole, rewritten;
/// several commands in one segment are all handled; sequence numbers stay exact; retransmissions,
/// gaps, FIN, RST, the cap and expiry each have a defined outcome; every cumulation buffer is
/// released (DotNetty's leak detector, Paranoid in tests, reports nothing from this class).
/// </summary>
public class AlgStreamTests
{
    private const byte Ack = 0x10;
    private const byte PshAck = 0x18;
    private const byte FinAck = 0x11;
    private const byte Rst = 0x04;

    // Client ISN 1000 (data from 1001), server ISN 5000 (data from 5001).
    private static (FtpHandler h, AlgActions a) OpenFtp()
    {
        var h = new FtpHandler();
        var a = new AlgActions();
        Run(h, AlgDirection.In2Out, Tcp(AlgDirection.In2Out, 0x02, 1000, 0), a);
        Run(h, AlgDirection.Out2In, Tcp(AlgDirection.Out2In, 0x12, 5000, 1001), a);
        return (h, a);
    }

    private static byte[] Cmd(string text, uint seq, byte flags = PshAck) => Tcp(AlgDirection.In2Out, flags, seq, 5001, Bytes(text));

    [Fact]
    public void Port_split_across_two_segments_is_held_then_rewritten_whole_from_the_first_byte()
    {
        var (h, a) = OpenFtp();
        var o1 = Run(h, AlgDirection.In2Out, Cmd("PORT 10,0,0,2,", 1001), a, reservedPort: 40001);
        Assert.Equal("", Text(o1));          // nothing of the command reaches the server yet
        Assert.Equal(1001u, Seq(o1));
        Assert.True(Valid(o1));
        Assert.Equal(14, h.HeldBytes(Connection(), AlgDirection.In2Out));
        Assert.Equal((0, 0), (a.Rewrites, a.Refused));
        Assert.Empty(a.Expectations);

        var o2 = Run(h, AlgDirection.In2Out, Cmd("195,80\r\n", 1015), a, reservedPort: 40002);
        Assert.Equal("PORT 198,51,100,1,156,66\r\n", Text(o2));
        Assert.Equal(1001u, Seq(o2));         // starts where the held bytes start
        Assert.True(Valid(o2));
        Assert.Equal(1, a.Rewrites);
        var e = Assert.Single(a.Expectations);
        Assert.Equal((ExpectationKind.Inbound, (ushort)40002, (ushort)50000), (e.Kind, e.ExternalPort, e.InsidePort));
        Assert.Equal(0, h.HeldBytes(Connection(), AlgDirection.In2Out));
        AssertShiftedBy(h, a, nextSeq: 1023, delta: 4);
        h.Dispose();
    }

    [Fact]
    public void Port_split_across_three_segments_is_rewritten_once_complete()
    {
        var (h, a) = OpenFtp();
        Assert.Equal("", Text(Run(h, AlgDirection.In2Out, Cmd("PO", 1001), a, reservedPort: 40001)));
        Assert.Equal("", Text(Run(h, AlgDirection.In2Out, Cmd("RT 10,0,0,2,1", 1003), a, reservedPort: 40002)));
        Assert.Equal(15, h.HeldBytes(Connection(), AlgDirection.In2Out));
        Assert.Empty(a.Expectations);
        var o = Run(h, AlgDirection.In2Out, Cmd("95,80\r\n", 1016), a, reservedPort: 40003);
        Assert.Equal("PORT 198,51,100,1,156,67\r\n", Text(o));
        Assert.Equal(1001u, Seq(o));
        Assert.True(Valid(o));
        Assert.Equal(40003, Assert.Single(a.Expectations).ExternalPort);
        AssertShiftedBy(h, a, nextSeq: 1023, delta: 4);
        h.Dispose();
    }

    [Fact]
    public void Eprt_split_is_rewritten_whole()
    {
        var (h, a) = OpenFtp();
        Assert.Equal("", Text(Run(h, AlgDirection.In2Out, Cmd("EPRT |1|10.0.", 1001), a, reservedPort: 40001)));
        var o = Run(h, AlgDirection.In2Out, Cmd("0.2|50000|\r\n", 1014), a, reservedPort: 40002);
        Assert.Equal("EPRT |1|198.51.100.1|40002|\r\n", Text(o));
        Assert.Equal(1001u, Seq(o));
        Assert.True(Valid(o));
        Assert.Single(a.Expectations);
        // "EPRT |1|10.0.0.2|50000|\r\n" is 25 bytes, the rewrite 29: +4.
        AssertShiftedBy(h, a, nextSeq: 1026, delta: 4);
        h.Dispose();
    }

    [Fact]
    public void Passive_reply_split_is_held_then_opens_its_expectation()
    {
        var (h, a) = OpenFtp();
        var r1 = Run(h, AlgDirection.Out2In, Tcp(AlgDirection.Out2In, PshAck, 5001, 1001, Bytes("227 Entering Passive Mode (192,0,2,10,")), a);
        Assert.Equal("", Text(r1));
        Assert.Empty(a.Expectations);
        var r2 = Run(h, AlgDirection.Out2In, Tcp(AlgDirection.Out2In, PshAck, 5039, 1001, Bytes("4,1).\r\n")), a);
        Assert.Equal("227 Entering Passive Mode (192,0,2,10,4,1).\r\n", Text(r2));
        Assert.Equal(5001u, Seq(r2));
        Assert.True(Valid(r2));
        var e = Assert.Single(a.Expectations);
        Assert.Equal((ExpectationKind.Outbound, (ushort)1025), (e.Kind, e.RemotePort));
        h.Dispose();
    }

    [Fact]
    public void Two_commands_in_one_segment_are_both_parsed_and_a_trailing_partial_one_held()
    {
        var (h, a) = OpenFtp();
        // Not the first line of its segment: parsed all the same.
        var o = Run(h, AlgDirection.In2Out, Cmd("TYPE I\r\nPORT 10,0,0,2,195,80\r\nEPRT |1|10.0", 1001), a, reservedPort: 40001);
        Assert.Equal("TYPE I\r\nPORT 198,51,100,1,156,65\r\n", Text(o));
        Assert.Equal(1001u, Seq(o));
        Assert.True(Valid(o));
        Assert.Single(a.Expectations);
        Assert.Equal(12, h.HeldBytes(Connection(), AlgDirection.In2Out));
        // The held EPRT starts at 1001 + 8 + 22 = 1031, on the wire at 1035.
        var o2 = Run(h, AlgDirection.In2Out, Cmd(".0.2|50001|\r\nLIST\r\n", 1043), a, reservedPort: 40002);
        Assert.Equal("EPRT |1|198.51.100.1|40002|\r\nLIST\r\n", Text(o2));
        Assert.Equal(1035u, Seq(o2));
        Assert.True(Valid(o2));
        Assert.Equal(40002, Assert.Single(a.Expectations).ExternalPort);
        // Both length changes add up: +4 (PORT) and +4 (EPRT) before 1062.
        AssertShiftedBy(h, a, nextSeq: 1062, delta: 8);
        h.Dispose();
    }

    [Fact]
    public void Two_address_commands_in_one_frame_share_its_one_reserved_port_so_the_second_is_refused()
    {
        var (h, a) = OpenFtp();
        var o = Run(h, AlgDirection.In2Out, Cmd("PORT 10,0,0,2,195,80\r\nPORT 10,0,0,2,195,81\r\n", 1001), a, reservedPort: 40001);
        // Each rewrite would need its own external port; the engine reserves one per frame.
        Assert.Equal("PORT 198,51,100,1,156,65\r\nPORT 10,0,0,2,195,81\r\n", Text(o));
        Assert.Equal((1, 1), (a.Rewrites, a.Refused));
        Assert.Single(a.Expectations);
        h.Dispose();
    }

    [Fact]
    public void Several_rewrites_in_one_segment_add_up_in_one_correction()
    {
        var way = new SeqAdjustWay();
        Assert.True(way.Record(1001, 4));
        Assert.True(way.Record(1001, 3)); // a second line of the same segment
        Assert.Equal((0, 7), (way.OffsetBefore, way.OffsetAfter));
        Assert.Equal(1001u, way.MapSeq(1001));
        Assert.Equal(1057u, way.MapSeq(1050));
        Assert.True(way.Record(1100, -2));
        Assert.Equal((7, 5), (way.OffsetBefore, way.OffsetAfter));
        Assert.False(way.Record(1001, 1)); // older than the position: not tracked
    }

    [Fact]
    public void A_partial_line_that_cannot_carry_an_address_is_forwarded_and_the_next_line_found()
    {
        var (h, a) = OpenFtp();
        var u1 = Cmd("USER al", 1001);
        Assert.Equal(u1, Run(h, AlgDirection.In2Out, u1, a, reservedPort: 40001));
        Assert.Equal(0, h.HeldBytes(Connection(), AlgDirection.In2Out));
        // The rest of the line, then a PORT in the same segment: the PORT starts a line and is rewritten.
        var o = Run(h, AlgDirection.In2Out, Cmd("ice\r\nPORT 10,0,0,2,195,80\r\n", 1008), a, reservedPort: 40002);
        Assert.Equal("ice\r\nPORT 198,51,100,1,156,66\r\n", Text(o));
        Assert.Equal(1008u, Seq(o));
        Assert.Single(a.Expectations);
        h.Dispose();
    }

    [Fact]
    public void Retransmission_of_held_and_new_bytes_together_is_rewritten()
    {
        var (h, a) = OpenFtp();
        Run(h, AlgDirection.In2Out, Cmd("PORT 10,0,0,2,", 1001), a, reservedPort: 40001);
        // The sender coalesced its unacknowledged bytes with the rest (Linux does on retransmission).
        var o = Run(h, AlgDirection.In2Out, Cmd("PORT 10,0,0,2,195,80\r\n", 1001), a, reservedPort: 40002);
        Assert.Equal("PORT 198,51,100,1,156,66\r\n", Text(o));
        Assert.Equal(1001u, Seq(o));
        Assert.Single(a.Expectations);
        AssertShiftedBy(h, a, nextSeq: 1023, delta: 4);
        h.Dispose();
    }

    [Fact]
    public void Held_bytes_resent_alone_are_absorbed_once_then_passed_through_unchanged_and_refused()
    {
        var (h, a) = OpenFtp();
        Run(h, AlgDirection.In2Out, Cmd("PORT 10,0,0,2,", 1001), a, reservedPort: 40001);
        var again = Run(h, AlgDirection.In2Out, Cmd("PORT 10,0,0,2,", 1001), a, reservedPort: 40002);
        Assert.Equal("", Text(again));
        Assert.Equal(0, a.Refused);
        // The sender waits for an acknowledgment before it sends more (Nagle): give up the rewrite.
        var third = Run(h, AlgDirection.In2Out, Cmd("PORT 10,0,0,2,", 1001), a, reservedPort: 40003);
        Assert.Equal("PORT 10,0,0,2,", Text(third));
        Assert.Equal(1001u, Seq(third));
        Assert.True(Valid(third));
        Assert.Equal(1, a.Refused);
        Assert.Equal(0, h.HeldBytes(Connection(), AlgDirection.In2Out));
        // The rest is mid-line now: forwarded as it is, nothing opened.
        var rest = Cmd("195,80\r\n", 1015);
        Assert.Equal(rest, Run(h, AlgDirection.In2Out, rest, a, reservedPort: 40004));
        Assert.Empty(a.Expectations);
        h.Dispose();
    }

    [Fact]
    public void Retransmission_reaching_into_held_bytes_is_cut_where_they_start()
    {
        var (h, a) = OpenFtp();
        Assert.Equal("LIST\r\n", Text(Run(h, AlgDirection.In2Out, Cmd("LIST\r\nPORT 10,0,", 1001), a, reservedPort: 40001)));
        Assert.Equal(10, h.HeldBytes(Connection(), AlgDirection.In2Out));
        var o = Run(h, AlgDirection.In2Out, Cmd("LIST\r\nPORT 10,0,", 1001, flags: 0x19), a, reservedPort: 40002);
        Assert.Equal("LIST\r\n", Text(o));
        Assert.Equal(1001u, Seq(o));
        Assert.Equal(0, o[Frames.L4Offset(o) + 13] & 0x01); // a FIN after the cut would be in the wrong place
        Assert.True(Valid(o));
        Assert.Equal(10, h.HeldBytes(Connection(), AlgDirection.In2Out));
        h.Dispose();
    }

    [Fact]
    public void Segment_beyond_a_gap_after_held_bytes_loses_its_payload_until_resent_in_order()
    {
        var (h, a) = OpenFtp();
        Run(h, AlgDirection.In2Out, Cmd("PORT 10,0,0,2,", 1001), a, reservedPort: 40001);
        var o = Run(h, AlgDirection.In2Out, Cmd("LIST\r\n", 1023), a, reservedPort: 40002);
        Assert.Equal("", Text(o)); // its place on the wire depends on the held line's rewrite
        Assert.True(Valid(o));
        Assert.Equal(14, h.HeldBytes(Connection(), AlgDirection.In2Out));
        var o2 = Run(h, AlgDirection.In2Out, Cmd("195,80\r\nLIST\r\n", 1015), a, reservedPort: 40003);
        Assert.Equal("PORT 198,51,100,1,156,67\r\nLIST\r\n", Text(o2));
        h.Dispose();
    }

    [Fact]
    public void Fin_while_bytes_are_held_sends_them_unchanged_with_the_fin_and_releases_the_buffer()
    {
        var (h, a) = OpenFtp();
        Run(h, AlgDirection.In2Out, Cmd("PORT 10,0,0,2,", 1001), a, reservedPort: 40001);
        Assert.Equal(1, h.BuffersTaken);
        var o = Run(h, AlgDirection.In2Out, Cmd("195", 1015, flags: FinAck), a, reservedPort: 40002);
        Assert.Equal("PORT 10,0,0,2,195", Text(o));
        Assert.Equal(1001u, Seq(o));
        Assert.Equal(0x01, o[Frames.L4Offset(o) + 13] & 0x01);
        Assert.True(Valid(o));
        Assert.Equal(1, a.Refused);
        Assert.Empty(a.Expectations);
        Assert.Equal(0, h.BuffersTaken);
        h.Dispose();
    }

    [Fact]
    public void Rst_while_bytes_are_held_lands_at_the_receivers_next_byte_and_releases_the_buffers()
    {
        var (h, a) = OpenFtp();
        Run(h, AlgDirection.In2Out, Cmd("PORT 10,0,0,2,", 1001), a, reservedPort: 40001);
        Run(h, AlgDirection.Out2In, Tcp(AlgDirection.Out2In, PshAck, 5001, 1001, Bytes("227 Entering")), a);
        Assert.Equal(2, h.BuffersTaken);
        var o = Run(h, AlgDirection.In2Out, Tcp(AlgDirection.In2Out, Rst, 1015, 0), a);
        Assert.Equal(1001u, Seq(o)); // RFC 5961: the receiver takes an RST at exactly its next byte
        Assert.True(Valid(o));
        Assert.Equal(0, h.BuffersTaken);
        Assert.Equal(0, h.HeldBytes(Connection(), AlgDirection.In2Out));
        h.Dispose();
    }

    [Fact]
    public void Overlong_partial_line_is_not_held_and_is_refused()
    {
        var (h, a) = OpenFtp();
        var f = Cmd("PORT 10,0,0,2,195,80" + new string(' ', 600), 1001);
        Assert.Equal(f, Run(h, AlgDirection.In2Out, f, a, reservedPort: 40001));
        Assert.Equal(1, a.Refused);
        Assert.Equal(0, h.HeldBytes(Connection(), AlgDirection.In2Out));
        h.Dispose();
    }

    [Fact]
    public void Held_line_that_grows_past_the_cap_goes_out_unchanged_and_is_refused()
    {
        var (h, a) = OpenFtp();
        string start = "PORT 10,0,0,2,195,80" + new string(' ', 400);
        Assert.Equal("", Text(Run(h, AlgDirection.In2Out, Cmd(start, 1001), a, reservedPort: 40001)));
        string more = new string(' ', 200);
        var o = Run(h, AlgDirection.In2Out, Cmd(more, 1001 + (uint)start.Length), a, reservedPort: 40002);
        Assert.Equal(start + more, Text(o));
        Assert.Equal(1001u, Seq(o));
        Assert.True(Valid(o));
        Assert.Equal(1, a.Refused);
        Assert.Equal(0, h.HeldBytes(Connection(), AlgDirection.In2Out));
        h.Dispose();
    }

    [Fact]
    public void Expiry_and_dispose_release_held_buffers()
    {
        var (h, a) = OpenFtp();
        Run(h, AlgDirection.In2Out, Cmd("PORT 10,0,", 1001), a, reservedPort: 40001, nowMs: 0);
        Assert.Equal(1, h.BuffersTaken);
        Assert.Equal(1, h.Expire(nowMs: 10_000, idleMs: 5_000));
        Assert.Equal(0, h.ConnectionCount);

        var (h2, a2) = OpenFtp();
        Run(h2, AlgDirection.In2Out, Cmd("PORT 10,0,", 1001), a2, reservedPort: 40001);
        Assert.Equal(1, h2.BuffersTaken);
        h2.Dispose();
        Assert.Equal(0, h2.BuffersTaken);
        Assert.Equal(0, h2.ConnectionCount);
    }

    [Fact]
    public void Irc_dcc_offer_split_is_held_then_rewritten()
    {
        var irc = Connection(remotePort: 6667);
        var h = new IrcHandler();
        var a = new AlgActions();
        Run(h, AlgDirection.In2Out, Tcp(AlgDirection.In2Out, 0x02, 1000, 0, conn: irc), a, conn: irc);
        var o1 = Run(h, AlgDirection.In2Out, Tcp(AlgDirection.In2Out, PshAck, 1001, 5001, Bytes("PRIVMSG bob :\u0001DCC SEND f 1677"), conn: irc), a,
            reservedPort: 40001, conn: irc);
        Assert.Equal("", Text(o1));
        var o2 = Run(h, AlgDirection.In2Out, Tcp(AlgDirection.In2Out, PshAck, 1030, 5001, Bytes("72162 5000\u0001\r\n"), conn: irc), a,
            reservedPort: 40002, conn: irc);
        Assert.Equal("PRIVMSG bob :\u0001DCC SEND f 3325256705 40002\u0001\r\n", Text(o2));
        Assert.Equal(1001u, Seq(o2));
        Assert.True(Valid(o2));
        Assert.Equal((ushort)5000, Assert.Single(a.Expectations).InsidePort);
        // An ordinary chat line split in two is only forwarded.
        var j = Run(h, AlgDirection.In2Out, Tcp(AlgDirection.In2Out, PshAck, 1043, 5001, Bytes("JOIN #na"), conn: irc), a, conn: irc);
        Assert.Equal("JOIN #na", Text(j));
        Assert.Equal(1045u, Seq(j)); // after the offer's +2
        Assert.Equal(0, h.HeldBytes(irc, AlgDirection.In2Out));
        h.Dispose();
    }

    [Fact]
    public void Pptp_call_request_split_inside_its_call_id_is_held_then_rewritten()
    {
        var h = new PptpHandler(seed: 0x7000);
        var b = new PptpControl(h, "10.0.0.3", 40001, 1025);
        b.FromClient(PptpFrames.OutgoingCallRequest(0x2222)); // takes 0x2222, so a's call gets another id
        var c = new PptpControl(h, "10.0.0.2", 40000, 1024);
        byte[] ocrq = PptpFrames.OutgoingCallRequest(0x2222);
        uint start = c.ClientSeq;
        byte[] o1 = c.FromClient(ocrq[..13]);           // the Call ID's first byte ends the segment
        Assert.Equal(20 + 20 + 14, o1.Length);            // headers only: the 13 bytes wait
        Assert.Equal(13, h.HeldBytes(c.Connection, AlgDirection.In2Out));
        byte[] o2 = c.FromClient(ocrq[13..]);
        Assert.Equal(0, c.Actions.Refused);
        Assert.Equal(1, c.Actions.Rewrites);
        Assert.Equal(start, Seq(o2));
        Assert.Equal(ocrq.Length, Payload(o2).Length);
        ushort external = PptpFrames.CallIdAt(o2, 12);
        Assert.NotEqual(0x2222, external);
        Assert.True(Frames.ChecksumsValid(o2));
        // The server's reply names the external Call ID; the client gets its own back.
        byte[] reply = c.FromServer(PptpFrames.OutgoingCallReply(99, external));
        Assert.Equal(0x2222, PptpFrames.CallIdAt(reply, 14));
        h.Dispose();
        Assert.Equal(0, h.BuffersTaken);
    }

    [Fact]
    public void Pptp_held_header_resent_alone_goes_out_unchanged_at_its_own_sequence_number_and_the_stream_stays_in_step()
    {
        var h = new PptpHandler(seed: 0x7000);
        var c = new PptpControl(h, "10.0.0.2", 40000, 1024);
        byte[] ocrq = PptpFrames.OutgoingCallRequest(0x2222);
        uint start = c.ClientSeq;
        c.FromClient(ocrq[..13]);
        // The sender re-sends part of what natd holds, twice (it waits for an acknowledgment).
        Assert.Empty(Payload(c.FromClient(ocrq[5..13], start + 5)));
        byte[] given = c.FromClient(ocrq[5..13], start + 5);
        Assert.Equal(start, Seq(given));
        Assert.Equal(ocrq[..13], Payload(given)); // unchanged, from the first held byte
        Assert.Equal(1, c.Actions.Refused);
        Assert.Equal(0, h.HeldBytes(c.Connection, AlgDirection.In2Out)); // not held again
        // The Call ID's first byte is gone: the rest is refused, and the next message parses in step.
        c.FromClient(ocrq[13..]);
        Assert.Equal(1, c.Actions.Refused);
        byte[] next = c.FromClient(PptpFrames.OutgoingCallRequest(0x3333));
        Assert.Equal((0, 1), (c.Actions.Refused, c.Actions.Rewrites));
        Assert.True(Frames.ChecksumsValid(next));
        h.Dispose();
    }

    [Fact]
    public void Pptp_held_header_is_released_by_fin_and_rst()
    {
        var h = new PptpHandler(seed: 0x7000);
        var c = new PptpControl(h, "10.0.0.2", 40000, 1024);
        byte[] ocrq = PptpFrames.OutgoingCallRequest(0x2222);
        c.FromClient(ocrq[..5]);
        Assert.Equal(1, h.BuffersTaken);
        byte[] fin = c.Run(c.ClientFrame([], flags: 0x11), AlgDirection.In2Out);
        Assert.Equal(ocrq[..5], Payload(fin)); // the stream ends: the held bytes go with the FIN
        Assert.Equal(0, h.BuffersTaken);

        var d = new PptpControl(h, "10.0.0.3", 40001, 1025);
        uint start = d.ClientSeq;
        d.FromClient(ocrq[..5]);
        byte[] rst = d.Run(d.ClientFrame([], flags: 0x04), AlgDirection.In2Out);
        Assert.Equal(start, Seq(rst));
        Assert.Equal(0, h.BuffersTaken);
        h.Dispose();
    }

    [Fact]
    public void No_cumulation_buffer_of_these_tests_leaks()
    {
        // Exercise every way a held buffer ends, then ask the detector (Paranoid) about this class.
        var (h, a) = OpenFtp();
        Run(h, AlgDirection.In2Out, Cmd("PORT 10,0,", 1001), a, reservedPort: 40001);
        Run(h, AlgDirection.In2Out, Cmd("0,2,195,80\r\n", 1011), a, reservedPort: 40002);
        Run(h, AlgDirection.In2Out, Cmd("PORT 10,0,", 1023), a, reservedPort: 40003);
        Run(h, AlgDirection.In2Out, Tcp(AlgDirection.In2Out, Rst, 1033, 0), a);
        h.Dispose();
        var (h2, a2) = OpenFtp();
        Run(h2, AlgDirection.In2Out, Cmd("EPRT |1|", 1001), a2, reservedPort: 40001, nowMs: 0);
        h2.Expire(nowMs: 1_000_000, idleMs: 1);
        List<string> leaks = LeakWatch.LeaksFrom(typeof(AlgStreamTests).FullName + ".");
        Assert.True(leaks.Count == 0, string.Join("\n\n", leaks));
    }

    /// <summary>The next in2out segment at <paramref name="nextSeq"/> goes out <paramref name="delta"/> later; the server's ack comes back as the client's numbering.</summary>
    private static void AssertShiftedBy(TcpLineAlgHandler h, AlgActions a, uint nextSeq, int delta)
    {
        var next = Run(h, AlgDirection.In2Out, Cmd("NOOP\r\n", nextSeq), a);
        Assert.Equal(nextSeq + (uint)delta, Seq(next));
        Assert.True(Valid(next));
        var ack = Run(h, AlgDirection.Out2In, Tcp(AlgDirection.Out2In, Ack, 5001, nextSeq + 6 + (uint)delta), a);
        Assert.Equal(nextSeq + 6, AlgFrames.Ack(ack));
        Assert.True(Valid(ack));
    }
}
