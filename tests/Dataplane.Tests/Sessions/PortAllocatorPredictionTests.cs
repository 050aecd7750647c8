using Natd.Dataplane.Sessions;

namespace Natd.Tests.Sessions;

/// <summary>
/// <see cref="PortAllocator.PredictPort"/>: the start of a future <see cref="PortAllocator.Allocate"/>
/// (what a new flow's prefetch loads), without changing which ports are allocated.
/// </summary>
public class PortAllocatorPredictionTests
{
    [Fact]
    public void Predictions_interleaved_anywhere_leave_the_ports_allocated_unchanged()
    {
        var plain = new PortAllocator(3, 1024, 65535, seed: 42);
        var peeked = new PortAllocator(3, 1024, 65535, seed: 42);
        var rng = new Random(7);
        for (int i = 0; i < 5000; i++)
        {
            int address = rng.Next(3), cls = rng.Next(3);
            bool privileged = rng.Next(10) == 0;
            for (int p = rng.Next(4); p > 0; p--)
            {
                _ = peeked.PredictPort(rng.Next(2) == 0, rng.Next(8));
            }
            if (rng.Next(5) == 0)
            {
                // AllocateInRange draws from the same generator: its order must hold too.
                Assert.Equal(plain.AllocateInRange(address, cls, 30000, 30999), peeked.AllocateInRange(address, cls, 30000, 30999));
                continue;
            }
            Assert.Equal(plain.Allocate(address, cls, privileged), peeked.Allocate(address, cls, privileged));
        }
        Assert.Equal(plain.InUse(1, 1), peeked.InUse(1, 1));
    }

    [Fact]
    public void The_kth_prediction_is_where_the_kth_next_allocation_starts()
    {
        var ports = new PortAllocator(1, 1024, 65535, seed: 9);
        int[] predicted = new int[8];
        for (int k = 7; k >= 0; k--)
        {
            predicted[k] = ports.PredictPort(privileged: false, k); // out of order on purpose
        }
        for (int k = 0; k < 8; k++)
        {
            // The table is almost empty, so the start port is free and is the one taken.
            Assert.Equal(predicted[k], ports.Allocate(0, 1, privileged: false));
        }
        int privilegedPort = ports.PredictPort(privileged: true, 0);
        Assert.InRange(privilegedPort, 1, 1023);
        Assert.Equal(privilegedPort, ports.Allocate(0, 0, privileged: true));
        Assert.Equal(-1, ports.PredictPort(privileged: false, 8));
        Assert.Equal(-1, ports.PredictPort(privileged: false, -1));
    }
}
