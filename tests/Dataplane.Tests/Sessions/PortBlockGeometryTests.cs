using Natd.Dataplane.Sessions;

namespace Natd.Tests.Sessions;

/// <summary>
/// A block's address and low port come from a multiply (no division on the new-session path):
/// they must agree with the plain arithmetic for every block of every geometry.
/// </summary>
public class PortBlockGeometryTests
{
    [Theory]
    [InlineData(1, 1024, 65535, 0, 1, 512)]    // 126 blocks per address
    [InlineData(32, 1024, 65535, 1, 2, 256)]   // step 2, shard 1
    [InlineData(7, 1024, 65535, 2, 3, 100)]    // an odd size and step
    [InlineData(3, 1024, 2047, 0, 1, 1024)]    // one block per address
    [InlineData(5, 1024, 65535, 0, 1, 1)]      // a block per port: 64,512 per address
    [InlineData(250, 1024, 65535, 3, 4, 64)]   // many addresses
    public void Address_and_low_port_agree_with_division(int addresses, int low, int high, int shard, int shards, int size)
    {
        var blocks = new PortBlocks(addresses, low, high, shard, shards, size);
        var g = BlockGeometry.Of(low, high, shard, shards, size);
        Assert.Equal(g.PerAddress, blocks.PerAddress);
        Assert.True(blocks.CurrentCount > 0);
        for (int b = 0; b < blocks.CurrentCount; b++)
        {
            Assert.Equal(b / g.PerAddress, blocks.AddressOf(b));
            int expectedLow = g.First + (b % g.PerAddress) * size * shards;
            Assert.Equal(expectedLow, blocks.Low(b));
            Assert.Equal(expectedLow + (size - 1) * shards, blocks.High(b));
            Assert.Equal(shard, blocks.Low(b) % shards); // every port of the block is this shard's
        }
    }
}
