using FsCheck;
using FsCheck.Fluent;
using Natd.Dataplane.Nat;
using Natd.Dataplane.Packets;
using Natd.Tests.Support;

namespace Natd.Tests.Nat;

/// <summary>
/// <see cref="DeterministicMap"/> (RFC 7422): the documented formula, reverse(forward(s)) == s,
/// ranges that never overlap and stay inside nat.ports and the pool, and validation messages that
/// show the arithmetic.
/// </summary>
public class DeterministicMapTests
{
    /// <summary>Settings with <paramref name="poolSize"/> consecutive pool addresses from 198.18.0.0.</summary>
    internal static NatSettings Settings(string[] inside, int poolSize, int ports = 0, int subscriberPrefix = 32, ushort portMin = 1024, ushort portMax = 65535)
    {
        var pool = new uint[poolSize];
        for (int a = 0; a < poolSize; a++)
        {
            pool[a] = Ipv4.FromHostOrder(Ipv4.ToHostOrder(Ipv4.Parse("198.18.0.0")) + (uint)a);
        }
        return EngineHarness.LabSettings() with
        {
            Pool = pool,
            PortMin = portMin,
            PortMax = portMax,
            Cgnat = new CgnatSettings
            {
                SubscriberPrefix = subscriberPrefix,
                Allocation = PortAllocation.Deterministic,
                Deterministic = new DeterministicSettings([.. inside.Select(Ipv4Prefix.Parse)], ports),
            },
        };
    }

    [Fact]
    public void The_formula_numbers_subscribers_across_prefixes_and_fills_each_address_in_turn()
    {
        // 256 + 64 subscribers on 4 addresses: K = ceil(320 / 4) = 80, P = floor(64512 / 80) = 806.
        var map = DeterministicMap.For(Settings(["10.64.0.0/24", "10.65.0.0/26"], 4))!;
        Assert.Equal(320, map.Subscribers);
        Assert.Equal(806, map.PortsPerSubscriber);
        Assert.Equal(80, map.SubscribersPerAddress);
        Assert.Equal(1024, map.FirstPort);

        Assert.True(map.TryForward(Ipv4.Parse("10.64.0.0"), out var r0));
        Assert.Equal("10.64.0.0 198.18.0.0:1024-1829", r0.ToString());
        Assert.True(map.TryForward(Ipv4.Parse("10.64.0.81"), out var r81)); // i = 81: address 1, slot 1
        Assert.Equal("10.64.0.81 198.18.0.1:1830-2635", r81.ToString());
        Assert.True(map.TryForward(Ipv4.Parse("10.65.0.3"), out var r259)); // i = 256 + 3 = 259: address 3, slot 19
        Assert.Equal(259, r259.Index);
        Assert.Equal("10.65.0.3 198.18.0.3:" + (1024 + 19 * 806) + "-" + (1024 + 20 * 806 - 1), r259.ToString());
        Assert.False(map.TryForward(Ipv4.Parse("10.65.0.64"), out _));
        Assert.False(map.TryForward(Ipv4.Parse("10.0.0.2"), out _));
    }

    [Fact]
    public void Reverse_of_forward_is_the_subscriber_for_every_subscriber_of_a_slash_16()
    {
        // 65536 subscribers on 128 addresses: 512 per address, 126 ports each.
        var map = DeterministicMap.For(Settings(["10.64.0.0/16"], 128))!;
        Assert.Equal(126, map.PortsPerSubscriber);
        var owner = new Dictionary<(uint, int), long>();
        long lastHigh = -1;
        uint lastExternal = 0;
        for (uint h = 0; h < 65536; h++)
        {
            uint inside = Ipv4.FromHostOrder(Ipv4.ToHostOrder(Ipv4.Parse("10.64.0.0")) + h);
            Assert.True(map.TryForward(inside, out var r));
            Assert.Equal(inside, r.Subscriber);
            Assert.InRange(r.Low, 1024, 65535);
            Assert.InRange(r.High, r.Low, 65535);
            Assert.Equal(map.PortsPerSubscriber, r.High - r.Low + 1);
            Assert.Equal(Ipv4.FromHostOrder(Ipv4.ToHostOrder(Ipv4.Parse("198.18.0.0")) + (uint)r.PoolIndex), r.External);
            Assert.InRange(r.PoolIndex, 0, 127);
            // Ranges follow one another: on the same address each starts above the previous one's end.
            if (r.External == lastExternal)
            {
                Assert.True(r.Low > lastHigh, $"{r} overlaps the previous range ending at {lastHigh}");
            }
            lastExternal = r.External;
            lastHigh = r.High;
            foreach (int port in new[] { r.Low, r.High, (r.Low + r.High) / 2 })
            {
                Assert.True(map.TryReverse(r.External, port, out DeterministicRange back));
                Assert.Equal(inside, back.Subscriber);
                Assert.Equal(r, back);
            }
            Assert.True(owner.TryAdd((r.External, r.Low), h), $"{r} starts where another range starts");
        }
        // Every port of one address belongs to at most one subscriber.
        var firstAddress = new long[65536];
        Array.Fill(firstAddress, -1);
        foreach (var r in map.Table().Where(r => r.PoolIndex == 0))
        {
            for (int p = r.Low; p <= r.High; p++)
            {
                Assert.Equal(-1, firstAddress[p]);
                firstAddress[p] = r.Index;
                Assert.True(map.TryReverse(r.External, p, out long i));
                Assert.Equal(r.Index, i);
            }
        }
    }

    [Fact]
    public void Ports_outside_every_range_have_no_subscriber()
    {
        // 128 subscribers, 1000 ports each, 63 per address (63,001 usable): address 2 holds the last 2; 1 port at the top of each address is no one's.
        var map = DeterministicMap.For(Settings(["10.64.0.0/25"], 3, ports: 1000, portMin: 2000, portMax: 65000))!;
        Assert.Equal(128, map.Subscribers);
        Assert.Equal(63, map.SubscribersPerAddress);
        Assert.False(map.TryReverse(Ipv4.Parse("198.18.0.0"), 1999, out long _)); // below nat.ports
        Assert.True(map.TryReverse(Ipv4.Parse("198.18.0.0"), 2000, out long first));
        Assert.Equal(0, first);
        Assert.True(map.TryReverse(Ipv4.Parse("198.18.0.0"), 2000 + 63 * 1000 - 1, out long last));
        Assert.Equal(62, last);
        Assert.False(map.TryReverse(Ipv4.Parse("198.18.0.0"), 2000 + 63 * 1000, out long _)); // the remainder at the top
        Assert.True(map.TryReverse(Ipv4.Parse("198.18.0.2"), 3999, out long lastOne));
        Assert.Equal(127, lastOne);
        Assert.False(map.TryReverse(Ipv4.Parse("198.18.0.2"), 4000, out long _)); // beyond the last subscriber
        Assert.False(map.TryReverse(Ipv4.Parse("198.18.0.3"), 3000, out long _)); // not a pool address
        Assert.Equal(128, map.Table().Count());
    }

    [Fact]
    public void A_subscriber_prefix_shares_one_range_among_its_hosts()
    {
        var map = DeterministicMap.For(Settings(["10.64.0.0/24"], 1, subscriberPrefix: 30))!;
        Assert.Equal(64, map.Subscribers);
        Assert.Equal(1008, map.PortsPerSubscriber);
        Assert.True(map.TryForward(Ipv4.Parse("10.64.0.6"), out var a));
        Assert.True(map.TryForward(Ipv4.Parse("10.64.0.4"), out var b));
        Assert.Equal(a, b);
        Assert.Equal("10.64.0.4/30 198.18.0.0:2032-3039", a.ToString());
        Assert.True(map.TryReverse(a.External, 2500, out DeterministicRange back));
        Assert.Equal(Ipv4.Parse("10.64.0.4"), back.Subscriber);
    }

    [Theory]
    [InlineData(new[] { "10.64.0.0/10" }, 16, 0, 32, "10.64.0.0/10 holds 4194304 subscribers; 16 addresses x 64512 ports give 0 ports each, below the minimum of 64 (at most 16128 subscribers fit)")]
    [InlineData(new[] { "10.64.0.0/10" }, 16, 2000, 32, "nat.deterministic.ports 2000: 4194304 subscribers need 131072 addresses at 32 per address; the pool has 16")]
    [InlineData(new[] { "10.64.0.0/16", "10.64.3.0/24" }, 16, 0, 32, "10.64.3.0/24 overlaps 10.64.0.0/16")]
    [InlineData(new[] { "10.64.0.0/24" }, 1, 32, 32, "nat.deterministic.ports 32 is below the minimum of 64")]
    [InlineData(new[] { "10.64.0.0/24" }, 1, 65000, 32, "nat.deterministic.ports 65000 exceeds the 64512 usable ports")]
    [InlineData(new[] { "10.64.0.0/24" }, 1, 0, 16, "10.64.0.0/24 is smaller than one subscriber")]
    public void Impossible_maps_are_refused_with_the_arithmetic(string[] inside, int pool, int ports, int subscriberPrefix, string expected)
    {
        string? why = DeterministicMap.Validate(Settings(inside, pool, ports, subscriberPrefix));
        Assert.NotNull(why);
        Assert.Contains(expected, why, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => DeterministicMap.For(Settings(inside, pool, ports, subscriberPrefix)));
    }

    [Fact]
    public void Ports_below_1024_only_are_refused()
    {
        Assert.Contains("no port at or above 1024", DeterministicMap.Validate(Settings(["10.64.0.0/24"], 1, portMin: 100, portMax: 1000)), StringComparison.Ordinal);
    }

    [Fact]
    public void Other_modes_have_no_map()
    {
        var s = Settings(["10.64.0.0/24"], 1) with { Cgnat = new CgnatSettings() };
        Assert.Null(DeterministicMap.For(s));
        Assert.Null(DeterministicMap.Validate(s));
    }

    /// <summary>Random valid configurations: every sampled subscriber round-trips, and the whole table never overlaps and stays inside nat.ports and the pool.</summary>
    [Fact]
    public void Random_configurations_round_trip_and_never_overlap()
    {
        var gen =
            from prefixes in Gen.Choose(1, 3)
            from lengths in Gen.ArrayOf(Gen.Choose(20, 28), prefixes)
            from sub in Gen.Choose(28, 32)
            from pool in Gen.Choose(1, 64)
            from lo in Gen.Choose(1, 30000)
            from span in Gen.Choose(5000, 35000)
            from ports in Gen.Elements(0, 0, 64, 100, 500, 1000)
            select (lengths, sub, pool, lo, span, ports);
        Prop.ForAll(gen.ToArbitrary(), c =>
        {
            // Disjoint prefixes: the j-th in 10.j.0.0.
            string[] inside = [.. c.lengths.Select((l, j) => $"10.{j + 1}.0.0/{Math.Min(l, c.sub)}")];
            var s = Settings(inside, c.pool, c.ports, c.sub, (ushort)c.lo, (ushort)Math.Min(65535, c.lo + c.span));
            if (DeterministicMap.Validate(s) is not null)
            {
                Assert.Throws<ArgumentException>(() => DeterministicMap.For(s));
                return;
            }
            var map = DeterministicMap.For(s)!;
            long n = 0;
            int lastAddress = -1, lastHigh = 0;
            foreach (var r in map.Table())
            {
                n++;
                Assert.InRange(r.Low, Math.Max(1024, (int)s.PortMin), s.PortMax);
                Assert.InRange(r.High, r.Low, s.PortMax);
                Assert.Equal(s.Pool[r.PoolIndex], r.External);
                Assert.True(r.High - r.Low + 1 >= DeterministicMap.MinPortsPerSubscriber);
                // The table runs address by address, ranges ascending: each starts above the previous one's end.
                Assert.True(r.PoolIndex > lastAddress || (r.PoolIndex == lastAddress && r.Low > lastHigh), $"{r} overlaps or runs backwards");
                (lastAddress, lastHigh) = (r.PoolIndex, r.High);
                Assert.True(map.TryForward(r.Subscriber, out var f));
                Assert.Equal(r, f);
                Assert.True(map.TryReverse(r.External, r.High, out long back));
                Assert.Equal(r.Index, back);
            }
            Assert.Equal(map.Subscribers, n);
        }).QuickCheckThrowOnFailure();
    }
}
