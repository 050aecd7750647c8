using System.Buffers.Binary;
using Natd.Dataplane.Io;
using Natd.Dataplane.Packets;

namespace Natd.Tests.Io;

/// <summary>
/// Test frames: ethertype 0x88B5 (IEEE local experimental) with a per-test nonce and a sequence
/// number, so stray kernel frames on a veth are told apart.
/// </summary>
internal sealed class TestFrames
{
    public const ushort EtherType = 0x88B5;

    public TestFrames(MacAddress source, MacAddress destination)
    {
        Source = source;
        Destination = destination;
        Nonce = (uint)Random.Shared.Next(1, int.MaxValue);
    }

    public MacAddress Source { get; }
    public MacAddress Destination { get; }
    public uint Nonce { get; }

    /// <summary>A frame of <paramref name="length"/> bytes (at least 22) carrying <paramref name="sequence"/>.</summary>
    public byte[] Make(int sequence, int length)
    {
        var f = new byte[length];
        Destination.Write(f);
        Source.Write(f.AsSpan(6));
        BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(12), EtherType);
        BinaryPrimitives.WriteUInt32BigEndian(f.AsSpan(14), Nonce);
        BinaryPrimitives.WriteInt32BigEndian(f.AsSpan(18), sequence);
        for (int i = 22; i < length; i++)
        {
            f[i] = (byte)(sequence * 31 + i);
        }
        return f;
    }

    /// <summary>The sequence number of one of our frames, or -1 for any other frame.</summary>
    public int SequenceOf(ReadOnlySpan<byte> frame)
    {
        if (frame.Length < 22 || BinaryPrimitives.ReadUInt16BigEndian(frame[12..]) != EtherType
            || BinaryPrimitives.ReadUInt32BigEndian(frame[14..]) != Nonce)
        {
            return -1;
        }
        return BinaryPrimitives.ReadInt32BigEndian(frame[18..]);
    }

    /// <summary>A length between 60 and 1514 that differs per sequence number.</summary>
    public static int LengthFor(int sequence) => 60 + (sequence * 97 % 1455);
}
