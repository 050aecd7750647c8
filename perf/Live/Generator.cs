using System.Buffers.Binary;
using System.Diagnostics;
using System.Globalization;
using Natd.Dataplane.Io;
using Natd.Dataplane.Packets;

namespace Natd.Live;

/// <summary>The two offered loads.</summary>
public enum Load
{
    /// <summary>10,000 fixed flows cycled: after the first pass every frame hits an existing session.</summary>
    Established,

    /// <summary>Every frame a new 5-tuple: new inside address and/or source port each time.</summary>
    Setup,
}

/// <summary>
/// `Natd.Live gen`: writes prebuilt 64-byte (60 without FCS) Ethernet/IPv4/UDP frames with valid
/// IPv4 and UDP checksums into an AF_PACKET TX ring with PACKET_QDISC_BYPASS, for a fixed time.
/// A full ring is not an error (trafgen stops at its first drop): the generator counts it, kicks
/// the kernel and retries the same frame, so the tuple sequence stays dense.
/// </summary>
public static class Generator
{
    /// <summary>Frame length without FCS: 14 Ethernet + 20 IPv4 + 8 UDP + 18 payload = 60 (64 on the wire).</summary>
    public const int FrameLength = 60;

    /// <summary>Flows of the established load.</summary>
    public const int EstablishedFlows = 10_000;

    /// <summary>Inside addresses the setup load cycles through: 10.1.0.1 .. 10.1.255.254.</summary>
    public const int SetupAddresses = 65_534;

    /// <summary>Destination of every frame: the outside host's discard port.</summary>
    public const string Destination = "198.51.100.2";

    /// <summary>Destination UDP port (discard).</summary>
    public const ushort DestinationPort = 9;

    /// <summary>Source address and port of flow <paramref name="index"/> of a load (host order port).</summary>
    /// <param name="load">Which load.</param>
    /// <param name="index">Flow index: 0..9999 for established, any non-negative number for setup.</param>
    /// <returns>Source address (network order) and source port.</returns>
    public static (uint Source, ushort Port) Flow(Load load, long index)
    {
        if (load == Load.Established)
        {
            // 1000 addresses 10.1.0.1-10.1.3.250 x 10 ports 20000-20009.
            int a = (int)(index % 1000);
            uint host = (10u << 24) | (1u << 16) | ((uint)(a / 250) << 8) | (uint)(a % 250 + 1);
            return (Ipv4.FromHostOrder(host), (ushort)(20000 + index / 1000 % 10));
        }
        uint n = (uint)(index % SetupAddresses) + 1;
        uint h = (10u << 24) | (1u << 16) | n;
        return (Ipv4.FromHostOrder(h), (ushort)(1024 + index / SetupAddresses % 64512));
    }

    /// <summary>Writes one complete frame for a flow into <paramref name="frame"/> (60 bytes).</summary>
    /// <param name="frame">Destination buffer, at least 60 bytes.</param>
    /// <param name="dstMac">The gateway's inside MAC.</param>
    /// <param name="srcMac">The generator port's MAC.</param>
    /// <param name="source">IPv4 source, network order.</param>
    /// <param name="sourcePort">UDP source port, host order.</param>
    public static void Build(Span<byte> frame, MacAddress dstMac, MacAddress srcMac, uint source, ushort sourcePort)
    {
        frame[..FrameLength].Clear();
        dstMac.Write(frame);
        srcMac.Write(frame[6..]);
        BinaryPrimitives.WriteUInt16BigEndian(frame[12..], 0x0800);
        Span<byte> ip = frame.Slice(14, 20);
        ip[0] = 0x45;
        BinaryPrimitives.WriteUInt16BigEndian(ip[2..], 46);
        BinaryPrimitives.WriteUInt16BigEndian(ip[6..], 0x4000); // DF
        ip[8] = 64;
        ip[9] = 17;
        uint dst = Ipv4.Parse(Destination);
        BinaryPrimitives.WriteUInt32LittleEndian(ip[12..], BitConverter.IsLittleEndian ? source : BinaryPrimitives.ReverseEndianness(source));
        BinaryPrimitives.WriteUInt32LittleEndian(ip[16..], BitConverter.IsLittleEndian ? dst : BinaryPrimitives.ReverseEndianness(dst));
        WriteNative(ip[10..], Checksum.Compute(ip));
        Span<byte> udp = frame.Slice(34, 26);
        BinaryPrimitives.WriteUInt16BigEndian(udp, sourcePort);
        BinaryPrimitives.WriteUInt16BigEndian(udp[2..], DestinationPort);
        BinaryPrimitives.WriteUInt16BigEndian(udp[4..], 26);
        for (int i = 8; i < 26; i++)
        {
            udp[i] = (byte)('a' + i);
        }
        ushort sum = Checksum.Compute(udp, Checksum.PseudoHeaderSum(source, dst, 17, 26));
        WriteNative(udp[6..], sum == 0 ? (ushort)0xFFFF : sum);
    }

    /// <summary>Runs the `gen` mode; returns the exit code.</summary>
    /// <param name="args">Arguments after "gen".</param>
    /// <param name="stdout">Where "gen: sending" and the final "gen: sent=..." line go.</param>
    /// <returns>0 on success, 1 on a usage or socket error.</returns>
    public static int Run(string[] args, TextWriter stdout)
    {
        string iface = "eth0";
        string? dstMacText = null;
        Load load = Load.Established;
        double seconds = 5;
        long start = 0;
        for (int i = 0; i + 1 < args.Length; i += 2)
        {
            switch (args[i])
            {
                case "--if": iface = args[i + 1]; break;
                case "--dst-mac": dstMacText = args[i + 1]; break;
                case "--load": load = args[i + 1] == "setup" ? Load.Setup : Load.Established; break;
                case "--seconds": seconds = double.Parse(args[i + 1], CultureInfo.InvariantCulture); break;
                case "--start": start = long.Parse(args[i + 1], CultureInfo.InvariantCulture); break;
                default:
                    Console.Error.WriteLine($"gen: unknown option {args[i]}");
                    return 1;
            }
        }
        if (dstMacText is null || !MacAddress.TryParse(dstMacText, out MacAddress dstMac))
        {
            Console.Error.WriteLine("gen: --dst-mac aa:bb:cc:dd:ee:ff is required");
            return 1;
        }

        AfPacketPort port;
        try
        {
            port = AfPacketPort.Open(iface, new AfPacketOptions
            {
                RxBlockSize = 64 * 1024,
                RxBlockCount = 2,
                TxFrameSize = 128,
                TxFrameCount = 4096,
                QdiscBypass = true,
            });
        }
        catch (NativeIoException e)
        {
            Console.Error.WriteLine($"gen: cannot open {iface}: {e.Message}");
            return 1;
        }
        using (port)
        {
            (long sent, long ringFull, double elapsed) = Send(port, dstMac, load, seconds, start);
            stdout.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"gen: sent={sent} seconds={elapsed:F3} ring-full={ringFull} load={load.ToString().ToLowerInvariant()} start={start}"));
            stdout.Flush();
        }
        return 0;
    }

    private static (long Sent, long RingFull, double Elapsed) Send(AfPacketPort port, MacAddress dstMac, Load load, double seconds, long start)
    {
        MacAddress srcMac = port.Mac;
        byte[] frame = new byte[FrameLength];
        byte[]? table = null;
        if (load == Load.Established)
        {
            table = new byte[EstablishedFlows * FrameLength];
            for (int f = 0; f < EstablishedFlows; f++)
            {
                (uint s, ushort p) = Flow(load, f);
                Build(table.AsSpan(f * FrameLength, FrameLength), dstMac, srcMac, s, p);
            }
        }
        else
        {
            (uint s, ushort p) = Flow(load, start);
            Build(frame, dstMac, srcMac, s, p);
        }

        if (!Valid(table is null ? frame : table.AsSpan(0, FrameLength)))
        {
            throw new InvalidOperationException("gen: built a frame with a bad IPv4 or UDP checksum");
        }
        Console.Out.WriteLine("gen: sending");
        Console.Out.Flush();
        long sent = 0, ringFull = 0;
        long t0 = Stopwatch.GetTimestamp();
        long end = t0 + (long)(seconds * Stopwatch.Frequency);
        long index = start;
        int flow = 0;
        Span<byte> f0 = frame;
        while (Stopwatch.GetTimestamp() < end)
        {
            for (int b = 0; b < 64; b++)
            {
                ReadOnlySpan<byte> next;
                if (table is not null)
                {
                    next = table.AsSpan(flow * FrameLength, FrameLength);
                }
                else
                {
                    Retarget(f0, Flow(Load.Setup, index));
                    next = f0;
                }
                while (!port.TrySend(next))
                {
                    ringFull++;
                    port.Flush();
                    if (Stopwatch.GetTimestamp() >= end)
                    {
                        goto done;
                    }
                }
                sent++;
                index++;
                flow = flow + 1 == EstablishedFlows ? 0 : flow + 1;
            }
            port.Flush();
        }
    done:
        port.Flush();
        double elapsed = (Stopwatch.GetTimestamp() - t0) / (double)Stopwatch.Frequency;
        return (sent, ringFull, elapsed);
    }

    /// <summary>True when the frame's IPv4 header and UDP checksums verify (the receiver's check, done once before sending).</summary>
    public static bool Valid(ReadOnlySpan<byte> frame)
    {
        ReadOnlySpan<byte> ip = frame.Slice(14, 20);
        uint src = System.Runtime.InteropServices.MemoryMarshal.Read<uint>(ip[12..]);
        uint dst = System.Runtime.InteropServices.MemoryMarshal.Read<uint>(ip[16..]);
        return Checksum.Verify(ip) && Checksum.Verify(frame.Slice(34, 26), Checksum.PseudoHeaderSum(src, dst, 17, 26));
    }

    /// <summary>Stores a checksum as <see cref="Checksum.Compute"/> returns it: its sum is over native 16-bit loads, so the result goes back with a native store.</summary>
    private static void WriteNative(Span<byte> dst, ushort value) => System.Runtime.InteropServices.MemoryMarshal.Write(dst, in value);

    /// <summary>Rewrites source address and port of a built frame and recomputes both checksums.</summary>
    private static void Retarget(Span<byte> frame, (uint Source, ushort Port) flow)
    {
        Span<byte> ip = frame.Slice(14, 20);
        BinaryPrimitives.WriteUInt32LittleEndian(ip[12..], BitConverter.IsLittleEndian ? flow.Source : BinaryPrimitives.ReverseEndianness(flow.Source));
        ip[10] = 0;
        ip[11] = 0;
        WriteNative(ip[10..], Checksum.Compute(ip));
        Span<byte> udp = frame.Slice(34, 26);
        BinaryPrimitives.WriteUInt16BigEndian(udp, flow.Port);
        udp[6] = 0;
        udp[7] = 0;
        uint dst = BitConverter.IsLittleEndian
            ? BinaryPrimitives.ReadUInt32LittleEndian(ip[16..])
            : BinaryPrimitives.ReverseEndianness(BinaryPrimitives.ReadUInt32LittleEndian(ip[16..]));
        ushort sum = Checksum.Compute(udp, Checksum.PseudoHeaderSum(flow.Source, dst, 17, 26));
        WriteNative(udp[6..], sum == 0 ? (ushort)0xFFFF : sum);
    }
}
