using KernelDsl.Attention.KvCache;
using AttentionTests.Reference;
using KernelDsl.Attention.Reference;

namespace AttentionTests.KvCache;

/// <summary>
/// The paged oracle against float64 attention on each sequence's contiguous tensors: sequences appended in interleaved
/// chunks (so their pages are not contiguous), lengths across page boundaries, GQA, decode rows and causal chunks.
/// </summary>
public class PagedAttentionReferenceTests
{
    private const int HeadsQ = 4, HeadsKv = 2, D = 16, PageSize = 8;

    [Fact]
    public void Attention_over_pages_equals_attention_over_each_sequences_own_tensors()
    {
        var random = new Random(Random.Shared.Next());
        var table = new KvPageTable(pages: 32, pageSize: PageSize);
        var lengths = new[] { 1, 8, 9, 37, 61 };
        var sequences = lengths.Select(_ => table.AddSequence()).ToArray();
        var kPages = Fill(new double[32 * HeadsKv * PageSize * D], double.NaN);   // untouched slots are NaN: reading one shows
        var vPages = Fill(new double[kPages.Length], double.NaN);
        var (k, v) = (lengths.Select(n => Gaussian(random, HeadsKv * n * D)).ToArray(), lengths.Select(n => Gaussian(random, HeadsKv * n * D)).ToArray());
        // Interleaved appends of up to 5 tokens, as a server's steps would grow them.
        var written = new int[lengths.Length];
        while (written.Zip(lengths).Any(p => p.First < p.Second))
        {
            for (var s = 0; s < lengths.Length; s++)
            {
                var count = Math.Min(random.Next(1, 6), lengths[s] - written[s]);
                if (count == 0)
                {
                    continue;
                }
                var first = table.Append(sequences[s], count);
                for (var t = first; t < first + count; t++)
                {
                    var (page, slot) = table.Locate(sequences[s], t);
                    for (var h = 0; h < HeadsKv; h++)
                    {
                        Array.Copy(k[s], (h * lengths[s] + t) * D, kPages, ((page * HeadsKv + h) * PageSize + slot) * D, D);
                        Array.Copy(v[s], (h * lengths[s] + t) * D, vPages, ((page * HeadsKv + h) * PageSize + slot) * D, D);
                    }
                }
                written[s] += count;
            }
        }
        foreach (var (causal, rows) in new[] { (false, 1), (false, 4), (true, 1), (true, 5) })
        {
            var queries = lengths.Select(n => Gaussian(random, HeadsQ * Math.Min(rows, n) * D)).ToArray();
            var paged = PagedAttentionReference.Forward(table, sequences, queries, kPages, vPages, HeadsQ, HeadsKv, D, causal);
            for (var s = 0; s < lengths.Length; s++)
            {
                var shape = new AttentionShape(1, HeadsQ, HeadsKv, queries[s].Length / (HeadsQ * D), lengths[s], D, causal);
                var expected = Float64Attention.Forward(shape, queries[s], k[s], v[s]);
                Assert.Equal(expected.Output, paged[s].Output);
                Assert.Equal(expected.Lse, paged[s].Lse);
            }
        }
    }

    [Fact]
    public void Misuse_is_refused_naming_the_argument()
    {
        var table = new KvPageTable(pages: 4, pageSize: PageSize);
        var (a, empty) = (table.AddSequence(), table.AddSequence());
        table.Append(a, 3);
        var pages = new double[4 * HeadsKv * PageSize * D];
        var q = new double[HeadsQ * D];
        Assert.Equal("queries", Assert.Throws<ArgumentException>(() => PagedAttentionReference.Forward(table, [a], [q, q], pages, pages, HeadsQ, HeadsKv, D)).ParamName);
        Assert.Equal("queries", Assert.Throws<ArgumentException>(() => PagedAttentionReference.Forward(table, [a], [new double[D + 1]], pages, pages, HeadsQ, HeadsKv, D)).ParamName);
        Assert.Equal("kPages", Assert.Throws<ArgumentException>(() => PagedAttentionReference.Forward(table, [a], [q], new double[10], pages, HeadsQ, HeadsKv, D)).ParamName);
        Assert.Equal("batch", Assert.Throws<ArgumentException>(() => PagedAttentionReference.Forward(table, [empty], [q], pages, pages, HeadsQ, HeadsKv, D)).ParamName);
    }

    private static double[] Gaussian(Random random, int count) => Enumerable.Range(0, count).Select(_ => AttentionTestData.Normal(random)).ToArray();

    private static double[] Fill(double[] values, double value)
    {
        Array.Fill(values, value);
        return values;
    }
}
