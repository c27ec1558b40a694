namespace KernelDsl.Attention.Reference;

/// <summary>
/// What a Quantize variant does, as data: the declaration's parameters plus the two numbers the generated launcher
/// exposes (<c>MeanSlices</c>, <c>StoredTokenOrder</c>), so the reference follows the kernel's arithmetic exactly.
/// </summary>
public sealed record QuantizeOptions
{
    public required int HeadDim { get; init; }
    public required QuantGranularity Granularity { get; init; }
    /// <summary>Tokens per scale (PerRowBlock).</summary>
    public required int BlockRows { get; init; }
    public bool SubtractChannelMean { get; init; }
    /// <summary>
    /// The channel mean's lanes: a Quantize variant's generated <c>MeanSlices</c>, or a KvStatistics variant's <c>MeanLanes</c>
    /// (the float32 mean depends on the summation order).
    /// </summary>
    public int MeanSlices { get; init; } = 1;
    /// <summary>
    /// A KvStatistics variant's <c>SliceTokens</c>: the mean is summed per slice of that many tokens (lanes within each), then
    /// the slices in order (in groups of <see cref="MeanSliceGroup"/>). 0, a Quantize variant's own mean, is one slice of all tokens.
    /// </summary>
    public int MeanSliceTokens { get; init; }
    /// <summary>
    /// A KvStatistics variant's <c>MeanSliceGroup</c>: the slices are added in groups of that many (each in slice order),
    /// then the groups in order. 0 is one group of all slices.
    /// </summary>
    public int MeanSliceGroup { get; init; }
    public bool Transposed { get; init; }
    public int TransposePad { get; init; } = 64;
    /// <summary>The generated <c>StoredTokenOrder</c> (16 entries) of a transposed variant; null is natural order.</summary>
    public IReadOnlyList<int>? StoredTokenOrder { get; init; }
    /// <summary>The codes' type: <see cref="Element.S8"/>, or <see cref="Element.E4M3"/> (PerChannel without the mean only).</summary>
    public Element Output { get; init; } = Element.S8;
}

/// <summary>The reference's outputs, laid out as the kernels write them.</summary>
/// <param name="Output">The codes, [B][H][S][D] or [B][H][D][S_pad] when transposed: int8 values, or e4m3 bit patterns
/// (read them with <see cref="E4m3.ToSingle"/> of <c>(byte)code</c>) when <see cref="OutputElement"/> is E4M3.</param>
/// <param name="Scales">[B·H][tiles] (PerRowBlock) or [B·H][D] (PerChannel).</param>
/// <param name="ChannelMean">[B·H][D] when the mean is subtracted, else null.</param>
/// <param name="PaddedTokens">Tokens per channel row of a transposed output (S otherwise).</param>
public sealed record QuantizeResult(sbyte[] Output, float[] Scales, float[]? ChannelMean, int PaddedTokens)
{
    public Element OutputElement { get; init; } = Element.S8;

    /// <summary>The codes as the bytes the kernel wrote (what a device buffer of them downloads as).</summary>
    public byte[] Bytes() => System.Runtime.InteropServices.MemoryMarshal.AsBytes(Output.AsSpan()).ToArray();
}

/// <summary>
/// The Quantize kernels' algorithm on the CPU, in float32 with every operation rounded as the generated CUDA rounds it
/// (__fsub_rn, __fmul_rn, __fdiv_rn, __fadd_rn in the same order, the biased FFMA's half-to-even rounding), so a GPU
/// result can be compared element for element:
/// v = (x − mean[c]) · multiplier (or x · multiplier), scale = absmax(v) / 127 (1 when that is 0), inverse = 1 / scale,
/// q = clamp(rne(v · inverse), −127, 127) of the exact product. NaN: ignored by absmax (CUDA's fmaxf), quantized to 0;
/// Inf: makes its scale Inf, its inverse 0 and its block or channel 0.
/// <para>
/// E4M3 output (V per channel for fp8 P·V): scale = absmax(v) / 448 (1 when that is 0), and the code is
/// <see cref="E4m3.Round"/> of the float32 product v · inverse (rounded to float first: <c>cvt.rn.satfinite.e4m3x2.f32</c>
/// takes a float). A NaN is not hidden here: it becomes the NaN code, and so does an Inf (Inf · 0); the channel's finite
/// values become 0 as in int8.
/// </para>
/// </summary>
public static class QuantizeReference
{
    public static float F16ToSingle(ushort bits) => (float)BitConverter.UInt16BitsToHalf(bits);

    public static float Bf16ToSingle(ushort bits) => BitConverter.Int32BitsToSingle(bits << 16);

    /// <summary>CUDA's fmaxf: a NaN operand loses to the other one (.NET's MathF.Max would return the NaN).</summary>
    public static float CudaMax(float a, float b) => float.IsNaN(a) ? b : float.IsNaN(b) ? a : MathF.Max(a, b);

    /// <summary>The kernels' kdsl_scale_of for int8 codes.</summary>
    public static float ScaleOf(float absmax) => ScaleOf(absmax, Element.S8);

    /// <summary>
    /// The kernels' kdsl_scale_of: absmax over the largest code (127 for s8, 448 for e4m3), 1 when that is below the
    /// smallest normal float (0 included), whose reciprocal would overflow to Inf and turn a 0 into a NaN code.
    /// </summary>
    public static float ScaleOf(float absmax, Element output)
    {
        var scale = absmax / MaxCode(output);
        return scale < SmallestNormal ? 1f : scale;
    }

    /// <summary>The smallest positive normal float, FLT_MIN.</summary>
    private const float SmallestNormal = 1.17549435E-38f;

    /// <summary>The largest code magnitude of an output type: 127 (s8, symmetric) or 448 (e4m3's largest finite value).</summary>
    public static float MaxCode(Element output) => output switch
    {
        Element.S8 => 127f,
        Element.E4M3 => E4m3.MaxFinite,
        _ => throw new ArgumentException($"The quantize kernels write s8 or e4m3 codes, not {output}.", nameof(output)),
    };

    /// <summary>The kernels' kdsl_inv_of: codes are v times 1 / scale (rounded once), not v / scale.</summary>
    public static float InverseOf(float scale) => 1f / scale;

    /// <summary>The kernels' kdsl_quant: the exact product v · inverse rounded half to even, saturated to ±127; NaN → 0.</summary>
    public static sbyte Quant(float v, float inverse)
    {
        var t = (double)v * inverse;  // exact: two 24-bit significands fit in a double's 53
        if (double.IsNaN(t))
        {
            return 0;
        }
        return Math.Abs(t) >= 127.5 ? (sbyte)(t > 0 ? 127 : -127) : (sbyte)Math.Round(t, MidpointRounding.ToEven);
    }

    /// <summary>The e4m3 kernels' code: the float32 product v · inverse, then round to nearest even with saturation.</summary>
    public static byte QuantE4m3(float v, float inverse) => E4m3.Round(v * inverse);

    public static int PaddedTokens(int tokens, int pad) => (tokens + pad - 1) / pad * pad;

    public static QuantizeResult Quantize(ReadOnlySpan<ushort> x, Element input, long strideB, long strideH, long strideS,
        int batch, int heads, int tokens, float scaleMultiplier, QuantizeOptions options)
    {
        if (input is not (Element.F16 or Element.BF16))
        {
            throw new ArgumentException("The quantize kernels read f16 or bf16.", nameof(input));
        }
        var e4m3 = options.Output switch
        {
            Element.S8 => false,
            Element.E4M3 when options.Granularity == QuantGranularity.PerChannel && !options.SubtractChannelMean => true,
            Element.E4M3 => throw new ArgumentException("E4M3 codes are written per channel only, without the channel mean (V's quantization).", nameof(options)),
            _ => throw new ArgumentException($"The quantize kernels write S8 or E4M3 codes, not {options.Output}.", nameof(options)),
        };
        var d = options.HeadDim;
        var bhCount = batch * heads;
        var values = new float[(long)bhCount * tokens * d];
        for (var b = 0; b < batch; b++)
        {
            for (var h = 0; h < heads; h++)
            {
                for (var s = 0; s < tokens; s++)
                {
                    var source = b * strideB + h * strideH + s * strideS;
                    var target = ((long)(b * heads + h) * tokens + s) * d;
                    for (var c = 0; c < d; c++)
                    {
                        var bits = x[(int)(source + c)];
                        values[target + c] = input == Element.BF16 ? Bf16ToSingle(bits) : F16ToSingle(bits);
                    }
                }
            }
        }

        var mean = options.SubtractChannelMean ? ChannelMean(values, bhCount, tokens, d, options.MeanSlices, options.MeanSliceTokens, options.MeanSliceGroup) : null;
        float Prep(int bh, int s, int c)
        {
            var value = values[((long)bh * tokens + s) * d + c];
            return mean is null ? value * scaleMultiplier : (value - mean[bh * d + c]) * scaleMultiplier;
        }

        var padded = options.Transposed ? PaddedTokens(tokens, options.TransposePad) : tokens;
        var output = new sbyte[(long)bhCount * d * padded];
        float[] scales;
        if (options.Granularity == QuantGranularity.PerRowBlock)
        {
            var tiles = (tokens + options.BlockRows - 1) / options.BlockRows;
            scales = new float[bhCount * tiles];
            for (var bh = 0; bh < bhCount; bh++)
            {
                for (var tile = 0; tile < tiles; tile++)
                {
                    var s0 = tile * options.BlockRows;
                    var s1 = Math.Min(tokens, s0 + options.BlockRows);
                    var absmax = 0f;
                    for (var s = s0; s < s1; s++)
                    {
                        for (var c = 0; c < d; c++)
                        {
                            absmax = CudaMax(absmax, MathF.Abs(Prep(bh, s, c)));
                        }
                    }
                    var scale = ScaleOf(absmax);
                    var inverse = InverseOf(scale);
                    scales[bh * tiles + tile] = scale;
                    for (var s = s0; s < s1; s++)
                    {
                        for (var c = 0; c < d; c++)
                        {
                            Store(output, options, bh, s, c, tokens, padded, Quant(Prep(bh, s, c), inverse));
                        }
                    }
                }
            }
        }
        else
        {
            scales = new float[bhCount * d];
            for (var bh = 0; bh < bhCount; bh++)
            {
                for (var c = 0; c < d; c++)
                {
                    var absmax = 0f;
                    for (var s = 0; s < tokens; s++)
                    {
                        absmax = CudaMax(absmax, MathF.Abs(Prep(bh, s, c)));
                    }
                    var scale = ScaleOf(absmax, options.Output);
                    var inverse = InverseOf(scale);
                    scales[bh * d + c] = scale;
                    for (var s = 0; s < tokens; s++)
                    {
                        var v = Prep(bh, s, c);
                        Store(output, options, bh, s, c, tokens, padded, e4m3 ? (sbyte)QuantE4m3(v, inverse) : Quant(v, inverse));
                    }
                }
            }
        }
        return new QuantizeResult(output, scales, mean, padded) { OutputElement = options.Output };
    }

    /// <summary>
    /// The kernels' channel mean: the tokens in slices of <paramref name="sliceTokens"/> (0: one slice of all); in each slice,
    /// lane j sums tokens j, j + lanes, ... in order and the lane sums are added in order; the slice sums are added in order;
    /// then one division. With one slice this is the Quantize variants' own order (0 + the slice's sum is that sum).
    /// </summary>
    private static float[] ChannelMean(float[] values, int bhCount, int tokens, int d, int lanes, int sliceTokens, int sliceGroup)
    {
        if (lanes < 1 || sliceTokens < 0 || sliceGroup < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(lanes), $"lanes ({lanes}) must be positive, sliceTokens ({sliceTokens}) and sliceGroup ({sliceGroup}) not negative.");
        }
        var slice = sliceTokens == 0 ? tokens : sliceTokens;
        var group = sliceGroup == 0 ? int.MaxValue : sliceGroup;
        var mean = new float[bhCount * d];
        for (var bh = 0; bh < bhCount; bh++)
        {
            for (var c = 0; c < d; c++)
            {
                var total = 0f;
                var groupSum = 0f;
                var inGroup = 0;
                for (var s0 = 0; s0 < tokens; s0 += slice)
                {
                    var end = Math.Min(tokens, s0 + slice);
                    var sliceSum = 0f;
                    for (var j = 0; j < lanes; j++)
                    {
                        var sum = 0f;
                        for (var s = s0 + j; s < end; s += lanes)
                        {
                            sum += values[((long)bh * tokens + s) * d + c];
                        }
                        sliceSum += sum;
                    }
                    groupSum += sliceSum;
                    if (++inGroup == group)
                    {
                        total += groupSum;
                        (groupSum, inGroup) = (0f, 0);
                    }
                }
                if (inGroup > 0)
                {
                    total += groupSum;
                }
                mean[bh * d + c] = total / tokens;
            }
        }
        return mean;
    }

    private static void Store(sbyte[] output, QuantizeOptions options, int bh, int s, int c, int tokens, int padded, sbyte q)
    {
        var d = options.HeadDim;
        if (!options.Transposed)
        {
            output[((long)bh * tokens + s) * d + c] = q;
            return;
        }
        output[((long)bh * d + c) * padded + PositionOf(s, options.StoredTokenOrder)] = q;
    }

    /// <summary>The stored position of <paramref name="token"/>: the inverse of position → 16·(p / 16) + order[p % 16].</summary>
    public static int PositionOf(int token, IReadOnlyList<int>? order)
    {
        if (order is null)
        {
            return token;
        }
        for (var p = 0; p < 16; p++)
        {
            if (order[p] == (token & 15))
            {
                return (token & ~15) + p;
            }
        }
        throw new ArgumentException("The stored token order must be a permutation of 0..15.", nameof(order));
    }
}
