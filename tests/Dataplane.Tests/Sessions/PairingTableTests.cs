using Natd.Dataplane.Sessions;

namespace Natd.Tests.Sessions;

/// <summary>
/// <see cref="PairingTable"/>: one writer publishes subscribers' pairings, readers on other threads
/// find them without a lock (<see cref="PairingDirectory"/>).
/// </summary>
public class PairingTableTests
{
    private static uint Subscriber(int i) => 0x0A00_0000u + (uint)i; // 10.0.0.0 + i, as a key
    private static uint External(int i) => 0xC633_6400u + (uint)(i % 7) + 1; // 198.51.100.1-7

    [Fact]
    public void Set_find_update_and_withdraw()
    {
        var t = new PairingTable();
        Assert.Equal(0u, t.Find(Subscriber(1)));
        t.Set(Subscriber(1), External(1));
        t.Set(Subscriber(2), External(2));
        Assert.Equal(External(1), t.Find(Subscriber(1)));
        Assert.Equal(External(2), t.Find(Subscriber(2)));
        Assert.Equal(2, t.Count);
        t.Set(Subscriber(1), External(5));
        Assert.Equal(External(5), t.Find(Subscriber(1)));
        Assert.Equal(2, t.Count);
        t.Set(Subscriber(1), 0);
        Assert.Equal(0u, t.Find(Subscriber(1)));
        Assert.Equal(External(2), t.Find(Subscriber(2)));
        Assert.Equal(1, t.Count);
        t.Set(Subscriber(3), 0); // never published: nothing to withdraw
        Assert.Equal(1, t.Count);
        t.Set(0, External(1)); // 0 is no subscriber (it marks an empty slot)
        Assert.Equal(0u, t.Find(0));
        Assert.Equal(1, t.Count);
    }

    /// <summary>
    /// Property: under random churn (pair, re-pair, withdraw) the table answers as a dictionary
    /// does, and its size stays bounded by the subscribers live at once, not by those ever seen.
    /// </summary>
    [Fact]
    public void Churn_agrees_with_a_dictionary_and_keeps_the_table_small()
    {
        var rnd = new Random(20261206);
        var t = new PairingTable();
        var model = new Dictionary<uint, uint>();
        int maxSize = 0;
        for (int step = 0; step < 200_000; step++)
        {
            // A window of 2,000 subscribers sliding over 40,000: old ones leave, new ones come.
            int low = 1 + step / 5;
            uint key = Subscriber(rnd.Next(low, low + 2_000));
            uint value = rnd.Next(3) == 0 ? 0 : External(rnd.Next(100));
            t.Set(key, value);
            if (value == 0)
            {
                model.Remove(key);
            }
            else
            {
                model[key] = value;
            }
            if (step % 5 == 0)
            {
                // The subscriber leaving the window withdraws.
                t.Set(Subscriber(low - 1), 0);
                model.Remove(Subscriber(low - 1));
            }
            if (step % 997 == 0)
            {
                foreach (var (k, v) in model)
                {
                    Assert.Equal(v, t.Find(k));
                }
                Assert.Equal(model.Count, t.Count);
            }
            maxSize = Math.Max(maxSize, t.Size);
        }
        foreach (uint k in model.Keys.ToList())
        {
            t.Set(k, 0);
        }
        Assert.Equal(0, t.Count);
        for (int i = 1; i < 42_000; i += 7)
        {
            Assert.Equal(0u, t.Find(Subscriber(i)));
        }
        Assert.True(maxSize <= 8_192, $"the table grew to {maxSize} slots for at most 2,000 subscribers at once (40,000 over time)");
    }

    [Fact]
    public void Reconcile_republishes_what_changed_and_withdraws_what_went()
    {
        var t = new PairingTable();
        for (int i = 1; i <= 100; i++)
        {
            t.Set(Subscriber(i), External(i));
        }
        // The rebuilt state: even subscribers kept their address, multiples of 3 moved, the rest went.
        t.Reconcile(k =>
        {
            int i = (int)(k - Subscriber(0));
            return i % 3 == 0 ? External(i + 1) : i % 2 == 0 ? External(i) : 0;
        });
        for (int i = 1; i <= 100; i++)
        {
            uint expected = i % 3 == 0 ? External(i + 1) : i % 2 == 0 ? External(i) : 0;
            Assert.Equal(expected, t.Find(Subscriber(i)));
        }
        Assert.Equal(Enumerable.Range(1, 100).Count(i => i % 3 == 0 || i % 2 == 0), t.Count);
    }

    /// <summary>
    /// A reader on another thread, while the writer churns through rebuilds: every answer is 0 or
    /// an address the writer published for that subscriber (each subscriber only ever gets its own
    /// two addresses), and a subscriber published before the reader started and never touched
    /// again is always found.
    /// </summary>
    [Fact]
    public void A_reader_on_another_thread_sees_only_published_pairings()
    {
        var t = new PairingTable();
        const int Stable = 64;
        for (int i = 1; i <= Stable; i++)
        {
            t.Set(Subscriber(i), External(i));
        }
        static uint Own(int i, int which) => 0xCB00_7100u + (uint)(((i * 2) + which) & 0xFF) + 0x0100u * (uint)(i >> 7); // two distinct addresses per subscriber
        using var stop = new CancellationTokenSource();
        string? failure = null;
        long reads = 0;
        var reader = new Thread(() =>
        {
            var rnd = new Random(1);
            while (!stop.IsCancellationRequested && failure is null)
            {
                for (int n = 0; n < 1000; n++)
                {
                    int i = rnd.Next(1, Stable + 4000);
                    uint got = t.Find(Subscriber(i));
                    if (i <= Stable ? got != External(i) : got != 0 && got != Own(i, 0) && got != Own(i, 1))
                    {
                        failure = $"subscriber {i}: read {got:x8}";
                        break;
                    }
                    reads++;
                }
            }
        }) { IsBackground = true };
        reader.Start();
        var wrnd = new Random(2);
        for (int step = 0; step < 300_000 && failure is null; step++)
        {
            int i = wrnd.Next(Stable + 1, Stable + 4000);
            int what = wrnd.Next(3);
            t.Set(Subscriber(i), what == 2 ? 0 : Own(i, what));
        }
        stop.Cancel();
        Assert.True(reader.Join(TimeSpan.FromSeconds(30)), "the reader stopped");
        Assert.Null(failure);
        Assert.True(reads > 0);
    }

    [Fact]
    public void A_directory_finds_a_subscriber_in_another_shards_table_only()
    {
        var d = new PairingDirectory(3);
        d.Of(2).Set(Subscriber(9), External(9));
        Assert.Equal(External(9), d.Find(Subscriber(9), except: 0));
        Assert.Equal(External(9), d.Find(Subscriber(9), except: 1));
        Assert.Equal(0u, d.Find(Subscriber(9), except: 2));
        Assert.Equal(0u, d.Find(Subscriber(8), except: 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => new PairingDirectory(0));
    }

    /// <summary>
    /// Two shards choosing a pairing for one subscriber at once: the first claim wins, the second is
    /// told the winner's address, and the slot is free again once the winner releases.
    /// </summary>
    [Fact]
    public void The_first_claim_on_a_subscriber_wins_and_a_second_gets_its_address_until_released()
    {
        var d = new PairingDirectory(2);
        Assert.Equal(External(1), d.Claim(Subscriber(5), External(1), out bool held));
        Assert.True(held);
        Assert.Equal(External(1), d.Claim(Subscriber(5), External(2), out held));
        Assert.False(held);
        d.Release(Subscriber(5), External(2)); // not the claim's word: nothing released
        Assert.Equal(External(1), d.Claim(Subscriber(5), External(3), out held));
        Assert.False(held);
        d.Release(Subscriber(5), External(1));
        Assert.Equal(External(3), d.Claim(Subscriber(5), External(3), out held));
        Assert.True(held);
        Assert.Equal(0, d.ClaimsMissed);
    }

    /// <summary>
    /// Claim slots are direct-mapped: another subscriber's claim in the slot leaves a pairing
    /// unclaimed, counted; subscriber 0 and address 0 are never claimed.
    /// </summary>
    [Fact]
    public void A_slot_held_by_another_subscribers_claim_leaves_the_pairing_unclaimed_and_counted()
    {
        var d = new PairingDirectory(2);
        uint a = Subscriber(7);
        uint b = Enumerable.Range(8, 1_000_000).Select(i => Subscriber(i)).First(x => PairingDirectory.ClaimSlotOf(x) == PairingDirectory.ClaimSlotOf(a));
        Assert.Equal(External(1), d.Claim(a, External(1), out bool held));
        Assert.True(held);
        Assert.Equal(0u, d.Claim(b, External(2), out held));
        Assert.False(held);
        Assert.Equal(1, d.ClaimsMissed);
        d.Release(a, External(1));
        Assert.Equal(External(2), d.Claim(b, External(2), out held));
        Assert.True(held);
        Assert.Equal(0u, d.Claim(0, External(2), out held));
        Assert.False(held);
        Assert.Equal(0u, d.Claim(a, 0, out held));
        Assert.False(held);
        Assert.Equal(1, d.ClaimsMissed);
    }

    /// <summary>A subscriber two shards publish is counted in the shard asked about, live pairings only.</summary>
    [Fact]
    public void Pairings_another_shard_publishes_too_are_counted_from_one_shards_table()
    {
        var d = new PairingDirectory(3);
        d.Of(0).Set(Subscriber(1), External(1));
        d.Of(0).Set(Subscriber(2), External(2));
        d.Of(0).Set(Subscriber(3), External(3));
        d.Of(1).Set(Subscriber(1), External(1));
        d.Of(2).Set(Subscriber(2), External(2));
        d.Of(2).Set(Subscriber(4), External(4));
        Assert.Equal(2, d.PublishedElsewhereToo(0));
        Assert.Equal(1, d.PublishedElsewhereToo(1));
        Assert.Equal(1, d.PublishedElsewhereToo(2));
        d.Of(1).Set(Subscriber(1), 0); // withdrawn: a tombstone is not a pairing
        Assert.Equal(1, d.PublishedElsewhereToo(0));
        Assert.Equal(0, d.PublishedElsewhereToo(1));
    }
}
