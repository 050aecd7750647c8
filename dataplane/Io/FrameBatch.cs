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
}

/// <summary>
/// A preallocated batch of frame slots in native memory: the unit a poller receives, translates
/// and transmits. Slots are <see cref="SlotSize"/> bytes so a frame can grow in place (an ICMP
/// error built from a short frame is longer than the frame). Nothing is allocated after construction.
/// </summary>
public sealed unsafe class FrameBatch : IDisposable
{
    /// <summary>Bytes per slot; frames longer than this are not received (jumbo frames are out of scope).</summary>
    public const int SlotSize = 2048;

    private byte* _memory;

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
        return new Span<byte>(_memory + (index * SlotSize), SlotSize);
    }

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
        frame.CopyTo(Slot(i));
        Lengths[i] = frame.Length;
        Flags[i] = flags;
        Timestamps[i] = timestampNs;
        return true;
    }

    /// <summary>Marks every slot free.</summary>
    public void Clear() => Count = 0;

    /// <inheritdoc />
    public void Dispose()
    {
        if (_memory != null)
        {
            NativeMemory.AlignedFree(_memory);
            _memory = null;
        }
        GC.SuppressFinalize(this);
    }

    /// <summary>Frees the native slots if Dispose was not called.</summary>
    ~FrameBatch() => Dispose();

    private static void ThrowIndex() => throw new ArgumentOutOfRangeException("index");
}
