using Natd.Dataplane.Io;
using Natd.Dataplane.Nat;
using Natd.Dataplane.Packets;
using Natd.Tests.Support;
using static Natd.Tests.Support.Frames;

namespace Natd.Tests.Nat;

/// <summary>
/// What natd accepts from the outside (RFC 1812 section 5.3.7, RFC 2827 / BCP 38): only the outside
/// and pool addresses answer there, the inside address never does, and martian, spoofed and (by
/// default) private sources are dropped with a counted reason. Lab: inside 10.0.0.1/24, outside
/// 198.51.100.1/24, pool 198.51.100.1.
/// </summary>
public class IngressFilterTests
{
    private const string Public = "203.0.113.9";

    private static byte[] EchoFromOutside(string src, string dst) => EngineHarness.FromOutside(Icmp(src, dst, 8, 0, 0x4242, 1));

    /// <summary>Asserts an echo reply from <paramref name="from"/> to <paramref name="to"/> leaves the outside port.</summary>
    private static void AssertAnswered(EngineHarness h, byte[] request, string from, string to)
    {
        var v = h.Run(request, Side.Outside, out var o);
        Assert.True(v == Verdict.ToOutside, $"expected an echo reply, got {v} ({h.LastDrop})");
        Assert.Equal(from, Src(o));
        Assert.Equal(to, Dst(o));
        Assert.Equal(0, o[L4Offset(o)]); // echo reply
        Assert.Equal(OutsideHostMac, o[..6]);
        Assert.Equal(GatewayOutsideMac, o[6..12]);
        Assert.True(ChecksumsValid(o));
    }

    private static void AssertDropped(EngineHarness h, byte[] frame, DropReason reason)
    {
        long before = h.Drops(reason);
        var v = h.Run(frame, Side.Outside, out _);
        Assert.True(v == Verdict.Drop, $"expected a drop ({reason}), got {v}");
        Assert.Equal(reason, h.LastDrop);
        Assert.Equal(before + 1, h.Drops(reason));
        Assert.Equal(0, h.Engine.Table.Count);
    }

    [Fact]
    public void Echo_to_the_inside_address_from_outside_is_not_answered()
    {
        var h = new EngineHarness();
        AssertDropped(h, EchoFromOutside(Public, "10.0.0.1"), DropReason.InsideAddressFromOutside);
        Assert.Equal(0, h.Engine.Counters.EchoRepliesSent);
        // Any other protocol to it is refused the same way.
        AssertDropped(h, EngineHarness.FromOutside(Udp(Public, 5000, "10.0.0.1", 53)), DropReason.InsideAddressFromOutside);
    }

    [Fact]
    public void Echo_to_the_inside_address_from_inside_is_still_answered()
    {
        var h = new EngineHarness();
        var v = h.Run(Icmp(EngineHarness.InsideHost, "10.0.0.1", 8, 0, 7, 1), Side.Inside, out var o);
        Assert.Equal(Verdict.ToInside, v);
        Assert.Equal("10.0.0.1", Src(o));
    }

    [Fact]
    public void Echo_to_the_outside_address_from_a_public_source_is_answered_from_it()
    {
        var h = new EngineHarness();
        AssertAnswered(h, EchoFromOutside(Public, "198.51.100.1"), "198.51.100.1", Public);
        Assert.Equal(1, h.Engine.Counters.EchoRepliesSent);
    }

    [Fact]
    public void Echo_to_a_pool_address_is_answered_from_that_address()
    {
        var h = new EngineHarness(s => s with { Pool = [Ipv4.Parse("198.51.100.1"), Ipv4.Parse("198.51.100.10")] });
        AssertAnswered(h, EchoFromOutside(Public, "198.51.100.10"), "198.51.100.10", Public);
    }

    public static TheoryData<string, string, DropReason> MartianSources => new()
    {
        // class, source, reason
        { "rfc1918-10", "10.1.2.3", DropReason.PrivateSource },
        { "rfc1918-172.16-low", "172.16.0.1", DropReason.PrivateSource },
        { "rfc1918-172.16-high", "172.31.255.254", DropReason.PrivateSource },
        { "rfc1918-192.168", "192.168.1.1", DropReason.PrivateSource },
        { "rfc6598-low", "100.64.0.1", DropReason.PrivateSource },
        { "rfc6598-high", "100.127.255.254", DropReason.PrivateSource },
        { "link-local", "169.254.1.1", DropReason.PrivateSource },
        { "this-network", "0.1.2.3", DropReason.Martian },
        { "loopback", "127.0.0.1", DropReason.Martian },
        { "multicast", "224.0.0.1", DropReason.Martian },
        { "multicast-high", "239.255.255.250", DropReason.Martian },
        { "class-e", "240.0.0.1", DropReason.Martian },
        { "limited-broadcast", "255.255.255.255", DropReason.Martian },
        { "spoofed-inside-host", "10.0.0.5", DropReason.Martian },
        { "spoofed-inside-address", "10.0.0.1", DropReason.Martian },
        { "spoofed-outside-address", "198.51.100.1", DropReason.Martian },
    };

    [Theory]
    [MemberData(nameof(MartianSources))]
    public void Martian_sources_from_outside_are_dropped_and_counted(string what, string source, DropReason reason)
    {
        _ = what;
        var h = new EngineHarness();
        AssertDropped(h, EchoFromOutside(source, "198.51.100.1"), reason);
        AssertDropped(h, EngineHarness.FromOutside(Udp(source, 53, "198.51.100.1", 40000)), reason);
        AssertDropped(h, EngineHarness.FromOutside(Tcp(source, 80, "198.51.100.1", 40000, 0x12)), reason);
        Assert.Equal(0, h.Engine.Counters.EchoRepliesSent);
    }

    [Theory]
    // Just outside each range: public addresses, answered.
    [InlineData("9.255.255.255")]
    [InlineData("11.0.0.1")]
    [InlineData("172.15.255.254")]
    [InlineData("172.32.0.1")]
    [InlineData("192.167.255.254")]
    [InlineData("192.169.0.1")]
    [InlineData("100.63.255.254")]
    [InlineData("100.128.0.1")]
    [InlineData("169.253.255.254")]
    [InlineData("223.255.255.254")]
    public void Public_sources_next_to_the_filtered_ranges_are_answered(string source)
    {
        var h = new EngineHarness();
        AssertAnswered(h, EchoFromOutside(source, "198.51.100.1"), "198.51.100.1", source);
    }

    [Fact]
    public void A_reply_from_a_private_source_does_not_reach_an_existing_session()
    {
        var h = new EngineHarness(s => s with { AllowedOutsideSources = [Ipv4Prefix.Parse("192.168.0.0/16")] });
        var o = h.Out(Udp(EngineHarness.InsideHost, 40000, "192.168.50.5", 53));
        int port = SrcPort(o);
        // Allowed: the reply gets in.
        h.Out(EngineHarness.FromOutside(Udp("192.168.50.5", 53, "198.51.100.1", port)), Side.Outside);
        // The same flow to 10.9.9.9 (not allowed): the reply is dropped before the session lookup.
        var o2 = h.Out(Udp(EngineHarness.InsideHost, 40001, "10.9.9.9", 53));
        AssertDroppedKeepingSessions(h, EngineHarness.FromOutside(Udp("10.9.9.9", 53, "198.51.100.1", SrcPort(o2))), DropReason.PrivateSource);
    }

    private static void AssertDroppedKeepingSessions(EngineHarness h, byte[] frame, DropReason reason)
    {
        var v = h.Run(frame, Side.Outside, out _);
        Assert.Equal(Verdict.Drop, v);
        Assert.Equal(reason, h.LastDrop);
        Assert.Equal(1, h.Drops(reason));
    }

    /// <summary>A home router whose upstream is 192.168.1.0/24: the upstream link is always a valid source.</summary>
    private static NatSettings PrivateUpstream(NatSettings s) => s with
    {
        Outside = s.Outside with { Address = Ipv4Prefix.Parse("192.168.1.2/24"), Gateway = Ipv4.Parse("192.168.1.1") },
        Pool = [Ipv4.Parse("192.168.1.2")],
    };

    [Fact]
    public void The_outside_on_link_prefix_is_always_an_allowed_source()
    {
        var h = new EngineHarness(PrivateUpstream);
        AssertAnswered(h, EchoFromOutside("192.168.1.1", "192.168.1.2"), "192.168.1.2", "192.168.1.1");
        AssertAnswered(h, EchoFromOutside("192.168.1.77", "192.168.1.2"), "192.168.1.2", "192.168.1.77");
        // The rest of 192.168/16 is not the link.
        AssertDropped(h, EchoFromOutside("192.168.2.1", "192.168.1.2"), DropReason.PrivateSource);
        // natd's own address on that link is still spoofed.
        AssertDropped(h, EchoFromOutside("192.168.1.2", "192.168.1.2"), DropReason.Martian);
        AssertAnswered(h, EchoFromOutside(Public, "192.168.1.2"), "192.168.1.2", Public);
    }

    [Fact]
    public void Allowed_sources_admit_private_prefixes_and_nothing_else()
    {
        var h = new EngineHarness(s => s with { AllowedOutsideSources = [Ipv4Prefix.Parse("192.168.0.0/16"), Ipv4Prefix.Parse("100.64.0.0/10")] });
        AssertAnswered(h, EchoFromOutside("192.168.7.7", "198.51.100.1"), "198.51.100.1", "192.168.7.7");
        AssertAnswered(h, EchoFromOutside("100.100.1.1", "198.51.100.1"), "198.51.100.1", "100.100.1.1");
        AssertDropped(h, EchoFromOutside("10.1.1.1", "198.51.100.1"), DropReason.PrivateSource);
        AssertDropped(h, EchoFromOutside("127.0.0.1", "198.51.100.1"), DropReason.Martian);
    }

    [Fact]
    public void Allowed_sources_never_admit_the_inside()
    {
        var h = new EngineHarness(s => s with { AllowedOutsideSources = [Ipv4Prefix.Parse("10.0.0.0/8")] });
        AssertAnswered(h, EchoFromOutside("10.9.9.9", "198.51.100.1"), "198.51.100.1", "10.9.9.9");
        AssertDropped(h, EchoFromOutside("10.0.0.5", "198.51.100.1"), DropReason.Martian);
    }

    [Theory]
    [InlineData("10.1.2.3", null)]
    [InlineData("172.20.0.1", null)]
    [InlineData("192.168.9.9", null)]
    [InlineData("100.64.0.1", null)]
    [InlineData("169.254.1.1", null)]
    [InlineData("127.0.0.1", DropReason.Martian)]
    [InlineData("0.0.0.1", DropReason.Martian)]
    [InlineData("224.0.0.5", DropReason.Martian)]
    [InlineData("240.1.1.1", DropReason.Martian)]
    [InlineData("255.255.255.255", DropReason.Martian)]
    [InlineData("10.0.0.5", DropReason.Martian)]
    [InlineData("10.0.0.1", DropReason.Martian)]
    [InlineData("198.51.100.1", DropReason.Martian)]
    public void Martian_filter_off_admits_private_sources_only(string source, DropReason? reason)
    {
        var h = new EngineHarness(s => s with { MartianFilter = MartianFilter.Off });
        byte[] echo = EchoFromOutside(source, "198.51.100.1");
        if (reason is { } r)
        {
            AssertDropped(h, echo, r);
        }
        else
        {
            AssertAnswered(h, echo, "198.51.100.1", source);
        }
    }

    [Fact]
    public void Reload_switches_the_filter_at_once()
    {
        var h = new EngineHarness();
        NatSettings strict = h.Engine.Settings;
        AssertDropped(h, EchoFromOutside("192.168.7.7", "198.51.100.1"), DropReason.PrivateSource);

        Assert.Null(h.Engine.UpdateSettings(strict with { MartianFilter = MartianFilter.Off }));
        AssertAnswered(h, EchoFromOutside("192.168.7.7", "198.51.100.1"), "198.51.100.1", "192.168.7.7");

        Assert.Null(h.Engine.UpdateSettings(strict with { AllowedOutsideSources = [Ipv4Prefix.Parse("192.168.7.0/24")] }));
        AssertAnswered(h, EchoFromOutside("192.168.7.7", "198.51.100.1"), "198.51.100.1", "192.168.7.7");
        AssertDropped(h, EchoFromOutside("192.168.8.8", "198.51.100.1"), DropReason.PrivateSource);

        Assert.Null(h.Engine.UpdateSettings(strict));
        AssertDropped(h, EchoFromOutside("192.168.7.7", "198.51.100.1"), DropReason.PrivateSource);

        // A new pool is spoofed as a source at once, and the old address no longer is.
        Assert.Null(h.Engine.UpdateSettings(strict with { Pool = [Ipv4.Parse("198.51.100.20")] }));
        AssertDropped(h, EchoFromOutside("198.51.100.20", "198.51.100.1"), DropReason.Martian);
    }

    [Fact]
    public void A_large_pool_is_spoofed_as_a_source_in_full()
    {
        // 198.51.100.16 .. 198.51.100.47: a /28 and a /28 plus odd ends are covered exactly.
        var pool = Enumerable.Range(16, 32).Select(i => Ipv4.Parse($"198.51.100.{i}")).ToList();
        var h = new EngineHarness(s => s with { Pool = pool });
        foreach (int i in new[] { 16, 31, 32, 47 })
        {
            AssertDropped(h, EchoFromOutside($"198.51.100.{i}", "198.51.100.16"), DropReason.Martian);
        }
        AssertAnswered(h, EchoFromOutside("198.51.100.48", "198.51.100.16"), "198.51.100.16", "198.51.100.48");
        AssertAnswered(h, EchoFromOutside("198.51.100.15", "198.51.100.16"), "198.51.100.16", "198.51.100.15");
    }

    [Theory]
    [InlineData(new[] { "198.51.100.1" }, new[] { "198.51.100.1/32" })]
    [InlineData(new[] { "198.51.100.0", "198.51.100.1", "198.51.100.2", "198.51.100.3" }, new[] { "198.51.100.0/30" })]
    [InlineData(new[] { "198.51.100.3", "198.51.100.1", "198.51.100.2", "198.51.100.4" }, new[] { "198.51.100.1/32", "198.51.100.2/31", "198.51.100.4/32" })]
    [InlineData(new[] { "198.51.100.1", "198.51.100.9" }, new[] { "198.51.100.1/32", "198.51.100.9/32" })]
    [InlineData(new[] { "255.255.255.254", "255.255.255.255" }, new[] { "255.255.255.254/31" })]
    public void Pool_prefixes_cover_the_pool_exactly(string[] pool, string[] prefixes)
    {
        var got = AddressPlan.PoolPrefixes([.. pool.Select(Ipv4.Parse)]);
        Assert.Equal(prefixes, got.Select(p => p.ToString()));
    }

    [Fact]
    public void A_hairpinned_frame_from_the_pool_address_is_not_taken_for_spoofed()
    {
        // With several shards a hairpinned frame comes back as an outside arrival from the pool
        // address; the poller marks it, and only that mark lets it past the source filter.
        var h = new EngineHarness(s => s with
        {
            Forwards =
            [
                new PortForward
                {
                    Protocol = IpProtocol.Udp,
                    ExternalAddress = Ipv4.Parse("198.51.100.1"),
                    ExternalPorts = new PortRange(5000, 5000),
                    Backends = [new(Ipv4.Parse("10.0.0.3"), 0)],
                },
            ],
        });
        byte[] looped = EngineHarness.FromOutside(Udp("198.51.100.1", 30000, "198.51.100.1", 5000));
        AssertDropped(h, looped, DropReason.Martian);
        var v = h.Run(looped, Side.Outside, out var o, FrameFlags.Hairpinned);
        Assert.True(v == Verdict.ToInside, $"expected the forward, got {v} ({h.LastDrop})");
        Assert.Equal("10.0.0.3", Dst(o));
    }
}
