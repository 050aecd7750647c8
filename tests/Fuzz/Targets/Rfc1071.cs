using System.Buffers.Binary;

namespace Natd.Fuzzing.Targets;

/// <summary>
/// The fuzz targets' own Internet checksum (RFC 1071) and frame checks, written independently of
/// the dataplane's Checksum class so a bug there cannot hide itself. Frames are Ethernet II.
/// </summary>
public static class Rfc1071
{
    /// <summary>One's-complement sum of <paramref name="data"/> (16-bit big-endian words, odd byte padded with zero) added to <paramref name="sum"/>; not folded.</summary>
    public static ulong Sum(ReadOnlySpan<byte> data, ulong sum = 0)
    {
        int i = 0;
        for (; i + 1 < data.Length; i += 2)
        {
            sum += (ulong)((data[i] << 8) | data[i + 1]);
        }
        if (i < data.Length)
        {
            sum += (ulong)(data[i] << 8);
        }
        return sum;
    }

    /// <summary>Folds a sum to 16 bits (end-around carry).</summary>
    public static ushort Fold(ulong sum)
    {
        while (sum >> 16 != 0)
        {
            sum = (sum & 0xFFFF) + (sum >> 16);
        }
        return (ushort)sum;
    }

    /// <summary>True when data that includes its checksum field sums to all ones (RFC 1071 section 1, verification).</summary>
    public static bool Verifies(ReadOnlySpan<byte> data, ulong initial = 0) => Fold(Sum(data, initial)) == 0xFFFF;

    /// <summary>The TCP/UDP pseudo-header sum (RFC 793 section 3.1, RFC 768): addresses as on the wire, protocol, L4 length.</summary>
    public static ulong Pseudo(ReadOnlySpan<byte> ipHeader, byte protocol, int l4Length)
        => Sum(ipHeader.Slice(12, 8)) + protocol + (ulong)l4Length;

    /// <summary>
    /// Checks an emitted frame: for IPv4, a sane header whose checksum verifies, a total length
    /// that fits the frame, and (unfragmented) a TCP, UDP (unless 0, RFC 768) or ICMP checksum
    /// that verifies. Returns null when good, else what is wrong. Non-IPv4 frames pass.
    /// </summary>
    public static string? CheckFrame(ReadOnlySpan<byte> frame)
    {
        if (frame.Length < 14 || BinaryPrimitives.ReadUInt16BigEndian(frame[12..]) != 0x0800)
        {
            return null;
        }
        ReadOnlySpan<byte> ip = frame[14..];
        if (ip.Length < 20 || ip[0] >> 4 != 4)
        {
            return "emitted IPv4 frame has no valid version/header";
        }
        int ihl = (ip[0] & 0xF) * 4;
        int total = BinaryPrimitives.ReadUInt16BigEndian(ip[2..]);
        if (ihl < 20 || total < ihl || total > ip.Length)
        {
            return $"emitted IPv4 header lengths are wrong (ihl {ihl}, total {total}, frame {frame.Length})";
        }
        if (!Verifies(ip[..ihl]))
        {
            return "emitted IPv4 header checksum does not verify";
        }
        bool fragment = (BinaryPrimitives.ReadUInt16BigEndian(ip[6..]) & 0x3FFF) != 0;
        if (fragment)
        {
            return null;
        }
        ReadOnlySpan<byte> l4 = ip[ihl..total];
        switch (ip[9])
        {
            case 6:
                if (l4.Length < 20)
                {
                    return $"emitted TCP segment of {l4.Length} bytes is shorter than its header";
                }
                return Verifies(l4, Pseudo(ip, 6, l4.Length)) ? null : "emitted TCP checksum does not verify";
            case 17:
                if (l4.Length < 8)
                {
                    return $"emitted UDP datagram of {l4.Length} bytes is shorter than its header";
                }
                if (BinaryPrimitives.ReadUInt16BigEndian(l4[6..]) == 0)
                {
                    return null;
                }
                return Verifies(l4, Pseudo(ip, 17, l4.Length)) ? null : "emitted UDP checksum does not verify";
            case 1:
                if (l4.Length < 8)
                {
                    return $"emitted ICMP message of {l4.Length} bytes is shorter than its header";
                }
                return Verifies(l4) ? null : "emitted ICMP checksum does not verify";
            default:
                return null;
        }
    }

    /// <summary>True when the frame's TCP/UDP/ICMP checksum verifies (or it is not such a frame): whether an input could be forwarded with a valid checksum.</summary>
    public static bool InputL4Valid(ReadOnlySpan<byte> frame) => CheckFrame(frame) is null;

    /// <summary>Sets the IPv4 header checksum and the TCP/UDP/ICMP checksum of a frame built by a seed generator.</summary>
    public static void Finish(Span<byte> frame)
    {
        Span<byte> ip = frame[14..];
        int ihl = (ip[0] & 0xF) * 4;
        int total = BinaryPrimitives.ReadUInt16BigEndian(ip[2..]);
        ip[10] = ip[11] = 0;
        BinaryPrimitives.WriteUInt16BigEndian(ip[10..], (ushort)~Fold(Sum(ip[..ihl])));
        Span<byte> l4 = ip[ihl..total];
        int at = ip[9] switch { 6 => 16, 17 => 6, 1 => 2, _ => -1 };
        if (at < 0 || l4.Length < at + 2)
        {
            return;
        }
        l4[at] = l4[at + 1] = 0;
        ulong initial = ip[9] == 1 ? 0 : Pseudo(ip, ip[9], l4.Length);
        ushort c = (ushort)~Fold(Sum(l4, initial));
        if (c == 0 && ip[9] == 17)
        {
            c = 0xFFFF;
        }
        BinaryPrimitives.WriteUInt16BigEndian(l4[at..], c);
    }
}
