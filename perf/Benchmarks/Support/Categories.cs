namespace Natd.Benchmarks.Support;

/// <summary>Benchmark categories; <see cref="FastPath"/> benchmarks must allocate nothing (see <see cref="AllocationGate"/>).</summary>
public static class Categories
{
    /// <summary>Per-packet work: a run fails if any of these allocates.</summary>
    public const string FastPath = "fast-path";

    /// <summary>Session creation (reported, not gated).</summary>
    public const string SlowPath = "slow-path";

    /// <summary>Session expiry (reported, not gated).</summary>
    public const string Expiry = "expiry";
}

/// <summary>What one benchmark operation stands for, for the compact table (e.g. "packet", "session").</summary>
[AttributeUsage(AttributeTargets.Class)]
public sealed class OperationUnitAttribute(string unit) : Attribute
{
    /// <summary>The unit, singular.</summary>
    public string Unit { get; } = unit;
}
