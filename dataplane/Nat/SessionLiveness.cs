using System.Runtime.CompilerServices;
using Natd.Dataplane.Sessions;

namespace Natd.Dataplane.Nat;

/// <summary>
/// The one rule for "is this looked-up session still alive": a session past its class's idle
/// timeout is gone (and deleted on the spot), so expiry is exact whatever the sweeper's pace: a
/// reply one second late never revives a closed mapping. Used by every lookup of the engine and its components.
/// </summary>
internal static class SessionLiveness
{
    /// <summary>
    /// <paramref name="s"/> when it is a live session at <paramref name="nowMs"/>; -1 when it was
    /// not found (negative) or has idled out (then it is deleted).
    /// </summary>
    /// <param name="table">The session table <paramref name="s"/> indexes.</param>
    /// <param name="idleTimeoutMs">Idle timeout per <see cref="LruClass"/>, milliseconds.</param>
    /// <param name="s">A session index from a lookup, or negative.</param>
    /// <param name="nowMs">Current time, milliseconds.</param>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Live(SessionTable table, long[] idleTimeoutMs, int s, long nowMs)
    {
        if (s < 0)
        {
            return s;
        }
        ref Session ses = ref table.Sessions[s];
        if (nowMs - ses.LastSeenMs < idleTimeoutMs[(int)ses.Class])
        {
            return s;
        }
        table.Delete(s);
        return -1;
    }
}
