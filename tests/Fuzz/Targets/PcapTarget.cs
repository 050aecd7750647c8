using Natd.Dataplane.Io;

namespace Natd.Fuzzing.Targets;

/// <summary>
/// Fuzz target "pcap": the input as a capture file through <see cref="PcapReader"/> (pcap or
/// pcapng). Invariants (violations throw <see cref="FuzzInvariantException"/>): only
/// <see cref="PcapFormatException"/> escapes; reading terminates (no more records than the
/// input has bytes, each within <see cref="PcapReader.MaxCaptureLength"/>); the reader's
/// position never passes the end of the input and never goes back.
/// </summary>
public static class PcapTarget
{
    /// <summary>Runs one input; throws <see cref="FuzzInvariantException"/> when an invariant fails.</summary>
    public static void Run(ReadOnlySpan<byte> input)
    {
        using var stream = new MemoryStream(input.ToArray(), writable: false);
        PcapReader reader;
        try
        {
            reader = new PcapReader(stream, leaveOpen: true);
        }
        catch (PcapFormatException)
        {
            return;
        }
        using (reader)
        {
            long records = 0, position = reader.Position;
            try
            {
                while (reader.TryRead(out PcapRecord rec))
                {
                    records++;
                    // Every record or block takes at least 16 bytes of the file; this bound is loose on purpose.
                    if (records > input.Length)
                    {
                        throw new FuzzInvariantException($"pcap: {records} records from {input.Length} bytes: reading does not terminate");
                    }
                    if (rec.Data.Length > PcapReader.MaxCaptureLength || rec.Data.Length < 0)
                    {
                        throw new FuzzInvariantException($"pcap: record {records} has {rec.Data.Length} bytes, over the {PcapReader.MaxCaptureLength} limit");
                    }
                    if (reader.Position < position || reader.Position > input.Length)
                    {
                        throw new FuzzInvariantException($"pcap: position {reader.Position} after record {records} (was {position}, file {input.Length} bytes)");
                    }
                    position = reader.Position;
                }
            }
            catch (PcapFormatException)
            {
                return;
            }
            if (reader.TryRead(out _))
            {
                throw new FuzzInvariantException("pcap: a record after the end");
            }
        }
    }
}
