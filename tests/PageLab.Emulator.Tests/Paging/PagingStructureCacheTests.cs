using CsCheck;
using PageLab.Emulator.Paging;

namespace PageLab.Emulator.Tests.Paging;

/// <summary>
/// The paging-structure caches' replacement: fully associative and exact LRU, an empty entry taken before any valid one
/// is evicted. Checked against a plain recency list on random sequences of fills, uses and invalidations.
/// </summary>
public sealed unsafe class PagingStructureCacheTests
{
    /// <summary>The key of the n-th 2 MiB region in PCID 0, as the walker would make it.</summary>
    static ulong Key(PagingStructureCacheState* state, ulong n) => state->KeyFor(n << 21, pcid: 0);

    enum Operation { Fill, Use, Drop }

    [Fact]
    public void Fill_EvictsTheLeastRecentlyUsedEntry()
    {
        var cache = new PagingStructureCache(PagingLevel.PageDirectory, 3);
        var state = cache.State;
        foreach (ulong key in new ulong[] { 1, 2, 3 }) state->InsertAbsent(Key(state, key), key << 12, default);
        state->Touch(state->Find(Key(state, 1))); // 2 is now the least recently used
        state->InsertAbsent(Key(state, 4), 4 << 12, default);

        Assert.Equal(-1, state->Find(Key(state, 2)));
        Assert.All(new ulong[] { 1, 3, 4 }, key => Assert.True(state->Find(Key(state, key)) >= 0));
    }

    [Fact]
    public void Fill_TakesAnEmptiedEntryBeforeEvictingAny()
    {
        var cache = new PagingStructureCache(PagingLevel.PageDirectory, 3);
        var state = cache.State;
        foreach (ulong key in new ulong[] { 1, 2, 3 }) state->InsertAbsent(Key(state, key), key << 12, default);
        state->Drop(state->Find(Key(state, 3))); // the most recently used goes; 1 stays the least recently used
        state->InsertAbsent(Key(state, 4), 4 << 12, default);

        Assert.Equal(3, cache.Count);
        Assert.All(new ulong[] { 1, 2, 4 }, key => Assert.True(state->Find(Key(state, key)) >= 0));
    }

    [Fact]
    public void Replacement_MatchesAnExactLruList_OnRandomSequences()
    {
        var operations = Gen.Select(Gen.Enum<Operation>(), Gen.ULong[1, 24]).Array[1, 200];
        SeededCases.ForEach(Gen.Select(Gen.Int[1, 20], operations), 500, c =>
        {
            var (capacity, steps) = c;
            var cache = new PagingStructureCache(PagingLevel.PageDirectory, capacity);
            var state = cache.State;
            var recency = new List<ulong>(); // most recently used first
            foreach (var (operation, key) in steps)
            {
                int entry = state->Find(Key(state, key));
                Assert.Equal(recency.Contains(key), entry >= 0);
                switch (operation)
                {
                    case Operation.Fill when entry < 0:
                        state->InsertAbsent(Key(state, key), key << 12, default);
                        if (recency.Count == capacity) recency.RemoveAt(capacity - 1);
                        recency.Insert(0, key);
                        break;
                    case Operation.Use when entry >= 0:
                        state->Touch(entry);
                        recency.Remove(key);
                        recency.Insert(0, key);
                        break;
                    case Operation.Drop when entry >= 0:
                        state->Drop(entry);
                        recency.Remove(key);
                        break;
                }
                Assert.Equal(recency.Count, cache.Count);
            }
            foreach (ulong key in recency) Assert.Equal(key << 12, state->NextTables[state->Find(Key(state, key))]);
        });
    }
}
