using Natd.Dataplane.Workers;
using Natd.Dataplane.Rings;

namespace Natd.Tests.Workers;

public class SpscRingTests
{
    [Fact]
    public void Full_ring_refuses_and_keeps_order()
    {
        var r = new SpscRing<long>(4);
        for (long i = 0; i < 4; i++)
        {
            Assert.True(r.TryEnqueue(i));
        }
        Assert.False(r.TryEnqueue(99));
        Assert.Equal(4, r.Count);
        for (long i = 0; i < 4; i++)
        {
            Assert.True(r.TryDequeue(out long v));
            Assert.Equal(i, v);
        }
        Assert.False(r.TryDequeue(out _));
    }

    [Fact]
    public void Producer_and_consumer_threads_see_every_item_once_in_order()
    {
        const long N = 200_000;
        var r = new SpscRing<long>(1024);
        var producer = new Thread(() =>
        {
            for (long i = 0; i < N;)
            {
                if (r.TryEnqueue(i))
                {
                    i++;
                }
            }
        });
        producer.Start();
        long expected = 0;
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (expected < N && DateTime.UtcNow < deadline)
        {
            if (r.TryDequeue(out long v))
            {
                Assert.Equal(expected, v);
                expected++;
            }
        }
        Assert.True(producer.Join(TimeSpan.FromSeconds(10)));
        Assert.Equal(N, expected);
    }
}
