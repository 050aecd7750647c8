using System.Diagnostics;
using Natd.Dataplane.Io;
using Natd.Dataplane.Packets;

namespace Natd.Tests.Io;

/// <summary>
/// What every <see cref="IPacketPort"/> promises, run against each driver: a sender port wired to
/// a receiver port (a veth pair for AF_PACKET, a copy loop for memory).
/// </summary>
public abstract class PortContractTests : IDisposable
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(5);

    protected abstract IPacketPort Sender { get; }
    protected abstract IPacketPort Receiver { get; }

    /// <summary>Frames the sender queues before TrySend refuses (nothing flushed, nothing taken).</summary>
    protected abstract int SenderTxCapacity { get; }

    /// <summary>Whether the sender's flush is a sendto(2) kick (a kernel ring), counted in <see cref="PortStats.TxKicks"/>.</summary>
    protected virtual bool KicksTheKernel => true;

    /// <summary>Moves frames the sender transmitted to the receiver; nothing to do on a real link.</summary>
    protected virtual void Carry()
    {
    }

    public abstract void Dispose();

    private TestFrames NewFrames() => new(Sender.Mac, Receiver.Mac);

    /// <summary>Receives until <paramref name="expected"/> of our frames arrived or the deadline passed.</summary>
    private List<byte[]> ReceiveOurs(TestFrames frames, int expected, FrameBatch batch, Action<int, int>? check = null)
    {
        var got = new List<byte[]>();
        var clock = Stopwatch.StartNew();
        while (got.Count < expected && clock.Elapsed < Deadline)
        {
            Carry();
            int before = batch.Count;
            int n = Receiver.Receive(batch);
            check?.Invoke(before, n);
            Assert.Equal(before + n, batch.Count);
            for (int i = before; i < batch.Count; i++)
            {
                if (frames.SequenceOf(batch.Frame(i)) >= 0)
                {
                    got.Add(batch.Frame(i).ToArray());
                }
            }
            batch.Clear();
            if (n == 0)
            {
                PortPoller.Wait(Sender, Receiver, 20);
            }
        }
        return got;
    }

    /// <summary>Queues a frame; when the ring is full, flushes and retries as a poller would (bounded).</summary>
    private void SendWithRetry(byte[] frame)
    {
        var clock = Stopwatch.StartNew();
        while (!Sender.TrySend(frame))
        {
            Sender.Flush();
            Carry();
            Assert.True(clock.Elapsed < Deadline, "the transmit ring stayed full");
            Thread.Sleep(1);
        }
    }

    [Fact]
    public void Frames_arrive_intact_and_in_order()
    {
        var frames = NewFrames();
        const int count = 100;
        var sent = new List<byte[]>();
        for (int i = 0; i < count; i++)
        {
            byte[] f = frames.Make(i, TestFrames.LengthFor(i));
            SendWithRetry(f);
            sent.Add(f);
        }
        Sender.Flush();

        using var batch = new FrameBatch(64);
        var got = ReceiveOurs(frames, count, batch);

        Assert.Equal(count, got.Count);
        Assert.True(Receiver.Stats.RxFrames >= count);
        for (int i = 0; i < count; i++)
        {
            Assert.Equal(sent[i], got[i]);
        }
        Assert.True(Sender.Stats.TxFrames >= count);
    }

    /// <summary>
    /// A flush with frames queued kicks the kernel (one sendto for fewer frames than a kick carries,
    /// 32 in AF_XDP's copy mode), a flush with none queued makes no kick, and the port's stats (what
    /// natd_port_tx_kicks_total shows) count them.
    /// </summary>
    [Fact]
    public void Stats_count_the_transmit_kicks_a_flush_makes()
    {
        var frames = NewFrames();
        PortStats before = Sender.Stats;
        Sender.Flush(); // nothing queued
        Assert.Equal(before.TxKicks, Sender.Stats.TxKicks);
        const int count = 10;
        for (int i = 0; i < count; i++)
        {
            SendWithRetry(frames.Make(i, 60));
        }
        Sender.Flush();
        PortStats after = Sender.Stats;
        if (KicksTheKernel)
        {
            // A second kick only if the kernel pushed back on the first (counted as deferred).
            Assert.InRange(after.TxKicks - before.TxKicks, 1, 1 + after.TxKickDeferred - before.TxKickDeferred);
        }
        else
        {
            Assert.Equal(0, after.TxKicks);
        }
        Assert.Equal(0, after.TxKickErrors);
        using var batch = new FrameBatch(64);
        Assert.Equal(count, ReceiveOurs(frames, count, batch).Count);
    }

    [Fact]
    public void Receive_fills_only_free_slots_and_resumes_next_call()
    {
        var frames = NewFrames();
        const int count = 10;
        for (int i = 0; i < count; i++)
        {
            Assert.True(Sender.TrySend(frames.Make(i, 100)));
        }
        Sender.Flush();
        Carry();

        using var batch = new FrameBatch(4);
        byte[] filler = new byte[60];
        // Wait until frames are readable, then a full batch must take nothing.
        for (int i = 0; i < 4; i++)
        {
            batch.TryAdd(filler);
        }
        PortPoller.Wait(Sender, Receiver, 1000);
        Assert.Equal(0, Receiver.Receive(batch));
        Assert.Equal(4, batch.Count);
        batch.Clear();

        int calls = 0;
        var got = new List<byte[]>();
        var clock = Stopwatch.StartNew();
        while (got.Count < count && clock.Elapsed < Deadline)
        {
            batch.Clear();
            batch.TryAdd(filler); // one slot taken: at most 3 free
            int n = Receiver.Receive(batch);
            Assert.InRange(n, 0, 3);
            Assert.Equal(1 + n, batch.Count);
            calls++;
            for (int i = 1; i < batch.Count; i++)
            {
                if (frames.SequenceOf(batch.Frame(i)) >= 0)
                {
                    got.Add(batch.Frame(i).ToArray());
                }
            }
            if (n == 0)
            {
                PortPoller.Wait(Sender, Receiver, 20);
            }
        }

        Assert.Equal(count, got.Count);
        for (int i = 0; i < count; i++)
        {
            Assert.Equal(i, frames.SequenceOf(got[i]));
        }
        Assert.True(calls >= 4, $"10 frames through 3 free slots need at least 4 calls, took {calls}");
    }

    [Fact]
    public void Full_tx_ring_refuses_and_counts_then_drains()
    {
        var frames = NewFrames();
        int capacity = SenderTxCapacity;
        long droppedBefore = Sender.Stats.TxDropped;
        int accepted = 0;
        for (int i = 0; i < capacity + 3; i++)
        {
            if (Sender.TrySend(frames.Make(i, 80)))
            {
                accepted++;
            }
        }
        Assert.Equal(capacity, accepted);
        Assert.Equal(3, Sender.Stats.TxDropped - droppedBefore);

        Sender.Flush();
        using var batch = new FrameBatch(64);
        var got = ReceiveOurs(frames, capacity, batch);
        Assert.Equal(capacity, got.Count);
        for (int i = 0; i < capacity; i++)
        {
            Assert.Equal(i, frames.SequenceOf(got[i]));
        }

        // Once sent (and, for a ring, released by the kernel), slots are free again.
        bool sentAgain = false;
        var clock = Stopwatch.StartNew();
        while (!sentAgain && clock.Elapsed < Deadline)
        {
            sentAgain = Sender.TrySend(frames.Make(capacity, 80));
            if (!sentAgain)
            {
                Thread.Sleep(5);
            }
        }
        Assert.True(sentAgain, "the transmit ring never freed a slot after a flush");
    }

    [Fact]
    public void Frames_too_long_for_a_slot_are_refused_by_TrySend()
    {
        var frames = NewFrames();
        long before = Sender.Stats.TxDropped;
        Assert.False(Sender.TrySend(frames.Make(0, FrameBatch.SlotSize + 1)));
        Assert.Equal(before + 1, Sender.Stats.TxDropped);
    }

    [Fact]
    public void Dispose_is_idempotent_and_later_use_throws()
    {
        Sender.Dispose();
        Sender.Dispose();
        using var batch = new FrameBatch(4);
        Assert.Throws<ObjectDisposedException>(() => Sender.Receive(batch));
        Assert.Throws<ObjectDisposedException>(() => Sender.TrySend(new byte[60]));
        Sender.Flush(); // a flush after dispose does nothing rather than touching freed memory
    }
}

public sealed class MemoryPortContractTests : PortContractTests
{
    private readonly MemoryPort _a = new("mem-a", MacAddress.Parse("02:00:00:00:00:0a"), txCapacity: 32);
    private readonly MemoryPort _b = new("mem-b", MacAddress.Parse("02:00:00:00:00:0b"));

    protected override IPacketPort Sender => _a;
    protected override IPacketPort Receiver => _b;
    protected override int SenderTxCapacity => _a.TxCapacity;

    protected override bool KicksTheKernel => false;

    protected override void Carry()
    {
        while (_a.TryTakeTransmitted(out byte[] f))
        {
            _b.Inject(f);
        }
    }

    public override void Dispose()
    {
        _a.Dispose();
        _b.Dispose();
    }
}

public sealed class AfPacketPortContractTests : PortContractTests
{
    private readonly VethNamespace _ns;
    private readonly AfPacketPort _a;
    private readonly AfPacketPort _b;

    public AfPacketPortContractTests()
    {
        _ns = new VethNamespace();
        try
        {
            // A small TX ring so the "ring full" case is quick; the rest are defaults.
            var small = AfPacketOptions.Default with { TxFrameCount = 16 };
            _a = NetNamespace.RunIn(_ns.Name, () => AfPacketPort.Open(VethNamespace.A, small));
            _b = NetNamespace.RunIn(_ns.Name, () => AfPacketPort.Open(VethNamespace.B, AfPacketOptions.Default));
        }
        catch
        {
            _a?.Dispose();
            _ns.Dispose();
            throw;
        }
    }

    protected override IPacketPort Sender => _a;
    protected override IPacketPort Receiver => _b;
    protected override int SenderTxCapacity => _a.TxRingFrames;

    [Fact]
    public void Port_reports_the_interface_mac_and_a_descriptor()
    {
        string link = _ns.Exec("ip", "-o", "link", "show", VethNamespace.A);
        Assert.Contains($"link/ether {_a.Mac} ", link, StringComparison.Ordinal);
        Assert.True(_a.PollDescriptor >= 0);
        Assert.True(_a.IfIndex > 0);
        Assert.InRange(_a.TxRingFrames, 16, 64);
    }

    /// <summary>
    /// A kick on an interface that is down fails (ENETDOWN): the port counts a kick error (what
    /// natd_port_tx_kick_errors_total shows) and keeps the frames queued, and the flushes after the
    /// interface is up again send them (the first may still fail while the link comes up).
    /// </summary>
    [Fact]
    public void A_failed_kick_is_counted_and_its_frames_go_once_the_interface_is_up()
    {
        var frames = new TestFrames(_a.Mac, _b.Mac);
        _ns.Exec("ip", "link", "set", VethNamespace.A, "down");
        for (int i = 0; i < 3; i++)
        {
            Assert.True(_a.TrySend(frames.Make(i, 64)));
        }
        _a.Flush();
        PortStats down = _a.Stats;
        Assert.Equal(1, down.TxKicks);
        Assert.Equal(1, down.TxKickErrors);
        Assert.Equal(Tmds.Linux.LibC.ENETDOWN, _a.LastKickErrno);
        Assert.Equal((1L, Tmds.Linux.LibC.ENETDOWN), ((IPacketPort)_a).TxKickFailures); // what the sweeper's watch logs

        _ns.Exec("ip", "link", "set", VethNamespace.A, "up");
        using var batch = new FrameBatch(64);
        Assert.Equal(3, ReceiveAtB(frames, 3, batch, _a.Flush)); // flushing as the poller does each batch: no kick once nothing is queued
        PortStats up = _a.Stats;
        Assert.True(up.TxKickErrors >= 1, $"{up.TxKickErrors} kick errors");
        Assert.Equal(up.TxKickErrors + up.TxKickDeferred + 1, up.TxKicks); // the refused kicks, then the one that sent
    }

    /// <summary>
    /// Receives at B until <paramref name="expected"/> of our frames arrived or 5 s passed, running
    /// <paramref name="beforeEach"/> before each receive; returns how many arrived.
    /// </summary>
    private int ReceiveAtB(TestFrames frames, int expected, FrameBatch batch, Action? beforeEach = null)
    {
        int atB = 0;
        var clock = Stopwatch.StartNew();
        while (atB < expected && clock.Elapsed < TimeSpan.FromSeconds(5))
        {
            beforeEach?.Invoke();
            batch.Clear();
            _b.Receive(batch);
            for (int i = 0; i < batch.Count; i++)
            {
                atB += frames.SequenceOf(batch.Frame(i)) >= 0 ? 1 : 0;
            }
            PortPoller.Wait(_a, _b, 20);
        }
        return atB;
    }

    [Fact]
    public void Own_transmissions_are_not_received_back()
    {
        var frames = new TestFrames(_a.Mac, _b.Mac);
        for (int i = 0; i < 5; i++)
        {
            Assert.True(_a.TrySend(frames.Make(i, 64)));
        }
        _a.Flush();
        using var batch = new FrameBatch(64);
        // B gets them; A must not see its own frames (PACKET_IGNORE_OUTGOING or the pkttype check).
        Assert.Equal(5, ReceiveAtB(frames, 5, batch));
        Thread.Sleep(20); // longer than the 1 ms block timeout: anything looped back is visible now
        batch.Clear();
        _a.Receive(batch);
        for (int i = 0; i < batch.Count; i++)
        {
            Assert.Equal(-1, frames.SequenceOf(batch.Frame(i)));
        }
    }

    [Fact]
    public void Receive_TrySend_and_Flush_allocate_nothing()
    {
        var frames = new TestFrames(_a.Mac, _b.Mac);
        byte[] frame = frames.Make(1, 200);
        using var batch = new FrameBatch(64);
        // Warm up (JIT, first-use paths), then measure a steady round.
        for (int round = 0; round < 2; round++)
        {
            long before = GC.GetAllocatedBytesForCurrentThread();
            for (int i = 0; i < 8; i++)
            {
                _a.TrySend(frame);
            }
            _a.Flush();
            PortPoller.Wait(_a, _b, 1000);
            batch.Clear();
            _b.Receive(batch);
            long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
            if (round == 1)
            {
                Assert.Equal(0, allocated);
                Assert.True(batch.Count > 0, "nothing was received, so nothing was measured");
            }
            Thread.Sleep(5);
        }
    }

    public override void Dispose()
    {
        _a.Dispose();
        _b.Dispose();
        _ns.Dispose();
    }
}

/// <summary>
/// The contract over a veth pair in a private namespace with a port on each end, each port
/// AF_XDP or AF_PACKET: both AF_XDP (native and generic XDP), and mixed, so an AF_XDP port is
/// shown to talk to a plain kernel path in both directions.
/// </summary>
public abstract class VethPortContractTests : PortContractTests
{
    private readonly VethNamespace _ns;
    private readonly IPacketPort _a;
    private readonly IPacketPort _b;

    protected VethPortContractTests(Func<string, IPacketPort> openSender, Func<string, IPacketPort> openReceiver)
    {
        _ns = new VethNamespace();
        try
        {
            _a = NetNamespace.RunIn(_ns.Name, () => openSender(VethNamespace.A));
            _b = NetNamespace.RunIn(_ns.Name, () => openReceiver(VethNamespace.B));
        }
        catch
        {
            _a?.Dispose();
            _ns.Dispose();
            throw;
        }
    }

    /// <summary>Small UMEM and rings for the sender, so the "ring full" case is quick.</summary>
    internal static AfXdpOptions SmallXdp(XdpAttachMode mode) => AfXdpOptions.Default with { FrameCount = 64, RingSize = 32, Mode = mode };

    internal static AfXdpOptions DefaultXdp(XdpAttachMode mode) => AfXdpOptions.Default with { Mode = mode };

    internal VethNamespace Namespace => _ns;

    protected override IPacketPort Sender => _a;
    protected override IPacketPort Receiver => _b;
    protected override int SenderTxCapacity => _a switch
    {
        AfXdpPort x => x.TxCapacity,
        AfPacketPort p => p.TxRingFrames,
        _ => throw new InvalidOperationException(),
    };

    public override void Dispose()
    {
        _a.Dispose();
        _b.Dispose();
        _ns.Dispose();
    }
}

public sealed class AfXdpPortContractTests() : VethPortContractTests(
    n => AfXdpPort.Open(n, SmallXdp(XdpAttachMode.Auto)),
    n => AfXdpPort.Open(n, DefaultXdp(XdpAttachMode.Auto)));

public sealed class AfXdpGenericPortContractTests() : VethPortContractTests(
    n => AfXdpPort.Open(n, SmallXdp(XdpAttachMode.Generic)),
    n => AfXdpPort.Open(n, DefaultXdp(XdpAttachMode.Generic)));

public sealed class AfXdpToAfPacketPortContractTests() : VethPortContractTests(
    n => AfXdpPort.Open(n, SmallXdp(XdpAttachMode.Auto)),
    n => AfPacketPort.Open(n, AfPacketOptions.Default));

public sealed class AfPacketToAfXdpPortContractTests() : VethPortContractTests(
    n => AfPacketPort.Open(n, AfPacketOptions.Default with { TxFrameCount = 16 }),
    n => AfXdpPort.Open(n, DefaultXdp(XdpAttachMode.Auto)));
