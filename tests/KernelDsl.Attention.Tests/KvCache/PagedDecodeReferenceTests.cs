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

    /// <remarks>The last rows run the other declared configurations: two warps, and eight on half-page steps.</remarks>
    [Theory]
    [InlineData(1, 8, 1, 4, 64)]
    [InlineData(4, 8, 1, 4, 64)]
    [InlineData(16, 8, 1, 4, 64)]
    [InlineData(1, 2, 2, 4, 64)]
    [InlineData(16, 2, 2, 4, 64)]
    [InlineData(4, 8, 1, 2, 64)]
    [InlineData(1, 8, 1, 8, 32)]
    [InlineData(16, 2, 2, 8, 32)]
    public void The_int8_algorithm_meets_the_prefill_bars(int seqQ, int headsQ, int headsKv, int warps, int stageKeys)
    {
        var seed = Random.Shared.Next();
        output.WriteLine($"seed {seed}");
        var random = new Random(seed);
        const int D = 128;
        var lengths = new[] { 16, 31, 33, 63, 64, 65, 700 };
        var (model, ids, kPages, vPages) = Cache(random, D, headsKv, lengths);
        var queries = ids.Select(_ => Enumerable.Range(0, headsQ * seqQ * D).Select(_ => (double)(Half)AttentionTests.Reference.AttentionTestData.Normal(random)).ToArray()).ToList();
        var exact = PagedAttentionReference.Forward(model.Table, ids, queries, kPages, vPages, headsQ, headsKv, D, causal: true);
        var cache = PagedDecodeReference.Dequantized(model, ids, queries, headsQ);
        foreach (var splits in new[] { 1, 3 })
        {
            var int8 = PagedDecodeReference.Int8(model, ids, queries, headsQ, splits, warps, stageKeys: stageKeys);
            for (var s = 0; s < ids.Length; s++)
            {
                var error = ErrorMetrics.Compare(int8[s].Output, exact[s].Output);
                var cacheError = ErrorMetrics.Compare(cache[s].Output, exact[s].Output);
                var lse = int8[s].Lse.Zip(exact[s].Lse).Max(p => Math.Abs(p.First - p.Second));
                output.WriteLine($"Sq {seqQ}, {headsQ}:{headsKv}, {warps} warps × {stageKeys} keys, {splits} split(s), length {lengths[s]}: kernel model {error}, LSE |Δ| {lse:E2}; dequantized cache {cacheError}");
                Assert.True(error.RelativeL2 <= OutputBar, $"length {lengths[s]}: {error}");
                Assert.True(lse <= LseBar, $"length {lengths[s]}: LSE off by {lse}");
            }
        }
    }

    /// <summary>
    /// Chunked prefill on the CPU: tokens arrive in random chunks (1 to 300), each chunk is appended (the partial page
    /// requantized from its originals) and then its queries run the kernel's algorithm over the cache as it stands. Every
    /// token's O and LSE meet the bars against float64 causal attention over the whole original sequence, as a one-shot
    /// prefill must: a chunk sees its own keys and all earlier ones, never later ones.
    /// </summary>
    [Theory]
    [InlineData(4, 2)]
    [InlineData(8, 1)]
    public void Chunked_prefill_by_the_int8_algorithm_meets_the_bars_of_a_one_shot_prefill(int headsQ, int headsKv)
    {
        var seed = Random.Shared.Next();
        output.WriteLine($"seed {seed}");
        CheckChunkedPrefill(output, new Random(seed), headsQ, headsKv, 64, [500, 190], null, $"{headsQ}:{headsKv}");
    }

    /// <summary>
    /// Appends sequences of <paramref name="lengths"/> to a CPU cache in random chunks (1 to 300 tokens; a sequence that is
    /// done stays in the batch with none), runs each chunk's queries through the kernel's int8 algorithm over the cache as
    /// it then stands, and holds every token's O and LSE to the prefill's bars against one float64 causal attention over
    /// the whole original sequence (with <paramref name="modifiers"/>, if any, at the tokens' positions).
    /// </summary>
    internal static void CheckChunkedPrefill(ITestOutputHelper output, Random random, int headsQ, int headsKv, int d, int[] lengths,
        AttentionModifiers? modifiers, string what)
    {
        var model = new KvCacheModel(lengths.Sum(l => (l + 63) / 64) + 2, lengths.Length, headsKv, d);
        var ids = lengths.Select(_ => model.AddSequence()).ToArray();
        var q = lengths.Select(n => KvCacheTestData.Tokens(random, n * headsQ, 1, d, Element.F16)).ToArray();
        var k = lengths.Select(n => KvCacheTestData.Tokens(random, n, headsKv, d, Element.F16, KvCacheTestData.Offsets(random, headsKv, d))).ToArray();
        var v = lengths.Select(n => KvCacheTestData.Tokens(random, n, headsKv, d, Element.F16)).ToArray();
        // Each sequence's O [Hq][n][D] and LSE [Hq][n], filled chunk by chunk.
        var o = lengths.Select(n => new double[headsQ * n * d]).ToArray();
        var lse = lengths.Select(n => new double[headsQ * n]).ToArray();
        var held = new int[lengths.Length];
        while (held.Zip(lengths).Any(x => x.First < x.Second))
        {
            var counts = lengths.Select((n, i) => Math.Min(n - held[i], new[] { 1, 17, 64, 65, 300 }[random.Next(5)])).ToArray();
            ushort[] Slice(ushort[][] x, int width) => counts.SelectMany((c, i) => x[i].AsSpan(held[i] * width, c * width).ToArray()).ToArray();
            model.Append(ids, counts, Slice(k, headsKv * d), Slice(v, headsKv * d));
            // Every sequence, query-less ones included, so a modifier's b is the index in the batch.
            var queries = lengths.Select((_, i) => KvCacheTestData.HeadMajor(q[i], held[i], counts[i], headsQ, d, Element.F16)).ToList();
            var chunk = PagedDecodeReference.Int8(model, ids, queries, headsQ, splits: 2, modifiers: modifiers);
            for (var i = 0; i < lengths.Length; i++)
            {
                for (var h = 0; h < headsQ; h++)
                {
                    chunk[i].Output.AsSpan(h * counts[i] * d, counts[i] * d).CopyTo(o[i].AsSpan((h * lengths[i] + held[i]) * d));
                    chunk[i].Lse.AsSpan(h * counts[i], counts[i]).CopyTo(lse[i].AsSpan(h * lengths[i] + held[i]));
                }
                held[i] += counts[i];
            }
        }
        for (var i = 0; i < lengths.Length; i++)
        {
            var n = lengths[i];
            var shape = new AttentionShape(1, headsQ, headsKv, n, n, d, causal: true);
            double[] Whole(ushort[] x, int heads) => KvCacheTestData.HeadMajor(x, 0, n, heads, d, Element.F16);
            var exact = Float64Attention.Forward(shape, Whole(q[i], headsQ), Whole(k[i], headsKv), Whole(v[i], headsKv), modifiers: modifiers);
            var error = ErrorMetrics.Compare(o[i], exact.Output);
            var worstLse = lse[i].Zip(exact.Lse).Max(p => Math.Abs(p.First - p.Second));
            output.WriteLine($"{what}, length {n}: chunked {error}, LSE |Δ| {worstLse:E2}");
            Assert.True(error.RelativeL2 <= OutputBar, $"{what}, length {n}: {error}");
            Assert.True(worstLse <= LseBar, $"{what}, length {n}: LSE off by {worstLse}");
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
