using Natd.Dataplane.Alg;
using Natd.Dataplane.Nat;
using Natd.Dataplane.Packets;
using Natd.Tests.Support;
using static Natd.Tests.Support.Frames;
using Natd.Dataplane.Sessions;

namespace Natd.Tests.Alg;

/// <summary>
/// The engine's side of the ALG framework: which frames go to a helper, port reservation,
/// expectations (one-shot, only from the expected peer, to the control connection's own inside
/// host), relations shown to natctl, and port triggers.
/// </summary>
public class AlgFrameworkTests
{
    private const string In = EngineHarness.InsideHost, Out = EngineHarness.OutsideHost, Ext = EngineHarness.External;
    private const string ThirdParty = "198.51.100.3";
    private const byte Syn = 0x02, Ack = 0x10, Psh = 0x08, Rst = 0x04;

    private static EngineHarness Harness(Func<AlgSettings, AlgSettings>? algs = null)
        => new(s => s with { Algs = algs is null ? new AlgSettings() : algs(new AlgSettings()) }) { CompleteAlgFrames = false };

    /// <summary>Opens an FTP control connection (SYN through the engine) and returns its external port.</summary>
    private static int OpenControl(EngineHarness h, int clientPort = 40000)
    {
        var v = h.Run(Tcp(In, clientPort, Out, 21, Syn), Side.Inside, out var o);
        Assert.Equal(Verdict.ToHelper, v);
        return SrcPort(o);
    }

    /// <summary>Runs a data segment of the control connection and returns what the engine handed over.</summary>
    private static AlgPending Command(EngineHarness h, string text, int clientPort = 40000)
    {
        var v = h.Run(Tcp(In, clientPort, Out, 21, Ack | Psh, payload: System.Text.Encoding.ASCII.GetBytes(text)), Side.Inside, out _);
        Assert.Equal(Verdict.ToHelper, v);
        return h.PendingAlg;
    }

    private static Verdict Complete(EngineHarness h, in AlgPending p, params ExpectationRequest[] expectations)
    {
        var actions = new AlgActions();
        actions.Expectations.AddRange(expectations);
        var frame = Tcp(Ext, p.Connection.ExternalPort, Out, 21, Ack);
        var slot = new byte[2048];
        frame.CopyTo(slot, 0);
        return h.CompleteAlg(slot, frame.Length, p, actions, h.Now);
    }

    private static ExpectationRequest ActiveData(in AlgPending p, int insidePort, string? remote = null, string inside = In)
        => new(ExpectationKind.Inbound, IpProtocol.Tcp, Ipv4.Parse(remote ?? Out), 0, p.ReservedPort, Ipv4.Parse(inside), (ushort)insidePort, UsesReservedPort: true);

    private static int TcpPortsInUse(EngineHarness h) => h.Engine.Table.Ports.InUse(0, 0);

    [Fact]
    public void Frames_of_a_connection_to_an_alg_port_go_to_the_helper_in_both_directions_with_the_connection_described()
    {
        var h = Harness();
        int ext = OpenControl(h);
        AlgPending p = h.PendingAlg;
        Assert.Equal(AlgKind.Ftp, p.Kind);
        Assert.Equal(AlgDirection.In2Out, p.Direction);
        Assert.Equal(Side.Outside, p.Egress);
        Assert.Equal(new AlgConnection(IpProtocol.Tcp, Ipv4.Parse(In), 40000, Ipv4.Parse(Out), 21, Ipv4.Parse(Ext), (ushort)ext), p.Connection);
        Assert.Equal(0, p.ReservedPort); // a SYN carries no command

        var v = h.Run(EngineHarness.FromOutside(Tcp(Out, 21, Ext, ext, Syn | Ack)), Side.Outside, out var back);
        Assert.Equal(Verdict.ToHelper, v);
        Assert.Equal(AlgDirection.Out2In, h.PendingAlg.Direction);
        Assert.Equal(Side.Inside, h.PendingAlg.Egress);
        Assert.Equal(In, Dst(back)); // translated before the helper sees it
    }

    [Fact]
    public void A_deleted_alg_session_is_listed_for_its_helper_as_the_connection_its_frames_named_and_other_sessions_are_not()
    {
        var h = Harness();
        OpenControl(h);
        AlgConnection named = h.PendingAlg.Connection;
        Assert.Equal(Verdict.ToOutside, h.Run(Tcp(In, 40001, Out, 80, Syn), Side.Inside, out _));
        Assert.Equal(0, h.Engine.AlgBridge.ClosedCount);

        // The operator deletes both sessions (natctl delete): only the FTP one is listed.
        Assert.Equal(1, h.Engine.DeleteSessions(IpProtocol.Tcp, Ipv4.Parse(In), 40001, 0, 0));
        Assert.Equal(0, h.Engine.AlgBridge.ClosedCount);
        Assert.Equal(1, h.Engine.DeleteSessions(IpProtocol.Tcp, Ipv4.Parse(In), 40000, 0, 0));
        Assert.Equal(1, h.Engine.AlgBridge.ClosedCount);
        Assert.Equal(named, h.Engine.AlgBridge.Closed(0, out AlgKind kind));
        Assert.Equal(AlgKind.Ftp, kind);
        h.Engine.AlgBridge.ClearClosed();
        Assert.Equal(0, h.Engine.AlgBridge.ClosedCount);

        // A flush lists it too.
        OpenControl(h, 40002);
        h.Engine.Flush();
        Assert.Equal(1, h.Engine.AlgBridge.ClosedCount);
        Assert.Equal(40002, h.Engine.AlgBridge.Closed(0, out _).InsidePort);
        h.Engine.AlgBridge.ClearClosed();
        Assert.Equal(0, h.Engine.Counters[Natd.Dataplane.Counters.ShardCounter.AlgForgetsDeferred]);
    }

    [Fact]
    public void Deleted_alg_sessions_past_the_lists_capacity_are_counted_and_left_to_the_idle_expiry()
    {
        var h = Harness();
        for (int k = 0; k <= SessionTable.ClosedAlgCapacity; k++)
        {
            OpenControl(h, 20000 + k);
        }
        h.Engine.Flush();
        Assert.Equal(SessionTable.ClosedAlgCapacity, h.Engine.AlgBridge.ClosedCount);
        Assert.Equal(1, h.Engine.Counters[Natd.Dataplane.Counters.ShardCounter.AlgForgetsDeferred]);
        Assert.Equal(20000, h.Engine.AlgBridge.Closed(0, out _).InsidePort); // oldest first
    }

    [Fact]
    public void Other_ports_and_switched_off_algs_take_the_fast_path()
    {
        var h = Harness(a => a with { Ftp = new AlgPorts(false, [21]) });
        Assert.Equal(Verdict.ToOutside, h.Run(Tcp(In, 40000, Out, 21, Syn), Side.Inside, out _));
        Assert.Equal(Verdict.ToOutside, h.Run(Tcp(In, 40001, Out, 80, Syn), Side.Inside, out _));
        var h2 = Harness(a => a with { Ftp = new AlgPorts(true, [2121]) });
        Assert.Equal(Verdict.ToHelper, h2.Run(Tcp(In, 40000, Out, 2121, Syn), Side.Inside, out _));
        Assert.Equal(AlgKind.Ftp, h2.PendingAlg.Kind);
    }

    [Fact]
    public void A_reload_switches_an_alg_for_new_connections_and_an_open_one_keeps_its_helper()
    {
        var h = Harness();
        OpenControl(h, 40000);
        string? why = h.Engine.UpdateSettings(h.Engine.Settings with { Algs = h.Engine.Settings.Algs with { Ftp = new AlgPorts(false, [21]) } });
        Assert.Null(why);
        Assert.Equal(Verdict.ToOutside, h.Run(Tcp(In, 40001, Out, 21, Syn), Side.Inside, out _));
        Assert.Equal(Verdict.ToHelper, h.Run(Tcp(In, 40000, Out, 21, Ack), Side.Inside, out _)); // its seq offsets live in the helper
        h.Engine.UpdateSettings(h.Engine.Settings with { Algs = h.Engine.Settings.Algs with { Ftp = new AlgPorts(true, [21, 2121]) } });
        Assert.Equal(Verdict.ToHelper, h.Run(Tcp(In, 40002, Out, 2121, Syn), Side.Inside, out _));
    }

    [Fact]
    public void An_inbound_expectation_lets_exactly_the_server_open_one_connection_to_the_advertised_inside_port()
    {
        var h = Harness();
        int ctrl = OpenControl(h);
        int before = TcpPortsInUse(h);
        AlgPending p = Command(h, "PORT 10,0,0,2,156,64\r\n");
        Assert.NotEqual(0, p.ReservedPort);
        Assert.NotEqual(ctrl, p.ReservedPort);
        Assert.Equal(before + 1, TcpPortsInUse(h));
        Assert.Equal(Verdict.ToOutside, Complete(h, p, ActiveData(p, 40000)));
        Assert.Equal(1, h.Engine.ExpectationCount);
        var pending = new List<ExpectationInfo>();
        h.Engine.CollectExpectations(pending, h.Now);
        var e = Assert.Single(pending);
        Assert.Equal((AlgKind.Ftp, ExpectationKind.Inbound, Ipv4.Parse(In), (ushort)40000, Ipv4.Parse(Ext), p.ReservedPort, Ipv4.Parse(Out), (ushort)0, (ushort)21),
            (e.Alg, e.Kind, e.InsideAddress, e.InsidePort, e.ExternalAddress, e.ExternalPort, e.RemoteAddress, e.RemotePort, e.ControlRemotePort));
        Assert.Equal(60, e.ExpiresInSeconds, 3);

        // A third party that guessed the port gets nothing.
        Assert.Equal(Verdict.Drop, h.Run(EngineHarness.FromOutside(Tcp(ThirdParty, 20, Ext, p.ReservedPort, Syn)), Side.Outside, out _));
        // Nor does a non-SYN from the server.
        Assert.Equal(Verdict.Drop, h.Run(EngineHarness.FromOutside(Tcp(Out, 20, Ext, p.ReservedPort, Ack)), Side.Outside, out _));

        var v = h.Run(EngineHarness.FromOutside(Tcp(Out, 20, Ext, p.ReservedPort, Syn)), Side.Outside, out var data);
        Assert.Equal(Verdict.ToInside, v);
        Assert.Equal(In, Dst(data));
        Assert.Equal(40000, DstPort(data));
        Assert.True(ChecksumsValid(data));
        Assert.Equal(0, h.Engine.ExpectationCount); // used once

        var list = new List<SessionInfo>();
        h.Engine.CollectSessions(list, h.Now);
        var related = Assert.Single(list, s => s.RemotePort == 20);
        Assert.Equal($"ftp tcp {In}:40000 -> {Out}:21", related.RelatedTo);
        Assert.Equal("ftp", Assert.Single(list, s => s.RemotePort == 21).Alg);

        // The inside host's answer goes out from the expected port.
        var reply = h.Out(Tcp(In, 40000, Out, 20, Syn | Ack));
        Assert.Equal(p.ReservedPort, SrcPort(reply));

        // A second connection to the same port (expectation used) is not let in.
        Assert.Equal(Verdict.Drop, h.Run(EngineHarness.FromOutside(Tcp(Out, 2020, Ext, p.ReservedPort, Syn)), Side.Outside, out _));
    }

    [Fact]
    public void Rules_that_deny_inbound_traffic_also_deny_an_expected_connection()
    {
        var h = new EngineHarness(s => s with
        {
            Rules =
            [
                new ForwardRule { Name = "no-active-ftp-data", Protocol = IpProtocol.Tcp, SourcePorts = [new PortRange(20, 20)], In = RuleInterface.Outside, Action = RuleAction.Deny },
                new ForwardRule { Name = "subscribers", Sources = [Ipv4Prefix.Parse("10.0.0.0/24")], Action = RuleAction.Masquerade },
            ],
        }) { CompleteAlgFrames = false };
        OpenControl(h);
        AlgPending p = Command(h, "PORT 10,0,0,2,156,64\r\n");
        Complete(h, p, ActiveData(p, 40000));
        Assert.Equal(Verdict.Drop, h.Run(EngineHarness.FromOutside(Tcp(Out, 20, Ext, p.ReservedPort, Syn)), Side.Outside, out _));
        Assert.Equal(DropReason.RuleDeny, h.LastDrop);
        // From another source port the rule does not match: the expectation still opens.
        Assert.Equal(Verdict.ToInside, h.Run(EngineHarness.FromOutside(Tcp(Out, 2020, Ext, p.ReservedPort, Syn)), Side.Outside, out _));
    }

    [Fact]
    public void A_reserved_port_the_helper_did_not_use_is_freed_and_so_is_one_whose_frame_was_lost()
    {
        var h = Harness();
        OpenControl(h);
        int before = TcpPortsInUse(h);
        AlgPending p = Command(h, "USER anonymous\r\n");
        Assert.Equal(before + 1, TcpPortsInUse(h));
        Assert.Equal(Verdict.ToOutside, Complete(h, p));
        Assert.Equal(before, TcpPortsInUse(h));

        AlgPending lost = Command(h, "PORT 10,0,0,2,156,64\r\n");
        Assert.Equal(before + 1, TcpPortsInUse(h));
        h.Engine.AbandonAlg(lost);
        Assert.Equal(before, TcpPortsInUse(h));
        Assert.Equal(1, h.Engine.AlgStats.Lost[(int)AlgKind.Ftp]);
    }

    [Theory]
    [InlineData("10.0.0.3", Out)]        // another inside host: a pinhole to a third party inside
    [InlineData(In, ThirdParty)]         // another remote than the FTP server
    public void The_engine_refuses_an_expectation_a_helper_asks_for_anyone_else(string inside, string remote)
    {
        var h = Harness();
        OpenControl(h);
        int before = TcpPortsInUse(h);
        AlgPending p = Command(h, "PORT 10,0,0,3,156,64\r\n");
        Assert.Equal(Verdict.ToOutside, Complete(h, p, ActiveData(p, 40000, remote, inside)));
        Assert.Equal(0, h.Engine.ExpectationCount);
        Assert.Equal(1, h.Engine.AlgStats.Refused[(int)AlgKind.Ftp]);
        Assert.Equal(before, TcpPortsInUse(h));
        Assert.Equal(Verdict.Drop, h.Run(EngineHarness.FromOutside(Tcp(remote, 20, Ext, p.ReservedPort, Syn)), Side.Outside, out _));
    }

    [Fact]
    public void An_expectation_expires_after_its_lifetime_and_frees_its_port()
    {
        var h = Harness(a => a with { ExpectationTimeout = 5 });
        OpenControl(h);
        int before = TcpPortsInUse(h);
        AlgPending p = Command(h, "PORT 10,0,0,2,156,64\r\n");
        Complete(h, p, ActiveData(p, 40000));
        h.Now += 6_000;
        h.Engine.Sweep(h.Now, 128);
        Assert.Equal(0, h.Engine.ExpectationCount);
        Assert.Equal(1, h.Engine.AlgStats.ExpectationsExpired);
        Assert.Equal(before, TcpPortsInUse(h));
        Assert.Equal(Verdict.Drop, h.Run(EngineHarness.FromOutside(Tcp(Out, 20, Ext, p.ReservedPort, Syn)), Side.Outside, out _));
    }

    [Fact]
    public void An_outbound_expectation_marks_the_passive_data_connection_related_to_its_control_connection()
    {
        var h = Harness();
        int ext = OpenControl(h);
        h.Run(EngineHarness.FromOutside(Tcp(Out, 21, Ext, ext, Ack | Psh, payload: "227 Entering Passive Mode (198,51,100,2,117,48)\r\n"u8.ToArray())), Side.Outside, out _);
        AlgPending p = h.PendingAlg;
        Assert.Equal(0, p.ReservedPort); // out2in frames never reserve
        Complete(h, p, new ExpectationRequest(ExpectationKind.Outbound, IpProtocol.Tcp, Ipv4.Parse(Out), 30000, 0, Ipv4.Parse(In), 0, false));

        h.Out(Tcp(In, 40100, Out, 30000, Syn));
        var list = new List<SessionInfo>();
        h.Engine.CollectSessions(list, h.Now);
        var data = Assert.Single(list, s => s.RemotePort == 30000);
        Assert.Equal($"ftp tcp {In}:40000 -> {Out}:21", data.RelatedTo);
        Assert.Null(data.Alg);
    }

    [Fact]
    public void A_tftp_reply_from_the_servers_new_port_joins_the_clients_mapping_and_nobody_else_gets_in()
    {
        var h = Harness();
        var v = h.Run(Udp(In, 50000, Out, 69, "\0\u0001file\0octet\0"u8.ToArray()), Side.Inside, out var rrq);
        Assert.Equal(Verdict.ToHelper, v);
        AlgPending p = h.PendingAlg;
        Assert.Equal(AlgKind.Tftp, p.Kind);
        Assert.Equal(0, p.ReservedPort);
        int ext = SrcPort(rrq);
        var actions = new AlgActions();
        actions.Expectations.Add(new ExpectationRequest(ExpectationKind.Inbound, IpProtocol.Udp, Ipv4.Parse(Out), 0, (ushort)ext, Ipv4.Parse(In), 50000, false));
        Assert.Equal(Verdict.ToOutside, h.CompleteAlg(rrq, rrq.Length, p, actions, h.Now));

        Assert.Equal(Verdict.Drop, h.Run(EngineHarness.FromOutside(Udp(ThirdParty, 41000, Ext, ext, [0, 3, 0, 1])), Side.Outside, out _));
        var data = h.Out(EngineHarness.FromOutside(Udp(Out, 41000, Ext, ext, [0, 3, 0, 1])), Side.Outside);
        Assert.Equal(50000, DstPort(data));
        Assert.Equal(In, Dst(data));
        // The client's ACK to the new port reuses the same external port (one mapping).
        var ack = h.Out(Udp(In, 50000, Out, 41000, [0, 4, 0, 1]));
        Assert.Equal(ext, SrcPort(ack));
    }

    [Fact]
    public void A_port_trigger_opens_its_range_to_the_triggering_host_only_while_the_trigger_connection_lives()
    {
        var realaudio = new PortTrigger("realaudio", IpProtocol.Tcp, new PortRange(7070, 7070), IpProtocol.Udp, new PortRange(6970, 7170));
        var h = Harness(a => a with { Triggers = [realaudio] });
        byte[] media = [1, 2, 3];
        Assert.Equal(Verdict.Drop, h.Run(EngineHarness.FromOutside(Udp(Out, 5000, Ext, 6970, media)), Side.Outside, out _));

        h.Out(Tcp(In, 40000, Out, 7070, Syn));
        Assert.Equal(1, h.Engine.TriggersActivated);
        var o = h.Out(EngineHarness.FromOutside(Udp(ThirdParty, 5000, Ext, 6971, media)), Side.Outside);
        Assert.Equal(In, Dst(o));
        Assert.Equal(6971, DstPort(o));
        // The host's own traffic from the range keeps its port.
        var up = h.Out(Udp(In, 7000, Out, 5000, media));
        Assert.Equal(7000, SrcPort(up));

        var list = new List<SessionInfo>();
        h.Engine.CollectSessions(list, h.Now);
        Assert.Equal($"trigger tcp {In}:40000 -> {Out}:7070", Assert.Single(list, s => s.InsidePort == 6971).RelatedTo);

        // A second host cannot take the range while the first one's trigger lives.
        h.Out(Tcp("10.0.0.3", 40000, Out, 7070, Syn));
        Assert.Equal(1, h.Engine.TriggersRefused);

        // The trigger connection ends: new inbound sessions are refused again.
        h.Out(Tcp(In, 40000, Out, 7070, Rst));
        h.Now += 300_000;
        h.Engine.Sweep(h.Now, 4096);
        Assert.Equal(Verdict.Drop, h.Run(EngineHarness.FromOutside(Udp(Out, 5000, Ext, 6980, media)), Side.Outside, out _));
    }

    [Fact]
    public void Trigger_ranges_are_never_handed_out_by_the_dynamic_allocator()
    {
        var t = new PortTrigger("x", IpProtocol.Tcp, new PortRange(7070, 7070), IpProtocol.Udp, new PortRange(1024, 60000));
        var h = Harness(a => a with { Triggers = [t] });
        for (int i = 0; i < 200; i++)
        {
            var o = h.Out(Udp(In, 20000 + i, Out, 53, [1]));
            Assert.True(SrcPort(o) > 60000, $"port {SrcPort(o)} is in the trigger range");
        }
    }
}
