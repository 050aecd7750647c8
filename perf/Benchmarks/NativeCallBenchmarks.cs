using System.Runtime.InteropServices;
using BenchmarkDotNet.Attributes;
using Natd.Benchmarks.Support;
using Tmds.Linux;

namespace Natd.Benchmarks;

/// <summary>
/// The cost of the system calls the I/O layer makes per batch, through Tmds.LibC's declarations
/// (DllImport, what natd calls now) against the source-generated LibraryImport declarations natd
/// had before (kept in this file only as the comparison), both with errno captured:
/// <list type="bullet">
/// <item><c>SendToKick</c>: sendto(fd, NULL, 0, MSG_DONTWAIT) and its errno, the TX kick of both
/// drivers; on an unconnected UDP socket the kernel answers EDESTADDRREQ at once, so the figure
/// is the call's own cost, not a transmission.</item>
/// <item><c>RecvFromWake</c>: recvfrom(fd, NULL, 0, MSG_DONTWAIT), the AF_XDP fill-ring wake-up
/// (EAGAIN here).</item>
/// <item><c>EventFdSignalDrain</c>: write then read of an eventfd, a <c>Wakeup</c> signal and drain.</item>
/// <item><c>PollZeroTimeout</c>: poll(2) with a 0 ms timeout on one eventfd (PortPoller keeps its
/// own poll for errno; this compares the bindings only).</item>
/// <item><c>CallOverhead</c>: sched_getcpu(3), which glibc answers without entering the kernel
/// (rseq or the vDSO): the binding's own cost (transition, errno capture) without a system call,
/// which on a loaded machine is steadier than the system calls above.</item>
/// </list>
/// In the fast-path category: a binding that allocated per call would fail the allocation gate.
/// </summary>
[BenchmarkCategory(Categories.FastPath)]
[OperationUnit("call")]
public unsafe partial class NativeCallBenchmarks
{
    private int _udp = -1;
    private int _eventFd = -1;
    private bool _tmds;

    /// <summary>Which declarations the calls go through: "LibraryImport" (before) or "Tmds.LibC" (now).</summary>
    [Params("LibraryImport", "Tmds.LibC")]
    public string Binding { get; set; } = "Tmds.LibC";

    [GlobalSetup]
    public void Setup()
    {
        _tmds = Binding == "Tmds.LibC";
        _udp = LibC.socket(LibC.AF_INET, LibC.SOCK_DGRAM | LibC.SOCK_CLOEXEC, 0);
        _eventFd = LibC.eventfd(0, LibC.EFD_NONBLOCK | LibC.EFD_CLOEXEC);
        if (_udp < 0 || _eventFd < 0)
        {
            throw new InvalidOperationException($"socket or eventfd failed: errno {LibC.errno}");
        }
        // Both bindings must see the same answers, or they would not be doing the same work.
        if (SendToKick() != LibC.EDESTADDRREQ || RecvFromWake() != LibC.EAGAIN)
        {
            throw new InvalidOperationException($"unexpected errno from the kick or the wake ({Binding})");
        }
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        LibC.close(_udp);
        LibC.close(_eventFd);
    }

    /// <summary>The TX kick: returns the errno (EDESTADDRREQ).</summary>
    [Benchmark]
    public int SendToKick()
    {
        if (_tmds)
        {
            return (long)LibC.sendto(_udp, null, 0, LibC.MSG_DONTWAIT, null, 0) < 0 ? LibC.errno : 0;
        }
        return Former.SendTo(_udp, null, 0, LibC.MSG_DONTWAIT, null, 0) < 0 ? Marshal.GetLastPInvokeError() : 0;
    }

    /// <summary>The fill-ring wake-up: returns the errno (EAGAIN).</summary>
    [Benchmark]
    public int RecvFromWake()
    {
        if (_tmds)
        {
            return (long)LibC.recvfrom(_udp, null, 0, LibC.MSG_DONTWAIT, null, null) < 0 ? LibC.errno : 0;
        }
        return Former.RecvFrom(_udp, null, 0, LibC.MSG_DONTWAIT, null, null) < 0 ? Marshal.GetLastPInvokeError() : 0;
    }

    /// <summary>A wake-up signalled and drained: two calls.</summary>
    [Benchmark]
    public long EventFdSignalDrain()
    {
        ulong one = 1;
        ulong v;
        if (_tmds)
        {
            LibC.write(_eventFd, &one, sizeof(ulong));
            return (long)LibC.read(_eventFd, &v, sizeof(ulong));
        }
        Former.Write(_eventFd, &one, sizeof(ulong));
        return Former.Read(_eventFd, &v, sizeof(ulong));
    }

    /// <summary>A poll that finds nothing ready and does not wait.</summary>
    [Benchmark]
    public int PollZeroTimeout()
    {
        pollfd fd = default;
        fd.fd = _eventFd;
        fd.events = LibC.POLLIN;
        return _tmds ? LibC.poll(&fd, 1, 0) : Former.Poll(&fd, 1, 0);
    }

    /// <summary>A libc call without a system call: the binding's own cost.</summary>
    [Benchmark]
    public int CallOverhead() => _tmds ? LibC.sched_getcpu() : Former.SchedGetCpu();

    /// <summary>natd's declarations before Tmds.LibC (source-generated, errno captured), for comparison only.</summary>
    private static partial class Former
    {
        [LibraryImport("libc", EntryPoint = "sendto", SetLastError = true)]
        internal static partial nint SendTo(int fd, void* buffer, nuint length, int flags, void* address, uint addressLength);

        [LibraryImport("libc", EntryPoint = "recvfrom", SetLastError = true)]
        internal static partial nint RecvFrom(int fd, void* buffer, nuint length, int flags, void* address, uint* addressLength);

        [LibraryImport("libc", EntryPoint = "write", SetLastError = true)]
        internal static partial nint Write(int fd, void* buffer, nuint count);

        [LibraryImport("libc", EntryPoint = "read", SetLastError = true)]
        internal static partial nint Read(int fd, void* buffer, nuint count);

        [LibraryImport("libc", EntryPoint = "poll", SetLastError = true)]
        internal static partial int Poll(pollfd* fds, nuint count, int timeoutMilliseconds);

        // Not one of natd's calls: declared as Tmds.LibC declares it (errno captured), for CallOverhead.
        [LibraryImport("libc", EntryPoint = "sched_getcpu", SetLastError = true)]
        internal static partial int SchedGetCpu();
    }
}
