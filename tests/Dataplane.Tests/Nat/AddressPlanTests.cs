using Natd.Dataplane.Nat;
using Natd.Dataplane.Packets;
using Natd.Tests.Support;

namespace Natd.Tests.Nat;

/// <summary>The address plan on its own: next hops (on-link or gateway), pool lookups small and large, own addresses, and a reload.</summary>
public class AddressPlanTests
{
    private static uint A(string s) => Ipv4.Parse(s);

    [Fact]
    public void OutsideNextHopIsTheHostOnLinkElseTheGatewayElseNone()
    {
        var s = EngineHarness.LabSettings(); // outside 198.51.100.1/24, gateway .254
        var plan = new AddressPlan(s, 1);
        Assert.Equal(A("198.51.100.7"), plan.NextHopOutside(A("198.51.100.7")));
        Assert.Equal(A("198.51.100.254"), plan.NextHopOutside(A("203.0.113.5")));

        plan.Update(s with { Outside = s.Outside with { Gateway = 0 } });
        Assert.Equal(0u, plan.NextHopOutside(A("203.0.113.5"))); // no route
        Assert.Equal(A("198.51.100.7"), plan.NextHopOutside(A("198.51.100.7")));
    }

    [Fact]
    public void InsideNextHopIsTheHostOnLinkElseTheInsideGatewayWhenOneIsSet()
    {
        var s = EngineHarness.LabSettings();
        s = s with { Inside = s.Inside with { Networks = [Ipv4Prefix.Parse("10.0.0.0/24"), Ipv4Prefix.Parse("10.9.0.0/16")] } };
        var plan = new AddressPlan(s, 1);
        Assert.Equal(A("10.9.1.1"), plan.NextHopInside(A("10.9.1.1"))); // no inside gateway: the host itself
        Assert.Equal(A("10.0.0.2"), plan.NextHopInside(A("10.0.0.2")));

        plan.Update(s with { Inside = s.Inside with { Gateway = A("10.0.0.254") } });
        Assert.Equal(A("10.0.0.254"), plan.NextHopInside(A("10.9.1.1")));
        Assert.Equal(A("10.0.0.2"), plan.NextHopInside(A("10.0.0.2")));
        Assert.True(plan.InInsideNetworks(A("10.9.1.1")));
        Assert.False(plan.InInsideNetworks(A("10.10.0.1")));
    }

    [Theory]
    [InlineData(3)]
    [InlineData(300)] // past the scan limit: the hash index answers
    public void PoolIndexOfFindsEveryPoolAddressAndNothingElse(int size)
    {
        var s = EngineHarness.LabSettings();
        uint[] pool = [.. Enumerable.Range(0, size).Select(i => Ipv4.FromHostOrder(0xC633_6400u + 10 + (uint)i))]; // 198.51.100.10...
        var plan = new AddressPlan(s with { Pool = pool }, 1);
        for (int i = 0; i < size; i++)
        {
            Assert.Equal(i, plan.PoolIndexOf(pool[i]));
            Assert.True(plan.IsOwnAddress(pool[i]));
        }
        Assert.Equal(-1, plan.PoolIndexOf(A("192.0.2.1")));
        Assert.Equal(-1, plan.PoolIndexOf(A("198.51.100.9")));
        Assert.InRange(plan.PoolIndexFor(A("10.0.0.2")), 0, size - 1);
        Assert.Equal(plan.PoolIndexFor(A("10.0.0.2")), plan.PoolIndexFor(A("10.0.0.2"))); // paired pooling
    }

    [Theory]
    [InlineData(1u)]      // addresses next to each other: the direct index
    [InlineData(7u)]      // every seventh address: the direct index, with gaps answered -1
    [InlineData(4099u)]   // spread over more than 65,536 addresses: the hash index
    public void PoolIndexOfAgreesWithAScanWhateverThePoolsShape(uint stride)
    {
        var s = EngineHarness.LabSettings();
        // 40 addresses from 100.64.0.0 in a shuffled order, with one duplicate (the scan's first index wins).
        var rng = new Random(7);
        uint[] distinct = [.. Enumerable.Range(0, 40).Select(i => 0x6440_0000u + (uint)i * stride).OrderBy(_ => rng.Next())];
        uint[] pool = [.. distinct.Select(Ipv4.FromHostOrder), Ipv4.FromHostOrder(distinct[5])];
        var plan = new AddressPlan(s with { Pool = pool }, 1);
        uint low = distinct.Min(), high = distinct.Max();
        for (uint h = low - 3; h <= Math.Min(high + 3, low + 400_000); h += h < low + 1000 || h > high - 1000 ? 1u : 97u)
        {
            int expected = Array.IndexOf(pool, Ipv4.FromHostOrder(h));
            Assert.Equal(expected, plan.PoolIndexOf(Ipv4.FromHostOrder(h)));
        }
        Assert.Equal(5, plan.PoolIndexOf(pool[40])); // the duplicate answers its first position
        Assert.Equal(-1, plan.PoolIndexOf(A("203.0.113.1")));
        Assert.Equal(-1, plan.PoolIndexOf(0));
        Assert.Equal(-1, plan.PoolIndexOf(uint.MaxValue));
    }

    [Fact]
    public void AnEmptyPoolHoldsNothing()
    {
        var s = EngineHarness.LabSettings();
        var plan = new AddressPlan(s with { Pool = [] }, 1);
        Assert.Equal(-1, plan.PoolIndexOf(0));
        Assert.Equal(-1, plan.PoolIndexOf(A("198.51.100.1")));
        Assert.Equal(-1, plan.PoolIndexOf(uint.MaxValue));
    }

    [Fact]
    public void AReloadReplacesOwnAddressesPoolAndSourceFilter()
    {
        var s = EngineHarness.LabSettings();
        var plan = new AddressPlan(s, 1);
        Assert.True(plan.IsOwnAddress(A("198.51.100.1")));
        Assert.Equal(DropReason.Martian, plan.CheckOutsideSource(A("198.51.100.1"))); // spoofing natd
        Assert.Equal(AddressPlan.Ok, plan.CheckOutsideSource(A("192.0.2.50")));

        var next = s with
        {
            Outside = s.Outside with { Address = Ipv4Prefix.Parse("192.0.2.1/24"), Gateway = A("192.0.2.254") },
            Pool = [A("192.0.2.1")],
        };
        plan.Update(next);
        Assert.False(plan.IsOwnAddress(A("198.51.100.1")));
        Assert.True(plan.IsOwnAddress(A("192.0.2.1")));
        Assert.Equal(A("192.0.2.1"), plan.OutsideAddress);
        Assert.Equal(0, plan.PoolIndexOf(A("192.0.2.1")));
        Assert.Equal(DropReason.Martian, plan.CheckOutsideSource(A("192.0.2.1")));
        Assert.Equal(AddressPlan.Ok, plan.CheckOutsideSource(A("198.51.100.1")));
        Assert.Equal(DropReason.PrivateSource, plan.CheckOutsideSource(A("172.16.0.5")));
        Assert.Equal(DropReason.Martian, plan.CheckOutsideSource(A("10.0.0.5"))); // the inside network
    }

    /// <summary>
    /// The outside source filter (with its first-octet shortcut) against the rule written out
    /// plainly: own addresses, then the outside link, then the inside prefixes, then private
    /// sources unless allowed. Random plans, including prefixes shorter than /8 (a shortcut bit
    /// per octet they span) and reloads between them, and sources drawn next to every prefix.
    /// </summary>
    [Fact]
    public void The_outside_source_filter_agrees_with_its_rule_on_random_plans()
    {
        var rng = new Random(20261207);
        var s = EngineHarness.LabSettings();
        var plan = new AddressPlan(s, 1);
        for (int round = 0; round < 200; round++)
        {
            Ipv4Prefix RandomPrefix(int minLength) => Prefix((uint)rng.NextInt64(0, 1L << 32), rng.Next(minLength, 33));
            var next = s with
            {
                Inside = s.Inside with
                {
                    Address = Prefix((uint)rng.NextInt64(0, 1L << 32), rng.Next(8, 31)),
                    Networks = [.. Enumerable.Range(0, rng.Next(0, 4)).Select(_ => RandomPrefix(rng.Next(2) == 0 ? 4 : 8))],
                },
                Outside = s.Outside with { Address = Prefix((uint)rng.NextInt64(0, 1L << 32), rng.Next(8, 31)) },
                Pool = [.. Enumerable.Range(0, rng.Next(1, 4)).Select(_ => Ipv4.FromHostOrder((uint)rng.NextInt64(0, 1L << 32)))],
                MartianFilter = rng.Next(2) == 0 ? MartianFilter.Strict : MartianFilter.Off,
                AllowedOutsideSources = [.. Enumerable.Range(0, rng.Next(0, 3)).Select(_ => RandomPrefix(8))],
            };
            plan.Update(next);

            var near = new List<uint>();
            foreach (Ipv4Prefix p in next.Inside.Networks.Concat([next.Inside.Address, next.Outside.Address]).Concat(next.AllowedOutsideSources).Concat(PrivateSources.Ranges))
            {
                uint low = Ipv4.ToHostOrder(p.Address & p.Mask);
                near.Add(low);
                near.Add(low + (uint)rng.Next(0, 256));
                near.Add(low - 1);
            }
            near.AddRange(next.Pool.Select(Ipv4.ToHostOrder));
            for (int i = 0; i < 200; i++)
            {
                near.Add((uint)rng.NextInt64(0, 1L << 32));
            }
            foreach (uint h in near)
            {
                uint src = Ipv4.FromHostOrder(h);
                Assert.True(Rule(next, src) == plan.CheckOutsideSource(src), $"round {round}: source {Ipv4.Format(src)}");
            }
        }
    }

    private static Ipv4Prefix Prefix(uint hostOrder, int length) => new(Ipv4.FromHostOrder(hostOrder), length);

    /// <summary>The filter as its documentation states it, every list scanned.</summary>
    private static DropReason Rule(NatSettings s, uint src)
    {
        static bool In(Ipv4Prefix p, uint a) => (a & p.Mask) == (p.Address & p.Mask);
        if (src == s.Inside.Address.Address || src == s.Outside.Address.Address || s.Pool.Contains(src))
        {
            return DropReason.Martian;
        }
        if (In(s.Outside.Address, src))
        {
            return AddressPlan.Ok;
        }
        if (In(s.Inside.Address, src) || s.Inside.Networks.Any(p => In(p, src)))
        {
            return DropReason.Martian;
        }
        if (s.MartianFilter == MartianFilter.Strict && PrivateSources.Ranges.Any(p => In(p, src)) && !s.AllowedOutsideSources.Any(p => In(p, src)))
        {
            return DropReason.PrivateSource;
        }
        return AddressPlan.Ok;
    }

    [Theory]
    [InlineData("0.1.2.3", true)]
    [InlineData("127.0.0.1", true)]
    [InlineData("224.0.0.1", true)]
    [InlineData("255.255.255.255", true)]
    [InlineData("10.0.0.1", false)]
    [InlineData("223.255.255.255", false)]
    public void MartiansAreZeroLoopbackAndMulticastUp(string address, bool martian)
        => Assert.Equal(martian, AddressPlan.IsMartian(A(address)));
}
