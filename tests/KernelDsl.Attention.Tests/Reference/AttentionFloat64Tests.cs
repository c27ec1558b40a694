using KernelDsl;
using KernelDsl.Attention.Reference;

namespace AttentionTests.Reference;

/// <summary>Float64Attention against the naive second implementation, across GQA, MQA, causal alignment, layouts and element types.</summary>
public class AttentionFloat64Tests(ITestOutputHelper output)
{
    // batch, headsQ, headsKv, tokensQ, tokensKv, headDim, causal
    public static TheoryData<int, int, int, int, int, int, bool> Shapes() => new()
    {
        { 1, 1, 1, 1, 1, 16, false },
        { 2, 4, 4, 17, 33, 32, false },
        { 1, 8, 2, 23, 23, 64, false },   // GQA 4:1
        { 2, 4, 1, 9, 40, 16, true },     // MQA, causal, TokensQ < TokensKv
        { 1, 4, 2, 40, 9, 16, true },     // causal, TokensQ > TokensKv: the first rows see nothing
        { 1, 2, 2, 31, 31, 128, true },
    };

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Matches_the_naive_implementation_in_both_layouts(int batch, int hq, int hkv, int sq, int skv, int d, bool causal)
    {
        var seed = AttentionTestData.FreshSeed();
        foreach (var layout in new[] { TensorLayout.BHSD, TensorLayout.BSHD })
        {
            var shape = AttentionTestData.Shape(batch, hq, hkv, sq, skv, d, causal, layout);
            var (q, k, v) = AttentionTestData.Inputs(shape, seed);
            var actual = Float64Attention.Forward(shape, q, k, v);
            var (expected, lse) = AttentionNaive.Forward(shape, AttentionTestData.ToDouble(q), AttentionTestData.ToDouble(k), AttentionTestData.ToDouble(v));
            var outError = ErrorMetrics.MaxAbs(actual.Output, expected);
            var lseError = ErrorMetrics.MaxAbs(actual.Lse, lse);
            output.WriteLine($"seed {seed} {layout}: output max abs {outError:E2}, LSE max abs {lseError:E2}");
            Assert.True(outError < 1e-12, $"seed {seed} {layout}: output differs by {outError}");
            Assert.True(lseError < 1e-12, $"seed {seed} {layout}: LSE differs by {lseError}");
        }
    }

    [Fact]
    public void Bshd_gives_the_same_numbers_as_bhsd()
    {
        var seed = AttentionTestData.FreshSeed();
        var bhsd = AttentionTestData.Shape(2, 8, 2, 19, 37, 32, causal: true);
        var bshd = AttentionTestData.Shape(2, 8, 2, 19, 37, 32, causal: true, layout: TensorLayout.BSHD);
        var (q, k, v) = AttentionTestData.Inputs(bhsd, seed);
        Half[] ToBshd(Half[] x, int heads, int tokens) => AttentionTensors.Relayout<Half>(x, 2, heads, tokens, 32, TensorLayout.BHSD, TensorLayout.BSHD);
        var a = Float64Attention.Forward(bhsd, q, k, v);
        var b = Float64Attention.Forward(bshd, ToBshd(q, 8, 19), ToBshd(k, 2, 37), ToBshd(v, 2, 37));
        var back = AttentionTensors.Relayout<double>(b.Output, 2, 8, 19, 32, TensorLayout.BSHD, TensorLayout.BHSD);
        Assert.True(a.Output.SequenceEqual(back), $"seed {seed}");
        Assert.True(a.Lse.SequenceEqual(b.Lse), $"seed {seed}");
    }

    [Fact]
    public void Bf16_inputs_are_widened_exactly()
    {
        var seed = AttentionTestData.FreshSeed();
        var shape = AttentionTestData.Shape(1, 4, 2, 13, 29, 64, causal: true);
        var rng = new Random(seed);
        ushort[] Bf16(int count) => AttentionTestData.Gaussian(count, rng).Select(x => AttentionTensors.SingleToBf16((float)x)).ToArray();
        var (q, k, v) = (Bf16(shape.QElements), Bf16(shape.KvElements), Bf16(shape.KvElements));
        double[] Wide(ushort[] x) => x.Select(bits => (double)BitConverter.Int32BitsToSingle(bits << 16)).ToArray();
        var actual = Float64Attention.Forward(shape, q, k, v, Element.BF16);
        var (expected, lse) = AttentionNaive.Forward(shape, Wide(q), Wide(k), Wide(v));
        Assert.True(ErrorMetrics.MaxAbs(actual.Output, expected) < 1e-12, $"seed {seed}");
        Assert.True(ErrorMetrics.MaxAbs(actual.Lse, lse) < 1e-12, $"seed {seed}");
    }

    [Fact]
    public void A_row_that_sees_no_key_outputs_zero_with_lse_minus_infinity()
    {
        var seed = AttentionTestData.FreshSeed();
        var shape = AttentionTestData.Shape(1, 2, 1, 10, 4, 16, causal: true);
        var (q, k, v) = AttentionTestData.Inputs(shape, seed);
        var result = Float64Attention.Forward(shape, q, k, v);
        for (var h = 0; h < 2; h++)
        {
            for (var i = 0; i < 10; i++)
            {
                // Bottom-right alignment: row i sees keys j ≤ i − 6, so rows 0..5 see none and row 9 sees all four.
                var sees = i >= 6;
                Assert.Equal(!sees, double.IsNegativeInfinity(result.Lse[shape.LseIndex(0, h, i)]));
                var row = result.Output.AsSpan((int)shape.QStrides.Offset(0, h, i), 16).ToArray();
                Assert.Equal(!sees, row.All(x => x == 0));
            }
        }
    }

    [Fact]
    public void One_key_returns_that_value_row_and_its_score_as_lse()
    {
        var seed = AttentionTestData.FreshSeed();
        var shape = AttentionTestData.Shape(1, 1, 1, 3, 1, 8);
        var (q, k, v) = AttentionTestData.Inputs(shape, seed);
        var result = Float64Attention.Forward(shape, q, k, v);
        for (var i = 0; i < 3; i++)
        {
            var score = Enumerable.Range(0, 8).Sum(c => (double)q[i * 8 + c] * (double)k[c]) / Math.Sqrt(8);
            Assert.Equal(score, result.Lse[i], 12);
            for (var c = 0; c < 8; c++)
            {
                Assert.Equal((double)v[c], result.Output[i * 8 + c], 12);
            }
        }
    }

    [Fact]
    public void Has_no_block_size_so_any_split_of_the_keys_merges_back_to_the_same_answer()
    {
        var seed = AttentionTestData.FreshSeed();
        var shape = AttentionTestData.Shape(1, 4, 2, 50, 130, 32, causal: true);
        var (q, k, v) = AttentionTestData.Inputs(shape, seed);
        var full = Float64Attention.Forward(shape, q, k, v);
        foreach (var block in new[] { 1, 16, 64, 129 })
        {
            var partials = new List<Float64AttentionResult>();
            for (var start = 0; start < shape.TokensKv; start += block)
            {
                partials.Add(Float64Attention.Forward(shape, q, k, v, start..Math.Min(start + block, shape.TokensKv)));
            }
            var merged = LseMerge.Merge(shape, partials);
            var error = ErrorMetrics.MaxAbs(merged.Output, full.Output);
            output.WriteLine($"seed {seed}, blocks of {block} keys: merged output max abs {error:E2}");
            Assert.True(error < 1e-12, $"seed {seed}, block {block}: {error}");
            Assert.True(ErrorMetrics.MaxAbs(merged.Lse, full.Lse) < 1e-12, $"seed {seed}, block {block}");
        }
    }
}
