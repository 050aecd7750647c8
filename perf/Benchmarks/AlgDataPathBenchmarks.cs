using BenchmarkDotNet.Attributes;
using Natd.Benchmarks.Support;
using Natd.Dataplane.Alg;
using Natd.Dataplane.Io;
using Natd.Dataplane.Nat;
using Natd.Dataplane.Packets;

namespace Natd.Benchmarks;

/// <summary>
/// The TCP rewriting an ALG connection pays on every segment once a payload edit changed its
/// length (<see cref="TcpRewriter"/>, netfilter <c>nf_ct_seqadj</c> semantics), on a pure ACK
/// carrying three SACK blocks (RFC 2018; 98-byte frame), 64 segments per invocation. Each operation
/// first copies the original segment back (<see cref="CopyOnly"/>, the baseline to subtract), so
/// every operation does the same work. <see cref="Splice"/> rewrites a <c>PORT</c> argument in a
/// 77-byte segment (16 bytes become 20: payload moved, IPv4 length and both checksums fixed).
/// Gated: it runs per segment and must not allocate.
/// </summary>
[BenchmarkCategory(Categories.FastPath)]
[OperationUnit("segment")]
public class TcpRewriterBenchmarks
{
    private const int Segments = 64;
    private readonly byte[] _buffer = new byte[FrameBatch.SlotSize];
    private byte[] _sackAck = null!;
    private byte[] _port = null!;
    private byte[] _replacement = null!;
    private FrameLayout _sackLayout;
    private FrameLayout _portLayout;
    private SeqAdjustWay _self;
    private SeqAdjustWay _other;
    private int _argOffset;

    [GlobalSetup]
    public void Setup()
    {
        uint ext = Ipv4.Parse("198.51.100.64"), remote = Ipv4.Parse("203.0.113.1");
        // This direction grew by 4 bytes at seq 900 (before this segment's 1000); the other by 6 at 4000 (before the ack 5000 and every SACK edge).
        _self.Record(900, 4);
        _other.Record(4000, 6);
        var sack = new byte[2 + 24];
        sack[0] = TcpRewriter.SackOption;
        sack[1] = (byte)sack.Length;
        uint[] edges = [5100, 5200, 5300, 5400, 5500, 5600];
        for (int i = 0; i < edges.Length; i++)
        {
            System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(sack.AsSpan(2 + 4 * i), edges[i]);
        }
        _sackAck = AlgBenchFrames.Tcp(BenchLab.OutsideMac, BenchLab.OutsideRouterMac, ext, 61000, remote, 21, AlgBenchFrames.Ack, 1000, 5000, [], sack);
        ReadOnlySpan<byte> command = "PORT 10,16,0,2,156,66\r\n"u8;
        _port = AlgBenchFrames.Tcp(BenchLab.OutsideMac, BenchLab.OutsideRouterMac, ext, 61000, remote, 21, AlgBenchFrames.PshAck, 1000, 5000, command);
        _replacement = "198,51,100,64,238,73"u8.ToArray();
        _argOffset = "PORT "u8.Length;
        if (!FrameLayout.TryParseTcp(_sackAck, out _sackLayout) || !FrameLayout.TryParseTcp(_port, out _portLayout))
        {
            throw new InvalidOperationException("benchmark frames do not parse");
        }
        // Self-checks: the adjustment changes fields and the splice grows the frame.
        _sackAck.CopyTo(_buffer, 0);
        if (!TcpRewriter.AdjustSeqAck(_buffer, _sackLayout, _self, _other))
        {
            throw new InvalidOperationException("the SACK segment was not adjusted");
        }
        if (Splice() != Segments * (_port.Length + 4))
        {
            throw new InvalidOperationException("the PORT splice did not grow the frame by 4 bytes");
        }
    }

    /// <summary>Copies the SACK segment back 64 times: the baseline to subtract.</summary>
    [Benchmark(Baseline = true, OperationsPerInvoke = Segments)]
    public int CopyOnly()
    {
        Span<byte> buffer = _buffer;
        int acc = 0;
        for (int i = 0; i < Segments; i++)
        {
            _sackAck.CopyTo(buffer);
            acc += buffer[AlgBenchFrames.SeqOffset];
        }
        return acc;
    }

    /// <summary>Copy, then seq, ack and the six SACK edges shifted (no checksum).</summary>
    [Benchmark(OperationsPerInvoke = Segments)]
    public int AdjustSeqAck()
    {
        Span<byte> buffer = _buffer;
        int changed = 0;
        for (int i = 0; i < Segments; i++)
        {
            _sackAck.CopyTo(buffer);
            if (TcpRewriter.AdjustSeqAck(buffer, _sackLayout, _self, _other))
            {
                changed++;
            }
        }
        return changed;
    }

    /// <summary>Copy, adjustment and TCP checksum recomputed: what each later segment of an edited connection costs the helper.</summary>
    [Benchmark(OperationsPerInvoke = Segments)]
    public int AdjustAndChecksum()
    {
        Span<byte> buffer = _buffer;
        int acc = 0;
        for (int i = 0; i < Segments; i++)
        {
            _sackAck.CopyTo(buffer);
            TcpRewriter.AdjustSeqAck(buffer, _sackLayout, _self, _other);
            TcpRewriter.FixTcpChecksum(buffer, _sackLayout);
            acc += buffer[AlgBenchFrames.TcpChecksumOffset];
        }
        return acc;
    }

    /// <summary>Copy of the PORT segment and the splice of its argument; returns the bytes out.</summary>
    [Benchmark(OperationsPerInvoke = Segments)]
    public int Splice()
    {
        Span<byte> buffer = _buffer;
        int bytes = 0;
        for (int i = 0; i < Segments; i++)
        {
            _port.CopyTo(buffer);
            int length = _port.Length;
            FrameLayout layout = _portLayout;
            TcpRewriter.Splice(buffer, ref length, ref layout, _argOffset, 16, _replacement);
            bytes += length;
        }
        return bytes;
    }
}

/// <summary>
/// Data traffic the ALG work added to the engine of shard 0: ESP masqueraded by SPI (VPN
/// Masquerade HOWTO section 6) and PPTP's GRE version 1 translated by Call ID (RFC 2637), against
/// established UDP (the baseline) on the same engine. 16 flows of each kind (16 inside hosts, ESP
/// to 16 remote hosts each associated both ways, 16 PPTP calls), frames of 60 to 66 bytes, 64 per
/// invocation copied into the slots of a <see cref="FrameBatch"/> and translated, as the poller does.
/// Gated: per-packet path, must allocate nothing.
/// </summary>
[BenchmarkCategory(Categories.FastPath)]
[OperationUnit("packet")]
public class AlgDataPathBenchmarks
{
    private const int Flows = 16;
    private const long Now = BenchLab.StartMs;
    private NatEngine _engine = null!;
    private FrameBatch _slots = null!;
    private byte[][] _udpIn2Out = null!, _udpOut2In = null!, _espIn2Out = null!, _espOut2In = null!, _greIn2Out = null!, _greOut2In = null!;

    [GlobalSetup]
    public void Setup()
    {
        _engine = BenchLab.Engine(1024);
        _slots = new FrameBatch(BenchLab.BatchSize);
        _udpIn2Out = new byte[Flows][];
        _udpOut2In = new byte[Flows][];
        _espIn2Out = new byte[Flows][];
        _espOut2In = new byte[Flows][];
        _greIn2Out = new byte[Flows][];
        _greOut2In = new byte[Flows][];
        uint server = Ipv4.Parse("203.0.113.200");
        var slot = new byte[FrameBatch.SlotSize];
        for (int i = 0; i < Flows; i++)
        {
            // UDP: BenchLab's flow i (60-byte frames), and its reply.
            _udpIn2Out[i] = new byte[BenchLab.FrameLength];
            BenchLab.WriteIn2Out(_udpIn2Out[i], i);
            int len = Translate(slot, _udpIn2Out[i], Side.Inside, Verdict.ToOutside);
            _udpOut2In[i] = new byte[BenchLab.FrameLength];
            BenchLab.WriteReply(_udpOut2In[i], slot.AsSpan(0, len));

            // ESP: host 10.16.1.i to remote 203.0.113.(100+i), outbound SPI then the answer's SPI associated.
            uint inside = Ipv4.Parse($"10.16.1.{i + 1}");
            uint remote = Ipv4.Parse($"203.0.113.{100 + i}");
            _espIn2Out[i] = AlgBenchFrames.Esp(BenchLab.InsideRouterMac, BenchLab.InsideMac, inside, remote, 0x1000u + (uint)i, 1, 24);
            len = Translate(slot, _espIn2Out[i], Side.Inside, Verdict.ToOutside);
            uint ext = Checksum.ReadRaw32(slot, 26);
            _espOut2In[i] = AlgBenchFrames.Esp(BenchLab.OutsideRouterMac, BenchLab.OutsideMac, remote, ext, 0x2000u + (uint)i, 1, 24);
            Translate(slot, _espOut2In[i], Side.Outside, Verdict.ToInside);
            if (Checksum.ReadRaw32(slot, 30) != inside)
            {
                throw new InvalidOperationException($"ESP flow {i}: the answer did not reach its inside host");
            }

            // PPTP: client 10.16.2.i calls one server; each client's Call ID is 0x4000, natd gave the server 0x5000+i.
            uint client = Ipv4.Parse($"10.16.2.{i + 1}");
            var call = new GreCall(true, client, 0x4000, server, (ushort)(100 + i), ext, (ushort)(0x5000 + i));
            if (!_engine.ApplyGreCall(call, Now))
            {
                throw new InvalidOperationException($"GRE call {i} refused");
            }
            _greIn2Out[i] = AlgBenchFrames.Gre(BenchLab.InsideRouterMac, BenchLab.InsideMac, client, server, call.RemoteCallId, 1, 14);
            _greOut2In[i] = AlgBenchFrames.Gre(BenchLab.OutsideRouterMac, BenchLab.OutsideMac, server, ext, call.ExternalCallId, 1, 14);
        }

        // Every frame must be forwarded, or the figures would time drops.
        foreach (Func<int> run in new Func<int>[] { UdpIn2Out, UdpOut2In, EspIn2Out, EspOut2In, GreIn2Out, GreOut2In })
        {
            if (run() != BenchLab.BatchSize)
            {
                throw new InvalidOperationException($"{run.Method.Name}: not every frame forwarded (drops: {BenchLab.Drops(_engine)})");
            }
        }
    }

    [GlobalCleanup]
    public void Cleanup() => _slots.Dispose();

    /// <summary>Baseline: 64 established UDP frames in2out; returns frames forwarded.</summary>
    [Benchmark(Baseline = true, OperationsPerInvoke = BenchLab.BatchSize)]
    public int UdpIn2Out() => Run(_udpIn2Out, Side.Inside, Verdict.ToOutside);

    /// <summary>64 UDP replies out2in.</summary>
    [Benchmark(OperationsPerInvoke = BenchLab.BatchSize)]
    public int UdpOut2In() => Run(_udpOut2In, Side.Outside, Verdict.ToInside);

    /// <summary>64 ESP packets in2out (associated SPIs).</summary>
    [Benchmark(OperationsPerInvoke = BenchLab.BatchSize)]
    public int EspIn2Out() => Run(_espIn2Out, Side.Inside, Verdict.ToOutside);

    /// <summary>64 ESP packets out2in (associated SPIs).</summary>
    [Benchmark(OperationsPerInvoke = BenchLab.BatchSize)]
    public int EspOut2In() => Run(_espOut2In, Side.Outside, Verdict.ToInside);

    /// <summary>64 GRE packets of PPTP calls in2out.</summary>
    [Benchmark(OperationsPerInvoke = BenchLab.BatchSize)]
    public int GreIn2Out() => Run(_greIn2Out, Side.Inside, Verdict.ToOutside);

    /// <summary>64 GRE packets of PPTP calls out2in (Call ID rewritten).</summary>
    [Benchmark(OperationsPerInvoke = BenchLab.BatchSize)]
    public int GreOut2In() => Run(_greOut2In, Side.Outside, Verdict.ToInside);

    private int Run(byte[][] frames, Side ingress, Verdict expected)
    {
        NatEngine engine = _engine;
        FrameBatch slots = _slots;
        int forwarded = 0;
        for (int i = 0; i < BenchLab.BatchSize; i++)
        {
            byte[] f = frames[i % Flows];
            Span<byte> slot = slots.Slot(i);
            f.CopyTo(slot);
            int len = f.Length;
            var ctx = new PacketContext(engine.Counters, Now);
            if (engine.Process(slot, ref len, ingress, FrameFlags.None, ref ctx) == expected)
            {
                forwarded++;
            }
        }
        return forwarded;
    }

    private int Translate(byte[] slot, byte[] frame, Side ingress, Verdict expected)
    {
        frame.CopyTo(slot, 0);
        int len = frame.Length;
        var ctx = new PacketContext(_engine.Counters, Now);
        Verdict v = _engine.Process(slot, ref len, ingress, FrameFlags.None, ref ctx);
        if (v != expected)
        {
            throw new InvalidOperationException($"setup frame: {v}, expected {expected} (last drop {DropReasons.Label(ctx.DropReason)})");
        }
        return len;
    }
}
