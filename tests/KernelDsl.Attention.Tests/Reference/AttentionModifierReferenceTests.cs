using KernelDsl;
using KernelDsl.Attention.Reference;

namespace AttentionTests.Reference;

/// <summary>
/// Score modifiers and masks in the two CPU references: Float64Attention against brute force written here (its own index
/// arithmetic, an explicit softmax over the visible keys), and the int8 reference against Float64Attention with the same
/// modifiers, held to the u8 bars of <see cref="AttentionInt8AccuracyTests"/>.
/// </summary>
public class AttentionModifierReferenceTests(ITestOutputHelper output)
{
    // The u8 bars of AttentionInt8AccuracyTests (Gaussian inputs).
    private const double U8RelativeL2 = 3e-2;
    private const double U8Cosine = 0.999;
    private const double LseBar = 8e-2;

    private static float Softcap(float s, float cap) => cap * MathF.Tanh(s / cap);

    /// <summary>The ALiBi slopes of a power-of-two head count: 2^(−8(h+1)/H).</summary>
    private static float[] AlibiSlopes(int heads) => Enumerable.Range(0, heads).Select(h => MathF.Pow(2f, -8f * (h + 1) / heads)).ToArray();

    private static int Index(int heads, int tokens, int d, int b, int h, int s, int c) => ((b * heads + h) * tokens + s) * d + c;

    /// <summary>
    /// Attention written out for one row at a time over an explicit list of visible keys (BHSD only): scores, their max, the
    /// weights exp(s − max), their sum, O = Σ w·v / Σ w, LSE = max + ln Σ w. <paramref name="score"/> maps the double score.
    /// </summary>
    private static (double[] Output, double[] Lse) BruteForce(AttentionShape shape, Half[] q16, Half[] k16, Half[] v16,
        Func<int, int, int, int, bool> visible, Func<double, int, int, int, int, double>? score = null)
    {
        Assert.Equal(TensorLayout.BHSD, shape.Layout);
        var (q, k, v) = (AttentionTestData.ToDouble(q16), AttentionTestData.ToDouble(k16), AttentionTestData.ToDouble(v16));
        int hq = shape.HeadsQ, hkv = shape.HeadsKv, sq = shape.TokensQ, sk = shape.TokensKv, d = shape.HeadDim;
        var output = new double[q.Length];
        var lse = new double[shape.Batch * hq * sq];
        for (var b = 0; b < shape.Batch; b++)
        {
            for (var h = 0; h < hq; h++)
            {
                var kvHead = h / (hq / hkv);
                for (var i = 0; i < sq; i++)
                {
                    var keys = Enumerable.Range(0, sk).Where(j => visible(b, h, i, j)).ToArray();
                    var scores = keys.Select(j =>
                    {
                        var dot = 0.0;
                        for (var c = 0; c < d; c++)
                        {
                            dot += q[Index(hq, sq, d, b, h, i, c)] * k[Index(hkv, sk, d, b, kvHead, j, c)];
                        }
                        var s = shape.SoftmaxScale * dot;
                        return score is null ? s : score(s, b, h, i, j);
                    }).ToArray();
                    if (scores.Length == 0)
                    {
                        lse[(b * hq + h) * sq + i] = double.NegativeInfinity;
                        continue;
                    }
                    var max = scores.Max();
                    var weights = scores.Select(s => Math.Exp(s - max)).ToArray();
                    var total = weights.Sum();
                    lse[(b * hq + h) * sq + i] = max + Math.Log(total);
                    for (var c = 0; c < d; c++)
                    {
                        var acc = 0.0;
                        for (var t = 0; t < keys.Length; t++)
                        {
                            acc += weights[t] * v[Index(hkv, sk, d, b, kvHead, keys[t], c)];
                        }
                        output[Index(hq, sq, d, b, h, i, c)] = acc / total;
                    }
                }
            }
        }
        return (output, lse);
    }

    private void AssertClose(string label, int seed, (double[] Output, double[] Lse) expected, Float64AttentionResult actual, double tolerance = 1e-12)
    {
        var outError = ErrorMetrics.MaxAbs(actual.Output, expected.Output);
        var lseError = ErrorMetrics.MaxAbs(actual.Lse, expected.Lse);
        output.WriteLine($"{label} seed {seed}: output max abs {outError:E2}, LSE max abs {lseError:E2}");
        Assert.True(outError <= tolerance, $"{label} seed {seed}: output differs by {outError}");
        Assert.True(lseError <= tolerance, $"{label} seed {seed}: LSE differs by {lseError}");
    }

    // ---------------------------------------------------------------- float64

    [Theory]
    [InlineData(37, 37)]
    [InlineData(20, 45)]   // Sq < Sk: the diagonal is shifted right
    [InlineData(45, 20)]   // Sq > Sk: the first 25 rows see nothing
    public void Float64_a_bottom_right_causal_mask_equals_the_causal_shape(int sq, int sk)
    {
        var seed = AttentionTestData.FreshSeed();
        var causal = AttentionTestData.Shape(2, 4, 2, sq, sk, 32, causal: true);
        var open = AttentionTestData.Shape(2, 4, 2, sq, sk, 32);
        var (q, k, v) = AttentionTestData.Inputs(open, seed);
        var mask = new AttentionModifiers(Mask: (_, _, i, j) => j <= i + (sk - sq));
        var expected = Float64Attention.Forward(causal, q, k, v);
        AssertClose($"mask vs causal {sq}×{sk}", seed, (expected.Output, expected.Lse), Float64Attention.Forward(open, q, k, v, modifiers: mask));
        // The same mask on a causal shape changes nothing (AND with itself), and neither does a split-KV slice.
        AssertClose($"mask ∧ causal {sq}×{sk}", seed, (expected.Output, expected.Lse), Float64Attention.Forward(causal, q, k, v, modifiers: mask));
        var slice = 3..(sk - 4);
        var expectedSlice = Float64Attention.Forward(causal, q, k, v, slice);
        AssertClose($"slice {sq}×{sk}", seed, (expectedSlice.Output, expectedSlice.Lse), Float64Attention.Forward(open, q, k, v, slice, mask));
        if (sq > sk)
        {
            Assert.True(double.IsNegativeInfinity(expected.Lse[0]), "the first row sees no key");
        }
    }

    [Theory]
    [InlineData(100, 100, 16, false)]
    [InlineData(60, 130, 7, true)]
    public void Float64_sliding_window_matches_brute_force(int sq, int sk, int window, bool causal)
    {
        var seed = AttentionTestData.FreshSeed();
        var shape = AttentionTestData.Shape(2, 4, 2, sq, sk, 64, causal);
        var (q, k, v) = AttentionTestData.Inputs(shape, seed);
        // On the non-causal shape the window is its own causality (k ≤ q); on the causal one it ANDs with the shifted diagonal.
        var modifiers = new AttentionModifiers(Mask: (_, _, i, j) => causal ? i + (sk - sq) - j < window : j <= i && i - j < window);
        var expected = BruteForce(shape, q, k, v, (_, _, i, j) => causal
            ? j <= i + sk - sq && j > i + sk - sq - window
            : j <= i && j > i - window);
        AssertClose($"window {window}", seed, expected, Float64Attention.Forward(shape, q, k, v, modifiers: modifiers));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Float64_softcap_matches_brute_force(bool causal)
    {
        var seed = AttentionTestData.FreshSeed();
        var shape = AttentionTestData.Shape(1, 4, 2, 50, 77, 64, causal);
        var rng = new Random(seed);
        // Scores of std ≈ 3 so that a cap of 5 bends them.
        var q = AttentionTestData.Gaussian(shape.QElements, rng, std: 3);
        var k = AttentionTestData.Gaussian(shape.KvElements, rng);
        var v = AttentionTestData.Gaussian(shape.KvElements, rng);
        const float cap = 5f;
        var modifiers = new AttentionModifiers(Score: (s, _, _, _, _) => Softcap(s, cap));
        var actual = Float64Attention.Forward(shape, q, k, v, modifiers: modifiers);
        bool Visible(int b, int h, int i, int j) => !causal || j <= i + shape.TokensKv - shape.TokensQ;
        // The modifier runs in float on the score rounded to float, as on the GPU.
        AssertClose("softcap (float modifier)", seed, BruteForce(shape, q, k, v, Visible, (s, _, _, _, _) => Softcap((float)s, cap)), actual);
        // In double the cap gives the same to float precision; without it the numbers are far off.
        var exact = BruteForce(shape, q, k, v, Visible, (s, _, _, _, _) => cap * Math.Tanh(s / cap));
        var plain = Float64Attention.Forward(shape, q, k, v);
        var (toExact, toPlain) = (ErrorMetrics.MaxAbs(actual.Output, exact.Output), ErrorMetrics.MaxAbs(actual.Output, plain.Output));
        output.WriteLine($"softcap seed {seed}: vs double softcap {toExact:E2}, vs no softcap {toPlain:E2}");
        Assert.True(toExact <= 1e-5, $"seed {seed}: {toExact}");
        Assert.True(toPlain >= 1e-2, $"seed {seed}: the cap should bend these scores, {toPlain}");
    }

    [Fact]
    public void Float64_alibi_matches_brute_force()
    {
        var seed = AttentionTestData.FreshSeed();
        var shape = AttentionTestData.Shape(2, 8, 2, 40, 90, 32, causal: true);
        var (q, k, v) = AttentionTestData.Inputs(shape, seed);
        var slopes = AlibiSlopes(shape.HeadsQ);
        var modifiers = new AttentionModifiers(Score: (s, _, h, i, j) => s + slopes[h] * (j - i));
        var actual = Float64Attention.Forward(shape, q, k, v, modifiers: modifiers);
        bool Visible(int b, int h, int i, int j) => j <= i + 50;
        AssertClose("alibi (float modifier)", seed, BruteForce(shape, q, k, v, Visible, (s, _, h, i, j) => (float)s + slopes[h] * (j - i)), actual);
        var exact = BruteForce(shape, q, k, v, Visible, (s, _, h, i, j) => s + (double)slopes[h] * (j - i));
        var error = ErrorMetrics.MaxAbs(actual.Output, exact.Output);
        Assert.True(error <= 1e-5, $"seed {seed}: vs double ALiBi {error}");
    }

    [Fact]
    public void Float64_score_and_mask_together_match_brute_force_with_gqa_and_batch_dependent_masks()
    {
        var seed = AttentionTestData.FreshSeed();
        var shape = AttentionTestData.Shape(2, 4, 1, 33, 33, 16);
        var (q, k, v) = AttentionTestData.Inputs(shape, seed);
        // Batch 0 is one document, batch 1 three; head 3 is additionally limited to a window of 5.
        int Doc(int b, int t) => b == 0 ? 0 : t / 11;
        bool Visible(int b, int h, int i, int j) => Doc(b, i) == Doc(b, j) && j <= i && (h != 3 || i - j < 5);
        var modifiers = new AttentionModifiers((s, b, h, _, _) => Softcap(s, 2f + b + h), (b, h, i, j) => Visible(b, h, i, j));
        AssertClose("softcap + documents", seed, BruteForce(shape, q, k, v, Visible, (s, b, h, _, _) => Softcap((float)s, 2f + b + h)),
            Float64Attention.Forward(shape, q, k, v, modifiers: modifiers));
    }

    [Fact]
    public void Fully_masked_rows_output_zero_with_lse_minus_infinity()
    {
        var seed = AttentionTestData.FreshSeed();
        // Queries below 5 see nothing; on the causal shape (Sq > Sk) the first 10 rows see nothing already.
        foreach (var causal in new[] { false, true })
        {
            var shape = AttentionTestData.Shape(1, 2, 1, 80, 70, 64, causal);
            var (q, k, v) = AttentionTestData.Inputs(shape, seed);
            var modifiers = new AttentionModifiers(Mask: (_, _, i, _) => i >= 5);
            var empty = causal ? 10 : 5;
            var f64 = Float64Attention.Forward(shape, q, k, v, modifiers: modifiers);
            var int8 = Int8AttentionReference.Forward(shape, q, k, v, AttentionTestData.Options(64), modifiers);
            var int8Out = int8.OutputValues();
            for (var h = 0; h < shape.HeadsQ; h++)
            {
                for (var i = 0; i < shape.TokensQ; i++)
                {
                    var row = (h * shape.TokensQ + i) * 64;
                    var lse = shape.LseIndex(0, h, i);
                    if (i < empty)
                    {
                        Assert.True(double.IsNegativeInfinity(f64.Lse[lse]) && float.IsNegativeInfinity(int8.Lse[lse]), $"causal {causal} row {i}");
                        Assert.All(f64.Output.AsSpan(row, 64).ToArray(), x => Assert.Equal(0.0, x));
                        Assert.All(int8Out.AsSpan(row, 64).ToArray(), x => Assert.Equal(0.0, x));
                    }
                    else
                    {
                        Assert.True(double.IsFinite(f64.Lse[lse]) && float.IsFinite(int8.Lse[lse]), $"seed {seed} causal {causal} row {i}");
                        Assert.Contains(f64.Output.AsSpan(row, 64).ToArray(), x => x != 0);
                        Assert.Contains(int8Out.AsSpan(row, 64).ToArray(), x => x != 0);
                    }
                }
            }
            // A score modifier that sends every score to −∞ empties every row too.
            var gone = new AttentionModifiers(Score: (_, _, _, _, _) => float.NegativeInfinity);
            Assert.All(Float64Attention.Forward(shape, q, k, v, modifiers: gone).Lse, x => Assert.True(double.IsNegativeInfinity(x)));
            var int8Gone = Int8AttentionReference.Forward(shape, q, k, v, AttentionTestData.Options(64), gone);
            Assert.All(int8Gone.Lse, x => Assert.True(float.IsNegativeInfinity(x)));
            Assert.All(int8Gone.OutputValues(), x => Assert.Equal(0.0, x));
        }
    }

    // ---------------------------------------------------------------- int8

    [Fact]
    public void Int8_without_modifiers_is_bit_identical_and_a_causal_mask_matches_the_causal_shape_bit_for_bit()
    {
        var seed = AttentionTestData.FreshSeed();
        var causal = AttentionTestData.Shape(1, 4, 2, 200, 333, 64, causal: true);
        var open = AttentionTestData.Shape(1, 4, 2, 200, 333, 64);
        var (q, k, v) = AttentionTestData.Inputs(open, seed);
        var options = AttentionTestData.Options(64);
        var plain = Int8AttentionReference.Forward(causal, q, k, v, options);
        var none = Int8AttentionReference.Forward(causal, q, k, v, options, AttentionModifiers.None);
        Assert.Equal(plain.Output, none.Output);
        Assert.Equal(plain.Lse, none.Lse);
        // Extra blocks visited with every score masked take α = 1, P = 0: no bit changes.
        var masked = Int8AttentionReference.Forward(open, q, k, v, options, new AttentionModifiers(Mask: (_, _, i, j) => j <= i + 133));
        Assert.Equal(plain.Output, masked.Output);
        Assert.Equal(plain.Lse, masked.Lse);
    }

    public static TheoryData<string> ModifierCases() => new() { "window", "softcap30", "alibi", "documents", "prefix-lm", "window-noncausal" };

    [Theory]
    [MemberData(nameof(ModifierCases))]
    public void Int8_with_modifiers_stays_within_the_u8_bars_of_float64(string name)
    {
        var seed = AttentionTestData.FreshSeed();
        var rng = new Random(seed);
        (AttentionShape Shape, AttentionModifiers Modifiers) Case()
        {
            switch (name)
            {
                case "window":
                {
                    // GQA, Sq < Sk, lengths off the blocks; the window follows the bottom-right diagonal.
                    var shape = AttentionTestData.Shape(1, 4, 2, 200, 333, 64, causal: true);
                    return (shape, new AttentionModifiers(Mask: (_, _, i, j) => i + 133 - j < 48));
                }
                case "softcap30":
                {
                    var shape = AttentionTestData.Shape(2, 4, 2, 200, 333, 128, causal: true);
                    return (shape, new AttentionModifiers(Score: (s, _, _, _, _) => Softcap(s, 30f)));
                }
                case "alibi":
                {
                    var shape = AttentionTestData.Shape(1, 8, 4, 200, 333, 64, causal: true);
                    var slopes = AlibiSlopes(8);
                    return (shape, new AttentionModifiers(Score: (s, _, h, i, j) => s + slopes[h] * (j - (i + 133))));
                }
                case "documents":
                {
                    // Per-batch documents with random boundaries; causal within each.
                    var shape = AttentionTestData.Shape(2, 4, 2, 300, 300, 64, causal: true);
                    var docs = new int[2][];
                    for (var b = 0; b < 2; b++)
                    {
                        docs[b] = new int[300];
                        for (var t = 1; t < 300; t++)
                        {
                            docs[b][t] = docs[b][t - 1] + (rng.Next(40) == 0 ? 1 : 0);
                        }
                    }
                    return (shape, new AttentionModifiers(Mask: (b, _, i, j) => docs[b][i] == docs[b][j]));
                }
                case "prefix-lm":
                {
                    var shape = AttentionTestData.Shape(1, 4, 2, 200, 200, 128);
                    return (shape, new AttentionModifiers(Mask: (_, _, i, j) => j < 70 || j <= i));
                }
                case "window-noncausal":
                {
                    // Sq > Sk on a non-causal shape with a symmetric window, plus a softcap.
                    var shape = AttentionTestData.Shape(1, 4, 2, 333, 200, 64);
                    return (shape, new AttentionModifiers((s, _, _, _, _) => Softcap(s, 10f), (_, _, i, j) => Math.Abs(i * 200 / 333 - j) < 40));
                }
                default:
                    throw new ArgumentException(name);
            }
        }
        var (shape, modifiers) = Case();
        var q = AttentionTestData.Gaussian(shape.QElements, rng);
        var k = AttentionTestData.Gaussian(shape.KvElements, rng);
        var v = AttentionTestData.Gaussian(shape.KvElements, rng);
        var reference = Float64Attention.Forward(shape, q, k, v, modifiers: modifiers);
        var int8 = Int8AttentionReference.Forward(shape, q, k, v, AttentionTestData.Options(shape.HeadDim), modifiers);
        var report = ErrorMetrics.Compare(int8.OutputValues(), reference.Output);
        var lse = ErrorMetrics.MaxAbs(ErrorMetrics.Widen(int8.Lse), reference.Lse);
        var unmodified = ErrorMetrics.Compare(Float64Attention.Forward(shape, q, k, v).Output, reference.Output);
        output.WriteLine($"{name} seed {seed}: {report}, LSE max abs {lse:E3} (the modifiers move float64 by rel L2 {unmodified.RelativeL2:E2})");
        Assert.True(report.RelativeL2 <= U8RelativeL2 && report.Cosine >= U8Cosine, $"{name} seed {seed}: {report}");
        Assert.True(lse <= LseBar, $"{name} seed {seed}: LSE max abs {lse}");
        Assert.True(unmodified.RelativeL2 >= 5e-2 || name == "softcap30", $"{name} seed {seed}: the modifiers should matter, {unmodified}");
    }

    [Fact]
    public void Int8_score_modifier_sees_the_unsmoothed_score()
    {
        // K with +3 on every channel: smoothing removes it from K, so σ·q·mean (std ≈ 3 per row here) is missing from the
        // int8 scores until the kernel adds q8·mean back. Softcap with cap 5 is far from shift-invariant at that size.
        var seed = AttentionTestData.FreshSeed();
        var shape = AttentionTestData.Shape(1, 4, 2, 130, 200, 128, causal: true);
        var rng = new Random(seed);
        var q = AttentionTestData.Gaussian(shape.QElements, rng);
        var k = AttentionTestData.Gaussian(shape.KvElements, rng, offset: _ => 3.0);
        var v = AttentionTestData.Gaussian(shape.KvElements, rng);
        var options = AttentionTestData.Options(128);
        const float cap = 5f;
        var inputs = Int8AttentionReference.Quantize(shape, AttentionTensors.Bits(q), AttentionTensors.Bits(k), AttentionTensors.Bits(v), Element.F16, options);

        // What the modifier is handed is σ·q·k to int8 accuracy, offset included.
        var seen = new double[shape.HeadsQ, shape.TokensQ, shape.TokensKv];
        var record = new AttentionModifiers(Score: (s, _, h, i, j) => { seen[h, i, j] = s; return s; });
        Int8AttentionReference.Forward(shape, inputs, options, record);
        double worst = 0, largest = 0, squares = 0;
        var count = 0;
        for (var h = 0; h < shape.HeadsQ; h++)
        {
            for (var i = 0; i < shape.TokensQ; i++)
            {
                for (var j = 0; j <= i + 70; j++)
                {
                    var dot = 0.0;
                    for (var c = 0; c < 128; c++)
                    {
                        dot += (double)q[Index(4, 130, 128, 0, h, i, c)] * (double)k[Index(2, 200, 128, 0, h / 2, j, c)];
                    }
                    var exact = shape.SoftmaxScale * dot;
                    worst = Math.Max(worst, Math.Abs(seen[h, i, j] - exact));
                    squares += (seen[h, i, j] - exact) * (seen[h, i, j] - exact);
                    count++;
                    largest = Math.Max(largest, Math.Abs(exact));
                }
            }
        }
        var rms = Math.Sqrt(squares / count);
        output.WriteLine($"seed {seed}: scores handed to the modifier within {worst:E3} (RMS {rms:E3}) of σ·q·k (largest |σ·q·k| {largest:F2})");
        Assert.True(largest > 6, $"seed {seed}: the offset should make large scores, {largest}");
        // int8 Q and K err by about 1% of a score's size; the smoothed score would be off by σ·q·mean, std ≈ 3 here.
        Assert.True(worst <= 0.3 && rms <= 0.05, $"seed {seed}: the modifier saw scores up to {worst} (RMS {rms}) away from σ·q·k");

        // Softcapped attention: the int8 reference meets the u8 bars.
        var softcap = new AttentionModifiers(Score: (s, _, _, _, _) => Softcap(s, cap));
        var reference = Float64Attention.Forward(shape, q, k, v, modifiers: softcap);
        var int8 = Int8AttentionReference.Forward(shape, inputs, options, softcap);
        var report = ErrorMetrics.Compare(int8.OutputValues(), reference.Output);
        var lse = ErrorMetrics.MaxAbs(ErrorMetrics.Widen(int8.Lse), reference.Lse);

        // A kernel that forgot the correction would softcap the smoothed score s − σ·q·mean: emulate it by handing the
        // softcap the score less this row's (qScale·ln 2)·Σ q8·mean, and show it misses the bar by far.
        var qTiles = (shape.TokensQ + options.BlockM - 1) / options.BlockM;
        var correction = new float[shape.HeadsQ, shape.TokensQ];
        for (var h = 0; h < shape.HeadsQ; h++)
        {
            for (var i = 0; i < shape.TokensQ; i++)
            {
                var dot = 0.0;
                for (var c = 0; c < 128; c++)
                {
                    dot += inputs.Q.Output[Index(4, 130, 128, 0, h, i, c)] * (double)inputs.K.ChannelMean![(h / 2) * 128 + c];
                }
                correction[h, i] = (float)(dot * inputs.Q.Scales[h * qTiles + i / options.BlockM] / Math.Log2(Math.E));
            }
        }
        var smoothed = new AttentionModifiers(Score: (s, _, h, i, _) => Softcap(s - correction[h, i], cap));
        var wrong = ErrorMetrics.Compare(Int8AttentionReference.Forward(shape, inputs, options, smoothed).OutputValues(), reference.Output);
        output.WriteLine($"softcap {cap} on K offset +3, seed {seed}: {report}, LSE max abs {lse:E3}; softcap of the smoothed score: {wrong}");
        Assert.True(report.RelativeL2 <= U8RelativeL2 && report.Cosine >= U8Cosine, $"seed {seed}: {report}");
        // Scores up to ~12 carry int8's relative error, and qm carries Q's rounding times the +3 mean: LSE errs up to ~0.09
        // (the large-offset test of AttentionInt8AccuracyTests allows 1.0 with ±20 offsets).
        Assert.True(lse <= 0.2, $"seed {seed}: LSE max abs {lse}");
        // Observed ≈ 0.27–0.32, twenty times the correct variant's ≈ 0.014.
        Assert.True(wrong.RelativeL2 >= 5 * U8RelativeL2 && wrong.RelativeL2 >= 10 * report.RelativeL2,
            $"seed {seed}: softcap of the smoothed score should miss the bar by far, {wrong}");
    }
}
