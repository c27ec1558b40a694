using KernelDsl;
using KernelDsl.Attention.KvCache;
using KernelDsl.Attention.Reference;

namespace AttentionTests.KvCache;

/// <summary>
/// The paged cache's quantization (KvCacheQuantization) against float64, and its CPU model (KvCacheModel): a page
/// dequantizes to its originals within half a step, a filling page is requantized from its originals at every append,
/// any split of the same tokens into appends gives the same cache bit for bit, and a refused append changes nothing.
/// </summary>
public class KvCacheQuantizationTests(ITestOutputHelper output)
{
    private const double U = 1.0 / (1 << 24);  // float32's unit roundoff

    [Theory]
    [InlineData(1, 1, 64, Element.F16)]
    [InlineData(17, 3, 128, Element.F16)]
    [InlineData(64, 2, 128, Element.F16)]
    [InlineData(40, 2, 96, Element.BF16)]
    [InlineData(64, 1, 256, Element.BF16)]
    public void A_page_dequantizes_to_its_originals_within_half_a_step(int tokens, int headsKv, int headDim, Element input)
    {
        const int PageSize = 64;
        var seed = Random.Shared.Next();
        output.WriteLine($"seed {seed}");
        var random = new Random(seed);
        var offsets = KvCacheTestData.Offsets(random, headsKv, headDim);
        // [tokens][Hkv][D] as appended, then [Hkv][tokens][D] as a page is quantized.
        var kIn = KvCacheTestData.Tokens(random, tokens, headsKv, headDim, input, offsets);
        var vIn = KvCacheTestData.Tokens(random, tokens, headsKv, headDim, input);
        var (k, v) = (HeadMajor(kIn, tokens, headsKv, headDim), HeadMajor(vIn, tokens, headsKv, headDim));
        var page = KvCacheQuantization.QuantizePage(k, v, input, headsKv, tokens, headDim, PageSize);

        for (var h = 0; h < headsKv; h++)
        {
            double X(ushort[] x, int t, int c) => KvCacheTestData.Value(x[(h * tokens + t) * headDim + c], input);
            var kScale = (double)page.KScale[h];
            var absmax = 0.0;
            for (var c = 0; c < headDim; c++)
            {
                // The float32 mean in token order: recursive summation's bound, then one division.
                var (sum, magnitude) = (0.0, 0.0);
                for (var t = 0; t < tokens; t++)
                {
                    (sum, magnitude) = (sum + X(k, t, c), magnitude + Math.Abs(X(k, t, c)));
                }
                var mean = (double)page.KMean[h * headDim + c];
                Assert.True(Math.Abs(mean - sum / tokens) <= U * magnitude + U * Math.Abs(mean), $"head {h} channel {c}: mean {mean} vs {sum / tokens}");
                for (var t = 0; t < tokens; t++)
                {
                    absmax = Math.Max(absmax, Math.Abs(X(k, t, c) - mean));
                }
            }
            // A one-token page is its own mean: nothing is left to quantize, and an absmax of 0 takes scale 1.
            var expectedScale = absmax == 0 ? 1 : absmax / 127;
            Assert.True(Math.Abs(kScale - expectedScale) <= 4 * U * kScale, $"head {h}: K scale {kScale} vs {expectedScale}");
            var vMax = new int[headDim];
            for (var t = 0; t < tokens; t++)
            {
                for (var c = 0; c < headDim; c++)
                {
                    var at = (h * PageSize + t) * headDim + c;
                    var mean = (double)page.KMean[h * headDim + c];
                    var kError = Math.Abs(page.KCodes[at] * kScale + mean - X(k, t, c));
                    // Half a step, plus what the rounded reciprocal (codes are v · fl(1 / scale)) and k − mean's rounding add.
                    Assert.True(kError <= kScale * (0.5 + 128 * U) + 2 * U * Math.Abs(X(k, t, c) - mean), $"K head {h} token {t} channel {c}: error {kError}, step {kScale}");
                    var vScale = (double)page.VScale[h * headDim + c];
                    var vError = Math.Abs(page.VCodes[at] * vScale - X(v, t, c));
                    Assert.True(vError <= vScale * (0.5 + 128 * U), $"V head {h} token {t} channel {c}: error {vError}, step {vScale}");
                    vMax[c] = Math.Max(vMax[c], Math.Abs((int)page.VCodes[at]));
                }
            }
            // The largest value of the page (K) and of each channel (V) takes the whole code range.
            Assert.Equal(absmax == 0 ? 0 : 127, Enumerable.Range(0, tokens * headDim).Max(i => Math.Abs((int)page.KCodes[h * PageSize * headDim + i])));
            Assert.All(vMax, m => Assert.Equal(127, m));
            // Slots past the last token are code 0.
            Assert.All(Enumerable.Range(tokens * headDim, (PageSize - tokens) * headDim), i =>
            {
                Assert.Equal(0, page.KCodes[h * PageSize * headDim + i]);
                Assert.Equal(0, page.VCodes[h * PageSize * headDim + i]);
            });
        }
    }

    [Fact]
    public void A_filling_page_is_requantized_from_its_originals_at_every_append()
    {
        const int HeadsKv = 2, D = 64;
        var random = new Random(Random.Shared.Next());
        var offsets = KvCacheTestData.Offsets(random, HeadsKv, D);
        var model = new KvCacheModel(pages: 4, slots: 2, HeadsKv, D);
        var s = model.AddSequence();
        var first = KvCacheTestData.Tokens(random, 10, HeadsKv, D, Element.F16, offsets);
        var firstV = KvCacheTestData.Tokens(random, 10, HeadsKv, D, Element.F16);
        model.Append(s, first, firstV);
        var page = model.Table.PagesOf(s)[0];
        var codesAfterFirst = PageCodes(model.KCodes, page, HeadsKv, D);
        Assert.Equal(Quantized(first, firstV, 10, HeadsKv, D).KCodes, codesAfterFirst);

        // Shifted later tokens move the page's mean and scales: the first ten tokens' codes must be rewritten from their
        // originals, not kept (stale) nor requantized from their codes (compounding the error).
        var second = KvCacheTestData.Tokens(random, 25, HeadsKv, D, Element.F16, offsets.Select(o => o + 4).ToArray());
        var secondV = KvCacheTestData.Tokens(random, 25, HeadsKv, D, Element.F16, offsets);
        model.Append(s, second, secondV);
        var all = Quantized([.. first, .. second], [.. firstV, .. secondV], 35, HeadsKv, D);
        Assert.Equal(all.KCodes, PageCodes(model.KCodes, page, HeadsKv, D));
        Assert.Equal(all.VCodes, PageCodes(model.VCodes, page, HeadsKv, D));
        Assert.Equal(all.KScale, model.KScale.AsSpan(page * HeadsKv, HeadsKv).ToArray());
        Assert.Equal(all.KMean, model.KMean.AsSpan(page * HeadsKv * D, HeadsKv * D).ToArray());
        Assert.Equal(all.VScale, model.VScale.AsSpan(page * HeadsKv * D, HeadsKv * D).ToArray());
        Assert.NotEqual(codesAfterFirst.AsSpan(0, 10 * D).ToArray(), all.KCodes.AsSpan(0, 10 * D).ToArray());
        // The staging slot holds all 35 originals, head-major.
        var staged = model.KStaging.AsSpan(model.SlotOf(s) * HeadsKv * 64 * D, HeadsKv * 64 * D).ToArray();
        var originals = HeadMajor([.. first, .. second], 35, HeadsKv, D);
        for (var h = 0; h < HeadsKv; h++)
        {
            Assert.Equal(originals.AsSpan(h * 35 * D, 35 * D).ToArray(), staged.AsSpan(h * 64 * D, 35 * D).ToArray());
        }
    }

    [Theory]
    [InlineData(1, 64, Element.F16)]
    [InlineData(4, 128, Element.F16)]
    [InlineData(2, 64, Element.BF16)]
    public void Any_split_into_appends_gives_the_cache_one_append_gives(int headsKv, int headDim, Element input)
    {
        var seed = Random.Shared.Next();
        output.WriteLine($"seed {seed}");
        var random = new Random(seed);
        var lengths = new[] { 1, 64, 65, 130, random.Next(1, 400), random.Next(1, 400) };
        var k = lengths.Select(n => KvCacheTestData.Tokens(random, n, headsKv, headDim, input, KvCacheTestData.Offsets(random, headsKv, headDim))).ToArray();
        var v = lengths.Select(n => KvCacheTestData.Tokens(random, n, headsKv, headDim, input)).ToArray();
        var pages = lengths.Sum(n => (n + 63) / 64);
        var row = headsKv * headDim;

        var oneShot = new KvCacheModel(pages, lengths.Length, headsKv, headDim, input);
        var whole = lengths.Select(_ => oneShot.AddSequence()).ToArray();
        oneShot.Append(whole, lengths, [.. k.SelectMany(x => x)], [.. v.SelectMany(x => x)]);

        // The same tokens in batches of random chunks (0 included), the sequences interleaved.
        var chunked = new KvCacheModel(pages, lengths.Length, headsKv, headDim, input);
        var ids = lengths.Select(_ => chunked.AddSequence()).ToArray();
        var written = new int[lengths.Length];
        while (written.Where((w, i) => w < lengths[i]).Any())
        {
            var batch = Enumerable.Range(0, lengths.Length).Where(_ => random.Next(3) > 0).ToArray();
            if (batch.Length == 0)
            {
                continue;
            }
            var counts = batch.Select(i => Math.Min(lengths[i] - written[i], new[] { 0, 1, 5, 63, 64, 65, random.Next(1, 140) }[random.Next(7)])).ToArray();
            var kChunk = batch.SelectMany((i, j) => k[i].Skip(written[i] * row).Take(counts[j] * row)).ToArray();
            var vChunk = batch.SelectMany((i, j) => v[i].Skip(written[i] * row).Take(counts[j] * row)).ToArray();
            chunked.Append(batch.Select(i => ids[i]).ToArray(), counts, kChunk, vChunk);
            for (var j = 0; j < batch.Length; j++)
            {
                written[batch[j]] += counts[j];
            }
        }
        for (var i = 0; i < lengths.Length; i++)
        {
            KvCacheAssert.SameSequence(oneShot, whole[i], chunked, ids[i]);
        }
    }

    [Fact]
    public void Refused_appends_change_nothing()
    {
        const int HeadsKv = 2, D = 64;
        var random = new Random(Random.Shared.Next());
        var model = new KvCacheModel(pages: 3, slots: 2, HeadsKv, D);
        var (a, b) = (model.AddSequence(), model.AddSequence());
        model.Append(a, KvCacheTestData.Tokens(random, 70, HeadsKv, D, Element.F16), KvCacheTestData.Tokens(random, 70, HeadsKv, D, Element.F16));
        var before = Snapshot(model);
        var tokens = KvCacheTestData.Tokens(random, 100, HeadsKv, D, Element.F16);
        // b needs 2 pages for 100 tokens and a one more for 70 + 60: 3 > the 1 free.
        var full = Assert.Throws<InvalidOperationException>(() => model.Append([a, b], [60, 40], tokens, tokens));
        Assert.Contains("needs 2 more pages", full.Message);
        Assert.Equal("batch", Assert.Throws<ArgumentException>(() => model.Append([a, a], [1, 1], tokens.AsSpan(0, 2 * HeadsKv * D), tokens.AsSpan(0, 2 * HeadsKv * D))).ParamName);
        Assert.Equal("sequence", Assert.Throws<ArgumentException>(() => model.Append([a, 99], [1, 1], tokens.AsSpan(0, 2 * HeadsKv * D), tokens.AsSpan(0, 2 * HeadsKv * D))).ParamName);
        Assert.Equal("newTokens", Assert.Throws<ArgumentException>(() => model.Append([a, b], [1], tokens.AsSpan(0, HeadsKv * D), tokens.AsSpan(0, HeadsKv * D))).ParamName);
        Assert.Throws<ArgumentException>(() => model.Append([a], [2], tokens.AsSpan(0, 3 * HeadsKv * D), tokens.AsSpan(0, 3 * HeadsKv * D)));
        Assert.Throws<InvalidOperationException>(() => model.AddSequence());  // both slots are live
        Assert.Equal(before, Snapshot(model));
        Assert.Equal((70, 0), (model.Table.LengthOf(a), model.Table.LengthOf(b)));
        // Freed, a slot and its pages serve a new sequence.
        model.Free(a);
        var c = model.AddSequence();
        Assert.Equal(0, model.SlotOf(c));
    }

    [Fact]
    public void Dequantized_pages_are_what_the_paged_attention_reference_reads()
    {
        const int HeadsQ = 4, HeadsKv = 2, D = 64;
        var seed = Random.Shared.Next();
        output.WriteLine($"seed {seed}");
        var random = new Random(seed);
        var model = new KvCacheModel(pages: 12, slots: 3, HeadsKv, D);
        var lengths = new[] { 70, 129, 5 };
        var ids = lengths.Select(_ => model.AddSequence()).ToArray();
        var k = lengths.Select(n => KvCacheTestData.Tokens(random, n, HeadsKv, D, Element.F16, KvCacheTestData.Offsets(random, HeadsKv, D))).ToArray();
        var v = lengths.Select(n => KvCacheTestData.Tokens(random, n, HeadsKv, D, Element.F16)).ToArray();
        for (var i = 0; i < lengths.Length; i++)
        {
            // Two appends each, the second crossing into a new page for the longer ones.
            var split = lengths[i] / 2;
            model.Append(ids[i], k[i].AsSpan(0, split * HeadsKv * D), v[i].AsSpan(0, split * HeadsKv * D));
            model.Append(ids[i], k[i].AsSpan(split * HeadsKv * D), v[i].AsSpan(split * HeadsKv * D));
        }
        var (kPages, vPages) = model.Dequantize();
        var queries = lengths.Select(_ => Enumerable.Range(0, HeadsQ * D).Select(_ => AttentionTests.Reference.AttentionTestData.Normal(random)).ToArray()).ToArray();
        var paged = PagedAttentionReference.Forward(model.Table, ids, queries, kPages, vPages, HeadsQ, HeadsKv, D);
        for (var i = 0; i < lengths.Length; i++)
        {
            var shape = new AttentionShape(1, HeadsQ, HeadsKv, 1, lengths[i], D);
            var exact = Float64Attention.Forward(shape, queries[i], Widen(HeadMajor(k[i], lengths[i], HeadsKv, D)), Widen(HeadMajor(v[i], lengths[i], HeadsKv, D)));
            var error = ErrorMetrics.RelativeL2(paged[i].Output, exact.Output);
            output.WriteLine($"sequence {i} ({lengths[i]} tokens): O relative L2 {error:E2}");
            Assert.InRange(error, 1e-5, 2e-2);  // quantized, so not exact; int8 with per-page statistics, so close
        }
    }

    private static double[] Widen(ushort[] bits) => bits.Select(b => KvCacheTestData.Value(b, Element.F16)).ToArray();

    /// <summary>[tokens][Hkv][D] → [Hkv][tokens][D].</summary>
    internal static ushort[] HeadMajor(ushort[] x, int tokens, int headsKv, int headDim)
    {
        var y = new ushort[x.Length];
        for (var t = 0; t < tokens; t++)
        {
            for (var h = 0; h < headsKv; h++)
            {
                Array.Copy(x, (t * headsKv + h) * headDim, y, (h * tokens + t) * headDim, headDim);
            }
        }
        return y;
    }

    private static KvPageQuantization Quantized(ushort[] k, ushort[] v, int tokens, int headsKv, int headDim) =>
        KvCacheQuantization.QuantizePage(HeadMajor(k, tokens, headsKv, headDim), HeadMajor(v, tokens, headsKv, headDim), Element.F16, headsKv, tokens, headDim, 64);

    private static sbyte[] PageCodes(sbyte[] codes, int page, int headsKv, int headDim) => codes.AsSpan(page * headsKv * 64 * headDim, headsKv * 64 * headDim).ToArray();

    internal static string Snapshot(KvCacheModel m) => string.Join(",", new object[]
    {
        Convert.ToBase64String((byte[])(Array)m.KCodes), Convert.ToBase64String((byte[])(Array)m.VCodes), string.Join(" ", m.KScale), string.Join(" ", m.KMean),
        string.Join(" ", m.VScale), string.Join(" ", m.KStaging), string.Join(" ", m.VStaging), m.Table.FreePages,
    });
}

/// <summary>The generated launchers and the runtime's work list agree on the item layout, and every variant keeps 64-token pages.</summary>
public class KvAppendVariantTests
{
    [Fact]
    public void Work_items_have_the_layout_the_kernels_read()
    {
        foreach (var ints in new[] { KvAppendD64.WorkItemInts, KvAppendD128.WorkItemInts, KvAppendD256.WorkItemInts, KvAppendD128Bf16.WorkItemInts })
        {
            Assert.Equal(KernelDsl.Launching.KvAppendWork.ItemInts, ints);
        }
        Assert.Contains("page_id = item[0], start = item[1], fill = item[2], source = item[3], slot = item[4]", KvAppendD128.CudaSource);
        Assert.Contains("stage_from = item[5], stage_to = item[6], stage_source = item[7]", KvAppendD128.CudaSource);
        Assert.All(new[] { KvAppendD64.PageSize, KvAppendD128.PageSize, KvAppendD256.PageSize, KvAppendD128Bf16.PageSize }, p => Assert.Equal(64, p));
    }
}
