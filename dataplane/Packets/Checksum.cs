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
    public static ulong Sum(ReadOnlySpan<byte> data, ulong initial = 0)
    {
        ulong sum = initial;
        ref byte p = ref MemoryMarshal.GetReference(data);
        int n = data.Length;
        int i = 0;
        for (; i + 8 <= n; i += 8)
        {
            ulong v = Unsafe.ReadUnaligned<ulong>(ref Unsafe.Add(ref p, i));
            sum += v;
            if (sum < v)
            {
                sum++; // end-around carry
            }
        }
        for (; i + 2 <= n; i += 2)
        {
            ulong v = Unsafe.ReadUnaligned<ushort>(ref Unsafe.Add(ref p, i));
            sum += v;
            if (sum < v)
            {
                sum++;
            }
        }
        if (i < n)
        {
            ulong v = BitConverter.IsLittleEndian ? Unsafe.Add(ref p, i) : (ulong)Unsafe.Add(ref p, i) << 8;
            sum += v;
            if (sum < v)
            {
                sum++;
            }
        }
        return sum;
    }

    /// <summary>Folds a 64-bit accumulator to 16 bits with end-around carries.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort Fold(ulong sum)
    {
        sum = (sum & 0xFFFF_FFFF) + (sum >> 32);
        sum = (sum & 0xFFFF_FFFF) + (sum >> 32);
        sum = (sum & 0xFFFF) + (sum >> 16);
        sum = (sum & 0xFFFF) + (sum >> 16);
        sum = (sum & 0xFFFF) + (sum >> 16);
        return (ushort)sum;
    }

    /// <summary>The checksum field value (complemented sum, native order) for <paramref name="data"/> with its checksum field zeroed.</summary>
    public static ushort Compute(ReadOnlySpan<byte> data, ulong initial = 0) => (ushort)~Fold(Sum(data, initial));

    /// <summary>True when <paramref name="data"/>, checksum field included, sums to 0xFFFF.</summary>
    public static bool Verify(ReadOnlySpan<byte> data, ulong initial = 0) => Fold(Sum(data, initial)) == 0xFFFF;

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
        ulong sum = (ulong)(ushort)~checksum + (ushort)~oldValue + newValue;
        return (ushort)~Fold(sum);
    }

    /// <summary>RFC 1624 update for a 32-bit field (an address), raw native loads.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort Update(ushort checksum, uint oldValue, uint newValue)
    {
        ulong sum = (ulong)(ushort)~checksum
            + (ushort)~(ushort)oldValue + (ushort)~(ushort)(oldValue >> 16)
            + (ushort)newValue + (ushort)(newValue >> 16);
        return (ushort)~Fold(sum);
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
    public static ushort ApplyDelta(ushort checksum, ushort delta) => (ushort)~Fold((ulong)(ushort)~checksum + delta);

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
