using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using Natd.Dataplane.Io.Native;
using Natd.Dataplane.Packets;
using Tmds.Linux;
using static Natd.Dataplane.Io.Native.Constants;
using static Tmds.Linux.LibC;

namespace Natd.Dataplane.Io;

/// <summary>
/// A live interface through an AF_PACKET socket with memory-mapped rings (PACKET_MMAP, see the
/// kernel's Documentation/networking/packet_mmap.rst): a TPACKET_V3 receive ring of blocks and
/// a transmit ring of fixed-size frames, both in one mapping. Bound to one interface with
/// ETH_P_ALL; the kernel does not loop our own transmissions back (PACKET_IGNORE_OUTGOING, or
/// skipping PACKET_OUTGOING frames where the kernel lacks it). Receive, TrySend and Flush make
/// at most one system call per call (Flush) and allocate nothing.
/// </summary>
public sealed unsafe class AfPacketPort : IPacketPort
{
    /// <summary>TPACKET_ALIGN(sizeof(struct tpacket3_hdr)): where frame data starts in a TX frame.</summary>
    private const int TxDataOffset = 48;
    /// <summary>sll_pkttype sits in the sockaddr_ll that follows the aligned tpacket3_hdr.</summary>
    private const int PktTypeOffset = 48 + 10;
    private const uint TP_STATUS_VLAN_TPID_VALID = 64;

    private readonly int _rxBlockSize;
    private readonly int _rxBlockCount;
    private readonly int _txFrameCount;
    private readonly int[] _txFrameOffsets;
    private readonly int _txMaxFrame;
    private readonly nuint _ringSize;

    private int _fd;
    private byte* _ring;
    private byte* _rx;
    private byte* _tx;

    // RX position: the block we are in and, when a batch filled mid-block, the next frame in it.
    private int _rxBlock;
    private uint _rxPacketIndex;
    private byte* _rxPacket;

    private int _txHead;
    private int _txQueued;

    private PortStats _stats;
    private long _rxOversize;
    private long _txKicks;
    private long _txKickDeferred;
    private long _txKickErrors;
    private int _lastKickErrno;

    private AfPacketPort(string name, int fd, int ifIndex, MacAddress mac, bool kernelIgnoresOutgoing,
        byte* ring, nuint ringSize, int rxBlockSize, int rxBlockCount, int[] txFrameOffsets, int txFrameSize)
    {
        Name = name;
        _fd = fd;
        IfIndex = ifIndex;
        Mac = mac;
        KernelIgnoresOutgoing = kernelIgnoresOutgoing;
        _ring = ring;
        _ringSize = ringSize;
        _rx = ring;
        _rxBlockSize = rxBlockSize;
        _rxBlockCount = rxBlockCount;
        _tx = ring + ((nuint)rxBlockSize * (nuint)rxBlockCount);
        _txFrameOffsets = txFrameOffsets;
        _txFrameCount = txFrameOffsets.Length;
        _txMaxFrame = Math.Min(FrameBatch.SlotSize, txFrameSize - TxDataOffset);
    }

    /// <inheritdoc />
    public string Name { get; }

    /// <inheritdoc />
    public MacAddress Mac { get; }

    /// <inheritdoc />
    public int LinkMtu => _linkMtu ??= LinkSettings.MtuOrZero(Name);

    private int? _linkMtu;

    /// <summary>The interface index the socket is bound to (in the namespace it was opened in).</summary>
    public int IfIndex { get; }

    /// <summary>True when the kernel honours PACKET_IGNORE_OUTGOING; otherwise outgoing frames are skipped in Receive.</summary>
    public bool KernelIgnoresOutgoing { get; }

    /// <summary>Frames in the transmit ring (the requested count rounded up to whole ring blocks).</summary>
    public int TxRingFrames => _txFrameCount;

    /// <summary>Largest frame TrySend accepts, in bytes: the TX frame size minus the 48-byte ring header, at most <see cref="FrameBatch.SlotSize"/>.</summary>
    public int MaxTxFrameLength => _txMaxFrame;

    /// <inheritdoc />
    public int PollDescriptor => _fd;

    /// <summary>Received frames skipped because they were longer than <see cref="FrameBatch.SlotSize"/> (or cut short by the ring).</summary>
    public long RxOversize => _rxOversize;

    /// <summary>sendto kicks made by Flush (one per Flush that had frames queued).</summary>
    public long TxKicks => _txKicks;

    /// <summary>Flushes the kernel answered with EAGAIN or ENOBUFS (frames stay queued and go with the next Flush).</summary>
    public long TxKickDeferred => _txKickDeferred;

    /// <summary>Flushes that failed with another errno (see <see cref="LastKickErrno"/>); frames stay queued.</summary>
    public long TxKickErrors => _txKickErrors;

    /// <summary>The errno of the last failed flush, 0 if none failed.</summary>
    public int LastKickErrno => _lastKickErrno;

    /// <inheritdoc />
    public (long Count, int LastErrno) TxKickFailures => (Volatile.Read(ref _txKickErrors), Volatile.Read(ref _lastKickErrno));

    /// <summary>
    /// Counters. Reading them also collects the kernel's ring-overrun drops (PACKET_STATISTICS,
    /// which the kernel resets on each read, so the port accumulates them).
    /// </summary>
    public PortStats Stats
    {
        get
        {
            if (_fd >= 0)
            {
                TpacketStatsV3 ks = default;
                socklen_t len = (uint)sizeof(TpacketStatsV3);
                if (LibC.getsockopt(_fd, SOL_PACKET, PACKET_STATISTICS, &ks, &len) == 0)
                {
                    _stats.RxDropped += ks.Drops;
                }
            }
            PortStats s = _stats;
            s.TxKicks = _txKicks;
            s.TxKickDeferred = _txKickDeferred;
            s.TxKickErrors = _txKickErrors;
            s.RxOversize = _rxOversize;
            return s;
        }
    }

    /// <summary>
    /// Opens <paramref name="interfaceName"/> in the calling thread's network namespace (use
    /// <see cref="NetNamespace.RunIn{T}"/> to open it in another one).
    /// </summary>
    /// <exception cref="ArgumentException">The options are invalid or the name is empty or too long.</exception>
    /// <exception cref="NativeIoException">A system call failed: the message names it, the errno and a hint (e.g. missing CAP_NET_RAW).</exception>
    public static AfPacketPort Open(string interfaceName, AfPacketOptions options)
    {
        ArgumentException.ThrowIfNullOrEmpty(interfaceName);
        ArgumentNullException.ThrowIfNull(options);
        if (System.Text.Encoding.UTF8.GetByteCount(interfaceName) >= IFNAMSIZ)
        {
            throw new ArgumentException($"interface name '{interfaceName}' is longer than {IFNAMSIZ - 1} bytes", nameof(interfaceName));
        }
        options.Validate();
        string where = $"on '{interfaceName}'";

        // Protocol 0 at creation: nothing is queued until the rings exist and bind names the interface.
        int fd = LibC.socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
        if (fd < 0)
        {
            Errno.ThrowLast($"AF_PACKET socket {where}");
        }
        byte* ring = null;
        nuint ringSize = 0;
        try
        {
            uint ifIndex = NatdLibC.IfNameToIndex(interfaceName);
            if (ifIndex == 0)
            {
                int e = LibC.errno;
                Errno.Throw($"interface lookup (if_nametoindex) {where}", e == 0 ? ENODEV : e);
            }

            SetInt(fd, PACKET_VERSION, TPACKET_V3, $"PACKET_VERSION TPACKET_V3 {where}");

            bool ignoresOutgoing = true;
            int one = 1;
            if (LibC.setsockopt(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof(int)) != 0)
            {
                int e = LibC.errno;
                if (e != ENOPROTOOPT && e != EINVAL)
                {
                    Errno.Throw($"PACKET_IGNORE_OUTGOING {where}", e);
                }
                ignoresOutgoing = false; // kernel < 4.20: Receive skips PACKET_OUTGOING frames itself
            }
            if (options.QdiscBypass)
            {
                SetInt(fd, PACKET_QDISC_BYPASS, 1, $"PACKET_QDISC_BYPASS {where}");
            }
            // A malformed TX frame is skipped instead of stopping the ring with TP_STATUS_WRONG_FORMAT.
            SetInt(fd, PACKET_LOSS, 1, $"PACKET_LOSS {where}");

            var rxReq = new TpacketReq3
            {
                BlockSize = (uint)options.RxBlockSize,
                BlockCount = (uint)options.RxBlockCount,
                FrameSize = (uint)options.RxFrameSize,
                FrameCount = (uint)(options.RxBlockSize / options.RxFrameSize * options.RxBlockCount),
                RetireBlockTimeout = (uint)options.RxBlockTimeoutMilliseconds,
            };
            if (LibC.setsockopt(fd, SOL_PACKET, PACKET_RX_RING, &rxReq, (uint)sizeof(TpacketReq3)) != 0)
            {
                Errno.ThrowLast($"PACKET_RX_RING ({options.RxBlockCount} blocks of {options.RxBlockSize} bytes) {where}");
            }

            (int txBlockSize, int txFramesPerBlock, int txBlockCount) = TxGeometry(options.TxFrameSize, options.TxFrameCount);
            var txReq = new TpacketReq3
            {
                BlockSize = (uint)txBlockSize,
                BlockCount = (uint)txBlockCount,
                FrameSize = (uint)options.TxFrameSize,
                FrameCount = (uint)(txFramesPerBlock * txBlockCount),
            };
            if (LibC.setsockopt(fd, SOL_PACKET, PACKET_TX_RING, &txReq, (uint)sizeof(TpacketReq3)) != 0)
            {
                Errno.ThrowLast($"PACKET_TX_RING ({txReq.FrameCount} frames of {options.TxFrameSize} bytes) {where}");
            }

            nuint rxBytes = (nuint)options.RxBlockSize * (nuint)options.RxBlockCount;
            nuint txBytes = (nuint)txBlockSize * (nuint)txBlockCount;
            void* map = LibC.mmap(null, (size_t)(ulong)(rxBytes + txBytes), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
            if (map == MAP_FAILED)
            {
                Errno.ThrowLast($"mmap of the packet rings ({rxBytes + txBytes} bytes) {where}");
            }
            ring = (byte*)map;
            ringSize = rxBytes + txBytes;

            var sll = new sockaddr_ll
            {
                sll_family = (ushort)AF_PACKET,
                sll_protocol = BinaryPrimitives.ReverseEndianness(ETH_P_ALL),
                sll_ifindex = (int)ifIndex,
            };
            if (LibC.bind(fd, (sockaddr*)&sll, (uint)sizeof(sockaddr_ll)) != 0)
            {
                Errno.ThrowLast($"bind to ifindex {ifIndex} {where}");
            }
            if (options.FanoutGroup != 0)
            {
                // Join after bind (the kernel requires a bound socket); frames are spread by flow hash.
                int fanout = (options.FanoutGroup & 0xFFFF) | (PACKET_FANOUT_HASH << 16);
                if (LibC.setsockopt(fd, SOL_PACKET, PACKET_FANOUT, &fanout, sizeof(int)) != 0)
                {
                    Errno.ThrowLast($"PACKET_FANOUT group {options.FanoutGroup} {where}");
                }
            }

            MacAddress mac = ReadMac(fd, interfaceName, where);

            var offsets = new int[txFramesPerBlock * txBlockCount];
            for (int i = 0; i < offsets.Length; i++)
            {
                offsets[i] = (i / txFramesPerBlock * txBlockSize) + (i % txFramesPerBlock * options.TxFrameSize);
            }
            return new AfPacketPort(interfaceName, fd, (int)ifIndex, mac, ignoresOutgoing, ring, ringSize,
                options.RxBlockSize, options.RxBlockCount, offsets, options.TxFrameSize);
        }
        catch
        {
            if (ring != null)
            {
                LibC.munmap(ring, (size_t)(ulong)ringSize);
            }
            LibC.close(fd);
            throw;
        }
    }

    /// <summary>
    /// TX ring blocks: about 64 KiB each (fewer when few frames are asked for), whole pages, and
    /// enough of them for the requested frame count.
    /// </summary>
    private static (int BlockSize, int FramesPerBlock, int BlockCount) TxGeometry(int frameSize, int frameCount)
    {
        int page = Environment.SystemPageSize;
        int perBlock = Math.Max(1, 16 * page / frameSize);
        perBlock = Math.Min(perBlock, frameCount);
        int blockSize = (perBlock * frameSize + page - 1) / page * page;
        perBlock = blockSize / frameSize;
        int blocks = (frameCount + perBlock - 1) / perBlock;
        return (blockSize, perBlock, blocks);
    }

    private static void SetInt(int fd, int option, int value, string what)
    {
        if (LibC.setsockopt(fd, SOL_PACKET, option, &value, sizeof(int)) != 0)
        {
            Errno.ThrowLast(what);
        }
    }

    private static MacAddress ReadMac(int fd, string interfaceName, string where)
    {
        IfReq req = default;
        int n = System.Text.Encoding.UTF8.GetBytes(interfaceName, new Span<byte>(req.Name, IFNAMSIZ - 1));
        req.Name[n] = 0;
        if (LibC.ioctl(fd, SIOCGIFHWADDR, &req) != 0)
        {
            Errno.ThrowLast($"SIOCGIFHWADDR {where}");
        }
        return MacAddress.Read(new ReadOnlySpan<byte>(req.HwAddrData, 6));
    }

    /// <inheritdoc />
    /// <exception cref="ObjectDisposedException">The port was disposed.</exception>
    public int Receive(FrameBatch batch)
    {
        if (_rx == null)
        {
            ThrowDisposed();
        }
        int added = 0;
        while (batch.Count < batch.Capacity)
        {
            byte* block = _rx + ((nint)_rxBlock * _rxBlockSize);
            ref TpacketHdrV1 bh = ref ((TpacketBlockDesc*)block)->Hdr;
            if ((Volatile.Read(ref bh.BlockStatus) & TP_STATUS_USER) == 0)
            {
                break; // the kernel still owns the block: nothing more waits
            }
            if (_rxPacketIndex == 0)
            {
                _rxPacket = block + bh.OffsetToFirstPkt;
            }
            uint packets = bh.NumPkts;
            while (_rxPacketIndex < packets)
            {
                if (batch.Count >= batch.Capacity)
                {
                    return added; // resume at _rxPacket next call; the block stays ours
                }
                Tpacket3Hdr* h = (Tpacket3Hdr*)_rxPacket;
                if (CopyFrame(h, batch))
                {
                    added++;
                    _stats.RxFrames++;
                }
                _rxPacketIndex++;
                _rxPacket += h->NextOffset;
            }
            // Every frame of the block is copied: hand it back to the kernel.
            Volatile.Write(ref bh.BlockStatus, TP_STATUS_KERNEL);
            _rxPacketIndex = 0;
            _rxPacket = null;
            _rxBlock = _rxBlock + 1 == _rxBlockCount ? 0 : _rxBlock + 1;
        }
        return added;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool CopyFrame(Tpacket3Hdr* h, FrameBatch batch)
    {
        byte* frame = (byte*)h;
        if (frame[PktTypeOffset] == PACKET_OUTGOING)
        {
            return false; // our own transmission (only when PACKET_IGNORE_OUTGOING is missing)
        }
        uint status = h->Status;
        int length = (int)h->SnapLen;
        bool vlan = (status & TP_STATUS_VLAN_VALID) != 0;
        int total = vlan ? length + 4 : length;
        if (total > FrameBatch.SlotSize || h->SnapLen < h->Len || (vlan && length < 12))
        {
            _rxOversize++;
            return false;
        }
        int slot = batch.Count;
        Span<byte> dst = batch.Slot(slot);
        var src = new ReadOnlySpan<byte>(frame + h->Mac, length);
        if (vlan)
        {
            // The driver took the 802.1Q tag off into metadata; put it back where it was on the wire.
            src[..12].CopyTo(dst);
            ushort tpid = (status & TP_STATUS_VLAN_TPID_VALID) != 0 ? h->VlanTpid : (ushort)0x8100;
            BinaryPrimitives.WriteUInt16BigEndian(dst[12..], tpid);
            BinaryPrimitives.WriteUInt16BigEndian(dst[14..], (ushort)h->VlanTci);
            src[12..].CopyTo(dst[16..]);
        }
        else
        {
            src.CopyTo(dst);
        }
        batch.Lengths[slot] = total;
        batch.Flags[slot] = (status & TP_STATUS_CSUMNOTREADY) != 0 ? FrameFlags.ChecksumPartial : FrameFlags.None;
        batch.Timestamps[slot] = ((long)h->Sec * 1_000_000_000L) + h->Nsec;
        batch.Count = slot + 1;
        return true;
    }

    /// <inheritdoc />
    /// <remarks>
    /// Also false (counted in TxDropped) for a frame longer than <see cref="MaxTxFrameLength"/>.
    /// The frame goes out on the next <see cref="Flush"/>.
    /// </remarks>
    /// <exception cref="ObjectDisposedException">The port was disposed.</exception>
    public bool TrySend(ReadOnlySpan<byte> frame)
    {
        if (_tx == null)
        {
            ThrowDisposed();
        }
        Tpacket3Hdr* h = (Tpacket3Hdr*)(_tx + _txFrameOffsets[_txHead]);
        if (Volatile.Read(ref h->Status) != TP_STATUS_AVAILABLE || frame.Length > _txMaxFrame)
        {
            _stats.TxDropped++;
            return false;
        }
        frame.CopyTo(new Span<byte>((byte*)h + TxDataOffset, _txMaxFrame));
        h->NextOffset = 0; // V3 TX requires it: no variable-sized slots
        h->Len = (uint)frame.Length;
        h->SnapLen = (uint)frame.Length;
        Volatile.Write(ref h->Status, TP_STATUS_SEND_REQUEST);
        _txHead = _txHead + 1 == _txFrameCount ? 0 : _txHead + 1;
        _txQueued++;
        _stats.TxFrames++;
        return true;
    }

    /// <inheritdoc />
    /// <remarks>
    /// One non-blocking sendto(fd, NULL, 0) when frames are queued. EAGAIN and ENOBUFS are counted
    /// (<see cref="TxKickDeferred"/>), other errors too (<see cref="TxKickErrors"/>); the frames
    /// stay in the ring and the next Flush tries again. Never throws on the packet path.
    /// </remarks>
    public void Flush()
    {
        if (_txQueued == 0 || _fd < 0)
        {
            return;
        }
        _txKicks++;
        if ((long)LibC.sendto(_fd, null, 0, MSG_DONTWAIT, null, 0) >= 0)
        {
            _txQueued = 0;
            return;
        }
        int e = LibC.errno;
        if (e == EAGAIN || e == ENOBUFS || e == EINTR)
        {
            _txKickDeferred++;
        }
        else
        {
            _txKickErrors++;
            _lastKickErrno = e;
        }
    }

    /// <summary>Unmaps the rings and closes the socket; later calls do nothing.</summary>
    public void Dispose()
    {
        Release();
        GC.SuppressFinalize(this);
    }

    /// <summary>Releases the mapping and the socket if Dispose was not called.</summary>
    ~AfPacketPort() => Release();

    private void Release()
    {
        if (_ring != null)
        {
            LibC.munmap(_ring, (size_t)(ulong)_ringSize);
            _ring = null;
            _rx = null;
            _tx = null;
        }
        if (_fd >= 0)
        {
            LibC.close(_fd);
            _fd = -1;
        }
    }

    [System.Diagnostics.CodeAnalysis.DoesNotReturn]
    private void ThrowDisposed() => throw new ObjectDisposedException(nameof(AfPacketPort), $"AF_PACKET port '{Name}' is disposed");
}
