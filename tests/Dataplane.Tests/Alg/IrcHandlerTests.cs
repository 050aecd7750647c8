using Natd.Dataplane.Alg;
using Natd.Dataplane.Alg.Irc;
using Natd.Dataplane.Packets;
using static Natd.Tests.Alg.AlgFrames;

namespace Natd.Tests.Alg;

public class IrcHandlerTests
{
    private const byte PshAck = 0x18;
    private const byte Syn = 0x02;

    // 10.0.0.2 = 167772162, 198.51.100.1 = 3325256705 (host-order decimal, as DCC writes addresses).
    private static AlgConnection Irc => Connection(remotePort: 6667);

    private static (IrcHandler h, AlgActions a) Open()
    {
        var h = new IrcHandler();
        var a = new AlgActions();
        Run(h, AlgDirection.In2Out, Tcp(AlgDirection.In2Out, Syn, 1000, 0, conn: Irc), a, conn: Irc);
        return (h, a);
    }

    private static byte[] Line(string text, uint seq = 1001, AlgDirection dir = AlgDirection.In2Out)
        => Tcp(dir, PshAck, seq, 5001, Bytes(text), conn: Irc);

    [Theory]
    [InlineData("PRIVMSG bob :\u0001DCC SEND report.pdf 167772162 5000 123456\u0001\r\n",
        "PRIVMSG bob :\u0001DCC SEND report.pdf 3325256705 40001 123456\u0001\r\n", 5000)]
    [InlineData("PRIVMSG bob :\u0001DCC SEND \"my report.pdf\" 167772162 5000\u0001\r\n",
        "PRIVMSG bob :\u0001DCC SEND \"my report.pdf\" 3325256705 40001\u0001\r\n", 5000)]
    [InlineData("privmsg #chan :\u0001dcc chat chat 167772162 6001\u0001\r\n",
        "privmsg #chan :\u0001dcc chat chat 3325256705 40001\u0001\r\n", 6001)]
    [InlineData(":alice!a@h PRIVMSG bob :\u0001DCC SEND f 167772162 65535 1 tok\u0001\n",
        ":alice!a@h PRIVMSG bob :\u0001DCC SEND f 3325256705 40001 1 tok\u0001\n", 65535)]
    public void Offers_naming_the_inside_host_are_rewritten_with_an_inbound_expectation_from_anyone(string line, string expected, int port)
    {
        var (h, a) = Open();
        var o = Run(h, AlgDirection.In2Out, Line(line), a, reservedPort: 40001, conn: Irc);
        Assert.Equal(expected, Text(o));
        Assert.True(Valid(o));
        Assert.Equal(1, a.Rewrites);
        var e = Assert.Single(a.Expectations);
        Assert.Equal(new ExpectationRequest(ExpectationKind.Inbound, IpProtocol.Tcp, 0, 0, 40001, Ipv4.Parse(Inside), (ushort)port, true), e);
    }

    [Fact]
    public void Following_segments_and_acks_are_adjusted()
    {
        var (h, a) = Open();
        string line = "PRIVMSG bob :\u0001DCC SEND f 167772162 5000\u0001\r\n"; // 9 digits + 4 -> 10 + 5: +2
        Run(h, AlgDirection.In2Out, Line(line), a, reservedPort: 40001, conn: Irc);
        uint next = 1001u + (uint)line.Length;
        Assert.Equal(next + 2, Seq(Run(h, AlgDirection.In2Out, Line("PING x\r\n", next), a, conn: Irc)));
        var ack = Run(h, AlgDirection.Out2In, Tcp(AlgDirection.Out2In, 0x10, 5001, next + 2, conn: Irc), a, conn: Irc);
        Assert.Equal(next, Ack(ack));
        Assert.True(Valid(ack));
    }

    [Theory]
    [InlineData("PRIVMSG bob :\u0001DCC SEND f 167772163 5000\u0001\r\n", 40001)]   // a third party's address
    [InlineData("PRIVMSG bob :\u0001DCC SEND f 167772162 0 100 7\u0001\r\n", 40001)] // passive DCC
    [InlineData("PRIVMSG bob :\u0001DCC SEND f 167772162 70000\u0001\r\n", 40001)]  // port out of range
    [InlineData("PRIVMSG bob :\u0001DCC SEND f 99999999999 5000\u0001\r\n", 40001)] // address out of range
    [InlineData("PRIVMSG bob :\u0001DCC SEND f 10.0.0.2 5000\u0001\r\n", 40001)]    // dotted: not the DCC format
    [InlineData("PRIVMSG bob :\u0001DCC SEND \"f 167772162 5000\u0001\r\n", 40001)] // unclosed quote
    [InlineData("PRIVMSG bob :\u0001DCC SEND f 167772162 5000\r\n", 40001)]         // no closing \x01
    [InlineData("PRIVMSG bob :\u0001DCC SEND f 167772162 5000\u0001\r\n", 0)]        // no reserved port
    public void Refused_offers_open_nothing_and_leave_the_frame_unchanged(string line, int reserved)
    {
        var (h, a) = Open();
        var f = Line(line);
        Assert.Equal(f, Run(h, AlgDirection.In2Out, f, a, reservedPort: (ushort)reserved, conn: Irc));
        Assert.Empty(a.Expectations);
        Assert.Equal(1, a.Refused);
    }

    [Theory]
    [InlineData("PRIVMSG bob :hello DCC SEND f 167772162 5000\r\n")]
    [InlineData("PRIVMSG bob :\u0001ACTION waves\u0001\r\n")]
    [InlineData("PRIVMSG bob :\u0001DCC RESUME f 5000 100\u0001\r\n")]
    [InlineData("NOTICE bob :\u0001DCC SEND f 167772162 5000\u0001\r\n")]
    public void Other_lines_pass_silently(string line)
    {
        var (h, a) = Open();
        var f = Line(line);
        Assert.Equal(f, Run(h, AlgDirection.In2Out, f, a, reservedPort: 40001, conn: Irc));
        Assert.Empty(a.Expectations);
        Assert.Equal(0, a.Refused);
    }

    [Fact]
    public void Offer_from_outside_is_not_touched()
    {
        var (h, a) = Open();
        var f = Line("PRIVMSG me :\u0001DCC SEND f 167772162 5000\u0001\r\n", 5001, AlgDirection.Out2In);
        Assert.Equal(f, Run(h, AlgDirection.Out2In, f, a, conn: Irc));
        Assert.Empty(a.Expectations);
    }

    [Fact]
    public void Split_offers_are_held_and_rewritten_and_overlong_ones_refused()
    {
        var (h, a) = Open();
        var p1 = Line("PRIVMSG bob :\u0001DCC SEND f 1677");
        Assert.Equal("", Text(Run(h, AlgDirection.In2Out, p1, a, reservedPort: 40001, conn: Irc)));
        Assert.Equal(0, a.Refused);
        var p2 = Line("72162 5000\u0001\r\n", 1001 + 29);
        Assert.Equal("PRIVMSG bob :\u0001DCC SEND f 3325256705 40001\u0001\r\n", Text(Run(h, AlgDirection.In2Out, p2, a, reservedPort: 40001, conn: Irc)));
        Assert.Single(a.Expectations);
        h.Dispose();

        var (h2, a2) = Open();
        var longLine = Line("PRIVMSG bob :\u0001DCC SEND " + new string('x', 600) + " 167772162 5000\u0001\r\n");
        Assert.Equal(longLine, Run(h2, AlgDirection.In2Out, longLine, a2, reservedPort: 40001, conn: Irc));
        Assert.Equal(1, a2.Refused);
        Assert.Empty(a2.Expectations);
    }
}
