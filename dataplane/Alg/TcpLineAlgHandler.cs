using Natd.Dataplane.Sessions;

namespace Natd.Dataplane.Alg;

/// <summary>What a line-oriented ALG decided about one command or reply line.</summary>
public enum LineVerdict : byte
{
    /// <summary>Not a line this ALG acts on: pass unchanged.</summary>
    Ignore,
    /// <summary>A line this ALG acts on that it refuses (bad numbers, a third party's address): pass unchanged, count.</summary>
    Refuse,
    /// <summary>Open <see cref="LineDecision.Expectation"/>; no rewrite.</summary>
    Expect,
    /// <summary>Rewrite the line as <see cref="LineDecision"/> says and open <see cref="LineDecision.Expectation"/>.</summary>
    RewriteAndExpect,
}

/// <summary>Which side opened a TCP connection of an ALG, as its handshake showed.</summary>
public enum ConnectionOpener : byte
{
    /// <summary>The handshake was not seen (the helper started mid-connection).</summary>
    Unknown,
    /// <summary>The inside host sent the SYN: an inside client of a remote server.</summary>
    Inside,
    /// <summary>The remote host sent the SYN: a server inside reached through a port forward.</summary>
    Outside,
}

/// <summary>A line-oriented ALG's decision about one line (see <see cref="TcpLineAlgHandler.Decide"/>).</summary>
public struct LineDecision
{
    /// <summary>What to do.</summary>
    public LineVerdict Verdict;

    /// <summary>The pinhole to open (for <see cref="LineVerdict.Expect"/> and <see cref="LineVerdict.RewriteAndExpect"/>).</summary>
    public ExpectationRequest Expectation;

    /// <summary>Offset in the line of the first replaced byte.</summary>
    public int EditOffset;

    /// <summary>Number of replaced bytes.</summary>
    public int EditLength;

    /// <summary>Number of replacement bytes the ALG wrote to the scratch span.</summary>
    public int ReplacementLength;
}

/// <summary>
/// Common frame handling of ALGs whose control protocol is text lines over TCP (FTP, IRC): per
/// connection and direction it tracks where lines start, offers every complete line of new in-order
/// data to <see cref="Decide"/> (several lines in one segment each), splices rewrites, replays them
/// on retransmissions and corrects seq/ack/SACK of every later segment (<see cref="TcpStreamEdits"/>).
/// A segment that ends inside a line that may still need rewriting (<see cref="MayNeedRewrite"/>) is
/// forwarded without that partial line, which waits in the direction's cumulation buffer
/// (<see cref="TcpStreamHold"/>) until the rest arrives; the line then goes out whole, rewritten, in
/// one segment (docs/architecture.md, "ALG control streams"). Other partial lines are forwarded and
/// only tracked to know where the next line starts. A line longer than <see cref="MaxLineLength"/>,
/// one cut by a FIN, one whose held bytes the sender keeps re-sending alone, or one ahead of a gap
/// is never rewritten; when it looks like a command the ALG acts on (<see cref="LooksInteresting"/>)
/// it is counted in <see cref="AlgActions.Refused"/>.
/// </summary>
public abstract class TcpLineAlgHandler : IAlgHandler
{
    /// <summary>Longest line (terminator included) that is parsed, in bytes; longer ones are refused. Also the cap of a held partial line (one byte less).</summary>
    public const int MaxLineLength = 512;

    private readonly Dictionary<AlgConnection, ConnectionState> _connections = [];
    private readonly byte[] _scratch = new byte[128];
    private byte[] _original = new byte[2048];

    /// <inheritdoc />
    public abstract AlgKind Kind { get; }

    /// <summary>Number of connections with state (for tests and metrics).</summary>
    public int ConnectionCount => _connections.Count;

    /// <summary>Bytes held for <paramref name="connection"/> in <paramref name="direction"/> (tests).</summary>
    public int HeldBytes(in AlgConnection connection, AlgDirection direction)
        => _connections.TryGetValue(connection, out var state) ? state.Way(direction).Hold.Length : 0;

    /// <summary>Cumulation buffers currently taken from <see cref="AlgBuffers.Allocator"/>, over all connections (tests).</summary>
    public int BuffersTaken
    {
        get
        {
            int n = 0;
            foreach (var state in _connections.Values)
            {
                n += (state.In2Out.Hold.HasBuffer ? 1 : 0) + (state.Out2In.Hold.HasBuffer ? 1 : 0);
            }
            return n;
        }
    }

    /// <summary>
    /// Decides about one complete line that starts at a line start.
    /// </summary>
    /// <param name="connection">The connection.</param>
    /// <param name="direction">Which way the line travels.</param>
    /// <param name="opener">Which side opened the connection (client or server inside).</param>
    /// <param name="line">The line without its CR LF (or bare LF) terminator.</param>
    /// <param name="reservedPort">The external port reserved for this frame, 0 when none.</param>
    /// <param name="replacement">Where to write replacement bytes (128 bytes).</param>
    /// <returns>The decision; edit range within <paramref name="line"/>.</returns>
    protected abstract LineDecision Decide(in AlgConnection connection, AlgDirection direction, ConnectionOpener opener, ReadOnlySpan<byte> line,
        ushort reservedPort, Span<byte> replacement);

    /// <summary>True when an incomplete or overlong line starting with <paramref name="start"/> looks like something <see cref="Decide"/> would act on (counted as refused).</summary>
    protected abstract bool LooksInteresting(AlgDirection direction, ReadOnlySpan<byte> start);

    /// <summary>
    /// True when the incomplete line <paramref name="partial"/> (no terminator yet) may still become
    /// a line <see cref="Decide"/> rewrites or opens a pinhole for, so it must be held rather than
    /// forwarded: e.g. "PO" or "PORT 10,0" may, "USER al" may not.
    /// </summary>
    protected abstract bool MayNeedRewrite(AlgDirection direction, ConnectionOpener opener, ReadOnlySpan<byte> partial);

    /// <inheritdoc />
    public int Handle(in AlgConnection connection, AlgDirection direction, Span<byte> buffer, int length, ushort reservedPort, AlgActions actions, long nowMs)
    {
        if ((uint)length > (uint)buffer.Length || !FrameLayout.TryParseTcp(buffer[..length], out var segment))
        {
            return length;
        }
        if (!_connections.TryGetValue(connection, out var state))
        {
            state = new ConnectionState();
            _connections[connection] = state;
        }
        state.LastSeenMs = nowMs;
        Way way = state.Way(direction);
        byte flags = segment.Flags(buffer);
        if ((flags & Packets.Tcp.Rst) != 0)
        {
            // The connection is over: held bytes will never be delivered; the RST must land where the receiver is.
            way.Hold.OnReset(buffer, segment);
            state.Release();
        }
        else if ((flags & Packets.Tcp.Syn) != 0)
        {
            // Data on a SYN (TCP Fast Open) is left alone: no FTP or IRC client sends a command there.
            way.Lines.Start(segment.Seq(buffer) + 1);
            if (state.Opener == ConnectionOpener.Unknown)
            {
                // A SYN comes from the opener, a SYN-ACK from the other side.
                bool fromInside = (direction == AlgDirection.In2Out) == ((flags & Packets.Tcp.Ack) == 0);
                state.Opener = fromInside ? ConnectionOpener.Inside : ConnectionOpener.Outside;
            }
        }
        else
        {
            HoldMerge merge = way.Hold.Merge(buffer, ref length, ref segment);
            if (merge == HoldMerge.GaveUp)
            {
                // The held line goes out as the sender wrote it: never rewritten, and mid-line afterwards.
                actions.Refused++;
                way.Lines.Advance(segment.Seq(buffer), segment.PayloadLength, endsLine: false);
            }
            else if (merge != HoldMerge.Absorbed && segment.PayloadLength > 0)
            {
                HandleData(connection, direction, buffer, ref length, ref segment, reservedPort, actions, state, way);
            }
            if ((segment.Flags(buffer) & Packets.Tcp.Fin) != 0)
            {
                way.Hold.Release(); // this direction's stream ended: nothing more to hold
            }
        }
        // A splice already fixed the checksum; the seq/ack correction comes after it.
        if (state.Edits.Adjust(direction, buffer, segment))
        {
            TcpRewriter.FixTcpChecksum(buffer, segment);
        }
        return length;
    }

    /// <inheritdoc />
    public void Forget(in AlgConnection connection)
    {
        if (_connections.Remove(connection, out var state))
        {
            state.Release();
        }
    }

    /// <inheritdoc />
    public int Expire(long nowMs, long idleMs)
    {
        int n = 0;
        foreach (var (key, state) in _connections)
        {
            if (nowMs - state.LastSeenMs > idleMs)
            {
                state.Release();
                _connections.Remove(key); // removal while enumerating is allowed for Dictionary since .NET Core 3.0
                n++;
            }
        }
        return n;
    }

    /// <summary>Gives every connection's cumulation buffers back to the pool and forgets all state (the helper stops).</summary>
    public void Dispose()
    {
        foreach (var state in _connections.Values)
        {
            state.Release();
        }
        _connections.Clear();
        GC.SuppressFinalize(this);
    }

    /// <summary>A segment with payload, held bytes already merged in: replay, parse new lines, or pass.</summary>
    private void HandleData(in AlgConnection connection, AlgDirection direction, Span<byte> buffer, ref int length, ref FrameLayout segment,
        ushort reservedPort, AlgActions actions, ConnectionState state, Way way)
    {
        uint seq = segment.Seq(buffer);
        if (state.Edits.TryReplay(direction, buffer, ref length, ref segment))
        {
            actions.Rewrites++;
        }
        else if (way.Lines.IsNext(seq))
        {
            int from = 0;
            if (!way.Lines.AtLineStart)
            {
                // The rest of a line already forwarded: only where the next line starts matters.
                int newline = segment.Payload(buffer).IndexOf((byte)'\n');
                from = newline < 0 ? segment.PayloadLength : newline + 1;
            }
            HandleLines(connection, direction, buffer, ref length, ref segment, from, reservedPort, actions, state, way);
            return;
        }
        else if (way.Lines.IsAhead(seq) && LooksInteresting(direction, segment.Payload(buffer)[..Math.Min(segment.PayloadLength, MaxLineLength)]))
        {
            actions.Refused++; // out of order: where its lines start is unknown
        }
        else if (!way.Lines.IsAhead(seq))
        {
            // A retransmission that holds only part of the last rewritten line must not deliver its original bytes.
            state.Edits.CutPartialUnit(direction, buffer, ref length, ref segment);
        }
        way.Lines.Advance(seq, segment.PayloadLength, segment.PayloadLength > 0 && buffer[segment.PayloadOffset + segment.PayloadLength - 1] == (byte)'\n');
    }

    /// <summary>
    /// Offers each complete line of the new data from payload offset <paramref name="from"/> (a line
    /// start) to <see cref="Decide"/>, rewriting in place; a trailing partial line that may need
    /// rewriting is held, any other passes.
    /// </summary>
    private void HandleLines(in AlgConnection connection, AlgDirection direction, Span<byte> buffer, ref int length, ref FrameLayout segment,
        int from, ushort reservedPort, AlgActions actions, ConnectionState state, Way way)
    {
        uint seq = segment.Seq(buffer);
        int originalLength = segment.PayloadLength;
        if (_original.Length < originalLength)
        {
            _original = new byte[Math.Max(originalLength, 2 * _original.Length)];
        }
        segment.Payload(buffer).CopyTo(_original);
        bool fin = (segment.Flags(buffer) & Packets.Tcp.Fin) != 0;
        int pos = from;
        int grown = 0; // bytes the rewrites so far added to the payload
        int held = 0;
        bool edited = false;
        bool atLineStart = from == 0 || buffer[segment.PayloadOffset + from - 1] == (byte)'\n';
        while (pos < segment.PayloadLength)
        {
            ReadOnlySpan<byte> rest = segment.Payload(buffer)[pos..];
            ReadOnlySpan<byte> window = rest[..Math.Min(rest.Length, MaxLineLength)];
            int newline = window.IndexOf((byte)'\n');
            if (newline < 0)
            {
                if (rest.Length < MaxLineLength && !fin && MayNeedRewrite(direction, state.Opener, rest)
                    && way.Hold.HoldTail(buffer, ref length, ref segment, pos, seq + (uint)(pos - grown), MaxLineLength - 1))
                {
                    held = rest.Length;
                    break;
                }
                // Overlong, cut by a FIN, or never address-bearing: passes as it is.
                if (LooksInteresting(direction, window))
                {
                    actions.Refused++;
                }
                atLineStart = false;
                break;
            }
            int textLength = newline > 0 && window[newline - 1] == (byte)'\r' ? newline - 1 : newline;
            LineDecision d = Decide(connection, direction, state.Opener, window[..textLength], reservedPort, _scratch);
            pos += newline + 1;
            switch (d.Verdict)
            {
                case LineVerdict.Refuse:
                    actions.Refused++;
                    break;
                case LineVerdict.Expect:
                    actions.Expectations.Add(d.Expectation);
                    reservedPort = d.Expectation.UsesReservedPort ? (ushort)0 : reservedPort;
                    break;
                case LineVerdict.RewriteAndExpect:
                    int lineStart = pos - newline - 1;
                    int delta = d.ReplacementLength - d.EditLength;
                    if (d.EditOffset < 0 || d.EditLength < 0 || d.EditOffset + d.EditLength > textLength
                        || (uint)d.ReplacementLength > (uint)_scratch.Length
                        || (delta != 0 && !state.Edits.Way(direction).CanRecord(seq))
                        || !TcpRewriter.Splice(buffer, ref length, ref segment, lineStart + d.EditOffset, d.EditLength, _scratch.AsSpan(0, d.ReplacementLength)))
                    {
                        actions.Refused++;
                        break;
                    }
                    state.Edits.Way(direction).Record(seq, delta);
                    pos += delta;
                    grown += delta;
                    edited = true;
                    actions.Rewrites++;
                    actions.Expectations.Add(d.Expectation);
                    // One external port is reserved per frame: a second address line of the frame is refused.
                    reservedPort = d.Expectation.UsesReservedPort ? (ushort)0 : reservedPort;
                    break;
                default:
                    break;
            }
        }
        int forwarded = originalLength - held; // original bytes that went out in this segment
        if (edited)
        {
            state.Edits.Remember(direction, seq, _original.AsSpan(0, forwarded), segment.Payload(buffer));
        }
        if (held > 0)
        {
            way.Lines.HoldFrom(seq + (uint)forwarded);
        }
        else
        {
            way.Lines.Advance(seq, forwarded, atLineStart);
        }
    }

    /// <summary>Where lines start in one direction: after the SYN, and after each line feed of in-order data.</summary>
    private struct LineTracker
    {
        private bool _synced;
        private uint _next;

        /// <summary>True when the next new byte starts a line.</summary>
        public bool AtLineStart { get; private set; }

        public void Start(uint next)
        {
            _synced = true;
            _next = next;
            AtLineStart = true;
        }

        /// <summary>
        /// New in-order data: the next segment in order (or the first segment seen, when the
        /// handshake was missed, taken as a line start). A retransmission is never parsed again (only
        /// the last edit is replayed), so its bytes stay what the peer may already have; a segment
        /// ahead of a gap has no known line start.
        /// </summary>
        public bool IsNext(uint seq)
        {
            if (!_synced)
            {
                Start(seq);
            }
            return seq == _next;
        }

        /// <summary>True for a segment that starts beyond the next expected byte (an earlier one is missing).</summary>
        public readonly bool IsAhead(uint seq) => _synced && SeqMath.After(seq, _next);

        /// <summary>The bytes from <paramref name="heldSeq"/> on are held: the next new data starts there, at a line start.</summary>
        public void HoldFrom(uint heldSeq)
        {
            _synced = true;
            _next = heldSeq;
            AtLineStart = true;
        }

        public void Advance(uint seq, int payloadLength, bool endsLine)
        {
            uint end = seq + (uint)payloadLength;
            if (!_synced || SeqMath.After(end, _next))
            {
                _synced = true;
                _next = end;
                AtLineStart = endsLine;
            }
        }
    }

    /// <summary>One direction of a connection: its line starts and its held partial line.</summary>
    private sealed class Way
    {
        public LineTracker Lines;
        public readonly TcpStreamHold Hold = new();
    }

    private sealed class ConnectionState
    {
        public readonly TcpStreamEdits Edits = new();
        public readonly Way In2Out = new();
        public readonly Way Out2In = new();
        public long LastSeenMs;
        public ConnectionOpener Opener;

        public Way Way(AlgDirection direction) => direction == AlgDirection.In2Out ? In2Out : Out2In;

        public void Release()
        {
            In2Out.Hold.Release();
            Out2In.Hold.Release();
        }
    }
}
