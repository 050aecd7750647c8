using Natd.Dataplane.Alg;
using Natd.Dataplane.Nat;
using Natd.Dataplane.Packets;

namespace Natd.Fuzzing.Targets;

/// <summary>
/// Fuzz target "packet": a sequence of Ethernet frames through a fresh <see cref="NatEngine"/>
/// (lab addresses, every ALG on, no accept rules), run by <see cref="FrameRunner"/>, which gives
/// the input's record format and the invariants checked.
/// </summary>
public static class PacketTarget
{
    /// <summary>Frames read from one input at most (afl inputs stay small; this bounds a run).</summary>
    public const int MaxFrames = FrameRunner.MaxFrames;

    /// <summary>natd's inside address in the target's configuration.</summary>
    public const string InsideAddress = "10.0.0.1";

    /// <summary>natd's outside address.</summary>
    public const string OutsideAddress = "198.51.100.1";

    /// <summary>The external address pool (the outside address and one more).</summary>
    public static readonly string[] Pool = ["198.51.100.1", "198.51.100.7"];

    /// <summary>
    /// The configuration the target runs: the lab's addresses, every ALG on (IRC too), no rules (so
    /// no accept), and MTUs small enough (1200 inside, 576 outside) that fuzzed frames take the egress
    /// MTU's paths: fragmentation, fragmentation-needed, and MSS clamping (auto).
    /// </summary>
    public static NatSettings Settings() => new()
    {
        Inside = new InterfaceSettings("natin", Ipv4Prefix.Parse(InsideAddress + "/24"), [Ipv4Prefix.Parse("10.0.0.0/24")], 0, null, []) { Mtu = 1200 },
        Outside = new InterfaceSettings("natout", Ipv4Prefix.Parse(OutsideAddress + "/24"), [], Ipv4.Parse("198.51.100.254"), null, []) { Mtu = 576 },
        MssClamp = NatSettings.MssClampAuto,
        Pool = [.. Pool.Select(Ipv4.Parse)],
        MaxSessions = 512,
        Algs = new AlgSettings { Irc = new AlgPorts(true, [6667]) },
    };

    /// <summary>Runs one input; throws <see cref="FuzzInvariantException"/> when an invariant fails.</summary>
    public static void Run(ReadOnlySpan<byte> input) => new FrameRunner(Settings(), "packet").Run(input);
}
