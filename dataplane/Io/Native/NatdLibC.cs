using System.Runtime.InteropServices;
using Tmds.Linux;

namespace Natd.Dataplane.Io.Native;

// natd's own libc declarations: the only two entry points it does not take from Tmds.LibC
// (docs/architecture.md, "Native interop"). Checked against Tmds.LibC 0.5.0:
// - if_nametoindex(3): Tmds.LibC does not declare it (nor the rest of net/if.h).
// - poll(2): Tmds.LibC declares it without SetLastError, so the errno of a failed poll (EINTR,
//   which PortPoller must tell from a real error) would not be captured and LibC.errno would
//   return whatever an earlier call left. This declaration captures it; the struct (pollfd) and
//   the event bits (POLLIN) are Tmds.LibC's.
// Everything else (socket, bind, setsockopt, getsockopt, mmap, munmap, sendto, recvfrom, eventfd,
// read, write, close, ioctl, open, setns, sched_setaffinity, syscall) is Tmds.Linux.LibC's.

/// <summary>
/// The libc entry points natd declares itself because Tmds.LibC 0.5.0 lacks them or loses their
/// errno (see the file comment). Both set the last P/Invoke error, so callers read errno through
/// <see cref="LibC.errno"/> right after a call that failed, as for Tmds.LibC's own calls.
/// </summary>
internal static unsafe partial class NatdLibC
{
    private const string Lib = "libc";

    /// <summary>poll(2): the number of ready descriptors, 0 on timeout, -1 on error (errno captured).</summary>
    [LibraryImport(Lib, EntryPoint = "poll", SetLastError = true)]
    internal static partial int Poll(pollfd* fds, nuint count, int timeoutMilliseconds);

    /// <summary>
    /// if_nametoindex(3): the interface index in the calling thread's network namespace, 0 when
    /// unknown. Open time only: the name is marshalled to UTF-8 on the stack.
    /// </summary>
    [LibraryImport(Lib, EntryPoint = "if_nametoindex", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial uint IfNameToIndex(string name);
}
