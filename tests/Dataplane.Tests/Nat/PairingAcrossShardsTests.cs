using Natd.Control.Daemon;
using Natd.Dataplane.Io;
using Natd.Dataplane.Nat;
using Natd.Dataplane.Packets;
using Natd.Dataplane.Sessions;
using Natd.Dataplane.Workers;
using Natd.Tests.Control;
using Natd.Tests.Support;
using static Natd.Tests.Support.CgnatKit;
using static Natd.Tests.Support.Frames;

namespace Natd.Tests.Nat;

/// <summary>
/// Paired pooling (RFC 4787 REQ-2) across shards: a subscriber's TCP and UDP are allocated by the
/// shard that owns it, its port-less flows (ESP, GRE), ISAKMP and triggers live in shard 0, which
/// reads the owner's published pairing (<see cref="PairingDirectory"/>) for their address.
/// </summary>
public class PairingAcrossShardsTests
{
    private const string Remote = EngineHarness.OutsideHost;
    private const string Second = "198.51.100.7";

    private static NatSettings TwoAddresses(NatSettings s) => s with
    {
        Cgnat = Pba(size: 64),
        Pool = [Ipv4.Parse(EngineHarness.External), Ipv4.Parse(Second)],
        Rules = [new ForwardRule { Name = "all", Action = RuleAction.Masquerade }],
        DefaultPolicy = RuleAction.Deny,
    };

    // Shard 0 and shard 1 of two, as the daemon builds them: one directory shared by both.
    private static (EngineHarness Shard0, EngineHarness Shard1, PairingDirectory? Pairings, ShardMap Map) TwoShards(bool shared)
    {
        var pairings = shared ? new PairingDirectory(2) : null;
        var h0 = new EngineHarness(TwoAddresses, seed: 7, options: new EngineOptions { Shard = 0, Shards = 2, Pairings = pairings });
        var h1 = new EngineHarness(TwoAddresses, seed: 8, options: new EngineOptions { Shard = 1, Shards = 2, Pairings = pairings });
        return (h0, h1, pairings, new ShardMap(h0.Engine.Settings, 2));
    }

    // One remote peer per host: a new SPI to a peer waits for the one before it to be answered.
    private static string PeerOf(int host) => $"203.0.113.{host}";

    private static byte[] Esp(string inside, int host)
    {
        var esp = new byte[24];
        esp[2] = 0x10;
        esp[3] = (byte)host; // the SPI, one per host (0 is reserved)
        return Wrap(inside, PeerOf(host), IpProtocol.Esp, esp, 64, null, null);
    }

    private static byte[] Isakmp(string inside, int host)
    {
        var isakmp = new byte[28];
        isakmp[0] = (byte)host; // the initiator cookie, one per host
        return Udp(inside, 500, PeerOf(host), 500, isakmp);
    }

    // Dynamic allocation with a per-subscriber port limit: subscriber state (least-loaded pairing)
    // without blocks, so a reload may take an address away (its mappings close).
    private static NatSettings Limited(NatSettings s) => TwoAddresses(s) with
    {
        Cgnat = new CgnatSettings { Limits = new SubscriberLimits(Ports: 1000) },
    };

    /// <summary>
    /// Every host of shard 1 first sends UDP there (its subscriber pairs with the least-loaded
    /// address), then ISAKMP, ESP and GRE through shard 0: all leave from the UDP's address. Without
    /// the shared directory shard 0 fell back to a hash of the host, which disagreed for some.
    /// </summary>
    [Fact]
    public void Shard_0_sends_another_shards_subscribers_port_less_flows_from_their_paired_address()
    {
        int mismatchesWithout = Run(shared: false);
        Assert.True(mismatchesWithout > 0, "without the directory some host's port-less flows left from another address (the bug this guards)");
        Assert.Equal(0, Run(shared: true));
    }

    private static int Run(bool shared)
    {
        var (h0, h1, pairings, map) = TwoShards(shared);
        int mismatches = 0, hosts = 0;
        var addresses = new HashSet<string>();
        for (int host = 2; host < 64; host++)
        {
            string inside = $"10.0.0.{host}";
            if (map.OwnerOfInside(Ipv4.Parse(inside)) != 1)
            {
                continue;
            }
            hosts++;
            string paired = Src(h1.Out(Udp(inside, 40000, Remote, 53)));
            addresses.Add(paired);
            if (shared)
            {
                Assert.Equal(Ipv4.Parse(paired), pairings!.Of(1).Find(Ipv4.Parse(inside)));
            }
            string[] sent =
            [
                Src(h0.Out(Isakmp(inside, host))),
                Src(h0.Out(Esp(inside, host))),
                Src(h0.Out(Wrap(inside, PeerOf(host), IpProtocol.Gre, new byte[16], 64, null, null))),
            ];
            mismatches += sent.Count(a => a != paired);
        }
        Assert.True(hosts >= 16, $"{hosts} hosts on shard 1");
        Assert.Equal(2, addresses.Count); // least-loaded pairing used both addresses
        return mismatches;
    }

    /// <summary>
    /// Shard 0 allocates ports for another shard's subscriber too (its trigger traffic): whichever
    /// shard pairs the subscriber first, the other takes the same
    /// address for its first port there. Without the directory each shard picked its own least-loaded
    /// address, and some subscribers left from two.
    /// </summary>
    [Fact]
    public void A_subscriber_with_ports_in_two_shards_is_paired_with_one_address_in_both()
    {
        Assert.True(TwoShardPairings(shared: false) > 0, "without the directory some subscriber was paired apart in the two shards (the bug this guards)");
        Assert.Equal(0, TwoShardPairings(shared: true));
    }

    private static int TwoShardPairings(bool shared)
    {
        var (h0, h1, _, map) = TwoShards(shared);
        int apart = 0, hosts = 0;
        for (int host = 2; host < 64; host++)
        {
            string inside = $"10.0.0.{host}";
            if (map.OwnerOfInside(Ipv4.Parse(inside)) != 1)
            {
                continue;
            }
            hosts++;
            // Alternate which shard pairs first.
            var (first, second) = host % 2 == 0 ? (h1, h0) : (h0, h1);
            string a = Src(first.Out(Udp(inside, 40000, PeerOf(host), 53)));
            string b = Src(second.Out(Udp(inside, 40001, PeerOf(host), 53)));
            apart += a == b ? 0 : 1;
        }
        Assert.True(hosts >= 16, $"{hosts} hosts on shard 1");
        return apart;
    }

    /// <summary>
    /// Shard 0 choosing a subscriber's pairing (its first ESP) at the moment shard 1 takes its first
    /// port: shard 1 finds shard 0's claim and takes the claimed address, whatever its own least
    /// loaded. Before claims each chose its own, and some subscribers left from two addresses.
    /// </summary>
    [Fact]
    public void A_subscriber_another_shard_is_pairing_at_this_moment_takes_that_shards_address()
        => ChooseUnderAClaim(ownerChooses: true);

    /// <summary>
    /// The other way round: shard 1 is choosing (its first port) when shard 0 pairs the subscriber
    /// for its first ESP. Shard 0 takes shard 1's claimed address; and a pairing that claimed its
    /// subscriber itself releases the claim once published.
    /// </summary>
    [Fact]
    public void Shard_0_pairing_port_less_flows_takes_the_address_the_owner_is_claiming()
    {
        var (h1, pairings, map) = ChooseUnderAClaim(ownerChooses: false);
        // A subscriber no shard has paired: shard 1 claims it, pairs, publishes and releases.
        string fresh = Enumerable.Range(64, 60).Select(h => $"10.0.0.{h}").First(a => map.OwnerOfInside(Ipv4.Parse(a)) == 1);
        string first = Src(h1.Out(Udp(fresh, 40000, Remote, 53)));
        uint key = h1.Engine.Settings.Cgnat.SubscriberOf(Ipv4.Parse(fresh));
        Assert.Equal(Ipv4.Parse(first), pairings.Of(1).Find(key));
        Assert.Equal(Ipv4.Parse(Second), pairings.Claim(key, Ipv4.Parse(Second), out bool freeAgain));
        Assert.True(freeAgain, "the pairing's claim was released");
    }

    /// <summary>
    /// The two shards on two threads, released together for each new subscriber: shard 1 takes its
    /// first UDP while shard 0 takes its first ESP. Every subscriber leaves from one address in both,
    /// round after round (claims taken and released on real threads, no slot shared by two subscribers).
    /// </summary>
    [Fact]
    public void Two_shards_pairing_the_same_new_subscribers_on_two_threads_agree_on_every_one()
    {
        for (int round = 0; round < 20; round++)
        {
            var (h0, h1, pairings, map) = TwoShards(shared: true);
            string[] hosts = Enumerable.Range(2, 60).Select(h => $"10.0.0.{h}").Where(a => map.OwnerOfInside(Ipv4.Parse(a)) == 1).ToArray();
            var byShard0 = new string[hosts.Length];
            var byShard1 = new string[hosts.Length];
            using var together = new Barrier(2);
            Exception? failure = null;
            var shard0 = new Thread(() => Run(() =>
            {
                for (int i = 0; i < hosts.Length; i++)
                {
                    together.SignalAndWait();
                    byShard0[i] = Src(h0.Out(Esp(hosts[i], i + 2)));
                }
            }));
            shard0.Start();
            Run(() =>
            {
                for (int i = 0; i < hosts.Length; i++)
                {
                    together.SignalAndWait();
                    byShard1[i] = Src(h1.Out(Udp(hosts[i], 40000, Remote, 53)));
                }
            });
            Assert.True(shard0.Join(TimeSpan.FromSeconds(30)), "shard 0's thread finished");
            Assert.Null(failure);
            Assert.Equal(byShard1, byShard0);
            Assert.Equal(0, pairings!.ClaimsMissed);

            void Run(Action body)
            {
                try
                {
                    body();
                }
                catch (Exception e)
                {
                    failure ??= e;
                    together.RemoveParticipant(); // the other thread must not wait for this one
                }
            }
        }
    }

    // For each host of shard 1, the other shard holds a claim on its subscriber (mid-choice) while
    // the chooser (shard 1's first UDP, or shard 0's first ESP) pairs it; then the claimer goes on
    // with its own flow. Every flow must leave from the claimed address. The claims go two hosts to
    // an address, so about half disagree with the least loaded the chooser would take on its own.
    private static (EngineHarness Shard1, PairingDirectory Pairings, ShardMap Map) ChooseUnderAClaim(bool ownerChooses)
    {
        var (h0, h1, directory, map) = TwoShards(shared: true);
        PairingDirectory pairings = directory!;
        string[] pool = [EngineHarness.External, Second];
        int hosts = 0;
        for (int host = 2; host < 64; host++)
        {
            string inside = $"10.0.0.{host}";
            if (map.OwnerOfInside(Ipv4.Parse(inside)) != 1)
            {
                continue;
            }
            string claimed = pool[hosts++ / 2 % 2];
            uint key = h1.Engine.Settings.Cgnat.SubscriberOf(Ipv4.Parse(inside));
            Assert.Equal(Ipv4.Parse(claimed), pairings.Claim(key, Ipv4.Parse(claimed), out bool held));
            Assert.True(held);
            string chosen = ownerChooses ? Src(h1.Out(Udp(inside, 40000, Remote, 53))) : Src(h0.Out(Esp(inside, host)));
            Assert.Equal(claimed, chosen);
            Assert.Equal(Ipv4.Parse(claimed), pairings.Of(ownerChooses ? 1 : 0).Find(key));
            pairings.Release(key, Ipv4.Parse(claimed));
            Assert.Equal(claimed, ownerChooses ? Src(h0.Out(Esp(inside, host))) : Src(h1.Out(Udp(inside, 40000, Remote, 53))));
        }
        Assert.True(hosts >= 16, $"{hosts} hosts on shard 1");
        Assert.Equal(0, pairings.ClaimsMissed);
        return (h1, pairings, map);
    }

    /// <summary>
    /// ESP before any port: the port-less flow pairs the subscriber (least loaded) and holds the
    /// pairing, so its first port takes the same address. Before, the ESP left from a hash of the
    /// host and the first port from the least-loaded address, apart for some hosts.
    /// </summary>
    [Fact]
    public void A_subscribers_first_port_takes_the_address_its_port_less_flows_already_use()
    {
        var h = new EngineHarness(TwoAddresses);
        var addresses = new HashSet<string>();
        for (int host = 2; host < 40; host++)
        {
            string inside = $"10.0.0.{host}";
            string esp = Src(h.Out(Esp(inside, host)));
            Assert.Equal(esp, Src(h.Out(Udp(inside, 40000, Remote, 53))));
            addresses.Add(esp);
        }
        Assert.Equal(2, addresses.Count); // the port-less pairing is least loaded too
    }

    /// <summary>The same across shards: shard 0 pairs and publishes, the owner's first port takes it.</summary>
    [Fact]
    public void Across_shards_a_subscribers_first_port_takes_the_address_shard_0_gave_its_port_less_flows()
    {
        var (h0, h1, pairings, map) = TwoShards(shared: true);
        int hosts = 0;
        for (int host = 2; host < 64; host++)
        {
            string inside = $"10.0.0.{host}";
            if (map.OwnerOfInside(Ipv4.Parse(inside)) != 1)
            {
                continue;
            }
            hosts++;
            string isakmp = Src(h0.Out(Isakmp(inside, host)));
            Assert.Equal(isakmp, Src(h0.Out(Esp(inside, host))));
            Assert.Equal(Ipv4.Parse(isakmp), pairings!.Of(0).Find(Ipv4.Parse(inside)));
            Assert.Equal(isakmp, Src(h1.Out(Udp(inside, 40000, Remote, 53))));
        }
        Assert.True(hosts >= 16, $"{hosts} hosts on shard 1");
    }

    /// <summary>
    /// A subscriber of shard 1 with ESP through shard 0 has subscriber state in both shards; the
    /// listing (natctl subscribers) shows it once, with what both hold, from its paired address.
    /// </summary>
    [Fact]
    public void A_subscriber_with_flows_in_two_shards_is_listed_once_with_what_both_hold()
    {
        var (h0, h1, _, map) = TwoShards(shared: true);
        var owned = new List<uint>();
        for (int host = 2; host < 64 && owned.Count < 8; host++)
        {
            string inside = $"10.0.0.{host}";
            if (map.OwnerOfInside(Ipv4.Parse(inside)) != 1)
            {
                continue;
            }
            owned.Add(Ipv4.Parse(inside));
            h0.Out(Esp(inside, host));
            h1.Out(Udp(inside, 40000, Remote, 53));
            h1.Out(Udp(inside, 40001, Remote, 53));
        }
        Assert.Equal(8, owned.Count);
        var rows = new List<SubscriberInfo>();
        h0.Engine.CollectSubscribers(rows);
        h1.Engine.CollectSubscribers(rows);
        var merged = SubscriberInfo.MergeShards(rows);
        Assert.Equal(owned.Count, merged.Count);
        foreach (uint key in owned)
        {
            var inShard0 = Assert.Single(rows, r => r.Subscriber == key && r.Ports == 0); // shard 0's hold for the ESP
            var inShard1 = Assert.Single(rows, r => r.Subscriber == key && r.Ports > 0);
            var one = Assert.Single(merged, r => r.Subscriber == key);
            Assert.Equal(2, one.Ports);
            Assert.Equal(inShard0.Sessions + inShard1.Sessions, one.Sessions);
            Assert.Equal(inShard1.External, one.External);
            Assert.Equal(inShard0.External, one.External); // paired alike
            Assert.Equal(inShard1.Blocks, one.Blocks);
            Assert.NotEmpty(one.Blocks);
        }
    }

    /// <summary>
    /// The same subscribers in stats and /metrics: natd_subscribers counts each once (before, the
    /// sum over the shards counted the 8 held by both twice), and the ports histogram's count agrees.
    /// </summary>
    [Fact]
    public void Stats_count_a_subscriber_with_flows_in_two_shards_once()
    {
        var (h0, h1, pairings, map) = TwoShards(shared: true);
        int both = 0, only1 = 0;
        for (int host = 2; host < 64; host++)
        {
            string inside = $"10.0.0.{host}";
            if (map.OwnerOfInside(Ipv4.Parse(inside)) != 1)
            {
                continue;
            }
            h1.Out(Udp(inside, 40000, Remote, 53));
            if (both < 8)
            {
                h0.Out(Esp(inside, host)); // shard 0 holds it too, for its ESP
                both++;
            }
            else
            {
                only1++;
            }
        }
        h0.Out(Udp(Enumerable.Range(2, 60).Select(h => $"10.0.0.{h}").First(a => map.OwnerOfInside(Ipv4.Parse(a)) == 0), 40000, Remote, 53));
        Assert.True(only1 > 0);
        Assert.Equal(both, pairings!.PublishedElsewhereToo(0));
        Assert.Equal(both, pairings.PublishedElsewhereToo(1)); // the same subscribers seen from shard 1: only shard 0's view takes them off
        Assert.Equal(both + 1, h0.Engine.ReadView.Subscribers);
        Assert.Equal(both, h0.Engine.ReadView.SubscribersCountedElsewhere);
        Assert.Equal(0, h1.Engine.ReadView.SubscribersCountedElsewhere);

        var snap = DataplaneQuery.Snapshot(
            [new PollerHandle(null!, h0.Engine.ReadView, new PollerStats()), new PollerHandle(null!, h1.Engine.ReadView, new PollerStats())]);
        Assert.Equal(both + only1 + 1, snap.Subscribers);
        Assert.Equal(snap.Subscribers, snap.SubscriberPorts.Sum());
        Assert.Contains($"\nnatd_subscribers {both + only1 + 1}\n", MetricsText.Of(snap), StringComparison.Ordinal);
    }

    [Fact]
    public void Merging_rows_adds_up_blocks_ports_sessions_and_refusals_and_keeps_the_address_of_the_row_with_ports()
    {
        uint a = Ipv4.Parse("10.0.0.9"), b = Ipv4.Parse("10.0.0.10"), x = Ipv4.Parse("198.51.100.7"), y = Ipv4.Parse(EngineHarness.External);
        var rows = new List<SubscriberInfo>
        {
            new(a, y, [], 0, 1, 0, 0, 2, 0), // a port-less hold in shard 0
            new(b, x, [(2048, 2111)], 3, 3, 0, 0, 0, 0),
            new(a, x, [(1088, 1151), (1024, 1087)], 5, 4, 1, 2, 0, 3),
        };
        var merged = SubscriberInfo.MergeShards(rows);
        Assert.Equal([a, b], merged.Select(r => r.Subscriber));
        var m = merged[0];
        Assert.Equal(x, m.External);
        Assert.Equal([(1024, 1087), (1088, 1151)], m.Blocks);
        Assert.Equal((5, 5, 1, 2, 2, 3), (m.Ports, m.Sessions, m.SessionHits, m.PortHits, m.RateHits, m.BlockHits));
        Assert.Same(rows[1], merged[1]);
        // A prefix length apart is another subscriber (a reload changed nat.subscriber-prefix between the shards' answers).
        Assert.Equal(2, SubscriberInfo.MergeShards([rows[0], rows[0] with { PrefixLength = 24 }]).Count);
    }

    [Fact]
    public void A_port_less_hold_lapses_with_the_flows_idle_timeout_and_survives_a_reload()
    {
        var pairings = new PairingDirectory(2);
        var h0 = new EngineHarness(TwoAddresses, options: new EngineOptions { Shard = 0, Shards = 2, Pairings = pairings });
        var map = new ShardMap(h0.Engine.Settings, 2);
        string inside = Enumerable.Range(2, 60).Select(h => $"10.0.0.{h}").First(a => map.OwnerOfInside(Ipv4.Parse(a)) == 1);
        uint key = Ipv4.Parse(inside);
        uint esp = Ipv4.Parse(Src(h0.Out(Esp(inside, 7))));
        Assert.Equal(esp, pairings.Of(0).Find(key));
        var hold = Assert.Single(h0.Engine.Subscribers!.List(), s => s.Subscriber == key);
        Assert.Equal((esp, 0, 0), (hold.External, hold.Ports, hold.Sessions));
        // A reload (a new per-subscriber limit) rebuilds the subscriber state: the hold goes on.
        Assert.Null(h0.Engine.UpdateSettings(h0.Engine.Settings with { Cgnat = h0.Engine.Settings.Cgnat with { Limits = new SubscriberLimits(Sessions: 500) } }));
        Assert.Equal(esp, pairings.Of(0).Find(key));
        long espMs = h0.Engine.Settings.Algs.Ipsec.EspTimeout * 1000L;
        h0.Now += espMs - 1_000;
        h0.Engine.Sweep(h0.Now, 100_000);
        Assert.Equal(esp, pairings.Of(0).Find(key));
        h0.Now += 2_000; // past the ESP idle timeout since the frame
        h0.Engine.Sweep(h0.Now, 100_000);
        Assert.Equal(0u, pairings.Of(0).Find(key));
        Assert.DoesNotContain(h0.Engine.Subscribers!.List(), s => s.Subscriber == key);
    }

    [Fact]
    public void A_subscriber_that_holds_no_port_any_more_is_withdrawn()
    {
        // Quarantine 0: the block goes with the last mapping, and the pairing with the block.
        var pairings = new PairingDirectory(2);
        var h1 = new EngineHarness(s => TwoAddresses(s) with { Cgnat = Pba(size: 64, delay: 0) }, options: new EngineOptions { Shard = 1, Shards = 2, Pairings = pairings });
        var map = new ShardMap(h1.Engine.Settings, 2);
        string inside = Enumerable.Range(2, 60).Select(h => $"10.0.0.{h}").First(a => map.OwnerOfInside(Ipv4.Parse(a)) == 1);
        string paired = Src(h1.Out(Udp(inside, 40000, Remote, 53)));
        Assert.Equal(Ipv4.Parse(paired), pairings.Of(1).Find(Ipv4.Parse(inside)));
        Assert.Equal(1, pairings.Of(1).Count);
        h1.Now += 3_600_000; // past every UDP timeout
        h1.Engine.Sweep(h1.Now, 100_000);
        Assert.Equal(0, h1.Engine.Table.Count);
        Assert.Equal(0u, pairings.Of(1).Find(Ipv4.Parse(inside)));
        Assert.Equal(0, pairings.Of(1).Count);
        Assert.Equal(0u, pairings.Find(Ipv4.Parse(inside), except: 0));
    }

    [Fact]
    public void A_reload_that_drops_an_address_withdraws_its_subscribers_and_keeps_the_others()
    {
        var pairings = new PairingDirectory(2);
        var h1 = new EngineHarness(Limited, options: new EngineOptions { Shard = 1, Shards = 2, Pairings = pairings });
        var map = new ShardMap(h1.Engine.Settings, 2);
        var paired = new Dictionary<string, string>();
        foreach (string inside in Enumerable.Range(2, 60).Select(h => $"10.0.0.{h}").Where(a => map.OwnerOfInside(Ipv4.Parse(a)) == 1))
        {
            paired[inside] = Src(h1.Out(Udp(inside, 40000, Remote, 53)));
        }
        Assert.Contains(Second, paired.Values);
        Assert.Contains(EngineHarness.External, paired.Values);
        Assert.Null(h1.Engine.UpdateSettings(h1.Engine.Settings with { Pool = [Ipv4.Parse(EngineHarness.External)] }));
        foreach (var (inside, external) in paired)
        {
            uint expected = external == Second ? 0 : Ipv4.Parse(external);
            Assert.Equal(expected, pairings.Of(1).Find(Ipv4.Parse(inside)));
        }
        Assert.Equal(paired.Values.Count(a => a != Second), pairings.Of(1).Count);
    }

    [Fact]
    public void Without_subscriber_state_after_a_reload_nothing_stays_published()
    {
        var pairings = new PairingDirectory(2);
        var h1 = new EngineHarness(Limited, options: new EngineOptions { Shard = 1, Shards = 2, Pairings = pairings });
        var map = new ShardMap(h1.Engine.Settings, 2);
        string inside = Enumerable.Range(2, 60).Select(h => $"10.0.0.{h}").First(a => map.OwnerOfInside(Ipv4.Parse(a)) == 1);
        h1.Out(Udp(inside, 40000, Remote, 53));
        Assert.Equal(1, pairings.Of(1).Count);
        // Dynamic allocation, strict pairing, no limits: no subscriber state, pairing by hash everywhere.
        Assert.Null(h1.Engine.UpdateSettings(h1.Engine.Settings with { Cgnat = new CgnatSettings() }));
        Assert.Null(h1.Engine.Subscribers);
        Assert.Equal(0, pairings.Of(1).Count);
        Assert.Equal(0u, pairings.Of(1).Find(Ipv4.Parse(inside)));
    }
}
