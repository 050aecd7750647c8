using System.Buffers.Binary;
using System.Globalization;

namespace Natd.Dataplane.Packets;

/// <summary>
/// A 48-bit IEEE 802 MAC address held in the low 48 bits of a <see cref="ulong"/>, most significant
/// byte first as on the wire (byte 0 of the address is bits 47..40).
/// </summary>
public readonly record struct MacAddress(ulong Value)
{
    /// <summary>ff:ff:ff:ff:ff:ff.</summary>
    public static readonly MacAddress Broadcast = new(0xFFFF_FFFF_FFFFUL);

    /// <summary>00:00:00:00:00:00, used for "not known".</summary>
    public static readonly MacAddress Zero = new(0);

    /// <summary>True for the all-zero address.</summary>
    public bool IsZero => Value == 0;

    /// <summary>Reads 6 bytes in wire order.</summary>
    public static MacAddress Read(ReadOnlySpan<byte> src)
        => new(((ulong)BinaryPrimitives.ReadUInt16BigEndian(src) << 32) | BinaryPrimitives.ReadUInt32BigEndian(src[2..]));

    /// <summary>Writes 6 bytes in wire order.</summary>
    public void Write(Span<byte> dst)
    {
        BinaryPrimitives.WriteUInt16BigEndian(dst, (ushort)(Value >> 32));
        BinaryPrimitives.WriteUInt32BigEndian(dst[2..], (uint)Value);
    }

    /// <summary>Parses "aa:bb:cc:dd:ee:ff" (or '-' separated).</summary>
    /// <exception cref="FormatException">The text is not six hex octets.</exception>
    public static MacAddress Parse(string text)
    {
        if (!TryParse(text, out var mac))
        {
            throw new FormatException($"'{text}' is not a MAC address (expected aa:bb:cc:dd:ee:ff)");
        }
        return mac;
    }

    /// <summary>Parses "aa:bb:cc:dd:ee:ff" (or '-' separated); false when malformed.</summary>
    public static bool TryParse(string? text, out MacAddress mac)
    {
        mac = Zero;
        if (text is null || text.Length != 17)
        {
            return false;
        }
        ulong v = 0;
        for (int i = 0; i < 6; i++)
        {
            if (i > 0 && text[i * 3 - 1] != ':' && text[i * 3 - 1] != '-')
            {
                return false;
            }
            if (!byte.TryParse(text.AsSpan(i * 3, 2), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var b))
            {
                return false;
            }
            v = (v << 8) | b;
        }
        mac = new MacAddress(v);
        return true;
    }

    /// <inheritdoc />
    public override string ToString()
        => string.Create(CultureInfo.InvariantCulture,
            $"{(byte)(Value >> 40):x2}:{(byte)(Value >> 32):x2}:{(byte)(Value >> 24):x2}:{(byte)(Value >> 16):x2}:{(byte)(Value >> 8):x2}:{(byte)Value:x2}");
}
