using Natd.Dataplane.Nat;
using Natd.Dataplane.Packets;
using Natd.Dataplane.Sessions;
using Natd.Tests.Support;
using static Natd.Tests.Support.Frames;

namespace Natd.Tests.Nat;

/// <summary>
/// RFC 4787 REQ-5a: UDP timers of their own for well-known server ports (timeouts.udp-ports), so a
/// DNS query's session gives its external port back in seconds, not after the 300 s UDP timeout.
/// </summary>
public class UdpPortTimeoutsTests
{
    private const string In = EngineHarness.InsideHost, Out = EngineHarness.OutsideHost, Ext = EngineHarness.External;

    private static UdpPortTimeouts Timers(params (int Port, int Seconds)[] entries)
        => UdpPortTimeouts.Create(entries.Select(e => new KeyValuePair<int, int>(e.Port, e.Seconds)), out string? error)
           ?? throw new InvalidOperationException(error);

    private static NatSettings With(NatSettings s, UdpPortTimeouts timers)
        => s with { Timeouts = new Timeouts(Udp: 300, Icmp: 60) { UdpPorts = timers } };

    [Theory]
    [InlineData(0, 30, "port 0 is not a well-known port")]
    [InlineData(1024, 30, "port 1024 is not a well-known port")]
    [InlineData(53, 0, "port 53: 0 s is not a timeout")]
    public void A_port_outside_the_well_known_range_or_a_timeout_below_one_second_is_refused(int port, int seconds, string expected)
    {
        Assert.Null(UdpPortTimeouts.Create([new(port, seconds)], out string? error));
        Assert.StartsWith(expected, error);
    }

    [Fact]
    public void At_most_four_distinct_timeouts_each_an_expiry_class_in_port_order()
    {
        Assert.Null(UdpPortTimeouts.Create([new(53, 30), new(53, 40)], out string? twice));
        Assert.Equal("port 53 is named twice", twice);
        Assert.Null(UdpPortTimeouts.Create([new(1, 10), new(2, 20), new(3, 30), new(4, 40), new(5, 50)], out string? five));
        Assert.StartsWith("5 distinct timeouts; at most 4", five);

        // Ports sharing a timeout share its class; classes are numbered by the lowest port using them.
        var t = Timers((123, 60), (53, 30), (5, 30), (500, 90), (853, 10));
        Assert.Equal([5, 53, 123, 500, 853], t.Entries.Select(e => e.Key));
        Assert.Equal(LruClass.UdpPort0, t.ClassOf(Raw(53), Raw(40000)));
        Assert.Equal(LruClass.UdpPort0, t.ClassOf(Raw(5), Raw(40000)));
        Assert.Equal(LruClass.UdpPort1, t.ClassOf(Raw(123), Raw(40000)));
        Assert.Equal(LruClass.UdpPort2, t.ClassOf(Raw(500), Raw(40000)));
        Assert.Equal(LruClass.UdpPort3, t.ClassOf(Raw(853), Raw(40000)));
        Assert.Equal([30, 60, 90, 10], Enumerable.Range(0, 4).Select(i => t.Seconds(i, 300)));
        Assert.Equal(300, t.Seconds(4, 300));

        // The remote's port first, then the external port (an inbound flow to a forward); neither: plain UDP.
        Assert.Equal(LruClass.UdpPort1, t.ClassOf(Raw(123), Raw(53)));
        Assert.Equal(LruClass.UdpPort0, t.ClassOf(Raw(40000), Raw(53)));
        Assert.Equal(LruClass.Udp, t.ClassOf(Raw(40000), Raw(1053)));
        Assert.Equal(LruClass.Udp, UdpPortTimeouts.None.ClassOf(Raw(53), Raw(53)));

        Assert.Equal(t, Timers((5, 30), (53, 30), (123, 60), (500, 90), (853, 10)));
        Assert.NotEqual(t, Timers((5, 30), (53, 30), (123, 60), (500, 90), (853, 11)));
        Assert.Equal("{ 5: 30, 53: 30, 123: 60, 500: 90, 853: 10 }", t.ToString());
    }

    [Fact]
    public void Rfc4787_req5a_a_dns_session_expires_at_its_ports_timer_and_frees_its_port_while_other_udp_lives_on()
    {
        var h = new EngineHarness(s => With(s, Timers((53, 30))));
        int dns = SrcPort(h.Out(Udp(In, 40000, Out, 53)));
        int other = SrcPort(h.Out(Udp(In, 40001, Out, 5000)));
        Assert.Equal(2, h.Engine.Table.CountOf(LruClass.Udp)); // the gauge counts both as UDP

        var rows = h.Engine.CollectSessionsList(h.Now).OrderBy(r => r.RemotePort).ToList();
        Assert.Equal([30.0, 300.0], rows.Select(r => r.ExpiresInSeconds));

        h.Now += 29_999;
        Assert.Equal(0, h.Engine.Sweep(h.Now, 100));
        Assert.Equal(Verdict.ToInside, h.Run(EngineHarness.FromOutside(Udp(Out, 53, Ext, dns)), Side.Outside, out _)); // the answer refreshes it
        h.Now += 29_999;
        Assert.Equal(0, h.Engine.Sweep(h.Now, 100));
        h.Now += 1;
        Assert.Equal(1, h.Engine.Sweep(h.Now, 100));
        Assert.False(h.Engine.Table.Ports.IsUsed(0, 1, dns)); // its mapping is gone with it
        Assert.Equal(Verdict.Drop, h.Run(EngineHarness.FromOutside(Udp(Out, 53, Ext, dns)), Side.Outside, out _));
        Assert.Equal(Verdict.ToInside, h.Run(EngineHarness.FromOutside(Udp(Out, 5000, Ext, other)), Side.Outside, out _));
        Assert.Equal(1, h.Engine.Table.Count);
    }

    [Fact]
    public void A_session_past_its_ports_timer_is_gone_for_a_lookup_before_any_sweep()
    {
        var h = new EngineHarness(s => With(s, Timers((53, 30))));
        int dns = SrcPort(h.Out(Udp(In, 40000, Out, 53)));
        h.Now += 30_000;
        Assert.Equal(Verdict.Drop, h.Run(EngineHarness.FromOutside(Udp(Out, 53, Ext, dns)), Side.Outside, out _));
        Assert.Equal(0, h.Engine.Table.Count);
    }

    [Fact]
    public void An_inbound_session_to_a_forward_on_a_well_known_port_takes_that_ports_timer()
    {
        var h = new EngineHarness(s => With(s, Timers((53, 30))) with
        {
            Forwards =
            [
                new PortForward { Protocol = IpProtocol.Udp, ExternalAddress = Ipv4.Parse(Ext), ExternalPorts = new PortRange(53, 53), Backends = [new(Ipv4.Parse(In), 53)] },
                new PortForward { Protocol = IpProtocol.Udp, ExternalAddress = Ipv4.Parse(Ext), ExternalPorts = new PortRange(5353, 5353), Backends = [new(Ipv4.Parse(In), 53)] },
            ],
        });
        Assert.Equal(53, DstPort(h.Out(EngineHarness.FromOutside(Udp(Out, 41000, Ext, 53)), Side.Outside)));
        Assert.Equal(53, DstPort(h.Out(EngineHarness.FromOutside(Udp(Out, 41001, Ext, 5353)), Side.Outside)));
        var rows = h.Engine.CollectSessionsList(h.Now).OrderBy(r => r.ExternalPort).ToList();
        Assert.Equal([(53, 30.0), (5353, 300.0)], rows.Select(r => ((int)r.ExternalPort, r.ExpiresInSeconds)));
        h.Now += 30_000;
        Assert.Equal(1, h.Engine.Sweep(h.Now, 100));
        Assert.Equal(5353, Assert.Single(h.Engine.CollectSessionsList(h.Now)).ExternalPort);
    }

    [Fact]
    public void A_reload_reclasses_the_udp_sessions_in_the_table_and_keeps_them_oldest_first()
    {
        var h = new EngineHarness(s => With(s, UdpPortTimeouts.None));
        var ports = new List<int>();
        for (int i = 0; i < 6; i++)
        {
            // Alternating DNS and other UDP, 5 s apart, so both new lists are built from one merged order.
            ports.Add(SrcPort(h.Out(Udp(In, 40000 + i, Out, i % 2 == 0 ? 53 : 5000))));
            h.Now += 5_000;
        }
        h.Out(Tcp(In, 40100, Out, 80, 0x02));
        h.Out(Icmp(In, Out, 8, 0, 7, 1));
        Assert.Null(h.Engine.UpdateSettings(With(h.Engine.Settings, Timers((53, 30)))));

        var rows = h.Engine.CollectSessionsList(h.Now).Where(r => r.Protocol == "udp").OrderBy(r => r.InsidePort).ToList();
        Assert.Equal([0.0, 275.0, 10.0, 285.0, 20.0, 295.0], rows.Select(r => r.ExpiresInSeconds));
        Assert.Equal(6, h.Engine.Table.CountOf(LruClass.Udp));

        // The sweep takes the DNS sessions in the order they were last active, one per 10 s (the
        // first was already 30 s idle at the reload).
        h.Now += 1;
        Assert.Equal(1, h.Engine.Sweep(h.Now, 100));
        h.Now += 9_998;
        Assert.Equal(0, h.Engine.Sweep(h.Now, 100));
        h.Now += 1;
        Assert.Equal(1, h.Engine.Sweep(h.Now, 100));
        h.Now += 10_000;
        Assert.Equal(1, h.Engine.Sweep(h.Now, 100));
        Assert.Equal(5, h.Engine.Table.Count); // three UDP, the TCP SYN, the ping

        // Another map: the DNS session is plain UDP again, though the first timer is now 10 s (port 123's).
        int dns = SrcPort(h.Out(Udp(In, 40006, Out, 53)));
        Assert.Null(h.Engine.UpdateSettings(With(h.Engine.Settings, Timers((123, 10)))));
        h.Now += 11_000;
        Assert.Equal(0, h.Engine.Sweep(h.Now, 100));
        Assert.Equal(Verdict.ToInside, h.Run(EngineHarness.FromOutside(Udp(Out, 53, Ext, dns)), Side.Outside, out _));
        Assert.Equal(Verdict.ToInside, h.Run(EngineHarness.FromOutside(Udp(Out, 5000, Ext, ports[1])), Side.Outside, out _));
        Assert.Equal(300.0, h.Engine.CollectSessionsList(h.Now).Single(r => r.InsidePort == 40006).ExpiresInSeconds);
    }

    [Fact]
    public void A_restored_session_takes_the_timer_its_port_has_now()
    {
        var before = new EngineHarness(s => With(s, UdpPortTimeouts.None));
        before.Out(Udp(In, 40000, Out, 53));
        before.Out(Udp(In, 40001, Out, 5000));
        before.Now += 20_000;
        var saved = new List<SessionRecord>();
        before.Engine.ExportSessions(saved, before.Now);
        Assert.All(saved, r => Assert.Equal(LruClass.Udp, r.Class));

        var after = new EngineHarness(s => With(s, Timers((53, 30))));
        Assert.Equal(2, after.Engine.ImportSessions(saved, after.Now));
        var rows = after.Engine.CollectSessionsList(after.Now).OrderBy(r => r.RemotePort).ToList();
        Assert.Equal([10.0, 280.0], rows.Select(r => r.ExpiresInSeconds));

        // One already idle past its port's timer is not restored at all.
        var late = new EngineHarness(s => With(s, Timers((53, 15))));
        Assert.Equal(1, late.Engine.ImportSessions(saved, late.Now));
        Assert.Equal(5000, Assert.Single(late.Engine.CollectSessionsList(late.Now)).RemotePort);
    }

    [Fact]
    public void A_snapshot_with_a_class_no_natd_writes_is_restored_by_its_protocol_not_trusted()
    {
        var before = new EngineHarness();
        before.Out(Udp(In, 40000, Out, 5000));
        var saved = new List<SessionRecord>();
        before.Engine.ExportSessions(saved, before.Now);
        var after = new EngineHarness();
        Assert.Equal(1, after.Engine.ImportSessions([saved[0] with { Class = (LruClass)200 }], after.Now));
        Assert.Equal(300.0, Assert.Single(after.Engine.CollectSessionsList(after.Now)).ExpiresInSeconds);
    }

    private static ushort Raw(int port) => FlowKey.PortToRaw((ushort)port);
}
