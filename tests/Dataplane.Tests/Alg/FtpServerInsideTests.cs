using Natd.Dataplane.Alg;
using Natd.Dataplane.Alg.Ftp;
using Natd.Dataplane.Packets;
using static Natd.Tests.Alg.AlgFrames;

namespace Natd.Tests.Alg;

/// <summary>
/// The FTP ALG for a server inside behind a port forward: the connection is opened from outside,
/// the server's 227/229 replies travel in2out and are rewritten, the client's PORT/EPRT travel
/// out2in and only mark the server's active data connection related.
/// </summary>
public class FtpServerInsideTests
{
    private const byte Ack = 0x10;
    private const byte PshAck = 0x18;
    private const byte Syn = 0x02;
    private const byte SynAck = 0x12;

    /// <summary>The server 10.0.0.2:21 behind 198.51.100.1:21; the client 192.0.2.10:50000.</summary>
    private static readonly AlgConnection Server = new(IpProtocol.Tcp, Ipv4.Parse(Inside), 21, Ipv4.Parse(Remote), 50000, Ipv4.Parse(External), 21);

    // Client ISN 5000 (data from 5001), server ISN 1000 (data from 1001).
    private static (FtpHandler h, AlgActions a) Open()
    {
        var h = new FtpHandler();
        var a = new AlgActions();
        Run(h, AlgDirection.Out2In, Tcp(AlgDirection.Out2In, Syn, 5000, 0, conn: Server), a, conn: Server);
        Run(h, AlgDirection.In2Out, Tcp(AlgDirection.In2Out, SynAck, 1000, 5001, conn: Server), a, conn: Server);
        return (h, a);
    }

    private static byte[] Reply(string line, uint seq = 1001, uint ack = 5001) => Tcp(AlgDirection.In2Out, PshAck, seq, ack, Bytes(line), conn: Server);

    private static byte[] Command(string line, uint seq = 5001, uint ack = 1001) => Tcp(AlgDirection.Out2In, PshAck, seq, ack, Bytes(line), conn: Server);

    private static ExpectationRequest Passive(int serverPort, int reserved)
        => new(ExpectationKind.Inbound, IpProtocol.Tcp, Ipv4.Parse(Remote), 0, (ushort)reserved, Ipv4.Parse(Inside), (ushort)serverPort, true);

    [Fact]
    public void Pasv_reply_naming_the_server_is_rewritten_to_the_external_endpoint_with_an_inbound_expectation_from_the_client()
    {
        var (h, a) = Open();
        var o = Run(h, AlgDirection.In2Out, Reply("227 Entering Passive Mode (10,0,0,2,117,48).\r\n"), a, reservedPort: 40001, conn: Server);
        Assert.Equal("227 Entering Passive Mode (198,51,100,1,156,65).\r\n", Text(o));
        Assert.True(Valid(o));
        Assert.Equal(1001u, Seq(o));
        Assert.Equal((1, 0), (a.Rewrites, a.Refused));
        Assert.Equal(Passive(30000, 40001), Assert.Single(a.Expectations));
    }

    [Theory]
    [InlineData("229 Entering Extended Passive Mode (|||30000|)\r\n", "229 Entering Extended Passive Mode (|||40001|)\r\n")]
    [InlineData("229 Entering Extended Passive Mode (!!!30000!).\r\n", "229 Entering Extended Passive Mode (!!!40001!).\r\n")]
    public void Epsv_reply_gets_the_reserved_port_keeping_its_delimiter(string reply, string expected)
    {
        var (h, a) = Open();
        var o = Run(h, AlgDirection.In2Out, Reply(reply), a, reservedPort: 40001, conn: Server);
        Assert.Equal(expected, Text(o));
        Assert.True(Valid(o));
        Assert.Equal(Passive(30000, 40001), Assert.Single(a.Expectations));
    }

    [Fact]
    public void Later_server_segments_are_shifted_and_the_clients_acks_shifted_back()
    {
        var (h, a) = Open();
        // "10,0,0,2,117,48" is 15 bytes, "198,51,100,1,156,65" 19: delta +4 (reply is 47 bytes, 51 on the wire).
        string reply = "227 Entering Passive Mode (10,0,0,2,117,48).\r\n";
        Run(h, AlgDirection.In2Out, Reply(reply), a, reservedPort: 40001, conn: Server);
        var next = Run(h, AlgDirection.In2Out, Reply("150 Here comes the directory listing.\r\n", seq: 1001 + (uint)reply.Length), a, conn: Server);
        Assert.Equal(1001u + (uint)reply.Length + 4, Seq(next));
        Assert.True(Valid(next));
        var ack = Run(h, AlgDirection.Out2In, Tcp(AlgDirection.Out2In, Ack, 5001, 1001 + (uint)reply.Length + 4, conn: Server), a, conn: Server);
        Assert.Equal(1001u + (uint)reply.Length, Ack(ack));
        Assert.True(Valid(ack));
    }

    [Theory]
    [InlineData("227 Entering Passive Mode (10,0,0,3,117,48).\r\n", 40001)]      // another inside host
    [InlineData("227 Entering Passive Mode (192,0,2,10,117,48).\r\n", 40001)]    // the client itself
    [InlineData("227 Entering Passive Mode (198,51,100,1,117,48).\r\n", 40001)]  // already public
    [InlineData("227 Entering Passive Mode (10,0,0,2,0,0).\r\n", 40001)]         // port 0
    [InlineData("227 Entering Passive Mode (10,0,0,2,117,48).\r\n", 0)]          // no port could be reserved
    [InlineData("229 Entering Extended Passive Mode (|||30000|)\r\n", 0)]
    [InlineData("229 Entering Extended Passive Mode (|||0|)\r\n", 40001)]
    [InlineData("229 Entering Extended Passive Mode (||30000|)\r\n", 40001)]
    public void Bad_passive_replies_of_the_server_are_refused_unchanged(string reply, int reserved)
    {
        var (h, a) = Open();
        var f = Reply(reply);
        Assert.Equal(f, Run(h, AlgDirection.In2Out, f, a, reservedPort: (ushort)reserved, conn: Server));
        Assert.Empty(a.Expectations);
        Assert.Equal((0, 1), (a.Rewrites, a.Refused));
    }

    [Theory]
    [InlineData("PORT 192,0,2,10,195,80\r\n", 50000)]
    [InlineData("EPRT |1|192.0.2.10|50000|\r\n", 50000)]
    public void Clients_port_naming_itself_marks_the_servers_active_connection_related_without_rewrite(string line, int port)
    {
        var (h, a) = Open();
        var f = Command(line);
        Assert.Equal(f, Run(h, AlgDirection.Out2In, f, a, conn: Server));
        Assert.Equal(new ExpectationRequest(ExpectationKind.Outbound, IpProtocol.Tcp, Ipv4.Parse(Remote), (ushort)port, 0, Ipv4.Parse(Inside), 0, false),
            Assert.Single(a.Expectations));
        Assert.Equal(0, a.Rewrites);
    }

    [Theory]
    [InlineData("PORT 198,51,100,3,195,80\r\n")]   // FTP bounce to a third party: the server's to refuse
    [InlineData("PORT 10,0,0,3,195,80\r\n")]
    [InlineData("EPRT |2|::1|50000|\r\n")]
    [InlineData("PORT 192,0,2,10,0,0\r\n")]
    public void Clients_port_naming_anyone_else_opens_nothing(string line)
    {
        var (h, a) = Open();
        var f = Command(line);
        Assert.Equal(f, Run(h, AlgDirection.Out2In, f, a, conn: Server));
        Assert.Empty(a.Expectations);
    }

    [Fact]
    public void Each_role_acts_only_on_its_own_lines_when_the_handshake_was_seen()
    {
        // Server inside: a PORT from the server is not an inside client's command.
        var (h, a) = Open();
        var port = Reply("PORT 10,0,0,2,195,80\r\n");
        Assert.Equal(port, Run(h, AlgDirection.In2Out, port, a, reservedPort: 40001, conn: Server));
        Assert.Empty(a.Expectations);

        // Client inside (the SYN went in2out): a 229 from the inside client is not a server's reply.
        var c = Connection();
        var h2 = new FtpHandler();
        Run(h2, AlgDirection.In2Out, Tcp(AlgDirection.In2Out, Syn, 1000, 0, conn: c), a, conn: c);
        var epsv = Tcp(AlgDirection.In2Out, PshAck, 1001, 0, Bytes("229 Entering Extended Passive Mode (|||30000|)\r\n"), conn: c);
        Assert.Equal(epsv, Run(h2, AlgDirection.In2Out, epsv, a, reservedPort: 40001, conn: c));
        Assert.Empty(a.Expectations);
    }

    [Fact]
    public void Without_the_handshake_the_servers_reply_is_still_rewritten()
    {
        var h = new FtpHandler(); // e.g. the helper restarted mid-connection
        var a = new AlgActions();
        var o = Run(h, AlgDirection.In2Out, Reply("227 Entering Passive Mode (10,0,0,2,117,48).\r\n"), a, reservedPort: 40001, conn: Server);
        Assert.Equal("227 Entering Passive Mode (198,51,100,1,156,65).\r\n", Text(o));
        Assert.Equal(Passive(30000, 40001), Assert.Single(a.Expectations));
    }

    [Fact]
    public void Split_passive_reply_of_the_server_is_held_and_rewritten_whole()
    {
        var (h, a) = Open();
        var f = Reply("227 Entering Passive Mode (10,0,");
        Assert.Equal("", Text(Run(h, AlgDirection.In2Out, f, a, reservedPort: 40001, conn: Server)));
        Assert.Empty(a.Expectations);
        Assert.Equal(0, a.Refused);
        var o = Run(h, AlgDirection.In2Out, Reply("0,2,117,48).\r\n", seq: 1001 + 32), a, reservedPort: 40002, conn: Server);
        Assert.Equal("227 Entering Passive Mode (198,51,100,1,156,66).\r\n", Text(o));
        Assert.Equal(1001u, Seq(o));
        Assert.True(Valid(o));
        Assert.Equal(Passive(30000, 40002), Assert.Single(a.Expectations));
        h.Dispose();
    }
}
