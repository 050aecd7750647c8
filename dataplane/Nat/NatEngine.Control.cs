using Natd.Dataplane.Alg.Pptp;
using Natd.Dataplane.Packets;
using Natd.Dataplane.Sessions;

namespace Natd.Dataplane.Nat;

public sealed partial class NatEngine
{
    /// <summary>
    /// Appends every session to <paramref name="into"/> (control path: allocates). Must run on the
    /// engine's thread.
    /// </summary>
    /// <param name="into">List to fill.</param>
    /// <param name="nowMs">Current time in the engine's clock (milliseconds).</param>
    public void CollectSessions(List<SessionInfo> into, long nowMs)
    {
        Walker.Collect(into, nowMs);
        CollectIpsecSessions(into, nowMs);
        CollectGreCalls(into, nowMs);
    }

    /// <summary>PPTP calls as "gre" rows: the Call IDs stand where ports would (inside, external, the server's), state "pptp-call".</summary>
    private void CollectGreCalls(List<SessionInfo> into, long nowMs)
    {
        var calls = GreCalls.Entries;
        double timeout = _settings.Timeouts.Udp;
        for (int i = 0; i < calls.Length; i++)
        {
            ref GreCallTable.Entry c = ref calls[i];
            if (c.InUse)
            {
                into.Add(new SessionInfo("gre", c.InsideAddress, c.InsideCallId, c.ExternalAddress, c.ExternalCallId, c.RemoteAddress, c.RemoteCallId,
                    Math.Max(0, timeout - (nowMs - c.LastSeenMs) / 1000.0), "pptp-call", 0, 0, 0, 0) { Alg = "pptp" });
            }
        }
    }

    /// <inheritdoc cref="SessionWalker.ProtocolName"/>
    public static string ProtocolName(byte protocol) => SessionWalker.ProtocolName(protocol);

    /// <inheritdoc cref="SessionWalker.AlgName"/>
    public static string AlgName(Sessions.AlgKind kind) => SessionWalker.AlgName(kind);

    /// <summary>
    /// Deletes the sessions of an inside endpoint (natctl delete), optionally only the one with a
    /// given remote endpoint (0 = any). Must run on the engine's thread.
    /// </summary>
    /// <returns>Sessions deleted.</returns>
    public int DeleteSessions(byte protocol, uint insideAddress, ushort insidePort, uint remoteAddress, ushort remotePort)
        => Walker.Delete(protocol, insideAddress, insidePort, remoteAddress, remotePort);

    /// <summary>Sessions above which <see cref="Prefetch(in ParsedFrame, bool)"/> works (below, the table stays in the caches).</summary>
    public const int PrefetchThreshold = 65_536;

    /// <summary>
    /// Prefetch hint for a frame that will be processed a few frames from now: stage one
    /// (<paramref name="session"/> false) for about four frames ahead, stage two for about two.
    /// Parses the frame (<see cref="FrameParser"/>); changes nothing, never fails. A poller that
    /// parsed the frame already uses <see cref="Prefetch(in ParsedFrame, bool)"/>.
    /// </summary>
    public void Prefetch(ReadOnlySpan<byte> frame, Side ingress, bool session)
    {
        if (Table.Count < PrefetchThreshold)
        {
            return;
        }
        FrameParser.Parse(frame, ingress, Table.HashSeed, out ParsedFrame p);
        Prefetch(p, session);
    }

    /// <summary>
    /// Prefetch hint for a parsed frame (its key's hash computed once by the parser): stage one
    /// (<paramref name="session"/> false) for about four frames ahead, stage two for about two.
    /// </summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    public void Prefetch(in ParsedFrame frame, bool session)
    {
        // A table that fits the caches gains nothing from the hint.
        if (Table.Count < PrefetchThreshold || !frame.HasKey || frame.Drop != ParsedFrame.None)
        {
            return;
        }
        bool in2out = frame.Ingress == Side.Inside;
        if (!session)
        {
            Table.PrefetchSlot(frame.Hash, in2out);
        }
        else if (!Table.PrefetchSession(frame.Hash, in2out) && in2out)
        {
            // Probably a new flow: its slow path first reads the endpoint's mapping and (CGN) its
            // subscriber, two more misses that now load while the frames before it are translated.
            FlowKey k = frame.Key;
            Table.PrefetchMappingByInside(k.Source, k.SourcePort, k.Protocol);
            Subscribers?.Prefetch(k.Source);
        }
    }

    /// <summary>Deletes every session (natctl flush). Must run on the engine's thread.</summary>
    /// <returns>Sessions deleted.</returns>
    public int Flush()
    {
        return Walker.Flush() + _ipsec.Clear();
    }

    /// <inheritdoc cref="SessionWalker.TcpStateName"/>
    public static string TcpStateName(TcpSeen seen) => SessionWalker.TcpStateName(seen);

    /// <summary>
    /// How the live session with in2out key <paramref name="in2out"/> translates in2out (its external
    /// endpoint and checksum deltas), so a driver can undo the translation a capture taken on the
    /// inside shows (replay's inside-trace rebuild). A session past its idle timeout counts as none
    /// and is deleted, as on the packet path. Slow path; engine thread.
    /// </summary>
    /// <param name="in2out">The session's in2out key.</param>
    /// <param name="nowMs">Current time in the engine's clock.</param>
    /// <param name="translation">The translation when found.</param>
    /// <returns>False when no live session has that key.</returns>
    public bool TryGetIn2OutTranslation(in FlowKey in2out, long nowMs, out SessionTranslation translation)
    {
        _now = nowMs;
        Table.NowMs = nowMs;
        int s = LookupIn2Out(in2out);
        if (s < 0)
        {
            translation = default;
            return false;
        }
        ref Session ses = ref Table.Sessions[s];
        translation = new SessionTranslation(ses.Out2In.Destination, ses.Out2In.DestinationPort, ses.IpDeltaIn2Out, ses.L4DeltaIn2Out);
        return true;
    }
}

/// <summary>
/// What a session's in2out translation writes: the external address (network order) and port or
/// ICMP identifier (raw, network order), and the incremental checksum deltas (RFC 1624) of the IPv4
/// header and of the transport header.
/// </summary>
/// <param name="ExternalAddress">External address, network order.</param>
/// <param name="ExternalPortRaw">External port or identifier, network order.</param>
/// <param name="IpDelta">IPv4 header checksum delta.</param>
/// <param name="L4Delta">Transport checksum delta (pseudo-header address and port).</param>
public readonly record struct SessionTranslation(uint ExternalAddress, ushort ExternalPortRaw, ushort IpDelta, ushort L4Delta);
