using Natd.Dataplane.Packets;

namespace Natd.Dataplane.Io;

/// <summary>Counters a port keeps about itself (frames, not bytes).</summary>
public struct PortStats
{
    /// <summary>Frames handed to the dataplane.</summary>
    public long RxFrames;
    /// <summary>Frames queued for transmission and accepted by the kernel or sink.</summary>
    public long TxFrames;
    /// <summary>Frames refused because the transmit ring was full.</summary>
    public long TxDropped;
    /// <summary>Frames the kernel dropped before we read them (ring overrun), where the driver can tell.</summary>
    public long RxDropped;
    /// <summary>
    /// AF_XDP: times the kernel found no free frame on the fill ring (XDP_STATISTICS
    /// rx_fill_ring_empty_descs), each a frame dropped and counted in <see cref="RxDropped"/> too;
    /// 0 for other drivers. Climbing while the poller has CPU to spare: its fill ring is too shallow.
    /// </summary>
    public long RxFillRingEmpty;
    /// <summary>
    /// sendto(2) calls that handed queued frames to the kernel (AF_PACKET's transmit ring; AF_XDP
    /// in copy mode, or when the driver asks for a wakeup); 0 for ports that need none.
    /// <see cref="TxFrames"/> over this is the frames a kick.
    /// </summary>
    public long TxKicks;
    /// <summary>Kicks the kernel answered with EAGAIN, EBUSY or ENOBUFS (backpressure): the frames stayed queued for the next flush.</summary>
    public long TxKickDeferred;
    /// <summary>Kicks that failed with another errno: the frames stayed queued, and a port whose kicks keep failing sends nothing.</summary>
    public long TxKickErrors;
    /// <summary>
    /// Frames received but dropped because they do not fit one slot (<see cref="FrameBatch.SlotSize"/>
    /// bytes): an MTU above <see cref="LinkSettings.LargestMtu"/>, or frames the kernel coalesced
    /// (GRO, LRO) or a driver truncated. natd reads them only far enough to count them.
    /// </summary>
    public long RxOversize;
}

/// <summary>
/// A place frames come from and go to: an AF_PACKET ring on a live interface, a pcap file, or
/// memory for tests and benchmarks. One poller thread owns a port: no member is thread-safe.
/// </summary>
public interface IPacketPort : IDisposable
{
    /// <summary>Interface name (e.g. "natin") or a descriptive name for offline ports.</summary>
    string Name { get; }

    /// <summary>The port's own MAC address, used as the source of transmitted frames.</summary>
    MacAddress Mac { get; }

    /// <summary>
    /// The MTU of the port's link (bytes of IP datagram, SIOCGIFMTU), read once, when first asked
    /// (natd asks at start; a later change reaches the engines by a poller message): the largest
    /// datagram it sends without fragmenting; 0 where there is no link (pcap, memory).
    /// </summary>
    int LinkMtu => 0;

    /// <summary>
    /// A file descriptor that becomes readable (POLLIN) when frames wait, for a poller that blocks in
    /// poll(2) when idle; -1 when the port has none (then the poller sleeps briefly instead).
    /// </summary>
    int PollDescriptor { get; }

    /// <summary>
    /// Appends waiting frames to <paramref name="batch"/> (slots Count..Capacity-1) without
    /// blocking and returns how many were appended (0 when none wait).
    /// </summary>
    int Receive(FrameBatch batch);

    /// <summary>
    /// Queues one Ethernet frame for transmission. Returns false when the transmit ring is full
    /// (the frame is not sent; the caller counts the drop). Frames go out on <see cref="Flush"/>
    /// or when the ring fills.
    /// </summary>
    bool TrySend(ReadOnlySpan<byte> frame);

    /// <summary>
    /// Queues frame <paramref name="index"/> of <paramref name="batch"/> (its first
    /// <paramref name="length"/> bytes, received by this or another port and translated in place)
    /// for transmission. An AF_XDP port that shares its UMEM with the port that received the frame
    /// transmits that UMEM buffer itself and takes it out of the batch (no copy); every other port
    /// copies, exactly as <see cref="TrySend"/>, which is what this default does. Returns false as
    /// TrySend does (the caller counts the drop); the frame then stays in the batch, whose Clear
    /// returns it to its UMEM.
    /// </summary>
    bool TryForward(FrameBatch batch, int index, int length) => TrySend(batch.Slot(index)[..length]);

    /// <summary>Hands queued frames to the kernel or sink: one kick per batch.</summary>
    void Flush();

    /// <summary>
    /// Transmit kicks that failed (<see cref="PortStats.TxKickErrors"/>) and the errno of the last
    /// one (0 if none failed), read without touching the kernel's counters as <see cref="Stats"/>
    /// does, so a watcher on another thread may poll it; the values may lag the poller's by a batch.
    /// 0 and 0 for ports that never kick.
    /// </summary>
    (long Count, int LastErrno) TxKickFailures => (0, 0);

    /// <summary>The port's counters.</summary>
    PortStats Stats { get; }
}
