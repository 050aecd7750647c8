using System.Numerics;

namespace Natd.Dataplane.Io;

/// <summary>How an XDP program is attached to an interface.</summary>
public enum XdpAttachMode
{
    /// <summary>Try native (driver) mode; fall back to generic mode when the driver refuses.</summary>
    Auto = 0,

    /// <summary>Native mode (XDP_FLAGS_DRV_MODE): the program runs in the driver's receive path, before an skb exists.</summary>
    Native = 1,

    /// <summary>Generic mode (XDP_FLAGS_SKB_MODE): the program runs on the skb in the core stack; works on any device, slower.</summary>
    Generic = 2,
}

/// <summary>
/// UMEM and ring geometry for <see cref="AfXdpPort"/>. Defaults: 4096 UMEM frames of
/// <see cref="AfXdpPort.FrameSize"/> bytes (8 MiB), half for receive and half for transmit,
/// rings of 2048 entries, queue 0, program attached in native mode when the driver allows it.
/// </summary>
public sealed record AfXdpOptions
{
    /// <summary>The defaults.</summary>
    public static AfXdpOptions Default { get; } = new();

    /// <summary>The interface queue the socket binds to; frames arriving on other queues go to the kernel stack. Default 0.</summary>
    public int QueueId { get; init; }

    /// <summary>
    /// EtherTypes (host order) to take from the kernel; others are passed to it (XDP_PASS), so the
    /// host keeps its IPv6, LLDP and the like. Null or empty: every frame of the queue. natd asks for
    /// IPv4 and ARP.
    /// </summary>
    public IReadOnlyList<ushort>? RedirectEtherTypes { get; init; }

    /// <summary>
    /// UMEM frames (each <see cref="AfXdpPort.FrameSize"/> bytes). Half, at most <see cref="RingSize"/>,
    /// wait on the fill ring for received frames; the rest are for transmission. 64..65536, even. Default 4096.
    /// </summary>
    public int FrameCount { get; init; } = 4096;

    /// <summary>Entries in each of the four rings (RX, TX, fill, completion): a power of two, 32..16384. Default 2048.</summary>
    public int RingSize { get; init; } = 2048;

    /// <summary>
    /// UMEM frames each socket keeps on its fill ring, ready for the kernel to receive into while
    /// the poller is not running: 1..<see cref="RingSize"/>. 0 (the default): derived, half of
    /// <see cref="FrameCount"/> for a lone socket and a quarter for each socket of a shared-UMEM
    /// pair, at most <see cref="RingSize"/>. When every frame on it is used before the poller runs
    /// again the kernel drops (XDP_STATISTICS rx_fill_ring_empty_descs, counted in RxDropped); a
    /// deeper ring rides out longer stalls but cycles through more frames, so fewer stay cached.
    /// </summary>
    public int FillRingFrames { get; init; }

    /// <summary>Native, generic, or native with a fallback to generic (default).</summary>
    public XdpAttachMode Mode { get; init; } = XdpAttachMode.Auto;

    /// <summary>Checks the values the kernel would reject, with a message naming the field.</summary>
    /// <exception cref="ArgumentException">A field is out of range.</exception>
    public void Validate()
    {
        if (QueueId is < 0 or > 1023)
        {
            throw new ArgumentException($"QueueId {QueueId} must be 0..1023", nameof(QueueId));
        }
        if (FrameCount is < 64 or > 65536 || FrameCount % 2 != 0)
        {
            throw new ArgumentException($"FrameCount {FrameCount} must be an even number in 64..65536", nameof(FrameCount));
        }
        if (RingSize is < 32 or > 16384 || !BitOperations.IsPow2(RingSize))
        {
            throw new ArgumentException($"RingSize {RingSize} must be a power of two in 32..16384", nameof(RingSize));
        }
        if (FillRingFrames < 0 || FillRingFrames > RingSize)
        {
            throw new ArgumentException($"FillRingFrames {FillRingFrames} must be 0 (derived) or 1..RingSize ({RingSize})", nameof(FillRingFrames));
        }
        if (!Enum.IsDefined(Mode))
        {
            throw new ArgumentException($"Mode {Mode} is not a known XDP attach mode", nameof(Mode));
        }
    }
}
