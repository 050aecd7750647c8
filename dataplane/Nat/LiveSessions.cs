using System.Runtime.CompilerServices;
using Natd.Dataplane.Packets;
using Natd.Dataplane.Sessions;

namespace Natd.Dataplane.Nat;

/// <summary>
/// One shard's session table seen through its idle timeouts: a lookup treats a session past its
/// idle timeout as gone (and deletes it), so expiry is exact whatever the sweeper's pace. Shared by
/// the engine and the slow path's flow openers (forwards, triggers, tunnels), which also create
/// their static sessions here. Reads the engine's per-class idle timeouts (milliseconds, indexed
/// by <see cref="LruClass"/>), which the engine rewrites in place on reload, so a new timeout
/// applies to the next lookup. Single threaded: the engine's thread.
/// </summary>
internal sealed class LiveSessions
{
    private readonly long[] _timeoutMs;

    /// <summary>Wraps <paramref name="table"/>; <paramref name="timeoutMs"/> is read at each lookup, never written here.</summary>
    public LiveSessions(SessionTable table, long[] timeoutMs)
    {
        Table = table;
        _timeoutMs = timeoutMs;
    }

    /// <summary>The shard's session table.</summary>
    public SessionTable Table { get; }

    /// <summary>The live session of an in2out key, or -1; <paramref name="nowMs"/> in milliseconds.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public int In2Out(in FlowKey key, long nowMs) => Live(Table.FindIn2Out(key), nowMs);

    /// <summary>The live session of an out2in key, or -1.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public int Out2In(in FlowKey key, long nowMs) => Live(Table.FindOut2In(key), nowMs);

    /// <summary><paramref name="s"/> when it is in use and not idle past its timeout; else -1 (an idle one is deleted now).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public int Live(int s, long nowMs)
    {
        if (s < 0)
        {
            return s;
        }
        ref Session ses = ref Table.Sessions[s];
        if (nowMs - ses.LastSeenMs < _timeoutMs[(int)ses.Class])
        {
            return s;
        }
        Table.Delete(s);
        return -1;
    }

    /// <summary>
    /// A session on a mapping of its own whose external port no allocator owns (a forward's, a
    /// trigger's, an identity): -1 with <see cref="DropReason.SessionLimit"/> when the table is full
    /// (<paramref name="reason"/> is meaningful only then).
    /// </summary>
    public int AddStatic(in FlowKey in2out, in FlowKey out2in, SessionOrigin origin, long nowMs, out DropReason reason)
    {
        reason = DropReason.SessionLimit;
        if (Table.Count >= Table.Capacity)
        {
            return -1;
        }
        if (origin == SessionOrigin.Forward && Table.Subscribers is SubscriberPorts sp && !sp.Admit(in2out.Source, nowMs, out reason))
        {
            return -1; // a forwarded connection counts against its backend's subscriber limits
        }
        int m = Table.AddMapping(in2out.Source, in2out.SourcePort, out2in.Destination, out2in.DestinationPort, in2out.Protocol, -1, endpointIndependent: false);
        if (m < 0)
        {
            return -1;
        }
        int s = Table.AddSession(m, in2out, out2in, InitialClass(in2out.Protocol), nowMs);
        if (s < 0)
        {
            Table.RemoveMapping(m);
            return -1;
        }
        Table.Sessions[s].Origin = origin;
        return s;
    }

    /// <summary>
    /// Identity session for a flow a rule accepts (<paramref name="key"/> in2out): routed without
    /// translation, replies matched statefully (an ICMP echo's reply by its identifier).
    /// </summary>
    public int AddIdentity(in FlowKey key, long nowMs, out DropReason reason)
        => AddStatic(key, key.Protocol == IpProtocol.Icmp
            ? new FlowKey(key.Destination, key.Source, 0, key.SourcePort, key.Protocol)
            : key.Reverse(), SessionOrigin.Accept, nowMs, out reason);

    /// <summary>The timeout class a new session of <paramref name="proto"/> starts in.</summary>
    public static LruClass InitialClass(byte proto)
        => proto == IpProtocol.Tcp ? LruClass.TcpTransitory : proto == IpProtocol.Udp ? LruClass.Udp : LruClass.Icmp;
}
