using System.Buffers.Binary;
using Natd.Dataplane.Packets;

namespace Natd.Dataplane.Pcp;

/// <summary>A NAT-PMP request (RFC 6886 section 3): the opcode and, for a mapping, its fields (ports raw).</summary>
public struct NatPmpRequest
{
    /// <summary>Opcode: 0 external address, 1 map UDP, 2 map TCP.</summary>
    public byte Opcode;
    /// <summary>Internal port, raw (mapping requests).</summary>
    public ushort InternalPortRaw;
    /// <summary>Suggested external port, raw (0 none).</summary>
    public ushort SuggestedPortRaw;
    /// <summary>Requested lifetime, seconds (0 deletes).</summary>
    public uint Lifetime;

    /// <summary>The IP protocol of a mapping opcode.</summary>
    public readonly byte Protocol => Opcode == PcpWire.NatPmpOpTcp ? IpProtocol.Tcp : IpProtocol.Udp;
}

/// <summary>
/// The NAT-PMP codec (RFC 6886), spoken on the PCP port as RFC 6887 Appendix A negotiates (a
/// version 0 request is NAT-PMP). Parses in place and writes the response over the request's
/// buffer; no exceptions, no allocation.
/// </summary>
public static class NatPmpCodec
{
    /// <summary>How <see cref="ParseRequest"/> ended.</summary>
    public enum Parse : byte
    {
        /// <summary>An external address (opcode 0) or mapping (1, 2) request.</summary>
        Ok,
        /// <summary>A response (opcode 128 or more): ignored (section 3.5).</summary>
        Silent,
        /// <summary>Too short for its opcode: dropped (counted as malformed).</summary>
        Malformed,
        /// <summary>An opcode below 128 other than 0-2: answered with "unsupported opcode".</summary>
        UnsupportedOpcode,
    }

    /// <summary>Parses the version 0 request <paramref name="msg"/> (at least 2 bytes, <c>msg[0] == 0</c>).</summary>
    public static Parse ParseRequest(ReadOnlySpan<byte> msg, out NatPmpRequest request)
    {
        request = default;
        if (msg.Length < 2 || msg[1] >= 128)
        {
            return Parse.Silent;
        }
        request.Opcode = msg[1];
        switch (request.Opcode)
        {
            case PcpWire.NatPmpOpAddress:
                return Parse.Ok;
            case PcpWire.NatPmpOpUdp:
            case PcpWire.NatPmpOpTcp:
                if (msg.Length < PcpWire.NatPmpMapRequestLength)
                {
                    return Parse.Malformed;
                }
                request.InternalPortRaw = Checksum.ReadRaw16(msg, 4);
                request.SuggestedPortRaw = Checksum.ReadRaw16(msg, 6);
                request.Lifetime = BinaryPrimitives.ReadUInt32BigEndian(msg[8..]);
                return Parse.Ok;
            default:
                return Parse.UnsupportedOpcode;
        }
    }

    /// <summary>Writes the common response head: version 0, opcode + 128, <paramref name="result"/>, seconds since the epoch started.</summary>
    private static void WriteHead(Span<byte> msg, byte opcode, NatPmpResultCode result, uint epoch)
    {
        msg[0] = PcpWire.NatPmpVersion;
        msg[1] = (byte)(opcode | 0x80);
        BinaryPrimitives.WriteUInt16BigEndian(msg[2..], (ushort)result);
        BinaryPrimitives.WriteUInt32BigEndian(msg[4..], epoch);
    }

    /// <summary>The external address response (section 3.2): 12 bytes. <paramref name="external"/> network order (0 with an error).</summary>
    public static int WriteAddress(Span<byte> msg, NatPmpResultCode result, uint epoch, uint external)
    {
        WriteHead(msg, PcpWire.NatPmpOpAddress, result, epoch);
        Checksum.WriteRaw32(msg, 8, external);
        return PcpWire.NatPmpAddressResponseLength;
    }

    /// <summary>
    /// A mapping response (section 3.3): 16 bytes, the internal port echoed, the mapped external
    /// port and the granted lifetime (both 0 with an error or a deletion).
    /// </summary>
    public static int WriteMapping(Span<byte> msg, byte opcode, NatPmpResultCode result, uint epoch, ushort internalPortRaw, ushort externalPortRaw, uint lifetime)
    {
        WriteHead(msg, opcode, result, epoch);
        Checksum.WriteRaw16(msg, 8, internalPortRaw);
        Checksum.WriteRaw16(msg, 10, externalPortRaw);
        BinaryPrimitives.WriteUInt32BigEndian(msg[12..], lifetime);
        return PcpWire.NatPmpMapResponseLength;
    }

    /// <summary>An error with no body (unsupported opcode): version, opcode + 128, result, epoch; 8 bytes.</summary>
    public static int WriteError(Span<byte> msg, byte opcode, NatPmpResultCode result, uint epoch)
    {
        WriteHead(msg, opcode, result, epoch);
        return PcpWire.NatPmpErrorResponseLength;
    }
}
