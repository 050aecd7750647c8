using System.Buffers.Binary;
using Natd.Dataplane.Packets;
using Natd.Dataplane.Sessions;

namespace Natd.Dataplane.Alg.Tftp;

/// <summary>
/// TFTP ALG (RFC 1350; options RFC 2347): the server answers a read or write request from a new
/// port (its transfer ID), which a NAT that filters by remote endpoint would drop. An in2out RRQ or
/// WRQ with a file name and a valid mode (netascii, octet, mail; any case) opens an inbound UDP
/// expectation from the server's address, any port, to the request's own external port. DATA, ACK
/// and ERROR pass silently; anything else in2out is refused (counted). No payload is rewritten.
/// </summary>
public sealed class TftpHandler : IAlgHandler
{
    private const ushort OpRrq = 1;
    private const ushort OpWrq = 2;
    private const ushort OpError = 5;

    private readonly Dictionary<AlgConnection, long> _lastSeen = [];

    /// <inheritdoc />
    public AlgKind Kind => AlgKind.Tftp;

    /// <summary>Number of connections with state (for tests and metrics).</summary>
    public int ConnectionCount => _lastSeen.Count;

    /// <inheritdoc />
    public int Handle(in AlgConnection connection, AlgDirection direction, Span<byte> buffer, int length, ushort reservedPort, AlgActions actions, long nowMs)
    {
        if ((uint)length > (uint)buffer.Length || !FrameLayout.TryParseUdp(buffer[..length], out var datagram))
        {
            return length;
        }
        _lastSeen[connection] = nowMs;
        if (direction != AlgDirection.In2Out)
        {
            return length;
        }
        ReadOnlySpan<byte> payload = datagram.Payload(buffer);
        if (payload.Length < 2)
        {
            actions.Refused++;
            return length;
        }
        ushort op = BinaryPrimitives.ReadUInt16BigEndian(payload);
        if (op is > OpWrq and <= OpError)
        {
            return length; // DATA, ACK, ERROR of a transfer on this port
        }
        if (op is not (OpRrq or OpWrq) || !IsValidRequest(payload[2..]))
        {
            actions.Refused++;
            return length;
        }
        // Every (re)transmitted request refreshes the pinhole: the first may have been lost.
        actions.Expectations.Add(new ExpectationRequest(ExpectationKind.Inbound, IpProtocol.Udp, connection.RemoteAddress, 0,
            connection.ExternalPort, connection.InsideAddress, connection.InsidePort, UsesReservedPort: false));
        return length;
    }

    /// <inheritdoc />
    public void Forget(in AlgConnection connection) => _lastSeen.Remove(connection);

    /// <inheritdoc />
    public void Dispose() => _lastSeen.Clear(); // no buffers: UDP datagrams are handled whole

    /// <inheritdoc />
    public int Expire(long nowMs, long idleMs)
    {
        int n = 0;
        foreach (var (key, seen) in _lastSeen)
        {
            if (nowMs - seen > idleMs)
            {
                _lastSeen.Remove(key);
                n++;
            }
        }
        return n;
    }

    /// <summary>filename NUL mode NUL [option NUL value NUL]...: a non-empty name, a known mode, NUL-terminated strings after.</summary>
    private static bool IsValidRequest(ReadOnlySpan<byte> body)
    {
        int nameEnd = body.IndexOf((byte)0);
        if (nameEnd <= 0)
        {
            return false;
        }
        ReadOnlySpan<byte> rest = body[(nameEnd + 1)..];
        int modeEnd = rest.IndexOf((byte)0);
        if (modeEnd < 0)
        {
            return false;
        }
        ReadOnlySpan<byte> mode = rest[..modeEnd];
        if (!AsciiText.EqualsIgnoreCase(mode, "NETASCII"u8) && !AsciiText.EqualsIgnoreCase(mode, "OCTET"u8) && !AsciiText.EqualsIgnoreCase(mode, "MAIL"u8))
        {
            return false;
        }
        ReadOnlySpan<byte> options = rest[(modeEnd + 1)..];
        return options.IsEmpty || options[^1] == 0;
    }
}
