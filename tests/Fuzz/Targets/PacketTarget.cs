using System.Buffers.Binary;
using Natd.Dataplane.Alg;
using Natd.Dataplane.Io;
using Natd.Dataplane.Nat;
using Natd.Dataplane.Packets;
using Natd.Dataplane.Sessions;
using Natd.Dataplane.Workers;

namespace Natd.Fuzzing.Targets;

/// <summary>
/// Fuzz target "packet": a sequence of Ethernet frames through a fresh <see cref="NatEngine"/>
/// (lab addresses, every ALG on, no accept rules), both sides, with ALG frames handled inline as
/// the ALG helper actor would. Input: repeated records of a 2-byte big-endian frame length, one
/// flags byte (bit 0: arrives on the outside; bits 1-2: clock step 1 ms, 1 s, 70 s or 3 h, so
/// sessions and expectations expire) and the frame bytes (the last record may be short).
/// Invariants, checked independently of the engine's own code (violations throw
/// <see cref="FuzzInvariantException"/>): no exception escapes; every IPv4 frame sent outside has
/// a pool address or natd's outside address as source; every emitted IPv4 header checksum
/// verifies, and so does the TCP/UDP/ICMP checksum (RFC 1071) when the frame's input verified;
/// every input frame is accounted: transmitted, dropped with its reason counted, or consumed
/// (held for ARP, or an ARP reply learned).
/// </summary>
public static class PacketTarget
{
    /// <summary>Frames read from one input at most (afl inputs stay small; this bounds a run).</summary>
    public const int MaxFrames = 512;

    /// <summary>natd's inside address in the target's configuration.</summary>
    public const string InsideAddress = "10.0.0.1";

    /// <summary>natd's outside address.</summary>
    public const string OutsideAddress = "198.51.100.1";

    /// <summary>The external address pool (the outside address and one more).</summary>
    public static readonly string[] Pool = ["198.51.100.1", "198.51.100.7"];

    private static readonly long[] ClockSteps = [1, 1_000, 70_000, 3 * 3600_000];

    /// <summary>The configuration the target runs: the lab's addresses, every ALG on (IRC too), no rules (so no accept).</summary>
    public static NatSettings Settings() => new()
    {
        Inside = new InterfaceSettings("natin", Ipv4Prefix.Parse(InsideAddress + "/24"), [Ipv4Prefix.Parse("10.0.0.0/24")], 0, null, []),
        Outside = new InterfaceSettings("natout", Ipv4Prefix.Parse(OutsideAddress + "/24"), [], Ipv4.Parse("198.51.100.254"), null, []),
        Pool = [.. Pool.Select(Ipv4.Parse)],
        MaxSessions = 512,
        Algs = new AlgSettings { Irc = new AlgPorts(true, [6667]) },
    };

    /// <summary>Runs one input; throws <see cref="FuzzInvariantException"/> when an invariant fails.</summary>
    public static void Run(ReadOnlySpan<byte> input) => new Runner().Run(input);

    private sealed class Runner : IFrameSink
    {
        private readonly NatEngine _engine;
        private readonly HashSet<uint> _outsideSources;
        private readonly Dictionary<AlgKind, IAlgHandler> _handlers = [];
        private readonly AlgActions _actions = new();
        private readonly byte[] _slot = new byte[FrameBatch.SlotSize];
        private long _now = 1_000_000;
        private int _frame;

        public Runner()
        {
            NatSettings s = Settings();
            _engine = new NatEngine(s, new MacAddress(0x02_00_00_00_00_01), new MacAddress(0x02_00_00_00_00_02),
                new EngineOptions { Promiscuous = true, LearnFromTraffic = true, Seed = 7 });
            _engine.AttachSink(this);
            _outsideSources = [.. s.Pool, s.Outside.Address.Address];
            var inMac = new MacAddress(0x02_00_00_00_00_0a);
            var outMac = new MacAddress(0x02_00_00_00_00_0b);
            _engine.Learn(Side.Inside, Ipv4.Parse("10.0.0.2"), inMac);
            _engine.Learn(Side.Inside, Ipv4.Parse("10.0.0.3"), inMac);
            _engine.Learn(Side.Outside, Ipv4.Parse("198.51.100.2"), outMac);
            _engine.Learn(Side.Outside, Ipv4.Parse("198.51.100.254"), new MacAddress(0x02_00_00_00_00_fe));
            // The registry's handlers, PPTP with a fixed seed for its Call IDs (afl needs determinism).
            _handlers[AlgKind.Ftp] = new Dataplane.Alg.Ftp.FtpHandler();
            _handlers[AlgKind.Irc] = new Dataplane.Alg.Irc.IrcHandler();
            _handlers[AlgKind.Tftp] = new Dataplane.Alg.Tftp.TftpHandler();
            _handlers[AlgKind.Pptp] = new Dataplane.Alg.Pptp.PptpHandler(seed: 1);
        }

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
                _now += ClockSteps[(flags >> 1) & 3];
                One(frame, (flags & 1) != 0 ? Side.Outside : Side.Inside);
                _frame++;
            }
            // Frames still waiting for ARP are given up (counted) as at the end of a replay.
            _engine.DiscardHeld();
        }

        private void One(ReadOnlySpan<byte> input, Side side)
        {
            _engine.Sweep(_now, 4096);
            int len = Math.Min(input.Length, _slot.Length);
            input[..len].CopyTo(_slot);
            bool l4Valid = Rfc1071.InputL4Valid(input[..len]);
            long dropsBefore = TotalDrops();
            long[] byReason = _engine.Counters.Drops.ToArray();
            long heldBefore = _engine.Counters.FramesHeld;

            byte[] buffer = _slot;
            var ctx = new PacketContext(_engine.Counters, _now);
            Verdict v = _engine.Process(_slot, ref len, side, FrameFlags.None, ref ctx);
            if (v == Verdict.Loopback)
            {
                // Hairpinned to another shard (never with one): finished as the owner's poller does it.
                v = _engine.ProcessHairpinned(_slot, ref len, ref ctx);
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
                    if (TotalDrops() <= dropsBefore || (uint)r >= (uint)byReason.Length || _engine.Counters.Drops[(int)r] <= byReason[(int)r])
                    {
                        throw Fail($"dropped with reason {r}, but no drop was counted for it");
                    }
                    break;
                case Verdict.Consumed:
                    bool arp = input.Length >= 14 && BinaryPrimitives.ReadUInt16BigEndian(input[12..]) == 0x0806;
                    if (!arp && _engine.Counters.FramesHeld <= heldBefore)
                    {
                        throw Fail("consumed, but neither held for ARP nor an ARP frame");
                    }
                    break;
                default:
                    throw Fail($"unexpected verdict {v}");
            }
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
                len = h.Handle(p.Connection, p.Direction, buffer, len, p.ReservedPort, _actions, _now);
                if (len < 0 || len > buffer.Length)
                {
                    throw Fail($"{p.Kind} handler returned length {len} for a buffer of {buffer.Length}");
                }
            }
            Verdict v = _engine.CompleteAlg(buffer, len, p, _actions, ref ctx);
            foreach (GreCall call in _actions.GreCalls)
            {
                _engine.ApplyGreCall(call, _now);
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
            foreach (long d in _engine.Counters.Drops)
            {
                n += d;
            }
            return n;
        }

        private FuzzInvariantException Fail(string what) => new($"packet: frame {_frame}: {what}");

        bool IFrameSink.Send(Side side, ReadOnlySpan<byte> frame)
        {
            Emitted(side, frame, l4Valid: true, "self-made or released");
            return true;
        }
    }
}
