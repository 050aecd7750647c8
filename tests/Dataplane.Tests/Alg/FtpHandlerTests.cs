using Natd.Dataplane.Alg;
using Natd.Dataplane.Alg.Ftp;
using Natd.Dataplane.Packets;
using static Natd.Tests.Alg.AlgFrames;

namespace Natd.Tests.Alg;

public class FtpHandlerTests
{
    private const byte Ack = 0x10;
    private const byte PshAck = 0x18;
    private const byte Syn = 0x02;
    private const byte SynAck = 0x12;

    // Client ISN 1000 (data from 1001), server ISN 5000 (data from 5001).
    private static (FtpHandler h, AlgActions a) Open()
    {
        var h = new FtpHandler();
        var a = new AlgActions();
        Run(h, AlgDirection.In2Out, Tcp(AlgDirection.In2Out, Syn, 1000, 0), a);
        Run(h, AlgDirection.Out2In, Tcp(AlgDirection.Out2In, SynAck, 5000, 1001), a);
        return (h, a);
    }

    private static byte[] Cmd(string line, uint seq = 1001, uint ack = 5001) => Tcp(AlgDirection.In2Out, PshAck, seq, ack, Bytes(line));

    [Fact]
    public void Port_naming_the_inside_host_is_rewritten_to_the_external_endpoint_with_an_inbound_expectation()
    {
        var (h, a) = Open();
        var o = Run(h, AlgDirection.In2Out, Cmd("PORT 10,0,0,2,195,80\r\n"), a, reservedPort: 40001);
        Assert.Equal("PORT 198,51,100,1,156,65\r\n", Text(o));
        Assert.True(Valid(o));
        Assert.Equal(1001u, Seq(o));
        Assert.Equal(1, a.Rewrites);
        Assert.Equal(0, a.Refused);
        var e = Assert.Single(a.Expectations);
        Assert.Equal(new ExpectationRequest(ExpectationKind.Inbound, IpProtocol.Tcp, Ipv4.Parse(Remote), 0, 40001,
            Ipv4.Parse(Inside), 50000, true), e);
    }

    [Fact]
    public void Lowercase_port_command_and_trailing_spaces_are_accepted()
    {
        var (h, a) = Open();
        var o = Run(h, AlgDirection.In2Out, Cmd("port 10,0,0,2,0,21  \r\n"), a, reservedPort: 258);
        Assert.Equal("port 198,51,100,1,1,2  \r\n", Text(o));
        Assert.Equal(21, Assert.Single(a.Expectations).InsidePort);
        Assert.True(Valid(o));
    }

    [Fact]
    public void Eprt_ipv4_is_rewritten_keeping_its_delimiter()
    {
        var (h, a) = Open();
        var o = Run(h, AlgDirection.In2Out, Cmd("EPRT !1!10.0.0.2!50000!\r\n"), a, reservedPort: 40001);
        Assert.Equal("EPRT !1!198.51.100.1!40001!\r\n", Text(o));
        Assert.True(Valid(o));
        var e = Assert.Single(a.Expectations);
        Assert.Equal((ExpectationKind.Inbound, (ushort)40001, (ushort)50000, true), (e.Kind, e.ExternalPort, e.InsidePort, e.UsesReservedPort));
    }

    [Fact]
    public void Later_segments_are_shifted_and_the_servers_acks_and_sack_blocks_shifted_back()
    {
        var (h, a) = Open();
        // "PORT 10,0,0,2,195,80\r\n" is 22 bytes; "PORT 198,51,100,1,156,65\r\n" is 26: delta +4.
        Run(h, AlgDirection.In2Out, Cmd("PORT 10,0,0,2,195,80\r\n"), a, reservedPort: 40001);
        var next = Run(h, AlgDirection.In2Out, Cmd("LIST\r\n", seq: 1023), a);
        Assert.Equal(1027u, Seq(next));
        Assert.True(Valid(next));

        // The server acknowledges the edited stream: 1001 + 26 = 1027 is the client's 1023.
        var ack = Run(h, AlgDirection.Out2In, Tcp(AlgDirection.Out2In, Ack, 5001, 1027, options: Sack(1037, 1047)), a);
        Assert.Equal(1023u, Ack(ack));
        Assert.Equal([1033u, 1043u], SackEdges(ack));
        Assert.True(Valid(ack));

        // An ack of data before the edit is not touched; nor is the server's own sequence.
        var early = Tcp(AlgDirection.Out2In, Ack, 5001, 1001);
        var earlyOut = Run(h, AlgDirection.Out2In, early, a);
        Assert.Equal(early, earlyOut);

        // Pure ACK of the client after the command: shifted like data.
        var pure = Run(h, AlgDirection.In2Out, Tcp(AlgDirection.In2Out, Ack, 1029, 5100), a);
        Assert.Equal(1033u, Seq(pure));
        Assert.Equal(5100u, Ack(pure));
    }

    [Fact]
    public void Retransmission_of_the_edited_segment_is_rewritten_identically_without_a_second_shift()
    {
        var (h, a) = Open();
        var first = Run(h, AlgDirection.In2Out, Cmd("PORT 10,0,0,2,195,80\r\n"), a, reservedPort: 40001);
        Run(h, AlgDirection.In2Out, Cmd("LIST\r\n", seq: 1023), a);
        var again = Run(h, AlgDirection.In2Out, Cmd("PORT 10,0,0,2,195,80\r\n"), a, reservedPort: 40002);
        Assert.Equal(first, again);
        Assert.Empty(a.Expectations); // the first one stands; the new reserved port goes back unused
        Assert.Equal(1, a.Rewrites);
        var next = Run(h, AlgDirection.In2Out, Cmd("NOOP\r\n", seq: 1029), a);
        Assert.Equal(1033u, Seq(next));
    }

    [Fact]
    public void Retransmission_of_a_refused_command_stays_unchanged_even_with_a_reserved_port()
    {
        var (h, a) = Open();
        var f = Cmd("PORT 10,0,0,2,195,80\r\n");
        Assert.Equal(f, Run(h, AlgDirection.In2Out, f, a, reservedPort: 0));
        Assert.Equal(1, a.Refused);
        Assert.Equal(f, Run(h, AlgDirection.In2Out, f, a, reservedPort: 40001));
        Assert.Empty(a.Expectations);
    }

    [Fact]
    public void Command_ahead_of_a_gap_is_refused()
    {
        var (h, a) = Open();
        var f = Cmd("PORT 10,0,0,2,195,80\r\n", seq: 1100);
        Assert.Equal(f, Run(h, AlgDirection.In2Out, f, a, reservedPort: 40001));
        Assert.Equal(1, a.Refused);
        Assert.Empty(a.Expectations);
    }

    [Fact]
    public void Coalesced_retransmission_reproduces_the_edit_and_moves_the_rest()
    {
        var (h, a) = Open();
        Run(h, AlgDirection.In2Out, Cmd("PORT 10,0,0,2,195,80\r\n"), a, reservedPort: 40001);
        Run(h, AlgDirection.In2Out, Cmd("LIST\r\n", seq: 1023), a);
        var o = Run(h, AlgDirection.In2Out, Cmd("PORT 10,0,0,2,195,80\r\nLIST\r\n"), a, reservedPort: 40002);
        Assert.Equal("PORT 198,51,100,1,156,65\r\nLIST\r\n", Text(o));
        Assert.Equal(1001u, Seq(o));
        Assert.True(Valid(o));
        Assert.Empty(a.Expectations);
    }

    [Fact]
    public void Second_edit_accumulates_offsets()
    {
        var (h, a) = Open();
        Run(h, AlgDirection.In2Out, Cmd("PORT 10,0,0,2,195,80\r\n"), a, reservedPort: 40001); // +4
        var second = Run(h, AlgDirection.In2Out, Cmd("EPRT |1|10.0.0.2|7|\r\n", seq: 1023), a, reservedPort: 40002);
        // "EPRT |1|10.0.0.2|7|\r\n" (21) becomes "EPRT |1|198.51.100.1|40002|\r\n" (29): +8.
        Assert.Equal("EPRT |1|198.51.100.1|40002|\r\n", Text(second));
        Assert.Equal(1027u, Seq(second));
        var next = Run(h, AlgDirection.In2Out, Cmd("LIST\r\n", seq: 1044), a);
        Assert.Equal(1056u, Seq(next));
        // Acks: up to the second command's start (1027 on the wire) -> 1023; past it (1056) -> 1044.
        Assert.Equal(1023u, Ack(Run(h, AlgDirection.Out2In, Tcp(AlgDirection.Out2In, Ack, 5001, 1027), a)));
        Assert.Equal(1044u, Ack(Run(h, AlgDirection.Out2In, Tcp(AlgDirection.Out2In, Ack, 5001, 1056), a)));
    }

    public static TheoryData<string, int> RefusedCommands => new()
    {
        { "PORT 10,0,0,3,195,80\r\n", 40001 },        // third party: FTP bounce
        { "PORT 192,0,2,10,195,80\r\n", 40001 },      // the server itself
        { "PORT 10,0,0,256,195,80\r\n", 40001 },      // bad number
        { "PORT 10,0,0,2,0,0\r\n", 40001 },           // port 0
        { "PORT 10,0,0,2,195,80,7\r\n", 40001 },      // seven numbers
        { "PORT 10,0,0,2,195\r\n", 40001 },           // five numbers
        { "PORT 10,0,0,2,195,80 x\r\n", 40001 },      // trailing junk
        { "PORT 0010,0,0,2,195,80\r\n", 40001 },      // four digits
        { "PORT 10,0,0,2,195,80\r\n", 0 },            // no reserved port
        { "EPRT |2|::1|5000|\r\n", 40001 },           // IPv6
        { "EPRT |1|10.0.0.3|5000|\r\n", 40001 },      // third party
        { "EPRT |1|10.0.0.2|70000|\r\n", 40001 },     // port out of range
        { "EPRT |1|10.0.0.2|5000\r\n", 40001 },       // missing delimiter
        { "EPRT \u0001 1\u00011.2.3.4\u00015\u0001\r\n", 40001 }, // delimiter out of range
        { "EPRT |3|10.0.0.2|5000|\r\n", 40001 },      // unknown protocol
    };

    [Theory]
    [MemberData(nameof(RefusedCommands))]
    public void Refused_commands_open_nothing_and_leave_the_frame_unchanged(string line, int reserved)
    {
        var (h, a) = Open();
        var f = Cmd(line);
        var o = Run(h, AlgDirection.In2Out, f, a, reservedPort: (ushort)reserved);
        Assert.Equal(f, o);
        Assert.Empty(a.Expectations);
        Assert.Equal(1, a.Refused);
        Assert.Equal(0, a.Rewrites);
    }

    [Fact]
    public void Command_split_across_segments_is_held_and_its_tail_not_taken_for_a_command()
    {
        var (h, a) = Open();
        var p1 = Cmd("PORT 10,0,0");
        Assert.Equal("", Text(Run(h, AlgDirection.In2Out, p1, a, reservedPort: 40001))); // held until the line is complete
        Assert.Empty(a.Expectations);
        // The tail even looks like a whole PORT command; it is mid-line, so the line is "PORT 10,0,0PORT ...": refused whole.
        var p2 = Run(h, AlgDirection.In2Out, Cmd("PORT 10,0,0,2,195,80\r\n", seq: 1012), a, reservedPort: 40002);
        Assert.Equal("PORT 10,0,0PORT 10,0,0,2,195,80\r\n", Text(p2));
        Assert.Equal(1001u, Seq(p2));
        Assert.Equal(1, a.Refused);
        Assert.Empty(a.Expectations);
        // The next line after the split one starts a segment again and is handled.
        var p3 = Run(h, AlgDirection.In2Out, Cmd("PORT 10,0,0,2,195,80\r\n", seq: 1034), a, reservedPort: 40003);
        Assert.Equal("PORT 198,51,100,1,156,67\r\n", Text(p3));
        h.Dispose();
    }

    [Fact]
    public void Overlong_line_is_refused()
    {
        var (h, a) = Open();
        var f = Cmd("PORT 10,0,0,2,195,80" + new string(' ', 600) + "\r\n");
        Assert.Equal(f, Run(h, AlgDirection.In2Out, f, a, reservedPort: 40001));
        Assert.Equal(1, a.Refused);
        Assert.Empty(a.Expectations);
    }

    [Fact]
    public void Every_line_of_a_segment_is_a_candidate()
    {
        var (h, a) = Open();
        var o = Run(h, AlgDirection.In2Out, Cmd("NOOP\r\nPORT 10,0,0,2,195,80\r\n"), a, reservedPort: 40001);
        Assert.Equal("NOOP\r\nPORT 198,51,100,1,156,65\r\n", Text(o));
        Assert.True(Valid(o));
        Assert.Single(a.Expectations);
    }

    [Fact]
    public void Edit_that_does_not_fit_the_buffer_is_refused_unchanged()
    {
        var (h, a) = Open();
        var f = Cmd("PORT 10,0,0,2,195,80\r\n");
        var o = Run(h, AlgDirection.In2Out, f, a, reservedPort: 40001, bufferSize: f.Length + 2);
        Assert.Equal(f, o);
        Assert.Equal(1, a.Refused);
        Assert.Empty(a.Expectations);
    }

    [Theory]
    [InlineData("227 Entering Passive Mode (192,0,2,10,19,137).\r\n", 5001)]
    [InlineData("227 Entering Passive Mode 192,0,2,10,19,137\r\n", 5001)]
    [InlineData("227 =192,0,2,10,19,137\r\n", 5001)]
    [InlineData("227 Passive v2 (192,0,2,10,19,137)\r\n", 5001)]
    [InlineData("229 Entering Extended Passive Mode (|||5001|)\r\n", 5001)]
    [InlineData("229 Entering Extended Passive Mode (!!!65535!)\r\n", 65535)]
    public void Passive_replies_open_an_outbound_expectation_to_the_server_without_rewrite(string reply, int port)
    {
        var (h, a) = Open();
        var f = Tcp(AlgDirection.Out2In, PshAck, 5001, 1001, Bytes(reply));
        Assert.Equal(f, Run(h, AlgDirection.Out2In, f, a));
        var e = Assert.Single(a.Expectations);
        Assert.Equal(new ExpectationRequest(ExpectationKind.Outbound, IpProtocol.Tcp, Ipv4.Parse(Remote), (ushort)port, 0,
            Ipv4.Parse(Inside), 0, false), e);
    }

    [Theory]
    [InlineData("227 Entering Passive Mode (10,0,0,3,19,137).\r\n")]   // a third party
    [InlineData("227 Entering Passive Mode (192,0,2,10,0,0).\r\n")]    // port 0
    [InlineData("227 Entering Passive Mode (192,0,2,10,19).\r\n")]     // five numbers
    [InlineData("229 Entering Extended Passive Mode (|||0|)\r\n")]
    [InlineData("229 Entering Extended Passive Mode (||5001|)\r\n")]
    [InlineData("229 Entering Extended Passive Mode (|||99999|)\r\n")]
    public void Bad_passive_replies_are_refused(string reply)
    {
        var (h, a) = Open();
        var f = Tcp(AlgDirection.Out2In, PshAck, 5001, 1001, Bytes(reply));
        Assert.Equal(f, Run(h, AlgDirection.Out2In, f, a));
        Assert.Empty(a.Expectations);
        Assert.Equal(1, a.Refused);
    }

    [Fact]
    public void Port_sent_by_the_server_side_is_ignored()
    {
        var (h, a) = Open();
        var f = Tcp(AlgDirection.Out2In, PshAck, 5001, 1001, Bytes("PORT 10,0,0,2,195,80\r\n"));
        Assert.Equal(f, Run(h, AlgDirection.Out2In, f, a, reservedPort: 40001));
        Assert.Empty(a.Expectations);
        Assert.Equal(0, a.Refused);
    }

    [Fact]
    public void Forget_and_expire_drop_connection_state()
    {
        var h = new FtpHandler();
        var a = new AlgActions();
        var other = Connection() with { InsidePort = 40001 };
        Run(h, AlgDirection.In2Out, Tcp(AlgDirection.In2Out, Syn, 1000, 0), a, nowMs: 1000);
        Run(h, AlgDirection.In2Out, Tcp(AlgDirection.In2Out, Syn, 1000, 0, conn: other), a, conn: other, nowMs: 5000);
        Assert.Equal(2, h.ConnectionCount);
        Assert.Equal(1, h.Expire(nowMs: 7000, idleMs: 3000));
        Assert.Equal(1, h.ConnectionCount);
        h.Forget(other);
        Assert.Equal(0, h.ConnectionCount);
    }

    [Fact]
    public void Non_tcp_or_truncated_frames_pass_unchanged()
    {
        var h = new FtpHandler();
        var a = new AlgActions();
        var udp = Udp(AlgDirection.In2Out, Bytes("PORT 10,0,0,2,195,80\r\n"));
        Assert.Equal(udp, Run(h, AlgDirection.In2Out, udp, a, reservedPort: 40001));
        var cut = Cmd("PORT 10,0,0,2,195,80\r\n")[..40];
        Assert.Equal(cut, Run(h, AlgDirection.In2Out, cut, a, reservedPort: 40001));
        Assert.Empty(a.Expectations);
    }
}
