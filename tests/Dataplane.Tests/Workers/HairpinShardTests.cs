using Akka.Actor;
using Natd.Dataplane.Io;
using Natd.Dataplane.Nat;
using Natd.Dataplane.Packets;
using Natd.Dataplane.Sessions;
using Natd.Dataplane.Workers;
using Natd.Tests.Support;
using static Natd.Tests.Support.Frames;

namespace Natd.Tests.Workers;

/// <summary>
/// RFC 4787 REQ-9 / RFC 5382 REQ-8 hairpinning through 1 and 2 pollers over in-memory ports: a
/// masqueraded frame is an outside arrival for the shard owning its destination (external address,
/// port), on the same shard or another, and reaches the inside host with both ends seeing external
/// endpoints only. Each frame is injected on every shard's inside port in turn, so both the
/// same-shard and the cross-shard handoff run whatever the hash puts where.
/// </summary>
public class HairpinShardTests
{
    private const string Ext = "198.51.100.1", Server = "10.0.0.2", Remote = "198.51.100.2";

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public async Task Udp_hairpin_to_a_forward_reaches_the_server_and_its_reply_the_client(int workers)
    {
        await using var gw = await ShardedGateway.StartAsync(workers, WithForward(17, 5000, 5000));
        int n = 0;
        foreach (string client in gw.Clients)
        {
            for (int rx = 0; rx < workers; rx++, n++)
            {
                int sport = 41000 + n;
                var o = await gw.SendInside(rx, Udp(client, sport, Ext, 5000, smac: ShardedGateway.MacOf(client), dmac: GatewayInsideMac));
                Assert.Equal(Server, Dst(o));
                Assert.Equal(5000, DstPort(o));
                Assert.Equal(Ext, Src(o)); // the server sees the client's external endpoint, never its inside address
                Assert.Equal(ShardedGateway.MacOf(Server), o[..6]);
                Assert.Equal(GatewayInsideMac, o[6..12]);
                Assert.True(ChecksumsValid(o));
                int clientExt = SrcPort(o);
                var back = await gw.SendInside(rx, Udp(Server, 5000, Ext, clientExt, smac: ShardedGateway.MacOf(Server), dmac: GatewayInsideMac));
                Assert.Equal(client, Dst(back));
                Assert.Equal(sport, DstPort(back));
                Assert.Equal(Ext, Src(back));
                Assert.Equal(5000, SrcPort(back));
                Assert.Equal(ShardedGateway.MacOf(client), back[..6]);
                Assert.True(ChecksumsValid(back));
            }
        }
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public async Task Tcp_hairpin_to_a_forward_carries_the_handshake_both_ways(int workers)
    {
        await using var gw = await ShardedGateway.StartAsync(workers, WithForward(6, 8080, 8000));
        int n = 0;
        foreach (string client in gw.Clients)
        {
            for (int rx = 0; rx < workers; rx++, n++)
            {
                int sport = 42000 + n;
                var syn = await gw.SendInside(rx, Tcp(client, sport, Ext, 8080, 0x02, smac: ShardedGateway.MacOf(client), dmac: GatewayInsideMac));
                Assert.Equal(Server, Dst(syn));
                Assert.Equal(8000, DstPort(syn));
                Assert.Equal(Ext, Src(syn));
                Assert.True(ChecksumsValid(syn));
                var synAck = await gw.SendInside(rx, Tcp(Server, 8000, Ext, SrcPort(syn), 0x12, ack: 1001, smac: ShardedGateway.MacOf(Server), dmac: GatewayInsideMac));
                Assert.Equal(client, Dst(synAck));
                Assert.Equal(sport, DstPort(synAck));
                Assert.Equal(Ext, Src(synAck));
                Assert.Equal(8080, SrcPort(synAck));
                Assert.True(ChecksumsValid(synAck));
            }
        }
    }

    [Theory]
    [InlineData(1, 17)]
    [InlineData(2, 17)]
    [InlineData(1, 6)]
    [InlineData(2, 6)]
    public async Task Hairpin_to_another_hosts_mapping_reaches_it_with_endpoint_independent_filtering(int workers, byte proto)
    {
        await using var gw = await ShardedGateway.StartAsync(workers, s => s with { Filtering = FilteringBehaviour.EndpointIndependent });
        int n = 0;
        foreach (string a in gw.Clients)
        {
            foreach (string b in gw.Clients)
            {
                if (a == b)
                {
                    continue;
                }
                for (int rx = 0; rx < workers; rx++, n++)
                {
                    // A opens a mapping to an outside server; B sends to A's external endpoint.
                    int aport = 30000 + n, bport = 50000 + n;
                    var opened = await gw.SendInside(rx, Make(proto, a, aport, Remote, 53, 0x02), Side.Outside);
                    Assert.Equal(Ext, Src(opened));
                    int aExt = SrcPort(opened);
                    var o = await gw.SendInside(rx, Make(proto, b, bport, Ext, aExt, 0x02));
                    Assert.Equal(a, Dst(o));
                    Assert.Equal(aport, DstPort(o));
                    Assert.Equal(Ext, Src(o)); // A sees B's external endpoint
                    Assert.Equal(ShardedGateway.MacOf(a), o[..6]);
                    Assert.True(ChecksumsValid(o));
                    int bExt = SrcPort(o);
                    var back = await gw.SendInside(rx, Make(proto, a, aport, Ext, bExt, 0x12));
                    Assert.Equal(b, Dst(back));
                    Assert.Equal(bport, DstPort(back));
                    Assert.Equal(Ext, Src(back));
                    Assert.Equal(aExt, SrcPort(back));
                    Assert.True(ChecksumsValid(back));
                }
            }
        }
    }

    private static byte[] Make(byte proto, string src, int sport, string dst, int dport, byte tcpFlags)
        => proto == 6
            ? Tcp(src, sport, dst, dport, tcpFlags, ack: tcpFlags == 0x12 ? 1001u : 0, smac: ShardedGateway.MacOf(src), dmac: GatewayInsideMac)
            : Udp(src, sport, dst, dport, smac: ShardedGateway.MacOf(src), dmac: GatewayInsideMac);

    private static Func<NatSettings, NatSettings> WithForward(byte proto, ushort external, ushort backendPort) => s => s with
    {
        Forwards =
        [
            new PortForward
            {
                Protocol = proto, ExternalAddress = Ipv4.Parse(Ext), ExternalPorts = new PortRange(external, external),
                Backends = [new(Ipv4.Parse(Server), backendPort)],
            },
        ],
    };
}

/// <summary>
/// N pollers over in-memory port pairs wired as the daemon wires them (one engine per shard, a
/// ShardLinks with the router, the same steering seed), with static neighbours for the inside hosts
/// 10.0.0.2-10.0.0.9 (MAC 02:00:00:00:01:xx) and the outside host.
/// </summary>
internal sealed class ShardedGateway : IAsyncDisposable
{
    private static readonly TimeSpan Limit = TimeSpan.FromSeconds(10);
    private readonly ActorSystem _system;
    private readonly ShardLinks? _links;
    private readonly Wakeup? _wake;
    private readonly (ConcurrentPort Inside, ConcurrentPort Outside)[] _ports;

    private ShardedGateway(ActorSystem system, ShardLinks? links, Wakeup? wake, (ConcurrentPort, ConcurrentPort)[] ports, IReadOnlyList<string> clients, ShardMap router)
    {
        Router = router;
        _system = system;
        _links = links;
        _wake = wake;
        _ports = ports;
        Clients = clients;
    }

    /// <summary>The pollers' shard map.</summary>
    public ShardMap Router { get; }

    /// <summary>Injects <paramref name="frame"/> on shard <paramref name="rx"/>'s port of <paramref name="side"/>.</summary>
    public void Inject(int rx, Side side, byte[] frame) => (side == Side.Inside ? _ports[rx].Inside : _ports[rx].Outside).Inject(frame);

    /// <summary>Waits for <paramref name="count"/> frames transmitted on <paramref name="side"/> (any shard's port), then checks nothing more comes.</summary>
    public async Task<List<byte[]>> Take(Side side, int count)
    {
        var got = new List<byte[]>();
        var deadline = DateTime.UtcNow + Limit;
        while (got.Count < count && DateTime.UtcNow < deadline)
        {
            foreach (var (inside, outside) in _ports)
            {
                while ((side == Side.Inside ? inside : outside).TryTake(out var f))
                {
                    got.Add(f);
                }
            }
            await Task.Delay(2);
        }
        await Task.Delay(20);
        foreach (var (i2, o2) in _ports)
        {
            Assert.False(i2.TryTake(out _) || o2.TryTake(out _), $"exactly {count} frames out");
        }
        Assert.Equal(count, got.Count);
        return got;
    }

    /// <summary>Inside hosts to use as clients: at least one on each shard.</summary>
    public IReadOnlyList<string> Clients { get; }

    public static byte[] MacOf(string host) => [0x02, 0, 0, 0, 0x01, (byte)Ipv4.ToHostOrder(Ipv4.Parse(host))];

    public static Task<ShardedGateway> StartAsync(int shards, Func<NatSettings, NatSettings> tweak)
    {
        var s = tweak(EngineHarness.LabSettings());
        var inside = new List<KeyValuePair<uint, MacAddress>>();
        for (int h = 2; h <= 9; h++)
        {
            string a = $"10.0.0.{h}";
            inside.Add(new(Ipv4.Parse(a), MacAddress.Read(MacOf(a))));
        }
        s = s with
        {
            Inside = s.Inside with { Neighbours = inside },
            Outside = s.Outside with { Neighbours = [new(Ipv4.Parse("198.51.100.2"), MacAddress.Read(OutsideHostMac))] },
        };
        var router = new ShardMap(s, shards);
        var links = shards > 1 ? new ShardLinks(shards, router) : null;
        var wake = links is null ? new Wakeup() : null;
        var system = ActorSystem.Create("hairpin", PollerActor.Config);
        var ports = new (ConcurrentPort, ConcurrentPort)[shards];
        var pollers = new IActorRef[shards];
        var pairings = shards > 1 ? new PairingDirectory(shards) : null; // as the daemon shares it
        for (int k = 0; k < shards; k++)
        {
            var engine = new NatEngine(s, MacAddress.Read(GatewayInsideMac), MacAddress.Read(GatewayOutsideMac),
                new EngineOptions { Seed = (ulong)(7 + k), Shard = k, Shards = shards, Pairings = pairings });
            var pair = (new ConcurrentPort($"in{k}", MacAddress.Read(GatewayInsideMac)), new ConcurrentPort($"out{k}", MacAddress.Read(GatewayOutsideMac)));
            ports[k] = pair;
            var options = new PollerOptions { BatchSize = 8, IdleWaitMilliseconds = 1, Shard = k, Links = links, Wakeup = wake, GreOwner = k == 0 ? null : pollers[0] };
            pollers[k] = system.ActorOf(PollerActor.Props(engine, pair.Item1, pair.Item2, options, new PollerStats()), $"poller-{k}");
        }
        // Clients: 10.0.0.3-10.0.0.9 (not the forward's server), keeping the first two per shard.
        var clients = new List<string>();
        var perShard = new int[shards];
        for (int h = 3; h <= 9; h++)
        {
            string a = $"10.0.0.{h}";
            int owner = router.OwnerOfInside(Ipv4.Parse(a));
            if (perShard[owner]++ < 2)
            {
                clients.Add(a);
            }
        }
        Assert.All(perShard, c => Assert.True(c > 0, "every shard owns a client"));
        return Task.FromResult(new ShardedGateway(system, links, wake, ports, clients, router));
    }

    /// <summary>Injects <paramref name="frame"/> on shard <paramref name="rx"/>'s inside port and returns the one frame transmitted on <paramref name="expect"/> (any shard's port).</summary>
    public async Task<byte[]> SendInside(int rx, byte[] frame, Side expect = Side.Inside)
    {
        _ports[rx].Inside.Inject(frame);
        var deadline = DateTime.UtcNow + Limit;
        while (DateTime.UtcNow < deadline)
        {
            foreach (var (inside, outside) in _ports)
            {
                if ((expect == Side.Inside ? inside : outside).TryTake(out var f))
                {
                    await Task.Delay(20); // nothing else may come out
                    foreach (var (i2, o2) in _ports)
                    {
                        Assert.False(i2.TryTake(out _) || o2.TryTake(out _), "one frame in, one frame out");
                    }
                    return f;
                }
            }
            await Task.Delay(2);
        }
        Assert.Fail($"nothing transmitted on the {expect} for a frame from {Src(frame)}:{SrcPort(frame)} to {Dst(frame)}:{DstPort(frame)} received by shard {rx}");
        return [];
    }

    public async ValueTask DisposeAsync()
    {
        await _system.Terminate();
        _links?.Dispose();
        _wake?.Dispose();
        foreach (var (i, o) in _ports)
        {
            i.Dispose();
            o.Dispose();
        }
    }
}
