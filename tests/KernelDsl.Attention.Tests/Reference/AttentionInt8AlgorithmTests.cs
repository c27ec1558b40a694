using KernelDsl;
using KernelDsl.Attention.Reference;

namespace AttentionTests.Reference;

/// <summary>The int8 reference's steps checked one by one: integer scores, P codes, a single key by hand, layouts, masking, blocks.</summary>
public class AttentionInt8AlgorithmTests(ITestOutputHelper output)
{
    private static readonly Int8AttentionOptions Small = new() { BlockM = 16, BlockN = 32 };

    [Fact]
    public void Scores_are_the_exact_integer_product_of_the_quantized_q_and_k()
    {
        var seed = AttentionTestData.FreshSeed();
        var shape = AttentionTestData.Shape(1, 4, 2, 20, 70, 64);
        var (q, k, v) = AttentionTestData.Inputs(shape, seed);
        var inputs = Int8AttentionReference.Quantize(shape, AttentionTensors.Bits(q), AttentionTensors.Bits(k), AttentionTensors.Bits(v), Element.F16, Small);
        // Query head 3 reads kv head 1; its last key block holds 70 − 64 = 6 keys.
        var qRow = inputs.Q.Output.AsSpan(((3 * 20) + 11) * 64, 64);
        var kBlock = inputs.K.Output.AsSpan((70 + 64) * 64, 6 * 64);
        var expected = GemmReference.Multiply(qRow, kBlock, 1, 6, 64, 64, 64, bIsKMajor: true);
        Assert.Equal(expected, Int8AttentionReference.Scores(shape, inputs, Small, 0, 3, 11, 2));
    }

    [Theory]
    [InlineData(1f, PvMode.U8, 255)]
    [InlineData(1f, PvMode.S8, 127)]
    [InlineData(0f, PvMode.U8, 0)]
    [InlineData(0.5f, PvMode.U8, 128)]   // 127.5: a tie, to even
    [InlineData(0.5f, PvMode.S8, 64)]    // 63.5: a tie, to even
    public void P_codes_round_half_to_even(float p, PvMode mode, int code)
    {
        Assert.Equal(code, Int8AttentionReference.QuantizeP(p, mode));
    }

    [Theory]
    [InlineData(2.5f, PvMode.U8, 2)]
    [InlineData(3.5f, PvMode.U8, 4)]
    [InlineData(10.5f, PvMode.S8, 10)]
    public void P_codes_round_the_float_product(float scaled, PvMode mode, int code)
    {
        // A p whose float product with 255 (127) is exactly the tie: the code depends on that product, not on p·255 in reals.
        var factor = mode == PvMode.U8 ? 255f : 127f;
        var p = scaled / factor;
        for (var step = 0; step < 8 && p * factor != scaled; step++)
        {
            p = p * factor < scaled ? MathF.BitIncrement(p) : MathF.BitDecrement(p);
        }
        Assert.Equal(scaled, p * factor);
        Assert.Equal(code, Int8AttentionReference.QuantizeP(p, mode));
    }

    [Fact]
    public void One_key_gives_v_dequantized_and_its_score_as_lse()
    {
        var seed = AttentionTestData.FreshSeed();
        var shape = AttentionTestData.Shape(1, 1, 1, 2, 1, 16);
        var (q, k, v) = AttentionTestData.Inputs(shape, seed);
        var inputs = Int8AttentionReference.Quantize(shape, AttentionTensors.Bits(q), AttentionTensors.Bits(k), AttentionTensors.Bits(v), Element.F16, Small);
        var result = Int8AttentionReference.Forward(shape, inputs, Small);
        for (var c = 0; c < 16; c++)
        {
            // p = 1 → P8 = 255, l = 255, O = 255·v8: out = (255·v8·vScale) / 255.
            var expected = (Half)(255f * inputs.V.Output[c] * inputs.V.Scales[c] / 255f);
            Assert.Equal(expected, BitConverter.UInt16BitsToHalf(result.Output[16 + c]));
        }
        // With one key, K minus its mean is 0: the LSE is all correction, σ·q·k up to Q's rounding.
        var exact = Enumerable.Range(0, 16).Sum(c => (double)q[16 + c] * (double)k[c]) / 4.0;
        Assert.True(Math.Abs(result.Lse[1] - exact) < 0.02 * (1 + Math.Abs(exact)), $"seed {seed}: {result.Lse[1]} vs {exact}");
    }

    [Fact]
    public void Layout_does_not_change_a_bit()
    {
        var seed = AttentionTestData.FreshSeed();
        var bhsd = AttentionTestData.Shape(2, 4, 2, 33, 45, 64, causal: true);
        var bshd = AttentionTestData.Shape(2, 4, 2, 33, 45, 64, causal: true, layout: TensorLayout.BSHD);
        var (q, k, v) = AttentionTestData.Inputs(bhsd, seed);
        Half[] ToBshd(Half[] x, int heads, int tokens) => AttentionTensors.Relayout<Half>(x, 2, heads, tokens, 64, TensorLayout.BHSD, TensorLayout.BSHD);
        foreach (var pv in new[] { PvMode.U8, PvMode.F16 })
        {
            var options = Small with { Pv = pv };
            var a = Int8AttentionReference.Forward(bhsd, q, k, v, options);
            var b = Int8AttentionReference.Forward(bshd, ToBshd(q, 4, 33), ToBshd(k, 2, 45), ToBshd(v, 2, 45), options);
            Assert.Equal(a.Output, AttentionTensors.Relayout<ushort>(b.Output, 2, 4, 33, 64, TensorLayout.BSHD, TensorLayout.BHSD));
            Assert.Equal(a.Lse, b.Lse);
        }
    }

    [Fact]
    public void Rows_that_see_no_key_output_zero_with_lse_minus_infinity()
    {
        var seed = AttentionTestData.FreshSeed();
        var shape = AttentionTestData.Shape(1, 2, 2, 40, 8, 32, causal: true);
        var (q, k, v) = AttentionTestData.Inputs(shape, seed);
        var result = Int8AttentionReference.Forward(shape, q, k, v, Small);
        for (var i = 0; i < 40; i++)
        {
            var blind = i < 32;
            Assert.Equal(blind, float.IsNegativeInfinity(result.Lse[i]));
            Assert.Equal(blind, result.Output.AsSpan(i * 32, 32).ToArray().All(bits => bits == 0));
        }
        Assert.DoesNotContain(result.Lse, float.IsNaN);
    }

    [Fact]
    public void Block_sizes_change_the_bits_but_not_the_accuracy()
    {
        // Unlike float64 attention, the int8 reference depends on BlockM (Q's scales), BlockN (K's scales and where the
        // running max is rescaled before P is quantized): a kernel must be compared at its own block sizes.
        var seed = AttentionTestData.FreshSeed();
        var shape = AttentionTestData.Shape(1, 2, 2, 150, 190, 64, causal: true);
        var (q, k, v) = AttentionTestData.Inputs(shape, seed);
        var reference = Float64Attention.Forward(shape, q, k, v);
        var results = new List<Int8AttentionResult>();
        foreach (var (m, n) in new[] { (16, 16), (64, 32), (128, 64), (128, 128), (150, 256) })
        {
            var result = Int8AttentionReference.Forward(shape, q, k, v, new Int8AttentionOptions { BlockM = m, BlockN = n });
            var report = ErrorMetrics.Compare(result.OutputValues(), reference.Output);
            output.WriteLine($"seed {seed} BlockM {m} BlockN {n}: {report}");
            Assert.True(report.RelativeL2 <= 3e-2 && report.Cosine >= 0.999, $"seed {seed} ({m}, {n}): {report}");
            results.Add(result);
        }
        Assert.NotEqual(results[0].Output, results[2].Output);
        Assert.NotEqual(results[2].Output, results[3].Output);
    }

    [Fact]
    public void Rejects_bad_options_and_mismatched_inputs()
    {
        var shape = AttentionTestData.Shape(1, 1, 1, 4, 4, 8);
        var data = new Half[32];
        data[0] = Half.One;
        Assert.Equal("BlockM", Assert.Throws<ArgumentException>(() => Int8AttentionReference.Forward(shape, data, data, data, Small with { BlockM = 0 })).ParamName);
        Assert.Equal("BlockN", Assert.Throws<ArgumentException>(() => Int8AttentionReference.Forward(shape, data, data, data, Small with { BlockN = 1024 })).ParamName);
        Assert.Equal("v", Assert.Throws<ArgumentException>(() => Int8AttentionReference.Forward(shape, data, data, data.AsSpan(1), Small)).ParamName);
    }
}
