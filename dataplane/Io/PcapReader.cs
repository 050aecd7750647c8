using System.Buffers.Binary;
using System.Text;

namespace Natd.Dataplane.Io;

/// <summary>
/// Reads capture files: classic pcap (either byte order; microsecond magic 0xa1b2c3d4 and
/// nanosecond magic 0xa1b23c4d) and pcapng (draft-ietf-opsawg-pcapng: several sections of either
/// byte order; Interface Description, Enhanced Packet, Simple Packet and obsolete Packet blocks;
/// other blocks are skipped). Records come back in file order.
/// </summary>
/// <remarks>
/// Corruption throws <see cref="PcapFormatException"/>: bad magic, unsupported version, a block
/// length below 12, not a multiple of 4 or above <see cref="MaxBlockLength"/>, a trailing block
/// length that differs from the leading one, a captured length above
/// <see cref="MaxCaptureLength"/> or past its block, options that run past their block, a packet
/// for an interface not described in its section. A file that simply ends inside a record or
/// block (a capture cut off while being written) is not corrupt: reading stops there and
/// <see cref="Truncated"/> is set. Each TryRead consumes at least 12 bytes or ends, so reading
/// any input terminates.
/// </remarks>
public sealed class PcapReader : IDisposable
{
    /// <summary>Largest captured length accepted for one record, in bytes (256 KiB, libpcap's limit for most link types).</summary>
    public const int MaxCaptureLength = 256 * 1024;

    /// <summary>Largest pcapng block accepted, in bytes (16 MiB); longer lengths are taken as corruption.</summary>
    public const int MaxBlockLength = 16 * 1024 * 1024;

    private const uint ClassicMicro = 0xa1b2c3d4;
    private const uint ClassicNano = 0xa1b23c4d;
    private const uint SectionHeaderType = 0x0A0D0D0A;
    private const uint ByteOrderMagic = 0x1A2B3C4D;
    private const uint InterfaceDescriptionType = 1;
    private const uint PacketType = 2;
    private const uint SimplePacketType = 3;
    private const uint EnhancedPacketType = 6;

    private readonly Stream _stream;
    private readonly bool _leaveOpen;
    private readonly byte[] _header = new byte[24];
    private readonly List<InterfaceInfo> _interfaces = [];
    private byte[] _buffer = new byte[64 * 1024];
    private long _position;
    private bool _bigEndian;
    private bool _ended;
    private bool _disposed;

    // Classic pcap only.
    private bool _nanosecond;
    private int _classicLinkType;

    /// <summary>Opens the capture at <paramref name="path"/> and reads its file header.</summary>
    /// <exception cref="PcapFormatException">The file does not start with a pcap or pcapng magic.</exception>
    /// <exception cref="IOException">The file cannot be read.</exception>
    public PcapReader(string path)
        : this(new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 64 * 1024, FileOptions.SequentialScan), leaveOpen: false)
    {
    }

    /// <summary>Reads a capture from <paramref name="stream"/> (which need not be seekable), starting with its file header.</summary>
    /// <param name="stream">The capture, positioned at its first byte.</param>
    /// <param name="leaveOpen">When false, Dispose also disposes the stream.</param>
    /// <exception cref="PcapFormatException">The stream does not start with a pcap or pcapng magic.</exception>
    public PcapReader(Stream stream, bool leaveOpen = false)
    {
        ArgumentNullException.ThrowIfNull(stream);
        _stream = stream;
        _leaveOpen = leaveOpen;
        try
        {
            ReadFileHeader();
        }
        catch
        {
            if (!leaveOpen)
            {
                stream.Dispose();
            }
            throw;
        }
    }

    /// <summary>True for pcapng, false for classic pcap.</summary>
    public bool IsPcapNg { get; private set; }

    /// <summary>Link type of a classic pcap file (LINKTYPE_*); for pcapng see each record's LinkType.</summary>
    public int FileLinkType => _classicLinkType;

    /// <summary>pcapng sections seen so far (1 for classic pcap).</summary>
    public int SectionCount { get; private set; }

    /// <summary>True once reading stopped because the file ends inside a header, record or block.</summary>
    public bool Truncated { get; private set; }

    /// <summary>Bytes consumed from the start of the file so far.</summary>
    public long Position => _position;

    /// <summary>
    /// Reads the next frame. Returns false at the end of the file (and from then on), including
    /// a truncated end (see <see cref="Truncated"/>). The record's Data is valid until the next call.
    /// </summary>
    /// <exception cref="PcapFormatException">The file is corrupt at the next record or block.</exception>
    /// <exception cref="ObjectDisposedException">The reader was disposed.</exception>
    public bool TryRead(out PcapRecord record)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        record = default;
        if (_ended)
        {
            return false;
        }
        bool ok = IsPcapNg ? ReadBlocks(out record) : ReadClassicRecord(out record);
        _ended = !ok;
        return ok;
    }

    /// <summary>Disposes the stream unless the reader was told to leave it open.</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }
        _disposed = true;
        if (!_leaveOpen)
        {
            _stream.Dispose();
        }
    }

    private void ReadFileHeader()
    {
        int got = ReadExactly(_header, 4);
        if (got < 4)
        {
            throw new PcapFormatException(0, $"the file has {got} bytes, too few for a capture magic number");
        }
        uint le = BinaryPrimitives.ReadUInt32LittleEndian(_header);
        uint be = BinaryPrimitives.ReadUInt32BigEndian(_header);
        if (le == SectionHeaderType)
        {
            IsPcapNg = true;
            _ended = !ReadSectionHeader(0, alreadyRead: 4);
            return;
        }
        if (le is ClassicMicro or ClassicNano)
        {
            _bigEndian = false;
            _nanosecond = le == ClassicNano;
        }
        else if (be is ClassicMicro or ClassicNano)
        {
            _bigEndian = true;
            _nanosecond = be == ClassicNano;
        }
        else
        {
            throw new PcapFormatException(0, $"bad magic number 0x{be:x8} (not pcap 0xa1b2c3d4/0xa1b23c4d or pcapng 0x0a0d0d0a)");
        }
        SectionCount = 1;
        got = ReadExactly(_header.AsSpan(4, 20), 20);
        if (got < 20)
        {
            Truncated = true;
            _ended = true;
            return;
        }
        ushort major = U16(_header.AsSpan(4));
        if (major != 2)
        {
            throw new PcapFormatException(4, $"unsupported pcap version {major}.{U16(_header.AsSpan(6))} (expected 2.x)");
        }
        _classicLinkType = (int)(U32(_header.AsSpan(20)) & 0x03FF_FFFF); // upper bits carry FCS information
    }

    private bool ReadClassicRecord(out PcapRecord record)
    {
        record = default;
        long start = _position;
        int got = ReadExactly(_header, 16);
        if (got == 0)
        {
            return false;
        }
        if (got < 16)
        {
            Truncated = true;
            return false;
        }
        uint seconds = U32(_header);
        uint fraction = U32(_header.AsSpan(4));
        uint captured = U32(_header.AsSpan(8));
        uint original = U32(_header.AsSpan(12));
        if (captured > MaxCaptureLength)
        {
            throw new PcapFormatException(start, $"record captured length {captured} exceeds {MaxCaptureLength} bytes");
        }
        int length = (int)captured;
        EnsureBuffer(length);
        if (ReadExactly(_buffer, length) < length)
        {
            Truncated = true;
            return false;
        }
        long ns = (seconds * 1_000_000_000L) + (_nanosecond ? fraction : fraction * 1000L);
        record = new PcapRecord(_buffer.AsMemory(0, length), ns, 0, null, _classicLinkType, ClampLength(original), null);
        return true;
    }

    /// <summary>Reads blocks until one carries a packet; false at the end of the file.</summary>
    private bool ReadBlocks(out PcapRecord record)
    {
        record = default;
        while (true)
        {
            long start = _position;
            int got = ReadExactly(_header, 8);
            if (got == 0)
            {
                return false;
            }
            if (got < 8)
            {
                Truncated = true;
                return false;
            }
            uint type = U32(_header);
            if (type == SectionHeaderType)
            {
                if (!ReadSectionHeader(start, alreadyRead: 8))
                {
                    return false;
                }
                continue;
            }
            uint length = U32(_header.AsSpan(4));
            CheckBlockLength(start, length, type, 12);
            int body = (int)length - 12;
            EnsureBuffer(body + 4);
            if (ReadExactly(_buffer, body + 4) < body + 4)
            {
                Truncated = true;
                return false;
            }
            CheckTrailer(start, length, _buffer.AsSpan(body, 4));
            Span<byte> b = _buffer.AsSpan(0, body);
            switch (type)
            {
                case InterfaceDescriptionType:
                    ReadInterface(start, b);
                    break;
                case EnhancedPacketType:
                case PacketType:
                    // The interface and timestamp fields are read inside, after the body's length is checked.
                    record = ReadEnhancedPacket(start, b, obsolete: type == PacketType);
                    return true;
                case SimplePacketType:
                    record = ReadSimplePacket(start, b);
                    return true;
                default:
                    break; // name resolution, statistics, custom, ...: not needed for frames
            }
        }
    }

    /// <summary>Reads a Section Header Block whose first <paramref name="alreadyRead"/> bytes are in _header; false when truncated.</summary>
    private bool ReadSectionHeader(long start, int alreadyRead)
    {
        int need = 12 - alreadyRead;
        if (ReadExactly(_header.AsSpan(alreadyRead, need), need) < need)
        {
            Truncated = true;
            return false;
        }
        uint magic = BinaryPrimitives.ReadUInt32LittleEndian(_header.AsSpan(8));
        if (magic == ByteOrderMagic)
        {
            _bigEndian = false;
        }
        else if (BinaryPrimitives.ReverseEndianness(magic) == ByteOrderMagic)
        {
            _bigEndian = true;
        }
        else
        {
            throw new PcapFormatException(start + 8, $"bad section byte-order magic 0x{magic:x8}");
        }
        uint length = U32(_header.AsSpan(4));
        CheckBlockLength(start, length, SectionHeaderType, 28);
        int rest = (int)length - 12;
        EnsureBuffer(rest);
        if (ReadExactly(_buffer, rest) < rest)
        {
            Truncated = true;
            return false;
        }
        CheckTrailer(start, length, _buffer.AsSpan(rest - 4, 4));
        ushort major = U16(_buffer);
        if (major != 1)
        {
            throw new PcapFormatException(start + 12, $"unsupported pcapng version {major}.{U16(_buffer.AsSpan(2))} (expected 1.x)");
        }
        _interfaces.Clear(); // interface ids are numbered per section
        SectionCount++;
        return true;
    }

    private void ReadInterface(long start, ReadOnlySpan<byte> body)
    {
        if (body.Length < 8)
        {
            throw new PcapFormatException(start, $"interface description block body of {body.Length} bytes is shorter than 8");
        }
        var info = new InterfaceInfo
        {
            LinkType = U16(body),
            SnapLength = U32(body[4..]),
            ResolutionExponent = 6, // default: microseconds
        };
        var options = body[8..];
        int offset = 0;
        while (NextOption(start, options, ref offset, out ushort code, out ReadOnlySpan<byte> value))
        {
            switch (code)
            {
                case 2 when info.Name is null: // if_name
                    info.Name = DecodeString(value);
                    break;
                case 9 when value.Length >= 1: // if_tsresol: 10^-n, or 2^-n when the top bit is set
                    info.ResolutionIsPowerOfTwo = (value[0] & 0x80) != 0;
                    info.ResolutionExponent = value[0] & 0x7F;
                    break;
                case 14 when value.Length >= 8: // if_tsoffset, seconds
                    info.OffsetSeconds = (long)U64(value);
                    break;
            }
        }
        _interfaces.Add(info);
    }

    private PcapRecord ReadEnhancedPacket(long start, ReadOnlySpan<byte> body, bool obsolete)
    {
        if (body.Length < 20)
        {
            throw new PcapFormatException(start, $"packet block body of {body.Length} bytes is shorter than 20");
        }
        // The obsolete Packet Block has a 16-bit interface ID and a 16-bit drops count where the EPB has 32 bits of interface ID.
        uint interfaceId = obsolete ? U16(body) : U32(body);
        uint timeHigh = U32(body[4..]);
        uint timeLow = U32(body[8..]);
        uint captured = U32(body[12..]);
        uint original = U32(body[16..]);
        if (captured > MaxCaptureLength)
        {
            throw new PcapFormatException(start, $"captured length {captured} exceeds {MaxCaptureLength} bytes");
        }
        if (20 + captured > body.Length)
        {
            throw new PcapFormatException(start, $"captured length {captured} runs past the end of its {body.Length + 12}-byte block");
        }
        if (interfaceId >= (uint)_interfaces.Count)
        {
            throw new PcapFormatException(start, $"packet for interface id {interfaceId}, but the section describes {_interfaces.Count} interface(s)");
        }
        InterfaceInfo info = _interfaces[(int)interfaceId];
        int padded = (int)((captured + 3) & ~3u);
        string? comment = null;
        if (20 + padded < body.Length)
        {
            var options = body[(20 + padded)..];
            int offset = 0;
            while (NextOption(start, options, ref offset, out ushort code, out ReadOnlySpan<byte> value))
            {
                if (code == 1 && comment is null) // opt_comment
                {
                    comment = DecodeString(value);
                }
            }
        }
        ulong units = ((ulong)timeHigh << 32) | timeLow;
        return new PcapRecord(_buffer.AsMemory(20, (int)captured), info.ToNanoseconds(units), (int)interfaceId,
            info.Name, info.LinkType, ClampLength(original), comment);
    }

    private PcapRecord ReadSimplePacket(long start, ReadOnlySpan<byte> body)
    {
        if (_interfaces.Count == 0)
        {
            throw new PcapFormatException(start, "simple packet block, but the section describes no interface");
        }
        if (body.Length < 4)
        {
            throw new PcapFormatException(start, $"simple packet block body of {body.Length} bytes is shorter than 4");
        }
        InterfaceInfo info = _interfaces[0];
        uint original = U32(body);
        // The captured length is implied: the original length, cut by the snap length and the block.
        long captured = Math.Min(original, (long)body.Length - 4);
        if (info.SnapLength != 0)
        {
            captured = Math.Min(captured, info.SnapLength);
        }
        if (captured > MaxCaptureLength)
        {
            throw new PcapFormatException(start, $"captured length {captured} exceeds {MaxCaptureLength} bytes");
        }
        return new PcapRecord(_buffer.AsMemory(4, (int)captured), 0, 0, info.Name, info.LinkType, ClampLength(original), null);
    }

    /// <summary>Steps over one option (code, length, value padded to 4); false at opt_endofopt or the end of the options.</summary>
    private bool NextOption(long start, ReadOnlySpan<byte> options, ref int offset, out ushort code, out ReadOnlySpan<byte> value)
    {
        value = default;
        code = 0;
        if (options.Length - offset < 4)
        {
            return false;
        }
        code = U16(options[offset..]);
        int length = U16(options[(offset + 2)..]);
        if (code == 0)
        {
            return false;
        }
        if (length > options.Length - offset - 4)
        {
            throw new PcapFormatException(start, $"option {code} of {length} bytes runs past the end of its block");
        }
        value = options.Slice(offset + 4, length);
        offset += 4 + ((length + 3) & ~3);
        return true;
    }

    private static void CheckBlockLength(long start, uint length, uint type, int minimum)
    {
        if (length < minimum)
        {
            throw new PcapFormatException(start, $"block type 0x{type:x8} has length {length}, below the minimum {minimum}");
        }
        if (length % 4 != 0)
        {
            throw new PcapFormatException(start, $"block type 0x{type:x8} has length {length}, not a multiple of 4");
        }
        if (length > MaxBlockLength)
        {
            throw new PcapFormatException(start, $"block type 0x{type:x8} has length {length}, beyond the {MaxBlockLength}-byte limit");
        }
    }

    private void CheckTrailer(long start, uint length, ReadOnlySpan<byte> trailer)
    {
        uint copy = U32(trailer);
        if (copy != length)
        {
            throw new PcapFormatException(start, $"block length {length} does not match its trailing copy {copy}");
        }
    }

    /// <summary>Reads up to <paramref name="count"/> bytes, stopping only at the end of the stream; returns how many were read.</summary>
    private int ReadExactly(Span<byte> destination, int count)
    {
        int got = _stream.ReadAtLeast(destination[..count], count, throwOnEndOfStream: false);
        _position += got;
        return got;
    }

    private void EnsureBuffer(int length)
    {
        if (_buffer.Length < length)
        {
            _buffer = new byte[Math.Max(length, _buffer.Length * 2)];
        }
    }

    private static int ClampLength(uint length) => length > int.MaxValue ? int.MaxValue : (int)length;

    private static string DecodeString(ReadOnlySpan<byte> value)
    {
        int end = value.IndexOf((byte)0);
        return Encoding.UTF8.GetString(end >= 0 ? value[..end] : value);
    }

    private ushort U16(ReadOnlySpan<byte> s) => _bigEndian ? BinaryPrimitives.ReadUInt16BigEndian(s) : BinaryPrimitives.ReadUInt16LittleEndian(s);

    private uint U32(ReadOnlySpan<byte> s) => _bigEndian ? BinaryPrimitives.ReadUInt32BigEndian(s) : BinaryPrimitives.ReadUInt32LittleEndian(s);

    private ulong U64(ReadOnlySpan<byte> s) => _bigEndian ? BinaryPrimitives.ReadUInt64BigEndian(s) : BinaryPrimitives.ReadUInt64LittleEndian(s);

    private sealed class InterfaceInfo
    {
        public int LinkType;
        public uint SnapLength;
        public string? Name;
        public bool ResolutionIsPowerOfTwo;
        public int ResolutionExponent;
        public long OffsetSeconds;

        /// <summary>Timestamp units of this interface to ns since the epoch (unchecked: absurd values wrap, never throw).</summary>
        public long ToNanoseconds(ulong units)
        {
            ulong ns;
            if (ResolutionIsPowerOfTwo)
            {
                ns = (ulong)(((UInt128)units * 1_000_000_000UL) >> ResolutionExponent);
            }
            else if (ResolutionExponent <= 9)
            {
                ns = units * Pow10(9 - ResolutionExponent);
            }
            else
            {
                int shift = ResolutionExponent - 9;
                ns = shift > 19 ? 0 : units / Pow10(shift);
            }
            return unchecked((long)ns + (OffsetSeconds * 1_000_000_000L));
        }

        private static ulong Pow10(int exponent)
        {
            ulong v = 1;
            for (int i = 0; i < exponent; i++)
            {
                v *= 10;
            }
            return v;
        }
    }
}
