using Natd.Dataplane.Io;
using Natd.Dataplane.Nat;
using Natd.Dataplane.Packets;
using Natd.Dataplane.Sessions;
using Natd.Tests.Support;
using static Natd.Tests.Support.Frames;

namespace Natd.Tests.Nat;

/// <summary>
/// The ICMP components on their own: the token bucket (N per second, then refused, then refilled),
/// one bucket for every error natd generates (time exceeded and a rule's unreachable alike, echo
/// replies not limited), and the RFC 5508 translator over a live and an idled-out session.
/// </summary>
public class IcmpComponentTests
{
    private const long T0 = 5_000;
    private static readonly MacAddress InMac = new(0x02_00_00_00_00_01);
    private static readonly MacAddress OutMac = new(0x02_00_00_00_00_02);

    [Fact]
    public void TheBucketAllowsRatePerSecondThenRefusesThenRefills()
    {
        var b = new TokenBucket(3);
        Assert.True(b.TryTake(T0));
        Assert.True(b.TryTake(T0));
        Assert.True(b.TryTake(T0 + 10));
        Assert.False(b.TryTake(T0 + 10));
        Assert.False(b.TryTake(T0 + 999));
        Assert.True(b.TryTake(T0 + 1000)); // a second after the refill
        Assert.True(b.TryTake(T0 + 1000));
        Assert.True(b.TryTake(T0 + 1500));
        Assert.False(b.TryTake(T0 + 1500));
        Assert.False(new TokenBucket(0).TryTake(T0));
    }

    [Fact]
    public void EveryGeneratedErrorTakesFromOneBucket()
    {
        var s = EngineHarness.LabSettings();
        var c = new NatCounters();
        var icmp = new IcmpResponder(new AddressPlan(s, 1), InMac, OutMac, c, errorRate: 2);

        Verdict TimeExceeded(long now)
        {
            byte[] f = Udp("10.0.0.2", 4000, "203.0.113.9", 53, ttl: 1);
            var slot = new byte[FrameBatch.SlotSize];
            f.CopyTo(slot, 0);
            int len = f.Length;
            var ctx = new PacketContext(c, now);
            var v = icmp.TimeExceeded(slot, ref len, Side.Inside, slot.AsSpan(14, f.Length - 14), 20, ref ctx);
            Assert.Equal(DropReason.TtlExpired, ctx.DropReason);
            return v;
        }

        Verdict Reject(long now)
        {
            byte[] f = Tcp("10.0.0.2", 4000, "203.0.113.9", 25, 0x02);
            var slot = new byte[FrameBatch.SlotSize];
            f.CopyTo(slot, 0);
            int len = f.Length;
            var ctx = new PacketContext(c, now);
            var v = icmp.IcmpReply(slot, ref len, Side.Inside, slot.AsSpan(14, f.Length - 14), 20, Natd.Dataplane.Packets.Icmp.DestinationUnreachable, 13, DropReason.RuleReject, ref ctx);
            Assert.Equal(DropReason.RuleReject, ctx.DropReason);
            if (v == Verdict.ToInside)
            {
                byte[] o = slot[..len];
                Assert.Equal("10.0.0.2", Dst(o));
                Assert.Equal("10.0.0.1", Src(o));
                Assert.Equal(3, o[L4Offset(o)]);
                Assert.Equal(13, o[L4Offset(o) + 1]);
                Assert.True(ChecksumsValid(o));
            }
            return v;
        }

        Assert.Equal(Verdict.ToInside, TimeExceeded(T0));
        Assert.Equal(Verdict.ToInside, Reject(T0 + 1));
        Assert.Equal(Verdict.Drop, TimeExceeded(T0 + 2)); // the bucket is shared: both kinds used it up
        Assert.Equal(Verdict.Drop, Reject(T0 + 3));
        Assert.Equal(2, c.IcmpErrorsSent);
        Assert.Equal(2, c.Drops[(int)DropReason.TtlExpired]); // dropped either way, answered or not
        Assert.Equal(2, c.Drops[(int)DropReason.RuleReject]);

        // Echo replies to natd's own address are not errors: not limited.
        for (int i = 0; i < 5; i++)
        {
            byte[] ping = Icmp("10.0.0.2", "10.0.0.1", Natd.Dataplane.Packets.Icmp.EchoRequest, 0, 7, i);
            var slot = new byte[FrameBatch.SlotSize];
            ping.CopyTo(slot, 0);
            int len = ping.Length;
            var ctx = new PacketContext(c, T0 + 4);
            Assert.Equal(Verdict.ToInside, icmp.ToGateway(slot, ref len, Side.Inside, slot.AsSpan(14, ping.Length - 14), 20, ref ctx));
            Assert.Equal(Natd.Dataplane.Packets.Icmp.EchoReply, slot[34]);
        }
        Assert.Equal(5, c.EchoRepliesSent);

        Assert.Equal(Verdict.ToInside, TimeExceeded(T0 + 1000)); // refilled
    }

    [Fact]
    public void TheTranslatorSendsAnErrorOfALiveSessionInsideAndRefusesAnIdledOutOne()
    {
        var h = new EngineHarness();
        byte[] sent = h.Out(Udp(EngineHarness.InsideHost, 4000, "203.0.113.9", 53));
        var s = h.Engine.Settings;
        var plan = new AddressPlan(s, 1);
        var c = new NatCounters();
        var neighbours = new Neighbours(s, plan, InMac, OutMac, c, learnFromTraffic: false);
        var responder = new IcmpResponder(plan, InMac, OutMac, c, 100);
        long[] idle = [120_000, 120_000, 120_000, 120_000];
        var tr = new IcmpErrorTranslator(h.Engine.Table, idle, plan, neighbours, responder, c);

        byte[] err = EngineHarness.FromOutside(IcmpError("203.0.113.9", EngineHarness.External, 3, 3, sent));
        var slot = new byte[FrameBatch.SlotSize];
        err.CopyTo(slot, 0);
        int len = err.Length;
        var ctx = new PacketContext(c, h.Now + 1000);
        Assert.Equal(Verdict.ToInside, tr.IcmpErrorOut2In(slot, ref len, slot.AsSpan(14, err.Length - 14), 20, ref ctx));
        byte[] o = slot[..len];
        // The quote is the packet as it left natd (TTL 63), its source restored.
        var expected = WithMacs(IcmpError("203.0.113.9", EngineHarness.InsideHost, 3, 3, Udp(EngineHarness.InsideHost, 4000, "203.0.113.9", 53, ttl: 63), ttl: 63), GatewayInsideMac, InsideHostMac);
        Assert.Equal(expected.AsSpan(14).ToArray(), o.AsSpan(14).ToArray());
        Assert.Equal(InsideHostMac, o[..6]);
        Assert.True(ChecksumsValid(o));
        Assert.Equal(1, c.IcmpErrorsTranslated);
        Assert.Equal(1, h.Engine.Table.Count);

        // Past the idle timeout the session is gone: the error is dropped, the session deleted.
        err.CopyTo(slot, 0);
        len = err.Length;
        ctx = new PacketContext(c, h.Now + 120_000);
        Assert.Equal(Verdict.Drop, tr.IcmpErrorOut2In(slot, ref len, slot.AsSpan(14, err.Length - 14), 20, ref ctx));
        Assert.Equal(DropReason.IcmpErrorNoSession, ctx.DropReason);
        Assert.Equal(0, h.Engine.Table.Count);
    }
}
