using System.Runtime.InteropServices;

namespace Natd.Dataplane.Io;

/// <summary>Per-frame metadata a port reports with a received frame.</summary>
[Flags]
public enum FrameFlags : byte
{
    /// <summary>Nothing to note.</summary>
    None = 0,

    /// <summary>
    /// The TCP/UDP checksum is not finished (transmit checksum offload on the sender: the field holds
    /// only the pseudo-header sum). AF_PACKET reports it as TP_STATUS_CSUMNOTREADY. The dataplane
    /// completes the checksum in software before translating.
    /// </summary>
    ChecksumPartial = 1,

    /// <summary>
    /// A hairpinned frame: masqueraded by one shard and handed to the shard owning its destination
    /// (<c>Verdict.Loopback</c>), which finishes it as an outside arrival (<c>NatEngine.ProcessHairpinned</c>).
    /// Its source is natd's own external address by construction, so the outside source filter lets
    /// it pass. Set by the dataplane only, never by a receive path.
    /// </summary>
    Hairpinned = 2,

    /// <summary>
    /// An inbound fragment handed by the shard where its datagram's fragments meet
    /// (<c>ShardMap.OwnerOfDatagram</c>) to the shard owning the datagram's flow (<c>Verdict.ToShard</c>),
    /// which translates it without routing it again. Set by the dataplane only.
    /// </summary>
    FragmentRouted = 4,
}

/// <summary>
/// A preallocated batch of frame slots in native memory: the unit a poller receives, translates
/// and transmits. Slots are <see cref="SlotSize"/> bytes so a frame can grow in place (an ICMP
/// error built from a short frame is longer than the frame). Nothing is allocated after construction.
/// </summary>
/// <remarks>
/// A slot is either the batch's own memory (ports that copy: AF_PACKET, memory, pcap) or a frame
/// of an AF_XDP UMEM lent by the port that received it (a port opened with
/// <see cref="AfXdpPort.OpenPair(string, string, AfXdpOptions, AfXdpOptions)"/>): then the frame is translated where the kernel wrote it and
/// <see cref="IPacketPort.TryForward"/> can transmit that very buffer. A lent frame not taken by a
/// transmit goes back to its UMEM's free frames on <see cref="Clear"/> (or when the slot is reused
/// or the batch disposed), so no frame is lost whatever the verdict.
/// </remarks>
public sealed unsafe class FrameBatch : IDisposable
{
    /// <summary>Bytes per slot; frames longer than this are not received (jumbo frames are out of scope).</summary>
    public const int SlotSize = 2048;

    private byte* _memory;
    // Start of each slot: the batch's own memory, or a lent UMEM frame.
    private readonly nint[] _slots;
    private readonly ulong[] _loanAddr;
    private readonly AfXdpUmem?[] _loanUmem;
    private int _loans;

    /// <summary>Creates a batch of <paramref name="capacity"/> slots.</summary>
    /// <exception cref="ArgumentOutOfRangeException">capacity is not in 1..4096.</exception>
    public FrameBatch(int capacity)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(capacity, 4096);
        Capacity = capacity;
        _memory = (byte*)NativeMemory.AlignedAlloc((nuint)(capacity * SlotSize), 64);
        Lengths = new int[capacity];
        Flags = new FrameFlags[capacity];
        Timestamps = new long[capacity];
        _slots = new nint[capacity];
        _loanAddr = new ulong[capacity];
        _loanUmem = new AfXdpUmem?[capacity];
        for (int i = 0; i < capacity; i++)
        {
            _slots[i] = (nint)(_memory + (i * SlotSize));
        }
    }

    /// <summary>Number of slots.</summary>
    public int Capacity { get; }

    /// <summary>Number of slots in use (frames 0..Count-1).</summary>
    public int Count { get; set; }

    /// <summary>Frame length in bytes, per slot.</summary>
    public int[] Lengths { get; }

    /// <summary>Frame flags, per slot.</summary>
    public FrameFlags[] Flags { get; }

    /// <summary>Receive timestamp per slot in nanoseconds since the Unix epoch (0 when the port has none).</summary>
    public long[] Timestamps { get; }

    /// <summary>The whole slot <paramref name="index"/> (<see cref="SlotSize"/> bytes).</summary>
    public Span<byte> Slot(int index)
    {
        if ((uint)index >= (uint)Capacity)
        {
            ThrowIndex();
        }
        return new Span<byte>((void*)_slots[index], SlotSize);
    }

    /// <summary>True when slot <paramref name="index"/> is a frame lent by an AF_XDP port (its UMEM), false when it is the batch's own memory.</summary>
    public bool IsLent(int index) => (uint)index < (uint)Capacity && _loanUmem[index] is not null;

    /// <summary>Lent frames not yet taken or given back.</summary>
    public int LentCount => _loans;

    /// <summary>The frame in slot <paramref name="index"/> (its first Lengths[index] bytes).</summary>
    public Span<byte> Frame(int index) => Slot(index)[..Lengths[index]];

    /// <summary>Copies <paramref name="frame"/> into the next free slot; false when full or the frame is larger than a slot.</summary>
    public bool TryAdd(ReadOnlySpan<byte> frame, FrameFlags flags = FrameFlags.None, long timestampNs = 0)
    {
        if (Count >= Capacity || frame.Length > SlotSize)
        {
            return false;
        }
        int i = Count++;
        if (_loanUmem[i] is not null)
        {
            GiveBack(i);
        }
        frame.CopyTo(Slot(i));
        Lengths[i] = frame.Length;
        Flags[i] = flags;
        Timestamps[i] = timestampNs;
        return true;
    }

    /// <summary>Marks every slot free; lent UMEM frames still in slots go back to their UMEM.</summary>
    public void Clear()
    {
        if (_loans != 0)
        {
            ReturnLoans();
        }
        Count = 0;
    }

    /// <summary>
    /// Makes slot <paramref name="index"/> the UMEM frame at <paramref name="addr"/> (the address of
    /// the frame's first byte, as the RX descriptor gives it): the receiving port lends it. The caller
    /// has checked that <see cref="SlotSize"/> bytes from there stay inside the frame's chunk.
    /// </summary>
    internal void Lend(int index, AfXdpUmem umem, ulong addr)
    {
        if (_loanUmem[index] is not null)
        {
            GiveBack(index);
        }
        _slots[index] = (nint)(umem.Base + addr);
        _loanAddr[index] = addr;
        _loanUmem[index] = umem;
        _loans++;
    }

    /// <summary>The UMEM slot <paramref name="index"/> was lent from (null: the batch's own memory).</summary>
    internal AfXdpUmem? LenderOf(int index) => _loanUmem[index];

    /// <summary>
    /// Takes the lent frame out of slot <paramref name="index"/> (a port put it on its TX ring; the
    /// completion ring will return it to the UMEM): returns its address and gives the slot its own memory back.
    /// </summary>
    internal ulong TakeLoan(int index)
    {
        ulong addr = _loanAddr[index];
        _loanUmem[index] = null;
        _slots[index] = (nint)(_memory + (index * SlotSize));
        _loans--;
        return addr;
    }

    private void GiveBack(int index)
    {
        AfXdpUmem umem = _loanUmem[index]!;
        umem.Push(TakeLoan(index));
    }

    private void ReturnLoans()
    {
        // All slots, not 0..Count-1: Count is settable and a loan must not outlive a shrink.
        for (int i = 0; i < Capacity && _loans != 0; i++)
        {
            if (_loanUmem[i] is not null)
            {
                GiveBack(i);
            }
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        if (_loans != 0)
        {
            ReturnLoans();
        }
        FreeMemory();
        GC.SuppressFinalize(this);
    }

    /// <summary>Frees the native slots if Dispose was not called (lent frames are not touched from the finalizer thread).</summary>
    ~FrameBatch() => FreeMemory();

    private void FreeMemory()
    {
        if (_memory != null)
        {
            NativeMemory.AlignedFree(_memory);
            _memory = null;
        }
    }

    private static void ThrowIndex() => throw new ArgumentOutOfRangeException("index");
}
