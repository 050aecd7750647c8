namespace Natd.Dataplane.Alg.Irc;

/// <summary>
/// Parser for CTCP DCC offers in IRC client lines (RFC 1459/2812 message syntax; DCC itself has
/// no RFC, the de facto format is <c>PRIVMSG target :\x01DCC SEND|CHAT argument ip port [size [token]]\x01</c>
/// with the IPv4 address as a decimal 32-bit number in host order). Nothing throws.
/// </summary>
internal static class DccParser
{
    /// <summary>What was found in a line.</summary>
    internal enum Match : byte
    {
        /// <summary>No DCC SEND or CHAT offer.</summary>
        None,
        /// <summary>A DCC SEND or CHAT offer with a malformed address or port.</summary>
        Bad,
        /// <summary>A parsed offer.</summary>
        Ok,
    }

    /// <summary>A parsed offer: the address, port and where "ip port" sits in the line.</summary>
    internal struct Offer
    {
        /// <summary>Offered address, network order.</summary>
        public uint Address;
        /// <summary>Offered port, host order (0: passive DCC).</summary>
        public int Port;
        /// <summary>Offset of the address text.</summary>
        public int Start;
        /// <summary>Offset just past the port text.</summary>
        public int End;
    }

    /// <summary>Finds a DCC SEND or CHAT offer in a PRIVMSG line (without its terminator).</summary>
    public static Match Parse(ReadOnlySpan<byte> line, out Offer offer)
    {
        offer = default;
        int pos = 0;
        if (pos < line.Length && line[pos] == (byte)':')
        {
            // A prefix (":nick!user@host ") is legal from clients, if unusual.
            int space = line.IndexOf((byte)' ');
            if (space < 0)
            {
                return Match.None;
            }
            pos = space;
            AsciiText.SkipSpaces(line, ref pos);
        }
        if (!AsciiText.StartsWithIgnoreCase(line[pos..], "PRIVMSG "u8))
        {
            return Match.None;
        }
        pos += 8;
        AsciiText.SkipSpaces(line, ref pos);
        int targetStart = pos;
        while (pos < line.Length && line[pos] != (byte)' ')
        {
            pos++;
        }
        if (pos == targetStart)
        {
            return Match.None;
        }
        AsciiText.SkipSpaces(line, ref pos);
        if (!line[pos..].StartsWith(":\u0001"u8))
        {
            return Match.None;
        }
        pos += 2;
        if (!AsciiText.StartsWithIgnoreCase(line[pos..], "DCC "u8))
        {
            return Match.None;
        }
        pos += 4;
        AsciiText.SkipSpaces(line, ref pos);
        if (!AsciiText.StartsWithIgnoreCase(line[pos..], "SEND "u8) && !AsciiText.StartsWithIgnoreCase(line[pos..], "CHAT "u8))
        {
            return Match.None; // RESUME, ACCEPT and others carry no address
        }
        pos += 5;
        AsciiText.SkipSpaces(line, ref pos);
        // The file name (or "chat"), possibly quoted because it holds spaces.
        if (pos < line.Length && line[pos] == (byte)'"')
        {
            int close = line[(pos + 1)..].IndexOf((byte)'"');
            if (close < 0)
            {
                return Match.Bad;
            }
            pos += close + 2;
        }
        else
        {
            int argStart = pos;
            while (pos < line.Length && line[pos] is not (byte)' ' and not 1)
            {
                pos++;
            }
            if (pos == argStart)
            {
                return Match.Bad;
            }
        }
        if (AsciiText.SkipSpaces(line, ref pos) == 0)
        {
            return Match.Bad;
        }
        offer.Start = pos;
        if (!AsciiText.TryParseDecimal(line, ref pos, 10, out ulong ip) || ip > uint.MaxValue || AsciiText.SkipSpaces(line, ref pos) == 0)
        {
            return Match.Bad;
        }
        if (!AsciiText.TryParseDecimal(line, ref pos, 5, out ulong port) || port > 65535)
        {
            return Match.Bad;
        }
        offer.End = pos;
        // What follows is an optional size and token, then the closing \x01.
        if (pos >= line.Length || line[pos] is not (byte)' ' and not 1 || line[pos..].IndexOf((byte)1) < 0)
        {
            return Match.Bad;
        }
        offer.Address = Packets.Ipv4.FromHostOrder((uint)ip);
        offer.Port = (int)port;
        return Match.Ok;
    }
}
