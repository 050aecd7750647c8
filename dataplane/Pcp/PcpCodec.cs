using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using Natd.Dataplane.Packets;

namespace Natd.Dataplane.Pcp;

/// <summary>
/// A FILTER (RFC 6887 section 13.3): remotes in <see cref="Prefix"/>/<see cref="PrefixLength"/>
/// (IPv4, network order, counted over the IPv4 address: 0-32) from <see cref="PortRaw"/> (network
/// order; 0 any port) may use the mapping.
/// </summary>
public readonly record struct PcpFilter(uint Prefix, byte PrefixLength, ushort PortRaw)
{
    /// <summary>True when <paramref name="remote"/> (network order) from <paramref name="remotePortRaw"/> passes.</summary>
    public bool Admits(uint remote, ushort remotePortRaw)
    {
        uint mask = Ipv4.FromHostOrder(PrefixLength == 0 ? 0u : uint.MaxValue << (32 - PrefixLength));
        return (remote & mask) == (Prefix & mask) && (PortRaw == 0 || PortRaw == remotePortRaw);
    }
}

/// <summary>Room for the FILTER options of one request (more is EXCESSIVE_REMOTE_PEERS).</summary>
[InlineArray(PcpRequest.MaxFilters)]
public struct PcpFilters
{
    private PcpFilter _first;
}

/// <summary>
/// A PCP request as parsed by <see cref="PcpCodec.ParseRequest"/>: the common header, the MAP or
/// PEER fields (addresses IPv4, network order; ports raw, network order) and the options natd
/// processes. The nonce stays in the message (bytes 24-35), which the reply is built over.
/// </summary>
public struct PcpRequest
{
    /// <summary>FILTER options one mapping may carry.</summary>
    public const int MaxFilters = 8;

    /// <summary>Opcode (0 ANNOUNCE, 1 MAP, 2 PEER).</summary>
    public byte Opcode;
    /// <summary>Requested lifetime, seconds.</summary>
    public uint Lifetime;
    /// <summary>The PCP client's address field, when IPv4-mapped (else <see cref="ClientIsIpv4"/> is false).</summary>
    public uint ClientAddress;
    /// <summary>Whether the client address field is an IPv4-mapped address.</summary>
    public bool ClientIsIpv4;
    /// <summary>Transport protocol (MAP/PEER); 0 all.</summary>
    public byte Protocol;
    /// <summary>Internal port, raw.</summary>
    public ushort InternalPortRaw;
    /// <summary>Suggested external port, raw (0 none).</summary>
    public ushort SuggestedPortRaw;
    /// <summary>Suggested external address when IPv4-mapped, else 0.</summary>
    public uint SuggestedAddress;
    /// <summary>PEER: the remote peer's port, raw.</summary>
    public ushort PeerPortRaw;
    /// <summary>PEER: the remote peer's address (IPv4-mapped only; else the request is malformed).</summary>
    public uint PeerAddress;
    /// <summary>THIRD_PARTY was present.</summary>
    public bool HasThirdParty;
    /// <summary>THIRD_PARTY's internal address (IPv4-mapped only).</summary>
    public uint ThirdPartyAddress;
    /// <summary>PREFER_FAILURE was present.</summary>
    public bool PreferFailure;
    /// <summary>FILTER options, the first <see cref="FilterCount"/>.</summary>
    public PcpFilters Filters;
    /// <summary>FILTER options present.</summary>
    public int FilterCount;
    /// <summary>Length of the reply's options once unknown optional options are left out (written in place by the parse).</summary>
    public int OptionsLength;
}

/// <summary>
/// The PCP codec (RFC 6887 sections 7, 11-14): parses a request in place and writes the response
/// over it. Every malformed input maps to the result code RFC 6887 section 8.3 names, or to
/// silence; nothing here throws or allocates. Addresses on the wire are IPv6 or IPv4-mapped
/// (::ffff:a.b.c.d); natd is an IPv4 NAT, so an address that is not IPv4-mapped never matches.
/// </summary>
public static class PcpCodec
{
    /// <summary>How <see cref="ParseRequest"/> ended: answer, stay silent, or hand to NAT-PMP.</summary>
    public enum Parse : byte
    {
        /// <summary>A valid request: <see cref="PcpRequest"/> is filled.</summary>
        Ok,
        /// <summary>Answer with the error code returned beside it.</summary>
        Error,
        /// <summary>Say nothing (RFC 6887 section 8.3: shorter than 2 bytes, or the R bit set).</summary>
        Silent,
        /// <summary>Version 0: a NAT-PMP request (RFC 6887 Appendix A), for <see cref="NatPmpCodec"/>.</summary>
        NatPmp,
    }

    /// <summary>
    /// Parses the PCP request <paramref name="msg"/> (the UDP payload). Checks, in the order of RFC
    /// 6887 section 8.3: length &lt; 2 or R bit: silent; version 0: NAT-PMP; another version than 2:
    /// UNSUPP_VERSION; length &lt; 24, &gt; 1100 or not a multiple of 4: MALFORMED_REQUEST; opcode:
    /// UNSUPP_OPCODE; too short for the opcode or a bad field: MALFORMED_REQUEST; then the options
    /// (unknown mandatory: UNSUPP_OPTION; bad length, repeated, not valid for the opcode, or an
    /// address not IPv4-mapped: MALFORMED_OPTION; more FILTERs than <see cref="PcpRequest.MaxFilters"/>:
    /// EXCESSIVE_REMOTE_PEERS). Unknown optional options (128-255) are dropped from the message
    /// (it is compacted in place), so the reply echoes only the options processed.
    /// </summary>
    /// <param name="msg">The request; compacted in place when optional options are dropped.</param>
    /// <param name="request">The parsed request (meaningful when <see cref="Parse.Ok"/>; its <see cref="PcpRequest.Opcode"/> whenever the header was read).</param>
    /// <param name="error">The result code when <see cref="Parse.Error"/>.</param>
    public static Parse ParseRequest(Span<byte> msg, out PcpRequest request, out PcpResultCode error)
    {
        request = default;
        error = PcpResultCode.Success;
        if (msg.Length < 2 || (msg[1] & PcpWire.ResponseBit) != 0)
        {
            return Parse.Silent;
        }
        request.Opcode = (byte)(msg[1] & 0x7F);
        if (msg[0] == PcpWire.NatPmpVersion)
        {
            return Parse.NatPmp;
        }
        if (msg[0] != PcpWire.Version)
        {
            return Fail(PcpResultCode.UnsuppVersion, out error);
        }
        if (msg.Length < PcpWire.HeaderLength || msg.Length > PcpWire.MaxLength || (msg.Length & 3) != 0)
        {
            return Fail(PcpResultCode.MalformedRequest, out error);
        }
        request.Lifetime = BinaryPrimitives.ReadUInt32BigEndian(msg[4..]);
        request.ClientIsIpv4 = TryMapped(msg.Slice(8, 16), out request.ClientAddress);
        int body = request.Opcode switch
        {
            PcpWire.OpAnnounce => PcpWire.HeaderLength,
            PcpWire.OpMap => PcpWire.MapLength,
            PcpWire.OpPeer => PcpWire.PeerLength,
            _ => -1,
        };
        if (body < 0)
        {
            return Fail(PcpResultCode.UnsuppOpcode, out error);
        }
        if (msg.Length < body)
        {
            return Fail(PcpResultCode.MalformedRequest, out error);
        }
        if (request.Opcode != PcpWire.OpAnnounce)
        {
            request.Protocol = msg[36];
            request.InternalPortRaw = Checksum.ReadRaw16(msg, 40);
            request.SuggestedPortRaw = Checksum.ReadRaw16(msg, 42);
            TryMapped(msg.Slice(44, 16), out request.SuggestedAddress);
            if (request.Protocol == 0 && request.InternalPortRaw != 0)
            {
                return Fail(PcpResultCode.MalformedRequest, out error); // "all protocols" has no port (section 11.1)
            }
            if (request.Opcode == PcpWire.OpPeer)
            {
                request.PeerPortRaw = Checksum.ReadRaw16(msg, 60);
                if (!TryMapped(msg.Slice(64, 16), out request.PeerAddress) || request.Protocol == 0 || request.InternalPortRaw == 0
                    || (request.PeerPortRaw == 0 && request.Protocol is IpProtocol.Tcp or IpProtocol.Udp))
                {
                    return Fail(PcpResultCode.MalformedRequest, out error); // a PEER names one flow (section 12.2)
                }
            }
        }
        PcpResultCode options = ParseOptions(msg, body, ref request);
        if (options != PcpResultCode.Success)
        {
            return Fail(options, out error);
        }
        return Parse.Ok;
    }

    private static Parse Fail(PcpResultCode code, out PcpResultCode error)
    {
        error = code;
        return Parse.Error;
    }

    /// <summary>Walks the options from <paramref name="start"/>, compacting the kept ones in place (<see cref="PcpRequest.OptionsLength"/>).</summary>
    private static PcpResultCode ParseOptions(Span<byte> msg, int start, ref PcpRequest r)
    {
        int read = start, write = start;
        while (read < msg.Length)
        {
            if (msg.Length - read < 4)
            {
                return PcpResultCode.MalformedOption;
            }
            byte code = msg[read];
            int len = BinaryPrimitives.ReadUInt16BigEndian(msg[(read + 2)..]);
            int padded = (len + 3) & ~3;
            if (padded > msg.Length - read - 4)
            {
                return PcpResultCode.MalformedOption; // runs past the message
            }
            ReadOnlySpan<byte> data = msg.Slice(read + 4, len);
            bool keep = true;
            switch (code)
            {
                case PcpWire.OptThirdParty:
                    if (len != 16 || r.HasThirdParty || r.Opcode == PcpWire.OpAnnounce || !TryMapped(data, out r.ThirdPartyAddress))
                    {
                        return PcpResultCode.MalformedOption;
                    }
                    r.HasThirdParty = true;
                    break;
                case PcpWire.OptPreferFailure:
                    if (len != 0 || r.PreferFailure || r.Opcode != PcpWire.OpMap)
                    {
                        return PcpResultCode.MalformedOption;
                    }
                    r.PreferFailure = true;
                    break;
                case PcpWire.OptFilter:
                    if (len != 20 || r.Opcode != PcpWire.OpMap)
                    {
                        return PcpResultCode.MalformedOption;
                    }
                    if (!TryFilter(data, out PcpFilter f))
                    {
                        return PcpResultCode.MalformedOption;
                    }
                    if (r.FilterCount == PcpRequest.MaxFilters)
                    {
                        return PcpResultCode.ExcessiveRemotePeers;
                    }
                    r.Filters[r.FilterCount++] = f;
                    break;
                default:
                    if (code < 128)
                    {
                        return PcpResultCode.UnsuppOption; // mandatory to process (section 7.3)
                    }
                    keep = false; // optional and unknown: ignored, and not echoed
                    break;
            }
            int size = 4 + padded;
            if (keep)
            {
                if (write != read)
                {
                    msg.Slice(read, size).CopyTo(msg[write..]);
                }
                write += size;
            }
            read += size;
        }
        r.OptionsLength = write - start;
        return PcpResultCode.Success;
    }

    /// <summary>
    /// A FILTER's data: reserved, prefix length, port, address. The address must be IPv4-mapped;
    /// the prefix length counts over the 128 bits (96-128) or, as libpcp sends it, over the IPv4
    /// address (0-32). Anything else is malformed.
    /// </summary>
    private static bool TryFilter(ReadOnlySpan<byte> data, out PcpFilter filter)
    {
        filter = default;
        int len = data[1];
        if (!TryMapped(data.Slice(4, 16), out uint address))
        {
            return false;
        }
        if (len >= 96 && len <= 128)
        {
            len -= 96;
        }
        else if (len > 32)
        {
            return false;
        }
        filter = new PcpFilter(address, (byte)len, Checksum.ReadRaw16(data, 2));
        return true;
    }

    /// <summary>True when the 16 bytes at <paramref name="field"/> are ::ffff:a.b.c.d; <paramref name="address"/> is a.b.c.d (network order).</summary>
    public static bool TryMapped(ReadOnlySpan<byte> field, out uint address)
    {
        address = Checksum.ReadRaw32(field, 12);
        bool mapped = Checksum.ReadRaw32(field, 0) == 0 && Checksum.ReadRaw32(field, 4) == 0
            && field[8] == 0 && field[9] == 0 && field[10] == 0xFF && field[11] == 0xFF;
        if (!mapped)
        {
            address = 0;
        }
        return mapped;
    }

    /// <summary>Writes ::ffff:<paramref name="address"/> (network order) into the 16 bytes at <paramref name="field"/>.</summary>
    public static void WriteMapped(Span<byte> field, uint address)
    {
        field[..10].Clear();
        field[10] = 0xFF;
        field[11] = 0xFF;
        Checksum.WriteRaw32(field, 12, address);
    }

    /// <summary>
    /// Turns the request in <paramref name="msg"/> into its response in place (RFC 6887 section
    /// 7.2): version 2, R bit and the request's opcode, <paramref name="result"/>, the lifetime
    /// (<paramref name="lifetime"/> on success; 30 s or 30 min on a short- or long-lifetime error,
    /// section 7.4), <paramref name="epoch"/> and zero reserved bytes. The rest of the request (its
    /// nonce, opcode fields and options) is left as it was: an error reply echoes it (up to 1100
    /// bytes, cut to a multiple of 4), a success reply has its assigned fields written over it by
    /// the caller.
    /// </summary>
    /// <param name="msg">The request's buffer, at least 24 bytes (a shorter request is padded with zeros).</param>
    /// <param name="requestLength">The request's length in bytes.</param>
    /// <param name="opcode">The request's opcode.</param>
    /// <param name="result">The result code.</param>
    /// <param name="lifetime">Granted lifetime, seconds (success only).</param>
    /// <param name="epoch">The server's epoch time, seconds.</param>
    /// <returns>The response's length.</returns>
    public static int WriteResponse(Span<byte> msg, int requestLength, byte opcode, PcpResultCode result, uint lifetime, uint epoch)
    {
        int length = Math.Min(requestLength, PcpWire.MaxLength) & ~3;
        if (length < PcpWire.HeaderLength)
        {
            msg[Math.Max(0, requestLength)..PcpWire.HeaderLength].Clear();
            length = PcpWire.HeaderLength;
        }
        if (result == PcpResultCode.UnsuppVersion)
        {
            length = PcpWire.HeaderLength; // nothing else of an unknown version can be read (Appendix A)
        }
        msg[0] = PcpWire.Version;
        msg[1] = (byte)(PcpWire.ResponseBit | (opcode & 0x7F));
        msg[2] = 0;
        msg[3] = (byte)result;
        uint life = result == PcpResultCode.Success ? lifetime
            : PcpWire.IsShortLifetime(result) ? PcpWire.ShortErrorLifetime : PcpWire.LongErrorLifetime;
        BinaryPrimitives.WriteUInt32BigEndian(msg[4..], life);
        BinaryPrimitives.WriteUInt32BigEndian(msg[8..], epoch);
        msg[12..24].Clear();
        return length;
    }

    /// <summary>
    /// Writes an unsolicited ANNOUNCE response (RFC 6887 section 14.1.3: SUCCESS, lifetime 0, the
    /// new epoch) into <paramref name="msg"/> (24 bytes).
    /// </summary>
    public static int WriteAnnounce(Span<byte> msg, uint epoch)
    {
        msg[..PcpWire.HeaderLength].Clear();
        return WriteResponse(msg, PcpWire.HeaderLength, PcpWire.OpAnnounce, PcpResultCode.Success, 0, epoch);
    }

    /// <summary>Writes a MAP or PEER success's assigned external port and address over the request's suggested ones.</summary>
    public static void WriteAssigned(Span<byte> msg, ushort externalPortRaw, uint externalAddress)
    {
        Checksum.WriteRaw16(msg, 42, externalPortRaw);
        WriteMapped(msg.Slice(44, 16), externalAddress);
    }
}
