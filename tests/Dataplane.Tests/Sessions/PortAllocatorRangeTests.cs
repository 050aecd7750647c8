using Natd.Dataplane.Sessions;

namespace Natd.Tests.Sessions;

/// <summary><see cref="PortAllocator.AllocateInRange(int, int, int, int)"/>: a deterministic subscriber's range (RFC 7422), random within it (RFC 6056).</summary>
public class PortAllocatorRangeTests
{
    [Fact]
    public void Every_port_of_the_range_is_handed_out_once_then_the_range_is_full()
    {
        var ports = new PortAllocator(2, 1024, 65535, seed: 5);
        var got = new HashSet<int>();
        for (int i = 0; i < 100; i++)
        {
            int p = ports.AllocateInRange(1, 1, 5000, 5099);
            Assert.InRange(p, 5000, 5099);
            Assert.True(got.Add(p));
        }
        Assert.Equal(-1, ports.AllocateInRange(1, 1, 5000, 5099));
        Assert.Equal(100, ports.InUse(1, 1));
        Assert.Equal(0, ports.InUse(0, 1)); // another address and
        Assert.InRange(ports.AllocateInRange(1, 0, 5000, 5099), 5000, 5099); // another protocol class are separate
        ports.Free(1, 1, 5050);
        Assert.Equal(5050, ports.AllocateInRange(1, 1, 5000, 5099));
    }

    [Fact]
    public void The_first_ports_are_random_not_the_bottom_of_the_range()
    {
        var ports = new PortAllocator(1, 1024, 65535, seed: 11);
        var first = new List<int>();
        for (int i = 0; i < 20; i++)
        {
            first.Add(ports.AllocateInRange(0, 1, 10000, 10999));
        }
        // Sequential allocation would give 10000..10019.
        Assert.True(first.Max() - first.Min() > 100, string.Join(",", first));
    }

    [Fact]
    public void A_prefetch_hint_takes_nothing_and_never_throws()
    {
        var ports = new PortAllocator(2, 1024, 65535, seed: 5);
        int taken = ports.AllocateInRange(1, 1, 5000, 5000);
        foreach (var (address, cls, port) in new[] { (1, 1, 5000), (0, 0, 1024), (2, 0, 5000), (-1, 1, 5000), (1, 3, 5000), (1, 1, -1), (1, 1, 65536) })
        {
            ports.Prefetch(address, cls, port); // out-of-range arguments (a stale block, a bad class) hint nothing
        }
        Assert.Equal(5000, taken);
        Assert.Equal(1, ports.InUse(1, 1));
        Assert.Equal(0, ports.InUse(0, 0));
        Assert.True(ports.IsUsed(1, 1, 5000));
        Assert.False(ports.IsUsed(0, 0, 1024));
    }
}
