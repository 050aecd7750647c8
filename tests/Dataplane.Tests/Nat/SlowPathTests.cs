using Natd.Dataplane.Alg;
using Natd.Dataplane.Nat;
using Natd.Dataplane.Packets;
using Natd.Tests.Support;
using static Natd.Tests.Support.Frames;

namespace Natd.Tests.Nat;

/// <summary>The slow path's flow openers run in their documented order (NatEngine.In2OutOpeners, Out2InOpeners).</summary>
public class SlowPathTests
{
    private const string In = EngineHarness.InsideHost, Out = EngineHarness.OutsideHost, Ext = EngineHarness.External;
    private const string Backend = "10.0.0.3";
    private const byte Syn = 0x02, Ack = 0x10;

    [Fact]
    public void The_openers_are_listed_in_the_documented_order()
    {
        Assert.Equal(new[] { FlowOpener.TcpSynOnly, FlowOpener.Rules, FlowOpener.Trigger, FlowOpener.Masquerade }, NatEngine.In2OutOpeners);
        Assert.Equal(
            new[] { FlowOpener.Transit, FlowOpener.Expectation, FlowOpener.Trigger, FlowOpener.Forward, FlowOpener.Pcp, FlowOpener.Mapping, FlowOpener.ToGateway },
            NatEngine.Out2InOpeners);
    }

    /// <summary>
    /// A trigger's open range and a port forward on the same port: the forward serves the port until
    /// the trigger is active, then the trigger's host gets new connections to it (trigger before
    /// forward), and the forward's own live session keeps flowing (the fast path wins over every opener).
    /// </summary>
    [Fact]
    public void An_active_trigger_takes_a_forwarded_port_before_the_forward()
    {
        var trigger = new PortTrigger("game", IpProtocol.Tcp, new PortRange(7070, 7070), IpProtocol.Udp, new PortRange(7000, 7000));
        var h = new EngineHarness(s => s with
        {
            Algs = new AlgSettings { Triggers = [trigger] },
            Forwards =
            [
                new PortForward
                {
                    Protocol = IpProtocol.Udp, ExternalAddress = Ipv4.Parse(Ext), ExternalPorts = new PortRange(7000, 7000),
                    Backends = [new(Ipv4.Parse(Backend), 7000)],
                },
            ],
        });
        h.Engine.Learn(Side.Inside, Ipv4.Parse(Backend), MacAddress.Read(InsideHostMac));
        byte[] media = [1, 2, 3];

        var first = h.Out(EngineHarness.FromOutside(Udp(Out, 5000, Ext, 7000, media)), Side.Outside);
        Assert.Equal(Backend, Dst(first)); // no trigger active: the forward

        h.Out(Tcp(In, 40000, Out, 7070, Syn));
        Assert.Equal(1, h.Engine.TriggersActivated);

        var second = h.Out(EngineHarness.FromOutside(Udp(Out, 5001, Ext, 7000, media)), Side.Outside);
        Assert.Equal(In, Dst(second)); // the trigger opener runs before the forward opener
        Assert.Equal(7000, DstPort(second));

        var again = h.Out(EngineHarness.FromOutside(Udp(Out, 5000, Ext, 7000, media)), Side.Outside);
        Assert.Equal(Backend, Dst(again)); // a live session never reaches the openers
    }

    /// <summary>A TCP segment without a session that is not a SYN is refused before the rules are asked (no rule hit counted).</summary>
    [Fact]
    public void Tcp_without_a_syn_is_refused_before_the_rules()
    {
        var h = new EngineHarness(s => s with
        {
            Rules = [new ForwardRule { Name = "no-web", Protocol = IpProtocol.Tcp, DestinationPorts = [new PortRange(80, 80)], Action = RuleAction.Deny }],
            DefaultPolicy = RuleAction.Masquerade,
        });
        Assert.Equal(Verdict.Drop, h.Run(Tcp(In, 40000, Out, 80, Ack), Side.Inside, out _));
        Assert.Equal(DropReason.TcpNotSyn, h.LastDrop);
        Assert.Equal(0, h.Engine.RuleHits[0]);

        Assert.Equal(Verdict.Drop, h.Run(Tcp(In, 40000, Out, 80, Syn), Side.Inside, out _));
        Assert.Equal(DropReason.RuleDeny, h.LastDrop);
        Assert.Equal(1, h.Engine.RuleHits[0]);
    }
}
