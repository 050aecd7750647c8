using System.Buffers.Binary;
using System.Net;

namespace Natd.Tests.Support;

/// <summary>
/// Builds and parses Ethernet/IPv4 frames for tests with a deliberately plain, independent
/// implementation (big-endian word loop checksums), so the dataplane's own code is checked
/// against something it does not share.
/// </summary>
public static class Frames
{
    public static readonly byte[] InsideHostMac = [0x02, 0, 0, 0, 0, 0x0a];
    public static readonly byte[] GatewayInsideMac = [0x02, 0, 0, 0, 0, 0x01];
    public static readonly byte[] GatewayOutsideMac = [0x02, 0, 0, 0, 0, 0x02];
    public static readonly byte[] OutsideHostMac = [0x02, 0, 0, 0, 0, 0x0b];

    public static ushort PlainChecksum(ReadOnlySpan<byte> data, uint initial = 0)
    {
        uint sum = initial;
        for (int i = 0; i < data.Length; i += 2)
        {
            int hi = data[i];
            int lo = i + 1 < data.Length ? data[i + 1] : 0;
            sum += (uint)((hi << 8) | lo);
        }
        while ((sum >> 16) != 0)
        {
            sum = (sum & 0xFFFF) + (sum >> 16);
        }
        return (ushort)~sum;
    }

    public static uint Pseudo(byte[] src, byte[] dst, byte proto, int len)
        => (uint)((src[0] << 8 | src[1]) + (src[2] << 8 | src[3]) + (dst[0] << 8 | dst[1]) + (dst[2] << 8 | dst[3]) + proto + len);

    public static byte[] Ip(string a) => IPAddress.Parse(a).GetAddressBytes();

    public static byte[] Udp(string src, int sport, string dst, int dport, byte[]? payload = null, byte ttl = 64,
        byte[]? smac = null, byte[]? dmac = null, bool zeroChecksum = false)
    {
        payload ??= "hello"u8.ToArray();
        var l4 = new byte[8 + payload.Length];
        BinaryPrimitives.WriteUInt16BigEndian(l4, (ushort)sport);
        BinaryPrimitives.WriteUInt16BigEndian(l4.AsSpan(2), (ushort)dport);
        BinaryPrimitives.WriteUInt16BigEndian(l4.AsSpan(4), (ushort)l4.Length);
        payload.CopyTo(l4, 8);
        if (!zeroChecksum)
        {
            ushort c = PlainChecksum(l4, Pseudo(Ip(src), Ip(dst), 17, l4.Length));
            BinaryPrimitives.WriteUInt16BigEndian(l4.AsSpan(6), c == 0 ? (ushort)0xFFFF : c);
        }
        return Wrap(src, dst, 17, l4, ttl, smac, dmac);
    }

    public static byte[] Tcp(string src, int sport, string dst, int dport, byte flags, uint seq = 1000, uint ack = 0,
        byte[]? payload = null, byte ttl = 64, byte[]? smac = null, byte[]? dmac = null)
    {
        payload ??= [];
        var l4 = new byte[20 + payload.Length];
        BinaryPrimitives.WriteUInt16BigEndian(l4, (ushort)sport);
        BinaryPrimitives.WriteUInt16BigEndian(l4.AsSpan(2), (ushort)dport);
        BinaryPrimitives.WriteUInt32BigEndian(l4.AsSpan(4), seq);
        BinaryPrimitives.WriteUInt32BigEndian(l4.AsSpan(8), ack);
        l4[12] = 5 << 4;
        l4[13] = flags;
        BinaryPrimitives.WriteUInt16BigEndian(l4.AsSpan(14), 65535);
        payload.CopyTo(l4, 20);
        BinaryPrimitives.WriteUInt16BigEndian(l4.AsSpan(16), PlainChecksum(l4, Pseudo(Ip(src), Ip(dst), 6, l4.Length)));
        return Wrap(src, dst, 6, l4, ttl, smac, dmac);
    }

    public static byte[] Icmp(string src, string dst, byte type, byte code, int idOrUnused, int seq, byte[]? payload = null,
        byte ttl = 64, byte[]? smac = null, byte[]? dmac = null)
    {
        payload ??= "pingpingping"u8.ToArray();
        var l4 = new byte[8 + payload.Length];
        l4[0] = type;
        l4[1] = code;
        BinaryPrimitives.WriteUInt16BigEndian(l4.AsSpan(4), (ushort)idOrUnused);
        BinaryPrimitives.WriteUInt16BigEndian(l4.AsSpan(6), (ushort)seq);
        payload.CopyTo(l4, 8);
        BinaryPrimitives.WriteUInt16BigEndian(l4.AsSpan(2), PlainChecksum(l4));
        return Wrap(src, dst, 1, l4, ttl, smac, dmac);
    }

    /// <summary>An ICMP error quoting <paramref name="quotedFrame"/>'s IP header and first 8 bytes (or <paramref name="quoteBytes"/>).</summary>
    public static byte[] IcmpError(string src, string dst, byte type, byte code, byte[] quotedFrame, int quoteBytes = 8,
        byte ttl = 64, byte[]? smac = null, byte[]? dmac = null)
    {
        var ip = quotedFrame.AsSpan(14);
        int ihl = (ip[0] & 0xF) * 4;
        int total = BinaryPrimitives.ReadUInt16BigEndian(ip[2..]);
        int q = Math.Min(total, ihl + quoteBytes);
        return Icmp(src, dst, type, code, 0, 0, ip[..q].ToArray(), ttl, smac, dmac);
    }

    public static byte[] Wrap(string src, string dst, byte proto, byte[] l4, byte ttl, byte[]? smac, byte[]? dmac, ushort id = 0x1234)
    {
        var f = new byte[14 + 20 + l4.Length];
        (dmac ?? GatewayInsideMac).CopyTo(f, 0);
        (smac ?? InsideHostMac).CopyTo(f, 6);
        f[12] = 0x08;
        f[13] = 0x00;
        var ip = f.AsSpan(14);
        ip[0] = 0x45;
        BinaryPrimitives.WriteUInt16BigEndian(ip[2..], (ushort)(20 + l4.Length));
        BinaryPrimitives.WriteUInt16BigEndian(ip[4..], id);
        ip[6] = 0x40; // DF
        ip[8] = ttl;
        ip[9] = proto;
        Ip(src).CopyTo(ip[12..]);
        Ip(dst).CopyTo(ip[16..]);
        BinaryPrimitives.WriteUInt16BigEndian(ip[10..], PlainChecksum(ip[..20]));
        l4.CopyTo(ip[20..]);
        return f;
    }

    public static byte[] Arp(ushort op, byte[] senderMac, string senderIp, byte[] targetMac, string targetIp, byte[]? dmac = null)
    {
        var f = new byte[42];
        (dmac ?? [0xff, 0xff, 0xff, 0xff, 0xff, 0xff]).CopyTo(f, 0);
        senderMac.CopyTo(f, 6);
        f[12] = 0x08; f[13] = 0x06;
        var a = f.AsSpan(14);
        a[1] = 1; a[2] = 0x08; a[4] = 6; a[5] = 4;
        BinaryPrimitives.WriteUInt16BigEndian(a[6..], op);
        senderMac.CopyTo(a[8..]);
        Ip(senderIp).CopyTo(a[14..]);
        targetMac.CopyTo(a[18..]);
        Ip(targetIp).CopyTo(a[24..]);
        return f;
    }

    /// <summary>Re-stamps Ethernet addresses (tests compare IP payloads and set the MACs they expect).</summary>
    public static byte[] WithMacs(byte[] frame, byte[] smac, byte[] dmac)
    {
        var f = (byte[])frame.Clone();
        dmac.CopyTo(f, 0);
        smac.CopyTo(f, 6);
        return f;
    }

    // --- parsing helpers for assertions ---
    public static string Src(byte[] f) => new IPAddress(f.AsSpan(26, 4)).ToString();
    public static string Dst(byte[] f) => new IPAddress(f.AsSpan(30, 4)).ToString();
    public static int Ttl(byte[] f) => f[22];
    public static int L4Offset(byte[] f) => 14 + (f[14] & 0xF) * 4;
    public static int SrcPort(byte[] f) => BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(L4Offset(f)));
    public static int DstPort(byte[] f) => BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(L4Offset(f) + 2));
    public static int IcmpId(byte[] f) => BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(L4Offset(f) + 4));

    /// <summary>True when the IPv4 header checksum and the TCP/UDP/ICMP checksum all verify.</summary>
    public static bool ChecksumsValid(byte[] f)
    {
        var ip = f.AsSpan(14);
        int ihl = (ip[0] & 0xF) * 4;
        if (PlainChecksum(ip[..ihl]) != 0)
        {
            return false;
        }
        int total = BinaryPrimitives.ReadUInt16BigEndian(ip[2..]);
        var l4 = ip[ihl..total];
        byte proto = ip[9];
        byte[] s = ip.Slice(12, 4).ToArray(), d = ip.Slice(16, 4).ToArray();
        return proto switch
        {
            6 => PlainChecksum(l4, Pseudo(s, d, 6, l4.Length)) == 0,
            17 => BinaryPrimitives.ReadUInt16BigEndian(l4[6..]) == 0 || PlainChecksum(l4, Pseudo(s, d, 17, l4.Length)) == 0,
            1 => PlainChecksum(l4) == 0,
            _ => true,
        };
    }

    /// <summary>
    /// A copy of an Ethernet+IPv4 <paramref name="frame"/> with <paramref name="edit"/> applied and
    /// the IPv4 header checksum fixed afterwards, so only the edit is wrong.
    /// </summary>
    public static byte[] FixIp(byte[] frame, Action<byte[]> edit)
    {
        var f = (byte[])frame.Clone();
        edit(f);
        int ihl = Math.Max(20, Math.Min((f[14] & 0xF) * 4, f.Length - 14));
        f[24] = f[25] = 0;
        ushort c = PlainChecksum(f.AsSpan(14, ihl));
        f[24] = (byte)(c >> 8);
        f[25] = (byte)c;
        return f;
    }
}
