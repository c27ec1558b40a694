using KernelDsl;
using KernelDsl.Attention.KvCache;
using KernelDsl.Attention.Reference;

namespace AttentionTests.KvCache;

/// <summary>
/// The decode kernel's algorithm with each library modifier (<see cref="PagedDecodeReference.Int8"/> with the same C#
/// methods the decode variants are generated from) against float64 with the modifier over the original tokens, under the
/// prefill's u8 bars: sliding windows smaller than a page and across page boundaries, ALiBi and softcap, Sq of 1 and of a
/// chunk, GQA 8:1 and 1:1, one split and several. q and k are positions in the cache, so the modifiers see a decode token as
/// the prefill kernels see the same token of a one-shot prefill.
/// </summary>
public class PagedDecodeModifierReferenceTests(ITestOutputHelper output)
{
    private const double OutputBar = 3e-2, LseBar = 0.1;
    private const int D = 128;

    [Theory]
    [InlineData("window 20", 1, 8, 1)]
    [InlineData("window 20", 16, 8, 1)]
    [InlineData("window 150", 1, 8, 1)]
    [InlineData("window 150", 4, 2, 2)]
    [InlineData("window 150", 16, 2, 2)]
    [InlineData("alibi", 1, 8, 1)]
    [InlineData("alibi", 16, 2, 2)]
    [InlineData("softcap", 4, 8, 1)]
    [InlineData("softcap", 16, 2, 2)]
    public void The_int8_algorithm_with_the_modifier_meets_the_prefill_bars(string modifier, int seqQ, int headsQ, int headsKv)
    {
        var seed = Random.Shared.Next();
        output.WriteLine($"seed {seed}");
        var random = new Random(seed);
        var lengths = new[] { 16, 63, 64, 65, 700 };
        var (model, ids, kPages, vPages) = PagedDecodeReferenceTests.Cache(random, D, headsKv, lengths);
        var queries = ids.Select(_ => Enumerable.Range(0, headsQ * seqQ * D).Select(_ => (double)(Half)AttentionTests.Reference.AttentionTestData.Normal(random)).ToArray()).ToList();
        var modifiers = DecodeModifierCases.Modifiers(modifier, headsQ);
        var exact = PagedAttentionReference.Forward(model.Table, ids, queries, kPages, vPages, headsQ, headsKv, D, causal: true, modifiers: modifiers);
        var plain = PagedAttentionReference.Forward(model.Table, ids, queries, kPages, vPages, headsQ, headsKv, D, causal: true);
        var cache = PagedDecodeReference.Dequantized(model, ids, queries, headsQ, modifiers: modifiers);
        // The modifier matters here: without it the result is far from the modified one, so a kernel that drops it fails.
        var effect = ErrorMetrics.Compare(plain[^1].Output, exact[^1].Output);
        output.WriteLine($"{modifier}: unmodified vs modified float64 at length {lengths[^1]}: {effect}");
        Assert.True(effect.RelativeL2 > 10 * OutputBar, $"{modifier} barely changes attention ({effect}): the test could not tell it was applied");
        foreach (var splits in new[] { 1, 3 })
        {
            var int8 = PagedDecodeReference.Int8(model, ids, queries, headsQ, splits, modifiers: modifiers);
            for (var s = 0; s < ids.Length; s++)
            {
                var error = ErrorMetrics.Compare(int8[s].Output, exact[s].Output);
                var cacheError = ErrorMetrics.Compare(cache[s].Output, exact[s].Output);
                var lse = int8[s].Lse.Zip(exact[s].Lse).Max(p => Math.Abs(p.First - p.Second));
                output.WriteLine($"{modifier}, Sq {seqQ}, {headsQ}:{headsKv}, {splits} split(s), length {lengths[s]}: kernel model {error}, LSE |Δ| {lse:E2}; dequantized cache {cacheError}");
                Assert.True(error.RelativeL2 <= OutputBar, $"length {lengths[s]}: {error}");
                Assert.True(lse <= LseBar, $"length {lengths[s]}: LSE off by {lse}");
            }
        }
    }

    /// <summary>
    /// The page walk skips what the window hides: pages wholly older than the window (for every row of a tile) are in no
    /// split, so poisoning their V scales with NaN leaves every output finite and unchanged, while poisoning a page the
    /// window still reaches does not.
    /// </summary>
    [Theory]
    [InlineData(20, 1)]
    [InlineData(150, 4)]
    public void Pages_older_than_the_window_are_never_read(int window, int seqQ)
    {
        var random = new Random(11);
        const int HeadsQ = 8, HeadsKv = 1, Length = 700;
        var (model, ids, _, _) = PagedDecodeReferenceTests.Cache(random, D, HeadsKv, [Length]);
        var queries = new List<double[]> { Enumerable.Range(0, HeadsQ * seqQ * D).Select(_ => (double)(Half)AttentionTests.Reference.AttentionTestData.Normal(random)).ToArray() };
        var modifiers = DecodeModifierCases.Window(window);
        var before = PagedDecodeReference.Int8(model, ids, queries, HeadsQ, splits: 3, modifiers: modifiers);
        var pages = model.Table.PagesOf(ids[0]);
        // The oldest key any query sees is the first query's position − window + 1.
        var oldest = Length - seqQ - window + 1;
        var hidden = oldest / 64;
        Assert.True(hidden > 0, "the window reaches back to the first page: nothing to skip");
        for (var page = 0; page < hidden; page++)
        {
            model.VScale.AsSpan(pages[page] * D, D).Fill(float.NaN);
        }
        var after = PagedDecodeReference.Int8(model, ids, queries, HeadsQ, splits: 3, modifiers: modifiers);
        Assert.Equal(before[0].Output, after[0].Output);
        model.VScale.AsSpan(pages[hidden] * D, D).Fill(float.NaN);
        var reached = PagedDecodeReference.Int8(model, ids, queries, HeadsQ, splits: 3, modifiers: modifiers);
        Assert.Contains(reached[0].Output, double.IsNaN);
    }

    /// <summary>
    /// Chunked prefill with a modifier on the CPU: chunks of 1 to 300 tokens appended, then attended by the kernel's
    /// algorithm with the modifier; every token's O and LSE meet the bars against float64 one-shot attention with the same
    /// modifier over the whole original sequence (q, k are positions in both).
    /// </summary>
    [Theory]
    [InlineData("window 20")]
    [InlineData("window 150")]
    [InlineData("alibi")]
    [InlineData("softcap")]
    public void Chunked_prefill_with_the_modifier_meets_the_bars_of_a_one_shot_prefill(string modifier)
    {
        var seed = Random.Shared.Next();
        output.WriteLine($"seed {seed}");
        PagedDecodeReferenceTests.CheckChunkedPrefill(output, new Random(seed), 8, 2, 64, [500, 190], DecodeModifierCases.Modifiers(modifier, 8), modifier);
    }
}
