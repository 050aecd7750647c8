using System.Buffers.Binary;
using Natd.Dataplane.Alg;
using Natd.Dataplane.Counters;
using Natd.Dataplane.Io;
using Natd.Dataplane.Nat;
using Natd.Dataplane.Packets;
using Natd.Dataplane.Sessions;
using Natd.Dataplane.Workers;

namespace Natd.Fuzzing.Targets;

/// <summary>
/// What a frame target checks beyond <see cref="FrameRunner"/>'s own invariants, after each frame
/// the engine finished (forwarded, dropped or consumed).
/// </summary>
public interface IFrameCheck
{
    /// <summary>
    /// Called once per input frame. <paramref name="input"/>: the frame as it arrived on
    /// <paramref name="ingress"/>; <paramref name="output"/>: the frame as sent when
    /// <paramref name="verdict"/> is ToInside or ToOutside, else empty. Throws through
    /// <see cref="FrameRunner.Fail"/> when an invariant fails.
    /// </summary>
    void AfterFrame(FrameRunner runner, Side ingress, ReadOnlySpan<byte> input, Verdict verdict, ReadOnlySpan<byte> output);
}

/// <summary>
/// Runs the frame records of one fuzz input through a fresh <see cref="NatEngine"/>, both sides,
/// with ALG frames handled inline as the ALG helper actor would. Input: repeated records of a
/// 2-byte big-endian frame length, one flags byte (bit 0: arrives on the outside; bits 1-2: clock
/// step 1 ms, 1 s, 70 s or 3 h, so sessions, blocks and expectations expire) and the frame bytes
/// (the last record may be short). Invariants, checked independently of the engine's own code
/// (violations throw <see cref="FuzzInvariantException"/>): no exception escapes; every IPv4 frame
/// sent outside has a pool address or natd's outside address as source; every emitted IPv4 header
/// checksum verifies, and so does the TCP/UDP/ICMP checksum (RFC 1071) when the frame's input
/// verified; every input frame is accounted: transmitted, dropped with its reason counted, or
/// consumed (held for ARP, a fragment held until its datagram's first fragment, or an ARP reply learned). A target adds its own through <see cref="IFrameCheck"/>.
/// </summary>
public sealed class FrameRunner : IFrameSink
{
    /// <summary>Frames read from one input at most (afl inputs stay small; this bounds a run).</summary>
    public const int MaxFrames = 512;

    private static readonly long[] ClockSteps = [1, 1_000, 70_000, 3 * 3600_000];

    private readonly string _target;
    private readonly IFrameCheck? _check;
    private readonly HashSet<uint> _outsideSources;
    private readonly Dictionary<AlgKind, IAlgHandler> _handlers = [];
    private readonly AlgActions _actions = new();
    private readonly byte[] _slot = new byte[FrameBatch.SlotSize];
    private int _frame;

    /// <summary>An engine on <paramref name="settings"/> with the lab's neighbours learned; failures name <paramref name="target"/>.</summary>
    public FrameRunner(NatSettings settings, string target, IFrameCheck? check = null)
    {
        _target = target;
        _check = check;
        Engine = new NatEngine(settings, new MacAddress(0x02_00_00_00_00_01), new MacAddress(0x02_00_00_00_00_02),
            new EngineOptions { Promiscuous = true, LearnFromTraffic = true, Seed = 7 });
        Engine.AttachSink(this);
        _outsideSources = [.. settings.Pool, settings.Outside.Address.Address];
        var inMac = new MacAddress(0x02_00_00_00_00_0a);
        var outMac = new MacAddress(0x02_00_00_00_00_0b);
        Engine.Learn(Side.Inside, Ipv4.Parse("10.0.0.2"), inMac);
        Engine.Learn(Side.Inside, Ipv4.Parse("10.0.0.3"), inMac);
        Engine.Learn(Side.Outside, Ipv4.Parse("198.51.100.2"), outMac);
        Engine.Learn(Side.Outside, Ipv4.Parse("198.51.100.254"), new MacAddress(0x02_00_00_00_00_fe));
        // The registry's handlers, PPTP with a fixed seed for its Call IDs (afl needs determinism).
        _handlers[AlgKind.Ftp] = new Dataplane.Alg.Ftp.FtpHandler();
        _handlers[AlgKind.Irc] = new Dataplane.Alg.Irc.IrcHandler();
        _handlers[AlgKind.Tftp] = new Dataplane.Alg.Tftp.TftpHandler();
        _handlers[AlgKind.Pptp] = new Dataplane.Alg.Pptp.PptpHandler(seed: 1);
    }

    /// <summary>The engine under test.</summary>
    public NatEngine Engine { get; }

    /// <summary>The engine clock (ms) of the frame being run.</summary>
    public long NowMs { get; private set; } = 1_000_000;

    /// <summary>Runs the records of <paramref name="input"/> (at most <see cref="MaxFrames"/>).</summary>
    public void Run(ReadOnlySpan<byte> input)
    {
        int pos = 0;
        while (pos + 3 <= input.Length && _frame < MaxFrames)
        {
            int len = BinaryPrimitives.ReadUInt16BigEndian(input[pos..]);
            byte flags = input[pos + 2];
            pos += 3;
            len = Math.Min(len, input.Length - pos);
            ReadOnlySpan<byte> frame = input.Slice(pos, len);
            pos += len;
            NowMs += ClockSteps[(flags >> 1) & 3];
            One(frame, (flags & 1) != 0 ? Side.Outside : Side.Inside);
            _frame++;
        }
        // Frames still waiting for ARP are given up (counted) as at the end of a replay.
        Engine.DiscardHeld();
    }

    /// <summary>An invariant failure of frame <c>n</c> of this input, to throw.</summary>
    public FuzzInvariantException Fail(string what) => new($"{_target}: frame {_frame}: {what}");

    private void One(ReadOnlySpan<byte> input, Side side)
    {
        Engine.Sweep(NowMs, 4096);
        int len = Math.Min(input.Length, _slot.Length);
        input[..len].CopyTo(_slot);
        bool l4Valid = Rfc1071.InputL4Valid(input[..len]);
        long dropsBefore = TotalDrops();
        long[] byReason = Engine.Counters.Drops.ToArray();
        long heldBefore = Engine.Counters.FramesHeld;
        long fragmentsHeldBefore = Engine.Counters[ShardCounter.FragmentsHeld];

        byte[] buffer = _slot;
        var ctx = new PacketContext(Engine.Counters, NowMs);
        Verdict v = Engine.Process(_slot, ref len, side, FrameFlags.None, ref ctx);
        if (v == Verdict.Loopback)
        {
            // Hairpinned to another shard (never with one): finished as the owner's poller does it.
            v = Engine.ProcessHairpinned(_slot, ref len, ref ctx);
        }
        if (v == Verdict.ToHelper)
        {
            (v, buffer, len) = Helper(_slot.AsSpan(0, len), ref ctx);
        }
        switch (v)
        {
            case Verdict.ToInside:
            case Verdict.ToOutside:
                Emitted(v == Verdict.ToOutside ? Side.Outside : Side.Inside, buffer.AsSpan(0, len), l4Valid, "forwarded");
                break;
            case Verdict.Drop:
                DropReason r = ctx.DropReason;
                if (TotalDrops() <= dropsBefore || (uint)r >= (uint)byReason.Length || Engine.Counters.Drops[(int)r] <= byReason[(int)r])
                {
                    throw Fail($"dropped with reason {r}, but no drop was counted for it");
                }
                break;
            case Verdict.Consumed:
                bool arp = input.Length >= 14 && BinaryPrimitives.ReadUInt16BigEndian(input[12..]) == 0x0806;
                bool held = Engine.Counters.FramesHeld > heldBefore || Engine.Counters[ShardCounter.FragmentsHeld] > fragmentsHeldBefore;
                if (!arp && !held)
                {
                    throw Fail("consumed, but neither held (for ARP, or a fragment before its first) nor an ARP frame");
                }
                break;
            default:
                throw Fail($"unexpected verdict {v}");
        }
        bool sent = v is Verdict.ToInside or Verdict.ToOutside;
        _check?.AfterFrame(this, side, input, v, sent ? buffer.AsSpan(0, len) : []);
    }

    /// <summary>What the ALG helper actor and the poller do for a frame: handle it, then complete it.</summary>
    private (Verdict, byte[], int) Helper(ReadOnlySpan<byte> frame, ref PacketContext ctx)
    {
        AlgPending p = ctx.Alg;
        var buffer = new byte[frame.Length + AlgFrame.Headroom];
        frame.CopyTo(buffer);
        int len = frame.Length;
        _actions.Clear();
        if (_handlers.TryGetValue(p.Kind, out IAlgHandler? h))
        {
            len = h.Handle(p.Connection, p.Direction, buffer, len, p.ReservedPort, _actions, NowMs);
            if (len < 0 || len > buffer.Length)
            {
                throw Fail($"{p.Kind} handler returned length {len} for a buffer of {buffer.Length}");
            }
        }
        Verdict v = Engine.CompleteAlg(buffer, len, p, _actions, ref ctx);
        foreach (GreCall call in _actions.GreCalls)
        {
            Engine.ApplyGreCall(call, NowMs);
        }
        return (v, buffer, len);
    }

    private void Emitted(Side side, ReadOnlySpan<byte> frame, bool l4Valid, string what)
    {
        if (side == Side.Outside && frame.Length >= 34 && BinaryPrimitives.ReadUInt16BigEndian(frame[12..]) == 0x0800)
        {
            uint src = BitConverter.ToUInt32(frame[26..30]);
            if (!_outsideSources.Contains(src))
            {
                throw Fail($"{what} frame leaves the outside with source {Ipv4.Format(src)}, neither a pool address nor natd's outside address");
            }
        }
        string? bad = Rfc1071.CheckFrame(frame);
        if (bad is not null && (l4Valid || bad.Contains("IPv4", StringComparison.Ordinal)))
        {
            throw Fail($"{what} frame to the {side.ToString().ToLowerInvariant()}: {bad}");
        }
    }

    private long TotalDrops()
    {
        long n = 0;
        foreach (long d in Engine.Counters.Drops)
        {
            n += d;
        }
        return n;
    }

    bool IFrameSink.Send(Side side, ReadOnlySpan<byte> frame)
    {
        Emitted(side, frame, l4Valid: true, "self-made or released");
        return true;
    }
}
