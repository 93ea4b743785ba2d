using System.Numerics;
using CsCheck;
using PageLab.Emulator.Paging;

namespace PageLab.Emulator.Tests.Paging;

/// <summary>
/// Replacement in a TLB set: an empty way is filled before any valid one is evicted; then LRU evicts the least recently
/// used way, and tree-PLRU the leaf the node bits lead to, in a binary tree pruned of the leaves beyond the set's ways.
/// Checked against plain models on random sequences of fills, hits and invalidations, for every way count up to the 128
/// a set may have.
/// </summary>
public sealed unsafe class TlbReplacementTests
{
    enum Operation { Fill, Hit, Drop }

    static ulong Linear(ulong page) => page << 12;

    [Theory]
    [InlineData(3)]
    [InlineData(6)]   // the Intel preset's L1 DTLB
    [InlineData(12)]
    [InlineData(24)]  // the AMD preset's L2 DTLB
    [InlineData(100)] // node bits in two words
    public void TreePlru_EvictsEveryWay_WhenTheWaysAreNotAPowerOfTwo(int ways)
    {
        var array = new TlbArray(new TlbArrayConfig(1, ways, PageSize.Size4K), TlbReplacement.TreePlru, seed: 1);
        var state = array.State;
        var evicted = new HashSet<int>();
        for (ulong page = 0; page < (ulong)ways * 16; page++)
        {
            state->Insert(-1, Linear(page), PageSize.Size4K, 0, default);
            if (page >= (ulong)ways) evicted.Add(state->Find(Linear(page), PageSize.Size4K, 0));
        }

        Assert.Equal(Enumerable.Range(0, ways), evicted.Order());
    }

    [Theory]
    [InlineData(TlbReplacement.TreePlru)]
    [InlineData(TlbReplacement.Lru)]
    public void Replacement_MatchesAPlainModel_OnRandomSequences(TlbReplacement policy)
    {
        var cases = Gen.Int[1, 128].SelectMany(ways =>
            Gen.Select(Gen.Enum<Operation>(), Gen.ULong[1, (ulong)ways * 2 + 1]).Array[1, 400].Select(steps => (ways, steps)));
        SeededCases.ForEach(cases, 300, c =>
        {
            var (ways, steps) = c;
            var array = new TlbArray(new TlbArrayConfig(1, ways, PageSize.Size4K), policy, seed: 1);
            var state = array.State;
            var reference = new ReferenceSet(ways, policy);
            foreach (var (operation, page) in steps)
            {
                int index = state->Find(Linear(page), PageSize.Size4K, 0);
                int way = reference.WayOf(page);
                Assert.Equal(way, index);
                switch (operation)
                {
                    case Operation.Fill when way < 0:
                        state->Insert(-1, Linear(page), PageSize.Size4K, 0, default);
                        reference.Fill(page);
                        break;
                    case Operation.Hit when way >= 0:
                        state->Touch(index);
                        reference.Touch(way);
                        break;
                    case Operation.Drop when way >= 0:
                        state->Drop(index);
                        reference.Drop(way);
                        break;
                }
            }
            foreach (var (page, way) in reference.Pages())
                Assert.Equal(way, state->Find(Linear(page), PageSize.Size4K, 0));
        });
    }

    /// <summary>
    /// One set, written the plain way: a slot per way, and for LRU the time of each way's last use, for tree-PLRU a
    /// boolean per tree node (true: the victim is on the right).
    /// </summary>
    sealed class ReferenceSet(int ways, TlbReplacement policy)
    {
        readonly ulong?[] slots = new ulong?[ways];
        readonly long[] lastUse = new long[ways];
        long clock;
        readonly int leaves = (int)BitOperations.RoundUpToPowerOf2((uint)ways);
        readonly bool[] pointsRight = new bool[BitOperations.RoundUpToPowerOf2((uint)ways)]; // leaves - 1 nodes, from 0

        public int WayOf(ulong page) => Array.IndexOf(slots, page);

        public IEnumerable<(ulong Page, int Way)> Pages() =>
            slots.Select((page, way) => (page, way)).Where(s => s.page.HasValue).Select(s => (s.page!.Value, s.way));

        public void Fill(ulong page)
        {
            int way = Array.IndexOf(slots, null);
            if (way < 0) way = Victim();
            slots[way] = page;
            Touch(way);
        }

        public void Drop(int way) => slots[way] = null;

        int Victim() => policy == TlbReplacement.Lru ? Array.IndexOf(lastUse, lastUse.Min()) : TreeVictim();

        /// <summary>Follows the node bits down; a node with no real way on its right leads left.</summary>
        int TreeVictim()
        {
            int node = 0, first = 0;
            for (int span = leaves / 2; span >= 1; span /= 2)
            {
                bool right = pointsRight[node] && first + span < ways;
                if (right) first += span;
                node = 2 * node + (right ? 2 : 1);
            }
            return first;
        }

        /// <summary>Records a use: the way's time, and every node on its path pointed away from it.</summary>
        public void Touch(int way)
        {
            lastUse[way] = ++clock;
            int node = 0, first = 0;
            for (int span = leaves / 2; span >= 1; span /= 2)
            {
                bool right = way >= first + span;
                pointsRight[node] = !right;
                if (right) first += span;
                node = 2 * node + (right ? 2 : 1);
            }
        }
    }
}
