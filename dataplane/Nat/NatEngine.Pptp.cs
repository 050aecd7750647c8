using System.Buffers.Binary;
using Natd.Dataplane.Alg;
using Natd.Dataplane.Alg.Pptp;
using Natd.Dataplane.Packets;

namespace Natd.Dataplane.Nat;

/// <summary>The outcome of looking at a GRE packet for a PPTP call.</summary>
internal enum GreMatch : byte
{
    /// <summary>Not a PPTP call's packet: the port-less path decides.</summary>
    None,
    /// <summary>Translated and sent (the verdict is the result).</summary>
    Sent,
    /// <summary>GRE version 1 with a broken header: dropped.</summary>
    Malformed,
}

public sealed partial class NatEngine
{
    /// <summary>GRE flag bits of the first header byte (RFC 2784 / RFC 2637 section 4.1).</summary>
    private const byte GreChecksumPresent = 0x80, GreRoutingPresent = 0x40, GreKeyPresent = 0x20, GreSequencePresent = 0x10, GreStrictRoute = 0x08, GreRecursion = 0x07;

    /// <summary>GRE flag bits of the second header byte: acknowledgment present, reserved flags, version.</summary>
    private const byte GreAckPresent = 0x80, GreReservedFlags = 0x78, GreVersion = 0x07;

    /// <summary>Protocol type of enhanced GRE (PPP, RFC 2637 section 4.1).</summary>
    private const ushort GrePpp = 0x880B;

    /// <summary>Offset of the Call ID (low half of the key) in the enhanced GRE header.</summary>
    private const int GreCallIdOffset = 6;

    /// <summary>The PPTP calls whose GRE this engine translates (shard 0 only gets any).</summary>
    public GreCallTable GreCalls { get; } = new();

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
        return call.Add ? GreCalls.Add(call, _now) : GreCalls.Remove(call);
    }

    /// <summary>As <see cref="ApplyGreCall(in GreCall, long)"/>, timed by the last batch the engine processed.</summary>
    /// <param name="call">The call.</param>
    /// <returns>False when an add found the table full (or the call incomplete), or a remove found nothing.</returns>
    public bool ApplyGreCall(in GreCall call) => ApplyGreCall(call, _now);

    /// <summary>
    /// Validates the enhanced GRE header (RFC 2637 section 4.1: C=0, R=0, K=1, s=0, recursion 0,
    /// flags 0, version 1, protocol 0x880B, header within the packet) of a GRE packet.
    /// </summary>
    /// <returns>0 for a well-formed version 1 header (with its Call ID), 1 for another GRE version, -1 for a malformed version 1 header.</returns>
    private static int ParseGreV1(ReadOnlySpan<byte> gre, out ushort callId)
    {
        callId = 0;
        if (gre.Length < 2 || (gre[1] & GreVersion) != 1)
        {
            return gre.Length < 2 ? -1 : 1;
        }
        byte f0 = gre[0], f1 = gre[1];
        if ((f0 & (GreChecksumPresent | GreRoutingPresent | GreStrictRoute | GreRecursion)) != 0 || (f0 & GreKeyPresent) == 0
            || (f1 & GreReservedFlags) != 0)
        {
            return -1;
        }
        int header = 8 + ((f0 & GreSequencePresent) != 0 ? 4 : 0) + ((f1 & GreAckPresent) != 0 ? 4 : 0);
        if (gre.Length < header || BinaryPrimitives.ReadUInt16BigEndian(gre[2..]) != GrePpp)
        {
            return -1;
        }
        callId = BinaryPrimitives.ReadUInt16BigEndian(gre[GreCallIdOffset..]);
        return 0;
    }

    /// <summary>In2out GRE of a known PPTP call: the client's source becomes the external address; the Call ID (the server's) is kept.</summary>
    private GreMatch PptpGreIn2Out(Span<byte> slot, int length, Span<byte> ipSpan, int ihl, uint nextHop, out Verdict verdict)
    {
        verdict = Verdict.Drop;
        int kind = ParseGreV1(ipSpan[ihl..], out ushort callId);
        if (kind != 0)
        {
            return kind < 0 ? GreMatch.Malformed : GreMatch.None;
        }
        var ip = new Ipv4Header(ipSpan);
        int e = GreCalls.FindIn2Out(ip.Source, ip.Destination, callId);
        if (e < 0 || !LiveGreCall(e))
        {
            return GreMatch.None;
        }
        ref GreCallTable.Entry call = ref GreCalls.Entries[e];
        uint src = ip.Source;
        ip.Source = call.ExternalAddress;
        ip.ChecksumRaw = Checksum.Update(ip.ChecksumRaw, src, call.ExternalAddress);
        ip.DecrementTtl();
        call.LastSeenMs = _now;
        Counters.PptpGreTranslated++;
        Counters.PacketsIn2Out++;
        Counters.BytesIn2Out += ipSpan.Length;
        verdict = SendTo(Side.Outside, slot[..length], nextHop);
        return GreMatch.Sent;
    }

    /// <summary>Out2in GRE of a known PPTP call: the external destination and Call ID become the client's address and own Call ID.</summary>
    private GreMatch PptpGreOut2In(Span<byte> slot, ref int length, Span<byte> ipSpan, int ihl, out Verdict verdict)
    {
        verdict = Verdict.Drop;
        Span<byte> gre = ipSpan[ihl..];
        int kind = ParseGreV1(gre, out ushort callId);
        if (kind != 0)
        {
            return kind < 0 ? GreMatch.Malformed : GreMatch.None;
        }
        var ip = new Ipv4Header(ipSpan);
        int e = GreCalls.FindOut2In(ip.Source, ip.Destination, callId);
        if (e < 0 || !LiveGreCall(e))
        {
            return GreMatch.None;
        }
        if (ip.Ttl <= 1)
        {
            verdict = TimeExceeded(slot, ref length, Side.Outside, ipSpan, ihl);
            return GreMatch.Sent;
        }
        ref GreCallTable.Entry call = ref GreCalls.Entries[e];
        uint dst = ip.Destination;
        ip.Destination = call.InsideAddress;
        ip.ChecksumRaw = Checksum.Update(ip.ChecksumRaw, dst, call.InsideAddress);
        ip.DecrementTtl();
        // GRE version 1 has no checksum (C=0): the Call ID is rewritten with nothing to fix.
        BinaryPrimitives.WriteUInt16BigEndian(gre[GreCallIdOffset..], call.InsideCallId);
        call.LastSeenMs = _now;
        Counters.PptpGreTranslated++;
        Counters.PacketsOut2In++;
        Counters.BytesOut2In += ipSpan.Length;
        verdict = SendTo(Side.Inside, slot[..length], NextHopInside(call.InsideAddress));
        return GreMatch.Sent;
    }

    /// <summary>A call idle for the UDP timeout is gone (removed now), as <see cref="Live"/> treats sessions.</summary>
    private bool LiveGreCall(int e)
    {
        if (_now - GreCalls.Entries[e].LastSeenMs < GreCallIdleMs)
        {
            return true;
        }
        GreCalls.RemoveAt(e);
        return false;
    }

    /// <summary>Idle timeout of a PPTP call's GRE: the UDP timeout, read at check time so a reload applies at once.</summary>
    private long GreCallIdleMs => _settings.Timeouts.Udp * 1000L;

    /// <summary>A dynamic address change (ip_dynaddr) closes the calls on addresses no longer in the pool, as it closes their sessions.</summary>
    private void DropGreCallsOffPool()
    {
        var entries = GreCalls.Entries;
        for (int i = 0; i < entries.Length; i++)
        {
            if (entries[i].InUse && PoolIndexOf(entries[i].ExternalAddress) < 0)
            {
                GreCalls.RemoveAt(i);
            }
        }
    }

    /// <summary>Expires idle PPTP calls, a bounded slice per sweep.</summary>
    private int SweepGreCalls(long nowMs, int budget)
        => GreCalls.Count == 0 ? 0 : GreCalls.Expire(nowMs, GreCallIdleMs, budget);
}
