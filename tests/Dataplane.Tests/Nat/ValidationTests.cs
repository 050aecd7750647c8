using System.Buffers.Binary;
using Natd.Dataplane.Nat;
using Natd.Tests.Support;
using static Natd.Tests.Support.Frames;

namespace Natd.Tests.Nat;

/// <summary>Each malformed case yields a drop with its named reason, never an exception and never a session.</summary>
public class ValidationTests
{
    private const string In = EngineHarness.InsideHost, Out = EngineHarness.OutsideHost;

    public static TheoryData<string, DropReason> Cases => new()
    {
        { "truncated-ethernet", DropReason.Truncated },
        { "truncated-ip", DropReason.Truncated },
        { "bad-version", DropReason.BadVersion },
        { "bad-ihl-small", DropReason.BadIhl },
        { "bad-ihl-beyond", DropReason.BadIhl },
        { "total-length-beyond-frame", DropReason.BadTotalLength },
        { "total-length-below-header", DropReason.BadTotalLength },
        { "bad-ip-checksum", DropReason.BadIpChecksum },
        // Fragments of TCP, UDP and ICMP are followed (FragmentTests); a port-less protocol's are not.
        { "fragment-mf-gre", DropReason.Fragment },
        { "fragment-offset-gre", DropReason.Fragment },
        { "gre", DropReason.UnsupportedProtocol },
        { "bad-udp-checksum", DropReason.BadL4Checksum },
        { "bad-tcp-checksum", DropReason.BadL4Checksum },
        { "truncated-tcp", DropReason.Truncated },
        { "udp-length-beyond", DropReason.Truncated },
        { "ipv6", DropReason.UnsupportedEthertype },
        { "not-our-mac", DropReason.NotForUs },
        { "spoofed-source", DropReason.NotFromInsideNetwork },
        { "martian-loopback", DropReason.Martian },
        { "limited-broadcast", DropReason.Martian },
        { "multicast", DropReason.Martian },
        { "icmp-timestamp", DropReason.UnsupportedIcmp },
        { "inside-to-inside", DropReason.NoRoute },
        // Transport length fields against the IP payload: announcing more is truncation, an
        // impossible or shorter length is bad-l4-length (never forwarded with unaccounted bytes).
        { "udp-length-shorter-than-payload", DropReason.BadL4Length },
        { "udp-length-below-8", DropReason.BadL4Length },
        { "udp-length-zero", DropReason.BadL4Length },
        { "udp-header-only-in-longer-payload", DropReason.BadL4Length },
        { "tcp-offset-below-5", DropReason.BadL4Length },
        { "tcp-offset-beyond-payload", DropReason.Truncated },
        { "icmp-shorter-than-header", DropReason.Truncated },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void Malformed_frames_are_dropped_with_reason(string name, DropReason reason)
    {
        var h = new EngineHarness();
        byte[] f = Build(name);
        var v = h.Run(f, Side.Inside, out _);
        Assert.Equal(Verdict.Drop, v);
        Assert.Equal(reason, h.LastDrop);
        Assert.Equal(1, h.Drops(reason));
        Assert.Equal(0, h.Engine.Table.Count);
    }

    private static byte[] Build(string name)
    {
        byte[] udp = Udp(In, 40000, Out, 53);
        switch (name)
        {
            case "truncated-ethernet": return udp[..10];
            case "truncated-ip": return udp[..30];
            case "bad-version": return FixIp(udp, f => f[14] = 0x65);
            case "bad-ihl-small": return FixIp(udp, f => f[14] = 0x44);
            case "bad-ihl-beyond": return FixIp(udp[..40], f => f[14] = 0x4F);
            case "total-length-beyond-frame": return FixIp(udp, f => BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(16), 1500));
            case "total-length-below-header": return FixIp(udp, f => BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(16), 12));
            case "bad-ip-checksum": { var f = (byte[])udp.Clone(); f[24] ^= 0x55; return f; }
            case "fragment-mf-gre": return FixIp(Wrap(In, Out, 47, new byte[8], 64, null, null), f => f[20] = 0x20);
            case "fragment-offset-gre": return FixIp(Wrap(In, Out, 47, new byte[8], 64, null, null), f => { f[20] = 0x00; f[21] = 0x10; });
            case "gre": return Wrap(In, Out, 47, new byte[8], 64, null, null);
            case "bad-udp-checksum": { var f = (byte[])udp.Clone(); f[^1] ^= 0x01; return f; }
            case "bad-tcp-checksum": { var f = Tcp(In, 1, Out, 2, 0x02, payload: [1, 2, 3]); f[^1] ^= 0x01; return f; }
            case "truncated-tcp": return Wrap(In, Out, 6, new byte[12], 64, null, null);
            case "udp-length-beyond": return FixUdpLen(udp, 200);
            case "ipv6": { var f = (byte[])udp.Clone(); f[12] = 0x86; f[13] = 0xDD; return f; }
            case "not-our-mac": return WithMacs(udp, InsideHostMac, [0x02, 9, 9, 9, 9, 9]);
            case "spoofed-source": return Udp("192.168.7.7", 40000, Out, 53);
            case "martian-loopback": return Udp("127.0.0.1", 40000, Out, 53);
            case "limited-broadcast": return Udp(In, 68, "255.255.255.255", 67, dmac: [0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
            case "multicast": return Udp(In, 5353, "224.0.0.251", 5353);
            case "icmp-timestamp": return Icmp(In, Out, 13, 0, 1, 1);
            case "inside-to-inside": return Udp(In, 40000, "10.0.0.3", 53);
            // Zero UDP checksum ("none", RFC 768): only the length field is wrong, so before the
            // length check this was forwarded with 8 trailing bytes the UDP length does not count.
            case "udp-length-shorter-than-payload": return FixUdpLen(Udp(In, 40000, Out, 53, new byte[16], zeroChecksum: true), 16);
            case "udp-length-below-8": return FixUdpLen(Udp(In, 40000, Out, 53, zeroChecksum: true), 4);
            case "udp-length-zero": return FixUdpLen(Udp(In, 40000, Out, 53, zeroChecksum: true), 0);
            case "udp-header-only-in-longer-payload": return FixUdpLen(Udp(In, 40000, Out, 53, zeroChecksum: true), 8);
            case "tcp-offset-below-5": return FixTcp(Tcp(In, 40000, Out, 80, 0x02, payload: new byte[8]), 4);
            case "tcp-offset-beyond-payload": return FixTcp(Tcp(In, 40000, Out, 80, 0x02, payload: new byte[8]), 8);
            case "icmp-shorter-than-header": return Wrap(In, Out, 1, [8, 0, 0xf7, 0xff], 64, null, null);
            default: throw new ArgumentException(name);
        }
    }


    /// <summary>Sets the TCP data offset (32-bit words) and recomputes the checksum, so only the offset is wrong.</summary>
    private static byte[] FixTcp(byte[] frame, int words)
    {
        var f = (byte[])frame.Clone();
        int l4 = L4Offset(f);
        f[l4 + 12] = (byte)(words << 4);
        f[l4 + 16] = f[l4 + 17] = 0;
        ushort c = PlainChecksum(f.AsSpan(l4), Pseudo(f[26..30], f[30..34], 6, f.Length - l4));
        BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(l4 + 16), c);
        return f;
    }

    private static byte[] FixUdpLen(byte[] frame, int len)
    {
        var f = (byte[])frame.Clone();
        BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(L4Offset(f) + 4), (ushort)len);
        return f;
    }

    [Fact]
    public void Ttl_expiry_answers_time_exceeded_to_sender()
    {
        var h = new EngineHarness();
        var f = Udp(In, 40000, Out, 53, ttl: 1);
        var v = h.Run(f, Side.Inside, out var o);
        Assert.Equal(Verdict.ToInside, v);
        Assert.Equal(1, h.Drops(DropReason.TtlExpired));
        Assert.Equal("10.0.0.1", Src(o));
        Assert.Equal(In, Dst(o));
        Assert.Equal(InsideHostMac, o[..6]);
        Assert.Equal(GatewayInsideMac, o[6..12]);
        int l4 = L4Offset(o);
        Assert.Equal(11, o[l4]);
        Assert.Equal(0, o[l4 + 1]);
        Assert.Equal(f.AsSpan(14, 28).ToArray(), o.AsSpan(l4 + 8).ToArray()); // IP header + 8 bytes quoted
        Assert.True(ChecksumsValid(o));
        Assert.Equal(0, h.Engine.Table.Count);
    }

    [Fact]
    public void Engine_survives_random_garbage()
    {
        var h = new EngineHarness();
        var rnd = new Random(7);
        for (int i = 0; i < 20_000; i++)
        {
            var f = Udp(In, 40000 + (i % 50), Out, 53);
            int n = rnd.Next(1, 6);
            for (int k = 0; k < n; k++)
            {
                f[rnd.Next(f.Length)] = (byte)rnd.Next(256);
            }
            if (rnd.Next(4) == 0)
            {
                f = f[..rnd.Next(f.Length)];
            }
            h.Run(f, i % 2 == 0 ? Side.Inside : Side.Outside, out _);
        }
        long drops = h.Engine.Counters.Drops.ToArray().Sum();
        Assert.True(drops > 10_000, $"only {drops} drops");
    }
}
