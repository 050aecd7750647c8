using Natd.Dataplane.Alg;
using Natd.Dataplane.Nat;
using Natd.Dataplane.Packets;
using Natd.Dataplane.Sessions;

namespace Natd.Tests.Nat.Policy;

/// <summary>The trigger table used directly: a range opens while its triggering session lives, for one host at a time.</summary>
public class TriggerTableTests
{
    private const string HostA = "10.0.0.2", HostB = "10.0.0.3", Server = "198.51.100.2", Ext = "198.51.100.1";
    private static readonly PortTrigger RealAudio = new("realaudio", IpProtocol.Tcp, new PortRange(7070, 7070), IpProtocol.Udp, new PortRange(6970, 7170));

    private static (PolicyFixture F, TriggerTable T) Build()
    {
        var f = new PolicyFixture(s => s with { Algs = s.Algs with { Triggers = [RealAudio] } });
        return (f, new TriggerTable(f.Settings, f.Sessions, f.Rules));
    }

    /// <summary>The triggering TCP session, as the masquerading path would have made it.</summary>
    private static (FlowKey Key, int Session) Trigger(PolicyFixture f, string host, long nowMs)
    {
        var key = PolicyFixture.Key(host, 33000, Server, 7070, IpProtocol.Tcp);
        int s = f.Sessions.AddStatic(key, PolicyFixture.Key(Server, 7070, Ext, 33000, IpProtocol.Tcp), SessionOrigin.Masquerade, nowMs, out _);
        Assert.True(s >= 0);
        return (key, s);
    }

    private static FlowKey Media(int port) => PolicyFixture.Key(Server, 5000, Ext, port, IpProtocol.Udp);

    [Fact]
    public void The_range_opens_while_the_triggering_session_lives_and_closes_when_it_expires()
    {
        var (f, t) = Build();
        long now = PolicyFixture.T0;
        var ctx = f.Context(now);
        Assert.False(t.TryOpenInbound(Media(6970), 0, ref ctx, out _, out _)); // nothing active yet

        var (parent, _) = Trigger(f, HostA, now);
        t.MaybeActivate(parent, Ipv4.Parse(Ext), now);
        Assert.Equal(1, t.Activated);
        Assert.True(t.TryOpenInbound(Media(6970), 0, ref ctx, out int s, out FlowKey related));
        Assert.True(s >= 0);
        Assert.Equal(parent, related);
        Assert.Equal(PolicyFixture.Key(HostA, 6970, Server, 5000, IpProtocol.Udp), f.Table.Sessions[s].In2Out);
        Assert.Equal(1, t.Sessions);

        // The triggering TCP session is still transitory (no SYN/ACK seen): past its timeout the range is shut.
        long late = now + f.TimeoutMs[(int)LruClass.TcpTransitory];
        ctx = f.Context(late - 1);
        Assert.True(t.TryOpenInbound(Media(7000), 0, ref ctx, out s, out _));
        Assert.True(s >= 0);
        ctx = f.Context(late);
        Assert.False(t.TryOpenInbound(Media(7001), 0, ref ctx, out _, out _));
        Assert.Equal(-1, f.Table.FindIn2Out(parent)); // the expired parent was deleted when found idle
    }

    [Fact]
    public void Another_host_is_refused_while_the_holder_lives_and_takes_over_after()
    {
        var (f, t) = Build();
        long now = PolicyFixture.T0;
        var (a, sa) = Trigger(f, HostA, now);
        t.MaybeActivate(a, Ipv4.Parse(Ext), now);
        var (b, _) = Trigger(f, HostB, now);
        t.MaybeActivate(b, Ipv4.Parse(Ext), now);
        Assert.Equal((1, 1L), ((int)t.Activated, t.Refused));

        var ctx = f.Context(now);
        Assert.True(t.TryOpenInbound(Media(6980), 0, ref ctx, out int s, out _));
        Assert.Equal(Ipv4.Parse(HostA), f.Table.Sessions[s].In2Out.Source);

        f.Table.Delete(sa); // A's triggering connection ends
        t.MaybeActivate(b, Ipv4.Parse(Ext), now);
        Assert.Equal(2, t.Activated);
        Assert.True(t.TryOpenInbound(Media(6981), 0, ref ctx, out s, out _));
        Assert.Equal(Ipv4.Parse(HostB), f.Table.Sessions[s].In2Out.Source);
    }

    [Fact]
    public void Outbound_from_the_range_keeps_its_port_and_only_for_the_holder()
    {
        var (f, t) = Build();
        long now = PolicyFixture.T0;
        var (a, _) = Trigger(f, HostA, now);
        t.MaybeActivate(a, Ipv4.Parse(Ext), now);
        var ctx = f.Context(now);
        Assert.False(t.TryOpenOutbound(PolicyFixture.Key(HostB, 6990, Server, 5000, IpProtocol.Udp), Ipv4.Parse(Ext), ref ctx, out _, out _));
        Assert.True(t.TryOpenOutbound(PolicyFixture.Key(HostA, 6990, Server, 5000, IpProtocol.Udp), Ipv4.Parse(Ext), ref ctx, out int s, out FlowKey parent));
        Assert.Equal(a, parent);
        Assert.Equal(FlowKey.PortToRaw(6990), f.Table.Sessions[s].Out2In.DestinationPort);

        // The same flow again: the session exists, the opener reports it rather than making a second.
        Assert.True(t.TryOpenOutbound(PolicyFixture.Key(HostA, 6990, Server, 5000, IpProtocol.Udp), Ipv4.Parse(Ext), ref ctx, out s, out _));
        Assert.Equal((-1, DropReason.SessionLimit), (s, ctx.DropReason));
    }

    [Fact]
    public void A_tcp_segment_other_than_a_syn_does_not_open_the_range()
    {
        var t2 = new PortTrigger("tcp-range", IpProtocol.Tcp, new PortRange(7070, 7070), IpProtocol.Tcp, new PortRange(6970, 6979));
        var f = new PolicyFixture(s => s with { Algs = s.Algs with { Triggers = [t2] } });
        var t = new TriggerTable(f.Settings, f.Sessions, f.Rules);
        var (a, _) = Trigger(f, HostA, PolicyFixture.T0);
        t.MaybeActivate(a, Ipv4.Parse(Ext), PolicyFixture.T0);
        var ctx = f.Context(PolicyFixture.T0);
        var key = PolicyFixture.Key(Server, 5000, Ext, 6975, IpProtocol.Tcp);
        Assert.False(t.TryOpenInbound(key, Tcp.Ack, ref ctx, out _, out _));
        Assert.True(t.TryOpenInbound(key, Tcp.Syn, ref ctx, out int s, out _));
        Assert.True(s >= 0);
    }
}
