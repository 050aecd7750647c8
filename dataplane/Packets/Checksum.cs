using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Natd.Dataplane.Packets;

/// <summary>
/// Internet checksum (RFC 1071) and its incremental update (RFC 1624).
/// </summary>
/// <remarks>
/// The one's complement sum is byte-order independent (RFC 1071 section 2(B)): words are loaded in
/// native order here, and a checksum field read and written in native order with the same loads is
/// correct on the wire. Values passed to the update functions are therefore raw field contents as
/// loaded from the frame (network-order addresses as in <see cref="Ipv4"/>, ports as read with
/// <see cref="ReadRaw16"/>), never host-order numbers.
/// </remarks>
public static class Checksum
{
    /// <summary>Unfolded one's complement sum of <paramref name="data"/> plus <paramref name="initial"/>; odd length is zero-padded.</summary>
    /// <remarks>
    /// The result is congruent (mod 0xFFFF) to the RFC 1071 sum; <see cref="Fold"/> it. Words are
    /// added as 32-bit halves into 64-bit accumulators, which cannot overflow below 2^32 words, so
    /// no word pays an end-around-carry test: on packet data that test is taken about every other
    /// word, and its branch was mispredicted as often. 2^32 - 1 is a multiple of 0xFFFF, so a 32-bit
    /// half's value is the sum of its two 16-bit words modulo 0xFFFF.
    /// </remarks>
    public static ulong Sum(ReadOnlySpan<byte> data, ulong initial = 0)
    {
        ref byte p = ref MemoryMarshal.GetReference(data);
        int n = data.Length;
        int i = 0;
        ulong a = 0, b = 0; // two chains, so the adds of one word pair do not wait on each other
        for (; i + 16 <= n; i += 16)
        {
            ulong v = Unsafe.ReadUnaligned<ulong>(ref Unsafe.Add(ref p, i));
            ulong w = Unsafe.ReadUnaligned<ulong>(ref Unsafe.Add(ref p, i + 8));
            a += (v & 0xFFFF_FFFF) + (v >> 32);
            b += (w & 0xFFFF_FFFF) + (w >> 32);
        }
        if (i + 8 <= n)
        {
            ulong v = Unsafe.ReadUnaligned<ulong>(ref Unsafe.Add(ref p, i));
            a += (v & 0xFFFF_FFFF) + (v >> 32);
            i += 8;
        }
        if (i + 4 <= n)
        {
            a += Unsafe.ReadUnaligned<uint>(ref Unsafe.Add(ref p, i));
            i += 4;
        }
        if (i + 2 <= n)
        {
            a += Unsafe.ReadUnaligned<ushort>(ref Unsafe.Add(ref p, i));
            i += 2;
        }
        if (i < n)
        {
            // The odd byte is the first of a zero-padded 16-bit word (i is even here).
            a += BitConverter.IsLittleEndian ? Unsafe.Add(ref p, i) : (ulong)Unsafe.Add(ref p, i) << 8;
        }
        ulong sum = a + b;
        sum += initial;
        return sum < initial ? sum + 1 : sum; // end-around carry of the caller's partial sum
    }

    /// <summary>Folds a 64-bit accumulator to 16 bits with end-around carries.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort Fold(ulong sum)
    {
        sum = (sum & 0xFFFF_FFFF) + (sum >> 32);
        sum = (sum & 0xFFFF_FFFF) + (sum >> 32); // now <= 0xFFFF_FFFF
        return Fold32((uint)sum);
    }

    /// <summary>
    /// Folds a 32-bit sum to 16 bits with end-around carries: two steps (the first leaves at most
    /// 0x1FFFE, the second at most 0xFFFF). An incremental update's few 16-bit terms need no more.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort Fold32(uint sum)
    {
        sum = (sum & 0xFFFF) + (sum >> 16);
        sum = (sum & 0xFFFF) + (sum >> 16);
        return (ushort)sum;
    }

    /// <summary>The checksum field value (complemented sum, native order) for <paramref name="data"/> with its checksum field zeroed.</summary>
    public static ushort Compute(ReadOnlySpan<byte> data, ulong initial = 0) => (ushort)~Fold(Sum(data, initial));

    /// <summary>True when <paramref name="data"/>, checksum field included, sums to 0xFFFF.</summary>
    public static bool Verify(ReadOnlySpan<byte> data, ulong initial = 0) => Fold(Sum(data, initial)) == 0xFFFF;

    /// <summary>
    /// <see cref="Verify"/> of an IPv4 header without options (its first 20 bytes, checksum field
    /// included; RFC 791, RFC 1071): five 32-bit words added inline, no loop and no call, as every
    /// received datagram's header is checked once.
    /// </summary>
    /// <param name="header">At least 20 bytes; only the first 20 are summed.</param>
    /// <exception cref="ArgumentOutOfRangeException">Fewer than 20 bytes.</exception>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool VerifyIpv4Header(ReadOnlySpan<byte> header)
    {
        if (header.Length < 20)
        {
            ThrowShortHeader(header.Length);
        }
        ref byte p = ref MemoryMarshal.GetReference(header);
        ulong sum = (ulong)Unsafe.ReadUnaligned<uint>(ref p)
            + Unsafe.ReadUnaligned<uint>(ref Unsafe.Add(ref p, 4))
            + Unsafe.ReadUnaligned<uint>(ref Unsafe.Add(ref p, 8))
            + Unsafe.ReadUnaligned<uint>(ref Unsafe.Add(ref p, 12))
            + Unsafe.ReadUnaligned<uint>(ref Unsafe.Add(ref p, 16));
        return Fold(sum) == 0xFFFF;
    }

    [System.Diagnostics.CodeAnalysis.DoesNotReturn]
    private static void ThrowShortHeader(int length)
        => throw new ArgumentOutOfRangeException("header", length, "an IPv4 header is at least 20 bytes");

    /// <summary>
    /// Unfolded sum of the TCP/UDP pseudo-header (RFC 793 / RFC 768): source and destination
    /// (network order), protocol, and L4 length in bytes (host order).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong PseudoHeaderSum(uint source, uint destination, byte protocol, int l4Length)
    {
        ulong sum = (ulong)source + destination;
        // Protocol and length as two big-endian words, then loaded natively like the rest.
        uint tail = ((uint)protocol << 16) | (uint)(l4Length & 0xFFFF);
        tail = BitConverter.IsLittleEndian ? BinaryPrimitives.ReverseEndianness(tail) : tail;
        return sum + tail;
    }

    /// <summary>RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m') for one 16-bit field (raw native loads).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort Update(ushort checksum, ushort oldValue, ushort newValue)
    {
        uint sum = (uint)(ushort)~checksum + (ushort)~oldValue + newValue;
        return (ushort)~Fold32(sum);
    }

    /// <summary>RFC 1624 update for a 32-bit field (an address), raw native loads.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort Update(ushort checksum, uint oldValue, uint newValue)
    {
        uint sum = (uint)(ushort)~checksum
            + (ushort)~(ushort)oldValue + (ushort)~(ushort)(oldValue >> 16)
            + (ushort)newValue + (ushort)(newValue >> 16);
        return (ushort)~Fold32(sum);
    }

    /// <summary>
    /// Writes the big-endian 16-bit <paramref name="value"/> at <paramref name="offset"/> of
    /// <paramref name="data"/> (a TCP or UDP segment, header first) and updates the checksum at
    /// <paramref name="checksumOffset"/> incrementally (RFC 1624). At an odd offset the field's bytes
    /// fall in two checksum words, where the sum sees them swapped (RFC 1071 section 2(B)).
    /// </summary>
    public static void WriteField16(Span<byte> data, int offset, ushort value, int checksumOffset)
    {
        ushort oldRaw = ReadRaw16(data, offset);
        BinaryPrimitives.WriteUInt16BigEndian(data[offset..], value);
        ushort newRaw = ReadRaw16(data, offset);
        if ((offset & 1) != 0)
        {
            oldRaw = BinaryPrimitives.ReverseEndianness(oldRaw);
            newRaw = BinaryPrimitives.ReverseEndianness(newRaw);
        }
        WriteRaw16(data, checksumOffset, Update(ReadRaw16(data, checksumOffset), oldRaw, newRaw));
    }

    /// <summary>
    /// Folded delta (~m + m') for an address and a port change together, precomputed once per
    /// session direction so each packet pays one add (VPP's precomputed rewrite).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort Delta(uint oldAddress, uint newAddress, ushort oldPort, ushort newPort)
    {
        ulong sum = (ulong)(ushort)~(ushort)oldAddress + (ushort)~(ushort)(oldAddress >> 16)
            + (ushort)newAddress + (ushort)(newAddress >> 16)
            + (ushort)~oldPort + newPort;
        return Fold(sum);
    }

    /// <summary>Applies a folded delta from <see cref="Delta"/> to a checksum field.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort ApplyDelta(ushort checksum, ushort delta)
    {
        // ~HC + delta <= 0x1FFFE: one end-around carry leaves at most 0xFFFF.
        uint sum = (uint)(ushort)~checksum + delta;
        return (ushort)~(ushort)((sum & 0xFFFF) + (sum >> 16));
    }

    /// <summary>Reads a 16-bit field as stored (native load, no byte swap).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort ReadRaw16(ReadOnlySpan<byte> span, int offset) => Unsafe.ReadUnaligned<ushort>(ref Unsafe.Add(ref MemoryMarshal.GetReference(span), offset));

    /// <summary>Writes a 16-bit field as stored (native store, no byte swap).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void WriteRaw16(Span<byte> span, int offset, ushort value) => Unsafe.WriteUnaligned(ref Unsafe.Add(ref MemoryMarshal.GetReference(span), offset), value);

    /// <summary>Reads a 32-bit field as stored (native load, no byte swap).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint ReadRaw32(ReadOnlySpan<byte> span, int offset) => Unsafe.ReadUnaligned<uint>(ref Unsafe.Add(ref MemoryMarshal.GetReference(span), offset));

    /// <summary>Writes a 32-bit field as stored (native store, no byte swap).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void WriteRaw32(Span<byte> span, int offset, uint value) => Unsafe.WriteUnaligned(ref Unsafe.Add(ref MemoryMarshal.GetReference(span), offset), value);
}
