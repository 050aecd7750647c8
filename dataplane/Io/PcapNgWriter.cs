using System.Buffers.Binary;
using System.Text;

namespace Natd.Dataplane.Io;

/// <summary>
/// Writes a pcapng capture (draft-ietf-opsawg-pcapng), little-endian: one Section Header Block,
/// one Interface Description Block per interface name (LINKTYPE_ETHERNET, snap length 65535,
/// if_name, if_tsresol = 9 so timestamps keep full nanoseconds), then an Enhanced Packet Block per
/// frame with an optional comment. Readable by tcpdump, Wireshark and <see cref="PcapReader"/>.
/// </summary>
public sealed class PcapNgWriter : IDisposable
{
    /// <summary>Snap length declared for every interface; longer frames are cut to it (their original length is kept).</summary>
    public const int SnapLength = 65535;

    private const int LinkTypeEthernet = 1;

    private readonly Stream _stream;
    private readonly bool _leaveOpen;
    private readonly int _interfaceCount;
    private byte[] _scratch = new byte[4096];
    private bool _disposed;

    /// <summary>Creates (or overwrites) the file at <paramref name="path"/> and writes the section and interface headers.</summary>
    /// <exception cref="ArgumentException">No interface names, or a name longer than 65535 bytes.</exception>
    /// <exception cref="IOException">The file cannot be written.</exception>
    public PcapNgWriter(string path, IReadOnlyList<string> interfaceNames)
        : this(new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.Read, 64 * 1024), interfaceNames, leaveOpen: false)
    {
    }

    /// <summary>Writes the section and interface headers to <paramref name="stream"/>; frames follow with <see cref="Write"/>.</summary>
    /// <param name="stream">Where the capture goes.</param>
    /// <param name="interfaceNames">One name per interface; interface id i is interfaceNames[i].</param>
    /// <param name="leaveOpen">When false, Dispose also disposes the stream.</param>
    /// <exception cref="ArgumentException">No interface names, or a name longer than 65535 bytes.</exception>
    public PcapNgWriter(Stream stream, IReadOnlyList<string> interfaceNames, bool leaveOpen = false)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentNullException.ThrowIfNull(interfaceNames);
        if (interfaceNames.Count == 0)
        {
            throw new ArgumentException("a capture needs at least one interface", nameof(interfaceNames));
        }
        _stream = stream;
        _leaveOpen = leaveOpen;
        _interfaceCount = interfaceNames.Count;
        WriteSectionHeader();
        for (int i = 0; i < interfaceNames.Count; i++)
        {
            WriteInterface(interfaceNames[i] ?? throw new ArgumentException($"interface name {i} is null", nameof(interfaceNames)));
        }
    }

    /// <summary>Number of interfaces described (valid ids are 0..InterfaceCount-1).</summary>
    public int InterfaceCount => _interfaceCount;

    /// <summary>Appends one frame as an Enhanced Packet Block.</summary>
    /// <param name="interfaceId">Index into the interface names given to the constructor.</param>
    /// <param name="frame">The Ethernet frame; bytes past <see cref="SnapLength"/> are not stored.</param>
    /// <param name="timestampNs">Capture time in nanoseconds since the Unix epoch (not negative).</param>
    /// <param name="comment">Optional opt_comment text (UTF-8, at most 65535 bytes).</param>
    /// <exception cref="ArgumentOutOfRangeException">Unknown interface id or negative timestamp.</exception>
    /// <exception cref="ArgumentException">The comment is longer than 65535 bytes.</exception>
    /// <exception cref="ObjectDisposedException">The writer was disposed.</exception>
    public void Write(int interfaceId, ReadOnlySpan<byte> frame, long timestampNs, string? comment = null)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentOutOfRangeException.ThrowIfNegative(interfaceId);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(interfaceId, _interfaceCount);
        ArgumentOutOfRangeException.ThrowIfNegative(timestampNs);
        int captured = Math.Min(frame.Length, SnapLength);
        int commentBytes = comment is null ? 0 : Encoding.UTF8.GetByteCount(comment);
        if (commentBytes > ushort.MaxValue)
        {
            throw new ArgumentException($"comment of {commentBytes} bytes exceeds the 65535-byte option limit", nameof(comment));
        }
        int options = comment is null ? 0 : 4 + Pad(commentBytes) + 4;
        int length = 12 + 20 + Pad(captured) + options;
        Span<byte> b = Begin(length);
        WriteBlockStart(b, 6, length);
        BinaryPrimitives.WriteUInt32LittleEndian(b[8..], (uint)interfaceId);
        ulong units = (ulong)timestampNs; // if_tsresol 9: one unit per nanosecond
        BinaryPrimitives.WriteUInt32LittleEndian(b[12..], (uint)(units >> 32));
        BinaryPrimitives.WriteUInt32LittleEndian(b[16..], (uint)units);
        BinaryPrimitives.WriteUInt32LittleEndian(b[20..], (uint)captured);
        BinaryPrimitives.WriteUInt32LittleEndian(b[24..], (uint)frame.Length);
        frame[..captured].CopyTo(b[28..]);
        b.Slice(28 + captured, Pad(captured) - captured).Clear(); // the scratch buffer holds older bytes
        int offset = 28 + Pad(captured);
        if (comment is not null)
        {
            offset = WriteOption(b, offset, 1, comment, commentBytes);
            offset = WriteEndOfOptions(b, offset);
        }
        Finish(b, offset, length);
    }

    /// <summary>Flushes buffered blocks to the stream (and the stream to its device).</summary>
    /// <exception cref="ObjectDisposedException">The writer was disposed.</exception>
    public void Flush()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        _stream.Flush();
    }

    /// <summary>Flushes, then disposes the stream unless the writer was told to leave it open. Idempotent.</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }
        _disposed = true;
        _stream.Flush();
        if (!_leaveOpen)
        {
            _stream.Dispose();
        }
    }

    private void WriteSectionHeader()
    {
        const string application = "natd";
        int appBytes = Encoding.UTF8.GetByteCount(application);
        int length = 12 + 16 + 4 + Pad(appBytes) + 4;
        Span<byte> b = Begin(length);
        WriteBlockStart(b, 0x0A0D0D0A, length);
        BinaryPrimitives.WriteUInt32LittleEndian(b[8..], 0x1A2B3C4D);
        BinaryPrimitives.WriteUInt16LittleEndian(b[12..], 1); // version 1.0
        BinaryPrimitives.WriteUInt16LittleEndian(b[14..], 0);
        BinaryPrimitives.WriteInt64LittleEndian(b[16..], -1); // section length not known up front
        int offset = WriteOption(b, 24, 4, application, appBytes); // shb_userappl
        offset = WriteEndOfOptions(b, offset);
        Finish(b, offset, length);
    }

    private void WriteInterface(string name)
    {
        int nameBytes = Encoding.UTF8.GetByteCount(name);
        if (nameBytes > ushort.MaxValue)
        {
            throw new ArgumentException($"interface name of {nameBytes} bytes exceeds the 65535-byte option limit", nameof(name));
        }
        int length = 12 + 8 + (4 + Pad(nameBytes)) + (4 + 4) + 4;
        Span<byte> b = Begin(length);
        WriteBlockStart(b, 1, length);
        BinaryPrimitives.WriteUInt16LittleEndian(b[8..], LinkTypeEthernet);
        BinaryPrimitives.WriteUInt16LittleEndian(b[10..], 0);
        BinaryPrimitives.WriteUInt32LittleEndian(b[12..], SnapLength);
        int offset = WriteOption(b, 16, 2, name, nameBytes); // if_name
        BinaryPrimitives.WriteUInt16LittleEndian(b[offset..], 9); // if_tsresol
        BinaryPrimitives.WriteUInt16LittleEndian(b[(offset + 2)..], 1);
        b[offset + 4] = 9; // 10^-9 s
        b.Slice(offset + 5, 3).Clear();
        offset = WriteEndOfOptions(b, offset + 8);
        Finish(b, offset, length);
    }

    private Span<byte> Begin(int length)
    {
        if (_scratch.Length < length)
        {
            _scratch = new byte[Math.Max(length, _scratch.Length * 2)];
        }
        return _scratch.AsSpan(0, length);
    }

    private static void WriteBlockStart(Span<byte> b, uint type, int length)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(b, type);
        BinaryPrimitives.WriteUInt32LittleEndian(b[4..], (uint)length);
    }

    private static int WriteOption(Span<byte> b, int offset, ushort code, string text, int byteCount)
    {
        BinaryPrimitives.WriteUInt16LittleEndian(b[offset..], code);
        BinaryPrimitives.WriteUInt16LittleEndian(b[(offset + 2)..], (ushort)byteCount);
        Encoding.UTF8.GetBytes(text, b[(offset + 4)..]);
        b.Slice(offset + 4 + byteCount, Pad(byteCount) - byteCount).Clear();
        return offset + 4 + Pad(byteCount);
    }

    private static int WriteEndOfOptions(Span<byte> b, int offset)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(b[offset..], 0);
        return offset + 4;
    }

    private void Finish(Span<byte> b, int offset, int length)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(b[offset..], (uint)length);
        if (offset + 4 != length)
        {
            throw new InvalidOperationException($"pcapng block layout error: wrote {offset + 4} of {length} bytes");
        }
        _stream.Write(b);
    }

    private static int Pad(int n) => (n + 3) & ~3;
}
