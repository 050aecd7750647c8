using Natd.Dataplane.Sessions;

namespace Natd.Tests.Sessions;

public class SubscriberTableTests
{
    [Fact]
    public void Agrees_with_a_dictionary_through_random_adds_and_removes()
    {
        // Keys from a small space so probes collide and removals shift clusters; more live keys
        // than a chunk so the dense part grows, and the free list is reused after removals.
        var table = new SubscriberTable(4000, seed: 0x1234);
        var model = new Dictionary<uint, int>();
        var rng = new Random(7);
        for (int step = 0; step < 60_000; step++)
        {
            uint key = (uint)rng.Next(1, 6000);
            if (rng.Next(3) == 0)
            {
                table.Remove(key);
                model.Remove(key);
                Assert.Equal(-1, table.Find(key));
            }
            else
            {
                int slot = table.GetOrAdd(key, tokens: 5, nowMs: step);
                if (model.TryGetValue(key, out int known))
                {
                    Assert.Equal(known, slot); // an entry stays at its slot while it lives
                }
                else if (model.Count < 4000)
                {
                    Assert.True(slot >= 0);
                    Assert.Equal(key, table[slot].Key);
                    Assert.True(table[slot].InUse);
                    Assert.Equal(-1, table[slot].BlockHead); // a reused slot starts clean
                    table[slot].Sessions = (int)key; // something only this key's entry holds
                    model[key] = slot;
                }
                else
                {
                    Assert.Equal(-1, slot); // full
                }
            }
            Assert.Equal(model.Count, table.Count);
        }
        foreach (var (key, slot) in model)
        {
            Assert.Equal(slot, table.Find(key));
            Assert.Equal((int)key, table[slot].Sessions);
        }
        int live = 0;
        for (int i = 0; i < table.Slots; i++)
        {
            live += table[i].InUse ? 1 : 0;
        }
        Assert.Equal(model.Count, live); // listing by slot sees exactly the live entries
        Assert.True(table.Slots <= 4000, $"{table.Slots} slots handed out for at most 4000 live entries: the free list is reused");
    }

    [Fact]
    public void Holds_only_the_chunks_its_subscribers_need()
    {
        // Sized for a million sessions, holding 10 subscribers: the index's first size (not 2^21
        // entries, 16 MiB, for subscribers that never come) and one chunk.
        var table = new SubscriberTable(1_000_000, seed: 1);
        for (uint k = 1; k <= 10; k++)
        {
            Assert.True(table.GetOrAdd(k, 0, 0) >= 0);
        }
        long indexBytes = SubscriberTable.InitialIndexSize * (long)sizeof(ulong);
        Assert.Equal(indexBytes + SubscriberTable.ChunkSize * System.Runtime.CompilerServices.Unsafe.SizeOf<Subscriber>(), table.Bytes);
    }

    [Fact]
    public void The_index_grows_with_its_subscribers_and_finds_every_one()
    {
        var table = new SubscriberTable(200_000, seed: 5);
        var slots = new Dictionary<uint, int>();
        for (uint k = 1; k <= 100_000; k++)
        {
            uint key = k * 2654435761u; // spread over the key space, as inside addresses are
            int slot = table.GetOrAdd(key, 0, 0);
            Assert.True(slot >= 0);
            slots[key] = slot;
            // Never fuller than 2/3, never bigger than the capacity needs (1.5 x 200,000 rounded up: 2^19).
            Assert.True(table.Count * 3L <= table.IndexSize * 2L, $"{table.Count} keys in {table.IndexSize} entries");
        }
        Assert.Equal(262_144, table.IndexSize);
        foreach ((uint key, int slot) in slots)
        {
            Assert.Equal(slot, table.Find(key)); // re-homed by every doubling, the entries did not move
        }
        foreach (uint key in slots.Keys.Where(k => k % 2 == 0).ToList())
        {
            table.Remove(key);
            slots.Remove(key);
        }
        foreach ((uint key, int slot) in slots)
        {
            Assert.Equal(slot, table.Find(key));
        }
        Assert.Equal(slots.Count, table.Count);
    }

    [Fact]
    public void The_index_stops_at_the_size_its_capacity_needs()
    {
        var table = new SubscriberTable(1000, seed: 9); // 1.5 x 1000 rounded up: 2048 entries
        for (uint k = 1; k <= 1000; k++)
        {
            Assert.True(table.GetOrAdd(k, 0, 0) >= 0);
        }
        Assert.Equal(2048, table.IndexSize);
        Assert.Equal(-1, table.GetOrAdd(5000, 0, 0)); // full: refused, not grown
        Assert.Equal(2048, table.IndexSize);
    }

    [Fact]
    public void A_removed_key_is_not_found_through_the_last_lookup_memo()
    {
        var table = new SubscriberTable(16, seed: 3);
        int a = table.GetOrAdd(42, 0, 0);
        Assert.Equal(a, table.Find(42));
        table.Remove(42);
        Assert.Equal(-1, table.Find(42));
        int b = table.GetOrAdd(43, 0, 0);
        Assert.Equal(a, b); // the slot came back through the free list
        Assert.Equal(-1, table.Find(42));
        Assert.Equal(43u, table[b].Key);
    }

    [Fact]
    public void Peek_answers_as_find_does_and_prefetching_changes_nothing()
    {
        // Enough keys to grow the index several times and make probe clusters; every third removed.
        var table = new SubscriberTable(3000, seed: 0x77);
        var rng = new Random(3);
        var live = new Dictionary<uint, int>();
        for (int i = 0; i < 3000; i++)
        {
            uint key = (uint)rng.Next(1, 9000);
            int slot = table.GetOrAdd(key, tokens: 0, nowMs: i);
            live[key] = slot;
            if (i % 3 == 0)
            {
                table.Remove(key);
                live.Remove(key);
            }
        }
        int count = table.Count;
        for (uint key = 1; key < 9000; key++)
        {
            int expected = live.TryGetValue(key, out int slot) ? slot : -1;
            table.PrefetchEntry(key); // a hint: neither adds nor moves anything
            Assert.Equal(expected, table.Peek(key));
            Assert.Equal(expected, table.Find(key));
        }
        Assert.Equal(count, table.Count);
        Assert.Equal(live.Count, count);
    }
}
