namespace Natd.Dataplane.Io;

/// <summary>
/// A capture file is structurally corrupt (bad magic, impossible block or record length, a packet
/// for an interface that was never described, ...). The message names the byte offset and the problem.
/// </summary>
public sealed class PcapFormatException : Exception
{
    /// <summary>Creates the exception for a problem found at <paramref name="offset"/> bytes into the file.</summary>
    public PcapFormatException(long offset, string problem)
        : base($"capture corrupt at byte offset {offset}: {problem}")
    {
        Offset = offset;
    }

    /// <summary>Byte offset (from the start of the file) of the block or record at fault.</summary>
    public long Offset { get; }
}
