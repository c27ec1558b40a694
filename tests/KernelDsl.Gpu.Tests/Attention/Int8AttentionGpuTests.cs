using KernelDsl;
using KernelDsl.Attention.FlashAttention;
using KernelDsl.Attention.Reference;
using KernelDsl.Runtime.Tests;

namespace GpuTests.Attention;

/// <summary>
/// Every declared attention variant through <see cref="Int8Attention.Forward"/> on the GPU, against the float64
/// reference: relative L2 and cosine of O, max error of the LSE. Inputs are fresh Gaussian or structured; O is
/// poisoned with NaN first, so a row the kernel never writes fails.
/// </summary>
public class Int8AttentionGpuTests(ITestOutputHelper output)
{
    private const ushort NaNBits = 0x7E00;

    public static TheoryData<Element, int, bool, PvPrecision, VStrategy, string> Variants()
    {
        var data = new TheoryData<Element, int, bool, PvPrecision, VStrategy, string>();
        foreach (var v in AttentionVariant.All)
        {
            data.Add(v.Input, v.HeadDim, v.Causal, v.Pv, v.V, v.Tile);
        }
        return data;
    }

    private sealed record Run(double[] Output, float[] Lse, Float64AttentionResult Reference, ErrorReport Error, double LseMaxAbs);

    internal static Half[] Gaussian(Random random, int length, float scale = 1f, Func<int, float>? offset = null)
    {
        var values = new Half[length];
        for (var i = 0; i < length; i++)
        {
            var u1 = 1.0 - random.NextDouble();
            var u2 = random.NextDouble();
            var z = Math.Sqrt(-2.0 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2);
            values[i] = (Half)(z * scale + (offset?.Invoke(i) ?? 0f));
        }
        return values;
    }

    /// <summary>The bf16 path: the same values rounded to bf16, through ForwardBf16, against float64 on the bf16 inputs.</summary>
    private Run ForwardBf16(CudaDevice device, AttentionShape shape, AttentionOptions options, Half[] q16, Half[] k16, Half[] v16)
    {
        static ushort[] Bits(Half[] x) => x.Select(h => AttentionTensors.SingleToBf16((float)h)).ToArray();
        var (q, k, v) = (Bits(q16), Bits(k16), Bits(v16));
        // 0xFFFF is a NaN in bf16.
        var (o, lse) = Launch(device, shape, options, q, k, v, 0xFF, (a, s, tq, tk, tv, to, opt, l) => a.ForwardBf16(s, tq, tk, tv, to, opt, l));
        return Compare(o.Select(x => (double)BitConverter.Int32BitsToSingle(x << 16)).ToArray(), lse, Float64Attention.Forward(shape, q, k, v, Element.BF16));
    }

    internal delegate void ForwardCall<T>(Int8Attention attention, CudaStream stream, TensorView<T> q, TensorView<T> k, TensorView<T> v, TensorView<T> o,
        AttentionOptions options, DeviceBuffer<float> lse) where T : unmanaged;

    /// <summary>Uploads Q, K, V in the shape's layout, poisons O (with <paramref name="poison"/> bytes) and the LSE, runs one call, downloads both.</summary>
    internal static (T[] O, float[] Lse) Launch<T>(CudaDevice device, AttentionShape shape, AttentionOptions options, T[] q, T[] k, T[] v, byte poison, ForwardCall<T> forward)
        where T : unmanaged
    {
        using var stream = device.CreateStream();
        using var attention = new Int8Attention(device);
        using var dq = device.Upload<T>(q);
        using var dk = device.Upload<T>(k);
        using var dv = device.Upload<T>(v);
        using var dout = device.Allocate<T>(q.Length);
        using var dlse = device.Allocate<float>(shape.LseElements);
        dout.FillBytes(poison);
        dlse.FillBytes(0x7F);
        TensorView<T> View(DeviceBuffer<T> buffer, int heads, int tokens, TensorStrides s) =>
            new(buffer, [shape.Batch, heads, tokens, shape.HeadDim], [s.Batch, s.Head, s.Token, 1]);
        forward(attention, stream, View(dq, shape.HeadsQ, shape.TokensQ, shape.QStrides), View(dk, shape.HeadsKv, shape.TokensKv, shape.KvStrides),
            View(dv, shape.HeadsKv, shape.TokensKv, shape.KvStrides), View(dout, shape.HeadsQ, shape.TokensQ, shape.QStrides), options, dlse);
        stream.Synchronize();
        return (dout.ToArray(), dlse.ToArray());
    }

    private static Run Compare(double[] o, float[] lse, Float64AttentionResult expected)
    {
        var error = ErrorMetrics.Compare(o, expected.Output);
        var lseMax = 0.0;
        for (var i = 0; i < lse.Length; i++)
        {
            lseMax = double.IsNegativeInfinity(expected.Lse[i])
                ? (float.IsNegativeInfinity(lse[i]) ? lseMax : double.PositiveInfinity)
                : Math.Max(lseMax, Math.Abs(lse[i] - expected.Lse[i]));
        }
        return new Run(o, lse, expected, error, lseMax);
    }

    private Run Forward(CudaDevice device, AttentionShape shape, AttentionOptions options, Half[] q, Half[] k, Half[] v, bool reference = true)
    {
        // 0x7E7E is a NaN in f16.
        var (o16, lse) = Launch(device, shape, options, q, k, v, 0x7E, (a, s, tq, tk, tv, to, opt, l) => a.Forward(s, tq, tk, tv, to, opt, l));
        var o = o16.Select(h => (double)h).ToArray();
        return reference ? Compare(o, lse, Float64Attention.Forward(shape, q, k, v)) : new Run(o, lse, null!, default, 0);
    }

    [Theory]
    [MemberData(nameof(Variants))]
    public void Variant_matches_float64_attention_on_gaussian_and_structured_inputs(Element input, int headDim, bool causal, PvPrecision pv, VStrategy strategy, string tile)
    {
        using var device = Gpu.OpenOrSkip();
        var seed = Environment.TickCount;
        var random = new Random(seed);
        var options = new AttentionOptions { Causal = causal, Pv = pv, V = strategy, Tile = tile };
        SkipUnlessItRuns(device, input, headDim, options);
        // Issue 4's bars are for f16 inputs; bf16 keeps 8 mantissa bits, so its 16-bit P·V mode gets the u8 bar. The fp8
        // mode's V keeps 3 mantissa bits (element rel L2 2.7e-2 against int8's 0.9e-2): its CPU reference reaches 3.8–3.9e-2
        // on Gaussian inputs (AttentionInt8AccuracyTests), so it is held to that reference instead (Fp8Bar).
        var bar = pv == PvPrecision.Float16 && input == Element.F16 ? 1.5e-2 : 3e-2;
        (string Name, AttentionShape Shape, float QScale, bool Offsets)[] cases =
        [
            ("gaussian", new AttentionShape(1, 2, 2, 300, 300, headDim, causal), 1f, false),
            ("GQA 4:1, Sq<Sk, BSHD", new AttentionShape(2, 4, 1, 17, 200, headDim, causal, layout: TensorLayout.BSHD), 1f, false),
            ("Sq>Sk", new AttentionShape(1, 2, 1, 150, 70, headDim, causal), 1f, false),
            ("length 17", new AttentionShape(1, 1, 1, 17, 17, headDim, causal), 1f, false),
            // Causal with Sq ≥ Sk + BlockM: whole query blocks see no key and skip the main loop.
            ("Sq ≫ Sk", new AttentionShape(1, 2, 1, 300, 100, headDim, causal), 1f, false),
            ("length 1", new AttentionShape(1, 1, 1, 1, 1, headDim, causal), 1f, false),
            ("K offsets", new AttentionShape(1, 2, 1, 129, 257, headDim, causal), 1f, true),
            ("peaky Q×4", new AttentionShape(1, 2, 2, 64, 191, headDim, causal), 4f, false),
        ];
        foreach (var (name, shape, qScale, offsets) in cases)
        {
            var q = Gaussian(random, shape.QElements, qScale);
            var k = Gaussian(random, shape.KvElements, 1f, offsets ? i => (i % headDim % 7 - 3) * 8f : null);
            var v = Gaussian(random, shape.KvElements);
            var run = input == Element.BF16 ? ForwardBf16(device, shape, options, q, k, v) : Forward(device, shape, options, q, k, v);
            output.WriteLine($"{input} {name,-22} rel L2 {run.Error.RelativeL2:E2}  cosine {run.Error.Cosine:F6}  LSE max |Δ| {run.LseMaxAbs:E2}");
            // Peaky Q: int8 Q·Kᵀ's error dominates whatever P·V does. The CPU reference of the same algorithm, D = 128 causal,
            // reaches rel L2 3.1e-2 in the 16-bit P·V mode (3.3e-2 with u8 P) over 60 seeds, so both modes get the u8 bar doubled.
            var caseBar = pv == PvPrecision.E4M3 ? Fp8Bar(shape, q, k, v) : name == "peaky Q×4" ? 6e-2 : bar;
            Assert.True(run.Error.RelativeL2 <= caseBar, $"seed {seed}, {name}: relative L2 {run.Error.RelativeL2} over the bar {caseBar:E2}");
            Assert.True(run.Error.Cosine >= 0.999, $"seed {seed}, {name}: cosine {run.Error.Cosine}");
            // The LSE inherits int8 Q·Kᵀ's relative error, which grows with the scores (peaky Q) and with what
            // smoothing removed (the int8 q·mean correction): the CPU int8 reference shows the same sizes.
            var lseBar = offsets ? 1.0 : qScale > 1f ? 0.3 : 0.1;
            Assert.True(run.LseMaxAbs <= lseBar, $"seed {seed}, {name}: LSE off by {run.LseMaxAbs}");
        }
    }

    /// <summary>
    /// Each query row is 32× one visible key (K itself ×4), so its softmax is one-hot on that key and O copies the key's V.
    /// The scores are huge (sc ≈ 0.08 per S quantum): the case where a row's largest P, quantized to 255, could round past
    /// 255 and wrap to 0 in its byte unless the kernel leaves headroom in the exponent.
    /// </summary>
    [Theory]
    [MemberData(nameof(Variants))]
    public void One_hot_attention_with_huge_scores_copies_the_chosen_keys_v(Element input, int headDim, bool causal, PvPrecision pv, VStrategy strategy, string tile)
    {
        using var device = Gpu.OpenOrSkip();
        var seed = Environment.TickCount;
        var random = new Random(seed);
        var options = new AttentionOptions { Causal = causal, Pv = pv, V = strategy, Tile = tile };
        SkipUnlessItRuns(device, input, headDim, options);
        var shape = new AttentionShape(1, 2, 2, 300, 300, headDim, causal);
        var k = Gaussian(random, shape.KvElements, 4f);
        var v = Gaussian(random, shape.KvElements);
        var q = new Half[shape.QElements];
        for (var h = 0; h < shape.HeadsQ; h++)
        {
            for (var i = 0; i < shape.TokensQ; i++)
            {
                var chosen = random.Next(0, causal ? i + 1 : shape.TokensKv);  // Sq = Sk: key i is the causal diagonal
                for (var d = 0; d < headDim; d++)
                {
                    q[(h * shape.TokensQ + i) * headDim + d] = (Half)(32f * (float)k[(h * shape.TokensKv + chosen) * headDim + d]);
                }
            }
        }
        var run = input == Element.BF16 ? ForwardBf16(device, shape, options, q, k, v) : Forward(device, shape, options, q, k, v);
        output.WriteLine($"{input} one-hot, huge scores: rel L2 {run.Error.RelativeL2:E2}  cosine {run.Error.Cosine:F6}");
        // O copies one key's V: the fp8 mode's error is then V's e4m3 rounding alone (element rel L2 ≈ 2.7e-2).
        var bar = pv == PvPrecision.E4M3 ? 4e-2 : 2e-2;
        Assert.True(run.Error.RelativeL2 <= bar && run.Error.Cosine >= 0.999, $"seed {seed}: rel L2 {run.Error.RelativeL2}, cosine {run.Error.Cosine}");
    }

    [Theory]
    [InlineData(128)]
    [InlineData(64)]
    public void Split_kv_partials_merged_by_their_lse_match_full_attention(int headDim)
    {
        using var device = Gpu.OpenOrSkip();
        var seed = Environment.TickCount;
        var random = new Random(seed);
        var full = new AttentionShape(2, 2, 1, 200, 300, headDim);
        var q = Gaussian(random, full.QElements);
        var k = Gaussian(random, full.KvElements);
        var v = Gaussian(random, full.KvElements);
        // Two disjoint key ranges, [0, 128) and [128, 300), each attended to on its own.
        (int Start, int Count)[] ranges = [(0, 128), (128, 172)];
        var partialO = new List<Half>();
        var partialLse = new List<float>();
        foreach (var (start, count) in ranges)
        {
            var part = new AttentionShape(2, 2, 1, 200, count, headDim);
            Half[] Slice(Half[] x)
            {
                var slice = new Half[part.KvElements];
                for (var bh = 0; bh < 2; bh++)
                {
                    Array.Copy(x, (bh * 300 + start) * headDim, slice, bh * count * headDim, count * headDim);
                }
                return slice;
            }
            var run = Forward(device, part, new AttentionOptions(), q, Slice(k), Slice(v), reference: false);
            partialO.AddRange(run.Output.Select(x => (Half)x));
            partialLse.AddRange(run.Lse);
        }
        using var stream = device.CreateStream();
        using var dPartialO = device.Upload<Half>(partialO.ToArray());
        using var dPartialLse = device.Upload<float>(partialLse.ToArray());
        using var o = device.Allocate<Half>(full.QElements);
        using var lse = device.Allocate<float>(full.LseElements);
        o.FillBytes(0x7E);
        Int8Attention.Merge(stream, headDim, dPartialO, dPartialLse, ranges.Length, full.LseElements, o, lse);
        stream.Synchronize();
        var expected = Float64Attention.Forward(full, q, k, v);
        var error = ErrorMetrics.Compare(o.ToArray().Select(x => (double)x).ToArray(), expected.Output);
        var lseError = lse.ToArray().Select((x, i) => Math.Abs(x - expected.Lse[i])).Max();
        output.WriteLine($"D={headDim} merged over 2 key ranges: rel L2 {error.RelativeL2:E2} cosine {error.Cosine:F6} LSE max |Δ| {lseError:E2}");
        Assert.True(error.RelativeL2 <= 3e-2 && error.Cosine >= 0.999, $"seed {seed}: merged output rel L2 {error.RelativeL2}, cosine {error.Cosine}");
        Assert.True(lseError <= 0.1, $"seed {seed}: merged LSE off by {lseError}");
    }

    /// <summary>The wgmma form runs on sm_90 alone (its SASS is sm_90a); elsewhere its tests skip and say so.</summary>
    internal static void SkipUnlessItRuns(CudaDevice device, Element input, int headDim, AttentionOptions options)
    {
        var variant = Int8Attention.Select(input, headDim, options);
        if (!variant.RunsOn(device.ComputeCapability))
        {
            Assert.Skip($"{variant.Module.Name} is built for {string.Join(", ", variant.Module.Targets)}; this device is {device.ArchName}.");
        }
    }

    /// <summary>One small GQA shape with tails and three KV blocks, for the sanitizers.</summary>
    internal void Small(Element input, int headDim, bool causal, PvPrecision pv, VStrategy strategy, string tile)
    {
        using var device = Gpu.OpenOrSkip();
        var random = new Random(Environment.TickCount);
        var shape = new AttentionShape(1, 2, 1, 70, 150, headDim, causal);
        var (q, k, v) = (Gaussian(random, shape.QElements), Gaussian(random, shape.KvElements), Gaussian(random, shape.KvElements));
        var options = new AttentionOptions { Causal = causal, Pv = pv, V = strategy, Tile = tile };
        SkipUnlessItRuns(device, input, headDim, options);
        var run = input == Element.BF16 ? ForwardBf16(device, shape, options, q, k, v) : Forward(device, shape, options, q, k, v);
        Assert.True(run.Error.Cosine >= 0.999, $"D={headDim} causal={causal} {pv} {strategy} [{tile}]: cosine {run.Error.Cosine}");
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void The_bars_at_D128_S4096_and_the_V_strategies_agree_bit_for_bit(bool causal)
    {
        using var device = Gpu.OpenOrSkip();
        var seed = Environment.TickCount;
        var random = new Random(seed);
        var shape = new AttentionShape(1, 2, 2, 4096, 4096, 128, causal);
        var q = Gaussian(random, shape.QElements);
        var k = Gaussian(random, shape.KvElements);
        var v = Gaussian(random, shape.KvElements);
        var f16 = Forward(device, shape, new AttentionOptions { Causal = causal, Pv = PvPrecision.Float16 }, q, k, v);
        var transPrmt = Forward(device, shape, new AttentionOptions { Causal = causal, V = VStrategy.TransPrmt }, q, k, v);
        var movmatrix = Forward(device, shape, new AttentionOptions { Causal = causal, V = VStrategy.Movmatrix }, q, k, v, reference: false);
        var pretransposed = Forward(device, shape, new AttentionOptions { Causal = causal, V = VStrategy.Pretransposed }, q, k, v, reference: false);
        output.WriteLine($"D=128 S=4096{(causal ? " causal" : "")}: f16 P·V rel L2 {f16.Error.RelativeL2:E3} cos {f16.Error.Cosine:F6}; u8 P·V rel L2 {transPrmt.Error.RelativeL2:E3} cos {transPrmt.Error.Cosine:F6}");
        Assert.True(f16.Error.RelativeL2 <= 1.5e-2, $"seed {seed}: f16 P·V relative L2 {f16.Error.RelativeL2}");
        Assert.True(transPrmt.Error.RelativeL2 <= 3e-2, $"seed {seed}: u8 P·V relative L2 {transPrmt.Error.RelativeL2}");
        Assert.True(transPrmt.Error.Cosine >= 0.999, $"seed {seed}: u8 P·V cosine {transPrmt.Error.Cosine}");
        // The three V strategies feed identical bytes to identical int32 MMAs: their outputs are the same bits.
        Assert.Equal(transPrmt.Output, movmatrix.Output);
        Assert.Equal(transPrmt.Output, pretransposed.Output);
    }

    [Theory]
    [InlineData(128, false)]
    [InlineData(128, true)]
    [InlineData(64, false)]
    [InlineData(64, true)]
    public void The_wgmma_form_meets_the_bars_at_S4097_and_tracks_the_mma_sync_form(int headDim, bool causal)
    {
        using var device = Gpu.OpenOrSkip();
        var configurations = new[] { VStrategy.Pretransposed, VStrategy.InKernelTranspose }
            .SelectMany(strategy => Int8Attention.TilesFor(Element.F16, headDim, new AttentionOptions { Causal = causal, V = strategy })
                .Where(t => t.Contains("wgmma", StringComparison.Ordinal)).Select(tile => (Strategy: strategy, Tile: tile)))
            .ToList();
        Assert.NotEmpty(configurations);
        SkipUnlessItRuns(device, Element.F16, headDim, new AttentionOptions { Causal = causal, V = configurations[0].Strategy, Tile = configurations[0].Tile });
        var seed = Environment.TickCount;
        var random = new Random(seed);
        // 4097 keys: 32 full blocks of 128 and one of a single key; 33 query blocks, the last with one row.
        var shape = new AttentionShape(1, 1, 1, 4097, 4097, headDim, causal);
        var (q, k, v) = (Gaussian(random, shape.QElements), Gaussian(random, shape.KvElements), Gaussian(random, shape.KvElements));
        var warpLevel = Forward(device, shape, new AttentionOptions { Causal = causal, V = VStrategy.TransPrmt }, q, k, v, reference: false);
        var outputs = new Dictionary<(VStrategy, string), double[]>();
        foreach (var (strategy, tile) in configurations)
        {
            var hopper = Forward(device, shape, new AttentionOptions { Causal = causal, V = strategy, Tile = tile }, q, k, v);
            outputs[(strategy, tile)] = hopper.Output;
            var agreement = ErrorMetrics.Compare(hopper.Output, warpLevel.Output);
            output.WriteLine($"D={headDim} S=4097{(causal ? " causal" : "")} {strategy} [{tile}]: rel L2 {hopper.Error.RelativeL2:E3} cos {hopper.Error.Cosine:F6} LSE max |Δ| {hopper.LseMaxAbs:E2}; vs mma.sync rel L2 {agreement.RelativeL2:E3}");
            Assert.True(hopper.Error.RelativeL2 <= 3e-2 && hopper.Error.Cosine >= 0.999, $"seed {seed} {strategy} [{tile}]: rel L2 {hopper.Error.RelativeL2}, cosine {hopper.Error.Cosine}");
            Assert.True(hopper.LseMaxAbs <= 0.1, $"seed {seed} {strategy} [{tile}]: LSE off by {hopper.LseMaxAbs}");
            // Same int8 inputs, same algorithm; only the softmax's block boundaries (128 vs 64 keys) round P differently. A
            // form that quantizes Q per row itself has other Q codes than the mma.sync form's 128-row scales, so the two
            // differ by about √2 × either's own error (run 65: 1.3–1.8e-2 against 1.5–2.1e-2 each): the float64 bar.
            var quantizesQ = Int8Attention.Kernels.Any(kernel => kernel.Tile == tile && kernel.HeadDim == headDim && kernel.QuantizesQ);
            var trackingBar = quantizesQ ? 3e-2 : 1e-2;
            Assert.True(agreement.RelativeL2 <= trackingBar, $"seed {seed} {strategy} [{tile}]: wgmma and mma.sync outputs differ by rel L2 {agreement.RelativeL2} (bar {trackingBar})");
        }
        // Recipe D transposes V in the kernel into exactly the tile Recipe C's quantize kernel writes: the same bytes
        // reach the same wgmmas, so the two give the same bits (same tile configuration).
        foreach (var ((strategy, tile), o) in outputs.Where(x => x.Key.Item1 == VStrategy.InKernelTranspose))
        {
            Assert.Equal(outputs[(VStrategy.Pretransposed, tile)], o);
        }
    }

    /// <summary>
    /// The fp8 mode's bar for one case: its CPU reference's error on the same inputs (int8 Q·Kᵀ, e4m3 P and V, the kernel's
    /// blocks and scale tiles) with a quarter of slack, for the tensor core's fp8 summation and the row sums' order,
    /// which the reference does not model.
    /// </summary>
    private static double Fp8Bar(AttentionShape shape, Half[] q, Half[] k, Half[] v)
    {
        var options = new Int8AttentionOptions { BlockM = AttentionVariant.QScaleRows, BlockN = 128, KScaleKeys = AttentionVariant.KScaleKeys, Pv = PvMode.E4M3 };
        var reference = Int8AttentionReference.Forward(shape, q, k, v, options);
        return 1.25 * ErrorMetrics.Compare(reference.OutputValues(), Float64Attention.Forward(shape, q, k, v).Output).RelativeL2 + 2e-3;
    }

    /// <summary>
    /// bench/sage.py's outliers (four Q channels ×6, K with a per-channel offset of 3·N(0, 1) per head, V N(0, 1)), where
    /// u8 P loses a peaked row's small probabilities: the fp8 kernel tracks its CPU reference, and beats the u8 kernel.
    /// On Gaussian inputs it is the other way round (V's e4m3 rounding), which the variant tests bound.
    /// </summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void The_fp8_mode_beats_u8_on_outlier_channels_and_tracks_its_reference(bool causal)
    {
        using var device = Gpu.OpenOrSkip();
        var options = new AttentionOptions { Causal = causal, Pv = PvPrecision.E4M3 };
        SkipUnlessItRuns(device, Element.F16, 128, options);
        var seed = Environment.TickCount;
        var random = new Random(seed);
        var shape = new AttentionShape(1, 4, 4, 256, 4096, 128, causal);
        int[] outlierChannels = [3, 41, 77, 100];
        var q = Gaussian(random, shape.QElements).Select((x, i) => outlierChannels.Contains(i % 128) ? (Half)((float)x * 6) : x).ToArray();
        var offsets = Gaussian(random, shape.HeadsKv * 128, 3f);
        var k = Gaussian(random, shape.KvElements, 1f, i => (float)offsets[i / (shape.TokensKv * 128) * 128 + i % 128]);
        var v = Gaussian(random, shape.KvElements);
        var fp8 = Forward(device, shape, options, q, k, v);
        var u8 = Forward(device, shape, options with { Pv = PvPrecision.U8, V = VStrategy.Pretransposed }, q, k, v);
        var bar = Fp8Bar(shape, q, k, v);
        output.WriteLine($"outliers D=128 Sq=256 Sk=4096{(causal ? " causal" : "")}: fp8 P·V rel L2 {fp8.Error.RelativeL2:E3} (bar {bar:E3}), u8 P·V {u8.Error.RelativeL2:E3}; LSE max |Δ| {fp8.LseMaxAbs:E2}");
        Assert.True(fp8.Error.RelativeL2 <= bar, $"seed {seed}: fp8 rel L2 {fp8.Error.RelativeL2} over its reference's bar {bar}");
        Assert.True(fp8.Error.RelativeL2 < u8.Error.RelativeL2, $"seed {seed}: fp8 rel L2 {fp8.Error.RelativeL2} not below u8's {u8.Error.RelativeL2}");
        Assert.True(fp8.LseMaxAbs <= 1.0, $"seed {seed}: LSE off by {fp8.LseMaxAbs}");
    }

    public static TheoryData<int, bool, PvPrecision, string> QuantizingQ()
    {
        var data = new TheoryData<int, bool, PvPrecision, string>();
        foreach (var v in AttentionVariant.All.Where(v => v.QuantizesQ))
        {
            data.Add(v.HeadDim, v.Causal, v.Pv, v.Tile);
        }
        return data;
    }

    /// <summary>
    /// The kernels that quantize Q themselves, one scale per row, against their CPU reference with per-row Q scales on
    /// bench/sage.py's outliers (Q channels ×6, per-channel K offsets), GQA 2:1 with tails; the mode's default kernel, fed
    /// by the Q quantize pass (one scale per 128 rows), is printed beside it.
    /// </summary>
    [Theory]
    [MemberData(nameof(QuantizingQ))]
    public void Q_quantized_in_the_kernel_tracks_its_per_row_reference(int headDim, bool causal, PvPrecision pv, string tile)
    {
        using var device = Gpu.OpenOrSkip();
        var options = new AttentionOptions { Causal = causal, Pv = pv, V = VStrategy.Pretransposed, Tile = tile };
        SkipUnlessItRuns(device, Element.F16, headDim, options);
        var seed = Environment.TickCount;
        var random = new Random(seed);
        var shape = new AttentionShape(1, 4, 2, 300, 1000, headDim, causal);
        var outlierChannels = new[] { 3, 41, 77, 100 }.Select(c => c % headDim).ToArray();
        var q = Gaussian(random, shape.QElements).Select((x, i) => outlierChannels.Contains(i % headDim) ? (Half)((float)x * 6) : x).ToArray();
        var offsets = Gaussian(random, shape.HeadsKv * headDim, 3f);
        var k = Gaussian(random, shape.KvElements, 1f, i => (float)offsets[i / (shape.TokensKv * headDim) * headDim + i % headDim]);
        var v = Gaussian(random, shape.KvElements);
        var fused = Forward(device, shape, options, q, k, v);
        var twoPass = Forward(device, shape, options with { Tile = null }, q, k, v);
        var reference = Int8AttentionReference.Forward(shape, q, k, v, new Int8AttentionOptions
        {
            BlockM = 1, BlockN = 128, KScaleKeys = AttentionVariant.KScaleKeys, Pv = pv == PvPrecision.E4M3 ? PvMode.E4M3 : PvMode.U8,
            KMeanSlices = Quantizers<Half>.For(headDim).KMeanSlices, KMeanSliceTokens = Quantizers<Half>.For(headDim).KMeanSliceTokens, KMeanSliceGroup = Quantizers<Half>.For(headDim).KMeanSliceGroup,
        });
        var referenceMetrics = ErrorMetrics.Compare(reference.OutputValues(), fused.Reference.Output);
        var referenceError = referenceMetrics.RelativeL2;
        // The u8 kernel repeats its reference's arithmetic but for exp2 (ex2.approx); fp8's tensor cores sum in their own order.
        var bar = pv == PvPrecision.E4M3 ? 1.25 * referenceError + 2e-3 : 1.1 * referenceError + 1e-3;
        // On these outliers the reference itself can fall below a cosine of 0.999 (relative L2 4.5e-2 and above), so the
        // cosine bar follows it there, as the error bar does.
        var cosineBar = Math.Min(0.999, referenceMetrics.Cosine - 2e-4);
        output.WriteLine($"D={headDim}{(causal ? " causal" : "")} {pv} [{tile}]: rel L2 {fused.Error.RelativeL2:E3}, cosine {fused.Error.Cosine:F6} (per-row reference {referenceError:E3}, cosine {referenceMetrics.Cosine:F6}; bars {bar:E3}, {cosineBar:F6}); " +
            $"Q quantize pass [{Int8Attention.Select(Element.F16, headDim, options with { Tile = null }, device.ComputeCapability).Tile}] {twoPass.Error.RelativeL2:E3}; LSE max |Δ| {fused.LseMaxAbs:E2}");
        Assert.True(fused.Error.RelativeL2 <= bar, $"seed {seed}: rel L2 {fused.Error.RelativeL2} over the bar {bar}");
        Assert.True(fused.Error.Cosine >= cosineBar, $"seed {seed}: cosine {fused.Error.Cosine} under {cosineBar} (the per-row reference's {referenceMetrics.Cosine})");
        Assert.True(fused.LseMaxAbs <= 1.0, $"seed {seed}: LSE off by {fused.LseMaxAbs}");
    }

    [Fact]
    public void Length_4097_crosses_every_tile_boundary()
    {
        using var device = Gpu.OpenOrSkip();
        var seed = Environment.TickCount;
        var random = new Random(seed);
        var shape = new AttentionShape(1, 1, 1, 4097, 4097, 128, causal: true);
        var run = Forward(device, shape, new AttentionOptions { Causal = true }, Gaussian(random, shape.QElements), Gaussian(random, shape.KvElements), Gaussian(random, shape.KvElements));
        output.WriteLine($"D=128 S=4097 causal u8: rel L2 {run.Error.RelativeL2:E2} cosine {run.Error.Cosine:F6} LSE max |Δ| {run.LseMaxAbs:E2}");
        Assert.True(run.Error.RelativeL2 <= 3e-2 && run.Error.Cosine >= 0.999, $"seed {seed}: rel L2 {run.Error.RelativeL2}, cosine {run.Error.Cosine}");
        Assert.True(run.LseMaxAbs <= 0.1, $"seed {seed}: LSE off by {run.LseMaxAbs}");
    }

    /// <summary>
    /// The wgmma epilogue stages O in shared memory and stores whole rows 16 bytes a lane. O with padded rows (a token
    /// stride of D + 8) gets the same bits as a contiguous O and its padding stays untouched; the typed launcher refuses a
    /// stride that would leave rows off 16 bytes, naming it, before any launch.
    /// </summary>
    [Theory]
    [InlineData(128, false)]
    [InlineData(64, true)]
    public void Padded_O_rows_get_the_same_bits_and_nothing_between_them_is_written(int headDim, bool causal)
    {
        using var device = Gpu.OpenOrSkip();
        var mode = new AttentionOptions { Causal = causal, V = VStrategy.Pretransposed };
        var tile = Int8Attention.TilesFor(Element.F16, headDim, mode).First(t => t.Contains("wgmma", StringComparison.Ordinal));
        var options = mode with { Tile = tile };
        SkipUnlessItRuns(device, Element.F16, headDim, options);
        var seed = Environment.TickCount;
        var random = new Random(seed);
        // 2 heads of 300 rows: three query blocks, the last partial, so the row guard is crossed too.
        var shape = new AttentionShape(1, 2, 2, 300, 300, headDim, causal);
        using var stream = device.CreateStream();
        using var attention = new Int8Attention(device);
        using var q = device.Upload(Gaussian(random, shape.QElements));
        using var k = device.Upload(Gaussian(random, shape.KvElements));
        using var v = device.Upload(Gaussian(random, shape.KvElements));
        var stride = headDim + 8;
        using var dense = device.Allocate<Half>(shape.QElements);
        using var padded = device.Allocate<Half>(2 * 300 * stride);
        dense.FillBytes(0x7E);
        padded.FillBytes(0x7E);
        TensorView<Half> View(DeviceBuffer<Half> x, long token) => new(x, [1, 2, 300, headDim], [2 * 300 * token, 300 * token, token, 1]);
        attention.Forward(stream, View(q, headDim), View(k, headDim), View(v, headDim), View(dense, headDim), options);
        attention.Forward(stream, View(q, headDim), View(k, headDim), View(v, headDim), View(padded, stride), options);
        stream.Synchronize();
        var (expected, actual) = (dense.ToArray(), padded.ToArray());
        for (var row = 0; row < 2 * 300; row++)
        {
            for (var c = 0; c < stride; c++)
            {
                var bits = BitConverter.HalfToUInt16Bits(actual[row * stride + c]);
                if (c < headDim)
                {
                    Assert.True(bits == BitConverter.HalfToUInt16Bits(expected[row * headDim + c]),
                        $"seed {seed} [{tile}]: row {row} channel {c} is {actual[row * stride + c]}, contiguous O has {expected[row * headDim + c]}");
                }
                else
                {
                    Assert.True(bits == 0x7E7E, $"[{tile}]: row {row} padding element {c - headDim} was written");
                }
            }
        }
    }

    [Fact]
    public void The_wgmma_launcher_refuses_O_rows_off_16_bytes_naming_the_stride()
    {
        using var device = Gpu.OpenOrSkip();
        using var stream = device.CreateStream();
        const int seq = 64, d = 128;
        using var codes = device.Allocate<sbyte>(seq * d);
        using var scale = device.Allocate<float>(d);
        using var o = device.Allocate<Half>((seq - 1) * 132 + d);
        // Everything else is valid: one head of 64 tokens, V pretransposed with 64 keys a row.
        void Launch(long strideS) => Int8AttentionD128Wgmma.Launch(stream, codes, codes, codes, scale, scale, scale, null, o, null,
            1, 1, 1, seq, seq, d * seq, d * seq, seq, seq * strideS, seq * strideS, strideS);
        Assert.Equal("oStrideS", Assert.Throws<ArgumentException>(() => Launch(132)).ParamName);
        Assert.Equal("oStrideB", Assert.Throws<ArgumentException>(() => Int8AttentionD128Wgmma.Launch(stream, codes, codes, codes, scale, scale, scale, null, o, null,
            1, 1, 1, seq, seq, d * seq, d * seq, seq, 8 * seq + 4, 8 * seq, 128)).ParamName);
    }

    [Fact]
    public void Bad_inputs_are_refused_before_launch_naming_the_argument()
    {
        using var device = Gpu.OpenOrSkip();
        using var stream = device.CreateStream();
        using var attention = new Int8Attention(device);
        using var buffer = device.Allocate<Half>(4 * 3 * 64 * 128);
        TensorView<Half> View(int b, int h, int s, int d) => TensorView<Half>.Contiguous(buffer, b, h, s, d);
        var options = new AttentionOptions();
        Assert.Equal("q", Assert.Throws<ArgumentException>(() => attention.Forward(stream, View(1, 2, 64, 80), View(1, 2, 64, 80), View(1, 2, 64, 80), View(1, 2, 64, 80), options)).ParamName);
        Assert.Equal("k", Assert.Throws<ArgumentException>(() => attention.Forward(stream, View(1, 3, 64, 128), View(1, 2, 64, 128), View(1, 2, 64, 128), View(1, 3, 64, 128), options)).ParamName);
        Assert.Equal("v", Assert.Throws<ArgumentException>(() => attention.Forward(stream, View(1, 2, 64, 128), View(1, 2, 64, 128), View(1, 2, 32, 128), View(1, 2, 64, 128), options)).ParamName);
        Assert.Equal("o", Assert.Throws<ArgumentException>(() => attention.Forward(stream, View(1, 2, 64, 128), View(1, 2, 64, 128), View(1, 2, 64, 128), View(1, 2, 63, 128), options)).ParamName);
        Assert.Equal("options", Assert.Throws<ArgumentException>(() => attention.Forward(stream, View(1, 2, 64, 64), View(1, 2, 64, 64), View(1, 2, 64, 64), View(1, 2, 64, 64), new AttentionOptions { V = VStrategy.Movmatrix })).ParamName);
        // A token stride of 132 elements leaves rows 8-byte aligned at best; the 16-byte copies need multiples of 8 elements.
        var misaligned = new TensorView<Half>(buffer, [1, 2, 64, 128], [2 * 64 * 132, 64 * 132, 132, 1]);
        Assert.Equal("q", Assert.Throws<ArgumentException>(() => attention.Forward(stream, misaligned, View(1, 2, 64, 128), View(1, 2, 64, 128), View(1, 2, 64, 128), options)).ParamName);
        using var lse = device.Allocate<float>(10);
        Assert.Equal("lse", Assert.Throws<ArgumentException>(() => attention.Forward(stream, View(1, 2, 64, 128), View(1, 2, 64, 128), View(1, 2, 64, 128), View(1, 2, 64, 128), options, lse)).ParamName);
    }
}
