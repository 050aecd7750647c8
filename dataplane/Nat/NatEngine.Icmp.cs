namespace Natd.Dataplane.Nat;

// The engine's face of its ICMP components (IcmpResponder.cs, IcmpErrorTranslator.cs): bridges
// until Process threads a PacketContext (see NatEngine.Neighbours.cs).
public sealed partial class NatEngine
{
    /// <summary>RFC 5508 translation of an ICMP error from outside (<see cref="IcmpErrorTranslator.IcmpErrorOut2In"/>).</summary>
    private Verdict IcmpErrorOut2In(Span<byte> slot, ref int length, Span<byte> ipSpan, int ihl)
    {
        var ctx = NewContext();
        return Finish(_icmpErrors.IcmpErrorOut2In(slot, ref length, ipSpan, ihl, ref ctx), ctx.DropReason);
    }

    /// <summary>RFC 5508 translation of an ICMP error from inside (<see cref="IcmpErrorTranslator.IcmpErrorIn2Out"/>).</summary>
    private Verdict IcmpErrorIn2Out(Span<byte> slot, ref int length, Span<byte> ipSpan, int ihl)
    {
        var ctx = NewContext();
        return Finish(_icmpErrors.IcmpErrorIn2Out(slot, ref length, ipSpan, ihl, ref ctx), ctx.DropReason);
    }

    /// <summary>A packet addressed to natd itself (<see cref="IcmpResponder.ToGateway"/>).</summary>
    private Verdict ToGateway(Span<byte> slot, ref int length, Side ingress, Span<byte> ipSpan, int ihl)
    {
        var ctx = NewContext();
        return Finish(_icmp.ToGateway(slot, ref length, ingress, ipSpan, ihl, ref ctx), ctx.DropReason);
    }

    /// <summary>TTL expired: dropped and answered with time exceeded (<see cref="IcmpResponder.TimeExceeded"/>).</summary>
    private Verdict TimeExceeded(Span<byte> slot, ref int length, Side ingress, Span<byte> ipSpan, int ihl)
    {
        var ctx = NewContext();
        return Finish(_icmp.TimeExceeded(slot, ref length, ingress, ipSpan, ihl, ref ctx), ctx.DropReason);
    }

    /// <summary>Dropped with <paramref name="reason"/> and answered with an ICMP error (<see cref="IcmpResponder.IcmpReply"/>).</summary>
    private Verdict IcmpReply(Span<byte> slot, ref int length, Side ingress, Span<byte> ipSpan, int ihl, byte type, byte code, DropReason reason)
    {
        var ctx = NewContext();
        return Finish(_icmp.IcmpReply(slot, ref length, ingress, ipSpan, ihl, type, code, reason, ref ctx), ctx.DropReason);
    }
}
