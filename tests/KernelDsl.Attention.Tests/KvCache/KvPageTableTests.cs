using KernelDsl.Attention.KvCache;

namespace AttentionTests.KvCache;

/// <summary>
/// The paged cache's bookkeeping against an independent model: each sequence's tokens listed one by one. Every token
/// must have exactly one (page, slot), no page may serve two sequences, and a refused call must change nothing.
/// </summary>
public class KvPageTableTests(ITestOutputHelper output)
{
    [Fact]
    public void Appends_across_page_boundaries_take_pages_in_order_and_locate_every_token()
    {
        var table = new KvPageTable(pages: 8, pageSize: 4);
        var a = table.AddSequence();
        Assert.Equal(0, table.Append(a, 3));       // one page, three slots
        Assert.Equal(3, table.Append(a, 2));       // fills page 0, opens a second
        Assert.Equal(5, table.LengthOf(a));
        Assert.Equal(new[] { 0, 1 }, table.PagesOf(a));
        Assert.Equal((0, 3), table.Locate(a, 3));
        Assert.Equal((1, 0), table.Locate(a, 4));
        Assert.Equal(6, table.FreePages);
        Assert.Equal(5, table.Append(a, 0));       // nothing to add, nothing taken
        Assert.Equal(6, table.FreePages);
    }

    [Fact]
    public void A_random_life_of_appends_and_frees_keeps_every_token_on_a_page_of_its_own_sequence()
    {
        var seed = Random.Shared.Next();
        var random = new Random(seed);
        var table = new KvPageTable(pages: 64, pageSize: 16);
        var model = new Dictionary<int, int>();   // sequence -> length
        for (var step = 0; step < 2000; step++)
        {
            var roll = random.Next(10);
            if (roll < 2 || model.Count == 0)
            {
                model[table.AddSequence()] = 0;
            }
            else if (roll < 3)
            {
                var victim = model.Keys.ElementAt(random.Next(model.Count));
                table.Free(victim);
                model.Remove(victim);
            }
            else
            {
                var sequence = model.Keys.ElementAt(random.Next(model.Count));
                var tokens = random.Next(0, 40);
                var free = table.FreePages;
                var needed = (model[sequence] + tokens + 15) / 16 - (model[sequence] + 15) / 16;
                if (needed > free)
                {
                    Assert.Throws<InvalidOperationException>(() => table.Append(sequence, tokens));
                    Assert.Equal(free, table.FreePages);   // refused before any change
                }
                else
                {
                    Assert.Equal(model[sequence], table.Append(sequence, tokens));
                    model[sequence] += tokens;
                }
            }

            // Every page is either free or owned by exactly one sequence, and each sequence owns just enough pages.
            var owned = model.Keys.SelectMany(s => table.PagesOf(s)).ToList();
            Assert.Equal(owned.Count, owned.Distinct().Count());
            Assert.Equal(64, owned.Count + table.FreePages);
            Assert.All(model, s => Assert.Equal((s.Value + 15) / 16, table.PagesOf(s.Key).Count));
            Assert.All(model, s => Assert.Equal(s.Value, table.LengthOf(s.Key)));
        }
        // Every token of every live sequence has its own (page, slot).
        var slots = model.SelectMany(s => Enumerable.Range(0, s.Value).Select(t => table.Locate(s.Key, t))).ToList();
        Assert.Equal(slots.Count, slots.Distinct().Count());
        output.WriteLine($"seed {seed}: {model.Count} live sequences, {slots.Count} tokens, {table.FreePages} free pages");
    }

    [Fact]
    public void The_batch_table_lists_each_sequences_pages_in_order_padded_with_minus_one()
    {
        var table = new KvPageTable(pages: 10, pageSize: 2);
        var (a, b, c) = (table.AddSequence(), table.AddSequence(), table.AddSequence());
        table.Append(a, 5);   // 3 pages
        table.Append(b, 1);   // 1 page
        table.Append(a, 1);   // still 3 pages
        var (rows, pages, lengths) = table.Table([b, a, c]);
        Assert.Equal(3, pages);
        Assert.Equal(new[] { 1, 6, 0 }, lengths);
        int[] expected = [table.PagesOf(b)[0], -1, -1, .. table.PagesOf(a), -1, -1, -1];
        Assert.Equal(expected, rows);
    }

    [Fact]
    public void A_lent_table_equals_the_table_and_its_duplicate_check_holds_batch_after_batch()
    {
        var table = new KvPageTable(pages: 12, pageSize: 2);
        var (a, b, c) = (table.AddSequence(), table.AddSequence(), table.AddSequence());
        table.Append(a, 5);
        table.Append(b, 2);
        for (var round = 0; round < 100; round++)
        {
            // Each batch marks its sequences anew: one named in the previous batch, or never, is not a duplicate.
            using (var rows = table.Rent([b, a]))
            {
                var (expected, pages, lengths) = table.Table([b, a]);
                Assert.Equal(expected, rows.Table.ToArray());
                Assert.Equal(pages, rows.Pages);
                Assert.Equal(lengths, rows.Lengths.ToArray());
            }
            Assert.Equal("batch", Assert.Throws<ArgumentException>(() => table.Rent([a, b, a]).Dispose()).ParamName);
        }
        using var withC = table.Rent([c, a]);  // c, never batched before, has no pages: a row of −1
        Assert.Equal([-1, -1, -1, .. table.PagesOf(a)], withC.Table.ToArray());
    }

    [Fact]
    public void Misuse_is_refused_naming_the_argument_and_changes_nothing()
    {
        var table = new KvPageTable(pages: 2, pageSize: 4);
        var a = table.AddSequence();
        table.Append(a, 4);
        Assert.Equal("sequence", Assert.Throws<ArgumentException>(() => table.Append(99, 1)).ParamName);
        Assert.Equal("tokens", Assert.Throws<ArgumentOutOfRangeException>(() => table.Append(a, -1)).ParamName);
        Assert.Equal("token", Assert.Throws<ArgumentOutOfRangeException>(() => table.Locate(a, 4)).ParamName);
        Assert.Equal("token", Assert.Throws<ArgumentOutOfRangeException>(() => table.Locate(a, -1)).ParamName);
        var full = Assert.Throws<InvalidOperationException>(() => table.Append(a, 5));   // needs 2 more pages, 1 is free
        Assert.Contains("needs 2 more pages", full.Message, StringComparison.Ordinal);
        Assert.Equal((4, 1), (table.LengthOf(a), table.FreePages));
        Assert.Equal("batch", Assert.Throws<ArgumentException>(() => table.Table([a, a])).ParamName);
        Assert.Equal("batch", Assert.Throws<ArgumentException>(() => table.Table([a, 7])).ParamName);
        table.Free(a);
        Assert.Equal(2, table.FreePages);
        Assert.Equal("sequence", Assert.Throws<ArgumentException>(() => table.Free(a)).ParamName);
        Assert.Equal("pages", Assert.Throws<ArgumentOutOfRangeException>(() => new KvPageTable(0)).ParamName);
    }
}
