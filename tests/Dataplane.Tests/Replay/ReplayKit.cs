using System.Buffers.Binary;
using Natd.Control.Config;
using Natd.Control.Replay;
using Natd.Dataplane.Io;
using Natd.Tests.Support;

namespace Natd.Tests.Replay;

/// <summary>One frame of a capture the tests build: its bytes, capture time and the interface it was seen on.</summary>
internal sealed record CapFrame(byte[] Data, long TimestampNs, string Interface = "", string? Comment = null);

/// <summary>What a replay produced, read back with <see cref="PcapReader"/>.</summary>
internal sealed record ReplayResult(ReplaySummary Summary, byte[] OutBytes, List<CapFrame> Out, List<CapFrame> Drops);

/// <summary>Builds captures (pcapng through the product writer, classic pcap by hand), runs the replayer, reads results back.</summary>
internal static class ReplayKit
{
    /// <summary>Source MACs natd uses in replay (Replayer passes these to the engine).</summary>
    public static readonly byte[] ReplayInsideMac = [0x02, 0, 0, 0, 0, 0x01];
    public static readonly byte[] ReplayOutsideMac = [0x02, 0, 0, 0, 0, 0x02];

    /// <summary>The lab router's MAC (198.51.100.254), as used by <see cref="EngineHarness"/>.</summary>
    public static byte[] RouterMac => EngineHarness.RouterMac;

    public const long T0 = 1_700_000_000L * 1_000_000_000L;

    /// <summary>A pcapng with interfaces "inside" (0) and "outside" (1) unless other names are given; frames carry their interface name.</summary>
    public static byte[] PcapNg(IEnumerable<CapFrame> frames, string[]? names = null)
    {
        names ??= ["inside", "outside"];
        var ms = new MemoryStream();
        using (var w = new PcapNgWriter(ms, names, leaveOpen: true))
        {
            foreach (var f in frames)
            {
                int id = Array.IndexOf(names, f.Interface);
                Assert.True(id >= 0, $"test bug: interface '{f.Interface}' not in [{string.Join(",", names)}]");
                w.Write(id, f.Data, f.TimestampNs, f.Comment);
            }
        }
        return ms.ToArray();
    }

    /// <summary>
    /// A classic libpcap file written by hand (little-endian, version 2.4, LINKTYPE_ETHERNET):
    /// microsecond magic 0xa1b2c3d4, or nanosecond magic 0xa1b23c4d when <paramref name="nanos"/>.
    /// </summary>
    public static byte[] ClassicPcap(IEnumerable<CapFrame> frames, bool nanos = false, int linkType = 1)
    {
        var ms = new MemoryStream();
        Span<byte> h = stackalloc byte[24];
        BinaryPrimitives.WriteUInt32LittleEndian(h, nanos ? 0xa1b23c4du : 0xa1b2c3d4u);
        BinaryPrimitives.WriteUInt16LittleEndian(h[4..], 2);
        BinaryPrimitives.WriteUInt16LittleEndian(h[6..], 4);
        BinaryPrimitives.WriteUInt32LittleEndian(h[16..], 65535);
        BinaryPrimitives.WriteUInt32LittleEndian(h[20..], (uint)linkType);
        ms.Write(h);
        Span<byte> r = stackalloc byte[16];
        foreach (var f in frames)
        {
            long sec = f.TimestampNs / 1_000_000_000;
            long frac = f.TimestampNs % 1_000_000_000;
            if (!nanos)
            {
                Assert.True(frac % 1000 == 0, "test bug: a microsecond pcap cannot hold this timestamp");
                frac /= 1000;
            }
            BinaryPrimitives.WriteUInt32LittleEndian(r, (uint)sec);
            BinaryPrimitives.WriteUInt32LittleEndian(r[4..], (uint)frac);
            BinaryPrimitives.WriteUInt32LittleEndian(r[8..], (uint)f.Data.Length);
            BinaryPrimitives.WriteUInt32LittleEndian(r[12..], (uint)f.Data.Length);
            ms.Write(r);
            ms.Write(f.Data);
        }
        return ms.ToArray();
    }

    public static List<CapFrame> Read(byte[] capture)
    {
        var list = new List<CapFrame>();
        using var reader = new PcapReader(new MemoryStream(capture));
        while (reader.TryRead(out var rec))
        {
            list.Add(new CapFrame(rec.Data.ToArray(), rec.TimestampNs, rec.InterfaceName ?? "", rec.Comment));
        }
        return list;
    }

    public static ReplayResult Run(byte[] input, NatdConfig? config = null, bool insideTrace = false, ulong seed = 1)
    {
        config ??= ConfigLoader.Default();
        var output = new MemoryStream();
        var drops = new MemoryStream();
        var summary = Replayer.Run(config, new MemoryStream(input), output, drops, insideTrace, seed);
        byte[] outBytes = output.ToArray();
        return new ReplayResult(summary, outBytes, Read(outBytes), Read(drops.ToArray()));
    }

    // --- independent frame parsing for assertions ---

    public static bool IsIpv4(byte[] f) => f.Length >= 34 && f[12] == 0x08 && f[13] == 0x00;
    public static bool IsArp(byte[] f) => f.Length >= 42 && f[12] == 0x08 && f[13] == 0x06;
    public static byte Proto(byte[] f) => f[23];
    public static int IpTotal(byte[] f) => BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(16));

    /// <summary>
    /// The frame with the fields natd may legitimately change on a round trip zeroed: Ethernet
    /// addresses, TTL and the IPv4 header checksum. Ethernet padding after the IP datagram is
    /// link-layer framing too (natd forwards the datagram, a NIC pads again), so it is cut off.
    /// </summary>
    public static byte[] Masked(byte[] f)
    {
        int len = IsIpv4(f) ? Math.Min(f.Length, 14 + IpTotal(f)) : f.Length;
        var m = f.AsSpan(0, len).ToArray();
        m.AsSpan(0, 12).Clear();
        if (IsIpv4(m))
        {
            m[22] = 0;
            m[24] = m[25] = 0;
        }
        return m;
    }

    /// <summary>(source, destination, source port or ICMP id, destination port, protocol) of a TCP/UDP/ICMP echo frame, else null.</summary>
    public static (string Src, string Dst, int SPort, int DPort, byte Proto)? Tuple(byte[] f)
    {
        if (!IsIpv4(f) || (f[14] >> 4) != 4)
        {
            return null;
        }
        int l4 = Frames.L4Offset(f);
        byte p = Proto(f);
        if ((f[20] & 0x1F) != 0 || f[21] != 0 || (f[20] & 0x20) != 0)
        {
            return null; // fragment
        }
        if (p is 6 or 17 && f.Length >= l4 + 4)
        {
            return (Frames.Src(f), Frames.Dst(f), Frames.SrcPort(f), Frames.DstPort(f), p);
        }
        if (p == 1 && f.Length >= l4 + 8 && f[l4] is 0 or 8)
        {
            return (Frames.Src(f), Frames.Dst(f), Frames.IcmpId(f), 0, p);
        }
        return null;
    }

    public static string Hex(byte[] b) => Convert.ToHexString(b);
}

/// <summary>Pieces of the lab conversation the replay tests share.</summary>
internal static class Lab
{
    /// <summary>The router (198.51.100.254) asking for natd's outside address: natd answers and learns the router's MAC.</summary>
    public static CapFrame RouterArp(long ts)
        => new(Frames.Arp(1, ReplayKit.RouterMac, "198.51.100.254", new byte[6], "198.51.100.1"), ts, "outside");

    /// <summary>A frame from a remote as it reaches natd's outside port through the router.</summary>
    public static byte[] FromOutside(byte[] f) => Frames.WithMacs(f, ReplayKit.RouterMac, ReplayKit.ReplayOutsideMac);

    /// <summary>
    /// The external ports (or ICMP ids) natd gives the outbound frames of <paramref name="outbound"/>
    /// with <paramref name="seed"/>: replays them after the router ARP and reads OUT's outside side.
    /// </summary>
    public static List<int> ExternalPorts(IEnumerable<CapFrame> outbound, ulong seed = 1)
    {
        var frames = new List<CapFrame> { RouterArp(ReplayKit.T0 - 1_000_000) };
        frames.AddRange(outbound);
        var r = ReplayKit.Run(ReplayKit.PcapNg(frames), seed: seed);
        return r.Out.Where(f => f.Interface == "outside" && ReplayKit.IsIpv4(f.Data))
            .Select(f => ReplayKit.Proto(f.Data) == 1 ? Frames.IcmpId(f.Data) : Frames.SrcPort(f.Data)).ToList();
    }
}
