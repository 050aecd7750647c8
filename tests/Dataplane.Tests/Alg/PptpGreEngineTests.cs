using Natd.Dataplane.Alg;
using Natd.Dataplane.Nat;
using Natd.Dataplane.Packets;
using Natd.Tests.Support;
using static Natd.Tests.Alg.PptpFrames;
using static Natd.Tests.Support.Frames;

namespace Natd.Tests.Alg;

/// <summary>GRE version 1 (RFC 2637 section 4.1) translated by Call ID in the engine after the PPTP ALG registered the calls.</summary>
public class PptpGreEngineTests
{
    private const string A = "10.0.0.2", B = "10.0.0.3", Server = EngineHarness.OutsideHost, Ext = EngineHarness.External;

    /// <summary>Both clients chose Call ID 0x4000; natd gave the server 0x4000 (A's, free) and 0x5001 (B's).</summary>
    private static EngineHarness TwoCalls()
    {
        var h = new EngineHarness();
        Assert.True(h.Engine.ApplyGreCall(new GreCall(true, Ipv4.Parse(A), 0x4000, Ipv4.Parse(Server), 11, Ipv4.Parse(Ext), 0x4000), h.Now));
        Assert.True(h.Engine.ApplyGreCall(new GreCall(true, Ipv4.Parse(B), 0x4000, Ipv4.Parse(Server), 12, Ipv4.Parse(Ext), 0x5001), h.Now));
        return h;
    }

    private static byte[] FromServer(ushort callId, uint? seq = 1, uint? ack = null)
        => WithMacs(Gre(Server, Ext, callId, seq: seq, ack: ack), EngineHarness.RouterMac, GatewayOutsideMac);

    [Fact]
    public void Calls_are_listed_as_gre_rows_with_their_call_ids_for_natctl()
    {
        var h = TwoCalls();
        var rows = new List<SessionInfo>();
        h.Engine.CollectSessions(rows, h.Now + 10_000);
        var b = Assert.Single(rows, r => r.Protocol == "gre" && r.InsideAddress == Ipv4.Parse(B));
        Assert.Equal((0x4000, 0x5001, 12, "pptp-call", "pptp"), (b.InsidePort, b.ExternalPort, b.RemotePort, b.State, b.Alg));
        Assert.Equal(Ipv4.Parse(Ext), b.ExternalAddress);
        Assert.Equal(h.Engine.Settings.Timeouts.Udp - 10, b.ExpiresInSeconds, 3);
        Assert.Equal(2, rows.Count(r => r.Protocol == "gre"));
    }

    [Fact]
    public void Two_clients_calling_one_server_each_get_only_their_own_gre()
    {
        var h = TwoCalls();

        byte[] toA = h.Out(FromServer(0x4000), Side.Outside);
        Assert.Equal(A, Dst(toA));
        Assert.Equal(0x4000, GreCallId(toA));
        byte[] toB = h.Out(FromServer(0x5001, seq: 9, ack: 3), Side.Outside);
        Assert.Equal(B, Dst(toB));
        Assert.Equal(0x4000, GreCallId(toB)); // B's own Call ID back
        Assert.True(ChecksumsValid(toA) && ChecksumsValid(toB));
        Assert.Equal(63, Ttl(toB));

        byte[] fromA = h.Out(Gre(A, Server, 11));
        byte[] fromB = h.Out(Gre(B, Server, 12, seq: null, ack: 5));
        Assert.Equal((Ext, Server, 11), (Src(fromA), Dst(fromA), (int)GreCallId(fromA)));
        Assert.Equal((Ext, Server, 12), (Src(fromB), Dst(fromB), (int)GreCallId(fromB)));
        Assert.True(ChecksumsValid(fromA) && ChecksumsValid(fromB));
        Assert.Equal(4, h.Engine.Counters.PptpGreTranslated);
    }

    [Fact]
    public void An_unknown_call_id_to_the_external_address_falls_through_to_no_session()
    {
        var h = TwoCalls();
        Assert.Equal(Verdict.Drop, h.Run(FromServer(0x4001), Side.Outside, out _));
        Assert.Equal(DropReason.NoSession, h.LastDrop);
        Assert.Equal(0, h.Engine.Counters.PptpGreTranslated);
    }

    [Fact]
    public void A_client_may_not_use_another_clients_server_call_id()
    {
        var h = TwoCalls();
        // B sends with A's server Call ID: no call of B's, so the port-less path (no rules: unsupported) decides.
        Assert.Equal(Verdict.Drop, h.Run(Gre(B, Server, 11), Side.Inside, out _));
        Assert.Equal(DropReason.UnsupportedProtocol, h.LastDrop);
    }

    [Fact]
    public void Malformed_gre_version_1_is_dropped_with_its_own_reason()
    {
        var h = TwoCalls();
        byte[] noKey = FromServer(0x4000);
        noKey[L4Offset(noKey)] &= 0xDF; // K cleared
        byte[] wrongProtocol = FromServer(0x4000);
        wrongProtocol[L4Offset(wrongProtocol) + 3] = 0x0C;
        byte[] checksumFlag = Gre(A, Server, 11);
        checksumFlag[L4Offset(checksumFlag)] |= 0x80;
        byte[] truncated = Wrap(Server, Ext, 47, [0x30, 0x81, 0x88, 0x0B, 0, 0, 0x40, 0, 0, 0, 0], 64, EngineHarness.RouterMac, GatewayOutsideMac);
        Assert.Equal(Verdict.Drop, h.Run(noKey, Side.Outside, out _));
        Assert.Equal(Verdict.Drop, h.Run(wrongProtocol, Side.Outside, out _));
        Assert.Equal(Verdict.Drop, h.Run(checksumFlag, Side.Inside, out _));
        Assert.Equal(Verdict.Drop, h.Run(truncated, Side.Outside, out _));
        Assert.Equal(4, h.Drops(DropReason.BadGre));
        Assert.Equal("bad-gre", DropReasons.Label(DropReason.BadGre));
    }

    [Fact]
    public void Gre_version_0_keeps_the_port_less_behaviour()
    {
        var h = new EngineHarness(s => s with { ProtocolForwards = [new ProtocolForward(47, Ipv4.Parse(Ext), Ipv4.Parse(A))] });
        h.Engine.ApplyGreCall(new GreCall(true, Ipv4.Parse(B), 1, Ipv4.Parse(Server), 2, Ipv4.Parse(Ext), 3), h.Now);
        var plain = WithMacs(Wrap(Server, Ext, 47, new byte[24], 64, null, null), EngineHarness.RouterMac, GatewayOutsideMac);
        Assert.Equal(A, Dst(h.Out(plain, Side.Outside)));
        // An unknown Call ID of version 1 too reaches the protocol forward's server.
        Assert.Equal(A, Dst(h.Out(FromServer(0x0999), Side.Outside)));
        Assert.Equal(2, h.Engine.Counters.ProtocolForwarded);
    }

    [Fact]
    public void A_removed_call_stops_and_a_stale_removal_keeps_the_newer_call()
    {
        var h = TwoCalls();
        var a = new GreCall(false, Ipv4.Parse(A), 0x4000, Ipv4.Parse(Server), 11, Ipv4.Parse(Ext), 0x4000);
        Assert.True(h.Engine.ApplyGreCall(a));
        Assert.Equal(Verdict.Drop, h.Run(FromServer(0x4000), Side.Outside, out _));
        // B's call takes 0x4000 as well later; a late removal of the first call must not remove it.
        Assert.True(h.Engine.ApplyGreCall(new GreCall(true, Ipv4.Parse(B), 0x4002, Ipv4.Parse(Server), 13, Ipv4.Parse(Ext), 0x4000), h.Now));
        Assert.False(h.Engine.ApplyGreCall(a));
        byte[] toB = h.Out(FromServer(0x4000), Side.Outside);
        Assert.Equal((B, 0x4002), (Dst(toB), (int)GreCallId(toB)));
    }

    [Fact]
    public void Calls_expire_after_the_udp_timeout_of_idleness()
    {
        var h = TwoCalls();
        h.Now += 200_000;
        h.Out(FromServer(0x5001), Side.Outside); // keeps B's call alive
        h.Now += 200_000; // A idle 400 s, B 200 s (UDP timeout 300 s)
        Assert.Equal(Verdict.Drop, h.Run(FromServer(0x4000), Side.Outside, out _));
        Assert.Equal(B, Dst(h.Out(FromServer(0x5001), Side.Outside)));
        h.Now += 301_000;
        h.Engine.Sweep(h.Now, 10_000);
        Assert.Equal(0, h.Engine.GreCalls.Count);
    }

    [Fact]
    public void Ttl_one_from_the_server_gets_time_exceeded()
    {
        var h = TwoCalls();
        byte[] f = WithMacs(Gre(Server, Ext, 0x4000), EngineHarness.RouterMac, GatewayOutsideMac);
        f[22] = 1;
        f[24] = 0; f[25] = 0;
        var sum = PlainChecksum(f.AsSpan(14, 20));
        f[24] = (byte)(sum >> 8); f[25] = (byte)sum;
        Assert.Equal(Verdict.ToOutside, h.Run(f, Side.Outside, out byte[] o));
        Assert.Equal(1, o[14 + 9]); // ICMP
    }
}
