using System.Buffers.Binary;
using Natd.Dataplane.Alg;
using Natd.Dataplane.Nat;
using Natd.Dataplane.Packets;
using Natd.Dataplane.Workers;
using Natd.Tests.Support;
using static Natd.Tests.Support.Frames;

namespace Natd.Tests.Alg.Ipsec;

/// <summary>ESP, AH, ISAKMP and NAT-T frames through the engine (VPN Masquerade HOWTO section 6).</summary>
public sealed class IpsecEngineTests
{
    private const string A = EngineHarness.InsideHost; // 10.0.0.2
    private const string B = "10.0.0.3";
    private const string Remote = EngineHarness.OutsideHost; // 198.51.100.2
    private const string Ext = EngineHarness.External;

    private static EngineHarness Harness(bool parallel = false, bool enabled = true)
        => new(s => s with { Algs = new AlgSettings { Ipsec = new IpsecSettings(enabled, 10, 3, parallel, 1800, 28800) } });

    private static byte[] Esp(string src, string dst, uint spi, uint seq = 1, byte proto = 50)
    {
        var l4 = new byte[8 + 24];
        BinaryPrimitives.WriteUInt32BigEndian(l4, spi);
        BinaryPrimitives.WriteUInt32BigEndian(l4.AsSpan(4), seq);
        for (int i = 8; i < l4.Length; i++)
        {
            l4[i] = (byte)(spi + i);
        }
        return Wrap(src, dst, proto, l4, 64, null, null);
    }

    private static byte[] Isakmp(string src, int sport, string dst, int dport, ulong icookie, ulong rcookie)
    {
        var p = new byte[28 + 12];
        BinaryPrimitives.WriteUInt64BigEndian(p, icookie);
        BinaryPrimitives.WriteUInt64BigEndian(p.AsSpan(8), rcookie);
        p[16] = 1; // next payload: SA
        p[17] = 0x10; // version 1.0
        p[18] = 2; // exchange: identity protection (main mode)
        BinaryPrimitives.WriteUInt32BigEndian(p.AsSpan(24), (uint)p.Length);
        return Udp(src, sport, dst, dport, p);
    }

    private static uint Spi(byte[] f) => BinaryPrimitives.ReadUInt32BigEndian(f.AsSpan(L4Offset(f)));

    private static byte[] FromRemote(byte[] f) => EngineHarness.FromOutside(f);

    [Fact]
    public void Esp_is_masqueraded_and_the_answer_associated_with_the_waiting_host()
    {
        var h = Harness();
        var o = h.Out(Esp(A, Remote, 0x1001));
        Assert.Equal(Ext, Src(o));
        Assert.Equal(Remote, Dst(o));
        Assert.Equal(63, Ttl(o));
        Assert.Equal(0x1001u, Spi(o));
        Assert.True(ChecksumsValid(o));
        var back = h.Out(FromRemote(Esp(Remote, Ext, 0x2001)), Side.Outside);
        Assert.Equal(A, Dst(back));
        Assert.Equal(Remote, Src(back));
        Assert.True(ChecksumsValid(back));
        Assert.Equal(0, h.Engine.Table.Count); // no port-less session: the IPsec state holds it
        Assert.Equal(1, h.Engine.Ipsec.EspCount);
    }

    [Fact]
    public void A_second_host_is_serialised_then_refused_with_counted_reasons()
    {
        var h = Harness(parallel: true);
        h.Out(Esp(A, Remote, 0x1001));
        for (int i = 0; i < 3; i++)
        {
            Assert.Equal(Verdict.Drop, h.Run(Esp(B, Remote, 0x1002), Side.Inside, out _));
            Assert.Equal(DropReason.EspSerialised, h.LastDrop);
        }
        Assert.Equal(Verdict.Drop, h.Run(Esp(B, Remote, 0x1002), Side.Inside, out _));
        Assert.Equal(DropReason.EspRefused, h.LastDrop);
        Assert.Equal(3, h.Drops(DropReason.EspSerialised));
        Assert.Equal(1, h.Drops(DropReason.EspRefused));
        // B's next SA (new SPI) gets its turn once A is associated.
        Assert.Equal(A, Dst(h.Out(FromRemote(Esp(Remote, Ext, 0x2001)), Side.Outside)));
        h.Out(Esp(B, Remote, 0x1003));
        Assert.Equal(B, Dst(h.Out(FromRemote(Esp(Remote, Ext, 0x2003)), Side.Outside)));
        Assert.Equal(A, Dst(h.Out(FromRemote(Esp(Remote, Ext, 0x2001, 2)), Side.Outside)));
    }

    [Fact]
    public void Parallel_off_refuses_a_second_host_to_the_same_remote_host()
    {
        var h = Harness(parallel: false);
        h.Out(Esp(A, Remote, 0x1001));
        h.Out(FromRemote(Esp(Remote, Ext, 0x2001)), Side.Outside);
        Assert.Equal(Verdict.Drop, h.Run(Esp(B, Remote, 0x1002), Side.Inside, out _));
        Assert.Equal(DropReason.EspRemoteInUse, h.LastDrop);
        h.Out(Esp(B, "198.51.100.3", 0x1002)); // another remote host is fine
    }

    [Fact]
    public void Zero_spi_and_unknown_inbound_spi_are_dropped()
    {
        var h = Harness();
        Assert.Equal(Verdict.Drop, h.Run(Esp(A, Remote, 0), Side.Inside, out _));
        Assert.Equal(DropReason.EspZeroSpi, h.LastDrop);
        Assert.Equal(Verdict.Drop, h.Run(FromRemote(Esp(Remote, Ext, 0x5555)), Side.Outside, out _));
        Assert.Equal(DropReason.EspNoAssociation, h.LastDrop);
        Assert.Equal(Verdict.Drop, h.Run(FromRemote(Esp(Remote, Ext, 0)), Side.Outside, out _));
        Assert.Equal(2, h.Drops(DropReason.EspZeroSpi));
        var shortEsp = Wrap(A, Remote, 50, [0, 0, 0, 1], 64, null, null);
        Assert.Equal(Verdict.Drop, h.Run(shortEsp, Side.Inside, out _));
        Assert.Equal(DropReason.Truncated, h.LastDrop);
    }

    [Fact]
    public void Ah_is_refused_both_ways()
    {
        var h = Harness();
        Assert.Equal(Verdict.Drop, h.Run(Esp(A, Remote, 0x1001, proto: 51), Side.Inside, out _));
        Assert.Equal(DropReason.AhRefused, h.LastDrop);
        Assert.Equal(Verdict.Drop, h.Run(FromRemote(Esp(Remote, Ext, 0x2001, proto: 51)), Side.Outside, out _));
        Assert.Equal(2, h.Drops(DropReason.AhRefused));
        Assert.Equal("ah-refused", DropReasons.Label(DropReason.AhRefused));
        Assert.Equal("isakmp-cookie-collision", DropReasons.Label(DropReason.IsakmpCookieCollision));
    }

    [Fact]
    public void With_ipsec_off_esp_stays_unsupported_and_udp_500_is_ordinary_udp()
    {
        var h = Harness(enabled: false);
        Assert.Equal(Verdict.Drop, h.Run(Esp(A, Remote, 0x1001), Side.Inside, out _));
        Assert.Equal(DropReason.UnsupportedProtocol, h.LastDrop);
        h.Out(Isakmp(A, 500, Remote, 500, 1, 0));
        Assert.Equal(1, h.Engine.Table.Count);
        Assert.Equal(0, h.Engine.Ipsec.IsakmpCount);
    }

    [Fact]
    public void Isakmp_keeps_port_500_and_each_host_gets_only_its_replies_even_with_the_same_initiator_cookie()
    {
        var h = Harness();
        const ulong ic = 0x0123456789ABCDEF;
        var oa = h.Out(Isakmp(A, 500, Remote, 500, ic, 0));
        Assert.Equal((Ext, 500, 500), (Src(oa), SrcPort(oa), DstPort(oa)));
        Assert.True(ChecksumsValid(oa));
        // B with the same initiator cookie waits until A's responder cookie is known.
        Assert.Equal(Verdict.Drop, h.Run(Isakmp(B, 500, Remote, 500, ic, 0), Side.Inside, out _));
        Assert.Equal(DropReason.IsakmpCookieCollision, h.LastDrop);
        var ra = h.Out(FromRemote(Isakmp(Remote, 500, Ext, 500, ic, 0xAAAA)), Side.Outside);
        Assert.Equal((A, 500), (Dst(ra), DstPort(ra)));
        Assert.True(ChecksumsValid(ra));
        var ob = h.Out(Isakmp(B, 500, Remote, 500, ic, 0));
        Assert.Equal((Ext, 500), (Src(ob), SrcPort(ob)));
        Assert.Equal(B, Dst(h.Out(FromRemote(Isakmp(Remote, 500, Ext, 500, ic, 0xBBBB)), Side.Outside)));
        Assert.Equal(A, Dst(h.Out(FromRemote(Isakmp(Remote, 500, Ext, 500, ic, 0xAAAA)), Side.Outside)));
        Assert.Equal(B, Dst(h.Out(FromRemote(Isakmp(Remote, 500, Ext, 500, ic, 0xBBBB)), Side.Outside)));
        Assert.Equal(Verdict.Drop, h.Run(FromRemote(Isakmp(Remote, 500, Ext, 500, ic, 0xCCCC)), Side.Outside, out _));
        Assert.Equal(DropReason.IsakmpNoEntry, h.LastDrop);
        Assert.Equal(0, h.Engine.Table.Count);
    }

    [Fact]
    public void Isakmp_with_zero_udp_checksum_stays_zero_and_short_isakmp_is_dropped()
    {
        var h = Harness();
        var p = new byte[20];
        p[7] = 9;
        var o = h.Out(Udp(A, 500, Remote, 500, p, zeroChecksum: true));
        Assert.Equal(0, BinaryPrimitives.ReadUInt16BigEndian(o.AsSpan(L4Offset(o) + 6)));
        Assert.Equal(Verdict.Drop, h.Run(Udp(A, 500, Remote, 500, new byte[8]), Side.Inside, out _));
        Assert.Equal(DropReason.Truncated, h.LastDrop);
    }

    [Fact]
    public void Nat_t_udp_4500_is_plain_udp()
    {
        var h = Harness();
        var o = h.Out(Udp(A, 4500, Remote, 4500, new byte[] { 0, 0, 0, 0, 1, 2, 3, 4 }));
        Assert.Equal(Ext, Src(o));
        Assert.True(ChecksumsValid(o));
        Assert.Equal(1, h.Engine.Table.Count);
        var back = h.Out(FromRemote(Udp(Remote, 4500, Ext, SrcPort(o), new byte[] { 0, 0, 0, 0, 5, 6, 7, 8 })), Side.Outside);
        Assert.Equal((A, 4500), (Dst(back), DstPort(back)));
        Assert.Equal(0, h.Engine.Ipsec.IsakmpCount);
        Assert.Equal(0, h.Engine.Ipsec.EspCount);
        // ISAKMP from another port than 500 is ordinary UDP too.
        var other = h.Out(Udp(A, 40000, Remote, 500, new byte[20]));
        Assert.NotEqual(500, SrcPort(other));
    }

    [Fact]
    public void Udp_500_is_never_allocated_to_an_ordinary_mapping()
    {
        var h = new EngineHarness(s => s with { PortMin = 500, PortMax = 501 });
        for (int i = 0; i < 2; i++)
        {
            var v = h.Run(Udp(A, 100 + i, Remote, 53), Side.Inside, out var o);
            if (v == Verdict.ToOutside)
            {
                Assert.NotEqual(500, SrcPort(o));
            }
        }
    }

    [Fact]
    public void Sessions_list_esp_and_isakmp_and_the_sweeper_expires_them()
    {
        var h = new EngineHarness(s => s with { Algs = new AlgSettings { Ipsec = new IpsecSettings(true, 10, 3, false, 60, 120) } });
        h.Out(Isakmp(A, 500, Remote, 500, 7, 0));
        h.Out(Esp(A, Remote, 0x1001));
        h.Out(FromRemote(Esp(Remote, Ext, 0x2001)), Side.Outside);
        var rows = new List<SessionInfo>();
        h.Engine.CollectSessions(rows, h.Now);
        var esp = Assert.Single(rows, r => r.Protocol == "esp");
        Assert.Equal(Ipv4.Parse(A), esp.InsideAddress);
        Assert.StartsWith("associated spi 00001001/00002001", esp.State);
        var isakmp = Assert.Single(rows, r => r.Protocol == "isakmp");
        Assert.Equal((ushort)500, isakmp.ExternalPort);
        Assert.True(h.Engine.Sweep(h.Now + 61_000, 1000) >= 2);
        Assert.Equal(0, h.Engine.Ipsec.EspCount);
        Assert.Equal(1, h.Engine.Ipsec.IsakmpCount);
        h.Engine.Sweep(h.Now + 500_000, 1000);
        Assert.Equal(0, h.Engine.Ipsec.IsakmpCount);
    }

    [Fact]
    public void Reload_applies_new_ipsec_timeouts()
    {
        var h = Harness(parallel: true);
        h.Out(Esp(A, Remote, 0x1001));
        Assert.Null(h.Engine.UpdateSettings(h.Engine.Settings with
        {
            Algs = new AlgSettings { Ipsec = new IpsecSettings(true, 1, 3, true, 1800, 28800) },
        }));
        h.Now += 1_000;
        h.Out(Esp(B, Remote, 0x1002)); // A's init slot lapsed under the new 1 s init timeout
    }

    [Fact]
    public void Router_steers_isakmp_to_shard_0_only_when_ipsec_is_on()
    {
        var on = EngineHarness.LabSettings();
        var off = on with { Algs = new AlgSettings { Ipsec = new IpsecSettings(Enabled: false) } };
        var ron = new ShardMap(on, 4, 1);
        var roff = new ShardMap(off, 4, 1);
        var outIsakmp = Isakmp(A, 500, Remote, 500, 1, 0);
        var inIsakmp = FromRemote(Isakmp(Remote, 500, Ext, 500, 1, 2));
        Assert.Equal(0, ron.Owner(outIsakmp, Side.Inside));
        Assert.Equal(0, ron.Owner(inIsakmp, Side.Outside));
        Assert.Equal(roff.OwnerOfInside(Ipv4.Parse(A)), roff.Owner(outIsakmp, Side.Inside));
        Assert.Equal(500 % 4, roff.Owner(inIsakmp, Side.Outside));
        Assert.Equal(0, ron.Owner(Esp(A, Remote, 5), Side.Inside));
        // NAT-T stays with the subscriber's shard.
        Assert.Equal(ron.OwnerOfInside(Ipv4.Parse(A)), ron.Owner(Udp(A, 4500, Remote, 4500), Side.Inside));
    }
}
