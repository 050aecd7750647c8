using System.Globalization;

namespace Natd.Dataplane.Alg;

/// <summary>Small ASCII helpers for the text control protocols ALGs parse (no culture, no allocation).</summary>
internal static class AsciiText
{
    /// <summary>True when <paramref name="text"/> starts with <paramref name="upperWord"/>, ASCII letters compared case-insensitively.</summary>
    public static bool StartsWithIgnoreCase(ReadOnlySpan<byte> text, ReadOnlySpan<byte> upperWord)
        => text.Length >= upperWord.Length && EqualsIgnoreCase(text[..upperWord.Length], upperWord);

    /// <summary>
    /// True when <paramref name="partial"/>, the start of a line still incomplete, may yet turn out to
    /// start with <paramref name="upperWord"/>: it does, or it is a (case-insensitive) prefix of it.
    /// </summary>
    public static bool CouldStartWith(ReadOnlySpan<byte> partial, ReadOnlySpan<byte> upperWord)
    {
        int n = Math.Min(partial.Length, upperWord.Length);
        return EqualsIgnoreCase(partial[..n], upperWord[..n]);
    }

    /// <summary>True when <paramref name="text"/> equals <paramref name="upperWord"/>, ASCII letters compared case-insensitively.</summary>
    public static bool EqualsIgnoreCase(ReadOnlySpan<byte> text, ReadOnlySpan<byte> upperWord)
    {
        if (text.Length != upperWord.Length)
        {
            return false;
        }
        for (int i = 0; i < text.Length; i++)
        {
            byte c = text[i];
            if (c is >= (byte)'a' and <= (byte)'z')
            {
                c -= 32;
            }
            if (c != upperWord[i])
            {
                return false;
            }
        }
        return true;
    }

    /// <summary>Index of <paramref name="upperWord"/> in <paramref name="text"/> (case-insensitive), or -1.</summary>
    public static int IndexOfIgnoreCase(ReadOnlySpan<byte> text, ReadOnlySpan<byte> upperWord)
    {
        for (int i = 0; i + upperWord.Length <= text.Length; i++)
        {
            if (EqualsIgnoreCase(text.Slice(i, upperWord.Length), upperWord))
            {
                return i;
            }
        }
        return -1;
    }

    /// <summary>True for an ASCII digit.</summary>
    public static bool IsDigit(byte c) => c is >= (byte)'0' and <= (byte)'9';

    /// <summary>
    /// Parses an unsigned decimal of 1..<paramref name="maxDigits"/> digits at
    /// <paramref name="text"/>[<paramref name="pos"/>..], advancing <paramref name="pos"/> past it.
    /// </summary>
    /// <returns>False (pos unchanged) when there is no digit or more than <paramref name="maxDigits"/>.</returns>
    public static bool TryParseDecimal(ReadOnlySpan<byte> text, ref int pos, int maxDigits, out ulong value)
    {
        value = 0;
        int i = pos;
        while (i < text.Length && IsDigit(text[i]))
        {
            if (i - pos == maxDigits)
            {
                return false;
            }
            value = value * 10 + (ulong)(text[i] - '0');
            i++;
        }
        if (i == pos)
        {
            return false;
        }
        pos = i;
        return true;
    }

    /// <summary>Skips spaces; returns how many.</summary>
    public static int SkipSpaces(ReadOnlySpan<byte> text, ref int pos)
    {
        int start = pos;
        while (pos < text.Length && text[pos] == (byte)' ')
        {
            pos++;
        }
        return pos - start;
    }

    /// <summary>True when only spaces remain from <paramref name="pos"/>.</summary>
    public static bool OnlySpacesFrom(ReadOnlySpan<byte> text, int pos)
    {
        SkipSpaces(text, ref pos);
        return pos == text.Length;
    }

    /// <summary>Writes <paramref name="value"/> in decimal at <paramref name="destination"/>[<paramref name="pos"/>..], advancing it.</summary>
    public static bool TryWriteDecimal(Span<byte> destination, ref int pos, ulong value)
    {
        if (pos > destination.Length || !value.TryFormat(destination[pos..], out int written, default, CultureInfo.InvariantCulture))
        {
            return false;
        }
        pos += written;
        return true;
    }

    /// <summary>Writes one byte at <paramref name="destination"/>[<paramref name="pos"/>], advancing it.</summary>
    public static bool TryWriteByte(Span<byte> destination, ref int pos, byte value)
    {
        if (pos >= destination.Length)
        {
            return false;
        }
        destination[pos++] = value;
        return true;
    }

    /// <summary>Writes a network-order IPv4 address as dotted quad (separator '.') or as FTP's h1,h2,h3,h4 (separator ',').</summary>
    public static bool TryWriteAddress(Span<byte> destination, ref int pos, uint networkOrder, byte separator)
    {
        uint h = Packets.Ipv4.ToHostOrder(networkOrder);
        return TryWriteDecimal(destination, ref pos, h >> 24) && TryWriteByte(destination, ref pos, separator)
            && TryWriteDecimal(destination, ref pos, (h >> 16) & 0xFF) && TryWriteByte(destination, ref pos, separator)
            && TryWriteDecimal(destination, ref pos, (h >> 8) & 0xFF) && TryWriteByte(destination, ref pos, separator)
            && TryWriteDecimal(destination, ref pos, h & 0xFF);
    }
}
