using KernelDsl.Launching;

namespace KernelDsl.Runtime.Tests;

/// <summary>
/// The host half of the paged decode launchers: the device copy of a batch, each refusal naming its argument and rule,
/// a fuzzed batch (page table and query totals) refused exactly when an independent check says a read would leave the
/// pages it lists or a sequence's queries would not be among its tokens, and the split rule.
/// </summary>
public class KvDecodeWorkTests(ITestOutputHelper output)
{
    [Fact]
    public void A_batch_becomes_its_table_rows_then_its_lengths_then_its_query_totals()
    {
        // Pages of 4: sequence 0 holds 5 tokens (2 pages) and asks 1 query, sequence 1 holds 4 (1 page; the −1 past it is
        // left as is) and asks 3.
        using var work = KvDecodeWork.Build([0, 1, 4], [5, 4], [3, 0, 2, -1], tablePages: 2, pages: 4, pageSize: 4);
        Assert.Equal([3, 0, 2, -1, 5, 4, 0, 1, 4], work.Span.ToArray());
        Assert.Equal(9, KvDecodeWork.Length(2, 2));
        Assert.Equal(4, KvDecodeWork.Queries([0, 1, 4]));
        Assert.Equal(3, KvDecodeWork.MostQueries([0, 1, 4]));
        Assert.Equal([0, 2, 4, 6], KvDecodeWork.Uniform(3, 2));
    }

    [Fact]
    public void Two_sequences_may_share_a_page_a_decode_only_reads()
    {
        using var work = KvDecodeWork.Build([0, 2, 4], [8, 6], [1, 2, 1, 3], tablePages: 2, pages: 4, pageSize: 4);
        Assert.Equal(9, work.Length);
    }

    [Fact]
    public void The_duplicate_check_carries_nothing_from_one_batch_to_the_next()
    {
        // The same pages row after row and batch after batch, with refused batches between (each stops mid-check): only a
        // page twice within one row is refused.
        for (var round = 0; round < 3; round++)
        {
            using (var work = KvDecodeWork.Build([0, 1, 2], [8, 8], [1, 2, 1, 2], tablePages: 2, pages: 4, pageSize: 4))
            {
                Assert.Equal([1, 2, 1, 2, 8, 8, 0, 1, 2], work.Span.ToArray());
            }
            Assert.Equal("pageTable", Assert.Throws<ArgumentException>(() => KvDecodeWork.Build([0, 1, 2], [8, 8], [1, 2, 2, 2], 2, 4, 4)).ParamName);
            Assert.Equal("pageTable", Assert.Throws<ArgumentException>(() => KvDecodeWork.Build([0, 1, 2], [8, 8], [3, 3, 1, 2], 2, 4, 4)).ParamName);
        }
    }

    [Fact]
    public void A_sequence_may_ask_no_query_in_a_batch_of_chunks()
    {
        using var work = KvDecodeWork.Build([0, 0, 7], [5, 7], [3, 0, 2, 1], tablePages: 2, pages: 4, pageSize: 4);
        Assert.Equal([3, 0, 2, 1, 5, 7, 0, 0, 7], work.Span.ToArray());
    }

    [Theory]
    [InlineData(new[] { 0, 5, 10 }, new[] { 5, 4 }, new[] { 3, 0, 2, -1 }, 2, "lengths", "'lengths'[1] = 4: the sequence's 5 query token(s) (cuQueries) are among its tokens")]
    [InlineData(new[] { 0, 1, 2 }, new[] { 9, 4 }, new[] { 3, 0, 2, -1 }, 2, "lengths", "need 3 pages of 4, but 'pageTable' rows have 2")]
    [InlineData(new[] { 0, 1, 2 }, new[] { 5, 4 }, new[] { 3, -1, 2, -1 }, 2, "pageTable", "'pageTable'[0, 1] = -1 is not a page of the pool (0 to 3): sequence 0 reads pages 0 to 1")]
    [InlineData(new[] { 0, 1, 2 }, new[] { 5, 4 }, new[] { 3, 4, 2, -1 }, 2, "pageTable", "'pageTable'[0, 1] = 4 is not a page of the pool")]
    [InlineData(new[] { 0, 1, 2 }, new[] { 5, 4 }, new[] { 3, 3, 2, -1 }, 2, "pageTable", "page 3 is in 'pageTable'[0, 0] and [0, 1]")]
    [InlineData(new[] { 0, 1, 2 }, new[] { 5, 4 }, new[] { 3, 0, 2, 7 }, 2, "pageTable", "past a row's needed pages, an entry is −1 or a page")]
    [InlineData(new[] { 0, 1, 2 }, new[] { 5, 4 }, new[] { 3, 0, 2 }, 2, "pageTable", "'pageTable' has 3 entries")]
    [InlineData(new[] { 0 }, new int[0], new int[0], 2, "lengths", "'lengths' is empty")]
    [InlineData(new[] { 0, 1 }, new[] { 5, 4 }, new[] { 3, 0, 2, -1 }, 2, "cuQueries", "'cuQueries' has 2 entries: 2 sequences (lengths) need 3")]
    [InlineData(new[] { 1, 2, 3 }, new[] { 5, 4 }, new[] { 3, 0, 2, -1 }, 2, "cuQueries", "'cuQueries'[0] = 1: running totals start at 0")]
    [InlineData(new[] { 0, 3, 2 }, new[] { 5, 4 }, new[] { 3, 0, 2, -1 }, 2, "cuQueries", "'cuQueries'[2] = 2 is below 'cuQueries'[1] = 3")]
    public void A_bad_batch_is_refused_naming_the_argument(int[] cuQueries, int[] lengths, int[] table, int tablePages, string parameter, string message)
    {
        var error = Assert.ThrowsAny<ArgumentException>(() => KvDecodeWork.Build(cuQueries, lengths, table, tablePages, pages: 4, pageSize: 4));
        Assert.Equal(parameter, error.ParamName);
        Assert.Contains(message, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Fuzzed_page_tables_are_refused_exactly_when_a_read_would_leave_the_rows_pages()
    {
        var seed = Random.Shared.Next();
        output.WriteLine($"seed {seed}");
        var random = new Random(seed);
        var (refused, accepted) = (0, 0);
        for (var trial = 0; trial < 2000; trial++)
        {
            const int PageSize = 64;
            var (batch, width, pages) = (random.Next(1, 5), random.Next(1, 6), random.Next(1, 12));
            // Query counts from 0 to a long chunk; now and then a total that decreases.
            var counts = Enumerable.Range(0, batch).Select(_ => random.Next(4) == 0 ? random.Next(0, 300) : random.Next(0, 17)).ToArray();
            var cuQueries = new int[batch + 1];
            for (var i = 0; i < batch; i++)
            {
                cuQueries[i + 1] = cuQueries[i] + counts[i];
            }
            if (random.Next(20) == 0)
            {
                cuQueries[random.Next(1, batch + 1)] = -1;
            }
            var lengths = Enumerable.Range(0, batch).Select(_ => random.Next(0, width * PageSize + 70)).ToArray();
            var table = Enumerable.Range(0, batch * width).Select(_ => random.Next(-2, pages + 2)).ToArray();
            var valid = true;
            for (var i = 0; i < batch; i++)
            {
                var needed = (lengths[i] + PageSize - 1) / PageSize;
                var row = table.AsSpan(i * width, width).ToArray();
                var queries = cuQueries[i + 1] - cuQueries[i];
                valid &= queries >= 0 && lengths[i] >= queries && needed <= width
                    && row.Take(needed).All(p => p >= 0 && p < pages) && row.Take(needed).Distinct().Count() == needed
                    && row.Skip(needed).All(p => p == -1 || (p >= 0 && p < pages));
            }
            if (valid)
            {
                using var work = KvDecodeWork.Build(cuQueries, lengths, table, width, pages, PageSize);
                Assert.Equal(table.Concat(lengths).Concat(cuQueries), work.Span.ToArray());
                accepted++;
            }
            else
            {
                var error = Assert.ThrowsAny<ArgumentException>(() => KvDecodeWork.Build(cuQueries, lengths, table, width, pages, PageSize));
                Assert.Contains(error.ParamName, new[] { "lengths", "pageTable", "cuQueries" });
                refused++;
            }
        }
        output.WriteLine($"{accepted} accepted, {refused} refused");
        Assert.True(accepted > 0 && refused > 0);
    }

    [Theory]
    [InlineData(32768, 1, 264, 4, 128)]    // one sequence: the 264 splits that fill 132 SMs twice, capped at 512 pages / 4
    [InlineData(32768, 8, 132, 4, 16)]     // GQA 64:8 at B = 1: 16 × 8 blocks fill 132 slots once; 17 would leave 4 for a second wave
    [InlineData(32768, 16, 132, 4, 8)]     // Sq = 4 at GQA 8:1 takes two row tiles: 8 splits, not the 9 that spill 12 blocks over
    [InlineData(8192, 1, 132, 4, 32)]      // 128 pages / 4 per split caps the 132 wanted
    [InlineData(32768, 264, 264, 4, 1)]    // a full grid already
    [InlineData(32768, 512, 132, 4, 1)]    // B = 64 at GQA 64:8: a split's blocks are already four waves; more splits only add waves
    [InlineData(32768, 100, 396, 4, 3)]    // three blocks an SM: 300 blocks in one wave, not 400 in two
    [InlineData(32768, 200, 132, 4, 1)]    // more blocks than slots: one split
    [InlineData(100, 1, 264, 4, 1)]        // 2 pages: fewer than a split's 4 pages per warp allow more
    [InlineData(4096, 8, 264, 4, 16)]      // 64 pages / 4 per split caps the 33 wanted
    public void Splits_are_the_most_that_run_as_one_wave_without_starving_a_blocks_warps(int longest, long blocks, int residentBlocks, int pagesPerSplit, int expected) =>
        Assert.Equal(expected, KvDecodeWork.Splits(longest, 64, blocks, residentBlocks, pagesPerSplit));

    [Fact]
    public void Splits_never_launch_a_wave_more_than_one_split_needs()
    {
        var seed = Random.Shared.Next();
        output.WriteLine($"seed {seed}");
        var random = new Random(seed);
        for (var trial = 0; trial < 2000; trial++)
        {
            var (longest, blocks, resident, perSplit) = (random.Next(1, 65537), (long)random.Next(1, 600), random.Next(1, 1200), random.Next(1, 9));
            var splits = KvDecodeWork.Splits(longest, 64, blocks, resident, perSplit);
            var waves = (blocks * splits + resident - 1) / resident;
            var oneSplitWaves = (blocks + resident - 1) / resident;
            Assert.True(splits >= 1, $"{splits} splits");
            Assert.True(waves == oneSplitWaves, $"longest {longest}, {blocks} blocks, {resident} slots: {splits} splits take {waves} waves, one split {oneSplitWaves}");
            var pages = ((long)longest + 63) / 64;
            Assert.True(splits == 1 || pages / splits >= perSplit, $"{splits} splits of {pages} pages leave fewer than {perSplit} a split");
            // Not one fewer than it could: one more split would cross into another wave or starve a split.
            var more = splits + 1;
            Assert.True((blocks * more + resident - 1) / resident > oneSplitWaves || pages / more < perSplit,
                $"longest {longest}, {blocks} blocks, {resident} slots: {more} splits would still fit; the rule took {splits}");
        }
    }
}
