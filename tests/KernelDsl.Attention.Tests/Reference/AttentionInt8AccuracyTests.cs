using KernelDsl;
using KernelDsl.Attention.Reference;

namespace AttentionTests.Reference;

/// <summary>
/// How far the int8 algorithm lands from float64 attention, on N(0, 1) inputs and on structured ones. The printed
/// numbers are the budget a GPU kernel inherits: it should match the int8 reference far more closely than these.
/// </summary>
public class AttentionInt8AccuracyTests(ITestOutputHelper output)
{
    // batch, headsQ, headsKv, tokensQ, tokensKv, headDim, causal
    public static TheoryData<int, int, int, int, int, int, bool> Shapes() => new()
    {
        { 1, 2, 2, 17, 17, 64, false },
        { 2, 4, 1, 64, 300, 128, false },   // MQA
        { 1, 4, 2, 130, 200, 64, true },    // GQA 2:1, causal, two Q blocks
        { 2, 4, 4, 300, 300, 128, true },
        { 1, 2, 2, 200, 77, 128, true },    // TokensQ > TokensKv: rows that see nothing
    };

    [Theory]
    [InlineData(128, false)]
    [InlineData(128, true)]
    [InlineData(64, false)]
    public void The_wgmma_forms_algorithm_128_key_steps_over_64_key_scales_meets_the_bars(int headDim, bool causal)
    {
        // The Hopper kernels step the online softmax over 128 keys while K keeps one scale per 64 (KScaleKeys): the same
        // int8 inputs as the mma.sync kernels, P rounded against a maximum updated half as often.
        var seed = AttentionTestData.FreshSeed();
        var shape = AttentionTestData.Shape(1, 2, 1, 300, 457, headDim, causal);
        var (q, k, v) = AttentionTestData.Inputs(shape, seed);
        var warpLevel = AttentionTestData.Options(headDim);
        var hopper = warpLevel with { BlockN = 128, KScaleKeys = warpLevel.BlockN };
        var inputs = Int8AttentionReference.Quantize(shape, AttentionTensors.Bits(q), AttentionTensors.Bits(k), AttentionTensors.Bits(v), Element.F16, hopper);
        var steps128 = Int8AttentionReference.Forward(shape, inputs, hopper).OutputValues();
        var steps64 = Int8AttentionReference.Forward(shape, inputs, warpLevel).OutputValues();
        var reference = Float64Attention.Forward(shape, q, k, v);
        var error = ErrorMetrics.Compare(steps128, reference.Output);
        var agreement = ErrorMetrics.Compare(steps128, steps64);
        output.WriteLine($"D{headDim}{(causal ? " causal" : "")} seed {seed}: 128-key steps vs float64 {error}; vs 64-key steps rel L2 {agreement.RelativeL2:E3}");
        Assert.True(error.RelativeL2 <= 3e-2 && error.Cosine >= 0.999, $"seed {seed}: {error}");
        // The GPU shows the same size between the wgmma and mma.sync kernels (docs/GPU_RESULTS.md run 28: ~2.5e-3).
        Assert.True(agreement.RelativeL2 <= 1e-2, $"seed {seed}: 128- and 64-key steps differ by {agreement.RelativeL2}");
        Assert.True(agreement.RelativeL2 > 0, "the two step sizes round P against different maxima, so some output must differ");
    }

    [Fact]
    public void KScaleKeys_must_divide_the_softmax_step()
    {
        var error = Assert.Throws<ArgumentException>(() => (AttentionTestData.Options(128) with { BlockN = 128, KScaleKeys = 48 }).Validate());
        Assert.Equal("KScaleKeys", error.ParamName);
    }

    [Fact]
    public void E4m3_PV_carries_P_scale_448_and_refuses_V_quantized_for_another_mode()
    {
        var seed = AttentionTestData.FreshSeed();
        var shape = AttentionTestData.Shape(1, 1, 1, 5, 40, 64);
        var (q, k, v) = AttentionTestData.Inputs(shape, seed);
        var (e4m3, u8) = (AttentionTestData.Options(64, PvMode.E4M3), AttentionTestData.Options(64));
        Assert.Equal(448f, e4m3.PScale);
        Assert.Equal(Element.E4M3, Quantized(e4m3).V.OutputElement);
        Assert.Equal("inputs", Assert.Throws<ArgumentException>(() => Int8AttentionReference.Forward(shape, Quantized(u8), e4m3)).ParamName);
        Assert.Equal("inputs", Assert.Throws<ArgumentException>(() => Int8AttentionReference.Forward(shape, Quantized(e4m3), u8)).ParamName);
        Int8AttentionInputs Quantized(Int8AttentionOptions options) =>
            Int8AttentionReference.Quantize(shape, AttentionTensors.Bits(q), AttentionTensors.Bits(k), AttentionTensors.Bits(v), Element.F16, options);
    }

    private (ErrorReport Output, double LseMaxAbs) Measure(AttentionShape shape, Half[] q, Half[] k, Half[] v, PvMode pv, string label, int seed)
    {
        var reference = Float64Attention.Forward(shape, q, k, v);
        var int8 = Int8AttentionReference.Forward(shape, q, k, v, AttentionTestData.Options(shape.HeadDim, pv));
        var report = ErrorMetrics.Compare(int8.OutputValues(), reference.Output);
        var lse = ErrorMetrics.MaxAbs(ErrorMetrics.Widen(int8.Lse), reference.Lse);
        output.WriteLine($"{label} {pv} seed {seed} B{shape.Batch} Hq{shape.HeadsQ} Hkv{shape.HeadsKv} Sq{shape.TokensQ} Skv{shape.TokensKv} " +
            $"D{shape.HeadDim}{(shape.Causal ? " causal" : "")}: {report}, LSE max abs {lse:E3}");
        return (report, lse);
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Gaussian_inputs_stay_within_the_int8_budget(int batch, int hq, int hkv, int sq, int skv, int d, bool causal)
    {
        var seed = AttentionTestData.FreshSeed();
        var shape = AttentionTestData.Shape(batch, hq, hkv, sq, skv, d, causal);
        var (q, k, v) = AttentionTestData.Inputs(shape, seed);
        var (u8, u8Lse) = Measure(shape, q, k, v, PvMode.U8, "gaussian", seed);
        Assert.True(u8.RelativeL2 <= 3e-2 && u8.Cosine >= 0.999, $"seed {seed}: u8 {u8}");
        var (s8, _) = Measure(shape, q, k, v, PvMode.S8, "gaussian", seed);
        Assert.True(s8.RelativeL2 <= 5e-2 && s8.Cosine >= 0.998, $"seed {seed}: s8 {s8}");
        var (f16, f16Lse) = Measure(shape, q, k, v, PvMode.F16, "gaussian", seed);
        Assert.True(f16.RelativeL2 <= 1.5e-2 && f16.Cosine >= 0.9998, $"seed {seed}: f16 {f16}");
        // Q·Kᵀ is int8 in every mode, so LSE carries its error; P's quantization adds little to it.
        Assert.True(u8Lse <= 8e-2 && f16Lse <= 8e-2, $"seed {seed}: LSE max abs u8 {u8Lse}, f16 {f16Lse}");
    }

    [Fact]
    public void Large_per_channel_key_offsets_are_absorbed_by_smoothing_and_restored_in_the_lse()
    {
        var seed = AttentionTestData.FreshSeed();
        var shape = AttentionTestData.Shape(1, 4, 2, 96, 160, 128, causal: true);
        var rng = new Random(seed);
        var offsets = Enumerable.Range(0, 128).Select(_ => 40 * (rng.NextDouble() - 0.5)).ToArray();
        var q = AttentionTestData.Gaussian(shape.QElements, rng);
        var k = AttentionTestData.Gaussian(shape.KvElements, rng, offset: i => offsets[i % 128]);
        var v = AttentionTestData.Gaussian(shape.KvElements, rng);
        var options = AttentionTestData.Options(128);
        var (report, lse) = Measure(shape, q, k, v, PvMode.U8, "key offsets ±20", seed);
        Assert.True(report.RelativeL2 <= 3e-2 && report.Cosine >= 0.999, $"seed {seed}: {report}");

        // Split the LSE into the softmax part and the smoothing correction to see what each contributes.
        var inputs = Int8AttentionReference.Quantize(shape, AttentionTensors.Bits(q), AttentionTensors.Bits(k), AttentionTensors.Bits(v), Element.F16, options);
        var int8 = Int8AttentionReference.Forward(shape, inputs, options);
        var reference = Float64Attention.Forward(shape, q, k, v);
        var qTiles = (shape.TokensQ + options.BlockM - 1) / options.BlockM;
        double noCorrection = 0, exactCorrection = 0, largest = 0;
        for (var h = 0; h < shape.HeadsQ; h++)
        {
            for (var i = 0; i < shape.TokensQ; i++)
            {
                var (fromCodes, fromQ) = (0.0, 0.0);
                for (var c = 0; c < 128; c++)
                {
                    var mean = inputs.K.ChannelMean![shape.KvHeadOf(h) * 128 + c];
                    fromCodes += inputs.Q.Output[(h * shape.TokensQ + i) * 128 + c] * (double)mean;
                    fromQ += (double)q[(h * shape.TokensQ + i) * 128 + c] * mean;
                }
                fromCodes *= inputs.Q.Scales[h * qTiles + i / options.BlockM] / Math.Log2(Math.E);
                fromQ *= shape.SoftmaxScale;
                var index = shape.LseIndex(0, h, i);
                noCorrection = Math.Max(noCorrection, Math.Abs(int8.Lse[index] - fromCodes - reference.Lse[index]));
                exactCorrection = Math.Max(exactCorrection, Math.Abs(int8.Lse[index] - fromCodes + fromQ - reference.Lse[index]));
                largest = Math.Max(largest, Math.Abs(fromQ));
            }
        }
        output.WriteLine($"LSE max abs: {lse:E3} with the correction from Q's codes (the kernel's), {exactCorrection:E3} were it from f16 Q, " +
            $"{noCorrection:E3} without it; largest |σ·q·mean| {largest:F2}");
        // The correction from codes carries Q's rounding times the mean (|mean| up to 20 here): far better than none,
        // not as good as one computed from f16 Q (which only the Q quantize kernel sees).
        Assert.True(noCorrection > 5, $"seed {seed}: the offsets should matter, {noCorrection}");
        Assert.True(lse <= 0.1 * noCorrection && lse <= 1.0, $"seed {seed}: LSE max abs {lse}");
        Assert.True(exactCorrection <= 5e-2, $"seed {seed}: LSE with an f16-Q correction {exactCorrection}");
    }

    [Fact]
    public void On_outlier_query_channels_Ps_rounding_is_the_u8_modes_extra_error_and_per_row_Q_scales_do_not_remove_it()
    {
        // bench/sage.py's "outliers": four Q channels ×6, K with a per-channel offset of 3·N(0, 1) per head. On the H100
        // (docs/PERF.md session 6) the u8 mode gave 8.2e-2 against float64, the 16-bit P·V mode 4.5e-2 (SageAttention2,
        // with fp8 P, 4.5e-2). Both modes share the int8 Q·Kᵀ, so the gap is P's rounding to 1/255 steps. Finer Q scales
        // (issue 14) shrink the Q·Kᵀ part, not that gap: the u8 mode needs P in a relative format (fp8) to reach Sage2.
        var seed = AttentionTestData.FreshSeed();
        var shape = AttentionTestData.Shape(1, 2, 2, 64, 4096, 128);
        var (q, k, v) = OutlierInputs(shape, seed);
        var reference = Float64Attention.Forward(shape, q, k, v);
        double Error(PvMode pv, int rowsPerQScale)
        {
            var options = AttentionTestData.Options(128, pv) with { BlockM = rowsPerQScale };
            var error = ErrorMetrics.Compare(Int8AttentionReference.Forward(shape, q, k, v, options).OutputValues(), reference.Output).RelativeL2;
            output.WriteLine($"outliers seed {seed}, {pv} P·V, Q scaled per {rowsPerQScale} rows: rel L2 {error:E3}");
            return error;
        }
        var (u8, f16, u8Rows, f16Rows) = (Error(PvMode.U8, 128), Error(PvMode.F16, 128), Error(PvMode.U8, 1), Error(PvMode.F16, 1));
        Assert.True(u8 >= 1.15 * f16, $"seed {seed}: u8 {u8:E3} against 16-bit P·V {f16:E3}: P's rounding should add to the error");
        Assert.True(f16Rows < f16, $"seed {seed}: per-row Q scales {f16Rows:E3} against per-128-row {f16:E3} in the 16-bit mode");
        Assert.True(u8Rows >= 1.2 * f16Rows, $"seed {seed}: with per-row Q scales, u8 {u8Rows:E3} against 16-bit P·V {f16Rows:E3}");
    }

    /// <summary>bench/sage.py's "outliers" at D = 128: four Q channels ×6, K with a per-channel offset of 3·N(0, 1) per head, V N(0, 1).</summary>
    private static (Half[] Q, Half[] K, Half[] V) OutlierInputs(AttentionShape shape, int seed)
    {
        var rng = new Random(seed);
        var offsets = AttentionTestData.Gaussian(shape.HeadsKv * 128, rng, std: 3).Select(x => (double)x).ToArray();
        var outliers = new HashSet<int> { 3, 41, 77, 100 };
        var q = AttentionTestData.Gaussian(shape.QElements, rng).Select((x, i) => outliers.Contains(i % 128) ? (Half)((double)x * 6) : x).ToArray();
        var k = AttentionTestData.Gaussian(shape.KvElements, rng, offset: i => offsets[i / (shape.TokensKv * 128) % shape.HeadsKv * 128 + i % 128]);
        var v = AttentionTestData.Gaussian(shape.KvElements, rng);
        return (q, k, v);
    }

    [Fact]
    public void Fp8_PV_stays_near_16_bit_PV_and_at_most_near_u8_on_outliers_but_trails_u8_on_gaussians()
    {
        // The prediction for fp8 (e4m3) P·V on the Hopper kernel (docs/PERF_NOTES.md §7). P relative to the row max in a
        // floating format keeps a peaked row's small probabilities that u8's absolute 1/255 steps lose. Its price is
        // e4m3's 3-bit mantissa, on V above all (2.6e-2 rms per element against s8's 0.9e-2): on flat Gaussian rows,
        // where u8 loses little, it is worse than u8. On outliers (16 seeds, two to eight heads) e4m3 gave 5.0–6.3e-2,
        // 1.19–1.32× the 16-bit mode, while u8 swung from 5.1e-2 to 1.2e-1 with how peaked each head's offsets make its
        // rows: e4m3 was better in 14 of 16 and at most 1.04× u8 otherwise. So "e4m3 beats u8" is typical, not certain.
        var seed = AttentionTestData.FreshSeed();
        var shape = AttentionTestData.Shape(1, 2, 2, 64, 4096, 128);
        var table = new List<string> { "| inputs | U8 | F16 | E4M3 |", "| --- | --- | --- | --- |" };
        var errors = new Dictionary<(string, PvMode), double>();
        foreach (var (label, (q, k, v)) in new[] { ("outliers", OutlierInputs(shape, seed)), ("gaussian", AttentionTestData.Inputs(shape, seed)) })
        {
            var reference = Float64Attention.Forward(shape, q, k, v);
            var row = $"| {label} |";
            foreach (var pv in new[] { PvMode.U8, PvMode.F16, PvMode.E4M3 })
            {
                var result = Int8AttentionReference.Forward(shape, q, k, v, AttentionTestData.Options(128, pv));
                errors[(label, pv)] = ErrorMetrics.Compare(result.OutputValues(), reference.Output).RelativeL2;
                row += $" {errors[(label, pv)]:E3} |";
            }
            table.Add(row);
        }
        output.WriteLine($"rel L2 against float64, seed {seed}, B1 H2 Sq64 Skv4096 D128, Q per 128 rows, K per 64 keys:");
        table.ForEach(output.WriteLine);
        var (u8, f16, fp8) = (errors[("outliers", PvMode.U8)], errors[("outliers", PvMode.F16)], errors[("outliers", PvMode.E4M3)]);
        Assert.True(fp8 <= 1.15 * u8 && fp8 <= 7e-2, $"seed {seed}: on outliers e4m3 {fp8:E3} should stay near or below u8 {u8:E3}");
        // Observed 1.19–1.32× the 16-bit mode: P's and V's e4m3 rounding add to the shared int8 Q·Kᵀ error, not much more.
        Assert.True(fp8 >= 1.05 * f16 && fp8 <= 1.5 * f16, $"seed {seed}: on outliers e4m3 {fp8:E3} against 16-bit P·V {f16:E3}");
        var (gaussianU8, gaussianFp8) = (errors[("gaussian", PvMode.U8)], errors[("gaussian", PvMode.E4M3)]);
        // Observed 1.7–1.8×, and 3.8–3.9e-2 absolute.
        Assert.True(gaussianFp8 >= 1.3 * gaussianU8 && gaussianFp8 <= 5e-2, $"seed {seed}: on Gaussians e4m3 {gaussianFp8:E3} against u8 {gaussianU8:E3}");
    }

    [Theory]
    [InlineData(4.0, 5e-2, 0.999)]
    [InlineData(16.0, 1e-1, 0.995)]
    public void Peaky_attention_from_a_scaled_q_stays_close(double qScale, double maxRelativeL2, double minCosine)
    {
        // Scores of std ≈ qScale make the softmax nearly one-hot; the error comes from int8 Q·Kᵀ (a relative error of
        // the scores, so it grows with them), not from P's quantization: f16 P·V shows the same.
        var seed = AttentionTestData.FreshSeed();
        var shape = AttentionTestData.Shape(1, 2, 2, 64, 256, 64);
        var rng = new Random(seed);
        var q = AttentionTestData.Gaussian(shape.QElements, rng, std: qScale);
        var k = AttentionTestData.Gaussian(shape.KvElements, rng);
        var v = AttentionTestData.Gaussian(shape.KvElements, rng);
        var (u8, lse) = Measure(shape, q, k, v, PvMode.U8, $"peaky Q×{qScale}", seed);
        Assert.True(u8.RelativeL2 <= maxRelativeL2 && u8.Cosine >= minCosine, $"seed {seed}: {u8}");
        Assert.True(lse <= 0.06 * qScale, $"seed {seed}: LSE max abs {lse}");
        var (f16, _) = Measure(shape, q, k, v, PvMode.F16, $"peaky Q×{qScale}", seed);
        Assert.True(f16.RelativeL2 <= maxRelativeL2 && f16.Cosine >= minCosine, $"seed {seed}: {f16}");
    }

    [Theory]
    [InlineData(1, 1, false)]
    [InlineData(1, 17, false)]
    [InlineData(17, 1, false)]
    [InlineData(17, 17, true)]
    [InlineData(1, 17, true)]
    public void Short_lengths(int sq, int skv, bool causal)
    {
        var seed = AttentionTestData.FreshSeed();
        var shape = AttentionTestData.Shape(2, 2, 1, sq, skv, 64, causal);
        var (q, k, v) = AttentionTestData.Inputs(shape, seed);
        var (u8, lse) = Measure(shape, q, k, v, PvMode.U8, "short", seed);
        Assert.True(u8.RelativeL2 <= 3e-2 && u8.Cosine >= 0.999, $"seed {seed}: {u8}");
        Assert.True(lse <= 5e-2, $"seed {seed}: LSE max abs {lse}");
    }

    [Fact]
    public void Bf16_inputs_give_bf16_outputs_within_budget()
    {
        var seed = AttentionTestData.FreshSeed();
        var shape = AttentionTestData.Shape(1, 4, 2, 70, 150, 128, causal: true);
        var rng = new Random(seed);
        ushort[] Bf16(int count) => AttentionTestData.Gaussian(count, rng).Select(x => AttentionTensors.SingleToBf16((float)x)).ToArray();
        var (q, k, v) = (Bf16(shape.QElements), Bf16(shape.KvElements), Bf16(shape.KvElements));
        var reference = Float64Attention.Forward(shape, q, k, v, Element.BF16);
        foreach (var pv in new[] { PvMode.U8, PvMode.F16 })
        {
            var int8 = Int8AttentionReference.Forward(shape, q, k, v, Element.BF16, AttentionTestData.Options(128, pv));
            Assert.Equal(Element.BF16, int8.OutputElement);
            var report = ErrorMetrics.Compare(int8.OutputValues(), reference.Output);
            output.WriteLine($"bf16 {pv} seed {seed}: {report}");
            // bf16 output rounding alone is ~2e-3 relative.
            Assert.True(report.RelativeL2 <= 3e-2 && report.Cosine >= 0.999, $"seed {seed}: {pv} {report}");
        }
    }
}
