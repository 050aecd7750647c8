using Natd.Dataplane.Alg;
using Natd.Dataplane.Alg.Pptp;

namespace Natd.Dataplane.Nat;

// PPTP's GRE lives in GreTunnels; the engine keeps the entry the pollers and replay call.
public sealed partial class NatEngine
{
    /// <summary>The PPTP calls whose GRE this engine translates (shard 0 only gets any).</summary>
    public GreCallTable GreCalls => _gre.Calls;

    /// <summary>
    /// Registers or removes a PPTP call the PPTP ALG saw set up or cleared (RFC 2637): its GRE
    /// version 1 packets are then translated by Call ID, so several inside clients can call the
    /// same server at once. Call on shard 0's thread (the poller's mailbox), between batches.
    /// </summary>
    /// <param name="call">The call, addresses network order, Call IDs host order.</param>
    /// <param name="nowMs">The engine's clock (monotonic milliseconds, as passed to <see cref="Process(Span{byte}, ref int, Side, Io.FrameFlags, ref PacketContext)"/>): an added call's idle time starts here.</param>
    /// <returns>False when an add found the table full (or the call incomplete), or a remove found nothing.</returns>
    public bool ApplyGreCall(in GreCall call, long nowMs)
    {
        if (nowMs > _now)
        {
            _now = nowMs;
        }
        return _gre.Apply(call, _now);
    }

    /// <summary>As <see cref="ApplyGreCall(in GreCall, long)"/>, timed by the last batch the engine processed.</summary>
    /// <param name="call">The call.</param>
    /// <returns>False when an add found the table full (or the call incomplete), or a remove found nothing.</returns>
    public bool ApplyGreCall(in GreCall call) => ApplyGreCall(call, _now);
}
