using System.Runtime.CompilerServices;
using Natd.Dataplane.Io.Native;
using Natd.Dataplane.Packets;
using Tmds.Linux;
using static Natd.Dataplane.Io.Native.Constants;
using static Tmds.Linux.LibC;

namespace Natd.Dataplane.Io;

/// <summary>The kernel's counters for one AF_XDP socket (XDP_STATISTICS; cumulative since the socket was bound).</summary>
/// <param name="RxDropped">Frames dropped for reasons other than a full RX ring, including an empty fill ring.</param>
/// <param name="RxInvalidDescriptors">Fill ring entries the kernel rejected.</param>
/// <param name="TxInvalidDescriptors">TX descriptors the kernel rejected (bad address or length).</param>
/// <param name="RxRingFull">Frames dropped because the RX ring was full (the reader was too slow).</param>
/// <param name="RxFillRingEmpty">Times the kernel found no free frame on the fill ring.</param>
/// <param name="TxRingEmpty">Times the kernel was woken for TX and found nothing to send.</param>
public readonly record struct AfXdpSocketStats(
    long RxDropped, long RxInvalidDescriptors, long TxInvalidDescriptors, long RxRingFull, long RxFillRingEmpty, long TxRingEmpty);

/// <summary>
/// A live interface through an AF_XDP socket (the kernel's Documentation/networking/af_xdp.rst),
/// set up without libbpf or libxdp: a UMEM of <see cref="FrameSize"/>-byte frames in native memory,
/// the fill, completion, RX and TX rings mapped into the process, and an XDP program
/// (<see cref="BpfXskRedirect"/>) that redirects every frame arriving on the bound queue to the
/// socket. Frames on other queues pass to the kernel stack. The socket binds in copy mode
/// (XDP_COPY) with XDP_USE_NEED_WAKEUP, which works on every driver including veth.
/// </summary>
/// <remarks>
/// <para>Every frame that arrives on the bound queue goes to natd and none to the kernel stack,
/// not even ARP for the interface's own addresses: the interface belongs to the dataplane, as
/// with AF_PACKET plus a firewall that drops everything. Frames natd transmits are not received
/// back (AF_XDP has no loopback of its own transmissions).</para>
/// <para>A port from <see cref="Open(string, AfXdpOptions)"/> has a UMEM of its own: half the frames (at most a ring's
/// worth) are lent to the kernel on the fill ring for receiving; Receive copies each received
/// frame into the batch and returns its UMEM frame to the fill ring at once. The other frames form
/// a free stack for transmitting: TrySend copies a frame into one and writes a TX descriptor; the
/// kernel returns it on the completion ring, which TrySend and Flush reap. Frames are never lost
/// on a failed send.</para>
/// <para>The two ports from <see cref="OpenPair(string, string, AfXdpOptions, AfXdpOptions)"/> share one UMEM and one free stack, and forward
/// without copies: Receive lends the received UMEM frame to the batch (the engine translates it
/// where the kernel wrote it), <see cref="TryForward"/> puts that same address on the egress
/// socket's TX ring, its completion ring gives it back to the free stack, and both sockets top
/// their fill rings up from there. Frames not transmitted return when the batch is cleared.
/// (In XDP_COPY mode the kernel still copies between its buffers and the UMEM; what goes is the
/// copy into and out of the UMEM in this process.)</para>
/// <para>The XDP program is attached through a BPF link owned by this port: Dispose, or the process
/// ending, detaches it. Receive, TrySend and Flush allocate nothing.</para>
/// </remarks>
public sealed unsafe class AfXdpPort : IPacketPort
{
    /// <summary>Bytes per UMEM frame (chunk). Received frames start 256 bytes in (XDP_PACKET_HEADROOM), so at most 1792 bytes arrive.</summary>
    public const int FrameSize = 2048;

    /// <summary>
    /// Bytes per UMEM frame of a pair opened with <see cref="OpenPair(string, string, AfXdpOptions, AfXdpOptions)"/>. Received frames start 256
    /// bytes in, and a lent frame is a batch slot of <see cref="FrameBatch.SlotSize"/> bytes from
    /// there (room to grow in place), which needs more than 2048.
    /// </summary>
    public const int SharedFrameSize = 4096;

    /// <summary>Frames the kernel sends per sendto in copy mode (the kernel's TX batch): Flush kicks again while frames remain.</summary>
    private const int KernelTxBatch = 32;

    private readonly string _where;
    private readonly AfXdpUmem _pool;
    private readonly ulong _umemSize;
    private readonly ulong _chunkMask;
    private readonly int _maxKicks;
    // Zero-copy receive: received frames are lent to the batch instead of copied (ports of a pair).
    private readonly bool _lend;
    private int _txFrameCount;

    private int _fd;
    private byte* _umem;
    private BpfXskRedirect? _bpf;

    private XskRing _rx;
    private XskRing _tx;
    private XskRing _fill;
    private XskRing _completion;

    private uint _txPublished;
    // Frames given to the fill ring and not yet back on the RX ring (the kernel holds them), and how many it should hold.
    private int _onFill;
    private int _fillTarget;

    private PortStats _stats;
    private long _rxOversize;
    private long _txZeroCopy;
    private long _txKicks;
    private long _txKickDeferred;
    private long _txKickErrors;
    private int _lastKickErrno;

    /// <summary>One mapped ring: our index (producer of fill/TX, consumer of RX/completion) and the last seen kernel index.</summary>
    private struct XskRing
    {
        public byte* Map;
        public nuint MapLength;
        public uint* Producer;
        public uint* Consumer;
        public uint* Flags;
        public byte* Descriptors;
        public uint Size;
        public uint Mask;
        /// <summary>Our index: the producer of the fill and TX rings, the consumer of the RX and completion rings.</summary>
        public uint Local;
        /// <summary>The kernel's index as last read: its consumer of fill/TX, its producer of RX/completion.</summary>
        public uint Cached;
    }

    private AfXdpPort(string name, int ifIndex, int queueId, int fd, AfXdpUmem pool, int txFrameCount, int ringSize, string where, bool lend)
    {
        Name = name;
        IfIndex = ifIndex;
        QueueId = queueId;
        _fd = fd;
        _pool = pool;
        _umem = pool.Base;
        _umemSize = pool.Size;
        _chunkMask = (ulong)pool.ChunkSize - 1;
        _lend = lend;
        _txFrameCount = txFrameCount;
        _maxKicks = (ringSize / KernelTxBatch) + 2;
        _where = where;
    }

    /// <inheritdoc />
    public string Name { get; }

    /// <inheritdoc />
    public MacAddress Mac { get; private set; }

    /// <inheritdoc />
    public int LinkMtu => _linkMtu ??= LinkSettings.MtuOrZero(Name);

    private int? _linkMtu;

    /// <summary>The interface index (in the namespace the port was opened in).</summary>
    public int IfIndex { get; }

    /// <summary>The interface queue the socket is bound to.</summary>
    public int QueueId { get; }

    /// <summary>The mode the XDP program runs in (Native or Generic).</summary>
    public XdpAttachMode AttachMode { get; private set; }

    /// <summary>True when the socket is bound with XDP_USE_NEED_WAKEUP (system calls only when the kernel asks).</summary>
    public bool NeedWakeup { get; private set; }

    /// <summary>Frames TrySend accepts before a Flush and the kernel's completions free some: the TX frames or the TX ring, whichever is smaller.</summary>
    public int TxCapacity => (int)Math.Min((uint)_txFrameCount, _tx.Size);

    /// <summary>UMEM frames lent to the kernel for receiving (for a port of a pair: the number it keeps topping its fill ring up to).</summary>
    public int RxFrameCount { get; private set; }

    /// <summary>True for a port of a pair (<see cref="OpenPair(string, string, AfXdpOptions, AfXdpOptions)"/>): received frames stay in the UMEM and are lent to the batch.</summary>
    public bool ZeroCopy => _lend;

    /// <summary>Frames in this port's UMEM (shared with the other port of a pair).</summary>
    public int UmemFrameCount => _pool.FrameCount;

    /// <summary>UMEM frames on the free stack: held by no ring and no batch.</summary>
    public int UmemFreeFrames => _pool.FreeCount;

    /// <summary>Frames this socket has on its fill ring or in the kernel between the fill and RX rings.</summary>
    public int FillFrames => _onFill;

    /// <summary>Frames transmitted by <see cref="TryForward"/> without a copy (the received UMEM frame itself went on the TX ring).</summary>
    public long TxZeroCopy => _txZeroCopy;

    /// <summary>True when both ports use one UMEM (a pair), so frames move between them without copies.</summary>
    public bool SharesUmemWith(AfXdpPort other) => other is not null && ReferenceEquals(other._pool, _pool);

    /// <summary>Largest frame TrySend accepts, in bytes (<see cref="FrameBatch.SlotSize"/>, which equals <see cref="FrameSize"/>).</summary>
    public int MaxTxFrameLength => Math.Min(FrameSize, FrameBatch.SlotSize);

    /// <inheritdoc />
    /// <remarks>The AF_XDP socket: poll(2) reports POLLIN when the RX ring holds frames.</remarks>
    public int PollDescriptor => _fd;

    /// <summary>Received frames skipped because they did not fit a batch slot or lay outside the UMEM.</summary>
    public long RxOversize => _rxOversize;

    /// <summary>sendto kicks made by Flush (several per Flush when more than 32 frames wait).</summary>
    public long TxKicks => _txKicks;

    /// <summary>Kicks answered with EAGAIN, EBUSY or ENOBUFS (backpressure): the frames stay queued for the next Flush.</summary>
    public long TxKickDeferred => _txKickDeferred;

    /// <summary>Kicks that failed with another errno (see <see cref="LastKickErrno"/>); the frames stay queued.</summary>
    public long TxKickErrors => _txKickErrors;

    /// <summary>The errno of the last failed kick, 0 if none failed.</summary>
    public int LastKickErrno => _lastKickErrno;

    /// <inheritdoc />
    public (long Count, int LastErrno) TxKickFailures => (Volatile.Read(ref _txKickErrors), Volatile.Read(ref _lastKickErrno));

    /// <summary>
    /// Counters. RxDropped is the kernel's count of frames it could not deliver for want of room (no
    /// fill frame, full RX ring); RxOversize adds, to the frames natd found too large for a slot,
    /// those the kernel found too large for a UMEM frame.
    /// </summary>
    /// <remarks>
    /// The kernel's rx_dropped counts a frame larger than the UMEM frame and a frame that found no
    /// fill frame (which rx_fill_ring_empty_descs counts as well): the difference is the frames too
    /// large. A lone socket's UMEM frames are <see cref="FrameSize"/> bytes, so there the kernel, not
    /// natd, turns a large frame away.
    /// </remarks>
    public PortStats Stats
    {
        get
        {
            AfXdpSocketStats k = SocketStats;
            PortStats s = _stats;
            long tooLarge = Math.Max(0, k.RxDropped - k.RxFillRingEmpty);
            s.RxDropped = k.RxDropped - tooLarge + k.RxRingFull;
            s.RxFillRingEmpty = k.RxFillRingEmpty;
            s.TxKicks = _txKicks;
            s.TxKickDeferred = _txKickDeferred;
            s.TxKickErrors = _txKickErrors;
            s.RxOversize = _rxOversize + tooLarge;
            return s;
        }
    }

    /// <summary>The kernel's socket counters (all zero once disposed).</summary>
    public AfXdpSocketStats SocketStats
    {
        get
        {
            XdpStatistics k = default;
            socklen_t len = (uint)sizeof(XdpStatistics);
            if (_fd < 0 || LibC.getsockopt(_fd, SOL_XDP, XDP_STATISTICS, &k, &len) != 0)
            {
                return default;
            }
            return new AfXdpSocketStats((long)k.RxDropped, (long)k.RxInvalidDescs, (long)k.TxInvalidDescs,
                (long)k.RxRingFull, (long)k.RxFillRingEmptyDescs, (long)k.TxRingEmptyDescs);
        }
    }

    /// <summary>
    /// Opens <paramref name="interfaceName"/> in the calling thread's network namespace (use
    /// <see cref="NetNamespace.RunIn{T}"/> to open it in another one): registers the UMEM, maps the
    /// rings, binds to <see cref="AfXdpOptions.QueueId"/> and attaches the redirect program.
    /// </summary>
    /// <exception cref="ArgumentException">The options are invalid (or the fill ring takes every frame), or the name is empty or too long.</exception>
    /// <exception cref="NativeIoException">
    /// A system call failed; the message names it, the errno and a hint. EAFNOSUPPORT, ENOSYS, EPERM
    /// and EACCES mean AF_XDP is unavailable here (old kernel, missing CAP_NET_ADMIN/CAP_BPF) and
    /// the message says AF_PACKET is the way out; EBUSY means another XDP program owns the interface.
    /// </exception>
    public static AfXdpPort Open(string interfaceName, AfXdpOptions options) => Open(interfaceName, options, sameInterface: null);

    /// <summary>
    /// As <see cref="Open(string, AfXdpOptions)"/>; with <paramref name="sameInterface"/> (a port open
    /// on another queue of the same interface) the socket joins that port's XDP program instead of
    /// attaching one: an interface runs one XDP program, whose XSKMAP holds one socket per queue.
    /// </summary>
    /// <exception cref="ArgumentException">As Open, or <paramref name="sameInterface"/> is on another interface.</exception>
    /// <exception cref="NativeIoException">As Open.</exception>
    public static AfXdpPort Open(string interfaceName, AfXdpOptions options, AfXdpPort? sameInterface)
    {
        CheckName(interfaceName);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        CheckJoin(interfaceName, sameInterface);
        var umem = new AfXdpUmem(options.FrameCount, FrameSize);
        int rxFrames = options.FillRingFrames > 0 ? options.FillRingFrames : Math.Min(options.FrameCount / 2, options.RingSize);
        if (rxFrames >= options.FrameCount)
        {
            throw new ArgumentException($"FillRingFrames {rxFrames} leaves none of the {options.FrameCount} UMEM frames for transmitting", nameof(options));
        }
        return OpenSocket(interfaceName, options, umem, rxFrames, options.FrameCount - rxFrames, owner: null, lend: false, sameInterface);
    }

    private static void CheckJoin(string interfaceName, AfXdpPort? sameInterface)
    {
        if (sameInterface is not null && sameInterface.Name != interfaceName)
        {
            throw new ArgumentException($"a socket on '{interfaceName}' cannot join the XDP program of '{sameInterface.Name}'", nameof(sameInterface));
        }
    }

    /// <summary>
    /// Opens two sockets over ONE UMEM for zero-copy forwarding between them (natd's inside and
    /// outside port of one poller): <paramref name="first"/> registers the UMEM
    /// (<paramref name="firstOptions"/>.FrameCount frames of <see cref="SharedFrameSize"/> bytes),
    /// <paramref name="second"/> binds with XDP_SHARED_UMEM to the first socket, with its own fill
    /// and completion rings. Each socket keeps <see cref="AfXdpOptions.FillRingFrames"/> (by default
    /// a quarter of the frames, at most a ring) on its fill ring; the rest are free for transmitting.
    /// Received frames are lent to the batch, and <see cref="TryForward"/> of a frame the other port
    /// received puts the same UMEM address on this port's TX ring.
    /// </summary>
    /// <remarks>
    /// The kernel (net/xdp/xsk.c, xsk_bind) allows a shared UMEM between sockets on different
    /// devices or queues since Linux 5.10, when each socket brings its own fill and completion ring
    /// (it gets its own buffer pool over the UMEM); sockets on the same device and queue would share
    /// the fill ring instead, which natd never does. The second socket inherits the first's bind
    /// mode (copy, need-wakeup): the kernel refuses mode flags together with XDP_SHARED_UMEM. Both
    /// ports must be used from one thread, as the UMEM's free frames are shared without a lock.
    /// </remarks>
    /// <exception cref="ArgumentException">Options invalid, fill rings taking every frame, or a name empty or too long.</exception>
    /// <exception cref="NativeIoException">As <see cref="Open(string, AfXdpOptions)"/>; EINVAL from the second bind means the kernel cannot share a UMEM across devices (before 5.10).</exception>
    public static (AfXdpPort First, AfXdpPort Second) OpenPair(string first, string second, AfXdpOptions firstOptions, AfXdpOptions secondOptions)
        => OpenPair(first, second, firstOptions, secondOptions, default);

    /// <summary>
    /// As <see cref="OpenPair(string, string, AfXdpOptions, AfXdpOptions)"/>; with
    /// <paramref name="sameInterfaces"/> (the pair of another poller, on other queues of the same two
    /// interfaces) both sockets join that pair's XDP programs (one program per interface).
    /// </summary>
    /// <exception cref="ArgumentException">As OpenPair, or a port of <paramref name="sameInterfaces"/> is on another interface.</exception>
    /// <exception cref="NativeIoException">As OpenPair.</exception>
    public static (AfXdpPort First, AfXdpPort Second) OpenPair(string first, string second, AfXdpOptions firstOptions, AfXdpOptions secondOptions,
        (AfXdpPort First, AfXdpPort Second)? sameInterfaces)
    {
        CheckName(first);
        CheckName(second);
        CheckJoin(first, sameInterfaces?.First);
        CheckJoin(second, sameInterfaces?.Second);
        ArgumentNullException.ThrowIfNull(firstOptions);
        ArgumentNullException.ThrowIfNull(secondOptions);
        firstOptions.Validate();
        secondOptions.Validate();
        int frames = firstOptions.FrameCount;
        int fillFirst = firstOptions.FillRingFrames > 0 ? firstOptions.FillRingFrames : Math.Min(frames / 4, firstOptions.RingSize);
        int fillSecond = secondOptions.FillRingFrames > 0 ? secondOptions.FillRingFrames : Math.Min(frames / 4, secondOptions.RingSize);
        int txFrames = frames - fillFirst - fillSecond;
        if (txFrames <= 0)
        {
            throw new ArgumentException(
                $"fill rings of {fillFirst} and {fillSecond} frames leave none of the {frames} UMEM frames for transmitting", nameof(firstOptions));
        }
        var umem = new AfXdpUmem(frames, SharedFrameSize);
        AfXdpPort a = OpenSocket(first, firstOptions, umem, fillFirst, txFrames, owner: null, lend: true, sameInterfaces?.First);
        try
        {
            umem.AddRef();
            AfXdpPort b = OpenSocket(second, secondOptions, umem, fillSecond, txFrames, owner: a, lend: true, sameInterfaces?.Second);
            return (a, b);
        }
        catch
        {
            a.Dispose();
            throw;
        }
    }

    private static void CheckName(string interfaceName)
    {
        ArgumentException.ThrowIfNullOrEmpty(interfaceName);
        if (System.Text.Encoding.UTF8.GetByteCount(interfaceName) >= IFNAMSIZ)
        {
            throw new ArgumentException($"interface name '{interfaceName}' is longer than {IFNAMSIZ - 1} bytes", nameof(interfaceName));
        }
    }

    /// <summary>Opens one socket over <paramref name="umem"/>, whose reference it takes over (released on failure).</summary>
    private static AfXdpPort OpenSocket(string interfaceName, AfXdpOptions options, AfXdpUmem umem, int fillFrames, int txFrames, AfXdpPort? owner, bool lend, AfXdpPort? program)
    {
        string where = $"on '{interfaceName}' queue {options.QueueId}";
        AfXdpPort? port = null;
        int fd = -1;
        try
        {
            uint ifIndex = NatdLibC.IfNameToIndex(interfaceName);
            if (ifIndex == 0)
            {
                int e = LibC.errno;
                AfXdpErrors.Throw($"interface lookup (if_nametoindex) {where}", e == 0 ? ENODEV : e);
            }
            fd = LibC.socket(AF_XDP, SOCK_RAW | SOCK_CLOEXEC, 0);
            if (fd < 0)
            {
                AfXdpErrors.ThrowLast($"AF_XDP socket {where}");
            }
            port = new AfXdpPort(interfaceName, (int)ifIndex, options.QueueId, fd, umem, txFrames, options.RingSize, where, lend);
            port.Setup(options, fillFrames, owner, program);
            return port;
        }
        catch
        {
            if (port is not null)
            {
                port.Dispose();
            }
            else
            {
                if (fd >= 0)
                {
                    LibC.close(fd);
                }
                umem.Release();
            }
            throw;
        }
    }

    private void Setup(AfXdpOptions options, int fillFrames, AfXdpPort? owner, AfXdpPort? program)
    {
        if (owner is null)
        {
            var reg = new XdpUmemReg { Addr = (ulong)_umem, Len = _umemSize, ChunkSize = (uint)_pool.ChunkSize, Headroom = 0 };
            if (LibC.setsockopt(_fd, SOL_XDP, XDP_UMEM_REG, &reg, (uint)sizeof(XdpUmemReg)) != 0)
            {
                AfXdpErrors.ThrowLast($"XDP_UMEM_REG ({_pool.FrameCount} frames of {_pool.ChunkSize} bytes) {_where}");
            }
        }
        // A socket sharing the UMEM still gets its own fill and completion rings (another device or queue).
        int ring = options.RingSize;
        SetRingSize(XDP_UMEM_FILL_RING, ring, "XDP_UMEM_FILL_RING");
        SetRingSize(XDP_UMEM_COMPLETION_RING, ring, "XDP_UMEM_COMPLETION_RING");
        SetRingSize(XDP_RX_RING, ring, "XDP_RX_RING");
        SetRingSize(XDP_TX_RING, ring, "XDP_TX_RING");

        XdpMmapOffsets off = default;
        socklen_t len = (uint)sizeof(XdpMmapOffsets);
        if (LibC.getsockopt(_fd, SOL_XDP, XDP_MMAP_OFFSETS, &off, &len) != 0)
        {
            AfXdpErrors.ThrowLast($"XDP_MMAP_OFFSETS {_where}");
        }
        if ((uint)len != (uint)sizeof(XdpMmapOffsets))
        {
            // Kernels before 5.4 return offsets without the ring flags (no need-wakeup support).
            AfXdpErrors.Throw($"XDP_MMAP_OFFSETS returned {(uint)len} bytes, not {sizeof(XdpMmapOffsets)} (kernel older than 5.4) {_where}", EINVAL);
        }

        _rx = MapRing(off.Rx, ring, sizeof(XdpDesc), XDP_PGOFF_RX_RING, "RX");
        _tx = MapRing(off.Tx, ring, sizeof(XdpDesc), XDP_PGOFF_TX_RING, "TX");
        _fill = MapRing(off.Fill, ring, sizeof(ulong), XDP_UMEM_PGOFF_FILL_RING, "fill");
        _completion = MapRing(off.Completion, ring, sizeof(ulong), XDP_UMEM_PGOFF_COMPLETION_RING, "completion");

        // fillFrames free frames wait on the fill ring for received frames; the rest stay free for TX.
        _fillTarget = fillFrames;
        RxFrameCount = fillFrames;
        TopUpFill();

        Bind(options, owner);
        Mac = ReadMac();
        _bpf = program?._bpf is { } shared
            ? shared.Join((uint)QueueId, _fd, _where)
            : BpfXskRedirect.Attach(IfIndex, (uint)QueueId, _fd, options.Mode, _where, options.RedirectEtherTypes);
        AttachMode = _bpf.Mode;
    }

    private void SetRingSize(int option, int entries, string what)
    {
        if (LibC.setsockopt(_fd, SOL_XDP, option, &entries, sizeof(int)) != 0)
        {
            AfXdpErrors.ThrowLast($"{what} ({entries} entries) {_where}");
        }
    }

    private XskRing MapRing(XdpRingOffset off, int entries, int descriptorSize, long pageOffset, string what)
    {
        nuint length = (nuint)(off.Desc + ((ulong)entries * (ulong)descriptorSize));
        void* map = LibC.mmap(null, (size_t)(ulong)length, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, _fd, pageOffset);
        if (map == MAP_FAILED)
        {
            AfXdpErrors.ThrowLast($"mmap of the {what} ring ({length} bytes) {_where}");
        }
        byte* b = (byte*)map;
        var r = new XskRing
        {
            Map = b,
            MapLength = length,
            Producer = (uint*)(b + off.Producer),
            Consumer = (uint*)(b + off.Consumer),
            Flags = (uint*)(b + off.Flags),
            Descriptors = b + off.Desc,
            Size = (uint)entries,
            Mask = (uint)entries - 1,
        };
        // Start where the kernel is (0 on a new socket).
        r.Local = what is "RX" or "completion" ? Volatile.Read(ref *r.Consumer) : Volatile.Read(ref *r.Producer);
        r.Cached = what is "RX" or "completion" ? Volatile.Read(ref *r.Producer) : Volatile.Read(ref *r.Consumer);
        return r;
    }

    private void Bind(AfXdpOptions options, AfXdpPort? owner)
    {
        if (owner is not null)
        {
            var shared = new SockAddrXdp
            {
                Family = AF_XDP,
                Flags = XDP_SHARED_UMEM, // no mode flags: the kernel takes them from the owner's socket
                IfIndex = (uint)IfIndex,
                QueueId = (uint)options.QueueId,
                SharedUmemFd = (uint)owner._fd,
            };
            NeedWakeup = owner.NeedWakeup;
            if (LibC.bind(_fd, (sockaddr*)&shared, (uint)sizeof(SockAddrXdp)) != 0)
            {
                AfXdpErrors.ThrowLast($"bind (XDP_SHARED_UMEM with '{owner.Name}' queue {owner.QueueId}; across devices it needs Linux 5.10) to ifindex {IfIndex} {_where}");
            }
            return;
        }
        var sxdp = new SockAddrXdp
        {
            Family = AF_XDP,
            Flags = XDP_COPY | XDP_USE_NEED_WAKEUP,
            IfIndex = (uint)IfIndex,
            QueueId = (uint)options.QueueId,
        };
        NeedWakeup = true;
        if (LibC.bind(_fd, (sockaddr*)&sxdp, (uint)sizeof(SockAddrXdp)) == 0)
        {
            return;
        }
        int e = LibC.errno;
        if (e == EINVAL)
        {
            // A kernel without XDP_USE_NEED_WAKEUP (before 5.4): then every Flush kicks.
            sxdp.Flags = XDP_COPY;
            NeedWakeup = false;
            if (LibC.bind(_fd, (sockaddr*)&sxdp, (uint)sizeof(SockAddrXdp)) == 0)
            {
                return;
            }
            e = LibC.errno;
        }
        AfXdpErrors.Throw($"bind (XDP_COPY) to ifindex {IfIndex} {_where}", e);
    }

    private MacAddress ReadMac()
    {
        // An AF_XDP socket has no ioctls (EOPNOTSUPP): ask through a short-lived packet socket
        // with protocol 0, which receives nothing, in the same namespace.
        int s = LibC.socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (s < 0)
        {
            Errno.ThrowLast($"socket for SIOCGIFHWADDR {_where}");
        }
        try
        {
            IfReq req = default;
            int n = System.Text.Encoding.UTF8.GetBytes(Name, new Span<byte>(req.Name, IFNAMSIZ - 1));
            req.Name[n] = 0;
            if (LibC.ioctl(s, SIOCGIFHWADDR, &req) != 0)
            {
                Errno.ThrowLast($"SIOCGIFHWADDR {_where}");
            }
            return MacAddress.Read(new ReadOnlySpan<byte>(req.HwAddrData, 6));
        }
        finally
        {
            LibC.close(s);
        }
    }

    /// <inheritdoc />
    /// <remarks>
    /// Timestamps are 0 (AF_XDP gives none) and flags None (copy mode delivers finished checksums).
    /// A port of a pair lends each frame (the slot is the UMEM frame, see <see cref="FrameBatch.IsLent"/>)
    /// and tops its fill ring up from the UMEM's free frames; a single port copies into the slot and
    /// gives the UMEM frame straight back to the fill ring.
    /// </remarks>
    /// <exception cref="ObjectDisposedException">The port was disposed.</exception>
    public int Receive(FrameBatch batch)
    {
        if (_umem == null)
        {
            ThrowDisposed();
        }
        uint room = (uint)(batch.Capacity - batch.Count);
        uint waiting = _rx.Cached - _rx.Local;
        if (waiting < room)
        {
            _rx.Cached = Volatile.Read(ref *_rx.Producer); // acquire: descriptors up to here are written
            waiting = _rx.Cached - _rx.Local;
        }
        uint take = Math.Min(waiting, room);
        int added = 0;
        XdpDesc* rx = (XdpDesc*)_rx.Descriptors;
        ulong* fill = (ulong*)_fill.Descriptors;
        if (_lend)
        {
            return ReceiveLent(batch, take, rx);
        }
        for (uint i = 0; i < take; i++)
        {
            XdpDesc d = rx[(_rx.Local + i) & _rx.Mask];
            if (d.Len <= (uint)FrameBatch.SlotSize && d.Addr + d.Len <= _umemSize)
            {
                int slot = batch.Count;
                new ReadOnlySpan<byte>(_umem + d.Addr, (int)d.Len).CopyTo(batch.Slot(slot));
                batch.Lengths[slot] = (int)d.Len;
                batch.Flags[slot] = FrameFlags.None;
                batch.Timestamps[slot] = 0;
                batch.Count = slot + 1;
                added++;
            }
            else
            {
                _rxOversize++;
            }
            // The frame is copied: lend it back for receiving. The fill ring always has room,
            // as it is as large as the set of receive frames.
            fill[_fill.Local & _fill.Mask] = d.Addr & ~_chunkMask;
            _fill.Local++;
        }
        if (take > 0)
        {
            _rx.Local += take;
            Volatile.Write(ref *_rx.Consumer, _rx.Local);   // release: our reads are done
            Volatile.Write(ref *_fill.Producer, _fill.Local); // release: the addresses are written
            _stats.RxFrames += added;
        }
        WakeForFill();
        return added;
    }

    /// <summary>Zero-copy receive: each frame becomes a batch slot over its UMEM frame; the fill ring is topped up from the free frames.</summary>
    private int ReceiveLent(FrameBatch batch, uint take, XdpDesc* rx)
    {
        int added = 0;
        for (uint i = 0; i < take; i++)
        {
            XdpDesc d = rx[(_rx.Local + i) & _rx.Mask];
            // The slot is SlotSize bytes from the frame's start: it must stay inside the chunk.
            if (d.Len <= (uint)FrameBatch.SlotSize && d.Addr + d.Len <= _umemSize
                && (d.Addr & _chunkMask) + (ulong)FrameBatch.SlotSize <= (ulong)_pool.ChunkSize)
            {
                int slot = batch.Count;
                batch.Lend(slot, _pool, d.Addr);
                batch.Lengths[slot] = (int)d.Len;
                batch.Flags[slot] = FrameFlags.None;
                batch.Timestamps[slot] = 0;
                batch.Count = slot + 1;
                added++;
            }
            else
            {
                _rxOversize++;
                _pool.Push(d.Addr);
            }
        }
        if (take > 0)
        {
            _rx.Local += take;
            Volatile.Write(ref *_rx.Consumer, _rx.Local);
            _onFill -= (int)take;
            _stats.RxFrames += added;
        }
        TopUpFill();
        WakeForFill();
        return added;
    }

    /// <summary>Puts free UMEM frames on the fill ring until it holds its share (<see cref="RxFrameCount"/>).</summary>
    private void TopUpFill()
    {
        int want = _fillTarget - _onFill;
        if (want <= 0)
        {
            return;
        }
        // The ring has room: at most _fillTarget (<= its size) frames are between fill and RX.
        ulong* fill = (ulong*)_fill.Descriptors;
        int n = 0;
        while (n < want && _pool.TryPop(out ulong addr))
        {
            fill[_fill.Local & _fill.Mask] = addr;
            _fill.Local++;
            n++;
        }
        if (n > 0)
        {
            _onFill += n;
            Volatile.Write(ref *_fill.Producer, _fill.Local); // release: the addresses are written
        }
    }

    private void WakeForFill()
    {
        if (NeedWakeup && (Volatile.Read(ref *_fill.Flags) & XDP_RING_NEED_WAKEUP) != 0)
        {
            // Zero-copy drivers ask for this when they ran out of fill frames; copy mode never does.
            LibC.recvfrom(_fd, null, 0, MSG_DONTWAIT, null, null);
        }
    }

    /// <inheritdoc />
    /// <remarks>
    /// Also false (counted in TxDropped) for a frame longer than <see cref="MaxTxFrameLength"/>,
    /// and when every TX frame is in flight. The frame goes out on the next <see cref="Flush"/>.
    /// </remarks>
    /// <exception cref="ObjectDisposedException">The port was disposed.</exception>
    public bool TrySend(ReadOnlySpan<byte> frame)
    {
        if (_umem == null)
        {
            ThrowDisposed();
        }
        if (frame.Length > MaxTxFrameLength)
        {
            _stats.TxDropped++;
            return false;
        }
        if (_pool.FreeCount == 0)
        {
            ReapCompletions();
        }
        if (!TxRingHasRoom() || !_pool.TryPop(out ulong addr))
        {
            _stats.TxDropped++;
            return false;
        }
        frame.CopyTo(new Span<byte>(_umem + addr, _pool.ChunkSize));
        XdpDesc* d = (XdpDesc*)_tx.Descriptors + (_tx.Local & _tx.Mask);
        d->Addr = addr;
        d->Len = (uint)frame.Length;
        d->Options = 0;
        _tx.Local++;
        _stats.TxFrames++;
        return true;
    }

    /// <inheritdoc />
    /// <remarks>
    /// When the frame is lent from this port's UMEM (received by this port or the other port of its
    /// pair) its address goes on the TX ring as it is, and the completion ring returns it to the
    /// free frames: no copy. Otherwise the frame is copied, as <see cref="TrySend"/>. False (counted
    /// in TxDropped) when the TX ring is full or the length is 0 or over a slot; the frame stays lent
    /// to the batch, which gives it back on Clear.
    /// </remarks>
    /// <exception cref="ObjectDisposedException">The port was disposed.</exception>
    public bool TryForward(FrameBatch batch, int index, int length)
    {
        if (_umem == null)
        {
            ThrowDisposed();
        }
        if (batch.LenderOf(index) != _pool)
        {
            return TrySend(batch.Slot(index)[..length]);
        }
        if ((uint)(length - 1) >= (uint)FrameBatch.SlotSize || !TxRingHasRoom())
        {
            _stats.TxDropped++;
            return false;
        }
        ulong addr = batch.TakeLoan(index);
        XdpDesc* d = (XdpDesc*)_tx.Descriptors + (_tx.Local & _tx.Mask);
        d->Addr = addr;
        d->Len = (uint)length;
        d->Options = 0;
        _tx.Local++;
        _stats.TxFrames++;
        _txZeroCopy++;
        return true;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool TxRingHasRoom()
    {
        if (_tx.Local - _tx.Cached < _tx.Size)
        {
            return true;
        }
        _tx.Cached = Volatile.Read(ref *_tx.Consumer);
        return _tx.Local - _tx.Cached < _tx.Size;
    }

    /// <summary>Takes the frames the kernel finished sending off the completion ring onto the free stack.</summary>
    private void ReapCompletions()
    {
        uint produced = Volatile.Read(ref *_completion.Producer);
        uint n = produced - _completion.Local;
        if (n == 0)
        {
            return;
        }
        ulong* ring = (ulong*)_completion.Descriptors;
        for (uint i = 0; i < n; i++)
        {
            _pool.Push(ring[(_completion.Local + i) & _completion.Mask]);
        }
        _completion.Local = produced;
        Volatile.Write(ref *_completion.Consumer, produced);
    }

    /// <inheritdoc />
    /// <remarks>
    /// Publishes the queued TX descriptors, then kicks with non-blocking sendto(fd, NULL, 0) while
    /// the kernel has descriptors left and makes progress: in copy mode it sends at most 32 frames
    /// per kick, and frames left unsent would hold their UMEM frames. At most RingSize/32 + 2 kicks.
    /// EAGAIN, EBUSY and ENOBUFS are counted (<see cref="TxKickDeferred"/>), other errors too
    /// (<see cref="TxKickErrors"/>); unsent frames stay queued for the next Flush. Never throws.
    /// </remarks>
    public void Flush()
    {
        if (_fd < 0 || _umem == null)
        {
            return;
        }
        if (_tx.Local != _txPublished)
        {
            Volatile.Write(ref *_tx.Producer, _tx.Local); // release: descriptors and frames are written
            _txPublished = _tx.Local;
        }
        ReapCompletions();
        for (int kick = 0; kick < _maxKicks; kick++)
        {
            uint consumed = Volatile.Read(ref *_tx.Consumer);
            _tx.Cached = consumed;
            if (consumed == _tx.Local)
            {
                break; // the kernel took every descriptor
            }
            if (NeedWakeup)
            {
                // The flag is read after the producer store: a full fence keeps that order.
                Interlocked.MemoryBarrier();
                if ((Volatile.Read(ref *_tx.Flags) & XDP_RING_NEED_WAKEUP) == 0)
                {
                    break; // the driver is sending on its own (zero-copy); no kick needed
                }
            }
            _txKicks++;
            if ((long)LibC.sendto(_fd, null, 0, MSG_DONTWAIT, null, 0) < 0)
            {
                int e = LibC.errno;
                if (e == EAGAIN || e == EBUSY || e == ENOBUFS || e == EINTR)
                {
                    _txKickDeferred++;
                }
                else
                {
                    _txKickErrors++;
                    _lastKickErrno = e;
                    break;
                }
            }
            ReapCompletions();
            if (Volatile.Read(ref *_tx.Consumer) == consumed)
            {
                break; // no progress (backpressure): the next Flush tries again
            }
        }
        if (_lend)
        {
            // Frames that came back from TX go to receiving again.
            TopUpFill();
        }
    }

    /// <summary>Detaches the XDP program, closes the map and the socket, unmaps the rings and frees the UMEM; later calls do nothing.</summary>
    public void Dispose()
    {
        Release();
        GC.SuppressFinalize(this);
    }

    /// <summary>Releases everything if Dispose was not called.</summary>
    ~AfXdpPort() => Release();

    private void Release()
    {
        // The program goes first, so no frame is redirected to a socket that is closing.
        _bpf?.Dispose();
        _bpf = null;
        Unmap(ref _rx);
        Unmap(ref _tx);
        Unmap(ref _fill);
        Unmap(ref _completion);
        if (_fd >= 0)
        {
            LibC.close(_fd);
            _fd = -1;
        }
        // The kernel unpins the UMEM when its last socket goes; the last port frees the memory.
        if (_umem != null)
        {
            _umem = null;
            _pool.Release();
        }
    }

    private static void Unmap(ref XskRing ring)
    {
        if (ring.Map != null)
        {
            LibC.munmap(ring.Map, (size_t)(ulong)ring.MapLength);
            ring = default;
        }
    }

    [System.Diagnostics.CodeAnalysis.DoesNotReturn]
    private void ThrowDisposed() => throw new ObjectDisposedException(nameof(AfXdpPort), $"AF_XDP port '{Name}' is disposed");
}
