using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Natd.Dataplane.Io;
using Natd.Dataplane.Io.Native;
using Natd.Dataplane.Packets;
using Tmds.Linux;

namespace Natd.Tests.Io;

/// <summary>
/// The libc bindings natd takes from Tmds.LibC (docs/architecture.md, "Native interop"): the
/// values it relies on, the structs' sizes, and the two calls it keeps declaring itself.
/// </summary>
public unsafe class NativeBindingTests
{
    // Every Tmds.LibC constant natd uses, with the value of the uapi headers on x86-64 and arm64
    // (asm-generic/errno-base.h, errno.h, socket.h, mman-common.h, poll.h, fcntl.h, sched.h,
    // linux/if_packet.h, linux/sockios.h, sys/eventfd.h): natd's own constants had these values.
    [Fact]
    public void Tmds_LibC_constants_natd_uses_have_the_kernel_values()
    {
        Assert.Equal(17, (int)LibC.AF_PACKET);
        Assert.Equal(3, LibC.SOCK_RAW);
        Assert.Equal(2, LibC.SOCK_DGRAM);
        Assert.Equal(0x80000, LibC.SOCK_CLOEXEC);
        Assert.Equal(1, LibC.SOL_SOCKET);
        Assert.Equal(263, LibC.SOL_PACKET);
        Assert.Equal(5, LibC.PACKET_RX_RING);
        Assert.Equal(6, LibC.PACKET_STATISTICS);
        Assert.Equal(10, LibC.PACKET_VERSION);
        Assert.Equal(13, LibC.PACKET_TX_RING);
        Assert.Equal(14, LibC.PACKET_LOSS);
        Assert.Equal(18, LibC.PACKET_FANOUT);
        Assert.Equal(20, LibC.PACKET_QDISC_BYPASS);
        Assert.Equal(23, LibC.PACKET_IGNORE_OUTGOING);
        Assert.Equal(0, LibC.PACKET_HOST);
        Assert.Equal(4, LibC.PACKET_OUTGOING);
        Assert.Equal(1, LibC.PROT_READ);
        Assert.Equal(2, LibC.PROT_WRITE);
        Assert.Equal(1, LibC.MAP_SHARED);
        Assert.Equal(0x8000, LibC.MAP_POPULATE);
        Assert.Equal(-1, (nint)LibC.MAP_FAILED);
        Assert.Equal(0x001, LibC.POLLIN);
        Assert.Equal(0x008, LibC.POLLERR);
        Assert.Equal(0x40, LibC.MSG_DONTWAIT);
        Assert.Equal(0x8913, LibC.SIOCGIFFLAGS);
        Assert.Equal(0x8914, LibC.SIOCSIFFLAGS);
        Assert.Equal(0x8927, LibC.SIOCGIFHWADDR);
        Assert.Equal(0, LibC.O_RDONLY);
        Assert.Equal(0x80000, LibC.O_CLOEXEC);
        Assert.Equal(0x40000000, LibC.CLONE_NEWNET);
        Assert.Equal(0x800, LibC.EFD_NONBLOCK);
        Assert.Equal(0x80000, LibC.EFD_CLOEXEC);
        Assert.Equal(1024, LibC.CPU_SETSIZE);

        Assert.Equal(1, LibC.EPERM);
        Assert.Equal(2, LibC.ENOENT);
        Assert.Equal(4, LibC.EINTR);
        Assert.Equal(6, LibC.ENXIO);
        Assert.Equal(9, LibC.EBADF);
        Assert.Equal(11, LibC.EAGAIN);
        Assert.Equal(12, LibC.ENOMEM);
        Assert.Equal(13, LibC.EACCES);
        Assert.Equal(16, LibC.EBUSY);
        Assert.Equal(17, LibC.EEXIST);
        Assert.Equal(19, LibC.ENODEV);
        Assert.Equal(22, LibC.EINVAL);
        Assert.Equal(38, LibC.ENOSYS);
        Assert.Equal(90, LibC.EMSGSIZE);
        Assert.Equal(92, LibC.ENOPROTOOPT);
        Assert.Equal(95, LibC.EOPNOTSUPP);
        Assert.Equal(97, LibC.EAFNOSUPPORT);
        Assert.Equal(100, LibC.ENETDOWN);
        Assert.Equal(105, LibC.ENOBUFS);
    }

    [Fact]
    public void Tmds_LibC_structs_natd_uses_have_the_kernel_sizes()
    {
        Assert.Equal(20, Unsafe.SizeOf<sockaddr_ll>());
        Assert.Equal(8, Unsafe.SizeOf<pollfd>());
        Assert.Equal(128, Unsafe.SizeOf<cpu_set_t>());
        Assert.Equal(4, Unsafe.SizeOf<socklen_t>());
        Assert.Equal(8, Unsafe.SizeOf<size_t>());
    }

    // Why PortPoller keeps its own poll declaration: Tmds.LibC 0.5.0 declares poll without
    // SetLastError, so after a failed poll LibC.errno is whatever an earlier call left. If a later
    // Tmds.LibC captures it, the second half fails: then PortPoller can take Tmds.LibC's poll.
    [Fact]
    public void Natd_poll_captures_errno_where_Tmds_LibC_poll_does_not()
    {
        const int Stale = 12345;
        pollfd fd = default;
        fd.fd = -1;
        // More descriptors than RLIMIT_NOFILE can ever be (at most 2^30): EINVAL before any is read.
        const int TooMany = int.MaxValue;

        Marshal.SetLastPInvokeError(Stale);
        Assert.Equal(-1, NatdLibC.Poll(&fd, TooMany, 0));
        Assert.Equal(LibC.EINVAL, LibC.errno);

        Marshal.SetLastPInvokeError(Stale);
        Assert.Equal(-1, LibC.poll(&fd, (ulong_t)(ulong)TooMany, 0));
        Assert.Equal(Stale, LibC.errno);
    }

    [Fact]
    public void If_name_to_index_finds_the_loopback_and_not_a_missing_name()
    {
        Assert.Equal(1u, NatdLibC.IfNameToIndex("lo"));
        Assert.Equal(0u, NatdLibC.IfNameToIndex("natd-nosuch0"));
        Assert.Equal(LibC.ENODEV, LibC.errno);
    }

    [Fact]
    public void A_signal_wakes_the_poller_and_a_drain_clears_it_without_allocating()
    {
        using var port = new MemoryPort("m", MacAddress.Zero);
        using var wake = new Wakeup();
        // A memory port has no descriptor: the wait is capped at 1 ms, so an unsignalled wait returns 0 at once.
        Assert.Equal(0, PortPoller.Wait(port, port, wake.Descriptor, 0));
        wake.Signal();
        Assert.Equal(1, PortPoller.Wait(port, port, wake.Descriptor, 5000));
        wake.Drain();
        Assert.Equal(0, PortPoller.Wait(port, port, wake.Descriptor, 0));

        // The calls a poller makes per idle round (eventfd write and read, poll) allocate nothing.
        for (int warm = 0; warm < 100; warm++)
        {
            wake.Signal();
            PortPoller.Wait(port, port, wake.Descriptor, 0);
            wake.Drain();
        }
        // Up to three measured rounds: the runtime's own one-time work (a method promoted to its
        // optimized tier mid-loop) can allocate once on this thread; a per-call allocation would show
        // in every round (10,000 calls), so one clean round proves there is none.
        var rounds = new List<long>();
        for (int round = 0; round < 3 && (rounds.Count == 0 || rounds[^1] != 0); round++)
        {
            long before = GC.GetAllocatedBytesForCurrentThread();
            int woken = 0;
            for (int i = 0; i < 10_000; i++)
            {
                wake.Signal();
                woken += PortPoller.Wait(port, port, wake.Descriptor, 0);
                wake.Drain();
            }
            rounds.Add(GC.GetAllocatedBytesForCurrentThread() - before);
            Assert.Equal(10_000, woken);
        }
        Assert.True(rounds[^1] == 0, "bytes allocated per round of 10,000 wakeups: " + string.Join(", ", rounds));
    }

    [Fact]
    public void PinCurrentThread_pins_to_exactly_the_cpu_asked_for()
    {
        bool tooLow = true, tooHigh = true, pinned = false;
        int cpu = -1, count = 0;
        bool isSet = false;
        // On a thread of its own: the test runner's threads keep their affinity.
        var thread = new Thread(() =>
        {
            cpu_set_t allowed = default;
            if (LibC.sched_getaffinity(0, (size_t)(ulong)sizeof(cpu_set_t), &allowed) != 0)
            {
                return;
            }
            for (int c = LibC.CPU_SETSIZE - 1; c >= 0 && cpu < 0; c--)
            {
                if (LibC.CPU_ISSET(c, &allowed))
                {
                    cpu = c; // the highest CPU this process may run on
                }
            }
            tooLow = CpuAffinity.PinCurrentThread(-1);
            tooHigh = CpuAffinity.PinCurrentThread(LibC.CPU_SETSIZE);
            pinned = CpuAffinity.PinCurrentThread(cpu);
            cpu_set_t now = default;
            if (LibC.sched_getaffinity(0, (size_t)(ulong)sizeof(cpu_set_t), &now) == 0)
            {
                count = LibC.CPU_COUNT(&now);
                isSet = LibC.CPU_ISSET(cpu, &now);
            }
        });
        thread.Start();
        thread.Join();
        Assert.True(cpu >= 0, "sched_getaffinity found no allowed CPU");
        Assert.False(tooLow);
        Assert.False(tooHigh);
        Assert.True(pinned);
        Assert.Equal(1, count);
        Assert.True(isSet);
    }
}
