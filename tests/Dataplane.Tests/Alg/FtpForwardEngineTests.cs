using Natd.Dataplane.Alg;
using Natd.Dataplane.Alg.Ftp;
using Natd.Dataplane.Io;
using Natd.Dataplane.Nat;
using Natd.Dataplane.Packets;
using Natd.Tests.Support;
using static Natd.Tests.Support.Frames;
using Natd.Dataplane.Sessions;

namespace Natd.Tests.Alg;

/// <summary>
/// The engine and the FTP handler together for a server inside behind a port forward
/// (198.51.100.1:21 to 10.0.0.2:21): the forward's session goes to the FTP helper, the server's
/// 227 is rewritten and the client (only it) reaches the advertised data port through the reserved one.
/// </summary>
public class FtpForwardEngineTests
{
    private const string Server = EngineHarness.InsideHost, Client = EngineHarness.OutsideHost, Ext = EngineHarness.External;
    private const string ThirdParty = "198.51.100.3";
    private const byte Syn = 0x02, Ack = 0x10, Psh = 0x08;

    private static EngineHarness Harness(int externalPort = 21, ushort backendPort = 21, string pool = Ext) => new(s => s with
    {
        Algs = new AlgSettings(),
        Pool = [Ipv4.Parse(pool)],
        Forwards =
        [
            new PortForward
            {
                Protocol = IpProtocol.Tcp, ExternalAddress = Ipv4.Parse(Ext), ExternalPorts = new PortRange((ushort)externalPort, (ushort)externalPort),
                Backends = [new(Ipv4.Parse(Server), backendPort)],
            },
        ],
    }) { CompleteAlgFrames = false };

    /// <summary>Runs a frame through the engine and, when it goes to the helper, through <paramref name="ftp"/> and CompleteAlg.</summary>
    private static Verdict Through(EngineHarness h, FtpHandler ftp, byte[] frame, Side ingress, out byte[] output, out AlgPending pending)
    {
        var slot = new byte[2048];
        frame.CopyTo(slot, 0);
        int len = frame.Length;
        var v = h.Process(slot, ref len, ingress, FrameFlags.None, h.Now);
        pending = default;
        if (v == Verdict.ToHelper)
        {
            pending = h.PendingAlg;
            var actions = new AlgActions();
            len = ftp.Handle(pending.Connection, pending.Direction, slot, len, pending.ReservedPort, actions, h.Now);
            v = h.CompleteAlg(slot, len, pending, actions, h.Now);
        }
        output = slot.AsSpan(0, len).ToArray();
        return v;
    }

    [Fact]
    public void Server_inside_passive_mode_through_a_forward_reaches_only_the_client()
    {
        var h = Harness();
        var ftp = new FtpHandler();
        var v = Through(h, ftp, EngineHarness.FromOutside(Tcp(Client, 50000, Ext, 21, Syn, seq: 5000)), Side.Outside, out var syn, out var p);
        Assert.Equal(Verdict.ToInside, v);
        Assert.Equal(AlgKind.Ftp, p.Kind);
        Assert.Equal(AlgDirection.Out2In, p.Direction);
        Assert.Equal(new AlgConnection(IpProtocol.Tcp, Ipv4.Parse(Server), 21, Ipv4.Parse(Client), 50000, Ipv4.Parse(Ext), 21), p.Connection);
        Assert.Equal((Server, 21), (Dst(syn), DstPort(syn)));

        Assert.Equal(Verdict.ToOutside, Through(h, ftp, Tcp(Server, 21, Client, 50000, Syn | Ack, seq: 1000, ack: 5001), Side.Inside, out _, out _));
        var reply = System.Text.Encoding.ASCII.GetBytes("227 Entering Passive Mode (10,0,0,2,117,48).\r\n");
        v = Through(h, ftp, Tcp(Server, 21, Client, 50000, Psh | Ack, seq: 1001, ack: 5001, payload: reply), Side.Inside, out var rewritten, out p);
        Assert.Equal(Verdict.ToOutside, v);
        Assert.NotEqual(0, p.ReservedPort);
        string text = System.Text.Encoding.ASCII.GetString(rewritten.AsSpan(L4Offset(rewritten) + 20));
        Assert.Equal($"227 Entering Passive Mode (198,51,100,1,{p.ReservedPort >> 8},{p.ReservedPort & 0xFF}).\r\n", text);
        Assert.True(ChecksumsValid(rewritten));
        Assert.Equal(1, h.Engine.ExpectationCount);

        // A third party knocking on the reserved port is plain unsolicited traffic.
        Assert.Equal(Verdict.Drop, h.Run(EngineHarness.FromOutside(Tcp(ThirdParty, 50001, Ext, p.ReservedPort, Syn)), Side.Outside, out _));
        // The client's data connection reaches the server's advertised port.
        var data = h.Out(EngineHarness.FromOutside(Tcp(Client, 50001, Ext, p.ReservedPort, Syn)), Side.Outside);
        Assert.Equal((Server, 30000), (Dst(data), DstPort(data)));
        Assert.True(ChecksumsValid(data));
        Assert.Equal(0, h.Engine.ExpectationCount); // used once
        var back = h.Out(Tcp(Server, 30000, Client, 50001, Syn | Ack, ack: 1001));
        Assert.Equal((Ext, (int)p.ReservedPort), (Src(back), SrcPort(back)));
    }

    [Fact]
    public void Server_reply_split_across_segments_is_held_then_rewritten_and_its_pinhole_opened()
    {
        var h = Harness();
        var ftp = new FtpHandler();
        Through(h, ftp, EngineHarness.FromOutside(Tcp(Client, 50000, Ext, 21, Syn, seq: 5000)), Side.Outside, out _, out _);
        Through(h, ftp, Tcp(Server, 21, Client, 50000, Syn | Ack, seq: 1000, ack: 5001), Side.Inside, out _, out _);
        byte[] head = System.Text.Encoding.ASCII.GetBytes("227 Entering Passive Mode (10,0,");
        var v = Through(h, ftp, Tcp(Server, 21, Client, 50000, Psh | Ack, seq: 1001, ack: 5001, payload: head), Side.Inside, out var first, out _);
        Assert.Equal(Verdict.ToOutside, v);
        Assert.Equal(L4Offset(first) + 20, first.Length); // only the headers leave: the reply waits for its end
        Assert.True(ChecksumsValid(first));
        Assert.Equal(0, h.Engine.ExpectationCount);     // and the first frame's reserved port went back unused

        byte[] tail = System.Text.Encoding.ASCII.GetBytes("0,2,117,48).\r\n");
        v = Through(h, ftp, Tcp(Server, 21, Client, 50000, Psh | Ack, seq: 1001 + (uint)head.Length, ack: 5001, payload: tail), Side.Inside,
            out var whole, out var p);
        Assert.Equal(Verdict.ToOutside, v);
        string text = System.Text.Encoding.ASCII.GetString(whole.AsSpan(L4Offset(whole) + 20));
        Assert.Equal($"227 Entering Passive Mode (198,51,100,1,{p.ReservedPort >> 8},{p.ReservedPort & 0xFF}).\r\n", text);
        Assert.Equal(1001u, System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(whole.AsSpan(L4Offset(whole) + 4)));
        Assert.True(ChecksumsValid(whole));
        Assert.Equal(1, h.Engine.ExpectationCount);
        var data = h.Out(EngineHarness.FromOutside(Tcp(Client, 50001, Ext, p.ReservedPort, Syn)), Side.Outside);
        Assert.Equal((Server, 30000), (Dst(data), DstPort(data)));
        ftp.Dispose();
    }

    [Fact]
    public void Forward_to_another_backend_port_is_classified_by_the_backend_port_or_else_the_external_port()
    {
        var h = Harness(externalPort: 2121, backendPort: 21);
        Assert.Equal(Verdict.ToHelper, h.Run(EngineHarness.FromOutside(Tcp(Client, 50000, Ext, 2121, Syn)), Side.Outside, out _));
        Assert.Equal(AlgKind.Ftp, h.PendingAlg.Kind);
        var h2 = Harness(externalPort: 21, backendPort: 2121);
        Assert.Equal(Verdict.ToHelper, h2.Run(EngineHarness.FromOutside(Tcp(Client, 50000, Ext, 21, Syn)), Side.Outside, out _));
        var h3 = Harness(externalPort: 8080, backendPort: 8000);
        Assert.Equal(Verdict.ToInside, h3.Run(EngineHarness.FromOutside(Tcp(Client, 50000, Ext, 8080, Syn)), Side.Outside, out _));
    }

    [Fact]
    public void Active_mode_data_from_the_server_is_masqueraded_and_marked_related()
    {
        var h = Harness();
        var ftp = new FtpHandler();
        Through(h, ftp, EngineHarness.FromOutside(Tcp(Client, 50000, Ext, 21, Syn, seq: 5000)), Side.Outside, out _, out _);
        Through(h, ftp, Tcp(Server, 21, Client, 50000, Syn | Ack, seq: 1000, ack: 5001), Side.Inside, out _, out _);
        var port = System.Text.Encoding.ASCII.GetBytes("PORT 198,51,100,2,195,81\r\n");
        var v = Through(h, ftp, EngineHarness.FromOutside(Tcp(Client, 50000, Ext, 21, Psh | Ack, seq: 5001, ack: 1001, payload: port)), Side.Outside, out var cmd, out _);
        Assert.Equal(Verdict.ToInside, v);
        Assert.Equal(port, cmd.AsSpan(L4Offset(cmd) + 20).ToArray()); // the client's address is public: unchanged
        Assert.Equal(1, h.Engine.ExpectationCount);
        var data = h.Out(Tcp(Server, 20, Client, 50001, Syn));
        Assert.Equal((Ext, Client, 50001), (Src(data), Dst(data), DstPort(data)));
        Assert.Equal(1, h.Engine.AlgStats.ExpectationsUsed);
        var list = new List<SessionInfo>();
        h.Engine.CollectSessions(list, h.Now);
        Assert.Equal($"ftp tcp {Server}:21 -> {Client}:50000", Assert.Single(list, s => s.RemotePort == 50001).RelatedTo);
        Assert.Equal("ftp", Assert.Single(list, s => s.RemotePort == 50000).Alg);
    }

    [Fact]
    public void Forward_on_an_address_outside_the_pool_gets_no_reserved_port_and_the_reply_is_refused()
    {
        var h = Harness(pool: "198.51.100.9");
        var ftp = new FtpHandler();
        Through(h, ftp, EngineHarness.FromOutside(Tcp(Client, 50000, Ext, 21, Syn, seq: 5000)), Side.Outside, out _, out _);
        Through(h, ftp, Tcp(Server, 21, Client, 50000, Syn | Ack, seq: 1000, ack: 5001), Side.Inside, out _, out _);
        var reply = System.Text.Encoding.ASCII.GetBytes("227 Entering Passive Mode (10,0,0,2,117,48).\r\n");
        var v = Through(h, ftp, Tcp(Server, 21, Client, 50000, Psh | Ack, seq: 1001, ack: 5001, payload: reply), Side.Inside, out var o, out var p);
        Assert.Equal(Verdict.ToOutside, v);
        Assert.Equal(0, p.ReservedPort);
        Assert.Equal(reply, o.AsSpan(L4Offset(o) + 20).ToArray());
        Assert.Equal(0, h.Engine.ExpectationCount);
        Assert.Equal(1, h.Engine.AlgStats.Refused[(int)AlgKind.Ftp]);
    }
}
