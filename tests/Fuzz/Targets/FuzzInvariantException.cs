namespace Natd.Fuzzing.Targets;

/// <summary>
/// An invariant of a fuzz target does not hold for the input. Thrown (never caught by the target)
/// so afl records the input as a crash and a replay test fails with the message.
/// </summary>
public sealed class FuzzInvariantException(string message) : Exception(message);
