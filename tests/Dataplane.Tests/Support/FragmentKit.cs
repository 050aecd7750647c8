using System.Buffers.Binary;

namespace Natd.Tests.Support;

/// <summary>Splits Ethernet+IPv4 frames into IPv4 fragments (RFC 791) and joins fragments back, for the fragment tests.</summary>
public static class FragmentKit
{
    /// <summary>
    /// Fragments <paramref name="frame"/> (one whole datagram, 20-byte IP header) with at most
    /// <paramref name="chunk"/> payload bytes each (a multiple of 8), in offset order; DF is cleared,
    /// <paramref name="id"/> set when given.
    /// </summary>
    public static List<byte[]> Split(byte[] frame, int chunk, ushort? id = null)
    {
        Assert.Equal(0, chunk % 8);
        int ihl = (frame[14] & 0xF) * 4;
        int total = BinaryPrimitives.ReadUInt16BigEndian(frame.AsSpan(16));
        int payload = total - ihl;
        var list = new List<byte[]>();
        for (int off = 0; off < payload; off += chunk)
        {
            int n = Math.Min(chunk, payload - off);
            list.Add(Piece(frame, off, n, more: off + n < payload, id));
        }
        return list;
    }

    /// <summary>One fragment of <paramref name="frame"/>: payload bytes [<paramref name="offset"/>, +<paramref name="length"/>).</summary>
    public static byte[] Piece(byte[] frame, int offset, int length, bool more, ushort? id = null)
    {
        int ihl = (frame[14] & 0xF) * 4;
        var f = new byte[14 + ihl + length];
        frame.AsSpan(0, 14 + ihl).CopyTo(f);
        frame.AsSpan(14 + ihl + offset, length).CopyTo(f.AsSpan(14 + ihl));
        BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(16), (ushort)(ihl + length));
        if (id is ushort i)
        {
            BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(18), i);
        }
        BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(20), (ushort)((more ? 0x2000 : 0) | (offset / 8)));
        return FixIpChecksum(f);
    }

    /// <summary>Joins fragments (any order) into the whole datagram's frame: the Ethernet and IP header of the first fragment, flags cleared.</summary>
    public static byte[] Join(IEnumerable<byte[]> fragments)
    {
        var parts = new List<(int Off, byte[] F)>();
        foreach (var f in fragments)
        {
            parts.Add(((BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(20)) & 0x1FFF) * 8, f));
        }
        parts.Sort((a, b) => a.Off.CompareTo(b.Off));
        Assert.Equal(0, parts[0].Off);
        byte[] first = parts[0].F;
        int ihl = (first[14] & 0xF) * 4;
        var payload = new List<byte>();
        foreach (var (off, f) in parts)
        {
            Assert.Equal(payload.Count, off); // contiguous, no overlap
            int len = BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(16)) - ihl;
            payload.AddRange(f.AsSpan(14 + ihl, len).ToArray());
        }
        var whole = new byte[14 + ihl + payload.Count];
        first.AsSpan(0, 14 + ihl).CopyTo(whole);
        payload.CopyTo(whole, 14 + ihl);
        BinaryPrimitives.WriteUInt16BigEndian(whole.AsSpan(16), (ushort)(ihl + payload.Count));
        whole[20] = 0;
        whole[21] = 0;
        return FixIpChecksum(whole);
    }

    /// <summary>Recomputes the IPv4 header checksum in place and returns the frame.</summary>
    public static byte[] FixIpChecksum(byte[] f)
    {
        int ihl = (f[14] & 0xF) * 4;
        f[24] = f[25] = 0;
        ushort c = Frames.PlainChecksum(f.AsSpan(14, ihl));
        f[24] = (byte)(c >> 8);
        f[25] = (byte)c;
        return f;
    }

    /// <summary>True when the IPv4 header checksum of <paramref name="f"/> verifies.</summary>
    public static bool IpChecksumValid(byte[] f) => Frames.PlainChecksum(f.AsSpan(14, (f[14] & 0xF) * 4)) == 0;
}
