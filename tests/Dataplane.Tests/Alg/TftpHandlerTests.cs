using Natd.Dataplane.Alg;
using Natd.Dataplane.Alg.Tftp;
using Natd.Dataplane.Packets;
using static Natd.Tests.Alg.AlgFrames;

namespace Natd.Tests.Alg;

public class TftpHandlerTests
{
    private static AlgConnection Tftp => Connection(IpProtocol.Udp, 69);

    private static byte[] Request(int op, string body) => [0, (byte)op, .. Bytes(body)];

    [Theory]
    [InlineData(1, "boot.img\0octet\0")]
    [InlineData(2, "upload.txt\0NetASCII\0")]
    [InlineData(1, "x\0mail\0")]
    [InlineData(1, "pxelinux.0\0octet\0tsize\00\0blksize\01468\0")]
    public void Read_and_write_requests_open_an_inbound_expectation_from_the_server_on_any_port(int op, string body)
    {
        var h = new TftpHandler();
        var a = new AlgActions();
        var f = Udp(AlgDirection.In2Out, Request(op, body), Tftp);
        Assert.Equal(f, Run(h, AlgDirection.In2Out, f, a, reservedPort: 40001, conn: Tftp));
        var e = Assert.Single(a.Expectations);
        Assert.Equal(new ExpectationRequest(ExpectationKind.Inbound, IpProtocol.Udp, Ipv4.Parse(Remote), 0, ExternalPort,
            Ipv4.Parse(Inside), InsidePort, false), e);
        Assert.Equal(0, a.Refused);
    }

    [Theory]
    [InlineData(1, "\0octet\0")]          // empty file name
    [InlineData(1, "f\0binary\0")]        // unknown mode
    [InlineData(2, "f\0octet")]           // unterminated mode
    [InlineData(1, "f")]                  // no mode
    [InlineData(1, "f\0octet\0blksize")]  // unterminated option
    [InlineData(6, "f\0octet\0")]         // OACK comes from servers
    [InlineData(0, "f\0octet\0")]
    public void Malformed_requests_are_refused(int op, string body)
    {
        var h = new TftpHandler();
        var a = new AlgActions();
        var f = Udp(AlgDirection.In2Out, Request(op, body), Tftp);
        Assert.Equal(f, Run(h, AlgDirection.In2Out, f, a, conn: Tftp));
        Assert.Empty(a.Expectations);
        Assert.Equal(1, a.Refused);
    }

    [Theory]
    [InlineData(3, "\0\u0001data")]
    [InlineData(4, "\0\u0001")]
    [InlineData(5, "\0\u0001oops\0")]
    public void Data_ack_and_error_pass_silently(int op, string body)
    {
        var h = new TftpHandler();
        var a = new AlgActions();
        var f = Udp(AlgDirection.In2Out, Request(op, body), Tftp);
        Assert.Equal(f, Run(h, AlgDirection.In2Out, f, a, conn: Tftp));
        Assert.Empty(a.Expectations);
        Assert.Equal(0, a.Refused);
    }

    [Fact]
    public void Replies_and_short_datagrams()
    {
        var h = new TftpHandler();
        var a = new AlgActions();
        var reply = Udp(AlgDirection.Out2In, Request(1, "f\0octet\0"), Tftp);
        Assert.Equal(reply, Run(h, AlgDirection.Out2In, reply, a, conn: Tftp));
        Assert.Empty(a.Expectations);
        Assert.Equal(0, a.Refused);
        var runt = Udp(AlgDirection.In2Out, [1], Tftp);
        Assert.Equal(runt, Run(h, AlgDirection.In2Out, runt, a, conn: Tftp));
        Assert.Equal(1, a.Refused);
    }

    [Fact]
    public void Forget_and_expire_drop_connection_state()
    {
        var h = new TftpHandler();
        var a = new AlgActions();
        var other = Tftp with { InsidePort = 40001 };
        Run(h, AlgDirection.In2Out, Udp(AlgDirection.In2Out, Request(1, "f\0octet\0"), Tftp), a, conn: Tftp, nowMs: 1000);
        Run(h, AlgDirection.In2Out, Udp(AlgDirection.In2Out, Request(1, "f\0octet\0"), other), a, conn: other, nowMs: 5000);
        Assert.Equal(2, h.ConnectionCount);
        Assert.Equal(1, h.Expire(7000, 3000));
        h.Forget(other);
        Assert.Equal(0, h.ConnectionCount);
    }
}
