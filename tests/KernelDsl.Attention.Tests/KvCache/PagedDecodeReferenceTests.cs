using KernelDsl;
using KernelDsl.Attention.KvCache;
using KernelDsl.Attention.Reference;

namespace AttentionTests.KvCache;

/// <summary>
/// The decode kernel's algorithm on the CPU (<see cref="PagedDecodeReference.Int8"/>) against float64 over the original
/// tokens, under the prefill's bars for u8 P·V (relative L2 ≤ 3e-2, LSE within 0.1): Sq = 1, 4, 16, GQA 8:1 and 1:1,
/// lengths across page boundaries, one split and several. If the algorithm meets the bars here, a GPU result that misses
/// them is the kernel's fault.
/// </summary>
public class PagedDecodeReferenceTests(ITestOutputHelper output)
{
    private const double OutputBar = 3e-2, LseBar = 0.1;

    [Theory]
    [InlineData(1, 8, 1)]
    [InlineData(4, 8, 1)]
    [InlineData(16, 8, 1)]
    [InlineData(1, 2, 2)]
    [InlineData(16, 2, 2)]
    public void The_int8_algorithm_meets_the_prefill_bars(int seqQ, int headsQ, int headsKv)
    {
        var seed = Random.Shared.Next();
        output.WriteLine($"seed {seed}");
        var random = new Random(seed);
        const int D = 128;
        var lengths = new[] { 16, 63, 64, 65, 700 };
        var (model, ids, kPages, vPages) = Cache(random, D, headsKv, lengths);
        var queries = ids.Select(_ => Enumerable.Range(0, headsQ * seqQ * D).Select(_ => (double)(Half)AttentionTests.Reference.AttentionTestData.Normal(random)).ToArray()).ToList();
        var exact = PagedAttentionReference.Forward(model.Table, ids, queries, kPages, vPages, headsQ, headsKv, D, causal: true);
        var cache = PagedDecodeReference.Dequantized(model, ids, queries, headsQ);
        foreach (var splits in new[] { 1, 3 })
        {
            var int8 = PagedDecodeReference.Int8(model, ids, queries, headsQ, splits);
            for (var s = 0; s < ids.Length; s++)
            {
                var error = ErrorMetrics.Compare(int8[s].Output, exact[s].Output);
                var cacheError = ErrorMetrics.Compare(cache[s].Output, exact[s].Output);
                var lse = int8[s].Lse.Zip(exact[s].Lse).Max(p => Math.Abs(p.First - p.Second));
                output.WriteLine($"Sq {seqQ}, {headsQ}:{headsKv}, {splits} split(s), length {lengths[s]}: kernel model {error}, LSE |Δ| {lse:E2}; dequantized cache {cacheError}");
                Assert.True(error.RelativeL2 <= OutputBar, $"length {lengths[s]}: {error}");
                Assert.True(lse <= LseBar, $"length {lengths[s]}: LSE off by {lse}");
            }
        }
    }

    [Fact]
    public void A_query_sees_only_keys_up_to_its_own_position()
    {
        // Sq = 2 over 65 tokens: the first query sees keys 0..63 (one page), the second all 65; with V zero past key 63 the
        // first query's output must not move when those keys' values change.
        var random = new Random(5);
        const int D = 64;
        var (model, ids, _, _) = Cache(random, D, 1, [65]);
        var queries = new List<double[]> { Enumerable.Range(0, 2 * D).Select(_ => (double)(Half)AttentionTests.Reference.AttentionTestData.Normal(random)).ToArray() };
        var before = PagedDecodeReference.Int8(model, ids, queries, 1, 1);
        var page = model.Table.PagesOf(ids[0])[1];
        for (var i = 0; i < D; i++)
        {
            model.VCodes[(long)page * 64 * D + i] = 100;
        }
        var after = PagedDecodeReference.Int8(model, ids, queries, 1, 1);
        Assert.Equal(before[0].Output.AsSpan(0, D).ToArray(), after[0].Output.AsSpan(0, D).ToArray());
        Assert.NotEqual(before[0].Output.AsSpan(D, D).ToArray(), after[0].Output.AsSpan(D, D).ToArray());
    }

    /// <summary>A CPU cache of the given lengths (K with per-channel offsets, interleaved appends) and its originals by page.</summary>
    internal static (KvCacheModel Model, int[] Ids, double[] KPages, double[] VPages) Cache(Random random, int d, int headsKv, int[] lengths)
    {
        var pages = lengths.Sum(l => (l + 63) / 64) + 2;
        var model = new KvCacheModel(pages, lengths.Length, headsKv, d);
        var ids = lengths.Select(_ => model.AddSequence()).ToArray();
        var offsets = ids.Select(_ => KvCacheTestData.Offsets(random, headsKv, d)).ToArray();
        var (kPages, vPages) = (new double[(long)pages * headsKv * 64 * d], new double[(long)pages * headsKv * 64 * d]);
        var held = new int[lengths.Length];
        while (held.Zip(lengths).Any(x => x.First < x.Second))
        {
            var batch = Enumerable.Range(0, lengths.Length).Where(i => held[i] < lengths[i]).ToArray();
            var counts = batch.Select(i => Math.Min(lengths[i] - held[i], new[] { 1, 30, 64, 65, 200 }[random.Next(5)])).ToArray();
            var k = batch.Zip(counts).SelectMany(b => KvCacheTestData.Tokens(random, b.Second, headsKv, d, Element.F16, offsets[b.First])).ToArray();
            var v = batch.Zip(counts).SelectMany(b => KvCacheTestData.Tokens(random, b.Second, headsKv, d, Element.F16)).ToArray();
            model.Append(batch.Select(i => ids[i]).ToArray(), counts, k, v);
            var at = 0;
            for (var j = 0; j < batch.Length; j++)
            {
                for (var t = 0; t < counts[j]; t++, at++)
                {
                    var (page, slot) = model.Table.Locate(ids[batch[j]], held[batch[j]] + t);
                    for (var h = 0; h < headsKv; h++)
                    {
                        for (var c = 0; c < d; c++)
                        {
                            var (to, from) = (((page * headsKv + h) * 64L + slot) * d + c, ((long)at * headsKv + h) * d + c);
                            kPages[to] = KvCacheTestData.Value(k[from], Element.F16);
                            vPages[to] = KvCacheTestData.Value(v[from], Element.F16);
                        }
                    }
                }
                held[batch[j]] += counts[j];
            }
        }
        return (model, ids, kPages, vPages);
    }
}
