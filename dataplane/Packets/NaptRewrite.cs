using System.Runtime.CompilerServices;

namespace Natd.Dataplane.Packets;

/// <summary>
/// The transport-header edits of NAPT, shared by the translator and replay's inside-trace rebuild:
/// a port (or ICMP identifier) written and the checksum patched incrementally (RFC 1624) with a
/// precomputed delta, in the transport header itself or in the one an ICMP error quotes (RFC 5508).
/// Ports are raw (network order) as they sit in the frame. No allocation.
/// </summary>
public static class NaptRewrite
{
    /// <summary>Writes the new port/identifier at <paramref name="portOffset"/> and patches the transport checksum with <paramref name="delta"/> (a UDP checksum of 0 stays 0, RFC 768).</summary>
    /// <param name="l4">The transport header and payload.</param>
    /// <param name="proto">TCP, UDP or ICMP.</param>
    /// <param name="portOffset">Offset of the port or identifier in <paramref name="l4"/>.</param>
    /// <param name="newPortRaw">The new value, network order.</param>
    /// <param name="delta">Checksum delta of the whole translation (addresses and port).</param>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Port(Span<byte> l4, byte proto, int portOffset, ushort newPortRaw, ushort delta)
    {
        Checksum.WriteRaw16(l4, portOffset, newPortRaw);
        int csumOffset = proto == IpProtocol.Tcp ? Tcp.ChecksumOffset : proto == IpProtocol.Udp ? Udp.ChecksumOffset : Icmp.ChecksumOffset;
        ushort c = Checksum.ReadRaw16(l4, csumOffset);
        if (proto == IpProtocol.Udp)
        {
            if (c == 0)
            {
                return; // no checksum stays no checksum
            }
            c = Checksum.ApplyDelta(c, delta);
            Checksum.WriteRaw16(l4, csumOffset, c == 0 ? (ushort)0xFFFF : c);
            return;
        }
        Checksum.WriteRaw16(l4, csumOffset, Checksum.ApplyDelta(c, delta));
    }

    /// <summary>
    /// Rewrites the port (or identifier) of a transport header quoted by an ICMP error: the source
    /// port when the quoted packet went out through the NAT, the destination port when it came in.
    /// The quoted checksum is patched only when the quote holds it (TCP's sits beyond the first 8 bytes).
    /// </summary>
    public static void EmbeddedPort(Span<byte> l4, byte proto, bool sourceSide, ushort newPortRaw, ushort delta)
    {
        int portOffset = proto == IpProtocol.Icmp ? Icmp.IdentifierOffset : sourceSide ? 0 : 2;
        Checksum.WriteRaw16(l4, portOffset, newPortRaw);
        int csum = proto == IpProtocol.Tcp ? Tcp.ChecksumOffset : proto == IpProtocol.Udp ? Udp.ChecksumOffset : Icmp.ChecksumOffset;
        if (l4.Length < csum + 2)
        {
            return;
        }
        ushort c = Checksum.ReadRaw16(l4, csum);
        if (proto == IpProtocol.Udp && c == 0)
        {
            return;
        }
        c = Checksum.ApplyDelta(c, delta);
        Checksum.WriteRaw16(l4, csum, proto == IpProtocol.Udp && c == 0 ? (ushort)0xFFFF : c);
    }

    /// <summary>Recomputes an ICMP message's checksum over the whole message (an error's quote changed).</summary>
    public static void IcmpChecksum(Span<byte> icmp)
    {
        Checksum.WriteRaw16(icmp, Icmp.ChecksumOffset, 0);
        Checksum.WriteRaw16(icmp, Icmp.ChecksumOffset, Checksum.Compute(icmp));
    }
}
