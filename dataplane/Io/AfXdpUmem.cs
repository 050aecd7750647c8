using System.Runtime.InteropServices;

namespace Natd.Dataplane.Io;

/// <summary>
/// A UMEM (the packet memory of AF_XDP sockets) and the stack of its frames that no ring and no
/// batch holds. One poller thread owns it: with a shared UMEM both of its ports (the inside and
/// the outside socket) take frames from and give them back to this one stack, which is what lets
/// a frame received on one socket go out on the other without a copy.
/// </summary>
/// <remarks>
/// Every frame is in exactly one place at a time: this free stack, a socket's fill ring (or the
/// kernel's hands between fill and RX), a batch slot (received, not yet transmitted or released),
/// a TX ring, or a completion ring. The native memory is freed when the last port releases it
/// (the kernel keeps its own reference while any socket on the UMEM is bound).
/// </remarks>
internal sealed unsafe class AfXdpUmem
{
    private readonly ulong[] _free;
    private int _count;
    private int _refs = 1;
    private byte* _base;

    /// <summary>Allocates <paramref name="frameCount"/> page-aligned frames of <paramref name="chunkSize"/> bytes, all free.</summary>
    public AfXdpUmem(int frameCount, int chunkSize)
    {
        FrameCount = frameCount;
        ChunkSize = chunkSize;
        Size = (ulong)frameCount * (ulong)chunkSize;
        _base = (byte*)NativeMemory.AlignedAlloc((nuint)Size, (nuint)Environment.SystemPageSize);
        _free = new ulong[frameCount];
        for (int i = frameCount - 1; i >= 0; i--)
        {
            _free[_count++] = (ulong)i * (ulong)chunkSize;
        }
    }

    /// <summary>Start of the memory (null once the last port released it).</summary>
    public byte* Base => _base;

    /// <summary>Bytes of memory.</summary>
    public ulong Size { get; }

    /// <summary>Bytes per frame (chunk): a power of two, 2048 or 4096.</summary>
    public int ChunkSize { get; }

    /// <summary>Frames in the UMEM.</summary>
    public int FrameCount { get; }

    /// <summary>Frames on the free stack.</summary>
    public int FreeCount => _count;

    /// <summary>Takes a free frame (its chunk address); false when none is free.</summary>
    public bool TryPop(out ulong addr)
    {
        if (_count == 0)
        {
            addr = 0;
            return false;
        }
        addr = _free[--_count];
        return true;
    }

    /// <summary>Gives back the frame holding <paramref name="addr"/> (any address inside its chunk).</summary>
    public void Push(ulong addr)
    {
        // The stack holds every frame, so it never overflows unless a frame were returned twice.
        if (_count < _free.Length)
        {
            _free[_count++] = addr & ~(ulong)(ChunkSize - 1);
        }
    }

    /// <summary>One more port uses the memory.</summary>
    public void AddRef() => Interlocked.Increment(ref _refs);

    /// <summary>A port is done with the memory (after closing its socket); the last one frees it.</summary>
    public void Release()
    {
        if (Interlocked.Decrement(ref _refs) == 0 && _base != null)
        {
            NativeMemory.AlignedFree(_base);
            _base = null;
        }
    }
}
