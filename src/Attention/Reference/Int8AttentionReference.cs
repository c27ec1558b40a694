namespace KernelDsl.Attention.Reference;

/// <summary>
/// Q, K and V as the quantize kernels leave them (QuantizeReference's outputs), plus V widened to float for the f16 P·V mode.
/// </summary>
/// <param name="Q">s8 [B][HeadsQ][TokensQ][D], one scale per BlockM rows, σ·log₂e folded in.</param>
/// <param name="K">s8 [B][HeadsKv][TokensKv][D] after subtracting the channel mean, one scale per KScaleKeys rows.</param>
/// <param name="V">s8 (e4m3 in <see cref="PvMode.E4M3"/>) [B][HeadsKv][TokensKv][D], one scale per channel.</param>
/// <param name="VWide">V's 16-bit values as float, dense [B][HeadsKv][TokensKv][D].</param>
/// <param name="Input">The inputs' 16-bit type (f16 or bf16); the output has it too.</param>
public sealed record Int8AttentionInputs(QuantizeResult Q, QuantizeResult K, QuantizeResult V, float[] VWide, Element Input);

/// <param name="Output">Bits of <paramref name="OutputElement"/>, laid out as Q.</param>
/// <param name="OutputElement">f16 or bf16, the inputs' type.</param>
/// <param name="Lse">[Batch][HeadsQ][TokensQ], natural log, float32; −∞ for a row that sees no key.</param>
public sealed record Int8AttentionResult(ushort[] Output, Element OutputElement, float[] Lse)
{
    public double[] OutputValues() => AttentionTensors.ToDouble(Output, OutputElement);
}

/// <summary>
/// The INT8 attention forward of DESIGN.md on the CPU, one query row at a time but in the kernel's blocks and in its
/// float32 arithmetic, so a kernel can be held to it closely. Its numbers depend on BlockM and BlockN (they choose the
/// scales and where the running max is rescaled): compare a kernel with the reference at the kernel's own block sizes.
/// Rounding, step by step:
/// <list type="bullet">
/// <item>S = Σ q8·k8 exact in int32; s = (float)S · (qScale·kScale), the scale product rounded to float first.</item>
/// <item>m_new = max(m, max s); α = exp2(m − m_new), 0 while m = −∞; p = exp2(s − m_new). exp2 is evaluated in double
/// and rounded to float (the GPU's ex2.approx is within 2 ulp of it, so a p·255 near a half may round the other way).</item>
/// <item>P8 = rne(p·255) (u8) or rne(p·127) (s8), the product rounded to float first; ΣP8 and O_blk = ΣP8·v8 exact in int32.</item>
/// <item>l = fma(α, l, ΣP8) and O = fma(α, O, O_blk): one rounding each (a kernel writes __fmaf_rn to match).</item>
/// <item>out = (O·vScale[c]) / l in float32, rounded to the input's type (f16 or bf16) to nearest even.</item>
/// <item>LSE = (m + log2(l / P scale))·ln 2 + (qScale / log₂e)·Σ_d q8[d]·mean[d], the sum a sequential float32 fma
/// chain over d. The K-smoothing term uses Q's codes, not Q itself, because that is what the kernel holds in registers;
/// it carries Q's rounding times |mean| (with channel offsets of ±20, LSE off by ~0.3 against ~0.01 were it computed
/// from f16 Q, e.g. by the Q quantize kernel once K's mean is known).</item>
/// <item>F16 P·V: p rounded to the input's type (f16 or bf16), l = fma(α, l, Σp) with Σp summed in key order,
/// O = α·O then each product p·v (exact in float32) added in key order, out = O / l, LSE with P scale 1.</item>
/// <item>E4M3 P·V: V's codes e4m3 per channel (absmax / 448); P = e4m3(p·448) (the product rounded to float first, then
/// round to nearest even, saturating). l = fma(α, l, Σ p·448) of the unrounded float products summed in key order (the
/// kernel sums the values it converts, not the codes). O_blk = Σ P·v over the block in double (exact: e4m3 products have
/// 8-bit significands within 2^-18..2^18), rounded to float once: a model of the fresh f32 accumulator each key block gets (the tensor core's own summation order and precision are not
/// modelled, so a kernel matches this closely, not bit for bit); O = fma(α, O, O_blk); out and LSE as for u8, P scale 448.</item>
/// </list>
/// A block whose keys a row cannot see is skipped for that row; a kernel that visits it (tile-wide skipping) computes
/// α = 1, P = 0 there, which changes no bit. A row with no visible key outputs 0 and LSE −∞.
/// <para>
/// <see cref="AttentionModifiers"/>: a key the mask hides (ANDed with the causal mask) gets s = −∞ before the block max,
/// so it takes P = 0; a block the mask hides whole changes no bit, whether visited or skipped. A score modifier must see
/// the real score, not the smoothed one (softcap does not commute with the per-row shift smoothing leaves out), so for
/// each visible key the kernel forms, in float32, <c>natural = fma((float)S, qScale·kScale, qm)·ln 2</c> with
/// <c>qm = rowDot·qScale</c> once per row and <c>rowDot = Σ_d q8[d]·mean[d]</c> summed as the kernel's four lanes of a
/// row do (lane t an fma chain over d ≡ t mod 4, then (l0 + l1) + (l2 + l3) by shuffles): the natural-log
/// ln 2·qScale·(kScale·S + rowDot) = σ·q̂·(k̂ + mean) of the dequantized codes. The softmax then runs on
/// <c>s = modifier(natural)·log₂e</c> (one rounding) exactly as above, and the LSE is (m + log2(l / P scale))·ln 2 with
/// no smoothing correction, which s already holds.
/// A row whose every score is masked (or sent to −∞ by the modifier) outputs 0 with LSE −∞. Without a score modifier
/// the arithmetic is the unmodified path's, bit for bit.
/// </para>
/// </summary>
public static class Int8AttentionReference
{
    // The floats nearest log₂e and ln 2.
    private const float Log2E = 1.44269504f;
    private const float Ln2 = 0.693147181f;

    public static Int8AttentionResult Forward(AttentionShape shape, ReadOnlySpan<Half> q, ReadOnlySpan<Half> k, ReadOnlySpan<Half> v, Int8AttentionOptions options,
        AttentionModifiers? modifiers = null) =>
        Forward(shape, AttentionTensors.Bits(q), AttentionTensors.Bits(k), AttentionTensors.Bits(v), Element.F16, options, modifiers);

    /// <summary>f16 or bf16 inputs given as their bits; the output has the input's type.</summary>
    public static Int8AttentionResult Forward(AttentionShape shape, ReadOnlySpan<ushort> q, ReadOnlySpan<ushort> k, ReadOnlySpan<ushort> v,
        Element input, Int8AttentionOptions options, AttentionModifiers? modifiers = null) =>
        Forward(shape, Quantize(shape, q, k, v, input, options), options, modifiers);

    /// <summary>Step 1: the three quantize kernels, through QuantizeReference so the scales are exactly the GPU's.</summary>
    public static Int8AttentionInputs Quantize(AttentionShape shape, ReadOnlySpan<ushort> q, ReadOnlySpan<ushort> k, ReadOnlySpan<ushort> v,
        Element input, Int8AttentionOptions options)
    {
        shape.CheckLengths(q.Length, k.Length, v.Length);
        options.Validate();
        var d = shape.HeadDim;
        var (qs, kvs) = (shape.QStrides, shape.KvStrides);
        var qOptions = new QuantizeOptions { HeadDim = d, Granularity = QuantGranularity.PerRowBlock, BlockRows = options.BlockM };
        var kOptions = new QuantizeOptions
        {
            HeadDim = d, Granularity = QuantGranularity.PerRowBlock, BlockRows = options.KeysPerKScale,
            SubtractChannelMean = true, MeanSlices = options.KMeanSlices, MeanSliceTokens = options.KMeanSliceTokens, MeanSliceGroup = options.KMeanSliceGroup,
        };
        var vOptions = new QuantizeOptions { HeadDim = d, Granularity = QuantGranularity.PerChannel, BlockRows = options.BlockN, Output = options.VCodes };
        var q8 = QuantizeReference.Quantize(q, input, qs.Batch, qs.Head, qs.Token, shape.Batch, shape.HeadsQ, shape.TokensQ, shape.QScaleMultiplier, qOptions);
        var k8 = QuantizeReference.Quantize(k, input, kvs.Batch, kvs.Head, kvs.Token, shape.Batch, shape.HeadsKv, shape.TokensKv, 1f, kOptions);
        var v8 = QuantizeReference.Quantize(v, input, kvs.Batch, kvs.Head, kvs.Token, shape.Batch, shape.HeadsKv, shape.TokensKv, 1f, vOptions);
        var vWide = new float[shape.KvElements];
        for (var b = 0; b < shape.Batch; b++)
        {
            for (var h = 0; h < shape.HeadsKv; h++)
            {
                for (var s = 0; s < shape.TokensKv; s++)
                {
                    var source = (int)kvs.Offset(b, h, s);
                    var target = ((b * shape.HeadsKv + h) * shape.TokensKv + s) * d;
                    for (var c = 0; c < d; c++)
                    {
                        vWide[target + c] = AttentionTensors.Widen(v[source + c], input);
                    }
                }
            }
        }
        return new Int8AttentionInputs(q8, k8, v8, vWide, input);
    }

    /// <summary>Steps 2 and 3 on already quantized inputs; the output has <see cref="Int8AttentionInputs.Input"/>'s type.</summary>
    public static Int8AttentionResult Forward(AttentionShape shape, Int8AttentionInputs inputs, Int8AttentionOptions options,
        AttentionModifiers? modifiers = null)
    {
        options.Validate();
        if (inputs.Q.Output.Length != shape.QElements || inputs.K.Output.Length != shape.KvElements || inputs.VWide.Length != shape.KvElements)
        {
            throw new ArgumentException("The quantized inputs do not match the shape.", nameof(inputs));
        }
        if (options.Pv != PvMode.F16 && inputs.V.OutputElement != options.VCodes)
        {
            throw new ArgumentException($"{options.Pv} P·V reads V as {options.VCodes} codes, but V was quantized to {inputs.V.OutputElement}: " +
                "quantize with the same options.", nameof(inputs));
        }
        if (inputs.K.ChannelMean is null)
        {
            throw new ArgumentException("K must be quantized with its channel mean subtracted (the LSE correction needs the mean).", nameof(inputs));
        }
        var output = new ushort[shape.QElements];
        var lse = new float[shape.LseElements];
        var row = new RowState(shape.HeadDim, options.BlockN);
        for (var b = 0; b < shape.Batch; b++)
        {
            for (var h = 0; h < shape.HeadsQ; h++)
            {
                for (var i = 0; i < shape.TokensQ; i++)
                {
                    var target = output.AsSpan((int)shape.QStrides.Offset(b, h, i), shape.HeadDim);
                    lse[shape.LseIndex(b, h, i)] = Row(shape, inputs, options, modifiers, b, h, i, row, target);
                }
            }
        }
        return new Int8AttentionResult(output, inputs.Input, lse);
    }

    /// <summary>The int32 S = q8·k8ᵀ of query row i against the in-range keys of key block <paramref name="block"/>, unmasked.</summary>
    internal static int[] Scores(AttentionShape shape, Int8AttentionInputs inputs, Int8AttentionOptions options, int b, int h, int i, int block)
    {
        var n0 = block * options.BlockN;
        var scores = new int[Math.Min(options.BlockN, shape.TokensKv - n0)];
        for (var t = 0; t < scores.Length; t++)
        {
            scores[t] = Dot(shape, inputs, b, h, i, n0 + t);
        }
        return scores;
    }

    /// <summary>P's integer code: rne(p·255) (u8) or rne(p·127) (s8), p·scale rounded to float first.</summary>
    internal static int QuantizeP(float p, PvMode mode)
    {
        var scaled = p * (mode == PvMode.U8 ? 255f : 127f);
        return (int)MathF.Round(scaled, MidpointRounding.ToEven);
    }

    internal static float Exp2(float x) => (float)Math.Pow(2.0, x);

    /// <summary>Scratch for one row, reused across rows.</summary>
    private sealed class RowState(int headDim, int blockN)
    {
        public readonly float[] O = new float[headDim];
        public readonly float[] S = new float[blockN];
        public readonly float[] P = new float[blockN];
    }

    private static int Dot(AttentionShape shape, Int8AttentionInputs inputs, int b, int h, int i, int key)
    {
        var d = shape.HeadDim;
        var qRow = inputs.Q.Output.AsSpan(((b * shape.HeadsQ + h) * shape.TokensQ + i) * d, d);
        var kRow = inputs.K.Output.AsSpan(((b * shape.HeadsKv + shape.KvHeadOf(h)) * shape.TokensKv + key) * d, d);
        var sum = 0;
        for (var c = 0; c < d; c++)
        {
            sum += qRow[c] * kRow[c];
        }
        return sum;
    }

    /// <summary>One query row through the online softmax; writes the output bits and returns the LSE.</summary>
    private static float Row(AttentionShape shape, Int8AttentionInputs inputs, Int8AttentionOptions options, AttentionModifiers? modifiers,
        int b, int h, int i, RowState row, Span<ushort> target)
    {
        var (score, mask) = (modifiers?.Score, modifiers?.Mask);
        var (d, blockN) = (shape.HeadDim, options.BlockN);
        var visible = shape.VisibleKeys(i);
        if (visible == 0)
        {
            target.Clear();
            return float.NegativeInfinity;
        }
        var kvHead = b * shape.HeadsKv + shape.KvHeadOf(h);
        var qTiles = (shape.TokensQ + options.BlockM - 1) / options.BlockM;
        var kScaleKeys = options.KeysPerKScale;
        var kTiles = (shape.TokensKv + kScaleKeys - 1) / kScaleKeys;
        var qScale = inputs.Q.Scales[(b * shape.HeadsQ + h) * qTiles + i / options.BlockM];
        // The score modifier's per-row constant: qScale·q8·mean, the log2-domain share of every score that K's smoothing removed.
        var qm = score is null ? 0f : LaneRowDot(shape, inputs, b, h, i, kvHead) * qScale;
        var o = row.O;
        Array.Clear(o);
        var (m, l) = (float.NegativeInfinity, 0f);
        for (var block = 0; block * blockN < visible; block++)
        {
            var n0 = block * blockN;
            var count = Math.Min(blockN, shape.TokensKv - n0);
            var blockMax = float.NegativeInfinity;
            for (var t = 0; t < count; t++)
            {
                // One K scale per KScaleKeys keys: a softmax block may span several.
                var key = n0 + t;
                if (key >= visible || (mask is not null && !mask(b, h, i, key)))
                {
                    row.S[t] = float.NegativeInfinity;
                }
                else
                {
                    var qk = qScale * inputs.K.Scales[kvHead * kTiles + key / kScaleKeys];
                    row.S[t] = score is null
                        ? Dot(shape, inputs, b, h, i, key) * qk
                        : score(MathF.FusedMultiplyAdd(Dot(shape, inputs, b, h, i, key), qk, qm) * Ln2, b, h, i, key) * Log2E;
                }
                blockMax = MathF.Max(blockMax, row.S[t]);
            }
            var mNew = MathF.Max(m, blockMax);
            // FlashAttention's guard: with nothing finite yet, subtract 0 rather than −∞ (no NaN from −∞ − −∞).
            var mSafe = float.IsNegativeInfinity(mNew) ? 0f : mNew;
            var alpha = float.IsNegativeInfinity(m) ? 0f : Exp2(m - mSafe);
            for (var t = 0; t < count; t++)
            {
                row.P[t] = Exp2(row.S[t] - mSafe);
            }
            var firstToken = kvHead * shape.TokensKv + n0;
            l = options.Pv switch
            {
                PvMode.F16 => AccumulateF16(inputs, row, count, firstToken, d, alpha, l),
                PvMode.E4M3 => AccumulateE4m3(inputs, row, count, firstToken, d, alpha, l),
                _ => AccumulateInt8(inputs, options.Pv, row, count, firstToken, d, alpha, l),
            };
            m = mNew;
        }

        if (float.IsNegativeInfinity(m))
        {
            // Every key this row could reach was masked: nothing was accumulated (α = 0, P = 0 throughout).
            target.Clear();
            return float.NegativeInfinity;
        }
        for (var c = 0; c < d; c++)
        {
            var value = options.Pv == PvMode.F16 ? o[c] / l : o[c] * inputs.V.Scales[kvHead * d + c] / l;
            target[c] = AttentionTensors.Round(value, inputs.Input);
        }
        var lse = (m + MathF.Log2(l / options.PScale)) * Ln2;
        // A score modifier saw (and the softmax ran on) the unsmoothed scores: there is nothing left to correct.
        return score is null ? lse + SmoothingCorrection(shape, inputs, b, h, i, kvHead, qScale) : lse;
    }

    /// <summary>u8/s8 P·V: P8 codes, exact int32 row sum and O_blk, then one fma each into l and O. Returns the new l.</summary>
    private static float AccumulateInt8(Int8AttentionInputs inputs, PvMode mode, RowState row, int count, int firstToken, int d, float alpha, float l)
    {
        var pSum = 0;
        for (var t = 0; t < count; t++)
        {
            var p8 = QuantizeP(row.P[t], mode);
            row.P[t] = p8;
            pSum += p8;
        }
        var v8 = inputs.V.Output;
        for (var c = 0; c < d; c++)
        {
            var oBlock = 0;
            for (var t = 0; t < count; t++)
            {
                oBlock += (int)row.P[t] * v8[(firstToken + t) * d + c];
            }
            row.O[c] = MathF.FusedMultiplyAdd(alpha, row.O[c], oBlock);
        }
        return MathF.FusedMultiplyAdd(alpha, l, pSum);
    }

    /// <summary>
    /// fp8 P·V: P = e4m3(p·448), the row sum of the unrounded p·448, O_blk = Σ P·V of the decoded codes in double (exact;
    /// the per-block f32 accumulator), rounded once and folded by one fma. Returns the new l.
    /// </summary>
    private static float AccumulateE4m3(Int8AttentionInputs inputs, RowState row, int count, int firstToken, int d, float alpha, float l)
    {
        var pSum = 0f;
        for (var t = 0; t < count; t++)
        {
            var scaled = row.P[t] * E4m3.MaxFinite;
            pSum += scaled;
            row.P[t] = E4m3.ToSingle(E4m3.Round(scaled));
        }
        var v8 = inputs.V.Output;
        for (var c = 0; c < d; c++)
        {
            var oBlock = 0.0;
            for (var t = 0; t < count; t++)
            {
                oBlock += (double)row.P[t] * E4m3.ToSingle((byte)v8[(firstToken + t) * d + c]);
            }
            row.O[c] = MathF.FusedMultiplyAdd(alpha, row.O[c], (float)oBlock);
        }
        return MathF.FusedMultiplyAdd(alpha, l, pSum);
    }

    /// <summary>f16 P·V: P rounded to the input's type, V unquantized; O rescaled then products (exact in f32) added in key order.</summary>
    private static float AccumulateF16(Int8AttentionInputs inputs, RowState row, int count, int firstToken, int d, float alpha, float l)
    {
        var pSum = 0f;
        for (var t = 0; t < count; t++)
        {
            row.P[t] = AttentionTensors.Widen(AttentionTensors.Round(row.P[t], inputs.Input), inputs.Input);
            pSum += row.P[t];
        }
        for (var c = 0; c < d; c++)
        {
            var acc = alpha * row.O[c];
            for (var t = 0; t < count; t++)
            {
                acc += row.P[t] * inputs.VWide[(firstToken + t) * d + c];
            }
            row.O[c] = acc;
        }
        return MathF.FusedMultiplyAdd(alpha, l, pSum);
    }

    /// <summary>σ·q·mean, the per-row constant softmax ignored after K smoothing, from Q's codes: (qScale / log₂e)·Σ q8·mean.</summary>
    private static float SmoothingCorrection(AttentionShape shape, Int8AttentionInputs inputs, int b, int h, int i, int kvHead, float qScale) =>
        qScale / Log2E * RowDot(shape, inputs, b, h, i, kvHead);

    /// <summary>
    /// Σ_d q8[d]·mean[d] in the order the kernels' four lanes of a row sum it: lane t an fma chain over d = t, t + 4, …,
    /// then the two xor shuffles, (l0 + l1) + (l2 + l3). The score modifier's smoothing correction.
    /// </summary>
    private static float LaneRowDot(AttentionShape shape, Int8AttentionInputs inputs, int b, int h, int i, int kvHead)
    {
        var d = shape.HeadDim;
        var mean = inputs.K.ChannelMean!.AsSpan(kvHead * d, d);
        var qRow = inputs.Q.Output.AsSpan(((b * shape.HeadsQ + h) * shape.TokensQ + i) * d, d);
        Span<float> lane = stackalloc float[4];
        for (var t = 0; t < 4; t++)
        {
            for (var c = t; c < d; c += 4)
            {
                lane[t] = MathF.FusedMultiplyAdd(qRow[c], mean[c], lane[t]);
            }
        }
        return (lane[0] + lane[1]) + (lane[2] + lane[3]);
    }

    /// <summary>Σ_d q8[d]·mean[d] as a sequential float32 fma chain over d: Q's codes against K's channel mean.</summary>
    private static float RowDot(AttentionShape shape, Int8AttentionInputs inputs, int b, int h, int i, int kvHead)
    {
        var d = shape.HeadDim;
        var mean = inputs.K.ChannelMean!;
        var qRow = inputs.Q.Output.AsSpan(((b * shape.HeadsQ + h) * shape.TokensQ + i) * d, d);
        var dot = 0f;
        for (var c = 0; c < d; c++)
        {
            dot = MathF.FusedMultiplyAdd(qRow[c], mean[kvHead * d + c], dot);
        }
        return dot;
    }
}
