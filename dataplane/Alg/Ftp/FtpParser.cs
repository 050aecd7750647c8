namespace Natd.Dataplane.Alg.Ftp;

/// <summary>
/// Parsers for the FTP lines that carry data-connection endpoints: PORT and the 227 reply
/// (RFC 959 section 4.1.2, 4.2; RFC 1123 section 4.1.2.6), EPRT and the 229 reply (RFC 2428).
/// Lines are given without their terminator. Nothing throws; a malformed line just fails.
/// </summary>
internal static class FtpParser
{
    /// <summary>A parsed endpoint and where its text sits in the line.</summary>
    internal struct Endpoint
    {
        /// <summary>IPv4 address, network order (0 for 229, which carries none).</summary>
        public uint Address;
        /// <summary>Port, host order.</summary>
        public int Port;
        /// <summary>Offset of the first byte of the endpoint text.</summary>
        public int Start;
        /// <summary>Offset just past the endpoint text.</summary>
        public int End;
        /// <summary>EPRT delimiter.</summary>
        public byte Delimiter;
    }

    /// <summary>Result of recognising a line.</summary>
    internal enum Match : byte
    {
        /// <summary>Not this command or reply.</summary>
        None,
        /// <summary>This command or reply, but malformed or unsupported.</summary>
        Bad,
        /// <summary>Parsed.</summary>
        Ok,
    }

    /// <summary>"PORT h1,h2,h3,h4,p1,p2" (command case-insensitive, trailing spaces allowed).</summary>
    public static Match ParsePort(ReadOnlySpan<byte> line, out Endpoint endpoint)
    {
        endpoint = default;
        if (!IsCommand(line, "PORT"u8))
        {
            return Match.None;
        }
        int pos = 4;
        if (AsciiText.SkipSpaces(line, ref pos) == 0)
        {
            return Match.Bad;
        }
        endpoint.Start = pos;
        if (!TryParseSixNumbers(line, ref pos, out endpoint.Address, out endpoint.Port) || !AsciiText.OnlySpacesFrom(line, pos))
        {
            return Match.Bad;
        }
        endpoint.End = pos;
        return endpoint.Port == 0 ? Match.Bad : Match.Ok;
    }

    /// <summary>
    /// "EPRT &lt;d&gt;1&lt;d&gt;a.b.c.d&lt;d&gt;port&lt;d&gt;" with any delimiter in ASCII 33..126 (RFC 2428 section 2).
    /// Protocol 2 (IPv6) and anything else are <see cref="Match.Bad"/>. The endpoint range covers
    /// first to last delimiter.
    /// </summary>
    public static Match ParseEprt(ReadOnlySpan<byte> line, out Endpoint endpoint)
    {
        endpoint = default;
        if (!IsCommand(line, "EPRT"u8))
        {
            return Match.None;
        }
        int pos = 4;
        if (AsciiText.SkipSpaces(line, ref pos) == 0 || pos >= line.Length)
        {
            return Match.Bad;
        }
        byte d = line[pos];
        if (d is < 33 or > 126)
        {
            return Match.Bad;
        }
        endpoint.Start = pos;
        endpoint.Delimiter = d;
        pos++;
        if (pos + 2 > line.Length || line[pos] != (byte)'1' || line[pos + 1] != d)
        {
            return Match.Bad; // "2" is IPv6, which natd does not translate
        }
        pos += 2;
        if (!TryParseDottedQuad(line, ref pos, out endpoint.Address) || pos >= line.Length || line[pos] != d)
        {
            return Match.Bad;
        }
        pos++;
        if (!AsciiText.TryParseDecimal(line, ref pos, 5, out ulong port) || port is 0 or > 65535
            || pos >= line.Length || line[pos] != d)
        {
            return Match.Bad;
        }
        pos++;
        endpoint.Port = (int)port;
        endpoint.End = pos;
        return AsciiText.OnlySpacesFrom(line, pos) ? Match.Ok : Match.Bad;
    }

    /// <summary>
    /// "227 text h1,h2,h3,h4,p1,p2 text": the reply text varies, so (as RFC 1123 section 4.1.2.6
    /// advises) the six numbers are searched for after the code.
    /// </summary>
    public static Match Parse227(ReadOnlySpan<byte> line, out Endpoint endpoint)
    {
        endpoint = default;
        if (!IsReply(line, "227"u8))
        {
            return Match.None;
        }
        for (int i = 3; i < line.Length; i++)
        {
            if (!AsciiText.IsDigit(line[i]) || AsciiText.IsDigit(line[i - 1]))
            {
                continue;
            }
            int pos = i;
            if (TryParseSixNumbers(line, ref pos, out endpoint.Address, out endpoint.Port))
            {
                endpoint.Start = i;
                endpoint.End = pos;
                return endpoint.Port == 0 ? Match.Bad : Match.Ok;
            }
        }
        return Match.Bad;
    }

    /// <summary>"229 text (&lt;d&gt;&lt;d&gt;&lt;d&gt;port&lt;d&gt;)" (RFC 2428 section 3).</summary>
    public static Match Parse229(ReadOnlySpan<byte> line, out Endpoint endpoint)
    {
        endpoint = default;
        if (!IsReply(line, "229"u8))
        {
            return Match.None;
        }
        for (int i = 3; i < line.Length; i++)
        {
            if (line[i] != (byte)'(' || i + 4 >= line.Length)
            {
                continue;
            }
            byte d = line[i + 1];
            if (d is < 33 or > 126 || line[i + 2] != d || line[i + 3] != d)
            {
                continue;
            }
            int pos = i + 4;
            if (AsciiText.TryParseDecimal(line, ref pos, 5, out ulong port) && port is > 0 and <= 65535
                && pos + 1 < line.Length && line[pos] == d && line[pos + 1] == (byte)')')
            {
                endpoint.Port = (int)port;
                endpoint.Start = i;
                endpoint.End = pos + 2;
                endpoint.Delimiter = d;
                return Match.Ok;
            }
        }
        return Match.Bad;
    }

    /// <summary>True when <paramref name="line"/> is <paramref name="command"/> followed by a space or nothing.</summary>
    private static bool IsCommand(ReadOnlySpan<byte> line, ReadOnlySpan<byte> command)
        => AsciiText.StartsWithIgnoreCase(line, command) && (line.Length == command.Length || line[command.Length] == (byte)' ');

    /// <summary>True when <paramref name="line"/> is a reply with <paramref name="code"/> (single line "227 " or first line "227-").</summary>
    private static bool IsReply(ReadOnlySpan<byte> line, ReadOnlySpan<byte> code)
        => line.StartsWith(code) && (line.Length == 3 || line[3] is (byte)' ' or (byte)'-');

    private static bool TryParseSixNumbers(ReadOnlySpan<byte> text, ref int pos, out uint address, out int port)
    {
        address = 0;
        port = 0;
        Span<byte> n = stackalloc byte[6];
        int p = pos;
        for (int k = 0; k < 6; k++)
        {
            if (k > 0)
            {
                if (p >= text.Length || text[p] != (byte)',')
                {
                    return false;
                }
                p++;
            }
            if (!AsciiText.TryParseDecimal(text, ref p, 3, out ulong v) || v > 255)
            {
                return false;
            }
            n[k] = (byte)v;
        }
        if (p < text.Length && (AsciiText.IsDigit(text[p]) || text[p] == (byte)','))
        {
            return false; // a seventh number or more digits: not the six numbers
        }
        address = Packets.Checksum.ReadRaw32(n, 0);
        port = (n[4] << 8) | n[5];
        pos = p;
        return true;
    }

    private static bool TryParseDottedQuad(ReadOnlySpan<byte> text, ref int pos, out uint address)
    {
        address = 0;
        Span<byte> n = stackalloc byte[4];
        int p = pos;
        for (int k = 0; k < 4; k++)
        {
            if (k > 0)
            {
                if (p >= text.Length || text[p] != (byte)'.')
                {
                    return false;
                }
                p++;
            }
            if (!AsciiText.TryParseDecimal(text, ref p, 3, out ulong v) || v > 255)
            {
                return false;
            }
            n[k] = (byte)v;
        }
        address = Packets.Checksum.ReadRaw32(n, 0);
        pos = p;
        return true;
    }
}
