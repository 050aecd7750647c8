using Natd.Dataplane.Sessions;

namespace Natd.Dataplane.Alg;

/// <summary>Which way a frame of an ALG connection travels.</summary>
public enum AlgDirection : byte
{
    /// <summary>From the inside host (the connection's initiator) towards the remote server.</summary>
    In2Out,
    /// <summary>From the remote server back to the inside host.</summary>
    Out2In,
}

/// <summary>
/// The connection an ALG frame belongs to, as natd translated it. Addresses are network order
/// (as <see cref="Packets.Ipv4"/> keeps them), ports host order.
/// </summary>
/// <param name="Protocol">IP protocol (TCP or UDP).</param>
/// <param name="InsideAddress">The inside host.</param>
/// <param name="InsidePort">The inside host's port.</param>
/// <param name="RemoteAddress">The remote server.</param>
/// <param name="RemotePort">The remote server's port (the ALG's control port).</param>
/// <param name="ExternalAddress">The external address the inside host appears as.</param>
/// <param name="ExternalPort">The external port the inside host appears as.</param>
public readonly record struct AlgConnection(
    byte Protocol,
    uint InsideAddress,
    ushort InsidePort,
    uint RemoteAddress,
    ushort RemotePort,
    uint ExternalAddress,
    ushort ExternalPort);

/// <summary>Which way the connection an expectation waits for will be opened.</summary>
public enum ExpectationKind : byte
{
    /// <summary>
    /// From the outside: a packet from <see cref="ExpectationRequest.RemoteAddress"/> (and port,
    /// when set) to the external endpoint opens a session to the inside endpoint (FTP active data,
    /// DCC, TFTP replies). Nothing else is let in.
    /// </summary>
    Inbound,
    /// <summary>
    /// From the inside: the inside endpoint's new flow to the remote endpoint is marked related to
    /// the control connection (FTP passive data). It is still subject to the rules.
    /// </summary>
    Outbound,
}

/// <summary>
/// A pinhole an ALG asks the owning shard for. Addresses network order (0: any, only for
/// <see cref="RemoteAddress"/> of DCC offers), ports host order (0: any).
/// </summary>
/// <param name="Kind">Inbound or outbound.</param>
/// <param name="Protocol">IP protocol of the expected connection.</param>
/// <param name="RemoteAddress">Remote peer's address; 0 accepts any (DCC: the peer is another IRC user).</param>
/// <param name="RemotePort">Remote peer's port; 0 accepts any.</param>
/// <param name="ExternalPort">Inbound: the external port the peer connects to (the reserved port, or the control mapping's own for TFTP).</param>
/// <param name="InsideAddress">The inside endpoint's address; always the control connection's inside host.</param>
/// <param name="InsidePort">The inside endpoint's port (outbound: 0 for any source port).</param>
/// <param name="UsesReservedPort">True when <paramref name="ExternalPort"/> is the port the shard reserved for this frame.</param>
public readonly record struct ExpectationRequest(
    ExpectationKind Kind,
    byte Protocol,
    uint RemoteAddress,
    ushort RemotePort,
    ushort ExternalPort,
    uint InsideAddress,
    ushort InsidePort,
    bool UsesReservedPort);

/// <summary>A PPTP call the GRE translator must know: registered when the call is set up, removed when it is cleared.</summary>
/// <param name="Add">True to add (or refresh), false to remove.</param>
/// <param name="InsideAddress">The PPTP client, network order.</param>
/// <param name="InsideCallId">The client's own Call ID (what it expects in GRE from the server), host order.</param>
/// <param name="RemoteAddress">The PPTP server, network order.</param>
/// <param name="RemoteCallId">The server's Call ID (what the client puts in its GRE), host order.</param>
/// <param name="ExternalAddress">The external address, network order.</param>
/// <param name="ExternalCallId">The Call ID natd gave the server in place of the client's, host order.</param>
public readonly record struct GreCall(
    bool Add,
    uint InsideAddress,
    ushort InsideCallId,
    uint RemoteAddress,
    ushort RemoteCallId,
    uint ExternalAddress,
    ushort ExternalCallId);

/// <summary>What handling one frame asks of the dataplane besides transmitting it. Reused; <see cref="Clear"/> between frames.</summary>
public sealed class AlgActions
{
    /// <summary>Pinholes to open in the owning shard.</summary>
    public List<ExpectationRequest> Expectations { get; } = new(2);

    /// <summary>PPTP calls to add or remove in the GRE translator.</summary>
    public List<GreCall> GreCalls { get; } = new(1);

    /// <summary>Payload edits made (commands or replies rewritten).</summary>
    public int Rewrites { get; set; }

    /// <summary>Commands recognised but refused (an address that is not the sender's, a bad port, an overlong command, one split in a way natd cannot rejoin): nothing opened.</summary>
    public int Refused { get; set; }

    /// <summary>Set when the frame must be dropped rather than sent (it could not be rewritten safely).</summary>
    public bool Drop { get; set; }

    /// <summary>Resets for the next frame.</summary>
    public void Clear()
    {
        Expectations.Clear();
        GreCalls.Clear();
        Rewrites = 0;
        Refused = 0;
        Drop = false;
    }
}

/// <summary>
/// One ALG's payload logic, run on its helper actor's thread (single threaded, one instance per
/// helper). It sees every frame of the connections it owns, in order, after natd translated the
/// addresses and ports: in2out frames already carry the external source, out2in frames the inside
/// destination. It may rewrite the payload (the frame may grow up to the buffer's length), and
/// must then leave the IPv4 total length and header checksum and the TCP/UDP checksum right.
/// Malformed input is never an exception: it is refused (counted) and the frame passes unchanged.
/// <see cref="IDisposable.Dispose"/> gives back every connection's cumulation buffers (the helper stops).
/// </summary>
public interface IAlgHandler : IDisposable
{
    /// <summary>The ALG this handler implements.</summary>
    AlgKind Kind { get; }

    /// <summary>Handles one frame.</summary>
    /// <param name="connection">The connection the frame belongs to.</param>
    /// <param name="direction">Which way it travels.</param>
    /// <param name="buffer">The frame (Ethernet, IPv4, TCP or UDP) in its first <paramref name="length"/> bytes; room to grow after.</param>
    /// <param name="length">Frame length in bytes.</param>
    /// <param name="reservedPort">An external port (host order) the shard reserved for an inbound expectation this frame may need, 0 when none.</param>
    /// <param name="actions">Where to put expectations and counts.</param>
    /// <param name="nowMs">Monotonic milliseconds.</param>
    /// <returns>The frame's new length in bytes.</returns>
    int Handle(in AlgConnection connection, AlgDirection direction, Span<byte> buffer, int length, ushort reservedPort, AlgActions actions, long nowMs);

    /// <summary>The connection closed (its session was deleted): drop its state.</summary>
    void Forget(in AlgConnection connection);

    /// <summary>Drops state of connections idle for longer than <paramref name="idleMs"/>; returns how many.</summary>
    int Expire(long nowMs, long idleMs);
}
