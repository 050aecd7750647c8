using System.Buffers.Binary;
using Natd.Dataplane.Packets;
using Xunit;

namespace Natd.Dataplane.Tests.Packets;

/// <summary>
/// The Internet checksum's fast forms against the textbook: <see cref="Checksum.Sum"/> adds 32-bit
/// halves without carry tests, the incremental updates fold in two steps, and
/// <see cref="Ipv4Header.DecrementTtl(ushort)"/> patches an address change and the TTL in one update.
/// Each must give exactly what RFC 1071's byte-pair loop gives, on data chosen to carry a lot.
/// </summary>
public class ChecksumTests
{
    /// <summary>RFC 1071 section 4.1, as printed: big-endian 16-bit words, end-around carry per add.</summary>
    private static ushort Rfc1071(ReadOnlySpan<byte> data, uint initialBigEndian = 0)
    {
        uint sum = initialBigEndian;
        int i = 0;
        for (; i + 1 < data.Length; i += 2)
        {
            sum += (uint)((data[i] << 8) | data[i + 1]);
            sum = (sum & 0xFFFF) + (sum >> 16);
        }
        if (i < data.Length)
        {
            sum += (uint)(data[i] << 8);
            sum = (sum & 0xFFFF) + (sum >> 16);
        }
        return (ushort)~sum;
    }

    /// <summary>The checksum field as <see cref="Checksum.Compute"/> returns it (native order) read as a big-endian number.</summary>
    private static ushort OnWire(ushort raw) => BitConverter.IsLittleEndian ? BinaryPrimitives.ReverseEndianness(raw) : raw;

    public static TheoryData<int, int> Buffers()
    {
        var data = new TheoryData<int, int>();
        int[] lengths = [0, 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 20, 26, 31, 32, 33, 64, 65, 576, 1479, 1480, 1500, 9000];
        foreach (int length in lengths)
        {
            for (int fill = 0; fill < 3; fill++)
            {
                data.Add(length, fill);
            }
        }
        return data;
    }

    private static byte[] Make(int length, int fill)
    {
        var b = new byte[length];
        switch (fill)
        {
            case 0:
                new Random(length * 31 + 7).NextBytes(b); // about every other 64-bit add carries
                break;
            case 1:
                b.AsSpan().Fill(0xFF); // every add carries
                break;
            default:
                break; // all zero: the sum is zero, the checksum 0xFFFF
        }
        return b;
    }

    [Theory]
    [MemberData(nameof(Buffers))]
    public void Compute_and_verify_agree_with_rfc_1071(int length, int fill)
    {
        byte[] b = Make(length, fill);

        ushort expected = Rfc1071(b);

        Assert.Equal(expected, OnWire(Checksum.Compute(b)));
        if (length >= 2 && length % 2 == 0)
        {
            // Stored in its field, the checksum makes the buffer verify.
            byte[] c = [.. b, 0, 0];
            BinaryPrimitives.WriteUInt16BigEndian(c.AsSpan(length), expected);
            Assert.True(Checksum.Verify(c));
            c[0] ^= 0x01;
            Assert.False(Checksum.Verify(c));
        }
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(2)]
    public void The_inline_ipv4_header_check_agrees_with_rfc_1071(int fill)
    {
        // 20 header bytes and 4 beyond them, which must not be summed.
        byte[] b = Make(24, fill);
        b[10] = b[11] = 0;
        ushort field = Rfc1071(b.AsSpan(0, 20));
        BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(10), field);
        b[20] ^= 0x5A;

        Assert.True(Checksum.VerifyIpv4Header(b));
        for (int i = 0; i < 20; i++)
        {
            // Any flipped bit of the header fails it, as it fails the general check.
            b[i] ^= 0x10;
            Assert.False(Checksum.VerifyIpv4Header(b), $"byte {i} flipped");
            Assert.Equal(Checksum.Verify(b.AsSpan(0, 20)), Checksum.VerifyIpv4Header(b));
            b[i] ^= 0x10;
        }
        Assert.Throws<ArgumentOutOfRangeException>(() => Checksum.VerifyIpv4Header(b.AsSpan(0, 19)));
    }

    [Theory]
    [MemberData(nameof(Buffers))]
    public void An_initial_partial_sum_is_added_with_its_carry(int length, int fill)
    {
        byte[] b = Make(length, fill);
        foreach (uint a in new[] { 0u, 0x0A000001u, 0xFFFFFFFFu })
        {
            foreach (uint z in new[] { 0xC6336407u, 0xFFFFFFFFu })
            {
                // The pseudo-header as natd builds it, against the same words summed by the book.
                ulong pseudo = Checksum.PseudoHeaderSum(a, z, IpProtocol.Udp, length);
                byte[] words = new byte[12];
                BitConverter.TryWriteBytes(words, a); // addresses are network-order values, stored as loaded
                BitConverter.TryWriteBytes(words.AsSpan(4), z);
                words[9] = IpProtocol.Udp;
                BinaryPrimitives.WriteUInt16BigEndian(words.AsSpan(10), (ushort)length);
                uint bookInitial = (uint)(ushort)~Rfc1071(words);

                Assert.Equal(Rfc1071(b, bookInitial), OnWire(Checksum.Compute(b, pseudo)));
            }
        }
        // A large initial value (a caller's unfolded sum) wraps with its end-around carry.
        // 2^64 - 2 is 0xFFFE modulo 0xFFFF: the native-order word 0xFFFE, on the wire 0xFEFF (little-endian).
        ulong big = ulong.MaxValue - 1;
        Assert.Equal(Rfc1071(b, BitConverter.IsLittleEndian ? 0xFEFFu : 0xFFFEu), OnWire(Checksum.Compute(b, big)));
    }

    [Fact]
    public void Fold32_and_fold_reduce_to_sixteen_bits_with_end_around_carry()
    {
        var rng = new Random(11);
        for (int i = 0; i < 100_000; i++)
        {
            uint s = (uint)rng.NextInt64(0, 1L << 32);
            ulong expected = s % 0xFFFF;
            ushort folded = Checksum.Fold32(s);
            Assert.Equal(expected == 0 && s != 0 ? 0xFFFFUL : expected, (ulong)folded);
            ulong w = (ulong)rng.NextInt64() * 2 + (ulong)(i & 1);
            ushort f64 = Checksum.Fold(w);
            ulong e64 = w % 0xFFFF;
            Assert.Equal(e64 == 0 && w != 0 ? 0xFFFFUL : e64, (ulong)f64);
        }
        Assert.Equal(0xFFFF, Checksum.Fold32(uint.MaxValue));
        Assert.Equal(0, Checksum.Fold32(0));
    }

    /// <summary>A 20-byte header with a valid checksum.</summary>
    private static byte[] Header(Random rng, byte ttl)
    {
        var h = new byte[20];
        rng.NextBytes(h);
        h[0] = 0x45;
        h[8] = ttl;
        h[10] = h[11] = 0;
        var ip = new Ipv4Header(h);
        ip.ChecksumRaw = Checksum.Compute(h);
        return h;
    }

    [Fact]
    public void Address_rewrite_and_ttl_in_one_update_equal_a_full_recompute()
    {
        var rng = new Random(5);
        for (int i = 0; i < 20_000; i++)
        {
            byte ttl = (byte)(i % 3 == 0 ? rng.Next(0, 3) : rng.Next(0, 256)); // 0 wraps to 255, as a byte store would
            byte[] h = Header(rng, ttl);
            var ip = new Ipv4Header(h);
            uint oldSource = ip.Source;
            uint newSource = i % 7 == 0 ? oldSource : (uint)rng.NextInt64(0, 1L << 32);
            ushort delta = Checksum.Delta(oldSource, newSource, 0, 0);

            ip.Source = newSource;
            ip.DecrementTtl(delta);

            Assert.Equal((byte)(ttl - 1), h[8]);
            Assert.Equal(newSource, ip.Source);
            byte[] copy = (byte[])h.Clone();
            copy[10] = copy[11] = 0;
            Assert.Equal(Rfc1071(copy), OnWire(ip.ChecksumRaw));
        }
    }

    [Fact]
    public void Decrement_ttl_alone_and_apply_delta_equal_a_full_recompute()
    {
        var rng = new Random(9);
        for (int i = 0; i < 20_000; i++)
        {
            byte[] h = Header(rng, (byte)rng.Next(0, 256));
            var ip = new Ipv4Header(h);
            uint newDestination = (uint)rng.NextInt64(0, 1L << 32);
            ip.ChecksumRaw = Checksum.ApplyDelta(ip.ChecksumRaw, Checksum.Delta(ip.Destination, newDestination, 0, 0));
            ip.Destination = newDestination;
            ip.DecrementTtl();

            byte[] copy = (byte[])h.Clone();
            copy[10] = copy[11] = 0;
            Assert.Equal(Rfc1071(copy), OnWire(ip.ChecksumRaw));
            Assert.True(Checksum.Verify(h));
        }
    }

    [Fact]
    public void Sixteen_bit_update_equals_a_full_recompute()
    {
        var rng = new Random(3);
        for (int i = 0; i < 20_000; i++)
        {
            byte[] h = Header(rng, 64);
            var ip = new Ipv4Header(h);
            ushort oldId = Checksum.ReadRaw16(h, 4);
            ushort newId = (ushort)rng.Next(0, 65536);
            Checksum.WriteRaw16(h, 4, newId);
            ip.ChecksumRaw = Checksum.Update(ip.ChecksumRaw, oldId, newId);

            byte[] copy = (byte[])h.Clone();
            copy[10] = copy[11] = 0;
            Assert.Equal(Rfc1071(copy), OnWire(ip.ChecksumRaw));
        }
    }
}
