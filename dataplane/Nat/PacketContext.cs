using System.Runtime.CompilerServices;

namespace Natd.Dataplane.Nat;

/// <summary>
/// One packet's trip through an engine: what the caller tells the path (time, its label for the
/// frame) and what the path tells the caller (why it dropped the frame, what an ALG helper needs).
/// Lives on the caller's stack and is passed by <c>ref</c> down the path, so no result is left in
/// an engine field for the caller to read afterwards, and every component of the path drops a
/// frame the same way (<see cref="Drop"/>: the reason recorded and counted once).
/// </summary>
public ref struct PacketContext
{
    private readonly NatCounters _counters;

    /// <summary>Starts a packet's context.</summary>
    /// <param name="counters">The shard's counters (drops are counted there).</param>
    /// <param name="nowMs">Current time, milliseconds (monotonic, or capture time in replay).</param>
    /// <param name="holdTag">The caller's label for the frame, kept if the frame waits for ARP (<see cref="IFrameSink.Discard"/>).</param>
    public PacketContext(NatCounters counters, long nowMs, long holdTag = 0)
    {
        _counters = counters;
        NowMs = nowMs;
        HoldTag = holdTag;
    }

    /// <summary>Current time, milliseconds.</summary>
    public readonly long NowMs { get; }

    /// <summary>The caller's label for the frame.</summary>
    public readonly long HoldTag { get; }

    /// <summary>Why the frame was dropped; meaningful when the verdict is <see cref="Verdict.Drop"/>.</summary>
    public DropReason DropReason { get; private set; }

    /// <summary>What the ALG helper needs; meaningful when the verdict is <see cref="Verdict.ToHelper"/>.</summary>
    public AlgPending Alg { get; internal set; }

    /// <summary>The shard to hand the frame to; meaningful when the verdict is <see cref="Verdict.ToShard"/>.</summary>
    public int Shard { get; internal set; }

    /// <summary>Records and counts a drop; returns <see cref="Verdict.Drop"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Verdict Drop(DropReason reason)
    {
        DropReason = reason;
        _counters.Drops[(int)reason]++;
        return Verdict.Drop;
    }
}
