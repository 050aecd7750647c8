using System.Buffers.Binary;
using Natd.Dataplane.Packets;
using Natd.Dataplane.Sessions;

namespace Natd.Dataplane.Alg.Pptp;

/// <summary>
/// The PPTP ALG (RFC 2637): follows the TCP control connection (port 1723) of each inside client
/// and masquerades its Call IDs, so that several inside clients can call the same server at once
/// and the server's GRE (which carries only a Call ID) reaches the right one.
/// <list type="bullet">
/// <item>in2out Outgoing-Call-Request: the client's Call ID is replaced with an external Call ID,
/// unique per (external address, server) among live calls (the client's own when free);</item>
/// <item>out2in Outgoing-Call-Reply: the Peer's Call ID (the external one) is put back to the
/// client's, the server's Call ID is recorded and, when the result is Connected, the call is
/// announced in <see cref="AlgActions.GreCalls"/> for the GRE translator of shard 0;</item>
/// <item>Call-Clear-Request, Call-Disconnect-Notify, WAN-Error-Notify, Set-Link-Info and
/// Incoming-Call-Connected are rewritten the same way; Call-Disconnect-Notify removes the call;</item>
/// <item>server-initiated calls are followed from the client's Incoming-Call-Reply (Call ID
/// replaced as for an outgoing call) and Incoming-Call-Connected (Peer's Call ID put back).</item>
/// </list>
/// Messages may share a segment or span several: each direction's stream position is tracked by
/// TCP sequence number; a retransmitted segment gets the rewrites its first copy got. A segment that
/// ends inside a message's first 20 bytes (where the Call IDs sit) is forwarded without them; they
/// wait in the direction's cumulation buffer (<see cref="TcpStreamHold"/>) and go out with the rest,
/// rewritten (docs/architecture.md, "ALG control streams"). A message whose fields to rewrite were
/// already sent in an earlier segment (a FIN cut it, or the sender kept re-sending only its held
/// bytes), a malformed header (length,
/// message type, magic cookie) or a message natd cannot follow is counted in
/// <see cref="AlgActions.Refused"/> and passes unchanged; after a bad header the rest of the
/// segment is skipped and parsing resumes at the next segment's start. Never throws on input.
/// Rewrites keep every length, so only the TCP checksum changes (RFC 1624 incremental update).
/// Single threaded: runs on the PPTP helper actor.
/// </summary>
public sealed class PptpHandler : IAlgHandler
{
    /// <summary>Control message types (RFC 2637 section 2).</summary>
    public static class MessageType
    {
        /// <summary>Start-Control-Connection-Request.</summary>
        public const ushort StartControlConnectionRequest = 1;
        /// <summary>Outgoing-Call-Request (PNS to PAC).</summary>
        public const ushort OutgoingCallRequest = 7;
        /// <summary>Outgoing-Call-Reply (PAC to PNS).</summary>
        public const ushort OutgoingCallReply = 8;
        /// <summary>Incoming-Call-Request (PAC to PNS).</summary>
        public const ushort IncomingCallRequest = 9;
        /// <summary>Incoming-Call-Reply (PNS to PAC).</summary>
        public const ushort IncomingCallReply = 10;
        /// <summary>Incoming-Call-Connected (PAC to PNS).</summary>
        public const ushort IncomingCallConnected = 11;
        /// <summary>Call-Clear-Request (PNS to PAC).</summary>
        public const ushort CallClearRequest = 12;
        /// <summary>Call-Disconnect-Notify (PAC to PNS).</summary>
        public const ushort CallDisconnectNotify = 13;
        /// <summary>WAN-Error-Notify (PAC to PNS).</summary>
        public const ushort WanErrorNotify = 14;
        /// <summary>Set-Link-Info (PNS to PAC, some PACs send it too).</summary>
        public const ushort SetLinkInfo = 15;
    }

    /// <summary>The magic cookie every control message carries (RFC 2637 section 1.4).</summary>
    public const uint MagicCookie = 0x1A2B3C4D;

    /// <summary>Calls one control connection may hold; more Outgoing-Call-Requests are refused (bounded state).</summary>
    public const int MaxCallsPerConnection = 64;

    /// <summary>Longest control message accepted; RFC 2637's longest is 220 bytes (Incoming-Call-Request).</summary>
    public const int MaxMessageLength = 1024;

    /// <summary>Bytes of a message looked at: the 12-byte header, both Call ID fields and the result code.</summary>
    private const int HeaderBytes = 20;

    /// <summary>Offsets inside a message (RFC 2637 section 2).</summary>
    private const int OffCallId = 12, OffPeerCallId = 14, OffResult = 16;

    /// <summary>Result code "Connected" of Outgoing-Call-Reply and "Connect" of Incoming-Call-Reply.</summary>
    private const byte ResultConnected = 1;

    private readonly Dictionary<AlgConnection, Control> _connections = [];
    private readonly Dictionary<ExternalCallKey, Control> _externalIds = [];
    private readonly List<GreCall> _removed = [];
    private ushort _nextCallId;

    /// <summary>Creates the handler.</summary>
    /// <param name="seed">Where the search for a free external Call ID starts when the client's own is taken; null draws one at random.</param>
    public PptpHandler(int? seed = null)
    {
        _nextCallId = (ushort)(seed ?? Random.Shared.Next(1, 65536));
    }

    /// <inheritdoc />
    public AlgKind Kind => AlgKind.Pptp;

    /// <summary>Control connections followed.</summary>
    public int Connections => _connections.Count;

    /// <summary>Calls followed (set up or being set up) on all connections.</summary>
    public int Calls => _externalIds.Count;

    /// <inheritdoc />
    public int Handle(in AlgConnection connection, AlgDirection direction, Span<byte> buffer, int length, ushort reservedPort, AlgActions actions, long nowMs)
    {
        TakeRemovedCalls(actions);
        if ((uint)length > (uint)buffer.Length || !FrameLayout.TryParseTcp(buffer[..length], out FrameLayout layout))
        {
            actions.Refused++;
            return length;
        }
        if (!_connections.TryGetValue(connection, out Control? control))
        {
            control = new Control(connection);
            _connections[connection] = control;
        }
        control.LastMs = nowMs;
        Stream stream = direction == AlgDirection.In2Out ? control.In2Out : control.Out2In;
        byte flags = layout.Flags(buffer);
        if ((flags & Tcp.Rst) != 0)
        {
            // The connection is over: held bytes will never be delivered; the RST must land where the receiver is.
            stream.Hold.OnReset(buffer, layout);
            control.ReleaseHolds();
            return length;
        }
        uint seq = layout.Seq(buffer);
        bool gaveUp = false;
        if ((flags & Tcp.Syn) != 0)
        {
            seq++; // the SYN takes one sequence number before any data
            stream.Restart(seq);
        }
        else
        {
            gaveUp = stream.Hold.Merge(buffer, ref length, ref layout) == HoldMerge.GaveUp;
            if (gaveUp)
            {
                actions.Refused++; // the held header went out unchanged: its Call IDs cannot be rewritten any more
            }
            seq = layout.Seq(buffer); // merged or given up: the frame now starts at the held bytes
        }
        if (layout.PayloadLength > 0)
        {
            var segment = new Segment(buffer.Slice(layout.L4Offset, layout.TotalLength - layout.IpHeaderLength), layout.L4HeaderLength, layout.PayloadLength, seq);
            int partial = Follow(control, stream, direction, ref segment, actions);
            if (partial > 0 && !gaveUp && (flags & (Tcp.Fin | Tcp.Syn)) == 0)
            {
                // The segment ends inside a message's first bytes, where its Call IDs sit: hold them until the rest comes.
                uint at = seq + (uint)(layout.PayloadLength - partial);
                if (stream.Hold.HoldTail(buffer, ref length, ref layout, layout.PayloadLength - partial, at, HeaderBytes))
                {
                    stream.Restart(at);
                }
            }
        }
        if ((layout.Flags(buffer) & Tcp.Fin) != 0)
        {
            stream.Hold.Release(); // this direction's stream ended
        }
        return length;
    }

    /// <summary>Bytes held for <paramref name="connection"/> in <paramref name="direction"/> (tests).</summary>
    public int HeldBytes(in AlgConnection connection, AlgDirection direction)
        => _connections.TryGetValue(connection, out Control? c) ? (direction == AlgDirection.In2Out ? c.In2Out : c.Out2In).Hold.Length : 0;

    /// <summary>Cumulation buffers currently taken from <see cref="AlgBuffers.Allocator"/>, over all connections (tests).</summary>
    public int BuffersTaken
    {
        get
        {
            int n = 0;
            foreach (Control c in _connections.Values)
            {
                n += (c.In2Out.Hold.HasBuffer ? 1 : 0) + (c.Out2In.Hold.HasBuffer ? 1 : 0);
            }
            return n;
        }
    }

    /// <summary>Gives every connection's cumulation buffers back to the pool and forgets all state (the helper stops).</summary>
    public void Dispose()
    {
        foreach (Control c in _connections.Values)
        {
            c.ReleaseHolds();
        }
        _connections.Clear();
        _externalIds.Clear();
    }

    /// <inheritdoc />
    /// <remarks>The calls' removals cannot go in an <see cref="AlgActions"/> here: they are queued and
    /// delivered with the next frame handled, or by <see cref="TakeRemovedCalls"/>.</remarks>
    public void Forget(in AlgConnection connection)
    {
        if (_connections.Remove(connection, out Control? control))
        {
            Release(control);
            control.ReleaseHolds();
        }
    }

    /// <inheritdoc />
    public int Expire(long nowMs, long idleMs)
    {
        List<AlgConnection>? idle = null;
        foreach (var kv in _connections)
        {
            if (nowMs - kv.Value.LastMs > idleMs)
            {
                (idle ??= []).Add(kv.Key);
            }
        }
        if (idle is null)
        {
            return 0;
        }
        foreach (var c in idle)
        {
            Forget(c);
        }
        return idle.Count;
    }

    /// <summary>
    /// Moves the removals of calls whose connection was forgotten or expired (<see cref="Forget"/>,
    /// <see cref="Expire"/>) into <paramref name="actions"/>; <see cref="Handle"/> does it first thing too.
    /// </summary>
    /// <returns>How many were moved.</returns>
    public int TakeRemovedCalls(AlgActions actions)
    {
        int n = _removed.Count;
        if (n > 0)
        {
            actions.GreCalls.AddRange(_removed);
            _removed.Clear();
        }
        return n;
    }

    private void Release(Control control)
    {
        foreach (Call call in control.Calls)
        {
            _externalIds.Remove(new ExternalCallKey(control.Connection.ExternalAddress, control.Connection.RemoteAddress, call.ExternalId));
            if (call.Established)
            {
                _removed.Add(ToGreCall(control, call, add: false));
            }
        }
        control.Calls.Clear();
    }

    /// <summary>Walks the new bytes of a segment through the direction's message parser.</summary>
    /// <returns>Bytes at the segment's end that begin a message whose first <see cref="HeaderBytes"/> (its Call IDs) are not all in yet, when that message began in this segment; else 0.</returns>
    private int Follow(Control control, Stream stream, AlgDirection direction, ref Segment segment, AlgActions actions)
    {
        if (!stream.Synced)
        {
            // Joined mid-connection (the helper restarted): assume a message starts here.
            stream.Restart(segment.Seq);
        }
        int ahead = (int)(segment.Seq - stream.Next);
        if (ahead > 0)
        {
            // Bytes before this segment never came by: the message boundary is lost; resynchronise here.
            actions.Refused++;
            stream.Restart(segment.Seq);
            ahead = 0;
        }
        int seen = ahead < 0 ? (int)Math.Min(-(long)ahead, segment.Length) : 0;
        if (seen > 0)
        {
            // A retransmission: give the old bytes the rewrites their first copy got.
            stream.Replay(ref segment, seen, actions);
            if (seen == segment.Length)
            {
                return 0;
            }
        }
        Span<byte> payload = segment.Payload;
        int pos = seen;
        int partial = 0;
        while (pos < payload.Length)
        {
            if (stream.Skip > 0)
            {
                int skip = Math.Min(stream.Skip, payload.Length - pos);
                stream.Skip -= skip;
                pos += skip;
                continue;
            }
            int want = stream.Have < 12 ? 12 : stream.Want;
            int messageStart = pos - stream.Have;
            int n = Math.Min(want - stream.Have, payload.Length - pos);
            payload.Slice(pos, n).CopyTo(stream.Header.AsSpan(stream.Have));
            stream.Have += n;
            pos += n;
            if (stream.Have < want)
            {
                partial = messageStart >= 0 ? payload.Length - messageStart : 0;
                break; // the rest of the header comes in the next segment
            }
            if (want == 12)
            {
                ReadOnlySpan<byte> h = stream.Header;
                int msgLength = BinaryPrimitives.ReadUInt16BigEndian(h);
                if (msgLength < 16 || msgLength > MaxMessageLength || BinaryPrimitives.ReadUInt32BigEndian(h[4..]) != MagicCookie)
                {
                    // Not a message boundary: skip the rest of this segment and resume at the next one's start.
                    actions.Refused++;
                    stream.Have = 0;
                    stream.Skip = 0;
                    break;
                }
                stream.Length = msgLength;
                stream.Want = Math.Min(msgLength, HeaderBytes);
                continue;
            }
            // The first Want bytes of the message are in: act on it, then skip its body.
            int start = pos - stream.Want;
            OnMessage(control, stream, direction, ref segment, start, actions);
            stream.Skip = stream.Length - stream.Want;
            stream.Have = 0;
        }
        stream.Next = segment.Seq + (uint)segment.Length;
        return partial;
    }

    /// <summary>Handles one control message whose first bytes are in <c>stream.Header</c>; <paramref name="start"/> is where it begins in the segment's payload (negative: in an earlier segment).</summary>
    private void OnMessage(Control control, Stream stream, AlgDirection direction, ref Segment segment, int start, AlgActions actions)
    {
        ReadOnlySpan<byte> h = stream.Header;
        ushort pptpType = BinaryPrimitives.ReadUInt16BigEndian(h[2..]);
        ushort type = BinaryPrimitives.ReadUInt16BigEndian(h[8..]);
        if (pptpType != 1 || type == 0 || type > MessageType.SetLinkInfo)
        {
            actions.Refused++; // management messages and unknown control types are not followed
            return;
        }
        int length = stream.Length;
        ushort callId = BinaryPrimitives.ReadUInt16BigEndian(h[OffCallId..]);
        ushort peerCallId = BinaryPrimitives.ReadUInt16BigEndian(h[OffPeerCallId..]);
        bool in2out = direction == AlgDirection.In2Out;
        switch (type)
        {
            case MessageType.OutgoingCallRequest when in2out:
                if (length < 168)
                {
                    actions.Refused++;
                    return;
                }
                NewCall(control, stream, ref segment, start, callId, serverCallId: 0, established: false, actions);
                return;
            case MessageType.OutgoingCallReply when !in2out:
            {
                Call? call = length < 32 ? null : control.FindByExternal(peerCallId);
                if (call is null || !Write(stream, ref segment, start + OffPeerCallId, call.ClientId, actions))
                {
                    actions.Refused++;
                    return;
                }
                if (call.Established)
                {
                    actions.GreCalls.Add(ToGreCall(control, call, add: false));
                    call.Established = false;
                }
                if (h[OffResult] != ResultConnected)
                {
                    RemoveCall(control, call, actions); // the server refused the call: no GRE will flow
                    return;
                }
                call.ServerId = callId;
                call.Established = true;
                actions.GreCalls.Add(ToGreCall(control, call, add: true));
                return;
            }
            case MessageType.IncomingCallRequest when !in2out:
                return; // carries only the server's Call ID; the client's reply sets the call up
            case MessageType.IncomingCallReply when in2out:
                if (length < 24)
                {
                    actions.Refused++;
                    return;
                }
                if (h[OffResult] == ResultConnected)
                {
                    NewCall(control, stream, ref segment, start, callId, serverCallId: peerCallId, established: true, actions);
                }
                else
                {
                    Rewrite(stream, ref segment, start + OffCallId, control.FindByClient(callId), toExternal: true, actions);
                }
                return;
            case MessageType.IncomingCallConnected when !in2out:
                if (length < 28)
                {
                    actions.Refused++;
                    return;
                }
                Rewrite(stream, ref segment, start + OffCallId, control.FindByExternal(callId), toExternal: false, actions);
                return;
            case MessageType.CallClearRequest when in2out:
                Rewrite(stream, ref segment, start + OffCallId, control.FindByClient(callId), toExternal: true, actions);
                return;
            case MessageType.CallDisconnectNotify:
            {
                if (length < 148)
                {
                    actions.Refused++;
                    return;
                }
                if (in2out)
                {
                    // Sent by a PAC: the Call ID is the sender's own, the client's.
                    Call? mine = control.FindByClient(callId);
                    if (Rewrite(stream, ref segment, start + OffCallId, mine, toExternal: true, actions))
                    {
                        RemoveCall(control, mine!, actions);
                    }
                    return;
                }
                // From the server: its own Call ID (RFC 2637 2.13), nothing to rewrite.
                Call? theirs = control.FindByServer(callId);
                if (theirs is not null)
                {
                    RemoveCall(control, theirs, actions);
                }
                return;
            }
            case MessageType.WanErrorNotify when !in2out:
                if (length < 40)
                {
                    actions.Refused++;
                    return;
                }
                Rewrite(stream, ref segment, start + OffCallId, control.FindByExternal(callId), toExternal: false, actions);
                return;
            case MessageType.SetLinkInfo when !in2out:
            {
                // From the client the Peer's Call ID is the server's; from the server it is ours (the external one).
                Call? call = length < 24 ? null : control.FindByExternal(callId);
                if (call is not null)
                {
                    Rewrite(stream, ref segment, start + OffCallId, call, toExternal: false, actions);
                }
                return;
            }
            case MessageType.OutgoingCallRequest:
            case MessageType.OutgoingCallReply:
            case MessageType.IncomingCallRequest:
            case MessageType.IncomingCallReply:
            case MessageType.IncomingCallConnected:
            case MessageType.CallClearRequest:
                // The wrong way round: a PAC inside or a PNS outside is not supported.
                actions.Refused++;
                return;
            default:
                return; // control connection management, echo, and messages with nothing to rewrite
        }
    }

    /// <summary>Sets up a call from the client's Call ID: allocates the external Call ID and writes it in place of the client's.</summary>
    private void NewCall(Control control, Stream stream, ref Segment segment, int start, ushort clientId, ushort serverCallId, bool established, AlgActions actions)
    {
        Call? call = control.FindByClient(clientId);
        if (call is not null && (call.Established || established))
        {
            // The client reuses a Call ID: the old call is over even if its clearing went unseen.
            RemoveCall(control, call, actions);
            call = null;
        }
        bool fresh = call is null;
        if (call is null)
        {
            if (control.Calls.Count >= MaxCallsPerConnection || !TryAllocate(control, clientId, out ushort external))
            {
                actions.Refused++;
                return;
            }
            call = new Call { ClientId = clientId, ExternalId = external };
        }
        if (!Write(stream, ref segment, start + OffCallId, call.ExternalId, actions))
        {
            actions.Refused++;
            if (fresh)
            {
                return; // nothing registered yet
            }
            RemoveCall(control, call, actions);
            return;
        }
        if (fresh)
        {
            control.Calls.Add(call);
            _externalIds[new ExternalCallKey(control.Connection.ExternalAddress, control.Connection.RemoteAddress, call.ExternalId)] = control;
        }
        if (established)
        {
            call.ServerId = serverCallId;
            call.Established = true;
            actions.GreCalls.Add(ToGreCall(control, call, add: true));
        }
    }

    /// <summary>Rewrites a Call ID field of a known call to the external (in2out) or the client's (out2in) Call ID; refuses when the call is unknown.</summary>
    private static bool Rewrite(Stream stream, ref Segment segment, int at, Call? call, bool toExternal, AlgActions actions)
    {
        if (call is null || !Write(stream, ref segment, at, toExternal ? call.ExternalId : call.ClientId, actions))
        {
            actions.Refused++;
            return false;
        }
        return true;
    }

    /// <summary>
    /// Writes a 16-bit field at payload index <paramref name="at"/>, fixing the TCP checksum
    /// (RFC 1624) and remembering the rewrite for retransmissions. False when the field was in an
    /// earlier segment (already sent).
    /// </summary>
    private static bool Write(Stream stream, ref Segment segment, int at, ushort value, AlgActions actions)
    {
        if (at < 0 || at + 2 > segment.Length)
        {
            return false;
        }
        segment.Put(at, value);
        stream.Remember(segment.Seq + (uint)at, value);
        actions.Rewrites++;
        return true;
    }

    /// <summary>A free external Call ID for this connection's (external address, server): the client's own when free, else the next free one.</summary>
    private bool TryAllocate(Control control, ushort preferred, out ushort external)
    {
        uint ext = control.Connection.ExternalAddress, remote = control.Connection.RemoteAddress;
        if (preferred != 0 && !_externalIds.ContainsKey(new ExternalCallKey(ext, remote, preferred)))
        {
            external = preferred;
            return true;
        }
        for (int i = 0; i < 65536; i++)
        {
            ushort candidate = _nextCallId++;
            if (candidate != 0 && !_externalIds.ContainsKey(new ExternalCallKey(ext, remote, candidate)))
            {
                external = candidate;
                return true;
            }
        }
        external = 0;
        return false;
    }

    private void RemoveCall(Control control, Call call, AlgActions actions)
    {
        control.Calls.Remove(call);
        _externalIds.Remove(new ExternalCallKey(control.Connection.ExternalAddress, control.Connection.RemoteAddress, call.ExternalId));
        if (call.Established)
        {
            actions.GreCalls.Add(ToGreCall(control, call, add: false));
            call.Established = false;
        }
    }

    private static GreCall ToGreCall(Control control, Call call, bool add)
        => new(add, control.Connection.InsideAddress, call.ClientId, control.Connection.RemoteAddress, call.ServerId,
            control.Connection.ExternalAddress, call.ExternalId);

    /// <summary>An external Call ID in use: unique per (external address, server).</summary>
    private readonly record struct ExternalCallKey(uint ExternalAddress, uint RemoteAddress, ushort CallId);

    /// <summary>One call of a control connection.</summary>
    private sealed class Call
    {
        public ushort ClientId;
        public ushort ExternalId;
        public ushort ServerId;
        public bool Established;
    }

    /// <summary>One control connection: its two streams and its calls.</summary>
    private sealed class Control(AlgConnection connection)
    {
        public readonly AlgConnection Connection = connection;
        public readonly Stream In2Out = new();
        public readonly Stream Out2In = new();
        public readonly List<Call> Calls = [];
        public long LastMs;

        public void ReleaseHolds()
        {
            In2Out.Hold.Release();
            Out2In.Hold.Release();
        }

        public Call? FindByClient(ushort id)
        {
            foreach (Call c in Calls)
            {
                if (c.ClientId == id)
                {
                    return c;
                }
            }
            return null;
        }

        public Call? FindByExternal(ushort id)
        {
            foreach (Call c in Calls)
            {
                if (c.ExternalId == id)
                {
                    return c;
                }
            }
            return null;
        }

        public Call? FindByServer(ushort id)
        {
            foreach (Call c in Calls)
            {
                if (c.Established && c.ServerId == id)
                {
                    return c;
                }
            }
            return null;
        }
    }

    /// <summary>Parser state of one direction of a control connection.</summary>
    private sealed class Stream
    {
        private const int Remembered = 16;

        /// <summary>The first bytes of a message natd took off the wire until the rest comes (docs/architecture.md, "ALG control streams").</summary>
        public readonly TcpStreamHold Hold = new();
        /// <summary>Whether <see cref="Next"/> is known.</summary>
        public bool Synced;
        /// <summary>Sequence number of the next new byte.</summary>
        public uint Next;
        /// <summary>The first bytes of the message being read.</summary>
        public readonly byte[] Header = new byte[HeaderBytes];
        /// <summary>Bytes of <see cref="Header"/> filled.</summary>
        public int Have;
        /// <summary>Bytes of the header wanted once the length is known.</summary>
        public int Want;
        /// <summary>The current message's length.</summary>
        public int Length;
        /// <summary>Body bytes of the current message still to pass.</summary>
        public int Skip;

        private readonly uint[] _rewriteSeq = new uint[Remembered];
        private readonly ushort[] _rewriteValue = new ushort[Remembered];
        private int _rewrites;

        public void Restart(uint seq)
        {
            Synced = true;
            Next = seq;
            Have = 0;
            Skip = 0;
        }

        public void Remember(uint seq, ushort value)
        {
            int slot = _rewrites % Remembered;
            _rewriteSeq[slot] = seq;
            _rewriteValue[slot] = value;
            _rewrites++;
        }

        /// <summary>Re-applies remembered rewrites that fall within the first <paramref name="seen"/> bytes of a retransmitted segment.</summary>
        public void Replay(ref Segment segment, int seen, AlgActions actions)
        {
            int n = Math.Min(_rewrites, Remembered);
            for (int i = 0; i < n; i++)
            {
                int at = (int)(_rewriteSeq[i] - segment.Seq);
                if (at >= 0 && at + 2 <= seen)
                {
                    segment.Put(at, _rewriteValue[i]);
                    actions.Rewrites++;
                }
            }
        }
    }

    /// <summary>A TCP segment being handled: its header and payload, and the payload's first sequence number.</summary>
    private readonly ref struct Segment(Span<byte> tcp, int payloadOffset, int length, uint seq)
    {
        private readonly Span<byte> _tcp = tcp;
        private readonly int _payloadOffset = payloadOffset;

        public int Length { get; } = length;

        public uint Seq { get; } = seq;

        public Span<byte> Payload => _tcp.Slice(_payloadOffset, Length);

        /// <summary>Writes a big-endian 16-bit field at payload index <paramref name="at"/> and updates the TCP checksum incrementally.</summary>
        public void Put(int at, ushort value) => Checksum.WriteField16(_tcp, _payloadOffset + at, value, Tcp.ChecksumOffset);
    }
}
