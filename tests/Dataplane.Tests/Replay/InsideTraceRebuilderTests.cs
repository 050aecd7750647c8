using Natd.Control.Replay;
using Natd.Dataplane.Nat;
using Natd.Tests.Support;
using static Natd.Tests.Support.Frames;

namespace Natd.Tests.Replay;

/// <summary>
/// Replay's inside-trace rebuild on its own: a reply as the inside host saw it becomes, byte for
/// byte past Ethernet, what the remote sent to the external endpoint (incremental checksums equal
/// to freshly computed ones); no live session, no rebuild.
/// </summary>
public class InsideTraceRebuilderTests
{
    private const string In = EngineHarness.InsideHost, Out = EngineHarness.OutsideHost, Ext = EngineHarness.External;

    [Fact]
    public void A_udp_reply_seen_inside_is_rebuilt_as_the_remote_sent_it()
    {
        var h = new EngineHarness();
        int eport = SrcPort(h.Out(Udp(In, 40000, Out, 53)));
        byte[] seen = Udp(Out, 53, In, 40000, "answer"u8.ToArray());
        byte[] sent = Udp(Out, 53, Ext, eport, "answer"u8.ToArray());

        Assert.True(InsideTraceRebuilder.TryRebuild(h.Engine, seen, h.Now));
        Assert.Equal(sent.AsSpan(14).ToArray(), seen.AsSpan(14).ToArray());
    }

    [Fact]
    public void An_echo_reply_seen_inside_is_rebuilt_with_the_external_identifier()
    {
        var h = new EngineHarness();
        byte[] o = h.Out(Icmp(In, Out, 8, 0, 0x1234, 1));
        int id = (o[14 + 20 + 4] << 8) | o[14 + 20 + 5];
        byte[] seen = Icmp(Out, In, 0, 0, 0x1234, 1);
        byte[] sent = Icmp(Out, Ext, 0, 0, id, 1);

        Assert.True(InsideTraceRebuilder.TryRebuild(h.Engine, seen, h.Now));
        Assert.Equal(sent.AsSpan(14).ToArray(), seen.AsSpan(14).ToArray());
    }

    [Fact]
    public void A_reply_without_a_live_session_is_not_rebuilt()
    {
        var h = new EngineHarness();
        h.Out(Udp(In, 40000, Out, 53));
        byte[] unsolicited = Udp(Out, 53, In, 40001);
        byte[] copy = (byte[])unsolicited.Clone();
        Assert.False(InsideTraceRebuilder.TryRebuild(h.Engine, unsolicited, h.Now));
        Assert.Equal(copy, unsolicited);

        // Past the UDP idle timeout the session counts as none.
        byte[] late = Udp(Out, 53, In, 40000);
        long later = h.Now + (h.Engine.Settings.Timeouts.Udp + 1) * 1000L;
        Assert.False(InsideTraceRebuilder.TryRebuild(h.Engine, late, later));
    }
}
