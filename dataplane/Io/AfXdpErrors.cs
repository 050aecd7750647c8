using System.Diagnostics.CodeAnalysis;
using Natd.Dataplane.Io.Native;
using Tmds.Linux;
using static Tmds.Linux.LibC;

namespace Natd.Dataplane.Io;

/// <summary>
/// Open-time errors of the AF_XDP driver: the call, the errno, and a hint saying what an operator
/// can do, including that natd can run on AF_PACKET instead when AF_XDP is unavailable.
/// </summary>
internal static class AfXdpErrors
{
    private const string Fallback = "; AF_PACKET still works: use it instead of AF_XDP";

    /// <summary>Why AF_XDP failed with <paramref name="errno"/>, for the operator.</summary>
    internal static string Hint(int errno)
    {
        // Tmds.LibC's E* values are properties, not constants: compared, not switched on.
        if (errno == EPERM || errno == EACCES)
        {
            return ": AF_XDP needs root or CAP_NET_ADMIN, CAP_NET_RAW and CAP_BPF (or CAP_SYS_ADMIN)" + Fallback;
        }
        if (errno == EAFNOSUPPORT)
        {
            return ": the kernel has no AF_XDP sockets (CONFIG_XDP_SOCKETS, Linux 4.18 or later)" + Fallback;
        }
        if (errno == ENOSYS)
        {
            return ": the kernel has no bpf(2) system call (CONFIG_BPF_SYSCALL)" + Fallback;
        }
        if (errno == EBUSY || errno == EEXIST)
        {
            return ": another XDP program or AF_XDP socket already uses this interface or queue";
        }
        if (errno == EOPNOTSUPP)
        {
            return ": the driver does not support this XDP mode (try Mode = Generic)";
        }
        if (errno == ENODEV || errno == ENXIO)
        {
            return ": no such interface in this network namespace";
        }
        if (errno == ENOMEM)
        {
            return ": the UMEM or rings do not fit in memory or the locked-memory limit (RLIMIT_MEMLOCK, or grant CAP_IPC_LOCK)";
        }
        return errno == EINVAL
            ? ": the kernel refused the argument (an older kernel without this AF_XDP or bpf feature, or a queue the interface lacks)" + Fallback
            : string.Empty;
    }

    /// <summary>Throws a <see cref="NativeIoException"/> "<paramref name="what"/> failed: ENAME (text): hint".</summary>
    [DoesNotReturn]
    internal static void Throw(string what, int errno)
        => throw new NativeIoException($"{what} failed: {Errno.Describe(errno)}{Hint(errno)}", errno);

    /// <summary>Throws for the errno of the P/Invoke that just failed (<see cref="LibC.errno"/>).</summary>
    [DoesNotReturn]
    internal static void ThrowLast(string what) => Throw(what, LibC.errno);
}
