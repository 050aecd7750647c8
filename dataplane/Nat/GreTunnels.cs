using System.Buffers.Binary;
using Natd.Dataplane.Alg;
using Natd.Dataplane.Alg.Pptp;
using Natd.Dataplane.Packets;
using Natd.Dataplane.Sessions;

namespace Natd.Dataplane.Nat;

/// <summary>
/// PPTP's GRE (RFC 2637 section 4.1, enhanced GRE version 1) translated by Call ID, so several
/// inside clients can call the same server at once. Owns the call table the PPTP ALG fills
/// (<see cref="Apply"/>) and the calls' idle timeout (the UDP timeout, taken on reload). A call
/// idle past the timeout is gone when next looked up, and swept in bounded slices
/// (<see cref="Sweep"/>). Only shard 0 gets PPTP calls (<see cref="ShardMap"/>). Single threaded.
/// </summary>
internal sealed class GreTunnels
{
    /// <summary>GRE flag bits of the first header byte (RFC 2784 / RFC 2637 section 4.1).</summary>
    private const byte GreChecksumPresent = 0x80, GreRoutingPresent = 0x40, GreKeyPresent = 0x20, GreSequencePresent = 0x10, GreStrictRoute = 0x08, GreRecursion = 0x07;

    /// <summary>GRE flag bits of the second header byte: acknowledgment present, reserved flags, version.</summary>
    private const byte GreAckPresent = 0x80, GreReservedFlags = 0x78, GreVersion = 0x07;

    /// <summary>Protocol type of enhanced GRE (PPP, RFC 2637 section 4.1).</summary>
    private const ushort GrePpp = 0x880B;

    /// <summary>Offset of the Call ID (low half of the key) in the enhanced GRE header.</summary>
    private const int GreCallIdOffset = 6;

    private readonly NatCounters _counters;
    private long _idleMs;

    /// <summary>Creates an empty call table.</summary>
    /// <param name="settings">The configuration (the UDP timeout is the calls' idle timeout).</param>
    /// <param name="counters">The shard's counters (<see cref="NatCounters.PptpGreTranslated"/> and packet counts).</param>
    public GreTunnels(NatSettings settings, NatCounters counters)
    {
        _counters = counters;
        Update(settings);
    }

    /// <summary>The PPTP calls whose GRE is translated.</summary>
    public GreCallTable Calls { get; } = new();

    /// <summary>Takes the reloaded idle timeout (it applies at the next lookup).</summary>
    public void Update(NatSettings s) => _idleMs = s.Timeouts.Udp * 1000L;

    /// <summary>Adds or removes a call the PPTP ALG saw set up or cleared; an added call's idle time starts at <paramref name="nowMs"/>.</summary>
    /// <returns>False when an add found the table full (or the call incomplete), or a remove found nothing.</returns>
    public bool Apply(in GreCall call, long nowMs) => call.Add ? Calls.Add(call, nowMs) : Calls.Remove(call);

    /// <summary>
    /// In2out GRE: a known call's packet has its source set to the call's external address (the
    /// Call ID, the server's, is kept). <see cref="TunnelVerdict.ToOutside"/> when translated,
    /// <see cref="TunnelVerdict.Dropped"/> (<see cref="DropReason.BadGre"/>) for a malformed version 1
    /// header, <see cref="TunnelVerdict.Pass"/> when it is no call's.
    /// </summary>
    public TunnelVerdict In2Out(Span<byte> ipSpan, int ihl, ref PacketContext ctx)
    {
        int kind = ParseGreV1(ipSpan[ihl..], out ushort callId);
        if (kind != 0)
        {
            return kind < 0 ? Malformed(ref ctx) : TunnelVerdict.Pass;
        }
        var ip = new Ipv4Header(ipSpan);
        int e = Calls.FindIn2Out(ip.Source, ip.Destination, callId);
        if (e < 0 || !Live(e, ctx.NowMs))
        {
            return TunnelVerdict.Pass;
        }
        ref GreCallTable.Entry call = ref Calls.Entries[e];
        uint src = ip.Source;
        ip.Source = call.ExternalAddress;
        ip.ChecksumRaw = Checksum.Update(ip.ChecksumRaw, src, call.ExternalAddress);
        ip.DecrementTtl();
        call.LastSeenMs = ctx.NowMs;
        _counters.PptpGreTranslated++;
        _counters.PacketsIn2Out++;
        _counters.BytesIn2Out += ipSpan.Length;
        return TunnelVerdict.ToOutside;
    }

    /// <summary>
    /// Out2in GRE: a known call's packet has its external destination and Call ID set to the
    /// client's address and own Call ID. <see cref="TunnelVerdict.ToInside"/> when translated,
    /// <see cref="TunnelVerdict.TimeExceeded"/> (untouched) when its TTL runs out here,
    /// <see cref="TunnelVerdict.Dropped"/> when malformed, <see cref="TunnelVerdict.Pass"/> when no call's.
    /// </summary>
    public TunnelVerdict Out2In(Span<byte> ipSpan, int ihl, ref PacketContext ctx)
    {
        Span<byte> gre = ipSpan[ihl..];
        int kind = ParseGreV1(gre, out ushort callId);
        if (kind != 0)
        {
            return kind < 0 ? Malformed(ref ctx) : TunnelVerdict.Pass;
        }
        var ip = new Ipv4Header(ipSpan);
        int e = Calls.FindOut2In(ip.Source, ip.Destination, callId);
        if (e < 0 || !Live(e, ctx.NowMs))
        {
            return TunnelVerdict.Pass;
        }
        if (ip.Ttl <= 1)
        {
            return TunnelVerdict.TimeExceeded;
        }
        ref GreCallTable.Entry call = ref Calls.Entries[e];
        uint dst = ip.Destination;
        ip.Destination = call.InsideAddress;
        ip.ChecksumRaw = Checksum.Update(ip.ChecksumRaw, dst, call.InsideAddress);
        ip.DecrementTtl();
        // GRE version 1 has no checksum (C=0): the Call ID is rewritten with nothing to fix.
        BinaryPrimitives.WriteUInt16BigEndian(gre[GreCallIdOffset..], call.InsideCallId);
        call.LastSeenMs = ctx.NowMs;
        _counters.PptpGreTranslated++;
        _counters.PacketsOut2In++;
        _counters.BytesOut2In += ipSpan.Length;
        return TunnelVerdict.ToInside;
    }

    /// <summary>A dynamic address change (ip_dynaddr) closes the calls on addresses no longer in <paramref name="pool"/>, as it closes their sessions.</summary>
    public void DropOffPool(uint[] pool)
    {
        var entries = Calls.Entries;
        for (int i = 0; i < entries.Length; i++)
        {
            if (entries[i].InUse && Array.IndexOf(pool, entries[i].ExternalAddress) < 0)
            {
                Calls.RemoveAt(i);
            }
        }
    }

    /// <summary>Expires idle calls, at most <paramref name="budget"/> visits; returns calls removed.</summary>
    public int Sweep(long nowMs, int budget) => Calls.Count == 0 ? 0 : Calls.Expire(nowMs, _idleMs, budget);

    private static TunnelVerdict Malformed(ref PacketContext ctx)
    {
        ctx.Drop(DropReason.BadGre);
        return TunnelVerdict.Dropped;
    }

    /// <summary>A call idle for the timeout is gone (removed now), as sessions are.</summary>
    private bool Live(int e, long nowMs)
    {
        if (nowMs - Calls.Entries[e].LastSeenMs < _idleMs)
        {
            return true;
        }
        Calls.RemoveAt(e);
        return false;
    }

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
}
