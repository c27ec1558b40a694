namespace AttentionTests.Reference;

/// <summary>
/// Issue 16's open question, answered on the CPU before any cache kernel exists: a KV cache grows a page at a time, so
/// it cannot smooth K by the mean of all its tokens as prefill does. Which K quantization should it keep? Each scheme
/// stores int8 codes of k − m(t) with one scale per page (or per token) and an offset m(t); a score is
/// q·(codes·scale) + q·m(t), the second term adding back exactly what the offset removed (one dot product per page and
/// row in a kernel). Q is int8 per row, as a decode row would be. Two measures against float64: the scores' error
/// after removing each row's mean error (a constant shift per row does not change the softmax), relative to the rows'
/// centered scores; and O's relative L2 with softmax and P·V in float64, so the error is K's and Q's alone.
/// Inputs: K with per-channel offsets (3·N(0, 1)), fixed, turned with position in RoPE's channel pairs, or drifting; Q
/// with four channels ×6. docs/KV_CACHE.md records five runs and the choice they support.
/// </summary>
public class KvCacheQuantizationStudyTests(ITestOutputHelper output)
{
    private const int D = 128, Page = 64, Keys = 4096, Queries = 32, Heads = 2, Prefill = 1024;

    public enum KScheme
    {
        /// <summary>Prefill's: the mean of every token. Not available to a growing cache; the bar.</summary>
        GlobalMean,
        /// <summary>No offset.</summary>
        NoOffset,
        /// <summary>No offset, one scale per token instead of per page.</summary>
        NoOffsetPerToken,
        /// <summary>Each page's own channel mean, with its q·m correction per page.</summary>
        PageMean,
        /// <summary>The mean of the prefill's tokens, frozen for every later page.</summary>
        PrefillMean,
    }

    private sealed record Measures(double ScoreError, double OutputError);

    private static double[][] Rows(Random random, int count, Func<int, int, double>? add = null) =>
        Enumerable.Range(0, count).Select(t => Enumerable.Range(0, D).Select(c => AttentionTestData.Normal(random) + (add?.Invoke(t, c) ?? 0)).ToArray()).ToArray();

    /// <summary>How K's per-channel offsets behave along the sequence.</summary>
    public enum Offsets
    {
        /// <summary>The same at every position.</summary>
        Fixed,
        /// <summary>Turned by RoPE: pair c/2 rotates by t·10000^(−c/D).</summary>
        Rope,
        /// <summary>Moving linearly, by another 3·N(0, 1) per channel from the first key to the last: a distribution that drifts during generation.</summary>
        Drifting,
    }

    private static double[][] KeysWithOffsets(Random random, Offsets kind)
    {
        var offset = Enumerable.Range(0, D).Select(_ => 3 * AttentionTestData.Normal(random)).ToArray();
        var drift = Enumerable.Range(0, D).Select(_ => 3 * AttentionTestData.Normal(random)).ToArray();
        return Rows(random, Keys, (t, c) =>
        {
            if (kind != Offsets.Rope)
            {
                return offset[c] + (kind == Offsets.Drifting ? drift[c] * t / Keys : 0);
            }
            var pair = c & ~1;
            var angle = t * Math.Pow(10000, -(double)pair / D);
            var (a, b) = (offset[pair], offset[pair + 1]);
            return c == pair ? a * Math.Cos(angle) - b * Math.Sin(angle) : a * Math.Sin(angle) + b * Math.Cos(angle);
        });
    }

    /// <summary>Round half to even into [−127, 127], as the quantize kernels do.</summary>
    private static double Code(double x, double scale) => Math.Clamp(Math.Round(x / scale, MidpointRounding.ToEven), -127, 127);

    private static double[] Mean(double[][] rows, int from, int count) =>
        Enumerable.Range(0, D).Select(c => Enumerable.Range(from, count).Sum(t => rows[t][c]) / count).ToArray();

    private static double Dot(double[] a, double[] b)
    {
        var sum = 0.0;
        for (var c = 0; c < D; c++)
        {
            sum += a[c] * b[c];
        }
        return sum;
    }

    /// <summary>K as a scheme stores it: k(t) ≈ dequantized codes + offset m(t).</summary>
    private static (double[][] Dequantized, double[][] Offset) QuantizeK(KScheme scheme, double[][] k)
    {
        var (global, prefill, zero) = (Mean(k, 0, Keys), Mean(k, 0, Prefill), new double[D]);
        var offset = new double[Keys][];
        for (var p = 0; p < Keys; p += Page)
        {
            var page = scheme == KScheme.PageMean ? Mean(k, p, Page) : null;
            for (var t = p; t < p + Page; t++)
            {
                offset[t] = scheme switch
                {
                    KScheme.GlobalMean => global,
                    KScheme.PageMean => page!,
                    KScheme.PrefillMean => prefill,
                    _ => zero,
                };
            }
        }
        var group = scheme == KScheme.NoOffsetPerToken ? 1 : Page;
        var dequantized = new double[Keys][];
        for (var g = 0; g < Keys; g += group)
        {
            var absmax = Enumerable.Range(g, group).Max(t => Enumerable.Range(0, D).Max(c => Math.Abs(k[t][c] - offset[t][c])));
            var scale = absmax == 0 ? 1 : absmax / 127;
            for (var t = g; t < g + group; t++)
            {
                dequantized[t] = Enumerable.Range(0, D).Select(c => Code(k[t][c] - offset[t][c], scale) * scale).ToArray();
            }
        }
        return (dequantized, offset);
    }

    /// <summary>softmax(σ·s)·V of one row, in float64.</summary>
    private static double[] Attend(double[] scores, double[][] v)
    {
        var sigma = 1 / Math.Sqrt(D);
        var max = scores.Max();
        var p = scores.Select(s => Math.Exp(sigma * (s - max))).ToArray();
        var sum = p.Sum();
        var o = new double[D];
        for (var t = 0; t < Keys; t++)
        {
            for (var c = 0; c < D; c++)
            {
                o[c] += p[t] / sum * v[t][c];
            }
        }
        return o;
    }

    private static Dictionary<KScheme, Measures> Study(int seed, Offsets kind)
    {
        var random = new Random(seed);
        var schemes = Enum.GetValues<KScheme>();
        var (scoreError, scoreNorm) = (schemes.ToDictionary(s => s, _ => 0.0), 0.0);
        var (outputError, outputNorm) = (schemes.ToDictionary(s => s, _ => 0.0), 0.0);
        var outliers = new HashSet<int> { 3, 41, 77, 100 };
        for (var h = 0; h < Heads; h++)
        {
            var q = Rows(random, Queries).Select(row => row.Select((x, c) => outliers.Contains(c) ? 6 * x : x).ToArray()).ToArray();
            var k = KeysWithOffsets(random, kind);
            var v = Rows(random, Keys);
            // Q int8 per row, dequantized: the values a decode kernel's scores see.
            var q8 = q.Select(row => row.Select(x => Code(x, row.Max(Math.Abs) / 127) * (row.Max(Math.Abs) / 127)).ToArray()).ToArray();
            var stored = schemes.ToDictionary(s => s, s => QuantizeK(s, k));
            for (var i = 0; i < Queries; i++)
            {
                var exact = k.Select(kt => Dot(q[i], kt)).ToArray();
                var exactMean = exact.Average();
                scoreNorm += exact.Sum(s => (s - exactMean) * (s - exactMean));
                var o = Attend(exact, v);
                outputNorm += o.Sum(x => x * x);
                foreach (var scheme in schemes)
                {
                    var (deq, offset) = stored[scheme];
                    var scores = Enumerable.Range(0, Keys).Select(t => Dot(q8[i], deq[t]) + Dot(q8[i], offset[t])).ToArray();
                    var shift = scores.Zip(exact, (a, b) => a - b).Average();
                    scoreError[scheme] += scores.Zip(exact, (a, b) => (a - b - shift) * (a - b - shift)).Sum();
                    outputError[scheme] += Attend(scores, v).Zip(o, (a, b) => (a - b) * (a - b)).Sum();
                }
            }
        }
        return schemes.ToDictionary(s => s, s => new Measures(Math.Sqrt(scoreError[s] / scoreNorm), Math.Sqrt(outputError[s] / outputNorm)));
    }

    [Theory]
    [InlineData(Offsets.Fixed)]
    [InlineData(Offsets.Rope)]
    [InlineData(Offsets.Drifting)]
    public void Each_pages_own_mean_keeps_prefills_accuracy_however_the_offsets_move(Offsets kind)
    {
        var seed = Environment.TickCount;
        var measures = Study(seed, kind);
        output.WriteLine($"K offsets {kind}, seed {seed}: D = {D}, {Keys} keys in pages of {Page}, {Queries} int8 query rows × {Heads} heads, Q with four channels ×6");
        foreach (var (scheme, m) in measures)
        {
            output.WriteLine($"  {scheme,-17} centered score error {m.ScoreError:E2}, O rel L2 {m.OutputError:E2}");
        }
        var bar = measures[KScheme.GlobalMean].ScoreError;
        var (page, prefill) = (measures[KScheme.PageMean].ScoreError, measures[KScheme.PrefillMean].ScoreError);
        // The cache's choice (docs/KV_CACHE.md): each page's own mean, with its correction, scores as well as the mean of
        // all tokens would, whatever the offsets do.
        Assert.True(page <= 1.1 * bar, $"seed {seed}: page mean {page:E2} against the global mean's {bar:E2}");
        if (kind != Offsets.Rope)
        {
            // Channel offsets that stay put eat the codes' range without an offset, per page and even per token.
            Assert.True(measures[KScheme.NoOffset].ScoreError >= 1.25 * bar, $"seed {seed}: no offset {measures[KScheme.NoOffset].ScoreError:E2}");
            Assert.True(measures[KScheme.NoOffsetPerToken].ScoreError >= 1.15 * bar, $"seed {seed}: no offset per token {measures[KScheme.NoOffsetPerToken].ScoreError:E2}");
        }
        if (kind == Offsets.Drifting)
        {
            // A mean frozen at prefill goes stale as the offsets move; the page mean follows them.
            Assert.True(prefill >= 1.05 * page, $"seed {seed}: frozen prefill mean {prefill:E2} against the page mean's {page:E2}");
        }
    }

    public enum VScheme
    {
        /// <summary>Prefill's: one scale per channel from every token's maximum. Not available to a growing cache; the bar.</summary>
        GlobalChannel,
        /// <summary>One scale per channel and page: each page's P·V is scaled by its own scales when it is added to O.</summary>
        PageChannel,
        /// <summary>The prefill's per-channel scales, frozen; a later value past them saturates at ±127.</summary>
        PrefillChannel,
    }

    /// <summary>O's relative L2 against float64 when only V is quantized (softmax in float64), per scheme.</summary>
    private static Dictionary<VScheme, double> StudyV(int seed, bool growing)
    {
        var random = new Random(seed);
        var schemes = Enum.GetValues<VScheme>();
        var (error, norm) = (schemes.ToDictionary(s => s, _ => 0.0), 0.0);
        for (var h = 0; h < Heads; h++)
        {
            var q = Rows(random, Queries);
            var k = Rows(random, Keys);
            // Channels of different sizes (a few ×5), and, when growing, values that double in size over the sequence.
            var size = Enumerable.Range(0, D).Select(c => c % 16 == 5 ? 5.0 : 1.0).ToArray();
            var v = Rows(random, Keys).Select((row, t) => row.Select((x, c) => x * size[c] * (growing ? 1 + (double)t / Keys : 1)).ToArray()).ToArray();
            double[] ChannelMax(int from, int count) => Enumerable.Range(0, D).Select(c => Enumerable.Range(from, count).Max(t => Math.Abs(v[t][c]))).ToArray();
            var (global, prefill) = (ChannelMax(0, Keys), ChannelMax(0, Prefill));
            var stored = schemes.ToDictionary(s => s, s => v.Select((row, t) =>
            {
                var max = s switch { VScheme.GlobalChannel => global, VScheme.PrefillChannel => prefill, _ => ChannelMax(t / Page * Page, Page) };
                return row.Select((x, c) => Code(x, max[c] / 127) * (max[c] / 127)).ToArray();
            }).ToArray());
            for (var i = 0; i < Queries; i++)
            {
                var scores = k.Select(kt => Dot(q[i], kt)).ToArray();
                var o = Attend(scores, v);
                norm += o.Sum(x => x * x);
                foreach (var scheme in schemes)
                {
                    error[scheme] += Attend(scores, stored[scheme]).Zip(o, (a, b) => (a - b) * (a - b)).Sum();
                }
            }
        }
        return schemes.ToDictionary(s => s, s => Math.Sqrt(error[s] / norm));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Per_page_channel_scales_for_V_match_prefills_and_frozen_ones_saturate_as_values_grow(bool growing)
    {
        var seed = Environment.TickCount;
        var errors = StudyV(seed, growing);
        output.WriteLine($"V {(growing ? "growing ×2 over the sequence" : "stationary")}, seed {seed}: D = {D}, {Keys} keys in pages of {Page}, {Heads} heads, " +
            "a channel in 16 ×5");
        foreach (var (scheme, error) in errors)
        {
            output.WriteLine($"  {scheme,-15} O rel L2 {error:E2}");
        }
        var bar = errors[VScheme.GlobalChannel];
        // The cache's choice (docs/KV_CACHE.md): a page's own channel scales are finer than the global ones.
        Assert.True(errors[VScheme.PageChannel] <= bar, $"seed {seed}: per-page scales {errors[VScheme.PageChannel]:E2} against global {bar:E2}");
        if (growing)
        {
            // Values past the prefill's maxima saturate.
            Assert.True(errors[VScheme.PrefillChannel] >= 2 * bar, $"seed {seed}: frozen prefill scales {errors[VScheme.PrefillChannel]:E2} against global {bar:E2}");
        }
    }
}
