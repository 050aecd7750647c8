using Natd.Dataplane.Io;
using Natd.Dataplane.Nat;
using Natd.Dataplane.Packets;

namespace Natd.Tests.Support;

/// <summary>A NatEngine with the lab's addresses, known neighbours and a sink that records self-made frames.</summary>
public sealed class EngineHarness : IFrameSink
{
    public const string InsideHost = "10.0.0.2";
    public const string OutsideHost = "198.51.100.2";
    public const string External = "198.51.100.1";
    public static readonly byte[] RouterMac = [0x02, 0, 0, 0, 0, 0xfe];

    public NatEngine Engine { get; }
    public List<(Side Side, byte[] Frame)> Sunk { get; } = [];
    public long Now { get; set; } = 1_000_000;

    /// <summary>
    /// Finish frames the engine hands to an ALG helper at once, with no helper action (as a poller
    /// does for an ALG that is not running): tests of everything but ALGs see plain forwarding.
    /// </summary>
    public bool CompleteAlgFrames { get; init; } = true;

    /// <param name="tweak">Changes to <see cref="LabSettings"/>.</param>
    /// <param name="learnNeighbours">Configure the lab's hosts as static neighbours.</param>
    /// <param name="seed">The engine's seed.</param>
    /// <param name="options">Engine options (shard, shards, pairings); <paramref name="seed"/> replaces their seed.</param>
    public EngineHarness(Func<NatSettings, NatSettings>? tweak = null, bool learnNeighbours = true, ulong seed = 42, EngineOptions? options = null)
    {
        var s = LabSettings();
        if (tweak != null)
        {
            s = tweak(s);
        }
        if (learnNeighbours)
        {
            // Static (configured) neighbours: learned ones age out after 60 s unused, and these
            // tests move the clock by minutes with nobody on the wire to answer ARP.
            s = s with
            {
                Inside = s.Inside with
                {
                    Neighbours =
                    [
                        .. s.Inside.Neighbours,
                        new(Ipv4.Parse(InsideHost), MacAddress.Read(Frames.InsideHostMac)),
                        new(Ipv4.Parse("10.0.0.3"), MacAddress.Read(Frames.InsideHostMac)),
                    ],
                },
                Outside = s.Outside with
                {
                    Neighbours =
                    [
                        .. s.Outside.Neighbours,
                        new(Ipv4.Parse(OutsideHost), MacAddress.Read(Frames.OutsideHostMac)),
                        new(Ipv4.Parse("198.51.100.3"), MacAddress.Read(Frames.OutsideHostMac)),
                        new(Ipv4.Parse("198.51.100.254"), MacAddress.Read(RouterMac)),
                    ],
                },
            };
        }
        Engine = new NatEngine(s, new MacAddress(0x02_00_00_00_00_01), new MacAddress(0x02_00_00_00_00_02), (options ?? new EngineOptions()) with { Seed = seed });
        Engine.AttachSink(this);
    }

    public static NatSettings LabSettings() => new()
    {
        Inside = new InterfaceSettings("natin", Ipv4Prefix.Parse("10.0.0.1/24"), [Ipv4Prefix.Parse("10.0.0.0/24")], 0, null, []),
        Outside = new InterfaceSettings("natout", Ipv4Prefix.Parse("198.51.100.1/24"), [], Ipv4.Parse("198.51.100.254"), null, []),
        Pool = [Ipv4.Parse(External)],
        MaxSessions = 4096,
    };

    public bool Send(Side side, ReadOnlySpan<byte> frame)
    {
        Sunk.Add((side, frame.ToArray()));
        return true;
    }

    /// <summary>Reason of the last drop a frame run through this harness recorded (counted), as a poller reads it from the packet's context.</summary>
    public DropReason LastDrop { get; private set; }

    /// <summary>The ALG hand-off of the last frame whose verdict was <see cref="Verdict.ToHelper"/>.</summary>
    public AlgPending PendingAlg { get; private set; }

    /// <summary>The label the next frames are processed with (<see cref="PacketContext.HoldTag"/>).</summary>
    public long HoldTag { get; set; }

    /// <summary>Runs <see cref="NatEngine.Process(Span{byte}, ref int, Side, FrameFlags, ref PacketContext)"/> with a fresh context and keeps what it tells.</summary>
    public Verdict Process(Span<byte> slot, ref int length, Side ingress, FrameFlags flags, long nowMs)
    {
        var ctx = new PacketContext(Engine.Counters, nowMs, HoldTag);
        long before = TotalDrops();
        Verdict v = Engine.Process(slot, ref length, ingress, flags, ref ctx);
        Keep(v, ref ctx, before);
        return v;
    }

    /// <summary>Runs <see cref="NatEngine.CompleteAlg"/> with a fresh context and keeps what it tells.</summary>
    public Verdict CompleteAlg(Span<byte> slot, int length, in AlgPending pending, Natd.Dataplane.Alg.AlgActions actions, long nowMs)
    {
        var ctx = new PacketContext(Engine.Counters, nowMs, HoldTag);
        long before = TotalDrops();
        Verdict v = Engine.CompleteAlg(slot, length, pending, actions, ref ctx);
        Keep(v, ref ctx, before);
        return v;
    }

    private void Keep(Verdict v, ref PacketContext ctx, long dropsBefore)
    {
        // A drop is recorded when one was counted: also for a frame answered with an ICMP error
        // (rejected, TTL expired), whose verdict sends the error.
        if (v == Verdict.Drop || TotalDrops() > dropsBefore)
        {
            LastDrop = ctx.DropReason;
        }
        if (v == Verdict.ToHelper)
        {
            PendingAlg = ctx.Alg;
        }
    }

    private long TotalDrops()
    {
        long n = 0;
        foreach (long d in Engine.Counters.Drops)
        {
            n += d;
        }
        return n;
    }

    /// <summary>Runs one frame; returns the verdict and the frame as it would be transmitted.</summary>
    public Verdict Run(byte[] frame, Side ingress, out byte[] output, FrameFlags flags = FrameFlags.None)
    {
        var slot = new byte[FrameBatch.SlotSize];
        frame.CopyTo(slot, 0);
        int len = frame.Length;
        var v = Process(slot, ref len, ingress, flags, Now);
        if (v == Verdict.ToHelper && CompleteAlgFrames)
        {
            v = CompleteAlg(slot, len, PendingAlg, new Natd.Dataplane.Alg.AlgActions(), Now);
        }
        output = slot.AsSpan(0, len).ToArray();
        return v;
    }

    public byte[] Out(byte[] frame, Side ingress = Side.Inside, FrameFlags flags = FrameFlags.None)
    {
        var v = Run(frame, ingress, out var o, flags);
        Assert.True(v == (ingress == Side.Inside ? Verdict.ToOutside : Verdict.ToInside),
            $"expected forward, got {v} ({LastDrop})");
        return o;
    }

    public long Drops(DropReason r) => Engine.Counters.Drops[(int)r];

    /// <summary>Frames from outside carry the outside host's MAC and are sent to the gateway's outside MAC.</summary>
    public static byte[] FromOutside(byte[] f) => Frames.WithMacs(f, Frames.OutsideHostMac, Frames.GatewayOutsideMac);
}
