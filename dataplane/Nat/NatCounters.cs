using System.Runtime.InteropServices;

namespace Natd.Dataplane.Nat;

/// <summary>
/// Counters of one engine (one shard). Single writer: the engine's poller thread. Readers on other
/// threads see values that may be a batch old (plain 64-bit loads do not tear on 64-bit hosts).
/// Laid out so the hot counters share no cache line with another shard's (64-byte padding).
/// </summary>
[StructLayout(LayoutKind.Sequential)]
public sealed class NatCounters
{
#pragma warning disable CS0169, IDE0051 // padding keeps another shard's writes off these lines
    private readonly long _pad0, _pad1, _pad2, _pad3, _pad4, _pad5, _pad6, _pad7;
#pragma warning restore CS0169, IDE0051

    /// <summary>Packets translated inside to outside.</summary>
    public long PacketsIn2Out;
    /// <summary>Packets translated outside to inside.</summary>
    public long PacketsOut2In;
    /// <summary>IPv4 bytes (total length) translated inside to outside.</summary>
    public long BytesIn2Out;
    /// <summary>IPv4 bytes translated outside to inside.</summary>
    public long BytesOut2In;
    /// <summary>ARP replies natd sent for its own addresses.</summary>
    public long ArpRepliesSent;
    /// <summary>ARP requests natd sent to resolve next hops.</summary>
    public long ArpRequestsSent;
    /// <summary>ICMP errors natd generated (time exceeded).</summary>
    public long IcmpErrorsSent;
    /// <summary>ICMP echo replies natd sent for its own addresses.</summary>
    public long EchoRepliesSent;
    /// <summary>Frames held while their next hop's MAC was resolved.</summary>
    public long FramesHeld;
    /// <summary>TCP/UDP checksums completed in software (sender used checksum offload).</summary>
    public long ChecksumsCompleted;
    /// <summary>ICMP errors translated (RFC 5508 embedded header rewrite).</summary>
    public long IcmpErrorsTranslated;

    /// <summary>Port-forward backends marked down after refusing a connection.</summary>
    public long BackendRefusals;
    /// <summary>Packets translated by protocol forwards (both directions).</summary>
    public long ProtocolForwarded;
    /// <summary>Packets hairpinned (inside to an external address and back inside, RFC 4787 REQ-9).</summary>
    public long Hairpinned;
    /// <summary>GRE version 1 packets of PPTP calls translated by Call ID (both directions, RFC 2637).</summary>
    public long PptpGreTranslated;
    /// <summary>Learned neighbours removed to make room in a full table (<see cref="NatSettings.MaxNeighbours"/>).</summary>
    public long NeighboursEvicted;
    /// <summary>Learned neighbours removed after going unused and unconfirmed for the stale time (60 s).</summary>
    public long NeighboursExpired;
    /// <summary>Pending ARP resolutions given up to make room in a full pending table (their held frames dropped).</summary>
    public long PendingNeighboursEvicted;
    /// <summary>Pending ARP resolutions that failed: no reply within the hold time.</summary>
    public long PendingNeighboursExpired;

    /// <summary>Drops by <see cref="DropReason"/>.</summary>
    public readonly long[] Drops = new long[DropReasons.Count];

#pragma warning disable CS0169, IDE0051
    private readonly long _pad8, _pad9, _pad10, _pad11, _pad12, _pad13, _pad14, _pad15;
#pragma warning restore CS0169, IDE0051
}
