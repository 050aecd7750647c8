using Natd.Dataplane.Packets;

namespace Natd.Dataplane.Io;

/// <summary>
/// A port in memory for tests and benchmarks: frames are injected into its receive queue and
/// transmitted frames are kept until taken. Both queues are rings of reusable
/// <see cref="FrameBatch.SlotSize"/>-byte buffers, so after warm-up Inject, Receive, TrySend and
/// <see cref="DiscardTransmitted"/> allocate nothing (TryTakeTransmitted and DrainTransmitted
/// hand out new arrays). Like every port it is owned by one thread.
/// </summary>
public sealed class MemoryPort : IPacketPort
{
    private readonly int _txCapacity;

    // RX ring: grows (doubling) when injection outpaces Receive.
    private byte[][] _rx = new byte[16][];
    private int[] _rxLength = new int[16];
    private FrameFlags[] _rxFlags = new FrameFlags[16];
    private long[] _rxTimestamp = new long[16];
    private int _rxHead;
    private int _rxCount;

    // TX ring: fixed capacity; slot buffers are created on first use and then reused.
    private readonly byte[]?[] _tx;
    private readonly int[] _txLength;
    private int _txHead;
    private int _txCount;

    private PortStats _stats;
    private bool _disposed;

    /// <summary>Creates a port with an empty receive queue.</summary>
    /// <param name="name">Descriptive name (reported as <see cref="Name"/>).</param>
    /// <param name="mac">The port's MAC address.</param>
    /// <param name="txCapacity">Transmitted frames kept before TrySend refuses more (1..1048576).</param>
    /// <exception cref="ArgumentOutOfRangeException">txCapacity is out of range.</exception>
    public MemoryPort(string name, MacAddress mac, int txCapacity = 4096)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentOutOfRangeException.ThrowIfLessThan(txCapacity, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(txCapacity, 1 << 20);
        Name = name;
        Mac = mac;
        _txCapacity = txCapacity;
        _tx = new byte[txCapacity][];
        _txLength = new int[txCapacity];
    }

    /// <inheritdoc />
    public string Name { get; }

    /// <inheritdoc />
    public MacAddress Mac { get; }

    /// <summary>Always -1: nothing to poll; a poller sleeps briefly instead.</summary>
    public int PollDescriptor => -1;

    /// <inheritdoc />
    public PortStats Stats => _stats;

    /// <summary>Frames injected and not yet received.</summary>
    public int PendingRx => _rxCount;

    /// <summary>Frames transmitted and not yet taken.</summary>
    public int PendingTx => _txCount;

    /// <summary>Most frames kept in the transmit queue.</summary>
    public int TxCapacity => _txCapacity;

    /// <summary>Queues a copy of <paramref name="frame"/> for the next Receive.</summary>
    /// <param name="frame">An Ethernet frame of at most <see cref="FrameBatch.SlotSize"/> bytes.</param>
    /// <param name="flags">Flags Receive reports with it (e.g. ChecksumPartial).</param>
    /// <param name="timestampNs">Timestamp Receive reports, ns since the Unix epoch.</param>
    /// <exception cref="ArgumentException">The frame is longer than a slot.</exception>
    /// <exception cref="ObjectDisposedException">The port was disposed.</exception>
    public void Inject(ReadOnlySpan<byte> frame, FrameFlags flags = FrameFlags.None, long timestampNs = 0)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (frame.Length > FrameBatch.SlotSize)
        {
            throw new ArgumentException($"frame of {frame.Length} bytes is longer than a slot ({FrameBatch.SlotSize})", nameof(frame));
        }
        if (_rxCount == _rx.Length)
        {
            GrowRx();
        }
        int i = (_rxHead + _rxCount) & (_rx.Length - 1);
        byte[] buffer = _rx[i] ??= new byte[FrameBatch.SlotSize];
        frame.CopyTo(buffer);
        _rxLength[i] = frame.Length;
        _rxFlags[i] = flags;
        _rxTimestamp[i] = timestampNs;
        _rxCount++;
    }

    /// <inheritdoc />
    /// <exception cref="ObjectDisposedException">The port was disposed.</exception>
    public int Receive(FrameBatch batch)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        int added = 0;
        while (_rxCount > 0 && batch.Count < batch.Capacity)
        {
            int i = _rxHead;
            batch.TryAdd(_rx[i].AsSpan(0, _rxLength[i]), _rxFlags[i], _rxTimestamp[i]);
            _rxHead = (_rxHead + 1) & (_rx.Length - 1);
            _rxCount--;
            added++;
        }
        _stats.RxFrames += added;
        return added;
    }

    /// <inheritdoc />
    /// <remarks>False (and TxDropped counted) when <see cref="TxCapacity"/> frames wait untaken or the frame is longer than a slot.</remarks>
    /// <exception cref="ObjectDisposedException">The port was disposed.</exception>
    public bool TrySend(ReadOnlySpan<byte> frame)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_txCount == _txCapacity || frame.Length > FrameBatch.SlotSize)
        {
            _stats.TxDropped++;
            return false;
        }
        int i = _txHead + _txCount;
        if (i >= _txCapacity)
        {
            i -= _txCapacity;
        }
        byte[] buffer = _tx[i] ??= new byte[FrameBatch.SlotSize];
        frame.CopyTo(buffer);
        _txLength[i] = frame.Length;
        _txCount++;
        _stats.TxFrames++;
        return true;
    }

    /// <summary>Nothing to hand over: transmitted frames are already visible to TryTakeTransmitted.</summary>
    public void Flush()
    {
    }

    /// <summary>Takes the oldest transmitted frame (a new array); false when none waits.</summary>
    public bool TryTakeTransmitted(out byte[] frame)
    {
        if (_txCount == 0)
        {
            frame = [];
            return false;
        }
        frame = _tx[_txHead].AsSpan(0, _txLength[_txHead]).ToArray();
        Advance();
        return true;
    }

    /// <summary>
    /// Copies the oldest transmitted frame into <paramref name="destination"/> and removes it;
    /// returns its length, or -1 when none waits. Allocates nothing.
    /// </summary>
    /// <exception cref="ArgumentException">The destination is shorter than the frame (the frame stays queued).</exception>
    public int TryTakeTransmitted(Span<byte> destination)
    {
        if (_txCount == 0)
        {
            return -1;
        }
        int length = _txLength[_txHead];
        if (destination.Length < length)
        {
            throw new ArgumentException($"destination of {destination.Length} bytes is shorter than the {length}-byte frame", nameof(destination));
        }
        _tx[_txHead].AsSpan(0, length).CopyTo(destination);
        Advance();
        return length;
    }

    /// <summary>Takes every transmitted frame, oldest first.</summary>
    public IReadOnlyList<byte[]> DrainTransmitted()
    {
        var frames = new List<byte[]>(_txCount);
        while (TryTakeTransmitted(out byte[] frame))
        {
            frames.Add(frame);
        }
        return frames;
    }

    /// <summary>Forgets every transmitted frame without copying it (for benchmarks); returns how many.</summary>
    public int DiscardTransmitted()
    {
        int n = _txCount;
        _txHead = 0;
        _txCount = 0;
        return n;
    }

    /// <summary>Marks the port disposed (later Receive, TrySend and Inject throw); idempotent.</summary>
    public void Dispose() => _disposed = true;

    private void Advance()
    {
        _txHead = _txHead + 1 == _txCapacity ? 0 : _txHead + 1;
        _txCount--;
    }

    private void GrowRx()
    {
        int size = _rx.Length * 2;
        var rx = new byte[size][];
        var length = new int[size];
        var flags = new FrameFlags[size];
        var timestamp = new long[size];
        for (int k = 0; k < _rxCount; k++)
        {
            int from = (_rxHead + k) & (_rx.Length - 1);
            rx[k] = _rx[from];
            length[k] = _rxLength[from];
            flags[k] = _rxFlags[from];
            timestamp[k] = _rxTimestamp[from];
        }
        // Keep the spare buffers of the old ring for reuse.
        for (int k = _rxCount; k < _rx.Length; k++)
        {
            rx[k] = _rx[(_rxHead + k) & (_rx.Length - 1)];
        }
        _rx = rx;
        _rxLength = length;
        _rxFlags = flags;
        _rxTimestamp = timestamp;
        _rxHead = 0;
    }
}
