using System.Runtime.InteropServices;
using Natd.Dataplane.Io;
using Natd.Dataplane.Nat;
using Natd.Dataplane.Rings;

namespace Natd.Dataplane.Workers;

/// <summary>A frame handed from the poller that received it to the shard that owns it (copied: the receiver's batch is reused).</summary>
[StructLayout(LayoutKind.Sequential)]
public unsafe struct HandoffFrame
{
    /// <summary>Frame length in bytes.</summary>
    public int Length;
    /// <summary>Side the frame arrived on (a hairpinned frame: <see cref="Side.Outside"/>).</summary>
    public Side Side;
    /// <summary>1 when the owner should only learn neighbours from this ARP frame (the receiver answered it).</summary>
    public byte LearnOnly;
    /// <summary>Receive flags (an unfinished checksum must still be completed by the owner; <see cref="FrameFlags.Hairpinned"/>: finish it with <see cref="NatEngine.ProcessHairpinned"/>).</summary>
    public FrameFlags Flags;
    /// <summary>The frame.</summary>
    public fixed byte Data[FrameBatch.SlotSize];
}

/// <summary>
/// How the shards of one dataplane reach each other: a lock-free SPSC ring for every ordered pair
/// of pollers (VPP's handoff queues), a wakeup per poller, and the <see cref="ShardMap"/> that names owners.
/// Built once for N pollers; each poller uses row <c>Outgoing[me]</c> and column <c>Incoming[me]</c>.
/// </summary>
public sealed class ShardLinks : IDisposable
{
    /// <summary>Frames each handoff ring holds (2 KiB each).</summary>
    public const int RingFrames = 1024;

    private readonly SpscRing<HandoffFrame>?[,] _rings;
    private readonly Wakeup[] _wakeups;
    private ShardMap _map;

    /// <summary>Creates links for <paramref name="shards"/> pollers.</summary>
    public ShardLinks(int shards, ShardMap map)
    {
        Shards = shards;
        _map = map;
        _rings = new SpscRing<HandoffFrame>?[shards, shards];
        _wakeups = new Wakeup[shards];
        for (int i = 0; i < shards; i++)
        {
            _wakeups[i] = new Wakeup();
            for (int j = 0; j < shards; j++)
            {
                if (i != j)
                {
                    _rings[i, j] = new SpscRing<HandoffFrame>(RingFrames);
                }
            }
        }
    }

    /// <summary>Pollers.</summary>
    public int Shards { get; }

    /// <summary>The current shard map (replaced on reload with the same seed; readers take one reference per batch).</summary>
    public ShardMap Map
    {
        get => Volatile.Read(ref _map);
        set => Volatile.Write(ref _map, value);
    }

    /// <summary>The ring from poller <paramref name="from"/> to poller <paramref name="to"/>.</summary>
    public SpscRing<HandoffFrame> Ring(int from, int to) => _rings[from, to]!;

    /// <summary>Poller <paramref name="shard"/>'s wakeup.</summary>
    public Wakeup WakeupOf(int shard) => _wakeups[shard];

    /// <inheritdoc />
    public void Dispose()
    {
        foreach (var w in _wakeups)
        {
            w.Dispose();
        }
    }
}
