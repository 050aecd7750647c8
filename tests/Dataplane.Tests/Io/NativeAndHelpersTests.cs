using System.Diagnostics;
using System.Runtime.CompilerServices;
using Natd.Dataplane.Io;
using Natd.Dataplane.Io.Native;
using Natd.Dataplane.Packets;
using Tmds.Linux;

namespace Natd.Tests.Io;

public class NativeLayoutTests
{
    // Sizes from linux/if_packet.h, linux/if.h and poll.h on LP64 (checked against the headers).
    [Fact]
    public void Kernel_struct_sizes_match_the_uapi_headers()
    {
        Assert.Equal(20, Unsafe.SizeOf<sockaddr_ll>());
        Assert.Equal(28, Unsafe.SizeOf<TpacketReq3>());
        Assert.Equal(48, Unsafe.SizeOf<Tpacket3Hdr>());
        Assert.Equal(32, Unsafe.SizeOf<Tpacket2Hdr>());
        Assert.Equal(40, Unsafe.SizeOf<TpacketHdrV1>());
        Assert.Equal(48, Unsafe.SizeOf<TpacketBlockDesc>());
        Assert.Equal(12, Unsafe.SizeOf<TpacketStatsV3>());
        Assert.Equal(8, Unsafe.SizeOf<pollfd>());
        Assert.Equal(40, Unsafe.SizeOf<IfReq>());
    }

    [Fact]
    public void Errno_text_names_the_error_and_strerror()
    {
        Assert.Equal("EPERM (Operation not permitted)", Errno.Describe(1));
        Assert.Contains("CAP_NET_RAW", Errno.Hint(1), StringComparison.Ordinal);
    }

    [Fact]
    public void Opening_a_missing_interface_names_it_and_the_errno()
    {
        var e = Assert.Throws<NativeIoException>(() => AfPacketPort.Open("natd-nosuch0", AfPacketOptions.Default));
        Assert.Contains("'natd-nosuch0'", e.Message, StringComparison.Ordinal);
        Assert.Contains("ENODEV", e.Message, StringComparison.Ordinal);
        Assert.Equal(19, e.Errno);
    }

    [Fact]
    public void Invalid_ring_geometry_is_refused_before_any_system_call()
    {
        var bad = AfPacketOptions.Default with { RxBlockSize = 1000 };
        var e = Assert.Throws<ArgumentException>(() => AfPacketPort.Open("lo", bad));
        Assert.Contains("RxBlockSize", e.Message, StringComparison.Ordinal);
    }
}

public class NetNamespaceTests
{
    [Fact]
    public void RunIn_runs_inside_the_namespace_and_returns_the_result()
    {
        using var ns = new VethNamespace();
        // The namespace's own inode differs from ours: compare /proc/thread-self/ns/net links.
        string ours = NetLink();
        string theirs = NetNamespace.RunIn(ns.Name, () => NetLink());
        Assert.NotEqual(ours, theirs);
        string viaIp = Shell.Run("ip", "netns", "exec", ns.Name, "readlink", "/proc/self/ns/net").Trim();
        Assert.Equal(viaIp, theirs);
        Assert.Equal(ours, NetLink());
    }

    private static string NetLink() => new FileInfo("/proc/thread-self/ns/net").LinkTarget!;

    [Fact]
    public void RunIn_rethrows_the_action_exception()
    {
        using var ns = new VethNamespace();
        var e = Assert.Throws<InvalidOperationException>(() => NetNamespace.RunIn<int>(ns.Name, () => throw new InvalidOperationException("boom")));
        Assert.Equal("boom", e.Message);
    }

    [Fact]
    public void RunIn_a_missing_namespace_fails_clearly()
    {
        var e = Assert.Throws<NativeIoException>(() => NetNamespace.RunIn("natd-io-missing-ns", () => 1));
        Assert.Contains("natd-io-missing-ns", e.Message, StringComparison.Ordinal);
        Assert.Contains("ENOENT", e.Message, StringComparison.Ordinal);
    }
}

public class PortPollerTests
{
    [Fact]
    public void Ports_without_descriptors_wait_about_a_millisecond_not_the_timeout()
    {
        using var a = new MemoryPort("a", MacAddress.Zero);
        using var b = new MemoryPort("b", MacAddress.Zero);
        var clock = Stopwatch.StartNew();
        int r = PortPoller.Wait(a, b, 5000);
        Assert.Equal(0, r);
        Assert.True(clock.ElapsedMilliseconds < 500, $"waited {clock.ElapsedMilliseconds} ms");
    }

    [Fact]
    public void Wait_times_out_on_an_idle_ring_and_wakes_for_a_frame()
    {
        using var ns = new VethNamespace();
        using var a = NetNamespace.RunIn(ns.Name, () => AfPacketPort.Open(VethNamespace.A, AfPacketOptions.Default));
        using var b = NetNamespace.RunIn(ns.Name, () => AfPacketPort.Open(VethNamespace.B, AfPacketOptions.Default));
        // Drain anything the link set-up left, then an idle wait must time out.
        using var batch = new FrameBatch(256);
        while (b.Receive(batch) > 0)
        {
            batch.Clear();
        }
        var clock = Stopwatch.StartNew();
        Assert.Equal(0, PortPoller.Wait(b, b, 50));
        Assert.InRange(clock.ElapsedMilliseconds, 40, 2000);

        var frames = new TestFrames(a.Mac, b.Mac);
        Assert.True(a.TrySend(frames.Make(1, 64)));
        a.Flush();
        clock.Restart();
        Assert.True(PortPoller.Wait(b, b, 5000) > 0);
        Assert.True(clock.ElapsedMilliseconds < 4000);
    }
}

public class MemoryPortTests
{
    [Fact]
    public void Flags_timestamps_and_pending_counts_pass_through()
    {
        using var port = new MemoryPort("m", MacAddress.Parse("02:00:00:00:00:01"), txCapacity: 2);
        for (int i = 0; i < 40; i++) // more than the initial ring: forces growth
        {
            port.Inject(new byte[] { (byte)i, 1, 2 }, i % 2 == 0 ? FrameFlags.ChecksumPartial : FrameFlags.None, 1000 + i);
        }
        Assert.Equal(40, port.PendingRx);
        using var batch = new FrameBatch(64);
        Assert.Equal(40, port.Receive(batch));
        Assert.Equal(0, port.PendingRx);
        for (int i = 0; i < 40; i++)
        {
            Assert.Equal((byte)i, batch.Frame(i)[0]);
            Assert.Equal(i % 2 == 0 ? FrameFlags.ChecksumPartial : FrameFlags.None, batch.Flags[i]);
            Assert.Equal(1000 + i, batch.Timestamps[i]);
        }

        Assert.True(port.TrySend(new byte[] { 9 }));
        Assert.True(port.TrySend(new byte[] { 8, 7 }));
        Assert.False(port.TrySend(new byte[] { 6 }));
        Assert.Equal(1, port.Stats.TxDropped);
        var drained = port.DrainTransmitted();
        Assert.Equal([new byte[] { 9 }, new byte[] { 8, 7 }], drained);
        Assert.False(port.TryTakeTransmitted(out _));
        Assert.Equal(-1, port.PollDescriptor);
        Assert.Equal(40, port.Stats.RxFrames);
        Assert.Equal(2, port.Stats.TxFrames);
    }
}
