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
/// the engines finished (forwarded, dropped or consumed).
/// </summary>
public interface IFrameCheck
{
    /// <summary>
    /// Called once per input frame. <paramref name="input"/>: the frame as it arrived on
    /// <paramref name="ingress"/>; <paramref name="output"/>: the frame as sent when
    /// <paramref name="verdict"/> is ToInside or ToOutside, else empty; <paramref name="shard"/>:
    /// the engine that finished it (after any hand-off). Throws through <see cref="FrameRunner.Fail"/>
    /// when an invariant fails.
    /// </summary>
    void AfterFrame(FrameRunner runner, int shard, Side ingress, ReadOnlySpan<byte> input, Verdict verdict, ReadOnlySpan<byte> output);
}

/// <summary>
/// Runs the frame records of one fuzz input through fresh <see cref="NatEngine"/>s, one per shard,
/// both sides, as the pollers do: each frame goes to the shard <see cref="ShardMap"/> names, ARP is
/// learned by every shard, hairpinned frames (<see cref="Verdict.Loopback"/>) and routed fragments
/// (<see cref="Verdict.ToShard"/>, or released to another shard) are handed to their owner, and ALG
/// frames are handled inline as the ALG helper actor would. Input: repeated records of a 2-byte
/// big-endian frame length, one flags byte (bit 0: arrives on the outside; bits 1-2: clock step
/// 1 ms, 1 s, 70 s or 3 h, so sessions, blocks and expectations expire) and the frame bytes (the
/// last record may be short). Invariants, checked independently of the engine's own code
/// (violations throw <see cref="FuzzInvariantException"/>): no exception escapes; every IPv4 frame
/// sent outside has a pool address or natd's outside address as source; every emitted IPv4 header
/// checksum verifies, and so does the TCP/UDP/ICMP checksum (RFC 1071) when the frame's input
/// verified; every input frame is accounted: transmitted, dropped with its reason counted by the
/// shard that dropped it, handed to another shard, or consumed (held for ARP, a fragment held until
/// its datagram's first fragment, or an ARP reply learned); hand-offs end. A target adds its own
/// through <see cref="IFrameCheck"/>.
/// </summary>
public sealed class FrameRunner
{
    /// <summary>Frames read from one input at most (afl inputs stay small; this bounds a run).</summary>
    public const int MaxFrames = 512;

    /// <summary>Hand-offs one input frame may cause (its own, and held fragments it releases) before it counts as a loop.</summary>
    public const int MaxHandOffs = 256;

    private static readonly long[] ClockSteps = [1, 1_000, 70_000, 3 * 3600_000];

    private readonly string _target;
    private readonly IFrameCheck? _check;
    private readonly ShardMap? _map;
    private readonly HashSet<uint> _outsideSources;
    private readonly Dictionary<AlgKind, IAlgHandler>[] _handlers;
    private readonly AlgActions _actions = new();
    private readonly byte[] _slot = new byte[FrameBatch.SlotSize];
    private readonly Queue<(int Shard, byte[] Frame, Side Side, FrameFlags Flags)> _handOffs = new();
    private int _frame;

    /// <summary>
    /// <paramref name="shards"/> engines on <paramref name="settings"/> (with several, as natd runs
    /// them: each its shard of the ports and subscribers), the lab's neighbours learned; failures
    /// name <paramref name="target"/>.
    /// </summary>
    public FrameRunner(NatSettings settings, string target, IFrameCheck? check = null, int shards = 1)
    {
        _target = target;
        _check = check;
        _map = shards > 1 ? new ShardMap(settings, shards) : null;
        _outsideSources = [.. settings.Pool, settings.Outside.Address.Address];
        _largestFrame = [LargestFrame(settings.Inside.Mtu), LargestFrame(settings.Outside.Mtu)];
        Engines = new NatEngine[shards];
        _handlers = new Dictionary<AlgKind, IAlgHandler>[shards];
        var inMac = new MacAddress(0x02_00_00_00_00_0a);
        var outMac = new MacAddress(0x02_00_00_00_00_0b);
        var pairings = shards > 1 ? new PairingDirectory(shards) : null; // as the daemon shares it
        for (int k = 0; k < shards; k++)
        {
            var engine = new NatEngine(settings, new MacAddress(0x02_00_00_00_00_01), new MacAddress(0x02_00_00_00_00_02),
                new EngineOptions { Promiscuous = true, LearnFromTraffic = true, Seed = 7 + (ulong)k, Shard = k, Shards = shards, Pairings = pairings });
            engine.AttachSink(new Sink(this, k));
            engine.Learn(Side.Inside, Ipv4.Parse("10.0.0.2"), inMac);
            engine.Learn(Side.Inside, Ipv4.Parse("10.0.0.3"), inMac);
            engine.Learn(Side.Outside, Ipv4.Parse("198.51.100.2"), outMac);
            engine.Learn(Side.Outside, Ipv4.Parse("198.51.100.254"), new MacAddress(0x02_00_00_00_00_fe));
            Engines[k] = engine;
            // The registry's handlers, one set per shard as each poller has its helpers' state;
            // PPTP with a fixed seed for its Call IDs (afl needs determinism).
            _handlers[k] = new()
            {
                [AlgKind.Ftp] = new Dataplane.Alg.Ftp.FtpHandler(),
                [AlgKind.Irc] = new Dataplane.Alg.Irc.IrcHandler(),
                [AlgKind.Tftp] = new Dataplane.Alg.Tftp.TftpHandler(),
                [AlgKind.Pptp] = new Dataplane.Alg.Pptp.PptpHandler(seed: 1),
            };
        }
    }

    /// <summary>The engines under test, by shard.</summary>
    public NatEngine[] Engines { get; }

    /// <summary>The engine of shard 0 (the only one with one shard).</summary>
    public NatEngine Engine => Engines[0];

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
        foreach (NatEngine e in Engines)
        {
            e.DiscardHeld();
        }
        DrainHandOffs();
    }

    /// <summary>An invariant failure of frame <c>n</c> of this input, to throw.</summary>
    public FuzzInvariantException Fail(string what) => new($"{_target}: frame {_frame}: {what}");

    private void One(ReadOnlySpan<byte> input, Side side)
    {
        foreach (NatEngine e in Engines)
        {
            e.Sweep(NowMs, 4096);
        }
        int len = Math.Min(input.Length, _slot.Length);
        bool l4Valid = Rfc1071.InputL4Valid(input[..len]);
        bool arp = input.Length >= 14 && BinaryPrimitives.ReadUInt16BigEndian(input[12..]) == 0x0806;
        int owner = 0;
        if (_map is not null)
        {
            if (arp)
            {
                // Every shard keeps its own neighbour table: the others learn from ARP too.
                for (int k = 1; k < Engines.Length; k++)
                {
                    Engines[k].LearnFromArp(input[..len], side);
                }
            }
            else
            {
                owner = Math.Max(0, _map.Owner(input[..len], side));
            }
        }
        Step(owner, input[..len], side, FrameFlags.None, l4Valid, input, arp);
        DrainHandOffs();
    }

    private void DrainHandOffs()
    {
        for (int n = 0; _handOffs.TryDequeue(out var h); n++)
        {
            if (n >= MaxHandOffs)
            {
                throw Fail($"more than {MaxHandOffs} hand-offs between shards for one frame");
            }
            bool arp = h.Frame.Length >= 14 && BinaryPrimitives.ReadUInt16BigEndian(h.Frame.AsSpan(12)) == 0x0806;
            Step(h.Shard, h.Frame, h.Side, h.Flags, Rfc1071.InputL4Valid(h.Frame), h.Frame, arp);
        }
    }

    /// <summary>Shard <paramref name="shard"/> processes <paramref name="frame"/> as its poller would (a received frame, or a hand-off's copy).</summary>
    private void Step(int shard, ReadOnlySpan<byte> frame, Side side, FrameFlags flags, bool l4Valid, ReadOnlySpan<byte> input, bool arp)
    {
        NatEngine engine = Engines[shard];
        int len = frame.Length;
        frame.CopyTo(_slot);
        long dropsBefore = TotalDrops(engine);
        long[] byReason = engine.Counters.Drops.ToArray();
        long heldBefore = engine.Counters.FramesHeld;
        long fragmentsHeldBefore = engine.Counters[ShardCounter.FragmentsHeld];
        long fragmentedBefore = engine.Counters[ShardCounter.DatagramsFragmented];

        byte[] buffer = _slot;
        var ctx = new PacketContext(engine.Counters, NowMs);
        Verdict v = (flags & FrameFlags.Hairpinned) != 0
            ? engine.ProcessHairpinned(_slot, ref len, ref ctx)
            : engine.Process(_slot, ref len, side, flags, ref ctx);
        if (v == Verdict.Loopback)
        {
            // Hairpinned, and its destination (external address, port) is another shard's: that
            // shard finishes it as an outside arrival.
            int owner = _map?.Owner(_slot.AsSpan(0, len), Side.Outside) ?? -1;
            if (owner >= 0 && owner != shard)
            {
                _handOffs.Enqueue((owner, _slot.AsSpan(0, len).ToArray(), Side.Outside, FrameFlags.Hairpinned));
                return;
            }
            v = engine.ProcessHairpinned(_slot, ref len, ref ctx);
        }
        if (v == Verdict.ToShard)
        {
            // An inbound fragment whose datagram another shard's first fragment opened.
            if (_map is null || (uint)ctx.Shard >= (uint)Engines.Length || ctx.Shard == shard)
            {
                throw Fail($"fragment routed to shard {ctx.Shard} from shard {shard} of {Engines.Length}");
            }
            _handOffs.Enqueue((ctx.Shard, _slot.AsSpan(0, len).ToArray(), side, flags | FrameFlags.FragmentRouted));
            return;
        }
        if (v == Verdict.ToHelper)
        {
            (v, buffer, len) = Helper(shard, _slot.AsSpan(0, len), ref ctx);
        }
        switch (v)
        {
            case Verdict.ToInside:
            case Verdict.ToOutside:
                Emitted(v == Verdict.ToOutside ? Side.Outside : Side.Inside, buffer.AsSpan(0, len), l4Valid, "forwarded");
                break;
            case Verdict.Drop:
                DropReason r = ctx.DropReason;
                if (TotalDrops(engine) <= dropsBefore || (uint)r >= (uint)byReason.Length || engine.Counters.Drops[(int)r] <= byReason[(int)r])
                {
                    throw Fail($"dropped with reason {r} by shard {shard}, but no drop was counted for it");
                }
                break;
            case Verdict.Consumed:
                bool held = engine.Counters.FramesHeld > heldBefore || engine.Counters[ShardCounter.FragmentsHeld] > fragmentsHeldBefore;
                bool fragmented = engine.Counters[ShardCounter.DatagramsFragmented] > fragmentedBefore; // left in fragments, each checked by the sink
                if (!arp && !held && !fragmented)
                {
                    throw Fail("consumed, but neither held (for ARP, or a fragment before its first), sent in fragments, nor an ARP frame");
                }
                break;
            default:
                throw Fail($"unexpected verdict {v}");
        }
        bool sent = v is Verdict.ToInside or Verdict.ToOutside;
        _check?.AfterFrame(this, shard, side, input, v, sent ? buffer.AsSpan(0, len) : []);
    }

    /// <summary>What the ALG helper actor and the poller do for a frame: handle it, then complete it.</summary>
    private (Verdict, byte[], int) Helper(int shard, ReadOnlySpan<byte> frame, ref PacketContext ctx)
    {
        AlgPending p = ctx.Alg;
        var buffer = new byte[frame.Length + AlgFrame.Headroom];
        frame.CopyTo(buffer);
        int len = frame.Length;
        _actions.Clear();
        if (_handlers[shard].TryGetValue(p.Kind, out IAlgHandler? h))
        {
            len = h.Handle(p.Connection, p.Direction, buffer, len, p.ReservedPort, _actions, NowMs);
            if (len < 0 || len > buffer.Length)
            {
                throw Fail($"{p.Kind} handler returned length {len} for a buffer of {buffer.Length}");
            }
        }
        NatEngine engine = Engines[shard];
        Verdict v = engine.CompleteAlg(buffer, len, p, _actions, ref ctx);
        foreach (GreCall call in _actions.GreCalls)
        {
            engine.ApplyGreCall(call, NowMs);
        }
        return (v, buffer, len);
    }

    // The largest frame each side may send (Side is the index): its configured MTU and an Ethernet header.
    private readonly int[] _largestFrame;

    private static int LargestFrame(int mtu) => mtu > 0 ? mtu + 14 : int.MaxValue;

    private void Emitted(Side side, ReadOnlySpan<byte> frame, bool l4Valid, string what)
    {
        if (frame.Length > _largestFrame[(int)side])
        {
            throw Fail($"{what} frame of {frame.Length} bytes leaves the {side.ToString().ToLowerInvariant()} above its MTU ({_largestFrame[(int)side] - 14} bytes)");
        }
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

    private static long TotalDrops(NatEngine engine)
    {
        long n = 0;
        foreach (long d in engine.Counters.Drops)
        {
            n += d;
        }
        return n;
    }

    /// <summary>Shard <c>shard</c>'s way out: what it transmits on its own, and the frames it hands to another shard.</summary>
    private sealed class Sink(FrameRunner runner, int shard) : IFrameSink
    {
        public bool Send(Side side, ReadOnlySpan<byte> frame)
        {
            runner.Emitted(side, frame, l4Valid: true, "self-made or released");
            return true;
        }

        public bool HandOff(int to, Side side, ReadOnlySpan<byte> frame, FrameFlags flags)
        {
            if (runner._map is null || (uint)to >= (uint)runner.Engines.Length || to == shard)
            {
                throw runner.Fail($"shard {shard} hands a frame to shard {to} of {runner.Engines.Length}");
            }
            runner._handOffs.Enqueue((to, frame.ToArray(), side, flags));
            return true;
        }
    }
}
