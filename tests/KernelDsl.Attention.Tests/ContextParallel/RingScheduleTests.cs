using KernelDsl.Attention.ContextParallel;

namespace AttentionTests.ContextParallel;

/// <summary>
/// The ring schedule against an independent count of the attention matrix: every (query, key) score the mask shows is
/// computed exactly once over all ranks and steps, none it hides, and the zig-zag split keeps ranks level step by step.
/// </summary>
public class RingScheduleTests(ITestOutputHelper output)
{
    /// <summary>Rank counts 1..8 by lengths from the fewest tokens a split allows to three times that, plus one: odd and uneven ones included.</summary>
    public static TheoryData<int, SequenceSplit> Splits()
    {
        var data = new TheoryData<int, SequenceSplit>();
        for (var ranks = 1; ranks <= 8; ranks++)
        {
            data.Add(ranks, SequenceSplit.ZigZag);
            data.Add(ranks, SequenceSplit.Contiguous);
        }
        return data;
    }

    private static IEnumerable<SequencePartition> Partitions(int ranks, SequenceSplit split)
    {
        var chunks = split == SequenceSplit.ZigZag ? 2 * ranks : ranks;
        for (var tokens = chunks; tokens <= 3 * chunks + 1; tokens++)
        {
            yield return new SequencePartition(ranks, tokens, split);
        }
    }

    [Theory]
    [MemberData(nameof(Splits))]
    public void Chunks_tile_the_sequence_in_order_and_each_rank_holds_its_own_back_to_back(int ranks, SequenceSplit split)
    {
        foreach (var partition in Partitions(ranks, split))
        {
            var next = 0;
            for (var c = 0; c < partition.ChunkCount; c++)
            {
                var chunk = partition.Chunk(c);
                Assert.Equal(next, chunk.Start);
                Assert.InRange(chunk.Length, partition.Tokens / partition.ChunkCount, partition.Tokens / partition.ChunkCount + 1);
                Assert.Contains(c, partition.ChunksOf(partition.OwnerOf(c)));
                next = chunk.End;
            }
            Assert.Equal(partition.Tokens, next);
            for (var r = 0; r < ranks; r++)
            {
                var held = partition.ChunksOf(r);
                Assert.Equal(held.Order(), held);
                Assert.All(held, c => Assert.Equal(r, partition.OwnerOf(c)));
                var local = 0;
                foreach (var c in held)
                {
                    Assert.Equal(new TokenRange(local, partition.Chunk(c).Length), partition.LocalRange(c));
                    local += partition.Chunk(c).Length;
                }
                Assert.Equal(local, partition.LocalTokens(r));
                Assert.Equal(held.Select(partition.Chunk), partition.RangesOf(r));
            }
            Assert.Equal(partition.Tokens, Enumerable.Range(0, ranks).Sum(partition.LocalTokens));
            // Zig-zag ranks hold a short and a long chunk's worth each: their totals differ by at most one token.
            if (split == SequenceSplit.ZigZag)
            {
                var sizes = Enumerable.Range(0, ranks).Select(partition.LocalTokens).ToArray();
                Assert.True(sizes.Max() - sizes.Min() <= 1, $"{partition}: local sizes {string.Join(", ", sizes)}");
            }
        }
    }

    [Theory]
    [MemberData(nameof(Splits))]
    public void Every_visible_score_is_computed_exactly_once_and_no_masked_one_ever(int ranks, SequenceSplit split)
    {
        foreach (var causal in new[] { false, true })
        {
            foreach (var partition in Partitions(ranks, split))
            {
                var schedule = new RingSchedule(partition, causal);
                var count = new int[partition.Tokens, partition.Tokens];
                for (var r = 0; r < ranks; r++)
                {
                    for (var step = 0; step < schedule.Steps; step++)
                    {
                        var source = schedule.KvSource(r, step);
                        foreach (var block in schedule.Blocks(r, step))
                        {
                            Assert.Equal(r, partition.OwnerOf(block.QChunk));
                            Assert.Equal(source, partition.OwnerOf(block.KvChunk));
                            var (qs, ks) = (partition.Chunk(block.QChunk), partition.Chunk(block.KvChunk));
                            var visible = 0;
                            for (var q = qs.Start; q < qs.End; q++)
                            {
                                for (var k = ks.Start; k < ks.End; k++)
                                {
                                    var masked = causal && k > q;
                                    var computed = block.Visibility switch
                                    {
                                        BlockVisibility.Full => true,
                                        // The kernel's causal call on a chunk against itself: row i sees keys ≤ i + (Sk − Sq) = i.
                                        BlockVisibility.CausalDiagonal => k - ks.Start <= q - qs.Start,
                                        _ => false,
                                    };
                                    if (computed)
                                    {
                                        Assert.False(masked, $"{schedule}: rank {r} step {step} {block} computes masked ({q}, {k})");
                                        count[q, k]++;
                                        visible++;
                                    }
                                }
                            }
                            Assert.Equal(visible, schedule.VisibleScores(block));
                            // A diagonal block is a chunk against itself, square, where top-left and bottom-right alignment agree.
                            Assert.True(block.Visibility != BlockVisibility.CausalDiagonal || (block.QChunk == block.KvChunk && qs == ks));
                            // A computed block holds some visible score: no kernel call is wasted on a hidden block.
                            Assert.True(!block.Computed || visible > 0, $"{schedule}: {block} is computed but hidden");
                        }
                    }
                }
                for (var q = 0; q < partition.Tokens; q++)
                {
                    for (var k = 0; k < partition.Tokens; k++)
                    {
                        Assert.True(count[q, k] == (causal && k > q ? 0 : 1), $"{schedule}: ({q}, {k}) computed {count[q, k]} times");
                    }
                }
            }
        }
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(5)]
    [InlineData(8)]
    public void K_and_V_travel_one_hop_per_step_and_every_rank_meets_every_shard_once(int ranks)
    {
        var schedule = new RingSchedule(new SequencePartition(ranks, 4 * ranks + 3, SequenceSplit.ZigZag), Causal: true);
        for (var r = 0; r < ranks; r++)
        {
            Assert.Equal(r, schedule.KvSource(r, 0));
            Assert.Equal(r, schedule.ReceivesFrom(schedule.SendsTo(r)));
            Assert.Equal(Enumerable.Range(0, ranks), Enumerable.Range(0, schedule.Steps).Select(t => schedule.KvSource(r, t)).Order());
            for (var step = 1; step < schedule.Steps; step++)
            {
                // What a rank holds at step t is what the rank before it held at step t − 1.
                Assert.Equal(schedule.KvSource(schedule.ReceivesFrom(r), step - 1), schedule.KvSource(r, step));
            }
        }
    }

    [Theory]
    [MemberData(nameof(Splits))]
    public void Zig_zag_keeps_causal_ranks_level_at_every_step_and_contiguous_does_not(int ranks, SequenceSplit split)
    {
        foreach (var partition in Partitions(ranks, split))
        {
            var schedule = new RingSchedule(partition, Causal: true);
            var longest = Enumerable.Range(0, partition.ChunkCount).Max(c => partition.Chunk(c).Length);
            long criticalPath = 0, total = 0, widest = 0;
            for (var step = 0; step < schedule.Steps; step++)
            {
                var work = Enumerable.Range(0, ranks).Select(r => schedule.VisibleScores(r, step)).ToArray();
                criticalPath += work.Max();
                total += work.Sum();
                widest = Math.Max(widest, work.Max() - work.Min());
            }
            if (split == SequenceSplit.ZigZag)
            {
                // Equal chunks give equal work; chunks one token longer move a rank's work by a few rows or columns of
                // one chunk (at most 4 × the longest chunk), which is under one chunk pair (longest²) once chunks have 4 tokens.
                Assert.True(widest <= 4 * longest, $"{partition}: ranks differ by {widest} scores in one step; the longest chunk has {longest} tokens");
                Assert.True(criticalPath <= total / ranks + schedule.Steps * 4L * longest, $"{partition}: critical path {criticalPath}, total {total}");
            }
            else if (ranks >= 4)
            {
                // The last rank computes at every step while the first idles after step 0: about twice the even share.
                Assert.True(criticalPath >= 1.5 * total / ranks, $"{partition}: critical path {criticalPath}, total {total}");
            }
        }
        var example = new RingSchedule(new SequencePartition(ranks, 64 * 2 * ranks, split), Causal: true);
        output.WriteLine($"{split} N = {ranks}, 128 tokens per rank, causal: scores per rank per step " +
            string.Join(" | ", Enumerable.Range(0, example.Steps).Select(t => string.Join(" ", Enumerable.Range(0, ranks).Select(r => example.VisibleScores(r, t))))));
    }

    [Fact]
    public void Zig_zag_blocks_at_a_step_are_one_diagonal_pair_or_one_full_chunk_pair_per_rank()
    {
        // N = 4, 8 chunks of 3: rank 1 holds chunks 1 and 6.
        var schedule = new RingSchedule(new SequencePartition(4, 24, SequenceSplit.ZigZag), Causal: true);
        Assert.Equal(
            [new(1, 1, BlockVisibility.CausalDiagonal), new(1, 6, BlockVisibility.Skipped), new(6, 1, BlockVisibility.Full), new(6, 6, BlockVisibility.CausalDiagonal)],
            schedule.Blocks(1, 0));
        // Step 1: rank 0's K/V (chunks 0, 7): both of rank 1's Q chunks see chunk 0, neither sees chunk 7.
        Assert.Equal(
            [new(1, 0, BlockVisibility.Full), new(1, 7, BlockVisibility.Skipped), new(6, 0, BlockVisibility.Full), new(6, 7, BlockVisibility.Skipped)],
            schedule.Blocks(1, 1));
        // Step 2: rank 3's K/V (chunks 3, 4): only the late Q chunk 6 sees them, both.
        Assert.Equal(
            [new(1, 3, BlockVisibility.Skipped), new(1, 4, BlockVisibility.Skipped), new(6, 3, BlockVisibility.Full), new(6, 4, BlockVisibility.Full)],
            schedule.Blocks(1, 2));
        Assert.All(schedule.Blocks(1, 2).Concat(schedule.Blocks(1, 0)), b => Assert.Equal(b.Visibility, schedule.Classify(b.QChunk, b.KvChunk)));
        Assert.All(new RingSchedule(schedule.Partition, Causal: false).Blocks(1, 2), b => Assert.Equal(BlockVisibility.Full, b.Visibility));
    }

    [Fact]
    public void Schedules_are_values()
    {
        Assert.Equal(new RingSchedule(new SequencePartition(4, 100, SequenceSplit.ZigZag), true), new RingSchedule(new SequencePartition(4, 100, SequenceSplit.ZigZag), true));
        Assert.NotEqual(new RingSchedule(new SequencePartition(4, 100, SequenceSplit.ZigZag), true), new RingSchedule(new SequencePartition(4, 100, SequenceSplit.Contiguous), true));
        Assert.NotEqual(new SequencePartition(4, 100, SequenceSplit.ZigZag), new SequencePartition(4, 101, SequenceSplit.ZigZag));
    }

    [Fact]
    public void Bad_partitions_and_indexes_are_refused_naming_the_argument()
    {
        Assert.Equal("ranks", Assert.Throws<ArgumentException>(() => new SequencePartition(0, 10, SequenceSplit.ZigZag)).ParamName);
        var tooShort = Assert.Throws<ArgumentException>(() => new SequencePartition(4, 7, SequenceSplit.ZigZag));
        Assert.Equal("tokens", tooShort.ParamName);
        Assert.Contains("8", tooShort.Message);
        Assert.Equal(4, new SequencePartition(4, 4, SequenceSplit.Contiguous).ChunkCount);
        Assert.Equal("split", Assert.Throws<ArgumentException>(() => new SequencePartition(2, 10, (SequenceSplit)7)).ParamName);
        var partition = new SequencePartition(2, 10, SequenceSplit.ZigZag);
        Assert.Equal("chunk", Assert.Throws<ArgumentOutOfRangeException>(() => partition.Chunk(4)).ParamName);
        Assert.Equal("rank", Assert.Throws<ArgumentOutOfRangeException>(() => partition.ChunksOf(2)).ParamName);
        var schedule = new RingSchedule(partition, true);
        Assert.Equal("step", Assert.Throws<ArgumentOutOfRangeException>(() => schedule.KvSource(0, 2)).ParamName);
        Assert.Equal("rank", Assert.Throws<ArgumentOutOfRangeException>(() => schedule.SendsTo(-1)).ParamName);
        Assert.Equal("Partition", Assert.Throws<ArgumentNullException>(() => new RingSchedule(null!, true)).ParamName);
    }
}
