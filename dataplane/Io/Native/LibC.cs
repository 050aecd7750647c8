using System.Runtime.InteropServices;

namespace Natd.Dataplane.Io.Native;

/// <summary>
/// The libc entry points the I/O layer calls (Linux, x86-64/arm64 glibc or musl). Every
/// declaration sets the last P/Invoke error, so callers read errno through
/// <see cref="Marshal.GetLastPInvokeError"/> right after a call that returned -1.
/// </summary>
internal static unsafe partial class LibC
{
    private const string Lib = "libc";

    /// <summary>socket(2): a new socket descriptor, or -1.</summary>
    [LibraryImport(Lib, EntryPoint = "socket", SetLastError = true)]
    internal static partial int Socket(int domain, int type, int protocol);

    /// <summary>bind(2) with any sockaddr (here a <see cref="SockAddrLl"/>).</summary>
    [LibraryImport(Lib, EntryPoint = "eventfd", SetLastError = true)]
    internal static partial int EventFd(uint initial, int flags);

    [LibraryImport(Lib, EntryPoint = "write", SetLastError = true)]
    internal static partial nint Write(int fd, void* buffer, nuint count);

    [LibraryImport(Lib, EntryPoint = "read", SetLastError = true)]
    internal static partial nint Read(int fd, void* buffer, nuint count);

    [LibraryImport(Lib, EntryPoint = "sched_setaffinity", SetLastError = true)]
    internal static partial int SchedSetAffinity(int pid, nuint size, ulong* mask);

    [LibraryImport(Lib, EntryPoint = "bind", SetLastError = true)]
    internal static partial int Bind(int fd, void* address, uint addressLength);

    /// <summary>setsockopt(2).</summary>
    [LibraryImport(Lib, EntryPoint = "setsockopt", SetLastError = true)]
    internal static partial int SetSockOpt(int fd, int level, int name, void* value, uint valueLength);

    /// <summary>getsockopt(2); <paramref name="valueLength"/> is in/out.</summary>
    [LibraryImport(Lib, EntryPoint = "getsockopt", SetLastError = true)]
    internal static partial int GetSockOpt(int fd, int level, int name, void* value, uint* valueLength);

    /// <summary>mmap(2); returns <see cref="MapFailed"/> on error.</summary>
    [LibraryImport(Lib, EntryPoint = "mmap", SetLastError = true)]
    internal static partial void* Mmap(void* address, nuint length, int protection, int flags, int fd, nint offset);

    /// <summary>munmap(2).</summary>
    [LibraryImport(Lib, EntryPoint = "munmap", SetLastError = true)]
    internal static partial int Munmap(void* address, nuint length);

    /// <summary>poll(2): number of ready descriptors, 0 on timeout, -1 on error.</summary>
    [LibraryImport(Lib, EntryPoint = "poll", SetLastError = true)]
    internal static partial int Poll(PollFd* fds, nuint count, int timeoutMilliseconds);

    /// <summary>sendto(2); a NULL buffer with a TX ring asks the kernel to send every queued ring frame.</summary>
    [LibraryImport(Lib, EntryPoint = "sendto", SetLastError = true)]
    internal static partial nint SendTo(int fd, void* buffer, nuint length, int flags, void* address, uint addressLength);

    /// <summary>close(2).</summary>
    [LibraryImport(Lib, EntryPoint = "close", SetLastError = true)]
    internal static partial int Close(int fd);

    /// <summary>if_nametoindex(3): the interface index in the calling thread's network namespace, 0 when unknown.</summary>
    [LibraryImport(Lib, EntryPoint = "if_nametoindex", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial uint IfNameToIndex(string name);

    /// <summary>ioctl(2) with a pointer argument (interface requests take an <see cref="IfReq"/>).</summary>
    [LibraryImport(Lib, EntryPoint = "ioctl", SetLastError = true)]
    internal static partial int Ioctl(int fd, nuint request, void* argument);

    /// <summary>open(2) without a mode (never creates files).</summary>
    [LibraryImport(Lib, EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int Open(string path, int flags);

    /// <summary>setns(2): moves the calling thread into the namespace <paramref name="fd"/> refers to.</summary>
    [LibraryImport(Lib, EntryPoint = "setns", SetLastError = true)]
    internal static partial int SetNs(int fd, int namespaceType);

    /// <summary>recvfrom(2); with a NULL buffer on an AF_XDP socket it only wakes the kernel to refill RX.</summary>
    [LibraryImport(Lib, EntryPoint = "recvfrom", SetLastError = true)]
    internal static partial nint RecvFrom(int fd, void* buffer, nuint length, int flags, void* address, uint* addressLength);

    /// <summary>syscall(2) with three arguments (used for bpf(2), which glibc does not wrap): the result, or -1 with errno set.</summary>
    [LibraryImport(Lib, EntryPoint = "syscall", SetLastError = true)]
    internal static partial nint Syscall3(nint number, nint argument1, void* argument2, nuint argument3);

    /// <summary>The value mmap returns on failure ((void*)-1).</summary>
    internal static readonly void* MapFailed = (void*)-1;
}
