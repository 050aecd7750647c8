using System.Buffers.Binary;
using Natd.Control.Config;
using Natd.Dataplane.Io;
using Natd.Dataplane.Nat;
using Natd.Dataplane.Packets;

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
    public int SessionsAtEnd { get; init; }
    /// <summary>Most held frames the replay kept originals of at once (the drops file's bookkeeping; bounded by the engine's hold queue).</summary>
    public int HeldOriginalsPeak { get; init; }
    public required IReadOnlyDictionary<string, long> Drops { get; init; }
    public long TotalDrops => Drops.Values.Sum();
}

/// <summary>The input cannot be replayed (wrong link type, corrupt file).</summary>
internal sealed class ReplayInputException(string message) : Exception(message);

/// <summary>
/// Offline translation of a capture (`natd replay`): frames in file order, the capture's
/// timestamps as the clock (so expiry is deterministic), a fixed seed for port randomisation (so
/// the output is reproducible), every transmitted frame written to a pcapng with interfaces
/// "inside" and "outside", and dropped frames optionally written with their reason as comment.
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

    private Replayer(NatdConfig config, PcapNgWriter output, PcapNgWriter? drops, ulong seed)
    {
        _config = config;
        _out = output;
        _drops = drops;
        _engine = new NatEngine(config.Nat, new MacAddress(0x02_00_00_00_00_01), new MacAddress(0x02_00_00_00_00_02),
            new EngineOptions { Promiscuous = true, LearnFromTraffic = true, Seed = seed });
        _engine.AttachSink(this);
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
                continue;
            }
            _nowNs = rec.TimestampNs;
            long nowMs = rec.TimestampNs / 1_000_000;
            data.CopyTo(slot);
            data.CopyTo(original);
            int len = data.Length;
            Side side = SideOf(rec, data);
            // Expire what is due before this frame is looked at (lookups also refuse expired
            // sessions; the sweep keeps the table and the event stream in step with capture time).
            _engine.Sweep(nowMs, 4096);
            if (insideTrace && IsToInsideHost(data))
            {
                // A remote's reply as the inside host saw it: rebuild what the remote really sent.
                if (!_engine.TryRebuildOutsideFrame(slot.AsSpan(0, len), nowMs))
                {
                    CountDrop(DropReason.NoSession, original.AsSpan(0, len), Side.Outside, rec.TimestampNs);
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
            _engine.HoldTag = read;
            _heldSeen = _engine.Counters.FramesHeld;
            Verdict v = _engine.Process(slot, ref len, side, FrameFlags.None, nowMs);
            switch (v)
            {
                case Verdict.ToInside:
                    Send(Side.Inside, slot.AsSpan(0, len));
                    break;
                case Verdict.ToOutside:
                    Send(Side.Outside, slot.AsSpan(0, len));
                    break;
                case Verdict.Drop:
                    _drops?.Write(side == Side.Inside ? 0 : 1, original.AsSpan(0, data.Length), rec.TimestampNs, DropReasons.Label(_engine.LastDrop));
                    break;
                case Verdict.Consumed when _drops is not null && _engine.Counters.FramesHeld > _heldSeen:
                    _heldOriginals[read] = (original.AsSpan(0, data.Length).ToArray(), rec.TimestampNs, side);
                    _heldOriginalsPeak = Math.Max(_heldOriginalsPeak, _heldOriginals.Count);
                    break;
            }
        }
        // Frames still waiting for ARP when the capture ends will never leave: report them as drops.
        _engine.DiscardHeld();
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
            SkippedLinkType = skipped, SessionsAtEnd = _engine.Table.Count, Drops = drops,
            HeldOriginalsPeak = _heldOriginalsPeak,
        };
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
    private long _heldSeen;

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
