namespace Natd.Dataplane.Io;

/// <summary>One captured frame read by <see cref="PcapReader"/>.</summary>
/// <param name="Data">
/// The captured bytes (possibly fewer than <paramref name="OriginalLength"/> when the capture
/// had a snap length). The memory belongs to the reader and is reused: it is valid only until
/// the next TryRead; copy it to keep it.
/// </param>
/// <param name="TimestampNs">Capture time in nanoseconds since the Unix epoch (finer resolutions are rounded down).</param>
/// <param name="InterfaceId">Interface index within the pcapng section (0 for classic pcap).</param>
/// <param name="InterfaceName">The interface's if_name option, or null when it has none (always null for classic pcap).</param>
/// <param name="LinkType">LINKTYPE_* of the frame's interface (1 = Ethernet), see tcpdump.org/linktypes.html.</param>
/// <param name="OriginalLength">Length of the frame on the wire, in bytes.</param>
/// <param name="Comment">The record's first opt_comment (pcapng), or null.</param>
public readonly record struct PcapRecord(
    ReadOnlyMemory<byte> Data,
    long TimestampNs,
    int InterfaceId,
    string? InterfaceName,
    int LinkType,
    int OriginalLength,
    string? Comment);
