using System.Buffers.Binary;
using Natd.Dataplane.Nat;
using Natd.Dataplane.Packets;
using Natd.Dataplane.Sessions;
using Natd.Tests.Support;

namespace Natd.Tests.Nat.Policy;

/// <summary>IPsec and the port-less path used directly, without an engine: what each translates, passes on or drops.</summary>
public class TunnelTests
{
    private const string A = "10.0.0.2", B = "10.0.0.3", Remote = "203.0.113.10", Ext = EngineHarness.External;

    private sealed class Parts
    {
        public Parts(Func<NatSettings, NatSettings>? tweak = null)
        {
            F = new PolicyFixture(tweak);
            Forwards = new ForwardTable(F.Settings, F.Sessions, F.Rules, F.Counters, 1);
            Gre = new GreTunnels(F.Settings, F.Counters);
            Ipsec = new IpsecTunnels(F.Settings, 0, F.Sessions, F.Rules, Forwards, F.Counters);
            Portless = new PortlessProtocols(F.Sessions, F.Rules, Forwards, Gre, Ipsec, F.Counters);
        }

        public PolicyFixture F { get; }
        public ForwardTable Forwards { get; }
        public GreTunnels Gre { get; }
        public IpsecTunnels Ipsec { get; }
        public PortlessProtocols Portless { get; }
    }

    private static byte[] Packet(string src, string dst, byte proto, uint spi = 0x1001)
    {
        var l4 = new byte[16];
        BinaryPrimitives.WriteUInt32BigEndian(l4, spi);
        BinaryPrimitives.WriteUInt32BigEndian(l4.AsSpan(4), 1);
        return Frames.Wrap(src, dst, proto, l4, 64, null, null);
    }

    private static Span<byte> Ip(byte[] frame) => frame.AsSpan(14);

    private static readonly Func<NatSettings, NatSettings> MasqueradeAll = s => s with
    {
        Rules = [new ForwardRule { Name = "subscribers", Sources = [Ipv4Prefix.Parse("10.0.0.0/24")], Action = RuleAction.Masquerade }],
    };

    [Fact]
    public void Esp_is_associated_by_spi_and_ah_is_refused()
    {
        var p = new Parts();
        var ctx = p.F.Context(PolicyFixture.T0);
        byte[] esp = Packet(A, Remote, IpProtocol.Esp);
        Assert.Equal(TunnelVerdict.ToOutside, p.Ipsec.EspIn2Out(Ip(esp), Ipv4.Parse(Ext), ref ctx));
        Assert.Equal(Ext, Frames.Src(esp));
        Assert.Equal(1, p.Ipsec.Masq.EspCount);

        byte[] reply = Packet(Remote, Ext, IpProtocol.Esp, 0x2001);
        Assert.Equal(TunnelVerdict.ToInside, p.Ipsec.EspOut2In(Ip(reply), 20, toPool: true, ref ctx));
        Assert.Equal(A, Frames.Dst(reply));
        Assert.Equal(TunnelVerdict.Pass, p.Ipsec.EspOut2In(Ip(Packet(Remote, Ext, IpProtocol.Esp, 0x2001)), 20, toPool: false, ref ctx));

        Assert.Equal(TunnelVerdict.Dropped, p.Ipsec.EspIn2Out(Ip(Packet(A, Remote, IpProtocol.Ah)), Ipv4.Parse(Ext), ref ctx));
        Assert.Equal(DropReason.AhRefused, ctx.DropReason);
        Assert.Equal(1, p.F.Counters.Drops[(int)DropReason.AhRefused]);
    }

    [Fact]
    public void Esp_a_rule_accepts_is_left_to_the_port_less_path()
    {
        var p = new Parts(s => s with { Rules = [new ForwardRule { Name = "vpn", Protocol = IpProtocol.Esp, Action = RuleAction.Accept }] });
        var ctx = p.F.Context(PolicyFixture.T0);
        byte[] esp = Packet(A, Remote, IpProtocol.Esp);
        Assert.Equal(TunnelVerdict.Pass, p.Ipsec.EspIn2Out(Ip(esp), Ipv4.Parse(Ext), ref ctx));
        Assert.Equal(TunnelVerdict.ToOutside, p.Portless.In2Out(Ip(esp), Ipv4.Parse(Ext), ref ctx));
        Assert.Equal(A, Frames.Src(esp)); // an identity session: routed untranslated
        Assert.Equal(0, p.Ipsec.Masq.EspCount);
    }

    [Fact]
    public void Without_rules_a_port_less_protocol_is_unsupported()
    {
        var p = new Parts();
        var ctx = p.F.Context(PolicyFixture.T0);
        Assert.Equal(TunnelVerdict.Dropped, p.Portless.In2Out(Ip(Packet(A, Remote, 99)), Ipv4.Parse(Ext), ref ctx));
        Assert.Equal(DropReason.UnsupportedProtocol, ctx.DropReason);
    }

    [Fact]
    public void A_masqueraded_port_less_protocol_allows_one_inside_host_per_remote()
    {
        var p = new Parts(MasqueradeAll);
        var ctx = p.F.Context(PolicyFixture.T0);
        byte[] fromA = Packet(A, Remote, 99);
        Assert.Equal(TunnelVerdict.ToOutside, p.Portless.In2Out(Ip(fromA), Ipv4.Parse(Ext), ref ctx));
        Assert.Equal(Ext, Frames.Src(fromA));
        Assert.Equal(SessionOrigin.PortLess, p.F.Table.Sessions[p.F.Table.FindIn2Out(new FlowKey(Ipv4.Parse(A), Ipv4.Parse(Remote), 0, 0, 99))].Origin);

        Assert.Equal(TunnelVerdict.Dropped, p.Portless.In2Out(Ip(Packet(B, Remote, 99)), Ipv4.Parse(Ext), ref ctx));
        Assert.Equal(DropReason.ProtocolInUse, ctx.DropReason);

        byte[] reply = Packet(Remote, Ext, 99);
        Assert.Equal(TunnelVerdict.ToInside, p.Portless.Out2In(Ip(reply), 20, toPool: true, ref ctx));
        Assert.Equal(A, Frames.Dst(reply));

        Assert.Equal(TunnelVerdict.Dropped, p.Portless.Out2In(Ip(Packet("203.0.113.11", Ext, 99)), 20, toPool: true, ref ctx));
        Assert.Equal(DropReason.NoSession, ctx.DropReason);
    }

    [Fact]
    public void A_protocol_forward_carries_its_server_both_ways_and_a_reject_rule_is_left_to_the_caller()
    {
        var p = new Parts(s => s with
        {
            Rules = [new ForwardRule { Name = "no-99", Protocol = 99, Action = RuleAction.Reject }],
            ProtocolForwards = [new ProtocolForward(IpProtocol.Gre, Ipv4.Parse(Ext), Ipv4.Parse(B))],
        });
        var ctx = p.F.Context(PolicyFixture.T0);
        byte[] inbound = Packet(Remote, Ext, IpProtocol.Gre);
        Assert.Equal(TunnelVerdict.ToInside, p.Portless.Out2In(Ip(inbound), 20, toPool: true, ref ctx));
        Assert.Equal(B, Frames.Dst(inbound));
        byte[] outbound = Packet(B, Remote, IpProtocol.Gre);
        Assert.Equal(TunnelVerdict.ToOutside, p.Portless.In2Out(Ip(outbound), Ipv4.Parse("198.51.100.77"), ref ctx));
        Assert.Equal(Ext, Frames.Src(outbound)); // the forward's address, not the host's pool address
        Assert.Equal(2, p.F.Counters.ProtocolForwarded);

        Assert.Equal(TunnelVerdict.Reject, p.Portless.In2Out(Ip(Packet(A, Remote, 99)), Ipv4.Parse(Ext), ref ctx));
    }
}
