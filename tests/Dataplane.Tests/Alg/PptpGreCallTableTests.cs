using Natd.Dataplane.Alg;
using Natd.Dataplane.Alg.Pptp;

namespace Natd.Tests.Alg;

/// <summary>The GRE call table's bounds and bookkeeping.</summary>
public class PptpGreCallTableTests
{
    private static GreCall Call(uint inside, ushort ext, ushort server) => new(true, inside, 7, 0x0200000A, server, 0x0100000A, ext);

    [Fact]
    public void A_full_table_refuses_and_a_removal_frees_a_slot()
    {
        var t = new GreCallTable(capacity: 2);
        Assert.True(t.Add(Call(1, 10, 100), 0));
        Assert.True(t.Add(Call(2, 11, 101), 0));
        Assert.False(t.Add(Call(3, 12, 102), 0));
        Assert.True(t.Remove(Call(1, 10, 100) with { Add = false }));
        Assert.True(t.Add(Call(3, 12, 102), 0));
        Assert.Equal(2, t.Count);
        Assert.True(t.FindOut2In(0x0200000A, 0x0100000A, 12) >= 0);
        Assert.True(t.FindIn2Out(3, 0x0200000A, 102) >= 0);
        Assert.Equal(-1, t.FindOut2In(0x0200000A, 0x0100000A, 10));
    }

    [Fact]
    public void Registering_the_same_call_again_refreshes_it_without_a_second_slot()
    {
        var t = new GreCallTable(capacity: 4);
        Assert.True(t.Add(Call(1, 10, 100), 0));
        Assert.True(t.Add(Call(1, 10, 100), 500));
        Assert.Equal(1, t.Count);
        Assert.Equal(500, t.Entries[t.FindOut2In(0x0200000A, 0x0100000A, 10)].LastSeenMs);
    }

    [Fact]
    public void Expire_visits_a_bounded_slice_and_removes_only_idle_calls()
    {
        var t = new GreCallTable(capacity: 8);
        for (ushort i = 0; i < 8; i++)
        {
            t.Add(Call(i + 1u, (ushort)(20 + i), (ushort)(200 + i)), i < 4 ? 0 : 900);
        }
        Assert.Equal(2, t.Expire(1000, 500, budget: 2));
        Assert.Equal(2, t.Expire(1000, 500, budget: 6));
        Assert.Equal(4, t.Count);
        Assert.Equal(0, t.Expire(1000, 500, budget: 100));
        Assert.False(t.Add(Call(0, 1, 1), 0)); // incomplete: no inside address
    }
}
