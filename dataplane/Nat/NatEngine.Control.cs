using System.Numerics;
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
    /// Frames ahead of the one being translated at which a batch loop runs prefetch stage one (the
    /// index slot, <see cref="PrefetchAhead"/>).
    /// </summary>
    /// <remarks>
    /// Memory here answers a random load in about 240 ns and an established frame is translated in
    /// about 60, so stage two must run several frames after stage one (it reads the slot stage one
    /// fetched) and the translation several frames after stage two. Measured in one process over
    /// 1,000,000 sessions (perf/README.md): 4 and 2 frames left most of the latency exposed; 24
    /// and 12, with <see cref="PrefetchBatch"/> starting both stages at the head of the batch, took
    /// established in2out from about 260 to about 160 ns/packet. A new flow takes about 270 ns, so
    /// its slow path's first reads are prefetched only <see cref="NewFlowPrefetchDistance"/> frames
    /// ahead: 12 frames ahead, they cost new sessions 4-6%.
    /// </remarks>
    public const int SlotPrefetchDistance = 24;

    /// <summary>Frames ahead at which a batch loop runs prefetch stage two (the session).</summary>
    public const int SessionPrefetchDistance = 12;

    /// <summary>
    /// Frames ahead at which a batch loop prefetches what the slow path reads first (the endpoint's
    /// mapping slot, the subscriber's index slot) for a frame whose stage two found no session.
    /// </summary>
    public const int NewFlowPrefetchDistance = 2;

    /// <summary>
    /// Frames ahead at which a batch loop prefetches a probable new flow's subscriber entry (CGN):
    /// between stage two, which fetched the subscriber's index slot, and the new-flow reads, which
    /// follow the entry to its port block.
    /// </summary>
    public const int SubscriberPrefetchDistance = 6;

    /// <summary>Frames of the current batch (bit i: frame i, the first 64) whose stage two found no session: probably new flows.</summary>
    private ulong _newFlows;

    /// <summary>
    /// Starts the prefetch pipeline of a parsed batch: stage one for its first
    /// <see cref="SlotPrefetchDistance"/> frames, stage two for its first
    /// <see cref="SessionPrefetchDistance"/>, the new-flow reads for its first
    /// <see cref="NewFlowPrefetchDistance"/>. Call once after parsing the batch, then
    /// <see cref="PrefetchAhead"/> before translating each frame. Hints only.
    /// </summary>
    /// <param name="parsed">The batch's frames, parsed with this table's seed, in processing order.</param>
    public void PrefetchBatch(ReadOnlySpan<ParsedFrame> parsed)
    {
        _newFlows = 0;
        if (Table.Count < PrefetchThreshold)
        {
            return;
        }
        int n = Math.Min(parsed.Length, SlotPrefetchDistance);
        for (int i = 0; i < n; i++)
        {
            Prefetch(parsed[i], session: false);
        }
        n = Math.Min(parsed.Length, SessionPrefetchDistance);
        for (int i = 0; i < n; i++)
        {
            PrefetchStageTwo(parsed, i);
        }
        if (Subscribers is not null)
        {
            n = Math.Min(parsed.Length, SubscriberPrefetchDistance);
            for (int i = 0; i < n; i++)
            {
                PrefetchSubscriber(parsed, i);
            }
        }
        n = Math.Min(parsed.Length, NewFlowPrefetchDistance);
        for (int i = 0; i < n; i++)
        {
            PrefetchNewFlow(parsed, i);
        }
    }

    /// <summary>
    /// Keeps the pipeline <see cref="PrefetchBatch"/> started going: before frame
    /// <paramref name="i"/> is translated, stage one, stage two and the new-flow reads for the
    /// frames their distances ahead. Hints only.
    /// </summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    public void PrefetchAhead(ReadOnlySpan<ParsedFrame> parsed, int i)
    {
        if (Table.Count < PrefetchThreshold)
        {
            return;
        }
        if (i + SlotPrefetchDistance < parsed.Length)
        {
            Prefetch(parsed[i + SlotPrefetchDistance], session: false);
        }
        if (i + SessionPrefetchDistance < parsed.Length)
        {
            PrefetchStageTwo(parsed, i + SessionPrefetchDistance);
        }
        if (Subscribers is not null && i + SubscriberPrefetchDistance < parsed.Length)
        {
            PrefetchSubscriber(parsed, i + SubscriberPrefetchDistance);
        }
        if (i + NewFlowPrefetchDistance < parsed.Length)
        {
            PrefetchNewFlow(parsed, i + NewFlowPrefetchDistance);
        }
    }

    private void PrefetchSubscriber(ReadOnlySpan<ParsedFrame> parsed, int j)
    {
        if (j < 64 && (_newFlows & (1UL << j)) != 0)
        {
            Subscribers!.PrefetchEntry(parsed[j].Key.Source);
        }
    }

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    private void PrefetchStageTwo(ReadOnlySpan<ParsedFrame> parsed, int j)
    {
        ref readonly ParsedFrame f = ref parsed[j];
        if (!f.HasKey || f.Drop != ParsedFrame.None)
        {
            return;
        }
        bool in2out = f.Ingress == Side.Inside;
        if (!Table.PrefetchSession(f.Hash, in2out) && in2out && j < 64)
        {
            _newFlows |= 1UL << j;
            Subscribers?.Prefetch(f.Key.Source); // the index slot now, the entry it names at the new-flow stage
        }
    }

    private void PrefetchNewFlow(ReadOnlySpan<ParsedFrame> parsed, int j)
    {
        if (j >= 64 || (_newFlows & (1UL << j)) == 0)
        {
            return;
        }
        // Probably a new flow: its slow path first reads the endpoint's mapping and (CGN) its
        // subscriber, two more misses that now load while the frames before it are translated.
        FlowKey k = parsed[j].Key;
        Table.PrefetchMappingByInside(k.Source, k.SourcePort, k.Protocol);
        Subscribers?.PrefetchBlock(k.Source, SessionTable.ProtocolClass(k.Protocol));
        if (Subscribers is null && _deterministic is null)
        {
            PrefetchNewPort(k, j);
        }
    }

    /// <summary>
    /// Dynamic allocation: the port a probable new flow will get is the allocator's draw after
    /// those of the probable new flows translated before it, so its bitmap word and the out2in
    /// index line of its external endpoint (the session's second index entry) can load now. A
    /// guess that turns out wrong (an existing mapping, a taken port) costs a wasted hint.
    /// </summary>
    private void PrefetchNewPort(in FlowKey k, int j)
    {
        int first = Math.Max(0, j - NewFlowPrefetchDistance); // the frame about to be translated
        ulong before = _newFlows & ((1UL << j) - 1) & ~((1UL << first) - 1);
        int pool = _addresses.PoolIndexFor(k.Source);
        int pclass = SessionTable.ProtocolClass(k.Protocol);
        bool privileged = k.Protocol != IpProtocol.Icmp && FlowKey.PortToHost(k.SourcePort) < 1024;
        int port = Table.Ports.PredictPort(privileged, BitOperations.PopCount(before));
        if (port < 0)
        {
            return;
        }
        Table.Ports.Prefetch(pool, pclass, port);
        Table.PrefetchOut2InLine(new FlowKey(k.Destination, _addresses.Pool[pool], k.DestinationPort, FlowKey.PortToRaw((ushort)port), k.Protocol));
    }

    /// <summary>
    /// Prefetch hint for a frame that will be processed a few frames from now: stage one
    /// (<paramref name="session"/> false) some frames before stage two, stage two some frames
    /// before the frame is translated (<see cref="SlotPrefetchDistance"/>, <see cref="SessionPrefetchDistance"/>).
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
    /// (<paramref name="session"/> false, the index slot), then, some frames later, stage two (the
    /// session, or a probable new flow's mapping and subscriber). A batch loop uses
    /// <see cref="PrefetchBatch"/> and <see cref="PrefetchAhead"/>.
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

    /// <summary>
    /// Deletes every session translated to external address <paramref name="external"/> (network
    /// order; natctl flush --external), port-less ones included, freeing their ports: what is left on
    /// a draining address ends at once. PCP mappings and ESP associations stay (natctl mappings
    /// delete; ESP idles out). Must run on the engine's thread.
    /// </summary>
    /// <returns>Sessions deleted.</returns>
    public int FlushExternal(uint external) => Walker.DeleteOnExternal(external);

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
