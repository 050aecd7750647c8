using System.Runtime.CompilerServices;
using Natd.Dataplane.Sessions;
using Xunit;

namespace Natd.Dataplane.Tests.Sessions;

/// <summary>
/// The flow key's constructor writes the key as two 8-byte words (so a hash or compare right after
/// loads what it stored at the same width); the fields, the padding and the hash must be exactly
/// those of the documented layout.
/// </summary>
public class FlowKeyTests
{
    public static TheoryData<uint, uint, ushort, ushort, byte> Keys => new()
    {
        { 0x0100000Au, 0x0271_0FCBu, 0x3930, 0xBB01, 17 },
        { 0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFF, 0xFFFF, 255 },
        { 0u, 0u, 0, 0, 0 },
        { 0x0200A8C0u, 0x08080808u, 0x0001, 0x0000, 1 },
    };

    [Theory]
    [MemberData(nameof(Keys))]
    public void The_constructor_lays_out_the_fields_and_zero_padding(uint src, uint dst, ushort sport, ushort dport, byte proto)
    {
        var k = new FlowKey(src, dst, sport, dport, proto);

        Assert.Equal(src, k.Source);
        Assert.Equal(dst, k.Destination);
        Assert.Equal(sport, k.SourcePort);
        Assert.Equal(dport, k.DestinationPort);
        Assert.Equal(proto, k.Protocol);
        // Bytes 13..15 are padding: zero, or equal keys would compare unequal.
        Span<byte> bytes = stackalloc byte[16];
        Unsafe.WriteUnaligned(ref bytes[0], k);
        Assert.Equal(0, bytes[13]);
        Assert.Equal(0, bytes[14]);
        Assert.Equal(0, bytes[15]);
        Assert.Equal(src, BitConverter.ToUInt32(bytes[..4]));
        Assert.Equal(dst, BitConverter.ToUInt32(bytes[4..8]));
        Assert.Equal(sport, BitConverter.ToUInt16(bytes[8..10]));
        Assert.Equal(dport, BitConverter.ToUInt16(bytes[10..12]));
        Assert.Equal(proto, bytes[12]);
    }

    [Fact]
    public void A_key_built_over_dirty_memory_equals_and_hashes_as_a_fresh_one()
    {
        // The same key written over a slot that held another (all ones): no stale byte survives.
        Span<FlowKey> slot = stackalloc FlowKey[1];
        Unsafe.InitBlock(ref Unsafe.As<FlowKey, byte>(ref slot[0]), 0xFF, 16);
        slot[0] = new FlowKey(0x0100000Au, 0x0271_0FCBu, 0x3930, 0xBB01, 6);
        var fresh = new FlowKey(0x0100000Au, 0x0271_0FCBu, 0x3930, 0xBB01, 6);

        Assert.Equal(fresh, slot[0]);
        Assert.Equal(fresh.Hash(0x5eed), slot[0].Hash(0x5eed));
        Assert.NotEqual(fresh, new FlowKey(0x0100000Au, 0x0271_0FCBu, 0x3930, 0xBB01, 17));
        Assert.NotEqual(fresh.Reverse(), fresh);
        Assert.Equal(fresh, fresh.Reverse().Reverse());
    }
}
