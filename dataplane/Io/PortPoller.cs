using Natd.Dataplane.Io.Native;
using Tmds.Linux;
using static Tmds.Linux.LibC;

namespace Natd.Dataplane.Io;

/// <summary>
/// The idle half of adaptive polling: a poller that found no frames blocks here until one of
/// its two ports has frames or the timeout passes, so it yields the core to the kernel's own
/// packet work instead of spinning.
/// </summary>
public static unsafe class PortPoller
{
    /// <summary>
    /// Blocks in poll(2) for POLLIN on both ports' <see cref="IPacketPort.PollDescriptor"/>s.
    /// A port without a descriptor (-1) cannot wake us, so the wait is then capped at 1 ms
    /// (a plain 1 ms sleep when neither port has one). Allocates nothing.
    /// </summary>
    /// <param name="a">One port.</param>
    /// <param name="b">The other port (may be the same as <paramref name="a"/>).</param>
    /// <param name="timeoutMilliseconds">Longest wait in milliseconds; 0 only checks, negative waits without limit.</param>
    /// <returns>The number of readable descriptors (&gt;0), or 0 on timeout, on a signal (EINTR)
    /// and after a capped wait for a port that has no descriptor.</returns>
    /// <exception cref="NativeIoException">poll failed with an error other than EINTR (EFAULT, EINVAL, ENOMEM; a closed descriptor is not an error to poll, it reports POLLNVAL).</exception>
    public static int Wait(IPacketPort a, IPacketPort b, int timeoutMilliseconds) => Wait(a, b, -1, timeoutMilliseconds);

    /// <summary>
    /// As <see cref="Wait(IPacketPort, IPacketPort, int)"/>, also waking when <paramref name="wakeDescriptor"/>
    /// (an eventfd from <see cref="Wakeup"/>, or -1) becomes readable: how another poller tells this
    /// one it handed frames over.
    /// </summary>
    public static int Wait(IPacketPort a, IPacketPort b, int wakeDescriptor, int timeoutMilliseconds)
    {
        pollfd* fds = stackalloc pollfd[3];
        int n = 0;
        bool blind = false;
        if (wakeDescriptor >= 0)
        {
            fds[n].fd = wakeDescriptor;
            fds[n].events = POLLIN;
            fds[n].revents = 0;
            n++;
        }
        AddDescriptor(a.PollDescriptor, fds, ref n, ref blind);
        if (!ReferenceEquals(a, b))
        {
            AddDescriptor(b.PollDescriptor, fds, ref n, ref blind);
        }
        int timeout = timeoutMilliseconds;
        if (blind && (timeout < 0 || timeout > 1))
        {
            timeout = 1;
        }
        // natd's own poll declaration: Tmds.LibC's does not capture errno, and EINTR must be told apart.
        int r = NatdLibC.Poll(fds, (nuint)n, timeout);
        if (r >= 0)
        {
            return r;
        }
        int e = LibC.errno;
        if (e == EINTR)
        {
            return 0;
        }
        Errno.Throw("poll on the port descriptors", e);
        return 0;
    }

    private static void AddDescriptor(int fd, pollfd* fds, ref int n, ref bool blind)
    {
        if (fd < 0)
        {
            blind = true;
            return;
        }
        fds[n].fd = fd;
        fds[n].events = POLLIN;
        fds[n].revents = 0;
        n++;
    }
}
