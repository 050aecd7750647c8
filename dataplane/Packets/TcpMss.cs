using System.Buffers.Binary;

namespace Natd.Dataplane.Packets;

/// <summary>
/// TCP maximum segment size clamping (RFC 6691; the MSS option of RFC 9293 section 3.7.1): lowers
/// a SYN's MSS option in place and patches the TCP checksum incrementally (RFC 1624), as a router
/// does for hosts whose path MTU discovery cannot work (netfilter's TCPMSS, VPP's nat
/// mss-clamping). No allocation.
/// </summary>
public static class TcpMss
{
    /// <summary>The MSS option's kind (RFC 9293).</summary>
    public const byte Kind = 2;

    /// <summary>
    /// Lowers the MSS option of the TCP segment <paramref name="tcp"/> (header first) to
    /// <paramref name="clamp"/> bytes when it is larger. A segment without the option, with a
    /// malformed option list, or with an MSS at or below the clamp is left alone.
    /// </summary>
    /// <returns>True when the option was lowered.</returns>
    public static bool Clamp(Span<byte> tcp, ushort clamp)
    {
        if (tcp.Length < Tcp.MinLength)
        {
            return false;
        }
        int end = Math.Min(Tcp.HeaderLength(tcp), tcp.Length);
        int i = Tcp.MinLength;
        while (i < end)
        {
            byte kind = tcp[i];
            if (kind == 0)
            {
                return false; // end of option list
            }
            if (kind == 1)
            {
                i++; // no-operation
                continue;
            }
            if (i + 1 >= end || tcp[i + 1] < 2 || i + tcp[i + 1] > end)
            {
                return false;
            }
            if (kind == Kind && tcp[i + 1] == 4)
            {
                int at = i + 2;
                if (BinaryPrimitives.ReadUInt16BigEndian(tcp[at..]) <= clamp)
                {
                    return false;
                }
                Checksum.WriteField16(tcp, at, clamp, Tcp.ChecksumOffset); // an odd offset too (after a NOP)
                return true;
            }
            i += tcp[i + 1];
        }
        return false;
    }
}
