namespace Natd.Dataplane.Io;

/// <summary>
/// A system call the I/O layer depends on failed (at open time: socket, bind, ring setup, mmap,
/// setns, ...). The message names the call, the interface or namespace, the errno name and
/// strerror text, and a hint when the operator can fix it (for example missing CAP_NET_RAW).
/// </summary>
public sealed class NativeIoException : IOException
{
    /// <summary>Creates the exception; <paramref name="errno"/> is also stored in <see cref="Exception.HResult"/>.</summary>
    public NativeIoException(string message, int errno)
        : base(message, errno)
    {
        Errno = errno;
    }

    /// <summary>The Linux errno value (e.g. 1 for EPERM).</summary>
    public int Errno { get; }
}
