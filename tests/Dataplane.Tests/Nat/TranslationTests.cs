using Natd.Dataplane.Io;
using Natd.Dataplane.Nat;
using Natd.Dataplane.Packets;
using Natd.Tests.Support;
using static Natd.Tests.Support.Frames;

namespace Natd.Tests.Nat;

/// <summary>
/// Table-style translation cases in the manner of VPP's packets.def: an input frame, the exact
/// expected output frame, and the counters. The only value not known in advance is the randomly
/// allocated external port, which is read from the first translated packet and then checked.
/// </summary>
public class TranslationTests
{
    private const string In = EngineHarness.InsideHost, Out = EngineHarness.OutsideHost, Ext = EngineHarness.External;

    [Fact]
    public void Udp_in2out_and_reply_are_translated_exactly()
    {
        var h = new EngineHarness();
        var o = h.Out(Udp(In, 40000, Out, 53));
        int ext = SrcPort(o);
        Assert.InRange(ext, 1024, 65535);
        var expected = WithMacs(Udp(Ext, ext, Out, 53, ttl: 63), GatewayOutsideMac, OutsideHostMac);
        Assert.Equal(expected, o);

        var back = h.Out(EngineHarness.FromOutside(Udp(Out, 53, Ext, ext, "answer"u8.ToArray())), Side.Outside);
        Assert.Equal(WithMacs(Udp(Out, 53, In, 40000, "answer"u8.ToArray(), ttl: 63), GatewayInsideMac, InsideHostMac), back);
        Assert.Equal(1, h.Engine.Counters.PacketsIn2Out);
        Assert.Equal(1, h.Engine.Counters.PacketsOut2In);
        Assert.Equal(1, h.Engine.Table.Count);
    }

    [Fact]
    public void Udp_without_checksum_keeps_zero_checksum()
    {
        var h = new EngineHarness();
        var o = h.Out(Udp(In, 40000, Out, 53, zeroChecksum: true));
        Assert.Equal(0, o[L4Offset(o) + 6] | o[L4Offset(o) + 7]);
        Assert.Equal(WithMacs(Udp(Ext, SrcPort(o), Out, 53, ttl: 63, zeroChecksum: true), GatewayOutsideMac, OutsideHostMac), o);
    }

    [Fact]
    public void Tcp_handshake_data_fin_track_state_and_translate()
    {
        var h = new EngineHarness();
        var syn = h.Out(Tcp(In, 33000, Out, 80, 0x02, seq: 1));
        int ext = SrcPort(syn);
        Assert.Equal(WithMacs(Tcp(Ext, ext, Out, 80, 0x02, seq: 1, ttl: 63), GatewayOutsideMac, OutsideHostMac), syn);
        Assert.Equal("syn-sent", State(h));

        var synack = h.Out(EngineHarness.FromOutside(Tcp(Out, 80, Ext, ext, 0x12, seq: 500, ack: 2)), Side.Outside);
        Assert.Equal(WithMacs(Tcp(Out, 80, In, 33000, 0x12, seq: 500, ack: 2, ttl: 63), GatewayInsideMac, InsideHostMac), synack);
        Assert.Equal("established", State(h));
        Assert.True(h.Engine.CollectSessionsList(h.Now)[0].ExpiresInSeconds > 7000);

        var data = h.Out(Tcp(In, 33000, Out, 80, 0x18, seq: 2, ack: 501, payload: "GET / HTTP/1.0\r\n\r\n"u8.ToArray()));
        Assert.Equal(WithMacs(Tcp(Ext, ext, Out, 80, 0x18, seq: 2, ack: 501, payload: "GET / HTTP/1.0\r\n\r\n"u8.ToArray(), ttl: 63), GatewayOutsideMac, OutsideHostMac), data);

        h.Out(Tcp(In, 33000, Out, 80, 0x11, seq: 20, ack: 501));
        Assert.Equal("fin-wait", State(h));
        h.Out(EngineHarness.FromOutside(Tcp(Out, 80, Ext, ext, 0x11, seq: 501, ack: 21)), Side.Outside);
        Assert.Equal("closing", State(h));
        Assert.InRange(h.Engine.CollectSessionsList(h.Now)[0].ExpiresInSeconds, 239, 240);
    }

    [Fact]
    public void Tcp_rst_moves_session_to_transitory_not_deleted()
    {
        var h = new EngineHarness();
        int ext = SrcPort(h.Out(Tcp(In, 33000, Out, 80, 0x02)));
        h.Out(EngineHarness.FromOutside(Tcp(Out, 80, Ext, ext, 0x12, ack: 1001)), Side.Outside);
        h.Out(EngineHarness.FromOutside(Tcp(Out, 80, Ext, ext, 0x04, seq: 1)), Side.Outside);
        Assert.Equal("rst", State(h));
        Assert.Equal(1, h.Engine.Table.Count);
    }

    [Fact]
    public void Tcp_without_session_that_is_not_syn_is_dropped()
    {
        var h = new EngineHarness();
        Assert.Equal(Verdict.Drop, h.Run(Tcp(In, 33000, Out, 80, 0x10), Side.Inside, out _));
        Assert.Equal(1, h.Drops(DropReason.TcpNotSyn));
        Assert.Equal(0, h.Engine.Table.Count);
    }

    [Fact]
    public void Icmp_echo_identifier_is_translated_both_ways()
    {
        var h = new EngineHarness();
        var o = h.Out(Icmp(In, Out, 8, 0, 777, 1));
        int eid = IcmpId(o);
        Assert.Equal(WithMacs(Icmp(Ext, Out, 8, 0, eid, 1, ttl: 63), GatewayOutsideMac, OutsideHostMac), o);
        var back = h.Out(EngineHarness.FromOutside(Icmp(Out, Ext, 0, 0, eid, 1)), Side.Outside);
        Assert.Equal(WithMacs(Icmp(Out, In, 0, 0, 777, 1, ttl: 63), GatewayInsideMac, InsideHostMac), back);
    }

    [Fact]
    public void Icmp_port_unreachable_from_outside_has_embedded_header_untranslated()
    {
        var h = new EngineHarness();
        var sent = h.Out(Udp(In, 40000, Out, 9999));
        var before = h.Engine.CollectSessionsList(h.Now)[0].ExpiresInSeconds;
        h.Now += 10_000;
        var err = EngineHarness.FromOutside(IcmpError(Out, Ext, 3, 3, sent));
        var o = h.Out(err, Side.Outside);
        // What the inside host must see: an error quoting the packet it sent (TTL as it left natd).
        var original = Udp(In, 40000, Out, 9999, ttl: 63);
        var expected = WithMacs(IcmpError(Out, In, 3, 3, original, ttl: 63), GatewayInsideMac, InsideHostMac);
        Assert.Equal(expected, o);
        Assert.True(ChecksumsValid(o));
        // RFC 5508: the error did not refresh the session.
        Assert.Equal(before - 10, h.Engine.CollectSessionsList(h.Now)[0].ExpiresInSeconds, 3);
        Assert.Equal(1, h.Engine.Counters.IcmpErrorsTranslated);
    }

    [Fact]
    public void Icmp_time_exceeded_from_router_with_full_tcp_quote_is_translated()
    {
        var h = new EngineHarness();
        var sent = h.Out(Tcp(In, 33000, "203.0.113.9", 443, 0x02));
        var err = Frames.WithMacs(IcmpError("192.0.2.77", Ext, 11, 0, sent, quoteBytes: 20), EngineHarness.RouterMac, GatewayOutsideMac);
        var o = h.Out(err, Side.Outside);
        var expected = WithMacs(IcmpError("192.0.2.77", In, 11, 0, Tcp(In, 33000, "203.0.113.9", 443, 0x02, ttl: 63), quoteBytes: 20, ttl: 63), GatewayInsideMac, InsideHostMac);
        Assert.Equal(expected, o);
    }

    [Fact]
    public void Icmp_error_about_unknown_session_is_dropped()
    {
        var h = new EngineHarness();
        var fake = Udp(Ext, 5555, Out, 53);
        Assert.Equal(Verdict.Drop, h.Run(EngineHarness.FromOutside(IcmpError(Out, Ext, 3, 3, fake)), Side.Outside, out _));
        Assert.Equal(1, h.Drops(DropReason.IcmpErrorNoSession));
    }

    [Fact]
    public void Icmp_error_from_inside_host_is_translated_out()
    {
        var h = new EngineHarness();
        int ext = SrcPort(h.Out(Udp(In, 40000, Out, 9999)));
        var inbound = h.Out(EngineHarness.FromOutside(Udp(Out, 9999, Ext, ext)), Side.Outside);
        var err = IcmpError(In, Out, 3, 3, inbound);
        var o = h.Out(err);
        var expected = WithMacs(IcmpError(Ext, Out, 3, 3, Udp(Out, 9999, Ext, ext, ttl: 63), ttl: 63), GatewayOutsideMac, OutsideHostMac);
        Assert.Equal(expected, o);
    }

    [Fact]
    public void Checksum_left_to_offload_is_completed()
    {
        var h = new EngineHarness();
        var f = Udp(In, 40000, Out, 53);
        // Emulate CHECKSUM_PARTIAL: the field holds the folded pseudo-header sum only.
        int l4 = L4Offset(f);
        uint pseudo = Pseudo(Ip(In), Ip(Out), 17, f.Length - l4);
        ushort partial = (ushort)~PlainChecksum([], pseudo);
        f[l4 + 6] = (byte)(partial >> 8);
        f[l4 + 7] = (byte)partial;
        Assert.False(ChecksumsValid(f));
        var o = h.Out(f, Side.Inside, FrameFlags.ChecksumPartial);
        Assert.True(ChecksumsValid(o));
        Assert.Equal(1, h.Engine.Counters.ChecksumsCompleted);
    }

    [Fact]
    public void Ethernet_padding_is_not_forwarded()
    {
        var h = new EngineHarness();
        var f = Tcp(In, 33000, Out, 80, 0x02);
        var padded = f.Concat(new byte[6]).ToArray(); // 54 -> 60 bytes, the Ethernet minimum
        var o = h.Out(padded);
        Assert.Equal(f.Length, o.Length);
        Assert.True(ChecksumsValid(o));
    }

    private static string State(EngineHarness h) => h.Engine.CollectSessionsList(h.Now).Single().State;
}

internal static class EngineTestExtensions
{
    public static List<SessionInfo> CollectSessionsList(this NatEngine e, long now)
    {
        var l = new List<SessionInfo>();
        e.CollectSessions(l, now);
        return l;
    }
}

public class UnmarkedPartialChecksumTests
{
    [Fact]
    public void Unflagged_partial_checksum_is_completed_but_a_corrupt_one_is_dropped()
    {
        var h = new EngineHarness();
        var f = Frames.Udp(EngineHarness.InsideHost, 40000, EngineHarness.OutsideHost, 53);
        int l4 = Frames.L4Offset(f);
        uint pseudo = Frames.Pseudo(Frames.Ip(EngineHarness.InsideHost), Frames.Ip(EngineHarness.OutsideHost), 17, f.Length - l4);
        ushort partial = (ushort)~Frames.PlainChecksum([], pseudo);
        f[l4 + 6] = (byte)(partial >> 8);
        f[l4 + 7] = (byte)partial;
        var o = h.Out(f); // no ChecksumPartial flag, as AF_XDP delivers it
        Assert.True(Frames.ChecksumsValid(o));
        Assert.Equal(1, h.Engine.Counters.ChecksumsCompleted);
        f[l4 + 7] ^= 0x40;
        Assert.Equal(Natd.Dataplane.Nat.Verdict.Drop, h.Run(f, Natd.Dataplane.Nat.Side.Inside, out _));
        Assert.Equal(Natd.Dataplane.Nat.DropReason.BadL4Checksum, h.LastDrop);
    }
}
