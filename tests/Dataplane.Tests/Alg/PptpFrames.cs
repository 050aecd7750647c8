using System.Buffers.Binary;
using Natd.Dataplane.Alg;
using Natd.Dataplane.Alg.Pptp;
using Natd.Dataplane.Packets;
using Natd.Tests.Support;

namespace Natd.Tests.Alg;

/// <summary>PPTP control messages (RFC 2637 section 2) and enhanced GRE packets (section 4.1), built independently of the dataplane.</summary>
public static class PptpFrames
{
    public static byte[] Message(ushort type, int length, ushort callId = 0, ushort peerCallId = 0, byte result = 0)
    {
        var b = new byte[length];
        BinaryPrimitives.WriteUInt16BigEndian(b, (ushort)length);
        BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(2), 1); // control message
        BinaryPrimitives.WriteUInt32BigEndian(b.AsSpan(4), 0x1A2B3C4D);
        BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(8), type);
        if (length >= 16)
        {
            BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(12), callId);
            BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(14), peerCallId);
        }
        if (length > 16)
        {
            b[16] = result;
        }
        return b;
    }

    public static byte[] StartControlConnectionRequest() => Message(1, 156, callId: 0x0100);
    public static byte[] OutgoingCallRequest(ushort callId, ushort serial = 7) => Message(7, 168, callId, serial);
    public static byte[] OutgoingCallReply(ushort callId, ushort peerCallId, byte result = 1) => Message(8, 32, callId, peerCallId, result);
    public static byte[] IncomingCallReply(ushort callId, ushort peerCallId, byte result = 1) => Message(10, 24, callId, peerCallId, result);
    public static byte[] IncomingCallConnected(ushort peerCallId) => Message(11, 28, peerCallId);
    public static byte[] CallClearRequest(ushort callId) => Message(12, 16, callId);
    public static byte[] CallDisconnectNotify(ushort callId) => Message(13, 148, callId);
    public static byte[] WanErrorNotify(ushort peerCallId) => Message(14, 40, peerCallId);
    public static byte[] SetLinkInfo(ushort peerCallId) => Message(15, 24, peerCallId);

    public static ushort CallIdAt(byte[] frame, int payloadIndex) => BinaryPrimitives.ReadUInt16BigEndian(frame.AsSpan(Frames.L4Offset(frame) + 20 + payloadIndex));

    /// <summary>An enhanced GRE (version 1) packet carrying PPP (RFC 2637 section 4.1).</summary>
    public static byte[] Gre(string src, string dst, ushort callId, int payloadLength = 12, uint? seq = 1, uint? ack = null)
    {
        int header = 8 + (seq.HasValue ? 4 : 0) + (ack.HasValue ? 4 : 0);
        var g = new byte[header + payloadLength];
        g[0] = (byte)(0x20 | (seq.HasValue ? 0x10 : 0));
        g[1] = (byte)(0x01 | (ack.HasValue ? 0x80 : 0));
        BinaryPrimitives.WriteUInt16BigEndian(g.AsSpan(2), 0x880B);
        BinaryPrimitives.WriteUInt16BigEndian(g.AsSpan(4), (ushort)payloadLength);
        BinaryPrimitives.WriteUInt16BigEndian(g.AsSpan(6), callId);
        int o = 8;
        if (seq.HasValue)
        {
            BinaryPrimitives.WriteUInt32BigEndian(g.AsSpan(o), seq.Value);
            o += 4;
        }
        if (ack.HasValue)
        {
            BinaryPrimitives.WriteUInt32BigEndian(g.AsSpan(o), ack.Value);
            o += 4;
        }
        for (int i = o; i < g.Length; i++)
        {
            g[i] = (byte)(0xC0 + i);
        }
        return Frames.Wrap(src, dst, 47, g, 64, null, null);
    }

    public static ushort GreCallId(byte[] frame) => BinaryPrimitives.ReadUInt16BigEndian(frame.AsSpan(Frames.L4Offset(frame) + 6));
}

/// <summary>
/// One PPTP control connection as the helper sees it: in2out frames already carry the external
/// source, out2in frames the inside destination. Keeps each direction's sequence numbers.
/// </summary>
public sealed class PptpControl
{
    public const string Server = "198.51.100.2";
    public const string External = "198.51.100.1";

    private readonly PptpHandler _handler;
    private uint _clientSeq = 1000, _serverSeq = 50_000;

    public PptpControl(PptpHandler handler, string inside, int insidePort, int externalPort)
    {
        _handler = handler;
        Inside = inside;
        InsidePort = insidePort;
        ExternalPort = externalPort;
        Connection = new AlgConnection(IpProtocol.Tcp, Ipv4.Parse(inside), (ushort)insidePort, Ipv4.Parse(Server), 1723, Ipv4.Parse(External), (ushort)externalPort);
    }

    public string Inside { get; }
    public int InsidePort { get; }
    public int ExternalPort { get; }
    public AlgConnection Connection { get; }
    public AlgActions Actions { get; } = new();
    public long Now { get; set; } = 10_000;

    public uint ClientSeq => _clientSeq;

    public byte[] ClientFrame(byte[] payload, uint? seq = null, byte flags = 0x18)
        => Frames.Tcp(External, ExternalPort, Server, 1723, flags, seq ?? _clientSeq, _serverSeq, payload);

    public byte[] ServerFrame(byte[] payload, uint? seq = null, byte flags = 0x18)
        => Frames.Tcp(Server, 1723, Inside, InsidePort, flags, seq ?? _serverSeq, _clientSeq, payload);

    /// <summary>Sends <paramref name="payload"/> from the client (in2out) at the next sequence number (or <paramref name="seq"/>, a retransmission).</summary>
    public byte[] FromClient(byte[] payload, uint? seq = null)
    {
        byte[] f = ClientFrame(payload, seq);
        if (seq is null)
        {
            _clientSeq += (uint)payload.Length;
        }
        return Run(f, AlgDirection.In2Out);
    }

    public byte[] FromServer(byte[] payload, uint? seq = null)
    {
        byte[] f = ServerFrame(payload, seq);
        if (seq is null)
        {
            _serverSeq += (uint)payload.Length;
        }
        return Run(f, AlgDirection.Out2In);
    }

    public byte[] Run(byte[] frame, AlgDirection direction)
    {
        Actions.Clear();
        var buffer = new byte[frame.Length + 64];
        frame.CopyTo(buffer, 0);
        int len = _handler.Handle(Connection, direction, buffer, frame.Length, 0, Actions, Now);
        return buffer.AsSpan(0, len).ToArray();
    }
}
