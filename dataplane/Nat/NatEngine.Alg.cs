using Natd.Dataplane.Alg;
using Natd.Dataplane.Counters;
using Natd.Dataplane.Packets;
using Natd.Dataplane.Sessions;

namespace Natd.Dataplane.Nat;

// The engine's side of the ALG bridge (AlgBridge.cs owns the state): call sites of the packet path
// and forwarders kept for the control path, the poller, replay and tests.
public sealed partial class NatEngine
{
    /// <summary>Pending expectations one shard keeps at most; more are refused and counted.</summary>
    public const int MaxExpectations = AlgBridge.MaxExpectations;

    /// <summary>The shard's ALG bridge: expectations, frames with a helper, ALG counters.</summary>
    public AlgBridge AlgBridge { get; }

    /// <summary>Expectation slots the sweep examined so far (see <see cref="AlgBridge"/>).</summary>
    internal long ExpectationSweepVisits => AlgBridge.ExpectationSweepVisits;

    /// <summary>ALG counters of this shard (single writer).</summary>
    public AlgCounters AlgStats => AlgBridge.Stats;

    /// <summary>Pending expectations.</summary>
    public int ExpectationCount => AlgBridge.ExpectationCount;

    /// <summary>
    /// Ends the translated frame's fast path and hands it to its ALG (<see cref="AlgBridge.HandOff"/>):
    /// what the helper needs goes into <see cref="PacketContext.Alg"/>.
    /// </summary>
    private Verdict ToHelper(ref Session ses, AlgDirection direction, Side egress, uint nextHop, int payloadLength, ref PacketContext ctx)
    {
        // Only an in2out frame can reserve a port: the pool lookup is skipped for the rest.
        int poolIndex = direction == AlgDirection.In2Out ? _addresses.PoolIndexOf(ses.ExternalAddress) : -1;
        return AlgBridge.HandOff(ref ctx, ref ses, direction, egress, nextHop, payloadLength, poolIndex);
    }

    /// <summary>
    /// Finishes a frame its ALG helper handled (<see cref="AlgBridge.Complete"/>: expectations, the
    /// reserved port) and readies it for transmission (Ethernet addresses, or the ARP hold queue).
    /// </summary>
    /// <param name="slot">The frame's buffer (it may have grown: the first <paramref name="length"/> bytes).</param>
    /// <param name="length">Frame length in bytes.</param>
    /// <param name="pending">What <see cref="PacketContext.Alg"/> was when the frame left.</param>
    /// <param name="actions">What the helper asked for.</param>
    /// <param name="ctx">The frame's context (time in; drop reason out).</param>
    /// <returns><see cref="Verdict.ToInside"/> or <see cref="Verdict.ToOutside"/> to transmit, <see cref="Verdict.Consumed"/> when held for ARP, <see cref="Verdict.Drop"/> (counted).</returns>
    public Verdict CompleteAlg(Span<byte> slot, int length, in AlgPending pending, AlgActions actions, ref PacketContext ctx)
    {
        SetClock(ctx.NowMs);
        return CompleteAlgFrame(slot, length, pending, actions, ref ctx);
    }

    private Verdict CompleteAlgFrame(Span<byte> slot, int length, in AlgPending pending, AlgActions actions, ref PacketContext ctx)
    {
        if (!AlgBridge.Complete(ref ctx, pending, actions))
        {
            return Verdict.Drop; // recorded and counted by the context
        }
        if (length < EthernetHeader.Length + Ipv4Header.MinLength || length > slot.Length)
        {
            return ctx.Drop(DropReason.Truncated);
        }
        return _neighbours.SendTo(pending.Egress, slot[..length], pending.NextHop, ref ctx);
    }

    /// <summary>A frame its helper never returned (the helper failed): frees its reserved port (<see cref="AlgBridge.Abandon"/>).</summary>
    public void AbandonAlg(in AlgPending pending) => AlgBridge.Abandon(pending);

    /// <summary>Out2in miss: a connection an ALG expected; the expectation is found and used by the bridge, the inbound rules are the engine's.</summary>
    /// <returns>The new session, or -1 when nothing was expected (reason untouched) or it failed (reason set).</returns>
    private int TryInboundExpectation(in FlowKey key, byte tcpFlags, ref DropReason reason)
    {
        int x = AlgBridge.FindInbound(key, tcpFlags, _now);
        if (x < 0)
        {
            return -1;
        }
        if (!InboundAllowed(key))
        {
            reason = DropReason.RuleDeny; // rules naming `in: outside` apply to related connections too
            return -1;
        }
        return AlgBridge.OpenInbound(x, key, InitialClass(key.Protocol), _now, ref reason);
    }

    /// <summary>Marks a session related to a control connection (triggers use it too).</summary>
    private void MarkRelated(int s, in FlowKey control) => AlgBridge.MarkRelated(s, control);

    /// <summary>The shard's session walker (listing, delete, flush, export).</summary>
    public SessionWalker Walker { get; }

    /// <summary>Pending expectations, for natctl (slow path).</summary>
    public void CollectExpectations(List<ExpectationInfo> into, long nowMs) => AlgBridge.Collect(into, nowMs);
}
