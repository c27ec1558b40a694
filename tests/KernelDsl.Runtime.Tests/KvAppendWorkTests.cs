using KernelDsl.Launching;

namespace KernelDsl.Runtime.Tests;

/// <summary>
/// The host half of the KV cache append launchers: a batch's work list, checked against an independent walk over each
/// sequence's token positions, and fuzzed batches (bad page tables, counts, slots) refused naming the argument.
/// </summary>
public class KvAppendWorkTests(ITestOutputHelper output)
{
    [Fact]
    public void A_batch_becomes_one_item_per_touched_page()
    {
        // Pages of 4. Sequence 0 holds 2 tokens and appends 7 (pages 0, 1, 2 of its row); sequence 1 appends none;
        // sequence 2 starts with 3.
        using var built = KvAppendWork.Build([0, 7, 7, 10], [2, 4, 0], [5, 1, 9, 2, -1, -1, 7, -1, -1], 3, [1, 0, 2], pages: 10, slots: 3, pageSize: 4, out var total);
        var work = built.Span.ToArray();
        Assert.Equal(10, total);
        int[] expected =
        [
            // page, start, fill, source, slot, stage from, stage to, stage source
            5, 2, 4, 0, 1, 0, 1, 6,   // the partial page: 2 staged + 2 new; it restages the new last page's one token (row 6)
            1, 0, 4, 2, 1, 0, 0, 0,
            9, 0, 1, 6, 1, 0, 0, 0,
            7, 0, 3, 7, 2, 0, 3, 7,   // a page that stays partial restages its own new tokens
        ];
        Assert.Equal(expected, work);
    }

    [Fact]
    public void Random_batches_cover_every_new_token_once_and_stage_each_new_partial_page()
    {
        var seed = Random.Shared.Next();
        output.WriteLine($"seed {seed}");
        var random = new Random(seed);
        for (var trial = 0; trial < 200; trial++)
        {
            var pageSize = new[] { 16, 64 }[random.Next(2)];
            var (batch, width) = Batch(random, pageSize, out var lengths, out var cu, out var table, out var slots, out var pages);
            using var built = KvAppendWork.Build(cu, lengths, table, width, slots, pages, slots.Max() + 1 + random.Next(3), pageSize, out var total);
            var work = built.Span.ToArray();
            Assert.Equal(cu[^1], total);
            Assert.True(work.Length / KvAppendWork.ItemInts <= KvAppendWork.MaxItems(batch, total, pageSize));
            var items = work.Chunk(KvAppendWork.ItemInts).ToArray();
            for (var i = 0; i < batch; i++)
            {
                // Which input row fills each position of the sequence, per the items; −1 = from staging.
                var end = lengths[i] + cu[i + 1] - cu[i];
                var row = new Dictionary<int, int>();
                var mine = items.Where(it => it[4] == slots[i]).ToArray();
                foreach (var it in mine)
                {
                    var p = Array.IndexOf(table, it[0], i * width, width) - i * width;
                    Assert.True(p >= 0, $"item page {it[0]} is not in row {i}");
                    for (var s = 0; s < it[2]; s++)
                    {
                        Assert.True(row.TryAdd(p * pageSize + s, s < it[1] ? -1 : it[3] + s - it[1]), $"position {p * pageSize + s} written twice");
                    }
                }
                var firstTouched = cu[i + 1] > cu[i] ? lengths[i] / pageSize * pageSize : end;
                var expectedPositions = Enumerable.Range(firstTouched, end - firstTouched);
                Assert.Equal(expectedPositions, row.Keys.Order());
                Assert.All(expectedPositions, q => Assert.Equal(q < lengths[i] ? -1 : cu[i] + q - lengths[i], row[q]));
                // Exactly one item restages, the first; it writes the new partial page's new tokens.
                var staging = mine.Where(it => it[6] > it[5]).ToArray();
                var partial = end % pageSize;
                if (cu[i + 1] == cu[i] || partial == 0)
                {
                    Assert.Empty(staging);
                    continue;
                }
                var only = Assert.Single(staging);
                Assert.Same(mine[0], only);
                var from = Math.Max(lengths[i], end - partial);
                Assert.Equal((from - (end - partial), partial, cu[i] + from - lengths[i]), (only[5], only[6], only[7]));
            }
        }
    }

    [Fact]
    public void Fuzzed_batches_are_refused_naming_the_argument()
    {
        var seed = Random.Shared.Next();
        output.WriteLine($"seed {seed}");
        var random = new Random(seed);
        var refused = 0;
        for (var trial = 0; trial < 2000; trial++)
        {
            var (batch, width) = Batch(random, 16, out var lengths, out var cu, out var table, out var slots, out var pages);
            var slotCount = slots.Max() + 1;
            var expected = "pageTable";
            var owned = Enumerable.Range(0, table.Length).Where(x => x % width < Needed(x / width)).ToArray();
            if (owned.Length == 0)
            {
                continue;  // no sequence holds a token
            }
            int Needed(int r) => (lengths[r] + cu[r + 1] - cu[r] + 15) / 16;
            switch (random.Next(9))
            {
                case 0: table[owned[random.Next(owned.Length)]] = random.Next(2) == 0 ? pages + random.Next(50) : -2 - random.Next(50); break;
                case 1:
                    var (a, b) = (owned[random.Next(owned.Length)], random.Next(table.Length));
                    if (a == b) continue;
                    table[b] = table[a];  // a page twice
                    break;
                case 2: table[owned[random.Next(owned.Length)]] = -1; break;  // a hole where tokens live
                case 3: table = table[..^1]; break;
                case 4:
                    var r = random.Next(batch);
                    lengths[r] += 16 * (width - Needed(r) + 1);  // more tokens than the row has pages
                    break;
                case 5:
                    var at = 1 + random.Next(batch);
                    cu[at] = cu[at - 1] - 1 - random.Next(3);
                    expected = "cuNewTokens";
                    break;
                case 6: cu[0] = 1; expected = "cuNewTokens"; break;
                case 7: slots[random.Next(batch)] = random.Next(2) == 0 ? slotCount + random.Next(5) : -1 - random.Next(5); expected = "stagingSlots"; break;
                default:
                    if (batch < 2) continue;
                    slots[0] = slots[1];
                    expected = "stagingSlots";
                    break;
            }
            var thrown = Assert.ThrowsAny<ArgumentException>(() => KvAppendWork.Build(cu, lengths, table, width, slots, pages, slotCount, 16, out _));
            Assert.Equal(expected, thrown.ParamName);
            Assert.DoesNotContain("Index was outside", thrown.Message);
            refused++;
        }
        output.WriteLine($"{refused} refused");
        Assert.True(refused > 1000);
    }

    /// <summary>A random valid batch: 1 to 5 sequences of 0 to 200 tokens appending 0 to 150, on shuffled pages, rows padded with −1.</summary>
    private static (int Batch, int Width) Batch(Random random, int pageSize, out int[] lengths, out int[] cu, out int[] table, out int[] slots, out int pages)
    {
        var batch = random.Next(1, 6);
        lengths = Enumerable.Range(0, batch).Select(_ => random.Next(0, 200)).ToArray();
        var counts = Enumerable.Range(0, batch).Select(_ => random.Next(0, 150)).ToArray();
        cu = new int[batch + 1];
        for (var i = 0; i < batch; i++)
        {
            cu[i + 1] = cu[i] + counts[i];
        }
        var needed = lengths.Zip(counts, (l, n) => (l + n + pageSize - 1) / pageSize).ToArray();
        var width = needed.Max() + random.Next(3);
        pages = needed.Sum() + random.Next(1, 10);
        var pool = Enumerable.Range(0, pages).OrderBy(_ => random.Next()).ToArray();
        table = Enumerable.Repeat(-1, batch * width).ToArray();
        var next = 0;
        for (var i = 0; i < batch; i++)
        {
            for (var j = 0; j < needed[i]; j++)
            {
                table[i * width + j] = pool[next++];
            }
        }
        slots = Enumerable.Range(0, batch + random.Next(3)).OrderBy(_ => random.Next()).Take(batch).ToArray();
        return (batch, width);
    }
}
