namespace Natd.Fuzzing.Targets;

/// <summary>One fuzz target: runs an input, throws <see cref="FuzzInvariantException"/> (or lets a bug's exception escape) when it finds a bug.</summary>
public delegate void FuzzTarget(ReadOnlySpan<byte> input);

/// <summary>The targets by name, as the fuzz program's first argument and the corpus directories name them.</summary>
public static class FuzzTargets
{
    /// <summary>Target names.</summary>
    public static readonly string[] Names = ["packet", "config", "pcap", "alg", "cgn"];

    /// <summary>The target called <paramref name="name"/>, or null.</summary>
    public static FuzzTarget? Get(string name) => name switch
    {
        "packet" => PacketTarget.Run,
        "config" => ConfigTarget.Run,
        "pcap" => PcapTarget.Run,
        "alg" => AlgTarget.Run,
        "cgn" => CgnTarget.Run,
        _ => null,
    };
}
