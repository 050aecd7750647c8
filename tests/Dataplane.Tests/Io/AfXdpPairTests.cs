using System.Buffers.Binary;
using System.Diagnostics;
using Natd.Dataplane.Io;

namespace Natd.Tests.Io;

/// <summary>
/// Zero-copy forwarding between the two ports of an <see cref="AfXdpPort.OpenPair(string, string, AfXdpOptions, AfXdpOptions)"/> (one UMEM
/// shared by sockets on two devices), on two 2-queue veth pairs: a sender on "ib" feeds the pair's
/// "ia", which forwards to "oa", read by a receiver on "ob". Every test ends with the frame
/// accounting: free frames plus the frames on both fill rings make up the whole UMEM.
/// </summary>
public sealed class AfXdpPairTests : IDisposable
{
    private const string InA = "ia", InB = "ib", OutA = "oa", OutB = "ob";
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(5);
    private static readonly AfXdpOptions Small = AfXdpOptions.Default with { FrameCount = 256, RingSize = 64 };
    private readonly string _ns = $"natd-xp-{Guid.NewGuid():N}"[..20];

    public AfXdpPairTests()
    {
        Shell.Run("ip", "netns", "add", _ns);
        try
        {
            Shell.Run("ip", "netns", "exec", _ns, "sh", "-c", "echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6; echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6");
            foreach (var (a, b) in new[] { (InA, InB), (OutA, OutB) })
            {
                Shell.Run("ip", "-n", _ns, "link", "add", a, "numrxqueues", "2", "numtxqueues", "2", "type", "veth",
                    "peer", "name", b, "numrxqueues", "2", "numtxqueues", "2");
                Shell.Run("ip", "-n", _ns, "link", "set", a, "up");
                Shell.Run("ip", "-n", _ns, "link", "set", b, "up");
            }
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    public void Dispose() => Shell.TryRun(TimeSpan.FromSeconds(20), "ip", "netns", "delete", _ns);

    private T In<T>(Func<T> open) => NetNamespace.RunIn(_ns, open);

    private (AfXdpPort Inside, AfXdpPort Outside) Pair(int queue)
        => In(() => AfXdpPort.OpenPair(InA, OutA, Small with { QueueId = queue }, Small with { QueueId = queue }));

    private static int Accounted(AfXdpPort inside, AfXdpPort outside) => inside.UmemFreeFrames + inside.FillFrames + outside.FillFrames;

    /// <summary>Flushes both ports until every frame is back (completions reaped, fill rings topped up) or the deadline.</summary>
    private static void Settle(AfXdpPort inside, AfXdpPort outside)
    {
        var clock = Stopwatch.StartNew();
        while (Accounted(inside, outside) != inside.UmemFrameCount && clock.Elapsed < Deadline)
        {
            inside.Flush();
            outside.Flush();
            Thread.Sleep(1);
        }
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    public void Forwarded_frames_are_translated_in_the_umem_and_sent_without_copies_and_every_frame_returns(int queue)
    {
        var (inside, outside) = Pair(queue);
        using var _i = inside;
        using var _o = outside;
        using var sender = In(() => AfXdpPort.Open(InB, AfXdpOptions.Default with { QueueId = queue }));
        using var receiver = In(() => AfXdpPort.Open(OutB, AfXdpOptions.Default with { QueueId = queue }));
        Assert.True(inside.ZeroCopy && outside.ZeroCopy);
        Assert.True(inside.SharesUmemWith(outside));
        Assert.Equal(256, inside.UmemFrameCount);
        Assert.Equal(inside.UmemFrameCount, Accounted(inside, outside));

        var frames = new TestFrames(sender.Mac, inside.Mac);
        using var batch = new FrameBatch(64);
        using var sink = new FrameBatch(64);
        const int rounds = 40, perRound = 30; // 1,200 frames through a 256-frame UMEM: a lost frame would stall it
        int next = 0, forwarded = 0, received = 0;
        for (int round = 0; round < rounds; round++)
        {
            for (int k = 0; k < perRound; k++, next++)
            {
                Assert.True(sender.TrySend(frames.Make(next, 60 + (next % 900))));
            }
            sender.Flush();
            var clock = Stopwatch.StartNew();
            int got = 0;
            while (got < perRound && clock.Elapsed < Deadline)
            {
                batch.Clear();
                if (inside.Receive(batch) == 0)
                {
                    PortPoller.Wait(inside, inside, 20);
                    continue;
                }
                for (int i = 0; i < batch.Count; i++)
                {
                    Span<byte> slot = batch.Slot(i);
                    int seq = frames.SequenceOf(slot[..batch.Lengths[i]]);
                    if (seq < 0)
                    {
                        continue;
                    }
                    Assert.True(batch.IsLent(i), "a pair port lends the UMEM frame instead of copying it");
                    // "Translate" in place, growing the frame by 4 bytes (the slot has room).
                    int len = batch.Lengths[i];
                    BinaryPrimitives.WriteInt32BigEndian(slot[18..], seq + 1_000_000);
                    BinaryPrimitives.WriteInt32BigEndian(slot[len..], 0x5EED);
                    Assert.True(outside.TryForward(batch, i, len + 4));
                    Assert.False(batch.IsLent(i)); // taken: the TX ring owns it now
                    forwarded++;
                    got++;
                }
                outside.Flush();
            }
            Assert.Equal(perRound, got);

            // The receiver sees the translated frames, in order, 4 bytes longer.
            clock.Restart();
            int seen = 0;
            while (seen < perRound && clock.Elapsed < Deadline)
            {
                sink.Clear();
                if (receiver.Receive(sink) == 0)
                {
                    PortPoller.Wait(receiver, receiver, 20);
                }
                for (int i = 0; i < sink.Count; i++)
                {
                    int seq = frames.SequenceOf(sink.Frame(i));
                    if (seq >= 0)
                    {
                        int original = received + seen;
                        Assert.Equal(original + 1_000_000, seq);
                        Assert.Equal(60 + (original % 900) + 4, sink.Lengths[i]);
                        Assert.Equal(0x5EED, BinaryPrimitives.ReadInt32BigEndian(sink.Frame(i)[^4..]));
                        seen++;
                    }
                }
            }
            Assert.Equal(perRound, seen);
            received += seen;
        }
        Assert.Equal(rounds * perRound, forwarded);
        Assert.Equal(forwarded, outside.TxZeroCopy);
        Assert.Equal(forwarded, outside.Stats.TxFrames);
        Assert.Equal(0, outside.SocketStats.TxInvalidDescriptors);

        batch.Clear();
        Settle(inside, outside);
        Assert.Equal(inside.UmemFrameCount, Accounted(inside, outside));
    }

    /// <summary>
    /// natd with two workers: queue 1's pair joins the XDP programs queue 0's pair attached (an
    /// interface takes one program; a second attach fails with EBUSY), each queue's frames reach
    /// its own pair, and the programs stay until the last socket on the interface is gone.
    /// </summary>
    [Fact]
    public void A_pair_on_a_second_queue_joins_the_first_pairs_programs_and_outlives_it()
    {
        var (in0, out0) = Pair(0);
        var (in1, out1) = In(() => AfXdpPort.OpenPair(InA, OutA, Small with { QueueId = 1 }, Small with { QueueId = 1 }, (in0, out0)));
        using var _i1 = in1;
        using var _o1 = out1;
        Assert.False(in1.SharesUmemWith(in0)); // one UMEM per poller
        Assert.True(in1.SharesUmemWith(out1));
        using var send0 = In(() => AfXdpPort.Open(InB, AfXdpOptions.Default with { QueueId = 0 }));
        using var send1 = In(() => AfXdpPort.Open(InB, AfXdpOptions.Default with { QueueId = 1 }, send0));
        var frames = new TestFrames(send0.Mac, in0.Mac);
        using var batch = new FrameBatch(64);
        try
        {
            Assert.Equal(5, SendAndCount(send0, in0, frames, 0, batch));
            Assert.Equal(5, SendAndCount(send1, in1, frames, 100, batch));
        }
        finally
        {
            in0.Dispose();
            out0.Dispose();
        }
        Assert.Contains("prog/xdp", Shell.Run("ip", "-n", _ns, "-d", "link", "show", InA), StringComparison.Ordinal);
        Assert.Equal(5, SendAndCount(send1, in1, frames, 200, batch));
        in1.Dispose();
        out1.Dispose();
        Assert.DoesNotContain("prog/xdp", Shell.Run("ip", "-n", _ns, "-d", "link", "show", InA), StringComparison.Ordinal);
    }

    private static int SendAndCount(AfXdpPort sender, AfXdpPort port, TestFrames frames, int first, FrameBatch batch)
    {
        for (int k = 0; k < 5; k++)
        {
            Assert.True(sender.TrySend(frames.Make(first + k, 100)));
        }
        sender.Flush();
        int got = 0;
        var clock = Stopwatch.StartNew();
        while (got < 5 && clock.Elapsed < Deadline)
        {
            batch.Clear();
            if (port.Receive(batch) == 0)
            {
                PortPoller.Wait(port, port, 20);
            }
            for (int i = 0; i < batch.Count; i++)
            {
                int seq = frames.SequenceOf(batch.Frame(i));
                got += seq >= first && seq < first + 5 ? 1 : 0;
            }
        }
        batch.Clear();
        return got;
    }

    [Fact]
    public void Frames_not_forwarded_go_back_to_the_umem_when_the_batch_is_cleared()
    {
        var (inside, outside) = Pair(0);
        using var _i = inside;
        using var _o = outside;
        using var sender = In(() => AfXdpPort.Open(InB, AfXdpOptions.Default));
        var frames = new TestFrames(sender.Mac, inside.Mac);
        using var batch = new FrameBatch(64);
        int lent = 0;
        for (int round = 0; round < 20; round++)
        {
            for (int k = 0; k < 40; k++)
            {
                Assert.True(sender.TrySend(frames.Make((round * 40) + k, 100)));
            }
            sender.Flush();
            var clock = Stopwatch.StartNew();
            int got = 0;
            while (got < 40 && clock.Elapsed < Deadline)
            {
                if (inside.Receive(batch) == 0)
                {
                    PortPoller.Wait(inside, inside, 20);
                }
                got += batch.Count;
                lent = Math.Max(lent, batch.LentCount);
                // Dropped (the engine's verdict): nothing transmitted, the frames stay in the batch until Clear.
                Assert.Equal(inside.UmemFrameCount, Accounted(inside, outside) + batch.LentCount);
                batch.Clear();
                Assert.Equal(0, batch.LentCount);
            }
            Assert.Equal(40, got);
        }
        Assert.True(lent > 0);
        Settle(inside, outside);
        Assert.Equal(inside.UmemFrameCount, Accounted(inside, outside));
        Assert.Equal(0, inside.Stats.RxDropped);
    }

    [Fact]
    public void Forwarding_a_frame_of_the_batchs_own_memory_copies_it()
    {
        var (inside, outside) = Pair(0);
        using var _i = inside;
        using var _o = outside;
        using var receiver = In(() => AfXdpPort.Open(OutB, AfXdpOptions.Default));
        var frames = new TestFrames(outside.Mac, receiver.Mac);
        using var batch = new FrameBatch(4);
        Assert.True(batch.TryAdd(frames.Make(7, 120)));
        Assert.False(batch.IsLent(0));
        Assert.True(outside.TryForward(batch, 0, 120));
        outside.Flush();
        Assert.Equal(0, outside.TxZeroCopy);
        Assert.Equal(1, outside.Stats.TxFrames);

        using var sink = new FrameBatch(16);
        var clock = Stopwatch.StartNew();
        int seq = -1;
        while (seq < 0 && clock.Elapsed < Deadline)
        {
            sink.Clear();
            if (receiver.Receive(sink) == 0)
            {
                PortPoller.Wait(receiver, receiver, 20);
            }
            for (int i = 0; i < sink.Count && seq < 0; i++)
            {
                seq = frames.SequenceOf(sink.Frame(i));
            }
        }
        Assert.Equal(7, seq);
        Settle(inside, outside);
        Assert.Equal(inside.UmemFrameCount, Accounted(inside, outside));
    }

    [Fact]
    public void A_full_tx_ring_refuses_the_forward_and_the_frame_returns_on_clear()
    {
        var (inside, outside) = Pair(0);
        using var _i = inside;
        using var _o = outside;
        using var sender = In(() => AfXdpPort.Open(InB, AfXdpOptions.Default));
        var frames = new TestFrames(sender.Mac, inside.Mac);
        using var batch = new FrameBatch(64);
        // Fill outside's 64-entry TX ring without a Flush (the kernel sees nothing until then).
        for (int k = 0; k < 64; k++)
        {
            Assert.True(outside.TrySend(frames.Make(k, 80)));
        }
        for (int k = 0; k < 10; k++)
        {
            Assert.True(sender.TrySend(frames.Make(100 + k, 80)));
        }
        sender.Flush();
        var clock = Stopwatch.StartNew();
        while (batch.Count < 10 && clock.Elapsed < Deadline)
        {
            if (inside.Receive(batch) == 0)
            {
                PortPoller.Wait(inside, inside, 20);
            }
        }
        Assert.Equal(10, batch.Count);
        long droppedBefore = outside.Stats.TxDropped;
        for (int i = 0; i < batch.Count; i++)
        {
            Assert.False(outside.TryForward(batch, i, batch.Lengths[i]));
            Assert.True(batch.IsLent(i));
        }
        Assert.Equal(10, outside.Stats.TxDropped - droppedBefore);
        batch.Clear();
        Settle(inside, outside);
        Assert.Equal(inside.UmemFrameCount, Accounted(inside, outside));
    }

    [Fact]
    public void Receive_TryForward_Flush_and_Clear_allocate_nothing()
    {
        var (inside, outside) = Pair(0);
        using var _i = inside;
        using var _o = outside;
        using var sender = In(() => AfXdpPort.Open(InB, AfXdpOptions.Default));
        var frames = new TestFrames(sender.Mac, inside.Mac);
        byte[] frame = frames.Make(1, 200);
        using var batch = new FrameBatch(64);
        for (int round = 0; round < 4; round++)
        {
            for (int k = 0; k < 40; k++)
            {
                sender.TrySend(frame);
            }
            sender.Flush();
            PortPoller.Wait(inside, inside, 1000);
            Thread.Sleep(5);
            long before = GC.GetAllocatedBytesForCurrentThread();
            batch.Clear();
            int n = inside.Receive(batch);
            for (int i = 0; i < n; i++)
            {
                outside.TryForward(batch, i, batch.Lengths[i]);
            }
            outside.Flush();
            batch.Clear();
            long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
            if (round >= 2)
            {
                Assert.Equal(0, allocated);
                Assert.True(n > 0, "nothing was received, so nothing was measured");
                Assert.True(outside.TxZeroCopy > 0);
            }
        }
    }

    [Theory]
    [InlineData(0, 60)]  // derived: a quarter of the 256 frames, 64, hold the whole burst
    [InlineData(48, 48)] // configured: the kernel fills 48 frames, then finds the ring empty
    public void The_fill_ring_bounds_what_the_kernel_delivers_while_nobody_receives(int fillRingFrames, int expected)
    {
        var options = Small with { FillRingFrames = fillRingFrames };
        var (inside, outside) = In(() => AfXdpPort.OpenPair(InA, OutA, options, options));
        using var _i = inside;
        using var _o = outside;
        int fill = fillRingFrames == 0 ? 64 : fillRingFrames;
        Assert.Equal(fill, inside.FillFrames);
        Assert.Equal(fill, outside.FillFrames);
        Assert.Equal(256 - (2 * fill), inside.UmemFreeFrames); // the rest wait for transmitting
        using var sender = In(() => AfXdpPort.Open(InB, AfXdpOptions.Default));
        var frames = new TestFrames(sender.Mac, inside.Mac);
        const int burst = 60; // inside the 64-entry RX ring, so only the fill ring can run out
        for (int k = 0; k < burst; k++)
        {
            Assert.True(sender.TrySend(frames.Make(k, 80)));
        }
        sender.Flush();

        // Nothing reads until the kernel has had the whole burst (the receive runs in the sender's
        // softirq): what it could not put in a fill frame by then is dropped.
        PortPoller.Wait(inside, inside, 1000);
        Thread.Sleep(50);
        using var batch = new FrameBatch(64);
        int got = 0;
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < TimeSpan.FromMilliseconds(200))
        {
            got += inside.Receive(batch);
            batch.Clear();
            Thread.Sleep(1);
        }
        Assert.Equal(expected, got);
        Assert.Equal(burst - expected, inside.Stats.RxDropped);
        Assert.Equal(expected < burst, inside.SocketStats.RxFillRingEmpty > 0);
        Assert.Equal(inside.SocketStats.RxFillRingEmpty, inside.Stats.RxFillRingEmpty); // what /metrics shows
        Assert.InRange(inside.Stats.RxFillRingEmpty, 0, inside.Stats.RxDropped);
        Settle(inside, outside);
        Assert.Equal(inside.UmemFrameCount, Accounted(inside, outside));
    }

    [Fact]
    public void Fill_rings_that_leave_no_frame_for_transmitting_or_exceed_the_ring_are_refused()
    {
        var half = Small with { RingSize = 128, FillRingFrames = 128 }; // 2 x 128 of 256 frames
        var e = Assert.Throws<ArgumentException>(() => In(() => AfXdpPort.OpenPair(InA, OutA, half, half)));
        Assert.Contains("leave none of the 256 UMEM frames", e.Message, StringComparison.Ordinal);
        var tooDeep = Small with { FillRingFrames = 65 };
        e = Assert.Throws<ArgumentException>(() => In(() => AfXdpPort.OpenPair(InA, OutA, tooDeep, tooDeep)));
        Assert.Contains("FillRingFrames 65", e.Message, StringComparison.Ordinal);
        e = Assert.Throws<ArgumentException>(() => In(() => AfXdpPort.Open(InA, Small with { FrameCount = 64, RingSize = 64, FillRingFrames = 64 })));
        Assert.Contains("leaves none of the 64 UMEM frames", e.Message, StringComparison.Ordinal);
    }
}
