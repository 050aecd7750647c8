using System.Buffers.Binary;
using Natd.Dataplane.Io;
using Natd.Dataplane.Nat;
using Natd.Dataplane.Packets;

namespace Natd.Benchmarks.Support;

/// <summary>
/// The benchmark topology: inside subscribers behind an inside router (10.16.0.0/12 via 10.0.0.254),
/// remote servers behind an outside router (203.0.113.0/24 via 198.51.100.254), a pool of external
/// addresses (198.51.100.64 upwards), both routers known as static neighbours so no frame waits for
/// ARP. Flow <c>i</c> is UDP from inside host <c>i % Hosts</c>, port <c>1024 + i / Hosts</c>, to one
/// of 64 remotes on port 443: every flow is a distinct inside endpoint, so each new flow costs a
/// mapping, a port allocation and a session (the worst case of endpoint-independent mapping).
/// </summary>
public static class BenchLab
{
    /// <summary>The engine's non-zero drop counters, "label=count" joined by commas, for a failed setup's message.</summary>
    public static string Drops(NatEngine engine)
    {
        var parts = new List<string>();
        for (int r = 0; r < DropReasons.Count; r++)
        {
            long n = engine.Counters.Drops[r];
            if (n != 0)
            {
                parts.Add($"{DropReasons.Label((DropReason)r)}={n}");
            }
        }
        return parts.Count == 0 ? "none" : string.Join(",", parts);
    }

    /// <summary>Distinct inside hosts; 4096 spread paired pooling evenly over the external addresses.</summary>
    public const int Hosts = 4096;

    /// <summary>Frame length in bytes: the Ethernet minimum without FCS (UDP with 18 payload bytes).</summary>
    public const int FrameLength = 60;

    /// <summary>Bytes between frames in the precomputed frame buffers (a cache line).</summary>
    public const int Stride = 64;

    /// <summary>Frames per batch, as a poller receives them.</summary>
    public const int BatchSize = 64;

    /// <summary>Engine clock at which sessions are created (milliseconds).</summary>
    public const long StartMs = 10_000_000;

    /// <summary>Gateway MAC on the inside.</summary>
    public static readonly MacAddress InsideMac = new(0x02_00_00_00_00_01);

    /// <summary>Gateway MAC on the outside.</summary>
    public static readonly MacAddress OutsideMac = new(0x02_00_00_00_00_02);

    /// <summary>The inside router's MAC (source of in2out frames).</summary>
    public static readonly MacAddress InsideRouterMac = new(0x02_00_00_00_01_fe);

    /// <summary>The outside router's MAC (source of out2in frames).</summary>
    public static readonly MacAddress OutsideRouterMac = new(0x02_00_00_00_02_fe);

    private static readonly uint InsideRouter = Ipv4.Parse("10.0.0.254");
    private static readonly uint OutsideRouter = Ipv4.Parse("198.51.100.254");
    private static readonly uint FirstHost = Ipv4.ToHostOrder(Ipv4.Parse("10.16.0.0"));
    private static readonly uint FirstRemote = Ipv4.ToHostOrder(Ipv4.Parse("203.0.113.1"));
    private static readonly uint FirstPoolAddress = Ipv4.ToHostOrder(Ipv4.Parse("198.51.100.64"));

    /// <summary>Settings for a table of <paramref name="maxSessions"/> sessions over <paramref name="poolSize"/> external addresses (64512 UDP ports each).</summary>
    public static NatSettings Settings(int maxSessions, int poolSize = 32)
    {
        var pool = new uint[poolSize];
        for (int i = 0; i < poolSize; i++)
        {
            pool[i] = Ipv4.FromHostOrder(FirstPoolAddress + (uint)i);
        }
        return new NatSettings
        {
            Inside = new InterfaceSettings("natin", Ipv4Prefix.Parse("10.0.0.1/24"), [Ipv4Prefix.Parse("10.0.0.0/8")], InsideRouter, null,
                [new KeyValuePair<uint, MacAddress>(InsideRouter, InsideRouterMac)]),
            Outside = new InterfaceSettings("natout", Ipv4Prefix.Parse("198.51.100.1/24"), [], OutsideRouter, null,
                [new KeyValuePair<uint, MacAddress>(OutsideRouter, OutsideRouterMac)]),
            Pool = pool,
            MaxSessions = maxSessions,
        };
    }

    /// <summary>An engine with a fixed seed (reproducible port choices and hashing).</summary>
    public static NatEngine Engine(int maxSessions, int poolSize = 32)
        => new(Settings(maxSessions, poolSize), InsideMac, OutsideMac, new EngineOptions { Seed = 0x5eed });

    /// <summary>An engine with a fixed seed and <paramref name="allocation"/> (see <see cref="WithAllocation"/>).</summary>
    public static NatEngine Engine(int maxSessions, PortAllocation allocation, int blockSize = BlockSize)
        => new(WithAllocation(Settings(maxSessions), allocation, blockSize), InsideMac, OutsideMac, new EngineOptions { Seed = 0x5eed });

    /// <summary>
    /// Port-block size of the benchmarks (ports). 256, not the default 512: with 32 addresses of
    /// 64512 ports one shard has 32 x 126 blocks of 512, fewer than the <see cref="Hosts"/>
    /// subscribers; 32 x 252 blocks of 256 hold them all, and 256 covers the 245 concurrent flows a
    /// host has at 1,000,000 sessions (one block each).
    /// </summary>
    public const int BlockSize = 256;

    /// <summary>
    /// <paramref name="settings"/> with <c>nat.allocation</c> <paramref name="allocation"/>: for
    /// port-block, blocks of <paramref name="blockSize"/>; for deterministic (RFC 7422), the
    /// <see cref="Hosts"/> inside hosts (10.16.0.0/20) as subscribers, 128 per pool address and 504
    /// ports each. Everything else (pairing, limits, quarantine) at its default.
    /// </summary>
    public static NatSettings WithAllocation(NatSettings settings, PortAllocation allocation, int blockSize = BlockSize) => settings with
    {
        Cgnat = new CgnatSettings
        {
            Allocation = allocation,
            PortBlock = new PortBlockSettings(blockSize),
            Deterministic = allocation == PortAllocation.Deterministic ? new DeterministicSettings([Ipv4Prefix.Parse("10.16.0.0/20")]) : null,
        },
    };

    /// <summary>The configuration name of an allocation mode (<c>nat.allocation</c>).</summary>
    public static string Name(PortAllocation allocation) => allocation switch
    {
        PortAllocation.PortBlock => "port-block",
        PortAllocation.Deterministic => "deterministic",
        _ => "dynamic",
    };

    /// <summary>Writes the in2out frame of flow <paramref name="flow"/> (see the class remarks) into <paramref name="dst"/>.</summary>
    public static void WriteIn2Out(Span<byte> dst, int flow)
    {
        uint host = Ipv4.FromHostOrder(FirstHost + (uint)(flow % Hosts));
        ushort port = (ushort)(1024 + flow / Hosts);
        uint remote = Ipv4.FromHostOrder(FirstRemote + (uint)(flow % 64));
        WriteUdp(dst, InsideRouterMac, InsideMac, host, port, remote, 443);
    }

    /// <summary>
    /// Writes the reply to a translated in2out frame: from its destination to its (external) source,
    /// as the outside router delivers it.
    /// </summary>
    public static void WriteReply(Span<byte> dst, ReadOnlySpan<byte> translated)
    {
        uint src = Checksum.ReadRaw32(translated, 26);
        uint dstAddr = Checksum.ReadRaw32(translated, 30);
        ushort sport = BinaryPrimitives.ReadUInt16BigEndian(translated[34..]);
        ushort dport = BinaryPrimitives.ReadUInt16BigEndian(translated[36..]);
        WriteUdp(dst, OutsideRouterMac, OutsideMac, dstAddr, dport, src, sport);
    }

    /// <summary>
    /// Writes a <see cref="FrameLength"/>-byte Ethernet/IPv4/UDP frame with valid IPv4 and UDP
    /// checksums. Addresses network order, ports host order.
    /// </summary>
    public static void WriteUdp(Span<byte> f, MacAddress smac, MacAddress dmac, uint src, ushort sport, uint dst, ushort dport)
    {
        f = f[..FrameLength];
        f.Clear();
        var eth = new EthernetHeader(f);
        eth.Destination = dmac;
        eth.Source = smac;
        eth.EtherType = EtherType.Ipv4;
        Span<byte> ipSpan = f[EthernetHeader.Length..];
        int total = FrameLength - EthernetHeader.Length;
        ipSpan[0] = 0x45;
        var ip = new Ipv4Header(ipSpan);
        ip.TotalLength = total;
        ip.Identification = 0x1234;
        ipSpan[6] = 0x40; // DF
        ip.Ttl = 64;
        ip.Protocol = IpProtocol.Udp;
        ip.Source = src;
        ip.Destination = dst;
        ip.ChecksumRaw = Checksum.Compute(ipSpan[..Ipv4Header.MinLength]);
        Span<byte> udp = ipSpan[Ipv4Header.MinLength..];
        int ulen = total - Ipv4Header.MinLength;
        BinaryPrimitives.WriteUInt16BigEndian(udp, sport);
        BinaryPrimitives.WriteUInt16BigEndian(udp[2..], dport);
        BinaryPrimitives.WriteUInt16BigEndian(udp[4..], (ushort)ulen);
        for (int i = Udp.Length; i < ulen; i++)
        {
            udp[i] = (byte)('a' + i);
        }
        ushort c = Checksum.Compute(udp[..ulen], Checksum.PseudoHeaderSum(src, dst, IpProtocol.Udp, ulen));
        Checksum.WriteRaw16(udp, Udp.ChecksumOffset, c == 0 ? (ushort)0xFFFF : c);
    }

    /// <summary>
    /// <paramref name="frames"/> established frames each way, <see cref="Stride"/> bytes apart:
    /// frame i of <paramref name="in2out"/> belongs to a flow drawn at random (fixed seed) among
    /// <c>0..sessions-1</c>, and frame i of <paramref name="out2in"/> is that flow's reply, taken
    /// from <paramref name="replies"/> as <see cref="Fill"/> wrote them.
    /// </summary>
    public static void EstablishedFrames(int sessions, int frames, byte[] replies, out byte[] in2out, out byte[] out2in)
    {
        in2out = new byte[frames * Stride];
        out2in = new byte[frames * Stride];
        var rng = new Random(12345);
        for (int i = 0; i < frames; i++)
        {
            int flow = rng.Next(sessions);
            WriteIn2Out(in2out.AsSpan(i * Stride), flow);
            replies.AsSpan(flow * Stride, Stride).CopyTo(out2in.AsSpan(i * Stride));
        }
    }

    /// <summary>
    /// Creates sessions for flows <c>0..count-1</c> by translating their first in2out frame at
    /// <paramref name="nowMs"/>. When <paramref name="replies"/> is given, it receives each flow's
    /// reply frame at <c>i * Stride</c>.
    /// </summary>
    /// <exception cref="InvalidOperationException">A flow was not forwarded (table full, ports exhausted, bad setup).</exception>
    public static void Fill(NatEngine engine, int count, long nowMs, byte[]? replies = null)
    {
        var slot = new byte[FrameBatch.SlotSize];
        for (int i = 0; i < count; i++)
        {
            WriteIn2Out(slot, i);
            int len = FrameLength;
            var ctx = new PacketContext(engine.Counters, nowMs);
            Verdict v = engine.Process(slot, ref len, Side.Inside, FrameFlags.None, ref ctx);
            if (v != Verdict.ToOutside)
            {
                throw new InvalidOperationException($"flow {i}: expected ToOutside, got {v} ({DropReasons.Label(ctx.DropReason)}) with {engine.Table.Count} sessions");
            }
            if (replies != null)
            {
                WriteReply(replies.AsSpan(i * Stride, Stride), slot.AsSpan(0, len));
            }
        }
        if (engine.Table.Count < count)
        {
            throw new InvalidOperationException($"expected {count} sessions, the table holds {engine.Table.Count}");
        }
    }
}
