using KernelDsl;
using KernelDsl.Attention.FlashAttention;
using KernelDsl.Attention.KvCache;

namespace AttentionTests.KvCache;

/// <summary>
/// NaN and ±Inf in appended tokens, on the CPU (the device cache's contract, which KvCacheAppendGpuTests holds it to): by
/// default an append with any is refused before any change, naming k or v, the counts and the sequences; the same append
/// with the bad values repaired then gives the cache a clean history gives. With Ignore they are appended and poison
/// their page's statistics as documented.
/// </summary>
public class KvCacheNonFiniteTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData(Element.F16)]
    [InlineData(Element.BF16)]
    public void Every_bit_pattern_with_an_all_ones_exponent_counts_and_no_other(Element input)
    {
        var bits = Enumerable.Range(0, 1 << 16).Select(b => (ushort)b).ToArray();
        var expected = bits.LongCount(b => !double.IsFinite(KvCacheTestData.Value(b, input)));
        Assert.Equal(input == Element.F16 ? 2 << 10 : 2 << 7, expected);  // 2 signs × every mantissa (0: Inf, else NaN)
        Assert.Equal(expected, KvCacheQuantization.CountNonFinite(bits, input));
        Assert.Equal(1, KvCacheQuantization.CountNonFinite([NonFiniteAppend.Bits("-Inf", input)], input));
    }

    [Theory]
    [InlineData(64, Element.F16)]
    [InlineData(128, Element.BF16)]
    public void A_bad_append_is_refused_changing_nothing_and_its_repair_appends_as_a_clean_history_does(int headDim, Element input)
    {
        var seed = Random.Shared.Next();
        output.WriteLine($"seed {seed}");
        var random = new Random(seed);
        var (model, ids) = Filled(random, headDim, input);
        var before = KvCacheQuantizationTests.Snapshot(model);
        var (k, v) = NonFiniteAppend.Tokens(random, headDim, input);

        var error = Assert.Throws<NonFiniteAppendException>(() => model.Append(ids, NonFiniteAppend.NewTokens, k, v));
        Assert.Equal(NonFiniteAppend.Counts, (error.KCount, error.VCount));
        Assert.Equal("k", error.ParamName);
        Assert.Equal(NonFiniteAppend.BadEntries.Select(i => ids[i]), error.Sequences);
        Assert.Equal(before, KvCacheQuantizationTests.Snapshot(model));
        Assert.Equal(NonFiniteAppend.Lengths, ids.Select(model.Table.LengthOf));

        // The cache was left consistent: repaired, the append gives what it gives a cache that never saw the bad one.
        var (kFixed, vFixed) = NonFiniteAppend.Repaired(k, v, headDim, input);
        model.Append(ids, NonFiniteAppend.NewTokens, kFixed, vFixed);
        var (clean, cleanIds) = Filled(new Random(seed), headDim, input);
        clean.Append(cleanIds, NonFiniteAppend.NewTokens, kFixed, vFixed);
        for (var i = 0; i < ids.Length; i++)
        {
            KvCacheAssert.SameSequence(clean, cleanIds[i], model, ids[i]);
        }
    }

    [Fact]
    public void Only_v_bad_names_v_and_an_append_without_the_bad_sequences_goes_through()
    {
        const int D = 64;
        var random = new Random(Random.Shared.Next());
        var (model, ids) = Filled(random, D, Element.F16);
        var (k, v) = NonFiniteAppend.Tokens(random, D, Element.F16);
        (k, _) = NonFiniteAppend.Repaired(k, v, D, Element.F16);
        var error = Assert.Throws<NonFiniteAppendException>(() => model.Append(ids, NonFiniteAppend.NewTokens, k, v));
        Assert.Equal("v", error.ParamName);
        Assert.Equal((0L, NonFiniteAppend.Counts.V), (error.KCount, error.VCount));
        // The second sequence's tokens alone are finite: the sequences the exception leaves out append.
        var good = ids.Except(error.Sequences).ToArray();
        Assert.Equal(new[] { ids[1] }, good);
        var row = NonFiniteAppend.HeadsKv * D;
        var start = NonFiniteAppend.NewTokens[0] * row;
        model.Append(good, [NonFiniteAppend.NewTokens[1]], k.AsSpan(start, row), v.AsSpan(start, row));
        Assert.Equal(NonFiniteAppend.Lengths[1] + 1, model.Table.LengthOf(ids[1]));
    }

    [Fact]
    public void With_Ignore_bad_values_are_appended_and_poison_their_pages_as_documented()
    {
        const int D = 64;
        var random = new Random(Random.Shared.Next());
        var (model, ids) = Filled(random, D, Element.F16);
        var (k, v) = NonFiniteAppend.Tokens(random, D, Element.F16);
        model.Append(ids, NonFiniteAppend.NewTokens, k, v, NonFiniteInputs.Ignore);
        Assert.Equal(NonFiniteAppend.Lengths.Zip(NonFiniteAppend.NewTokens, (l, n) => l + n), ids.Select(model.Table.LengthOf));
        var hkv = NonFiniteAppend.HeadsKv;
        var pages = model.Table.PagesOf(ids[0]);
        // A NaN in K makes its channel's page mean NaN; an Inf in K makes its page's scale Inf (every code 0); an Inf in V its channel's scale.
        Assert.True(float.IsNaN(model.KMean[(pages[0] * hkv + 0) * D + 3]));
        Assert.True(float.IsPositiveInfinity(model.KScale[pages[0] * hkv + 1]));
        Assert.All(model.KCodes.AsSpan((pages[0] * hkv + 1) * 64 * D, 64 * D).ToArray(), c => Assert.Equal(0, c));
        Assert.True(float.IsPositiveInfinity(model.VScale[(pages[1] * hkv + 0) * D + 0]));
        Assert.True(float.IsFinite(model.KScale[pages[1] * hkv + 0]));  // a page without a bad K value keeps finite statistics
    }

    [Fact]
    public void The_exception_names_the_first_bad_tensor_the_counts_the_sequences_and_the_opt_out()
    {
        var error = new NonFiniteAppendException(2, 3, [4, 9]);
        Assert.IsAssignableFrom<ArgumentException>(error);
        Assert.Equal(("k", 2L, 3L), (error.ParamName, error.KCount, error.VCount));
        Assert.Equal(new[] { 4, 9 }, error.Sequences);
        Assert.Contains("k 2, v 3, in sequence(s) 4, 9", error.Message, StringComparison.Ordinal);
        Assert.Contains("nothing was appended: the cache is as before the call", error.Message, StringComparison.Ordinal);
        Assert.Contains("NonFiniteInputs.Ignore", error.Message, StringComparison.Ordinal);
        Assert.Equal("v", new NonFiniteAppendException(0, 1, [0]).ParamName);
    }

    [Fact]
    public void Check_refuses_what_Append_refuses_and_changes_nothing()
    {
        var sequences = new KvSequences(pages: 3, slots: 2, pageSize: 64);
        var (a, b) = (sequences.AddSequence(), sequences.AddSequence());
        sequences.Append([a], [70]);
        Assert.Equal(new[] { 70, 0 }, sequences.Check([a, b], [10, 64]));
        Assert.Equal(1, sequences.Table.FreePages);
        Assert.Equal((70, 0), (sequences.Table.LengthOf(a), sequences.Table.LengthOf(b)));
        Assert.Contains("needs 2 more pages", Assert.Throws<InvalidOperationException>(() => sequences.Check([a, b], [60, 1])).Message);
        Assert.Equal("batch", Assert.Throws<ArgumentException>(() => sequences.Check([a, a], [1, 1])).ParamName);
        Assert.Equal(1, sequences.Table.FreePages);
    }

    /// <summary>A model holding <see cref="NonFiniteAppend.Lengths"/> tokens in four sequences, from one finite append.</summary>
    private static (KvCacheModel Model, int[] Ids) Filled(Random random, int headDim, Element input)
    {
        var model = new KvCacheModel(pages: 16, slots: 4, NonFiniteAppend.HeadsKv, headDim, input);
        var ids = NonFiniteAppend.Lengths.Select(_ => model.AddSequence()).ToArray();
        var total = NonFiniteAppend.Lengths.Sum();
        model.Append(ids, NonFiniteAppend.Lengths, KvCacheTestData.Tokens(random, total, NonFiniteAppend.HeadsKv, headDim, input),
            KvCacheTestData.Tokens(random, total, NonFiniteAppend.HeadsKv, headDim, input));
        return (model, ids);
    }
}
