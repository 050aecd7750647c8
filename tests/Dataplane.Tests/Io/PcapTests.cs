using System.Buffers.Binary;
using System.Diagnostics;
using System.Text;
using System.Text.RegularExpressions;
using Natd.Dataplane.Io;
using Xunit.Abstractions;

namespace Natd.Tests.Io;

public class PcapTests(ITestOutputHelper output)
{
    private static List<(PcapRecord Record, byte[] Data)> ReadAll(PcapReader reader, int limit = 100_000)
    {
        var list = new List<(PcapRecord, byte[])>();
        while (list.Count < limit && reader.TryRead(out var r))
        {
            list.Add((r, r.Data.ToArray()));
        }
        return list;
    }

    [Fact]
    public void Writer_output_reads_back_with_names_timestamps_comments_and_bytes()
    {
        var frames = new[]
        {
            (Interface: 0, Frame: Enumerable.Range(0, 60).Select(i => (byte)i).ToArray(), Ts: 1_700_000_000_123_456_789L, Comment: (string?)"in2out miss"),
            (Interface: 1, Frame: Enumerable.Range(0, 1514).Select(i => (byte)(i * 7)).ToArray(), Ts: 1_700_000_000_123_456_790L, Comment: (string?)null),
            (Interface: 0, Frame: new byte[] { 1, 2, 3 }, Ts: 5L, Comment: (string?)"ünïcode ✓"),
        };
        var ms = new MemoryStream();
        using (var w = new PcapNgWriter(ms, ["inside", "outside"], leaveOpen: true))
        {
            foreach (var f in frames)
            {
                w.Write(f.Interface, f.Frame, f.Ts, f.Comment);
            }
        }
        Assert.Equal(0, ms.Length % 4);
        ms.Position = 0;
        using var reader = new PcapReader(ms);
        var got = ReadAll(reader);
        Assert.True(reader.IsPcapNg);
        Assert.False(reader.Truncated);
        Assert.Equal(frames.Length, got.Count);
        for (int i = 0; i < frames.Length; i++)
        {
            var (r, data) = got[i];
            Assert.Equal(frames[i].Frame, data);
            Assert.Equal(frames[i].Ts, r.TimestampNs);
            Assert.Equal(frames[i].Interface, r.InterfaceId);
            Assert.Equal(frames[i].Interface == 0 ? "inside" : "outside", r.InterfaceName);
            Assert.Equal(frames[i].Comment, r.Comment);
            Assert.Equal(1, r.LinkType);
            Assert.Equal(frames[i].Frame.Length, r.OriginalLength);
        }
    }

    [Fact]
    public void Writer_output_is_accepted_by_tcpdump()
    {
        string path = Path.Combine(Path.GetTempPath(), $"natd-io-{Guid.NewGuid():N}.pcapng");
        try
        {
            using (var w = new PcapNgWriter(path, ["inside", "outside"]))
            {
                for (int i = 0; i < 7; i++)
                {
                    w.Write(i % 2, new byte[60 + i], 1_700_000_000_000_000_000L + i, i == 3 ? "note" : null);
                }
            }
            var (count, linkType) = TcpdumpCount(path);
            Assert.Equal(7, count);
            Assert.Equal("EN10MB", linkType);
        }
        finally
        {
            File.Delete(path);
        }
    }

    /// <summary>Builds a classic pcap in memory, record by record, in the given byte order and resolution.</summary>
    private static byte[] Classic(bool bigEndian, bool nano, int linkType, params (uint Sec, uint Frac, byte[] Data, uint Orig)[] records)
    {
        var ms = new MemoryStream();
        void U32(uint v)
        {
            Span<byte> b = stackalloc byte[4];
            if (bigEndian) { BinaryPrimitives.WriteUInt32BigEndian(b, v); } else { BinaryPrimitives.WriteUInt32LittleEndian(b, v); }
            ms.Write(b);
        }
        void U16(ushort v)
        {
            Span<byte> b = stackalloc byte[2];
            if (bigEndian) { BinaryPrimitives.WriteUInt16BigEndian(b, v); } else { BinaryPrimitives.WriteUInt16LittleEndian(b, v); }
            ms.Write(b);
        }
        U32(nano ? 0xa1b23c4du : 0xa1b2c3d4u);
        U16(2);
        U16(4);
        U32(0);
        U32(0);
        U32(65535);
        U32((uint)linkType);
        foreach (var r in records)
        {
            U32(r.Sec);
            U32(r.Frac);
            U32((uint)r.Data.Length);
            U32(r.Orig);
            ms.Write(r.Data);
        }
        return ms.ToArray();
    }

    [Theory]
    [InlineData(false, false)]
    [InlineData(true, false)]
    [InlineData(false, true)]
    [InlineData(true, true)]
    public void Classic_pcap_reads_in_both_byte_orders_and_resolutions(bool bigEndian, bool nano)
    {
        byte[] a = [1, 2, 3, 4, 5];
        byte[] b = Enumerable.Range(0, 300).Select(i => (byte)i).ToArray();
        byte[] file = Classic(bigEndian, nano, 1, (1_600_000_000, 123_456, a, 60), (1_600_000_001, 999_999, b, 300));
        using var reader = new PcapReader(new MemoryStream(file));
        var got = ReadAll(reader);
        Assert.False(reader.IsPcapNg);
        Assert.Equal(2, got.Count);
        long scale = nano ? 1 : 1000;
        Assert.Equal(1_600_000_000L * 1_000_000_000 + 123_456 * scale, got[0].Record.TimestampNs);
        Assert.Equal(1_600_000_001L * 1_000_000_000 + 999_999 * scale, got[1].Record.TimestampNs);
        Assert.Equal(a, got[0].Data);
        Assert.Equal(b, got[1].Data);
        Assert.Equal(60, got[0].Record.OriginalLength);
        Assert.All(got, g => Assert.Equal(1, g.Record.LinkType));
        Assert.All(got, g => Assert.Null(g.Record.InterfaceName));
        Assert.False(reader.Truncated);
    }

    [Fact]
    public void Classic_pcap_cut_inside_the_last_record_ends_and_reports_truncation()
    {
        byte[] file = Classic(false, false, 1, (1, 0, new byte[100], 100), (2, 0, new byte[100], 100));
        using var reader = new PcapReader(new MemoryStream(file[..^30]));
        var got = ReadAll(reader);
        Assert.Single(got);
        Assert.True(reader.Truncated);
        Assert.False(reader.TryRead(out _));
    }

    [Fact]
    public void Bad_magic_and_oversized_records_throw_with_the_offset()
    {
        var e = Assert.Throws<PcapFormatException>(() => new PcapReader(new MemoryStream([0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 0])));
        Assert.Contains("offset 0", e.Message, StringComparison.Ordinal);
        Assert.Contains("magic", e.Message, StringComparison.Ordinal);

        byte[] file = Classic(false, false, 1, (1, 0, new byte[10], 10));
        BinaryPrimitives.WriteUInt32LittleEndian(file.AsSpan(24 + 8), 300_000); // caplen > 256 KiB
        using var reader = new PcapReader(new MemoryStream(file));
        var e2 = Assert.Throws<PcapFormatException>(() => reader.TryRead(out _));
        Assert.Equal(24, e2.Offset);
        Assert.Contains("offset 24", e2.Message, StringComparison.Ordinal);
    }

    /// <summary>A pcapng writer for tests: any byte order, any block, built by hand from the format description.</summary>
    private sealed class NgBuilder(bool bigEndian)
    {
        private readonly MemoryStream _ms = new();
        public byte[] ToArray() => _ms.ToArray();

        private byte[] U16(int v) { var b = new byte[2]; if (bigEndian) { BinaryPrimitives.WriteUInt16BigEndian(b, (ushort)v); } else { BinaryPrimitives.WriteUInt16LittleEndian(b, (ushort)v); } return b; }
        private byte[] U32(uint v) { var b = new byte[4]; if (bigEndian) { BinaryPrimitives.WriteUInt32BigEndian(b, v); } else { BinaryPrimitives.WriteUInt32LittleEndian(b, v); } return b; }
        private byte[] U64(ulong v) { var b = new byte[8]; if (bigEndian) { BinaryPrimitives.WriteUInt64BigEndian(b, v); } else { BinaryPrimitives.WriteUInt64LittleEndian(b, v); } return b; }

        public byte[] Option(int code, byte[] value)
        {
            var pad = new byte[(4 - value.Length % 4) % 4];
            return [.. U16(code), .. U16(value.Length), .. value, .. pad];
        }

        public byte[] End => [0, 0, 0, 0];

        public NgBuilder Block(uint type, byte[] body, uint? lengthOverride = null)
        {
            uint length = lengthOverride ?? (uint)(12 + body.Length);
            _ms.Write(U32(type));
            _ms.Write(U32(length));
            _ms.Write(body);
            _ms.Write(U32(length));
            return this;
        }

        public NgBuilder Section() => Block(0x0A0D0D0A, [.. U32(0x1A2B3C4D), .. U16(1), .. U16(0), .. U64(ulong.MaxValue)]);

        public NgBuilder Interface(int linkType, string? name, byte? tsresol, uint snap = 65535)
        {
            byte[] options = [];
            if (name is not null) { options = [.. options, .. Option(2, Encoding.UTF8.GetBytes(name))]; }
            if (tsresol is not null) { options = [.. options, .. Option(9, [tsresol.Value])]; }
            if (options.Length > 0) { options = [.. options, .. End]; }
            return Block(1, [.. U16(linkType), .. U16(0), .. U32(snap), .. options]);
        }

        public NgBuilder Enhanced(uint ifid, ulong ts, byte[] data, string? comment = null, uint? caplenOverride = null)
        {
            var pad = new byte[(4 - data.Length % 4) % 4];
            byte[] options = comment is null ? [] : [.. Option(1, Encoding.UTF8.GetBytes(comment)), .. End];
            return Block(6, [.. U32(ifid), .. U32((uint)(ts >> 32)), .. U32((uint)ts), .. U32(caplenOverride ?? (uint)data.Length), .. U32((uint)data.Length), .. data, .. pad, .. options]);
        }

        public NgBuilder Simple(byte[] data, uint originalLength)
        {
            var pad = new byte[(4 - data.Length % 4) % 4];
            return Block(3, [.. U32(originalLength), .. data, .. pad]);
        }

        public NgBuilder ObsoletePacket(ushort ifid, ulong ts, byte[] data)
        {
            var pad = new byte[(4 - data.Length % 4) % 4];
            return Block(2, [.. U16(ifid), .. U16(0), .. U32((uint)(ts >> 32)), .. U32((uint)ts), .. U32((uint)data.Length), .. U32((uint)data.Length), .. data, .. pad]);
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Pcapng_sections_interfaces_and_all_packet_blocks(bool bigEndian)
    {
        byte[] d1 = [1, 2, 3, 4, 5, 6, 7];
        byte[] d2 = Enumerable.Range(0, 64).Select(i => (byte)i).ToArray();
        byte[] d3 = [9, 9, 9];
        byte[] d4 = [4, 4, 4, 4];
        var first = new NgBuilder(bigEndian)
            .Section()
            .Interface(1, "eth0", null)                 // default resolution: microseconds
            .Block(0x00000BAD, [1, 2, 3, 4, 5, 6, 7, 8]) // unknown block: skipped
            .Interface(113, "any", 9)                   // nanoseconds
            .Enhanced(0, 1_500_000_000_000_001UL, d1, "first")
            .Enhanced(1, 1_500_000_000_000_000_002UL, d2)
            .Simple(d3, 3)
            .ObsoletePacket(1, 7, d4);
        // A second section in the other byte order restarts interface numbering.
        var second = new NgBuilder(!bigEndian)
            .Section()
            .Interface(101, null, 0x80 | 10) // 2^-10 s units
            .Enhanced(0, 1024 * 3 + 512, d1);
        byte[] file = [.. first.ToArray(), .. second.ToArray()];

        using var reader = new PcapReader(new MemoryStream(file));
        var got = ReadAll(reader);
        Assert.Equal(5, got.Count);
        Assert.False(reader.Truncated);
        Assert.Equal(2, reader.SectionCount);

        Assert.Equal(d1, got[0].Data);
        Assert.Equal(1_500_000_000_000_001L * 1000, got[0].Record.TimestampNs);
        Assert.Equal("eth0", got[0].Record.InterfaceName);
        Assert.Equal(1, got[0].Record.LinkType);
        Assert.Equal("first", got[0].Record.Comment);

        Assert.Equal(d2, got[1].Data);
        Assert.Equal(1_500_000_000_000_000_002L, got[1].Record.TimestampNs);
        Assert.Equal(1, got[1].Record.InterfaceId);
        Assert.Equal("any", got[1].Record.InterfaceName);
        Assert.Equal(113, got[1].Record.LinkType);
        Assert.Null(got[1].Record.Comment);

        Assert.Equal(d3, got[2].Data);
        Assert.Equal(0, got[2].Record.InterfaceId);
        Assert.Equal(3, got[2].Record.OriginalLength);

        Assert.Equal(d4, got[3].Data);
        Assert.Equal(7, got[3].Record.TimestampNs);
        Assert.Equal(113, got[3].Record.LinkType);

        Assert.Equal(d1, got[4].Data);
        Assert.Equal(101, got[4].Record.LinkType);
        Assert.Null(got[4].Record.InterfaceName);
        Assert.Equal(3_500_000_000L, got[4].Record.TimestampNs); // 3.5 s in 1/1024 s units
    }

    [Fact]
    public void Pcapng_corruption_throws_with_offset_and_problem()
    {
        var b = new NgBuilder(false).Section().Interface(1, "x", 9);
        int offset = b.ToArray().Length;

        byte[] badLength = new NgBuilder(false).Section().Interface(1, "x", 9).Block(6, new byte[20], lengthOverride: 34).ToArray();
        var e = Assert.Throws<PcapFormatException>(() => ReadAll(new PcapReader(new MemoryStream(badLength))));
        Assert.Contains("multiple of 4", e.Message, StringComparison.Ordinal);
        Assert.Equal(offset, e.Offset);

        byte[] unknownInterface = new NgBuilder(false).Section().Interface(1, "x", 9).Enhanced(3, 0, [1, 2, 3, 4]).ToArray();
        e = Assert.Throws<PcapFormatException>(() => ReadAll(new PcapReader(new MemoryStream(unknownInterface))));
        Assert.Contains("interface id 3", e.Message, StringComparison.Ordinal);
        Assert.Contains($"offset {offset}", e.Message, StringComparison.Ordinal);

        byte[] hugeCaplen = new NgBuilder(false).Section().Interface(1, "x", 9).Enhanced(0, 0, [1, 2, 3, 4], caplenOverride: 400_000).ToArray();
        e = Assert.Throws<PcapFormatException>(() => ReadAll(new PcapReader(new MemoryStream(hugeCaplen))));
        Assert.Contains("400000", e.Message, StringComparison.Ordinal);

        byte[] badByteOrder = new NgBuilder(false).Section().ToArray();
        badByteOrder[8] = 0x99;
        Assert.Throws<PcapFormatException>(() => new PcapReader(new MemoryStream(badByteOrder)));
    }

    [Fact]
    public void Pcapng_cut_inside_the_last_block_ends_and_reports_truncation()
    {
        byte[] file = new NgBuilder(false).Section().Interface(1, "x", 9).Enhanced(0, 1, new byte[40]).Enhanced(0, 2, new byte[40]).ToArray();
        using var reader = new PcapReader(new MemoryStream(file[..^20]));
        var got = ReadAll(reader);
        Assert.Single(got);
        Assert.True(reader.Truncated);
    }

    /// <summary>tcpdump's own count and link-type name for a file (stderr: "reading from file F, link-type NAME (...)" and "N packets").</summary>
    private static (int Count, string LinkType) TcpdumpCount(string path)
    {
        var (code, stdout, stderr) = Shell.TryRun(TimeSpan.FromSeconds(30), "tcpdump", "-n", "-r", path, "--count");
        stderr = stdout + stderr; // the count goes to stdout, the file header line to stderr
        Assert.True(code == 0, $"tcpdump -r {path} failed ({code}): {stderr}");
        var count = Regex.Match(stderr, @"^(\d+) packets?$", RegexOptions.Multiline);
        var link = Regex.Match(stderr, @"link-type (\S+) ");
        Assert.True(count.Success && link.Success, $"unexpected tcpdump output: {stderr}");
        return (int.Parse(count.Groups[1].Value), link.Groups[1].Value);
    }

    private static IEnumerable<string> CaptureFiles()
    {
        string dir = Captures.Tcpdump;
        var files = System.IO.Directory.EnumerateFiles(dir)
            .Where(f => f.EndsWith(".pcap", StringComparison.Ordinal) || f.EndsWith(".pcapng", StringComparison.Ordinal))
            .Order(StringComparer.Ordinal)
            .ToList();
        Assert.True(files.Count > 100, $"expected the tcpdump captures in {dir}, found {files.Count} files");
        return files;
    }

    [Fact]
    public void Every_shared_capture_reads_or_fails_with_PcapFormatException_only()
    {
        int read = 0, corrupt = 0;
        long records = 0;
        var failures = new List<string>();
        foreach (string file in CaptureFiles())
        {
            var clock = Stopwatch.StartNew();
            try
            {
                using var reader = new PcapReader(file);
                int n = 0;
                while (n < 1_000_000 && reader.TryRead(out _))
                {
                    n++;
                }
                Assert.True(n < 1_000_000, $"{file}: no end after a million records");
                records += n;
                read++;
            }
            catch (PcapFormatException)
            {
                corrupt++;
            }
            catch (Exception e)
            {
                failures.Add($"{Path.GetFileName(file)}: {e.GetType().Name}: {e.Message}");
            }
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(10), $"{file} took {clock.Elapsed}");
        }
        output.WriteLine($"{read} captures read ({records} records), {corrupt} refused as corrupt");
        Assert.Empty(failures);
        Assert.True(read > 700, $"only {read} captures read ({corrupt} corrupt)");
        Assert.True(records > 5_000, $"only {records} records");
    }

    private static readonly Dictionary<string, int> LinkTypeByTcpdumpName = new()
    {
        ["EN10MB"] = 1,
        ["LINUX_SLL"] = 113,
        ["LINUX_SLL2"] = 276,
        ["NULL"] = 0,
        ["IEEE802_11_RADIO"] = 127,
    };

    /// <summary>
    /// Record counts (every file tcpdump reads without error) and link types (where tcpdump's
    /// name is in the table above) agree with tcpdump -r, computed independently by libpcap.
    /// </summary>
    [Fact]
    public void Record_counts_and_link_types_match_tcpdump()
    {
        var mismatches = new List<string>();
        int compared = 0, linkCompared = 0;
        foreach (string file in CaptureFiles())
        {
            var (code, stdout, stderr) = Shell.TryRun(TimeSpan.FromSeconds(30), "tcpdump", "-n", "-r", file, "--count");
            stderr = stdout + stderr;
            var countMatch = Regex.Match(stderr, @"^(\d+) packets?$", RegexOptions.Multiline);
            if (code != 0 || !countMatch.Success)
            {
                continue; // tcpdump itself refuses or stops early (truncated or corrupt): covered by the test above
            }
            int expected = int.Parse(countMatch.Groups[1].Value);
            var names = Regex.Matches(stderr, @"link-type (\S+) ").Select(m => m.Groups[1].Value).Distinct().ToList();
            try
            {
                using var reader = new PcapReader(file);
                var linkTypes = new HashSet<int>();
                int n = 0;
                while (n < 1_000_000 && reader.TryRead(out var r))
                {
                    n++;
                    linkTypes.Add(r.LinkType);
                }
                compared++;
                if (n != expected)
                {
                    mismatches.Add($"{Path.GetFileName(file)}: {n} records, tcpdump counts {expected}");
                }
                if (names.Count == 1 && linkTypes.Count == 1 && LinkTypeByTcpdumpName.TryGetValue(names[0], out int lt))
                {
                    linkCompared++;
                    if (linkTypes.Single() != lt)
                    {
                        mismatches.Add($"{Path.GetFileName(file)}: link type {linkTypes.Single()}, tcpdump says {names[0]} ({lt})");
                    }
                }
            }
            catch (Exception e)
            {
                mismatches.Add($"{Path.GetFileName(file)}: tcpdump reads {expected} packets but we threw {e.GetType().Name}: {e.Message}");
            }
        }
        output.WriteLine($"{compared} record counts and {linkCompared} link types compared with tcpdump");
        Assert.Empty(mismatches);
        Assert.True(compared > 600, $"only {compared} files compared");
        Assert.True(linkCompared > 300, $"only {linkCompared} link types compared");
    }

    [Fact]
    public void Dns_udp_capture_has_two_ethernet_records()
    {
        // Values checked with tcpdump -r dns_udp.pcap: 2 packets, link-type EN10MB.
        string file = Path.Combine(Captures.Tcpdump, "dns_udp.pcap");
        var (count, link) = TcpdumpCount(file);
        using var reader = new PcapReader(file);
        var got = ReadAll(reader);
        Assert.Equal(count, got.Count);
        Assert.Equal(2, got.Count);
        Assert.Equal("EN10MB", link);
        Assert.All(got, g => Assert.Equal(1, g.Record.LinkType));
        Assert.All(got, g => Assert.Equal(0x0800, BinaryPrimitives.ReadUInt16BigEndian(g.Data.AsSpan(12))));
        Assert.False(reader.Truncated);
    }
}
