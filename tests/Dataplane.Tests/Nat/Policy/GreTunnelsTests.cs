using Natd.Dataplane.Alg;
using Natd.Dataplane.Nat;
using Natd.Dataplane.Packets;
using Natd.Tests.Alg;
using Natd.Tests.Support;

namespace Natd.Tests.Nat.Policy;

/// <summary>The PPTP GRE table used directly: translation by Call ID, idle expiry, sweep and pool changes.</summary>
public class GreTunnelsTests
{
    private const string Client = "10.0.0.2", Server = EngineHarness.OutsideHost, Ext = EngineHarness.External;

    private static (PolicyFixture F, GreTunnels G) Build()
    {
        var f = new PolicyFixture();
        var g = new GreTunnels(f.Settings, f.Counters);
        Assert.True(g.Apply(new GreCall(true, Ipv4.Parse(Client), 0x4000, Ipv4.Parse(Server), 11, Ipv4.Parse(Ext), 0x5001), PolicyFixture.T0));
        return (f, g);
    }

    private static long IdleMs(PolicyFixture f) => f.Settings.Timeouts.Udp * 1000L;

    private static Span<byte> Ip(byte[] frame) => frame.AsSpan(14);

    [Fact]
    public void A_call_translates_both_ways_until_idle_for_the_udp_timeout_then_is_gone()
    {
        var (f, g) = Build();
        byte[] reply = PptpFrames.Gre(Server, Ext, 0x5001);
        var ctx = f.Context(PolicyFixture.T0 + IdleMs(f) - 1);
        Assert.Equal(TunnelVerdict.ToInside, g.Out2In(Ip(reply), 20, ref ctx));
        Assert.Equal(Client, Frames.Dst(reply));
        Assert.Equal(0x4000, PptpFrames.GreCallId(reply));

        // The reply refreshed the call: idle counts from there.
        long seen = PolicyFixture.T0 + IdleMs(f) - 1;
        byte[] out1 = PptpFrames.Gre(Client, Server, 11);
        ctx = f.Context(seen + IdleMs(f) - 1);
        Assert.Equal(TunnelVerdict.ToOutside, g.In2Out(Ip(out1), 20, ref ctx));
        Assert.Equal(Ext, Frames.Src(out1));

        long last = seen + IdleMs(f) - 1;
        byte[] out2 = PptpFrames.Gre(Client, Server, 11);
        ctx = f.Context(last + IdleMs(f));
        Assert.Equal(TunnelVerdict.Pass, g.In2Out(Ip(out2), 20, ref ctx));
        Assert.Equal(0, g.Calls.Count); // removed when found idle
        Assert.Equal(2, f.Counters.PptpGreTranslated);
    }

    [Fact]
    public void The_sweep_removes_idle_calls_and_keeps_live_ones()
    {
        var (f, g) = Build();
        Assert.True(g.Apply(new GreCall(true, Ipv4.Parse("10.0.0.3"), 0x4000, Ipv4.Parse(Server), 12, Ipv4.Parse(Ext), 0x5002), PolicyFixture.T0 + 10_000));
        Assert.Equal(0, g.Sweep(PolicyFixture.T0 + IdleMs(f) - 1, 16));
        Assert.Equal(1, g.Sweep(PolicyFixture.T0 + IdleMs(f), 16));
        Assert.Equal(1, g.Calls.Count);
        Assert.Equal(1, g.Sweep(PolicyFixture.T0 + 10_000 + IdleMs(f), 16));
        Assert.Equal(0, g.Calls.Count);
    }

    [Fact]
    public void A_reload_with_a_shorter_udp_timeout_applies_at_the_next_lookup()
    {
        var (f, g) = Build();
        g.Update(f.Settings with { Timeouts = f.Settings.Timeouts with { Udp = 10 } });
        byte[] reply = PptpFrames.Gre(Server, Ext, 0x5001);
        var ctx = f.Context(PolicyFixture.T0 + 10_000);
        Assert.Equal(TunnelVerdict.Pass, g.Out2In(Ip(reply), 20, ref ctx));
        Assert.Equal(0, g.Calls.Count);
    }

    [Fact]
    public void Calls_on_an_address_that_left_the_pool_are_closed()
    {
        var (_, g) = Build();
        g.DropOffPool([Ipv4.Parse(Ext)]);
        Assert.Equal(1, g.Calls.Count);
        g.DropOffPool([Ipv4.Parse("198.51.100.9")]);
        Assert.Equal(0, g.Calls.Count);
    }

    [Fact]
    public void A_broken_version_1_header_is_dropped_and_counted_and_version_0_passes()
    {
        var (f, g) = Build();
        byte[] broken = PptpFrames.Gre(Server, Ext, 0x5001);
        broken[14 + 20] |= 0x80; // checksum-present: not allowed in enhanced GRE
        var ctx = f.Context(PolicyFixture.T0);
        Assert.Equal(TunnelVerdict.Dropped, g.Out2In(Ip(broken), 20, ref ctx));
        Assert.Equal(DropReason.BadGre, ctx.DropReason);
        Assert.Equal(1, f.Counters.Drops[(int)DropReason.BadGre]);

        byte[] v0 = PptpFrames.Gre(Server, Ext, 0x5001);
        v0[14 + 21] &= 0xF8; // version 0: plain GRE, not PPTP's
        Assert.Equal(TunnelVerdict.Pass, g.Out2In(Ip(v0), 20, ref ctx));
    }
}
