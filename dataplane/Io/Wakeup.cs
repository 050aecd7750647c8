using Natd.Dataplane.Io.Native;
using Tmds.Linux;
using static Tmds.Linux.LibC;

namespace Natd.Dataplane.Io;

/// <summary>
/// An eventfd(2) one poller signals and another polls, so a poller blocked in poll(2) wakes as
/// soon as frames are handed to it instead of at its idle timeout. Signal and Drain never block
/// and never throw.
/// </summary>
public sealed unsafe class Wakeup : IDisposable
{
    private int _fd;

    /// <summary>Creates the eventfd.</summary>
    /// <exception cref="NativeIoException">eventfd failed.</exception>
    public Wakeup()
    {
        _fd = LibC.eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (_fd < 0)
        {
            Errno.ThrowLast("eventfd");
        }
    }

    /// <summary>The descriptor to poll for POLLIN.</summary>
    public int Descriptor => _fd;

    /// <summary>Wakes the waiter (one write; a full counter is fine: the waiter is awake anyway).</summary>
    public void Signal()
    {
        ulong one = 1;
        _ = LibC.write(_fd, &one, sizeof(ulong));
    }

    /// <summary>Clears pending signals.</summary>
    public void Drain()
    {
        ulong v = 0;
        _ = LibC.read(_fd, &v, sizeof(ulong));
    }

    /// <inheritdoc />
    public void Dispose()
    {
        if (_fd >= 0)
        {
            LibC.close(_fd);
            _fd = -1;
        }
    }
}

/// <summary>CPU pinning for poller threads (docs/architecture.md, "Shards": pollers are pinned to cores).</summary>
public static unsafe class CpuAffinity
{
    /// <summary>
    /// Pins the calling thread to one CPU (sched_setaffinity with a one-CPU cpu_set_t); false for a
    /// CPU outside 0 to CPU_SETSIZE - 1 (1023) or when refused (e.g. the CPU is not in the allowed set).
    /// </summary>
    public static bool PinCurrentThread(int cpu)
    {
        if (cpu < 0 || cpu >= CPU_SETSIZE)
        {
            return false; // CPU_SET would index outside the set
        }
        cpu_set_t set = default;
        CPU_SET(cpu, &set);
        return LibC.sched_setaffinity(0, (size_t)(ulong)sizeof(cpu_set_t), &set) == 0;
    }
}
