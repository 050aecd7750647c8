using Natd.Dataplane.Nat;
using Natd.Dataplane.Packets;
using Natd.Dataplane.Sessions;

namespace Natd.Control.Replay;

/// <summary>
/// For replay of a capture taken on the inside network: turns a frame that a remote sent to an
/// inside host (as the inside host saw it, already un-translated) back into what the remote really
/// sent, addressed to the session's external address and port, so it can be fed to the outside
/// port. TCP, UDP, ICMP echo replies, and ICMP errors about the host's own packets (their quoted
/// header carries the external endpoint again, RFC 5508). Rewrites in place with the session's own
/// incremental checksum deltas (RFC 1624); an expired session counts as none. Uses only the
/// engine's public session lookup (<see cref="NatEngine.TryGetIn2OutTranslation"/>).
/// </summary>
internal static class InsideTraceRebuilder
{
    private const int IcmpQuoteBytes = 8; // RFC 792: IP header + first 64 bits of the datagram

    /// <summary>Rebuilds <paramref name="frame"/> in place (see the class).</summary>
    /// <param name="engine">The engine replaying the capture.</param>
    /// <param name="frame">An Ethernet/IPv4 frame addressed to an inside host.</param>
    /// <param name="nowMs">The frame's time (engine clock, ms).</param>
    /// <returns>False when the frame is not such a packet or matches no live session (it is then unsolicited).</returns>
    public static bool TryRebuild(NatEngine engine, Span<byte> frame, long nowMs)
    {
        if (frame.Length < EthernetHeader.Length + Ipv4Header.MinLength || new EthernetHeader(frame).EtherType != EtherType.Ipv4)
        {
            return false;
        }
        Span<byte> ipSpan = frame[EthernetHeader.Length..];
        var ip = new Ipv4Header(ipSpan);
        int ihl = ip.HeaderLength;
        if (ip.Version != 4 || ihl < Ipv4Header.MinLength || ip.TotalLength > ipSpan.Length || ip.TotalLength < ihl + 8 || ip.IsFragment)
        {
            return false;
        }
        ipSpan = ipSpan[..ip.TotalLength];
        Span<byte> l4 = ipSpan[ihl..];
        byte proto = ip.Protocol;
        FlowKey in2out;
        int portOffset;
        if (proto is IpProtocol.Tcp or IpProtocol.Udp)
        {
            if (proto == IpProtocol.Tcp && l4.Length < Tcp.MinLength)
            {
                return false;
            }
            in2out = new FlowKey(ip.Destination, ip.Source, Checksum.ReadRaw16(l4, 2), Checksum.ReadRaw16(l4, 0), proto);
            portOffset = 2;
        }
        else if (proto == IpProtocol.Icmp && l4[0] == Icmp.EchoReply)
        {
            in2out = new FlowKey(ip.Destination, ip.Source, Checksum.ReadRaw16(l4, Icmp.IdentifierOffset), 0, proto);
            portOffset = Icmp.IdentifierOffset;
        }
        else if (proto == IpProtocol.Icmp && Icmp.IsError(l4[0]))
        {
            return RebuildIcmpError(engine, ip, l4, nowMs);
        }
        else
        {
            return false;
        }
        if (!engine.TryGetIn2OutTranslation(in2out, nowMs, out SessionTranslation t))
        {
            return false;
        }
        ip.Destination = t.ExternalAddress;
        ip.ChecksumRaw = Checksum.ApplyDelta(ip.ChecksumRaw, t.IpDelta);
        NaptRewrite.Port(l4, proto, portOffset, t.ExternalPortRaw, t.L4Delta);
        return true;
    }

    /// <summary>An ICMP error about an inside host's own packet, rebuilt as it arrived at the external address.</summary>
    private static bool RebuildIcmpError(NatEngine engine, Ipv4Header ip, Span<byte> icmp, long nowMs)
    {
        Span<byte> emb = icmp[Icmp.HeaderLength..];
        if (emb.Length < Ipv4Header.MinLength)
        {
            return false;
        }
        var eip = new Ipv4Header(emb);
        int eihl = eip.HeaderLength;
        if (eip.Version != 4 || eihl < Ipv4Header.MinLength || emb.Length < eihl + IcmpQuoteBytes || eip.Source != ip.Destination)
        {
            return false;
        }
        Span<byte> el4 = emb[eihl..];
        byte proto = eip.Protocol;
        FlowKey in2out;
        if (proto is IpProtocol.Tcp or IpProtocol.Udp)
        {
            in2out = new FlowKey(eip.Source, eip.Destination, Checksum.ReadRaw16(el4, 0), Checksum.ReadRaw16(el4, 2), proto);
        }
        else if (proto == IpProtocol.Icmp && el4[0] == Icmp.EchoRequest)
        {
            in2out = new FlowKey(eip.Source, eip.Destination, Checksum.ReadRaw16(el4, Icmp.IdentifierOffset), 0, proto);
        }
        else
        {
            return false;
        }
        if (!engine.TryGetIn2OutTranslation(in2out, nowMs, out SessionTranslation t))
        {
            return false;
        }
        ip.Destination = t.ExternalAddress;
        ip.ChecksumRaw = Checksum.ApplyDelta(ip.ChecksumRaw, t.IpDelta);
        eip.Source = t.ExternalAddress;
        eip.ChecksumRaw = Checksum.ApplyDelta(eip.ChecksumRaw, t.IpDelta);
        NaptRewrite.EmbeddedPort(el4, proto, sourceSide: true, t.ExternalPortRaw, t.L4Delta);
        NaptRewrite.IcmpChecksum(icmp);
        return true;
    }
}
