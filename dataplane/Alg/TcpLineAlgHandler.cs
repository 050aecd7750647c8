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
/// connection it tracks where lines start in each direction, offers each complete line that starts
/// a new in-order segment to <see cref="Decide"/> (retransmissions are not parsed again), splices rewrites, replays the last rewrite on
/// retransmissions and corrects seq/ack/SACK of every later segment (<see cref="TcpStreamEdits"/>).
/// A line split across segments or longer than <see cref="MaxLineLength"/> is never rewritten;
/// when it looks like a command the ALG acts on (<see cref="LooksInteresting"/>) it is counted in
/// <see cref="AlgActions.Refused"/>.
/// </summary>
public abstract class TcpLineAlgHandler : IAlgHandler
{
    /// <summary>Longest line (terminator included) that is parsed, in bytes; longer ones are refused.</summary>
    public const int MaxLineLength = 512;

    private readonly Dictionary<AlgConnection, ConnectionState> _connections = [];
    private readonly byte[] _scratch = new byte[128];

    /// <inheritdoc />
    public abstract AlgKind Kind { get; }

    /// <summary>Number of connections with state (for tests and metrics).</summary>
    public int ConnectionCount => _connections.Count;

    /// <summary>
    /// Decides about one complete line that starts at a segment start.
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
        ref LineTracker lines = ref state.Lines(direction);
        uint seq = segment.Seq(buffer);
        byte flags = segment.Flags(buffer);
        int payloadLength = segment.PayloadLength;
        if ((flags & Packets.Tcp.Syn) != 0)
        {
            // Data on a SYN (TCP Fast Open) is left alone: no FTP or IRC client sends a command there.
            lines.Start(seq + 1);
            if (state.Opener == ConnectionOpener.Unknown)
            {
                // A SYN comes from the opener, a SYN-ACK from the other side.
                bool fromInside = (direction == AlgDirection.In2Out) == ((flags & Packets.Tcp.Ack) == 0);
                state.Opener = fromInside ? ConnectionOpener.Inside : ConnectionOpener.Outside;
            }
        }
        else if (payloadLength > 0)
        {
            bool endsLine = buffer[segment.PayloadOffset + payloadLength - 1] == (byte)'\n';
            if (state.Edits.TryReplay(direction, buffer, ref length, ref segment))
            {
                actions.Rewrites++;
            }
            else if (lines.IsNewLine(seq))
            {
                HandleLine(connection, direction, buffer, ref length, ref segment, reservedPort, actions, state);
            }
            else if (lines.IsAhead(seq) && LooksInteresting(direction, segment.Payload(buffer)[..Math.Min(payloadLength, MaxLineLength)]))
            {
                actions.Refused++; // out of order: where its lines start is unknown
            }
            lines.Advance(seq, payloadLength, endsLine);
        }
        // A splice already fixed the checksum; the seq/ack correction comes after it.
        if (state.Edits.Adjust(direction, buffer, segment))
        {
            TcpRewriter.FixTcpChecksum(buffer, segment);
        }
        return length;
    }

    /// <inheritdoc />
    public void Forget(in AlgConnection connection) => _connections.Remove(connection);

    /// <inheritdoc />
    public int Expire(long nowMs, long idleMs)
    {
        int n = 0;
        foreach (var (key, state) in _connections)
        {
            if (nowMs - state.LastSeenMs > idleMs)
            {
                _connections.Remove(key); // removal while enumerating is allowed for Dictionary since .NET Core 3.0
                n++;
            }
        }
        return n;
    }

    private void HandleLine(in AlgConnection connection, AlgDirection direction, Span<byte> buffer, ref int length, ref FrameLayout segment,
        ushort reservedPort, AlgActions actions, ConnectionState state)
    {
        Span<byte> payload = segment.Payload(buffer);
        ReadOnlySpan<byte> window = payload[..Math.Min(payload.Length, MaxLineLength)];
        int newline = window.IndexOf((byte)'\n');
        if (newline < 0)
        {
            // Split across segments or overlong: never rewritten; counted when it matters.
            if (LooksInteresting(direction, window))
            {
                actions.Refused++;
            }
            return;
        }
        int textLength = newline > 0 && window[newline - 1] == (byte)'\r' ? newline - 1 : newline;
        LineDecision d = Decide(connection, direction, state.Opener, window[..textLength], reservedPort, _scratch);
        switch (d.Verdict)
        {
            case LineVerdict.Refuse:
                actions.Refused++;
                return;
            case LineVerdict.Expect:
                actions.Expectations.Add(d.Expectation);
                return;
            case LineVerdict.RewriteAndExpect:
                if (d.EditOffset < 0 || d.EditLength < 0 || d.EditOffset + d.EditLength > textLength
                    || (uint)d.ReplacementLength > (uint)_scratch.Length
                    || !state.Edits.TryEdit(direction, buffer, ref length, ref segment, d.EditOffset, d.EditLength,
                        _scratch.AsSpan(0, d.ReplacementLength), newline + 1))
                {
                    actions.Refused++;
                    return;
                }
                actions.Rewrites++;
                actions.Expectations.Add(d.Expectation);
                return;
            default:
                return;
        }
    }

    /// <summary>Where lines start in one direction: after the SYN, and after each segment that ended with a line feed.</summary>
    private struct LineTracker
    {
        private bool _synced;
        private uint _next;
        private bool _atLineStart;

        public void Start(uint next)
        {
            _synced = true;
            _next = next;
            _atLineStart = true;
        }

        /// <summary>
        /// New data that starts a line: the next segment in order after one that ended a line (or
        /// the first segment seen, when the handshake was missed). A retransmission is never
        /// parsed again (only the last edit is replayed), so its bytes stay what the peer may
        /// already have; a segment ahead of a gap has no known line start.
        /// </summary>
        public readonly bool IsNewLine(uint seq) => !_synced || (seq == _next && _atLineStart);

        /// <summary>True for a segment that starts beyond the next expected byte (an earlier one is missing).</summary>
        public readonly bool IsAhead(uint seq) => _synced && SeqMath.After(seq, _next);

        public void Advance(uint seq, int payloadLength, bool endsLine)
        {
            uint end = seq + (uint)payloadLength;
            if (!_synced || SeqMath.After(end, _next))
            {
                _synced = true;
                _next = end;
                _atLineStart = endsLine;
            }
        }
    }

    private sealed class ConnectionState
    {
        public readonly TcpStreamEdits Edits = new();
        public long LastSeenMs;
        public ConnectionOpener Opener;
        private LineTracker _in2Out;
        private LineTracker _out2In;

        public ref LineTracker Lines(AlgDirection direction)
        {
            if (direction == AlgDirection.In2Out)
            {
                return ref _in2Out;
            }
            return ref _out2In;
        }
    }
}
