using System.Diagnostics.CodeAnalysis;
using System.Runtime.InteropServices;
using Tmds.Linux;
using static Tmds.Linux.LibC;

namespace Natd.Dataplane.Io.Native;

// errno itself (LibC.errno, the value the last failed P/Invoke captured) and the E* values come
// from Tmds.LibC. natd keeps the table of symbolic names below: Tmds.LibC 0.5.0 has no
// strerrorname_np, and the names go into operators' messages next to strerror's text.

/// <summary>Turns errno values into readable names and messages for exceptions raised at open time.</summary>
internal static class Errno
{
    /// <summary>The symbolic name of <paramref name="errno"/> ("EPERM"), or "errno N" when not in the table (asm-generic/errno*.h numbers).</summary>
    internal static string Name(int errno) => errno switch
    {
        1 => "EPERM",
        2 => "ENOENT",
        3 => "ESRCH",
        4 => "EINTR",
        5 => "EIO",
        6 => "ENXIO",
        9 => "EBADF",
        11 => "EAGAIN",
        12 => "ENOMEM",
        13 => "EACCES",
        14 => "EFAULT",
        16 => "EBUSY",
        17 => "EEXIST",
        19 => "ENODEV",
        22 => "EINVAL",
        23 => "ENFILE",
        24 => "EMFILE",
        38 => "ENOSYS",
        90 => "EMSGSIZE",
        92 => "ENOPROTOOPT",
        93 => "EPROTONOSUPPORT",
        95 => "EOPNOTSUPP",
        97 => "EAFNOSUPPORT",
        100 => "ENETDOWN",
        105 => "ENOBUFS",
        _ => $"errno {errno}",
    };

    /// <summary>"EPERM (Operation not permitted)": the name and libc's strerror text.</summary>
    internal static string Describe(int errno) => $"{Name(errno)} ({Marshal.GetPInvokeErrorMessage(errno)})";

    /// <summary>A hint for the errors an operator can fix, appended to open-time messages.</summary>
    internal static string Hint(int errno)
    {
        // Tmds.LibC's E* values are properties, not constants: compared, not switched on.
        if (errno == EPERM || errno == EACCES)
        {
            return ": natd needs root or CAP_NET_RAW (and CAP_SYS_ADMIN to enter a network namespace)";
        }
        if (errno == ENODEV || errno == ENXIO)
        {
            return ": no such interface in this network namespace";
        }
        return errno == ENOMEM ? ": the ring does not fit in memory (try fewer or smaller blocks)" : string.Empty;
    }

    /// <summary>Throws a <see cref="NativeIoException"/> "<paramref name="what"/> failed: EPERM (Operation not permitted): hint".</summary>
    [DoesNotReturn]
    internal static void Throw(string what, int errno)
        => throw new NativeIoException($"{what} failed: {Describe(errno)}{Hint(errno)}", errno);

    /// <summary>Throws for the errno of the P/Invoke that just failed (<see cref="LibC.errno"/>).</summary>
    [DoesNotReturn]
    internal static void ThrowLast(string what) => Throw(what, LibC.errno);
}
