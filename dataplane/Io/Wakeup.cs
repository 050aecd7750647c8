using System.Runtime.InteropServices;
using Natd.Dataplane.Io.Native;

namespace Natd.Dataplane.Io;

/// <summary>
/// An eventfd(2) one poller signals and another polls, so a poller blocked in poll(2) wakes as
/// soon as frames are handed to it instead of at its idle timeout. Signal and Drain never block
/// and never throw.
/// </summary>
public sealed unsafe class Wakeup : IDisposable
{
    private const int EFD_NONBLOCK = 0x800;
    private const int EFD_CLOEXEC = 0x80000;
    private int _fd;

    /// <summary>Creates the eventfd.</summary>
    /// <exception cref="NativeIoException">eventfd failed.</exception>
    public Wakeup()
    {
        _fd = LibC.EventFd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (_fd < 0)
        {
            throw new NativeIoException($"eventfd failed: errno {Marshal.GetLastPInvokeError()}", Marshal.GetLastPInvokeError());
        }
    }

    /// <summary>The descriptor to poll for POLLIN.</summary>
    public int Descriptor => _fd;

    /// <summary>Wakes the waiter (one write; a full counter is fine: the waiter is awake anyway).</summary>
    public void Signal()
    {
        ulong one = 1;
        _ = LibC.Write(_fd, &one, sizeof(ulong));
    }

    /// <summary>Clears pending signals.</summary>
    public void Drain()
    {
        ulong v;
        _ = LibC.Read(_fd, &v, sizeof(ulong));
    }

    /// <inheritdoc />
    public void Dispose()
    {
        if (_fd >= 0)
        {
            LibC.Close(_fd);
            _fd = -1;
        }
    }
}

/// <summary>CPU pinning for poller threads (docs/architecture.md, "Shards": pollers are pinned to cores).</summary>
public static unsafe class CpuAffinity
{
    /// <summary>Pins the calling thread to one CPU (sched_setaffinity); false when refused (e.g. the CPU is not in the allowed set).</summary>
    public static bool PinCurrentThread(int cpu)
    {
        if (cpu < 0 || cpu >= 64)
        {
            return false;
        }
        ulong mask = 1UL << cpu;
        return LibC.SchedSetAffinity(0, sizeof(ulong), &mask) == 0;
    }
}
