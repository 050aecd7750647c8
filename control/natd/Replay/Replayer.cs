using System.Buffers.Binary;
using Natd.Control.Config;
using Natd.Control.Daemon;
using Natd.Dataplane.Alg;
using Natd.Dataplane.Io;
using Natd.Dataplane.Nat;
using Natd.Dataplane.Packets;
using Natd.Dataplane.Sessions;
using Natd.Dataplane.Workers;

namespace Natd.Control.Replay;

/// <summary>What a replay did, for the summary natd prints.</summary>
internal sealed record ReplaySummary
{
    public long FramesRead { get; init; }
    public long FromInside { get; init; }
    public long FromOutside { get; init; }
    public long SentInside { get; init; }
    public long SentOutside { get; init; }
    public long RebuiltReplies { get; init; }
    public long SkippedLinkType { get; init; }

    /// <summary>Frames read that left natd: translated (through an ALG or not, at once or after an ARP hold), or answered in place (ARP requests, ICMP errors).</summary>
    public long Forwarded { get; init; }

    /// <summary>Frames read that were dropped, each with a reason (<see cref="Drops"/> counts them by reason).</summary>
    public long Dropped { get; init; }

    /// <summary>Frames read that natd took in with nothing to send (ARP replies it learned from).</summary>
    public long Consumed { get; init; }

    public int SessionsAtEnd { get; init; }
    /// <summary>Most held frames the replay kept originals of at once (the drops file's bookkeeping; bounded by the engine's hold queue).</summary>
    public int HeldOriginalsPeak { get; init; }
    public required IReadOnlyDictionary<string, long> Drops { get; init; }
    public long TotalDrops => Drops.Values.Sum();

    /// <summary>Every frame read is forwarded, dropped, consumed or skipped for its link type.</summary>
    public bool AddsUp => FramesRead == Forwarded + Dropped + Consumed + SkippedLinkType;
}

/// <summary>The input cannot be replayed (wrong link type, corrupt file).</summary>
internal sealed class ReplayInputException(string message) : Exception(message);

/// <summary>
/// Offline translation of a capture (`natd replay`): frames in file order, the capture's
/// timestamps as the clock (so expiry is deterministic), a fixed seed for port randomisation (so
/// the output is reproducible), every transmitted frame written to a pcapng with interfaces
/// "inside" and "outside", and dropped frames optionally written with their reason as comment.
/// Frames of ALG connections run through the ALG's handler inline, in file order (live mode gives
/// them to a helper actor), and every frame read ends forwarded, dropped or consumed.
/// </summary>
internal sealed class Replayer : IFrameSink
{
    private const string InsideName = "inside", OutsideName = "outside";
    private readonly NatEngine _engine;
    private readonly PcapNgWriter _out;
    private readonly PcapNgWriter? _drops;
    private readonly NatdConfig _config;
    private long _nowNs;
    private long _sentInside, _sentOutside;
    private long _forwarded, _dropped, _consumed, _held, _heldDropped;

    /// <summary>Sweep slices on the capture clock, as the live sweeper's (<see cref="SweeperActor.Interval"/>).</summary>
    private static readonly long SliceMs = (long)SweeperActor.Interval.TotalMilliseconds;
    private long _nextSweepMs = long.MinValue;

    /// <summary>How often the ALG handlers drop the state of idle connections, as the daemon's timer (capture clock).</summary>
    private const long AlgExpireEveryMs = 60_000;
    private long _nextAlgExpireMs = long.MinValue;
    private readonly IAlgHandler?[] _algs = new IAlgHandler?[Enum.GetValues<AlgKind>().Length];
    private readonly AlgActions _algActions = new();
    private readonly byte[] _algBuffer = new byte[FrameBatch.SlotSize + AlgFrame.Headroom];

    private Replayer(NatdConfig config, PcapNgWriter output, PcapNgWriter? drops, ulong seed)
    {
        _config = config;
        _out = output;
        _drops = drops;
        _engine = new NatEngine(config.Nat, new MacAddress(0x02_00_00_00_00_01), new MacAddress(0x02_00_00_00_00_02),
            new EngineOptions { Promiscuous = true, LearnFromTraffic = true, Seed = seed });
        _engine.AttachSink(this);
        foreach (var (kind, factory) in AlgRegistry.Handlers)
        {
            _algs[(int)kind] = factory();
        }
    }

    /// <summary>The engine (for tests that inspect sessions afterwards).</summary>
    public NatEngine Engine => _engine;

    /// <summary>Replays <paramref name="input"/> (pcap or pcapng, Ethernet) into <paramref name="output"/> (pcapng).</summary>
    /// <exception cref="ReplayInputException">Corrupt input, or no Ethernet frame in it.</exception>
    public static ReplaySummary Run(NatdConfig config, Stream input, Stream output, Stream? drops, bool insideTrace, ulong seed = 1)
    {
        using var writer = new PcapNgWriter(output, [InsideName, OutsideName], leaveOpen: true);
        using var dropWriter = drops is null ? null : new PcapNgWriter(drops, [InsideName, OutsideName], leaveOpen: true);
        var r = new Replayer(config, writer, dropWriter, seed);
        return r.RunCore(input, insideTrace);
    }

    private ReplaySummary RunCore(Stream input, bool insideTrace)
    {
        long read = 0, fromInside = 0, fromOutside = 0, rebuilt = 0, skipped = 0;
        int firstBadLinkType = -1;
        var slot = new byte[FrameBatch.SlotSize];
        var original = new byte[FrameBatch.SlotSize];
        using var reader = OpenReader(input);
        while (true)
        {
            PcapRecord rec;
            try
            {
                if (!reader.TryRead(out rec))
                {
                    break;
                }
            }
            catch (PcapFormatException e)
            {
                throw new ReplayInputException($"input is not a readable capture: {e.Message}");
            }
            read++;
            if (rec.LinkType != 1)
            {
                skipped++;
                firstBadLinkType = firstBadLinkType < 0 ? rec.LinkType : firstBadLinkType;
                continue;
            }
            ReadOnlySpan<byte> data = rec.Data.Span;
            if (data.Length > FrameBatch.SlotSize || rec.OriginalLength > data.Length)
            {
                // Snapped or oversized frames cannot be forwarded whole.
                CountDrop(DropReason.Truncated, data, SideOf(rec, data), rec.TimestampNs);
                _dropped++;
                continue;
            }
            _nowNs = rec.TimestampNs;
            long nowMs = rec.TimestampNs / 1_000_000;
            data.CopyTo(slot);
            data.CopyTo(original);
            int len = data.Length;
            Side side = SideOf(rec, data);
            Sweep(nowMs);
            if (insideTrace && IsToInsideHost(data))
            {
                // A remote's reply as the inside host saw it: rebuild what the remote really sent.
                if (!InsideTraceRebuilder.TryRebuild(_engine, slot.AsSpan(0, len), nowMs))
                {
                    CountDrop(DropReason.NoSession, original.AsSpan(0, len), Side.Outside, rec.TimestampNs);
                    _dropped++;
                    continue;
                }
                rebuilt++;
                side = Side.Outside;
            }
            else if (insideTrace)
            {
                side = Side.Inside;
            }
            if (side == Side.Inside)
            {
                fromInside++;
            }
            else
            {
                fromOutside++;
            }
            var ctx = new PacketContext(_engine.Counters, nowMs, holdTag: read);
            long heldSeen = _engine.Counters.FramesHeld;
            long fragmentedSeen = _engine.Counters[Natd.Dataplane.Counters.ShardCounter.DatagramsFragmented];
            Verdict v = _engine.Process(slot, ref len, side, FrameFlags.None, ref ctx);
            byte[] frame = slot;
            if (v == Verdict.ToHelper)
            {
                v = RunAlg(slot.AsSpan(0, len), ref len, ref ctx);
                frame = _algBuffer;
            }
            // One shard: the engine never answers Verdict.Loopback (a hairpin completes in place).
            switch (v)
            {
                case Verdict.ToInside:
                    Send(Side.Inside, frame.AsSpan(0, len));
                    _forwarded++;
                    break;
                case Verdict.ToOutside:
                    Send(Side.Outside, frame.AsSpan(0, len));
                    _forwarded++;
                    break;
                case Verdict.Drop:
                    _drops?.Write(side == Side.Inside ? 0 : 1, original.AsSpan(0, data.Length), rec.TimestampNs, DropReasons.Label(ctx.DropReason));
                    _dropped++;
                    break;
                case Verdict.Consumed when _engine.Counters.FramesHeld > heldSeen:
                    // Waiting for ARP: it ends sent (released) or dropped (the hold expires), counted then.
                    _held++;
                    if (_drops is not null)
                    {
                        _heldOriginals[read] = (original.AsSpan(0, data.Length).ToArray(), rec.TimestampNs, side);
                        _heldOriginalsPeak = Math.Max(_heldOriginalsPeak, _heldOriginals.Count);
                    }
                    break;
                case Verdict.Consumed when _engine.Counters[Natd.Dataplane.Counters.ShardCounter.DatagramsFragmented] > fragmentedSeen:
                    _forwarded++; // larger than the egress MTU (interfaces.*.mtu): its fragments went out through the sink
                    break;
                case Verdict.Consumed:
                    _consumed++;
                    break;
            }
        }
        // Frames still waiting for ARP when the capture ends will never leave: report them as drops.
        _engine.DiscardHeld();
        _dropped += _heldDropped;
        _forwarded += _held - _heldDropped; // the others were released when their next hop answered
        if (read > 0 && skipped == read)
        {
            throw new ReplayInputException($"input has link type {firstBadLinkType}; natd replays Ethernet captures only (LINKTYPE_ETHERNET = 1)");
        }
        _out.Flush();
        _drops?.Flush();
        var drops = new Dictionary<string, long>();
        for (int i = 0; i < DropReasons.Count; i++)
        {
            long n = _engine.Counters.Drops[i];
            if (n > 0)
            {
                drops[DropReasons.Label((DropReason)i)] = n;
            }
        }
        return new ReplaySummary
        {
            FramesRead = read, FromInside = fromInside, FromOutside = fromOutside,
            SentInside = _sentInside, SentOutside = _sentOutside, RebuiltReplies = rebuilt,
            SkippedLinkType = skipped, Forwarded = _forwarded, Dropped = _dropped, Consumed = _consumed,
            SessionsAtEnd = _engine.Table.Count, Drops = drops, HeldOriginalsPeak = _heldOriginalsPeak,
        };
    }

    /// <summary>
    /// Expires what is due, on the live sweeper's 100 ms slices of the capture clock with its budget
    /// per slice (lookups refuse expired sessions in between, so expiry stays exact); every sweep
    /// walk costs what expires, not the size of a table. Also drops idle ALG connection state once
    /// a minute of capture time, as the daemon's timer does.
    /// </summary>
    private void Sweep(long nowMs)
    {
        if (nowMs >= _nextSweepMs)
        {
            long slices = _nextSweepMs == long.MinValue ? 1 : 1 + (nowMs - _nextSweepMs) / SliceMs;
            _engine.Sweep(nowMs, (int)Math.Min(slices * SweeperActor.SliceBudget, int.MaxValue));
            _nextSweepMs = nowMs - nowMs % SliceMs + SliceMs;
            ForgetClosedAlgConnections();
        }
        if (nowMs >= _nextAlgExpireMs)
        {
            if (_nextAlgExpireMs != long.MinValue)
            {
                long idleMs = _config.Nat.Timeouts.TcpEstablished * 1000L;
                foreach (var h in _algs)
                {
                    h?.Expire(nowMs, idleMs);
                }
            }
            _nextAlgExpireMs = nowMs + AlgExpireEveryMs;
        }
    }

    /// <summary>Lets each deleted ALG session's handler drop the connection, as a poller tells its helpers.</summary>
    private void ForgetClosedAlgConnections()
    {
        AlgBridge bridge = _engine.AlgBridge;
        for (int i = 0; i < bridge.ClosedCount; i++)
        {
            AlgConnection c = bridge.Closed(i, out AlgKind kind);
            ((int)kind < _algs.Length ? _algs[(int)kind] : null)?.Forget(c);
        }
        bridge.ClearClosed();
    }

    /// <summary>
    /// An ALG connection's frame (<see cref="Verdict.ToHelper"/>): runs the ALG's handler over a
    /// copy in <see cref="_algBuffer"/> (room to grow), then finishes it as a poller finishes a
    /// frame its helper returns: expectations, PPTP calls, transmission or the ARP hold.
    /// </summary>
    /// <returns>The frame's verdict; <paramref name="length"/> is its length in <see cref="_algBuffer"/>.</returns>
    private Verdict RunAlg(ReadOnlySpan<byte> frame, ref int length, ref PacketContext ctx)
    {
        AlgPending p = ctx.Alg;
        long nowMs = ctx.NowMs;
        ForgetClosedAlgConnections();
        frame.CopyTo(_algBuffer);
        IAlgHandler? handler = (int)p.Kind < _algs.Length ? _algs[(int)p.Kind] : null;
        if (handler is null)
        {
            _algActions.Clear(); // no handler for this ALG: the frame goes as translated
        }
        else
        {
            length = AlgHelperActor.Run(handler, p, _algBuffer, length, _algActions, nowMs);
        }
        Verdict v = _engine.CompleteAlg(_algBuffer, length, p, _algActions, ref ctx);
        foreach (GreCall c in _algActions.GreCalls)
        {
            _engine.ApplyGreCall(c, nowMs);
        }
        return v;
    }

    private static PcapReader OpenReader(Stream input)
    {
        try
        {
            return new PcapReader(input, leaveOpen: true);
        }
        catch (PcapFormatException e)
        {
            throw new ReplayInputException($"input is not a pcap or pcapng file: {e.Message}");
        }
    }

    private void CountDrop(DropReason reason, ReadOnlySpan<byte> frame, Side side, long tsNs)
    {
        _engine.Counters.Drops[(int)reason]++;
        _drops?.Write(side == Side.Inside ? 0 : 1, frame, tsNs, DropReasons.Label(reason));
    }

    private void Send(Side side, ReadOnlySpan<byte> frame)
    {
        _out.Write(side == Side.Inside ? 0 : 1, frame, _nowNs);
        if (side == Side.Inside)
        {
            _sentInside++;
        }
        else
        {
            _sentOutside++;
        }
    }

    bool IFrameSink.Send(Side side, ReadOnlySpan<byte> frame)
    {
        Send(side, frame);
        return true;
    }

    void IFrameSink.Discard(Side side, ReadOnlySpan<byte> frame, DropReason reason, long holdTag)
    {
        _heldDropped++;
        // Report the frame as it was read, on its ingress side, with its own timestamp.
        if (_heldOriginals.Remove(holdTag, out var original))
        {
            _drops?.Write(original.Side == Side.Inside ? 0 : 1, original.Frame, original.TimestampNs, DropReasons.Label(reason));
        }
        else
        {
            _drops?.Write(side == Side.Inside ? 0 : 1, frame, _nowNs, DropReasons.Label(reason));
        }
    }

    // A held frame's original, until the engine sends it (Released) or gives it up (Discard).
    void IFrameSink.Released(Side side, long holdTag) => _heldOriginals.Remove(holdTag);

    private readonly Dictionary<long, (byte[] Frame, long TimestampNs, Side Side)> _heldOriginals = [];
    private int _heldOriginalsPeak;

    /// <summary>
    /// The ingress side of a frame: a pcapng interface named inside/outside says it; otherwise an
    /// IPv4 source (or ARP sender) in the inside networks came from inside, anything else from outside.
    /// </summary>
    private Side SideOf(in PcapRecord rec, ReadOnlySpan<byte> f)
    {
        if (string.Equals(rec.InterfaceName, InsideName, StringComparison.OrdinalIgnoreCase))
        {
            return Side.Inside;
        }
        if (string.Equals(rec.InterfaceName, OutsideName, StringComparison.OrdinalIgnoreCase))
        {
            return Side.Outside;
        }
        uint src;
        if (f.Length >= 34 && BinaryPrimitives.ReadUInt16BigEndian(f[12..]) == EtherType.Ipv4)
        {
            src = BitConverter.ToUInt32(f[26..30]);
        }
        else if (f.Length >= 42 && BinaryPrimitives.ReadUInt16BigEndian(f[12..]) == EtherType.Arp)
        {
            src = BitConverter.ToUInt32(f[28..32]);
        }
        else
        {
            return Side.Outside;
        }
        return InInside(src) ? Side.Inside : Side.Outside;
    }

    private bool IsToInsideHost(ReadOnlySpan<byte> f)
        => f.Length >= 34 && BinaryPrimitives.ReadUInt16BigEndian(f[12..]) == EtherType.Ipv4 && InInside(BitConverter.ToUInt32(f[30..34]));

    private bool InInside(uint address)
    {
        foreach (var n in _config.Nat.Inside.Networks)
        {
            if (n.Contains(address))
            {
                return true;
            }
        }
        return false;
    }
}
