using Natd.Dataplane.Alg;
using static Natd.Tests.Alg.AlgFrames;

namespace Natd.Tests.Alg;

public class TcpRewriterTests
{
    private static (byte[] buffer, int length, FrameLayout seg) Load(byte[] frame, int room = 256)
    {
        var buffer = new byte[frame.Length + room];
        frame.CopyTo(buffer, 0);
        Assert.True(FrameLayout.TryParseTcp(buffer.AsSpan(0, frame.Length), out var seg));
        return (buffer, frame.Length, seg);
    }

    [Theory]
    [InlineData(6, 3, "ABCDEFG", "hello ABCDEFG world")]
    [InlineData(5, 4, "", "hello world")]
    [InlineData(0, 0, ">>", ">>hello xyz world")]
    [InlineData(15, 0, "!", "hello xyz world!")]
    [InlineData(0, 15, "", "")]
    public void Splice_moves_the_tail_and_fixes_lengths_and_checksums(int offset, int remove, string insert, string expected)
    {
        var (buffer, length, seg) = Load(Tcp(AlgDirection.In2Out, 0x18, 1, 1, Bytes("hello xyz world"), options: Sack(1, 2)));
        Assert.True(TcpRewriter.Splice(buffer, ref length, ref seg, offset, remove, Bytes(insert)));
        var o = buffer[..length];
        Assert.Equal(expected, Text(o));
        Assert.True(Valid(o));
        Assert.Equal(length, seg.FrameLength);
    }

    [Fact]
    public void Splice_refuses_what_does_not_fit_and_out_of_range_edits()
    {
        var frame = Tcp(AlgDirection.In2Out, 0x18, 1, 1, Bytes("hello"));
        var (buffer, length, seg) = Load(frame, room: 2);
        Assert.False(TcpRewriter.Splice(buffer, ref length, ref seg, 0, 1, Bytes("1234")));
        Assert.False(TcpRewriter.Splice(buffer, ref length, ref seg, 3, 3, Bytes("x")));
        Assert.False(TcpRewriter.Splice(buffer, ref length, ref seg, -1, 1, Bytes("x")));
        Assert.Equal(frame, buffer[..length]);
        Assert.True(TcpRewriter.Splice(buffer, ref length, ref seg, 0, 1, Bytes("123")));
        Assert.Equal("123ello", Text(buffer[..length]));
    }

    [Fact]
    public void Splice_drops_ethernet_padding()
    {
        var frame = Tcp(AlgDirection.In2Out, 0x18, 1, 1, Bytes("ab"));
        var padded = frame.Concat(new byte[6]).ToArray(); // minimum Ethernet frame size
        var (buffer, length, seg) = Load(padded);
        Assert.True(TcpRewriter.Splice(buffer, ref length, ref seg, 1, 1, Bytes("BC")));
        Assert.Equal(frame.Length + 1, length);
        Assert.Equal("aBC", Text(buffer[..length]));
        Assert.True(Valid(buffer[..length]));
    }

    [Fact]
    public void Correction_works_across_sequence_wraparound()
    {
        var way = new SeqAdjustWay();
        Assert.True(way.Record(0xFFFF_FFF0, 10));
        Assert.Equal(0xFFFF_FFF0u, way.MapSeq(0xFFFF_FFF0));   // the edited segment itself
        Assert.Equal(4u + 10, way.MapSeq(4));                   // after it, past the wrap
        Assert.Equal(0xFFFF_FF00u, way.MapSeq(0xFFFF_FF00));   // before it
        Assert.Equal(4u, way.UnmapAck(14));
        Assert.Equal(0xFFFF_FFF0u, way.UnmapAck(0xFFFF_FFF0));
        // A second edit moves the position; an older one cannot be tracked.
        Assert.True(way.Record(100, -3));
        Assert.Equal((10, 7), (way.OffsetBefore, way.OffsetAfter));
        Assert.False(way.Record(50, 5));
        Assert.Equal(200u + 7, way.MapSeq(200));
        Assert.Equal(60u + 10, way.MapSeq(60));
    }

    [Fact]
    public void Ack_and_all_sack_blocks_are_adjusted_and_malformed_options_left_alone()
    {
        var edits = new TcpStreamEdits();
        edits.Way(AlgDirection.In2Out).Record(1001, 4);
        // Two SACK blocks, then a truncated option the walker must stop at.
        byte[] options = [.. Sack(1030, 1040, 1050, 1060), 8, 40];
        var (buffer, length, seg) = Load(Tcp(AlgDirection.Out2In, 0x10, 5001, 1027, options: options));
        Assert.True(edits.Adjust(AlgDirection.Out2In, buffer, seg));
        TcpRewriter.FixTcpChecksum(buffer, seg);
        var o = buffer[..length];
        Assert.Equal(1023u, Ack(o));
        Assert.Equal([1026u, 1036u, 1046u, 1056u], SackEdges(o));
        Assert.Equal(5001u, Seq(o));
        Assert.True(Valid(o));
    }

    [Fact]
    public void Ack_field_is_left_alone_without_the_ack_flag()
    {
        var edits = new TcpStreamEdits();
        edits.Way(AlgDirection.In2Out).Record(1001, 4);
        var frame = Tcp(AlgDirection.Out2In, 0x04, 5001, 1027); // RST without ACK
        var (buffer, _, seg) = Load(frame);
        Assert.False(edits.Adjust(AlgDirection.Out2In, buffer, seg));
        Assert.Equal(frame, buffer[..frame.Length]);
    }

    [Fact]
    public void Parser_rejects_fragments_other_protocols_and_bad_lengths()
    {
        var f = Tcp(AlgDirection.In2Out, 0x18, 1, 1, Bytes("x"));
        Assert.True(FrameLayout.TryParseTcp(f, out _));
        var frag = (byte[])f.Clone();
        frag[20] |= 0x20; // MF
        Assert.False(FrameLayout.TryParseTcp(frag, out _));
        var longer = (byte[])f.Clone();
        longer[17] += 10; // total length beyond the frame
        Assert.False(FrameLayout.TryParseTcp(longer, out _));
        var badOffset = (byte[])f.Clone();
        badOffset[14 + 20 + 12] = 0x30; // data offset 12 bytes
        Assert.False(FrameLayout.TryParseTcp(badOffset, out _));
        Assert.False(FrameLayout.TryParseTcp(Udp(AlgDirection.In2Out, [1, 2]), out _));
        Assert.True(FrameLayout.TryParseUdp(Udp(AlgDirection.In2Out, [1, 2]), out var u));
        Assert.Equal(2, u.PayloadLength);
    }
}
