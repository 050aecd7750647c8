using System.Buffers.Binary;
using BenchmarkDotNet.Attributes;
using Natd.Benchmarks.Support;
using Natd.Dataplane.Alg;
using Natd.Dataplane.Alg.Ftp;
using Natd.Dataplane.Io;
using Natd.Dataplane.Nat;
using Natd.Dataplane.Packets;

namespace Natd.Benchmarks;

/// <summary>
/// What a frame of an FTP control connection costs, against a frame of an ordinary established
/// TCP connection through <see cref="NatEngine.Process(Span{byte}, ref int, Side, FrameFlags, ref PacketContext)"/> (the baseline). Every operation copies a
/// 60-byte frame (a 6-byte <c>NOOP</c> line, or a <c>PORT</c> command) into a 2 KB slot and sets its
/// sequence number to the next of its stream (checksum patched, RFC 1624), so the handler sees an
/// in-order stream whose every segment starts a new line, as it would live; 64 frames per invocation.
/// <list type="bullet">
/// <item><see cref="PlainTcpIn2Out"/>: engine translation of an established TCP segment to port 8080.</item>
/// <item><see cref="FtpNoop"/>: <see cref="TcpLineAlgHandler.Handle"/> of <see cref="FtpHandler"/> alone on a <c>NOOP</c> (in2out, already translated).</item>
/// <item><see cref="FtpNoopSeqAdjusted"/>: the same after an earlier <c>PORT</c> changed the stream's length, so every segment's sequence number is corrected and its TCP checksum recomputed.</item>
/// <item><see cref="FtpPort"/>: a <c>PORT</c> naming the inside host, rewritten to the external address and the reserved port (4 bytes longer) with an inbound expectation.</item>
/// <item><see cref="FtpPortSplit"/>: the same <c>PORT</c> split across two segments ("PORT 10,16,0,2," and "156,66\r\n"):
/// the first is held in the connection's pooled cumulation buffer (docs/architecture.md, "ALG control streams"),
/// the second brings it back in front and the whole line is rewritten; per command (two frames).</item>
/// <item><see cref="FtpNoopThroughEngine"/>: the whole shard-side cost of a <c>NOOP</c> minus the hop to the helper thread: <c>Process</c> (translation, port reservation, <see cref="Verdict.ToHelper"/>), <c>Handle</c>, <c>CompleteAlg</c> (reserved port freed, Ethernet addresses).</item>
/// </list>
/// ALG handlers are the slow path (they may allocate: a rewrite remembers its bytes for
/// retransmissions), so this class is reported, not gated.
/// </summary>
[BenchmarkCategory(Categories.SlowPath)]
[OperationUnit("frame")]
public class AlgHandlerBenchmarks
{
    private const int FramesPerInvoke = 64;
    private const long Now = BenchLab.StartMs;

    /// <summary>"10,16,0,2,156,66" becomes "198,51,100,64,238,73": 4 bytes more.</summary>
    private const int PortGrowth = 4;

    /// <summary>Bytes of stream after which a seq-adjusted connection is restarted, well before 2^31 (RFC 793 sequence space) turns "after the edit" into "before".</summary>
    private const uint RestartAfterBytes = 1u << 30;

    private static readonly uint Inside = Ipv4.Parse("10.16.0.2");
    private static readonly uint Remote = Ipv4.Parse("203.0.113.1");
    private static readonly uint External = Ipv4.Parse("198.51.100.64");
    private static readonly byte[] Noop = "NOOP\r\n"u8.ToArray();

    private readonly byte[] _slot = new byte[FrameBatch.SlotSize];
    private readonly AlgActions _actions = new();
    private NatEngine _engine = null!;
    private byte[] _plain = null!;
    private byte[] _engineNoop = null!;
    private byte[] _noop = null!;
    private byte[] _port = null!;
    private FtpHandler _clean = null!;
    private FtpHandler _adjusted = null!;
    private FtpHandler _porting = null!;
    private FtpHandler _engineFtp = null!;
    private FtpHandler _splitting = null!;
    private byte[] _portHead = null!;
    private byte[] _portTail = null!;
    private uint _splitSeq;
    private AlgConnection _conn;
    private uint _plainSeq, _engineSeq, _cleanSeq, _adjustedSeq, _portSeq;
    private uint _adjustedStart;

    [GlobalSetup]
    public void Setup()
    {
        _engine = BenchLab.Engine(1024);
        _engineFtp = new FtpHandler();

        // An established TCP connection to 8080 (no ALG) and one to 21 (FTP), handshakes through the engine.
        _plainSeq = Handshake(Inside, 40000, 8080, null);
        _plain = InsideSegment(Inside, 40000, 8080, _plainSeq, Noop);
        _engineSeq = Handshake(Inside, 40001, 21, _engineFtp);
        _engineNoop = InsideSegment(Inside, 40001, 21, _engineSeq, Noop);

        // Handler-only frames: in2out as the helper gets them (external source, server destination).
        _conn = new AlgConnection(IpProtocol.Tcp, Inside, 40002, Remote, 21, External, 61000);
        _noop = AlgSegment(1, Noop);
        _port = AlgSegment(1, "PORT 10,16,0,2,156,66\r\n"u8);
        _clean = new FtpHandler();
        _porting = new FtpHandler();
        _adjusted = new FtpHandler();
        _cleanSeq = _portSeq = 1;
        _portHead = AlgSegment(1, "PORT 10,16,0,2,"u8);
        _portTail = AlgSegment(1, "156,66\r\n"u8);
        _splitting = new FtpHandler();
        _splitSeq = 1;
        StartAdjusted();

        // Self-checks: each variant does what it claims, or the figures would time something else.
        if (PlainTcpIn2Out() != FramesPerInvoke || FtpNoopThroughEngine() != FramesPerInvoke)
        {
            throw new InvalidOperationException($"engine frames not forwarded (drops: {BenchLab.Drops(_engine)})");
        }
        if (FtpNoop() != FramesPerInvoke * _noop.Length || FtpNoopSeqAdjusted() != FramesPerInvoke * _noop.Length)
        {
            throw new InvalidOperationException("a NOOP changed length");
        }
        uint lastSent = _adjustedSeq - (uint)Noop.Length;
        if (BinaryPrimitives.ReadUInt32BigEndian(_slot.AsSpan(AlgBenchFrames.SeqOffset)) != lastSent + PortGrowth)
        {
            throw new InvalidOperationException("the NOOP after the PORT rewrite was not seq-adjusted");
        }
        _actions.Clear();
        int n = FtpPort();
        if (n != FramesPerInvoke * (_port.Length + PortGrowth) || _actions.Rewrites != 1 || _actions.Expectations.Count != 1)
        {
            throw new InvalidOperationException($"PORT not rewritten as expected ({n} bytes, {_actions.Rewrites} rewrites)");
        }
        int split = FtpPortSplit();
        if (split != FramesPerInvoke * (AlgBenchFrames.PayloadOffset + _port.Length + PortGrowth)
            || _actions.Rewrites != 1 || _actions.Expectations.Count != 1)
        {
            throw new InvalidOperationException($"split PORT not held and rewritten as expected ({split} bytes)");
        }
    }

    /// <summary>Baseline: copies and translates 64 established TCP segments of a connection without ALG; returns frames forwarded.</summary>
    [Benchmark(Baseline = true, OperationsPerInvoke = FramesPerInvoke)]
    public int PlainTcpIn2Out()
    {
        NatEngine engine = _engine;
        Span<byte> slot = _slot;
        int forwarded = 0;
        for (int i = 0; i < FramesPerInvoke; i++)
        {
            _plain.CopyTo(slot);
            AlgBenchFrames.SetSeq(slot, _plainSeq);
            _plainSeq += (uint)Noop.Length;
            int len = _plain.Length;
            var ctx = new PacketContext(engine.Counters, Now);
            if (engine.Process(slot, ref len, Side.Inside, FrameFlags.None, ref ctx) == Verdict.ToOutside)
            {
                forwarded++;
            }
        }
        return forwarded;
    }

    /// <summary>The FTP handler on 64 in2out <c>NOOP</c> segments of a connection without edits; returns the bytes out.</summary>
    [Benchmark(OperationsPerInvoke = FramesPerInvoke)]
    public int FtpNoop() => Stream(_clean, _noop, ref _cleanSeq, reservedPort: 0);

    /// <summary>As <see cref="FtpNoop"/> on a connection an earlier <c>PORT</c> rewrite lengthened: seq corrected, TCP checksum recomputed.</summary>
    [Benchmark(OperationsPerInvoke = FramesPerInvoke)]
    public int FtpNoopSeqAdjusted()
    {
        if (_adjustedSeq - _adjustedStart > RestartAfterBytes)
        {
            StartAdjusted();
        }
        return Stream(_adjusted, _noop, ref _adjustedSeq, reservedPort: 0);
    }

    /// <summary>The FTP handler on 64 in2out <c>PORT</c> commands, each rewritten (length +4) with an expectation; returns the bytes out.</summary>
    [Benchmark(OperationsPerInvoke = FramesPerInvoke)]
    public int FtpPort() => Stream(_porting, _port, ref _portSeq, reservedPort: 61001);

    /// <summary>The FTP handler on 64 <c>PORT</c> commands each split in two segments (the head held, then the whole line rewritten); returns the bytes out.</summary>
    [Benchmark(OperationsPerInvoke = FramesPerInvoke)]
    public int FtpPortSplit()
    {
        int headLength = _portHead.Length - AlgBenchFrames.PayloadOffset;
        int bytes = 0;
        for (int i = 0; i < FramesPerInvoke; i++)
        {
            bytes += Segment(_splitting, _portHead, _splitSeq, 61001);
            bytes += Segment(_splitting, _portTail, _splitSeq + (uint)headLength, 61001);
            _splitSeq += (uint)(_port.Length - AlgBenchFrames.PayloadOffset);
        }
        return bytes;
    }

    /// <summary>Engine, handler and completion for 64 in2out <c>NOOP</c> segments; returns frames forwarded.</summary>
    [Benchmark(OperationsPerInvoke = FramesPerInvoke)]
    public int FtpNoopThroughEngine()
    {
        NatEngine engine = _engine;
        Span<byte> slot = _slot;
        AlgActions actions = _actions;
        int forwarded = 0;
        for (int i = 0; i < FramesPerInvoke; i++)
        {
            _engineNoop.CopyTo(slot);
            AlgBenchFrames.SetSeq(slot, _engineSeq);
            _engineSeq += (uint)Noop.Length;
            int len = _engineNoop.Length;
            var ctx = new PacketContext(engine.Counters, Now);
            if (engine.Process(slot, ref len, Side.Inside, FrameFlags.None, ref ctx) != Verdict.ToHelper)
            {
                continue;
            }
            AlgPending pending = ctx.Alg;
            actions.Clear();
            len = _engineFtp.Handle(pending.Connection, pending.Direction, slot, len, pending.ReservedPort, actions, Now);
            if (engine.CompleteAlg(slot, len, pending, actions, ref ctx) == Verdict.ToOutside)
            {
                forwarded++;
            }
        }
        return forwarded;
    }

    private int Stream(FtpHandler handler, byte[] template, ref uint seq, ushort reservedPort)
    {
        Span<byte> slot = _slot;
        AlgActions actions = _actions;
        int bytes = 0;
        for (int i = 0; i < FramesPerInvoke; i++)
        {
            template.CopyTo(slot);
            AlgBenchFrames.SetSeq(slot, seq);
            seq += (uint)(template.Length - AlgBenchFrames.PayloadOffset);
            actions.Clear();
            bytes += handler.Handle(_conn, AlgDirection.In2Out, slot, template.Length, reservedPort, actions, Now);
        }
        return bytes;
    }

    private int Segment(FtpHandler handler, byte[] template, uint seq, ushort reservedPort)
    {
        template.CopyTo(_slot, 0);
        AlgBenchFrames.SetSeq(_slot, seq);
        _actions.Clear();
        return handler.Handle(_conn, AlgDirection.In2Out, _slot, template.Length, reservedPort, _actions, Now);
    }

    /// <summary>A fresh connection whose first segment is a rewritten PORT (length +4), then NOOPs.</summary>
    private void StartAdjusted()
    {
        _adjusted.Forget(_conn);
        uint seq = 1;
        _port.CopyTo(_slot, 0);
        AlgBenchFrames.SetSeq(_slot, seq);
        _actions.Clear();
        _adjusted.Handle(_conn, AlgDirection.In2Out, _slot, _port.Length, 61001, _actions, Now);
        if (_actions.Rewrites != 1)
        {
            throw new InvalidOperationException("the PORT that starts the adjusted stream was not rewritten");
        }
        _adjustedStart = seq;
        _adjustedSeq = seq + (uint)(_port.Length - AlgBenchFrames.PayloadOffset);
    }

    private byte[] AlgSegment(uint seq, ReadOnlySpan<byte> payload)
        => AlgBenchFrames.Tcp(BenchLab.OutsideMac, BenchLab.OutsideRouterMac, External, _conn.ExternalPort, Remote, 21,
            AlgBenchFrames.PshAck, seq, 5001, payload);

    private static byte[] InsideSegment(uint inside, ushort sport, ushort dport, uint seq, ReadOnlySpan<byte> payload)
        => AlgBenchFrames.Tcp(BenchLab.InsideRouterMac, BenchLab.InsideMac, inside, sport, Remote, dport,
            AlgBenchFrames.PshAck, seq, 5001, payload);

    /// <summary>SYN, SYN-ACK, ACK through the engine (and the handler, for an ALG connection); returns the client's next sequence number.</summary>
    private uint Handshake(uint inside, ushort sport, ushort dport, IAlgHandler? alg)
    {
        const uint Isn = 1000;
        byte[] syn = AlgBenchFrames.Tcp(BenchLab.InsideRouterMac, BenchLab.InsideMac, inside, sport, Remote, dport, Tcp.Syn, Isn, 0, []);
        byte[] translated = Run(syn, Side.Inside, Verdict.ToOutside, alg);
        uint ext = Checksum.ReadRaw32(translated, 26);
        ushort extPort = BinaryPrimitives.ReadUInt16BigEndian(translated.AsSpan(34));
        byte[] synAck = AlgBenchFrames.Tcp(BenchLab.OutsideRouterMac, BenchLab.OutsideMac, Remote, dport, ext, extPort,
            Tcp.Syn | Tcp.Ack, 5000, Isn + 1, []);
        Run(synAck, Side.Outside, Verdict.ToInside, alg);
        Run(AlgBenchFrames.Tcp(BenchLab.InsideRouterMac, BenchLab.InsideMac, inside, sport, Remote, dport, Tcp.Ack, Isn + 1, 5001, []),
            Side.Inside, Verdict.ToOutside, alg);
        return Isn + 1;
    }

    private byte[] Run(byte[] frame, Side ingress, Verdict expected, IAlgHandler? alg)
    {
        frame.CopyTo(_slot, 0);
        int len = frame.Length;
        var ctx = new PacketContext(_engine.Counters, Now);
        Verdict v = _engine.Process(_slot, ref len, ingress, FrameFlags.None, ref ctx);
        if (v == Verdict.ToHelper && alg != null)
        {
            AlgPending p = ctx.Alg;
            _actions.Clear();
            len = alg.Handle(p.Connection, p.Direction, _slot, len, p.ReservedPort, _actions, Now);
            v = _engine.CompleteAlg(_slot, len, p, _actions, ref ctx);
        }
        if (v != expected)
        {
            throw new InvalidOperationException($"handshake frame: {v}, expected {expected} (last drop {DropReasons.Label(ctx.DropReason)})");
        }
        return _slot.AsSpan(0, len).ToArray();
    }
}
