using System.Diagnostics;
using System.Runtime.CompilerServices;
using Natd.Dataplane.Io;
using Natd.Dataplane.Io.Native;
using Tmds.Linux;

namespace Natd.Tests.Io;

public sealed class AfXdpNativeLayoutTests
{
    // Sizes from linux/if_xdp.h and linux/bpf.h on LP64.
    [Fact]
    public void Xdp_and_bpf_struct_sizes_match_the_uapi_headers()
    {
        Assert.Equal(16, Unsafe.SizeOf<SockAddrXdp>());
        Assert.Equal(32, Unsafe.SizeOf<XdpUmemReg>());
        Assert.Equal(32, Unsafe.SizeOf<XdpRingOffset>());
        Assert.Equal(128, Unsafe.SizeOf<XdpMmapOffsets>());
        Assert.Equal(16, Unsafe.SizeOf<XdpDesc>());
        Assert.Equal(48, Unsafe.SizeOf<XdpStatistics>());
        Assert.Equal(32, Unsafe.SizeOf<BpfMapElemAttr>());
        Assert.Equal(72, Unsafe.SizeOf<BpfProgLoadAttr>());
        Assert.Equal(16, Unsafe.SizeOf<BpfLinkCreateAttr>());
    }

    [Fact]
    public void Redirect_program_encodes_the_expected_instructions()
    {
        ulong[] p = BpfXskRedirect.Program(mapFd: 7);
        Assert.Equal(6, p.Length);
        Assert.Equal(0x0000_0000_0010_1261UL, p[0]); // ldxw r2, [r1 + 16]
        Assert.Equal(0x0000_0007_0000_1118UL, p[1]); // lddw r1, map fd 7 (src = BPF_PSEUDO_MAP_FD)
        Assert.Equal(0UL, p[2]);
        Assert.Equal(0x0000_0002_0000_03b7UL, p[3]); // mov r3, XDP_PASS
        Assert.Equal(0x0000_0033_0000_0085UL, p[4]); // call 51 (bpf_redirect_map)
        Assert.Equal(0x0000_0000_0000_0095UL, p[5]); // exit
    }

    [Theory]
    [InlineData(-1, 4096, 2048, "QueueId")]
    [InlineData(0, 63, 2048, "FrameCount")]
    [InlineData(0, 4095, 2048, "FrameCount")]
    [InlineData(0, 4096, 1000, "RingSize")]
    [InlineData(0, 4096, 16, "RingSize")]
    public void Invalid_options_name_the_field(int queue, int frames, int ring, string field)
    {
        var o = AfXdpOptions.Default with { QueueId = queue, FrameCount = frames, RingSize = ring };
        var e = Assert.Throws<ArgumentException>(() => AfXdpPort.Open("lo", o));
        Assert.Contains(field, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Opening_a_missing_interface_names_it_and_the_errno()
    {
        var e = Assert.Throws<NativeIoException>(() => AfXdpPort.Open("natd-nosuch0", AfXdpOptions.Default));
        Assert.Contains("'natd-nosuch0'", e.Message, StringComparison.Ordinal);
        Assert.Contains("ENODEV", e.Message, StringComparison.Ordinal);
        Assert.Equal(19, e.Errno);
    }

    [Fact]
    public void Unavailability_errors_point_to_af_packet()
    {
        Assert.Contains("AF_PACKET", AfXdpErrors.Hint(LibC.EPERM), StringComparison.Ordinal);
        Assert.Contains("CAP_BPF", AfXdpErrors.Hint(LibC.EPERM), StringComparison.Ordinal);
        Assert.Contains("AF_PACKET", AfXdpErrors.Hint(LibC.EAFNOSUPPORT), StringComparison.Ordinal);
    }
}

/// <summary>AF_XDP behaviour beyond the port contract, each test in its own veth namespace.</summary>
public sealed class AfXdpPortTests : IDisposable
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(5);
    private readonly VethNamespace _ns = new();

    public void Dispose() => _ns.Dispose();

    private T In<T>(Func<T> open) => NetNamespace.RunIn(_ns.Name, open);

    private string XdpLine(string dev)
    {
        string details = _ns.Exec("ip", "-d", "link", "show", dev);
        return string.Join('\n', details.Split('\n').Where(l => l.Contains("prog/xdp", StringComparison.Ordinal) || l.TrimStart().StartsWith("xdp", StringComparison.Ordinal)));
    }

    private bool WaitUntil(Func<bool> condition)
    {
        var clock = Stopwatch.StartNew();
        while (!condition())
        {
            if (clock.Elapsed > Deadline)
            {
                return false;
            }
            Thread.Sleep(10);
        }
        return true;
    }

    [Theory]
    [InlineData(XdpAttachMode.Auto, XdpAttachMode.Native, "xdp ")]
    [InlineData(XdpAttachMode.Native, XdpAttachMode.Native, "xdp ")]
    [InlineData(XdpAttachMode.Generic, XdpAttachMode.Generic, "xdpgeneric")]
    public void Open_attaches_the_program_and_Dispose_detaches_it(XdpAttachMode asked, XdpAttachMode expected, string ipWord)
    {
        var port = In(() => AfXdpPort.Open(VethNamespace.B, AfXdpOptions.Default with { Mode = asked }));
        try
        {
            Assert.Equal(expected, port.AttachMode);
            string link = _ns.Exec("ip", "-d", "link", "show", VethNamespace.B);
            Assert.Contains("prog/xdp", link, StringComparison.Ordinal);
            Assert.Contains(ipWord, link, StringComparison.Ordinal);
            Assert.Contains($"link/ether {port.Mac} ", link, StringComparison.Ordinal);
            Assert.True(port.IfIndex > 0);
            Assert.True(port.PollDescriptor >= 0);
        }
        finally
        {
            port.Dispose();
        }
        // Closing the link fd detaches the program: nothing stays on the interface.
        Assert.True(WaitUntil(() => !_ns.Exec("ip", "-d", "link", "show", VethNamespace.B).Contains("prog/xdp", StringComparison.Ordinal)),
            $"an XDP program is still attached after Dispose: {XdpLine(VethNamespace.B)}");
        Assert.Equal(-1, port.PollDescriptor);
    }

    [Fact]
    public void A_second_port_on_the_same_interface_is_refused_and_the_first_keeps_working()
    {
        using var first = In(() => AfXdpPort.Open(VethNamespace.B, AfXdpOptions.Default));
        var e = Assert.Throws<NativeIoException>(() => In(() => AfXdpPort.Open(VethNamespace.B, AfXdpOptions.Default)));
        Assert.Contains("'vb'", e.Message, StringComparison.Ordinal);
        Assert.Equal(LibC.EBUSY, e.Errno);
        // The refused open cleaned up after itself without touching the first port's program.
        Assert.Contains("prog/xdp", _ns.Exec("ip", "-d", "link", "show", VethNamespace.B), StringComparison.Ordinal);

        using var sender = In(() => AfPacketPort.Open(VethNamespace.A, AfPacketOptions.Default));
        var frames = new TestFrames(sender.Mac, first.Mac);
        Assert.True(sender.TrySend(frames.Make(1, 100)));
        sender.Flush();
        Assert.Equal(1, CountOurs(first, frames, 1));
    }

    /// <summary>
    /// Every frame on the bound queue goes to the AF_XDP socket, none to the kernel stack: an
    /// AF_PACKET tap on the same interface (which sees what the stack sees) gets nothing. After
    /// Dispose the stack gets them again.
    /// </summary>
    [Fact]
    public void EtherType_filter_leaves_other_frames_to_the_kernel()
    {
        using var sender = In(() => AfPacketPort.Open(VethNamespace.A, AfPacketOptions.Default));
        using var tap = In(() => AfPacketPort.Open(VethNamespace.B, AfPacketOptions.Default));
        using var ipv4Only = In(() => AfXdpPort.Open(VethNamespace.B, AfXdpOptions.Default with { RedirectEtherTypes = [0x0800, 0x0806] }));
        var frames = new TestFrames(sender.Mac, ipv4Only.Mac);
        for (int i = 0; i < 10; i++)
        {
            Assert.True(sender.TrySend(frames.Make(i, 64)));
        }
        sender.Flush();
        Assert.Equal(10, CountOurs(tap, frames, 10)); // not IPv4 or ARP: the kernel stack got them
        Thread.Sleep(50);
        Assert.Equal(0, CountOurs(ipv4Only, frames, 0));
    }

    [Fact]
    public void EtherType_filter_takes_the_listed_types()
    {
        using var sender = In(() => AfPacketPort.Open(VethNamespace.A, AfPacketOptions.Default));
        using var listed = In(() => AfXdpPort.Open(VethNamespace.B, AfXdpOptions.Default with { RedirectEtherTypes = [0x0800, TestFrames.EtherType] }));
        var frames2 = new TestFrames(sender.Mac, listed.Mac);
        for (int i = 20; i < 30; i++)
        {
            Assert.True(sender.TrySend(frames2.Make(i, 64)));
        }
        sender.Flush();
        Assert.Equal(10, CountOurs(listed, frames2, 10));
    }

    [Fact]
    public void Frames_on_the_bound_queue_bypass_the_kernel_stack_until_Dispose()
    {
        using var sender = In(() => AfPacketPort.Open(VethNamespace.A, AfPacketOptions.Default));
        using var tap = In(() => AfPacketPort.Open(VethNamespace.B, AfPacketOptions.Default));
        var xdp = In(() => AfXdpPort.Open(VethNamespace.B, AfXdpOptions.Default));
        var frames = new TestFrames(sender.Mac, xdp.Mac);
        try
        {
            for (int i = 0; i < 20; i++)
            {
                Assert.True(sender.TrySend(frames.Make(i, 64 + i)));
            }
            sender.Flush();
            Assert.Equal(20, CountOurs(xdp, frames, 20));
            Thread.Sleep(50); // beyond the tap's 1 ms block timeout: anything the stack got is visible
            Assert.Equal(0, CountOurs(tap, frames, 0));
        }
        finally
        {
            xdp.Dispose();
        }

        Assert.True(WaitUntil(() => !_ns.Exec("ip", "-d", "link", "show", VethNamespace.B).Contains("prog/xdp", StringComparison.Ordinal)));
        for (int i = 100; i < 105; i++)
        {
            Assert.True(sender.TrySend(frames.Make(i, 80)));
        }
        sender.Flush();
        Assert.Equal(5, CountOurs(tap, frames, 5));
    }

    [Fact]
    public void Receive_TrySend_and_Flush_allocate_nothing()
    {
        using var a = In(() => AfXdpPort.Open(VethNamespace.A, AfXdpOptions.Default));
        using var b = In(() => AfXdpPort.Open(VethNamespace.B, AfXdpOptions.Default));
        var frames = new TestFrames(a.Mac, b.Mac);
        byte[] frame = frames.Make(1, 200);
        using var batch = new FrameBatch(64);
        // Warm up (JIT, first-use paths, the completion reap), then measure steady rounds.
        for (int round = 0; round < 4; round++)
        {
            long before = GC.GetAllocatedBytesForCurrentThread();
            for (int i = 0; i < 40; i++)
            {
                a.TrySend(frame); // more than the kernel's 32-frame copy-mode batch: Flush kicks twice
            }
            a.Flush();
            PortPoller.Wait(a, b, 1000);
            batch.Clear();
            b.Receive(batch);
            long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
            if (round >= 2)
            {
                Assert.Equal(0, allocated);
                Assert.True(batch.Count > 0, "nothing was received, so nothing was measured");
            }
            Thread.Sleep(5);
        }
    }

    [Fact]
    public void More_frames_than_one_kick_carries_all_go_out_in_one_Flush()
    {
        using var a = In(() => AfXdpPort.Open(VethNamespace.A, AfXdpOptions.Default));
        using var b = In(() => AfXdpPort.Open(VethNamespace.B, AfXdpOptions.Default));
        var frames = new TestFrames(a.Mac, b.Mac);
        const int count = 200;
        for (int i = 0; i < count; i++)
        {
            Assert.True(a.TrySend(frames.Make(i, 60 + i)));
        }
        long kicksBefore = a.TxKicks;
        a.Flush();
        Assert.True(a.TxKicks - kicksBefore >= count / 32, $"200 frames need at least 6 kicks of 32, made {a.TxKicks - kicksBefore}");
        Assert.Equal(count, CountOurs(b, frames, count));
        Assert.Equal(0, a.TxKickErrors);
        Assert.Equal(0, b.Stats.RxDropped);
    }

    /// <summary>
    /// Thousands of frames through 32 TX and 32 RX UMEM frames: a frame lost on either side
    /// (not returned by the completion ring, or not put back on the fill ring) would stall it.
    /// </summary>
    [Fact]
    public void No_umem_frame_is_lost_over_many_rounds()
    {
        var small = AfXdpOptions.Default with { FrameCount = 64, RingSize = 32 };
        using var a = In(() => AfXdpPort.Open(VethNamespace.A, small));
        using var b = In(() => AfXdpPort.Open(VethNamespace.B, small));
        Assert.Equal(32, a.TxCapacity);
        Assert.Equal(32, b.RxFrameCount);
        var frames = new TestFrames(a.Mac, b.Mac);
        const int rounds = 200, perRound = 24;
        int next = 0;
        for (int round = 0; round < rounds; round++)
        {
            int start = next;
            for (int i = 0; i < perRound; i++)
            {
                var clock = Stopwatch.StartNew();
                while (!a.TrySend(frames.Make(next, 60 + (next % 200))))
                {
                    a.Flush();
                    Assert.True(clock.Elapsed < Deadline, $"round {round}: no TX frame came back");
                    Thread.Sleep(1);
                }
                next++;
            }
            a.Flush();
            Assert.Equal(perRound, CountInOrder(b, frames, start, perRound));
        }
        Assert.Equal(0, b.Stats.RxDropped);
        Assert.Equal(rounds * perRound, a.Stats.TxFrames);

        // Every TX frame returns: the whole TX capacity is usable again without a Flush.
        int accepted = 0;
        var wait = Stopwatch.StartNew();
        while (accepted < a.TxCapacity && wait.Elapsed < Deadline)
        {
            if (a.TrySend(frames.Make(next, 60)))
            {
                accepted++;
            }
            else
            {
                Thread.Sleep(1);
            }
        }
        Assert.Equal(a.TxCapacity, accepted);
    }

    private static int CountInOrder(IPacketPort port, TestFrames frames, int first, int expected)
    {
        using var batch = new FrameBatch(16);
        int got = 0;
        var clock = Stopwatch.StartNew();
        while (got < expected && clock.Elapsed < Deadline)
        {
            batch.Clear();
            if (port.Receive(batch) == 0)
            {
                PortPoller.Wait(port, port, 20);
            }
            for (int i = 0; i < batch.Count; i++)
            {
                int seq = frames.SequenceOf(batch.Frame(i));
                if (seq >= 0)
                {
                    Assert.Equal(first + got, seq);
                    got++;
                }
            }
        }
        return got;
    }

    /// <summary>Receives until <paramref name="expected"/> of our frames arrived (or the deadline), then counts stragglers once.</summary>
    private static int CountOurs(IPacketPort port, TestFrames frames, int expected)
    {
        using var batch = new FrameBatch(64);
        int got = 0;
        var clock = Stopwatch.StartNew();
        do
        {
            batch.Clear();
            int n = port.Receive(batch);
            for (int i = 0; i < batch.Count; i++)
            {
                got += frames.SequenceOf(batch.Frame(i)) >= 0 ? 1 : 0;
            }
            if (n == 0)
            {
                PortPoller.Wait(port, port, 20);
            }
        }
        while (got < expected && clock.Elapsed < Deadline);
        return got;
    }
}

/// <summary>
/// Queue selection on a two-queue veth pair: the socket gets only its queue's frames; frames on
/// a queue without a socket pass to the kernel stack (the program's XDP_PASS fallback).
/// </summary>
public sealed class AfXdpQueueTests : IDisposable
{
    private readonly string _ns = $"natd-xq-{Guid.NewGuid():N}"[..20];

    public AfXdpQueueTests()
    {
        Shell.Run("ip", "netns", "add", _ns);
        try
        {
            Shell.Run("ip", "netns", "exec", _ns, "sh", "-c", "echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6; echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6");
            Shell.Run("ip", "-n", _ns, "link", "add", VethNamespace.A, "numrxqueues", "2", "numtxqueues", "2", "type", "veth",
                "peer", "name", VethNamespace.B, "numrxqueues", "2", "numtxqueues", "2");
            Shell.Run("ip", "-n", _ns, "link", "set", VethNamespace.A, "up");
            Shell.Run("ip", "-n", _ns, "link", "set", VethNamespace.B, "up");
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    public void Dispose() => Shell.TryRun(TimeSpan.FromSeconds(20), "ip", "netns", "delete", _ns);

    [Fact]
    public void Frames_on_a_queue_without_a_socket_pass_to_the_kernel_stack()
    {
        // AF_XDP copy-mode TX on va queue q lands on vb's receive queue q.
        using var tx0 = NetNamespace.RunIn(_ns, () => AfXdpPort.Open(VethNamespace.A, AfXdpOptions.Default with { QueueId = 0 }));
        using var rx1 = NetNamespace.RunIn(_ns, () => AfXdpPort.Open(VethNamespace.B, AfXdpOptions.Default with { QueueId = 1 }));
        using var tap = NetNamespace.RunIn(_ns, () => AfPacketPort.Open(VethNamespace.B, AfPacketOptions.Default));
        Assert.Equal(1, rx1.QueueId);
        var frames = new TestFrames(tx0.Mac, rx1.Mac);
        for (int i = 0; i < 10; i++)
        {
            Assert.True(tx0.TrySend(frames.Make(i, 100)));
        }
        tx0.Flush();

        Assert.Equal(10, Count(tap, frames, 10));   // queue 0 has no socket: XDP_PASS to the stack
        Assert.Equal(0, Count(rx1, frames, 0));     // and none reached the queue-1 socket
    }

    [Fact]
    public void Frames_on_the_bound_queue_reach_its_socket()
    {
        using var tx1 = NetNamespace.RunIn(_ns, () => AfXdpPort.Open(VethNamespace.A, AfXdpOptions.Default with { QueueId = 1 }));
        using var rx1 = NetNamespace.RunIn(_ns, () => AfXdpPort.Open(VethNamespace.B, AfXdpOptions.Default with { QueueId = 1 }));
        using var tap = NetNamespace.RunIn(_ns, () => AfPacketPort.Open(VethNamespace.B, AfPacketOptions.Default));
        var frames = new TestFrames(tx1.Mac, rx1.Mac);
        for (int i = 0; i < 10; i++)
        {
            Assert.True(tx1.TrySend(frames.Make(i, 100)));
        }
        tx1.Flush();

        Assert.Equal(10, Count(rx1, frames, 10));
        Assert.Equal(0, Count(tap, frames, 0));
    }

    private static int Count(IPacketPort port, TestFrames frames, int expected)
    {
        using var batch = new FrameBatch(64);
        int got = 0;
        var clock = Stopwatch.StartNew();
        do
        {
            batch.Clear();
            if (port.Receive(batch) == 0)
            {
                PortPoller.Wait(port, port, 20);
            }
            for (int i = 0; i < batch.Count; i++)
            {
                got += frames.SequenceOf(batch.Frame(i)) >= 0 ? 1 : 0;
            }
        }
        while ((got < expected && clock.Elapsed < TimeSpan.FromSeconds(5)) || clock.Elapsed < TimeSpan.FromMilliseconds(50));
        return got;
    }
}
