namespace Natd.Dataplane.Io;

/// <summary>
/// Ring geometry and socket options for <see cref="AfPacketPort"/>. Defaults suit a 1-10 Gbit/s
/// interface: an 8 MiB TPACKET_V3 receive ring (32 blocks of 256 KiB, retired after 1 ms so a
/// quiet link still delivers promptly) and a 512-frame transmit ring.
/// </summary>
public sealed record AfPacketOptions
{
    /// <summary>The defaults.</summary>
    public static AfPacketOptions Default { get; } = new();

    /// <summary>Bytes per RX block; a multiple of the page size (4096). Default 256 KiB.</summary>
    public int RxBlockSize { get; init; } = 256 * 1024;

    /// <summary>Number of RX blocks. Default 32.</summary>
    public int RxBlockCount { get; init; } = 32;

    /// <summary>
    /// Nominal RX frame size in bytes (the kernel checks the ring geometry with it; V3 packs
    /// frames of any length into a block). A multiple of 16 dividing <see cref="RxBlockSize"/>. Default 2048.
    /// </summary>
    public int RxFrameSize { get; init; } = 2048;

    /// <summary>Milliseconds after which the kernel hands a partly filled RX block to the reader. Default 1.</summary>
    public int RxBlockTimeoutMilliseconds { get; init; } = 1;

    /// <summary>
    /// Bytes per TX ring frame, including the 48-byte frame header; a multiple of 16. TrySend
    /// refuses a frame longer than this minus 48 bytes, or longer than <see cref="FrameBatch.SlotSize"/>.
    /// Default 2112 (room for a whole slot).
    /// </summary>
    public int TxFrameSize { get; init; } = 2112;

    /// <summary>Number of TX ring frames (rounded up to fill whole ring blocks). Default 512.</summary>
    public int TxFrameCount { get; init; } = 512;

    /// <summary>
    /// Sets PACKET_QDISC_BYPASS: transmitted frames go straight to the driver, skipping the
    /// qdisc layer (and its queueing and drops). Default true.
    /// </summary>
    public bool QdiscBypass { get; init; } = true;

    /// <summary>
    /// PACKET_FANOUT group id (1..65535) to join, 0 for none. Sockets of one group on one interface
    /// share its frames, each frame going to one socket (hashed by flow): how several pollers share
    /// a single-queue device. Every poller's socket must use the same id.
    /// </summary>
    public int FanoutGroup { get; init; }

    /// <summary>Checks the geometry the kernel would reject, with a message naming the field.</summary>
    /// <exception cref="ArgumentException">A field is out of range.</exception>
    public void Validate()
    {
        int page = Environment.SystemPageSize;
        if (RxBlockSize <= 0 || RxBlockSize % page != 0)
        {
            throw new ArgumentException($"RxBlockSize {RxBlockSize} must be a positive multiple of the page size {page}", nameof(RxBlockSize));
        }
        if (RxBlockCount <= 0)
        {
            throw new ArgumentException($"RxBlockCount {RxBlockCount} must be positive", nameof(RxBlockCount));
        }
        if (RxFrameSize < 128 || RxFrameSize % 16 != 0 || RxFrameSize > RxBlockSize)
        {
            throw new ArgumentException($"RxFrameSize {RxFrameSize} must be a multiple of 16 between 128 and RxBlockSize", nameof(RxFrameSize));
        }
        if (RxBlockTimeoutMilliseconds is < 0 or > 1000)
        {
            throw new ArgumentException($"RxBlockTimeoutMilliseconds {RxBlockTimeoutMilliseconds} must be 0..1000 (0 lets the kernel choose)", nameof(RxBlockTimeoutMilliseconds));
        }
        if (TxFrameSize < 128 || TxFrameSize % 16 != 0 || TxFrameSize > 64 * 1024)
        {
            throw new ArgumentException($"TxFrameSize {TxFrameSize} must be a multiple of 16 between 128 and 65536", nameof(TxFrameSize));
        }
        if (TxFrameCount is <= 0 or > 65536)
        {
            throw new ArgumentException($"TxFrameCount {TxFrameCount} must be 1..65536", nameof(TxFrameCount));
        }
    }
}
