using KernelDsl.Attention.Quantization;
using KernelDsl.Attention.Reference;

namespace KernelDsl.Attention.Tests.Reference;

/// <summary>
/// The CPU reference of the Quantize kernels, checked against properties that do not depend on it: the rounding
/// error bound, an independent π transpose, centred channels, zero blocks and padding. Options come from the
/// generated constants of the declared variants, so the reference follows the kernels it stands for.
/// </summary>
public class QuantizeReferenceTests
{
    private const int D = 128;

    private static readonly QuantizeOptions QBlock = new()
    {
        HeadDim = QuantizeQBlock128D128.HeadDim, Granularity = QuantGranularity.PerRowBlock, BlockRows = QuantizeQBlock128D128.BlockRows,
    };

    private static readonly QuantizeOptions KSmooth = new()
    {
        HeadDim = QuantizeKSmoothBlock64D128.HeadDim, Granularity = QuantGranularity.PerRowBlock, BlockRows = QuantizeKSmoothBlock64D128.BlockRows,
        SubtractChannelMean = true, MeanSlices = QuantizeKSmoothBlock64D128.MeanSlices,
    };

    private static readonly QuantizeOptions VChannel = new()
    {
        HeadDim = QuantizeVChannelD128.HeadDim, Granularity = QuantGranularity.PerChannel, BlockRows = QuantizeVChannelD128.BlockRows,
    };

    private static readonly QuantizeOptions VPi = new()
    {
        HeadDim = QuantizeVChannelPiD128.HeadDim, Granularity = QuantGranularity.PerChannel, BlockRows = QuantizeVChannelPiD128.BlockRows,
        Transposed = true, TransposePad = QuantizeVChannelPiD128.TransposePad,
        StoredTokenOrder = QuantizeVChannelPiD128.StoredTokenOrder.ToArray().Select(b => (int)b).ToArray(),
    };

    /// <summary>fp8 P·V's V, from the declared variant's constants.</summary>
    private static readonly QuantizeOptions VPiE4m3 = new()
    {
        HeadDim = QuantizeVChannelPiD128E4m3.HeadDim, Granularity = QuantGranularity.PerChannel, BlockRows = QuantizeVChannelPiD128E4m3.BlockRows,
        Transposed = true, TransposePad = QuantizeVChannelPiD128E4m3.TransposePad, Output = Element.E4M3,
        StoredTokenOrder = QuantizeVChannelPiD128E4m3.StoredTokenOrder.ToArray().Select(b => (int)b).ToArray(),
    };

    public static TheoryData<string> Variants() => ["QBlock", "KSmooth", "VChannel", "VPi"];

    private static QuantizeOptions Named(string name) => name switch
    {
        "QBlock" => QBlock,
        "KSmooth" => KSmooth,
        "VChannel" => VChannel,
        _ => VPi,
    };

    private static ushort Bits(float value) => BitConverter.HalfToUInt16Bits((Half)value);

    /// <summary>Uniform values in ±amplitude plus a per-channel offset, never all zero.</summary>
    private static ushort[] Random(int count, int seed, float amplitude = 3f, float channelOffset = 0f)
    {
        var rng = new Random(seed);
        var data = new ushort[count];
        for (var i = 0; i < count; i++)
        {
            var offset = channelOffset * ((i % D) / (float)D - 0.5f);
            data[i] = Bits(offset + amplitude * (2f * rng.NextSingle() - 1f));
        }
        return data;
    }

    private static QuantizeResult Dense(ushort[] x, int batch, int heads, int tokens, QuantizeOptions options, float multiplier = 1f, Element input = Element.F16) =>
        QuantizeReference.Quantize(x, input, (long)heads * tokens * D, (long)tokens * D, D, batch, heads, tokens, multiplier, options);

    /// <summary>π from its definition in V_TRANSPOSE.md, not from a table: slot 16h + 4t + i holds token 16h + [2t, 2t+1, 8+2t, 9+2t][i].</summary>
    private static int NaivePi(int position)
    {
        int h = position / 16, t = position % 16 / 4, i = position % 4;
        return 16 * h + (i < 2 ? 2 * t + i : 8 + 2 * t + i - 2);
    }

    private static float Value(ushort[] x, int bh, int tokens, int s, int c) => QuantizeReference.F16ToSingle(x[((long)bh * tokens + s) * D + c]);

    private static float ScaleAt(QuantizeResult r, QuantizeOptions o, int bh, int tokens, int s, int c) =>
        o.Granularity == QuantGranularity.PerChannel ? r.Scales[bh * D + c] : r.Scales[bh * ((tokens + o.BlockRows - 1) / o.BlockRows) + s / o.BlockRows];

    private static sbyte CodeAt(QuantizeResult r, QuantizeOptions o, int bh, int tokens, int s, int c) =>
        o.Transposed ? r.Output[((long)bh * D + c) * r.PaddedTokens + QuantizeReference.PositionOf(s, o.StoredTokenOrder)] : r.Output[((long)bh * tokens + s) * D + c];

    [Theory]
    [MemberData(nameof(Variants))]
    public void Dequantized_error_is_at_most_half_a_scale(string variant)
    {
        var o = Named(variant);
        const int batch = 2, heads = 3, tokens = 203;
        const float multiplier = 0.7f;
        var x = Random(batch * heads * tokens * D, 11, channelOffset: 4f);
        var r = Dense(x, batch, heads, tokens, o, multiplier);
        var worst = 0.0;
        for (var bh = 0; bh < batch * heads; bh++)
        {
            for (var s = 0; s < tokens; s++)
            {
                for (var c = 0; c < D; c++)
                {
                    var mean = r.ChannelMean?[bh * D + c] ?? 0f;
                    var v = (double)(Value(x, bh, tokens, s, c) - mean) * multiplier;
                    var scale = ScaleAt(r, o, bh, tokens, s, c);
                    var error = Math.Abs(v - CodeAt(r, o, bh, tokens, s, c) * (double)scale) / scale;
                    worst = Math.Max(worst, error);
                }
            }
        }
        Assert.InRange(worst, 0.0, 0.5 + 1e-5);
        Assert.True(worst > 0.3, $"the data should exercise rounding, worst error {worst} scales");
        Assert.Contains(r.Output, q => q == 127 || q == -127);
    }

    /// <summary>
    /// A bf16 channel whose largest value is a tiny normal (2^-122, far below f16's range): absmax / 448 or / 127 is
    /// subnormal, its reciprocal would be Inf, and 0 · Inf a NaN code. Such a channel gets scale 1 and codes 0, as one of
    /// zeros does.
    /// </summary>
    [Theory]
    [InlineData(Element.S8)]
    [InlineData(Element.E4M3)]
    public void A_channel_too_small_for_a_normal_scale_gets_scale_1_and_zero_codes(Element output)
    {
        var tiny = AttentionTensors.SingleToBf16(MathF.ScaleB(1f, -122));
        var x = new ushort[2 * D];  // two tokens of one head: channel 0 holds the tiny value and an exact 0, the rest 0
        x[0] = tiny;
        var options = VChannel with { Output = output };
        var result = QuantizeReference.Quantize(x, Element.BF16, 2 * D, 2 * D, D, 1, 1, 2, 1f, options);
        Assert.Equal(1f, QuantizeReference.ScaleOf(BitConverter.Int32BitsToSingle(tiny << 16), output));
        Assert.All(result.Scales, s => Assert.Equal(1f, s));
        Assert.All(result.Bytes(), b => Assert.Equal(0, b & 0x7F));  // no NaN code (e4m3 0x7F/0xFF), magnitude 0
    }

    [Fact]
    public void Pi_transposed_output_is_a_naive_transpose_of_the_natural_output()
    {
        const int batch = 2, heads = 2, tokens = 150;
        var x = Random(batch * heads * tokens * D, 5);
        var natural = Dense(x, batch, heads, tokens, VChannel);
        var pi = Dense(x, batch, heads, tokens, VPi);
        Assert.Equal(natural.Scales, pi.Scales);
        Assert.Equal(192, pi.PaddedTokens);
        for (var bh = 0; bh < batch * heads; bh++)
        {
            for (var c = 0; c < D; c++)
            {
                for (var p = 0; p < pi.PaddedTokens; p++)
                {
                    var token = NaivePi(p);
                    var expected = token < tokens ? natural.Output[((long)bh * tokens + token) * D + c] : 0;
                    Assert.Equal(expected, pi.Output[((long)bh * D + c) * pi.PaddedTokens + p]);
                }
            }
        }
    }

    [Fact]
    public void The_generated_token_order_is_pi_and_positions_round_trip()
    {
        for (var p = 0; p < 256; p++)
        {
            Assert.Equal(NaivePi(p), QuantizeVChannelPiD128.TokenAtPosition(p));
            Assert.Equal(p, QuantizeReference.PositionOf(QuantizeVChannelPiD128.TokenAtPosition(p), VPi.StoredTokenOrder));
        }
    }

    [Fact]
    public void Padding_positions_are_zero_and_real_tokens_are_not_all_zero()
    {
        const int tokens = 37;
        var x = Random(tokens * D, 3, amplitude: 10f);
        var r = Dense(x, 1, 1, tokens, VPi);
        Assert.Equal(64, r.PaddedTokens);
        Assert.Equal(QuantizeVChannelPiD128.OutputLength(1, 1, tokens), r.Output.LongLength);
        for (var c = 0; c < D; c++)
        {
            var row = r.Output.AsSpan(c * 64, 64);
            for (var p = 0; p < 64; p++)
            {
                if (QuantizeVChannelPiD128.TokenAtPosition(p) >= tokens)
                {
                    Assert.Equal(0, row[p]);
                }
            }
            Assert.Contains(row.ToArray(), q => q != 0);
        }
    }

    [Fact]
    public void Mean_subtraction_centres_every_channel()
    {
        const int batch = 1, heads = 2, tokens = 300;
        var x = Random(batch * heads * tokens * D, 17, amplitude: 1f, channelOffset: 40f);
        var r = Dense(x, batch, heads, tokens, KSmooth);
        Assert.NotNull(r.ChannelMean);
        for (var bh = 0; bh < batch * heads; bh++)
        {
            for (var c = 0; c < D; c++)
            {
                double sum = 0, dequantized = 0;
                for (var s = 0; s < tokens; s++)
                {
                    sum += Value(x, bh, tokens, s, c);
                    dequantized += CodeAt(r, KSmooth, bh, tokens, s, c) * (double)ScaleAt(r, KSmooth, bh, tokens, s, c);
                }
                Assert.Equal(sum / tokens, r.ChannelMean![bh * D + c], 1e-4);
                Assert.InRange(Math.Abs(dequantized / tokens), 0, 0.02);
            }
        }
        // Smoothing is why K is quantized this way: without it the offsets would dominate the scale.
        var unsmoothed = Dense(x, batch, heads, tokens, QBlock with { BlockRows = KSmooth.BlockRows });
        Assert.True(unsmoothed.Scales.Max() > 10 * r.Scales.Max());
    }

    [Fact]
    public void The_channel_mean_follows_the_kernels_summation_order()
    {
        // Large and small values alternate, so the float32 sum depends on the order of the additions.
        const int tokens = 64;
        var x = new ushort[tokens * D];
        for (var s = 0; s < tokens; s++)
        {
            for (var c = 0; c < D; c++)
            {
                x[s * D + c] = Bits(s % 2 == 0 ? 65504f : 0.1f + 0.013f * c);
            }
        }
        var r = Dense(x, 1, 1, tokens, KSmooth);
        var orderMatters = 0;
        for (var c = 0; c < D; c++)
        {
            var sequential = 0f;
            for (var s = 0; s < tokens; s++)
            {
                sequential += QuantizeReference.F16ToSingle(x[s * D + c]);
            }
            orderMatters += sequential / tokens != r.ChannelMean![c] ? 1 : 0;
            var partial = new float[KSmooth.MeanSlices];
            for (var j = 0; j < partial.Length; j++)
            {
                for (var s = j; s < tokens; s += partial.Length)
                {
                    partial[j] += QuantizeReference.F16ToSingle(x[s * D + c]);
                }
            }
            var total = 0f;
            foreach (var p in partial)
            {
                total += p;
            }
            Assert.Equal(total / tokens, r.ChannelMean![c]);
        }
        Assert.True(orderMatters > 0, "the data should make the summation order visible");
    }

    /// <summary>K's smoothing as Int8Attention runs it: the KvStatistics pass's order (MeanLanes lanes in slices of SliceTokens, in groups of MeanSliceGroup).</summary>
    private static readonly QuantizeOptions KSmoothStatistics = KSmooth with
    {
        MeanSlices = KvStatisticsD128.MeanLanes, MeanSliceTokens = KvStatisticsD128.SliceTokens, MeanSliceGroup = KvStatisticsD128.MeanSliceGroup,
    };

    [Theory]
    [InlineData(64)]
    [InlineData(600)]    // two whole slices and a ragged third, not a multiple of the lanes either
    [InlineData(1030)]
    [InlineData(4357)]   // 18 slices of 256: a whole group of 16 and a second of 2
    public void The_statistics_pass_mean_adds_lanes_then_slices_then_groups_in_order(int tokens)
    {
        // Large and small values alternate, so the float32 sum depends on the order of the additions.
        var x = new ushort[tokens * D];
        for (var s = 0; s < tokens; s++)
        {
            for (var c = 0; c < D; c++)
            {
                x[s * D + c] = Bits(s % 3 == 0 ? 60000f - 7f * c : 0.1f + 0.013f * c);
            }
        }
        var r = Dense(x, 1, 1, tokens, KSmoothStatistics);
        var (lanes, slice) = (KvStatisticsD128.MeanLanes, KvStatisticsD128.SliceTokens);
        var (differs, groupsMatter) = (0, 0);
        for (var c = 0; c < D; c++)
        {
            // The kernels' order written out: partials block by block as the GPU's first kernel, then the combine.
            var slices = new List<float>();
            for (var s0 = 0; s0 < tokens; s0 += slice)
            {
                var lane = new float[lanes];
                for (var s = s0; s < Math.Min(tokens, s0 + slice); s++)
                {
                    lane[(s - s0) % lanes] += QuantizeReference.F16ToSingle(x[s * D + c]);
                }
                slices.Add(lane.Aggregate(0f, (sum, v) => sum + v));
            }
            var group = KvStatisticsD128.MeanSliceGroup;
            var mean = slices.Chunk(group).Select(g => g.Aggregate(0f, (sum, v) => sum + v)).Aggregate(0f, (sum, v) => sum + v) / tokens;
            Assert.Equal(BitConverter.SingleToInt32Bits(mean), BitConverter.SingleToInt32Bits(r.ChannelMean![c]));
            differs += Dense(x, 1, 1, tokens, KSmooth).ChannelMean![c] != mean ? 1 : 0;
            groupsMatter += slices.Aggregate(0f, (sum, v) => sum + v) / tokens != mean ? 1 : 0;
        }
        if (tokens > slice)
        {
            Assert.True(differs > 0, "the data should make the slice order visible against the per-operand kernel's");
        }
        if (tokens > KvStatisticsD128.MeanSliceGroup * slice)
        {
            Assert.True(groupsMatter > 0, "the data should make the groups visible against one group of all slices");
        }
    }

    [Fact]
    public void One_slice_of_all_tokens_is_the_per_operand_kernels_order()
    {
        const int tokens = 777;
        var x = Random(2 * 3 * tokens * D, 41, channelOffset: 30f);
        var own = Dense(x, 2, 3, tokens, KSmooth);
        var oneSlice = Dense(x, 2, 3, tokens, KSmooth with { MeanSliceTokens = tokens });
        Assert.Equal(own.ChannelMean, oneSlice.ChannelMean);
        Assert.Equal(own.Output, oneSlice.Output);
    }

    [Fact]
    public void E4m3_codes_are_within_half_a_step_of_v_over_absmax_448_and_each_channel_reaches_448()
    {
        const int batch = 2, heads = 2, tokens = 203;
        var x = Random(batch * heads * tokens * D, 29, channelOffset: 4f);
        var natural = Dense(x, batch, heads, tokens, VPiE4m3 with { Transposed = false }, 0.7f);
        Assert.Equal(Element.E4M3, natural.OutputElement);
        var codes = natural.Bytes();
        var worst = 0.0;
        for (var bh = 0; bh < batch * heads; bh++)
        {
            for (var c = 0; c < D; c++)
            {
                // The scale from its definition: absmax over the channel / 448.
                var absmax = Enumerable.Range(0, tokens).Max(s => Math.Abs(Value(x, bh, tokens, s, c) * 0.7f));
                Assert.Equal(absmax / 448f, natural.Scales[bh * D + c]);
                var reached = false;
                for (var s = 0; s < tokens; s++)
                {
                    var target = (double)(Value(x, bh, tokens, s, c) * 0.7f) / natural.Scales[bh * D + c];
                    var code = codes[((long)bh * tokens + s) * D + c];
                    // Half a step: 2^-4 of |target| for normals (3 mantissa bits), 2^-10 in the subnormals.
                    var error = Math.Abs(E4m3.ToSingle(code) - target) / Math.Max(Math.Abs(target) / 16, Math.ScaleB(1.0, -10));
                    worst = Math.Max(worst, error);
                    reached |= (code & 0x7F) == 0x7E;
                }
                Assert.True(reached, $"channel {c} of {bh}: its absmax should take the code ±448");
            }
        }
        Assert.InRange(worst, 0.0, 1 + 1e-5);
        Assert.True(worst > 0.5, $"the data should exercise rounding, worst error {worst} half-steps");
    }

    [Fact]
    public void E4m3_pi_output_is_a_naive_transpose_of_the_natural_one_and_a_zero_channel_gets_scale_one()
    {
        const int tokens = 150;
        var x = Random(tokens * D, 31);
        for (var s = 0; s < tokens; s++)
        {
            x[s * D + 5] = Bits(0f);
        }
        var natural = Dense(x, 1, 1, tokens, VPiE4m3 with { Transposed = false });
        var pi = Dense(x, 1, 1, tokens, VPiE4m3);
        Assert.Equal(natural.Scales, pi.Scales);
        Assert.Equal(1f, pi.Scales[5]);
        var (naturalCodes, piCodes) = (natural.Bytes(), pi.Bytes());
        Assert.Equal(QuantizeVChannelPiD128E4m3.OutputLength(1, 1, tokens), piCodes.LongLength);
        for (var c = 0; c < D; c++)
        {
            for (var p = 0; p < pi.PaddedTokens; p++)
            {
                var token = NaivePi(p);
                Assert.Equal(token < tokens ? naturalCodes[token * D + c] : (byte)0, piCodes[c * pi.PaddedTokens + p]);
            }
        }
        Assert.All(Enumerable.Range(0, tokens), s => Assert.Equal(0, naturalCodes[s * D + 5]));
        Assert.Contains(naturalCodes, code => code != 0);
    }

    [Fact]
    public void E4m3_output_is_refused_per_row_block_or_with_the_channel_mean()
    {
        var x = Random(16 * D, 37);
        foreach (var options in new[] { QBlock with { Output = Element.E4M3 }, VPiE4m3 with { SubtractChannelMean = true } })
        {
            Assert.Equal("options", Assert.Throws<ArgumentException>(() => Dense(x, 1, 1, 16, options)).ParamName);
        }
        Assert.Equal("options", Assert.Throws<ArgumentException>(() => Dense(x, 1, 1, 16, VChannel with { Output = Element.U8 })).ParamName);
    }

    [Fact]
    public void A_zero_block_gets_scale_one_and_zero_codes()
    {
        const int tokens = 256;
        var x = Random(tokens * D, 23);
        Array.Fill(x, Bits(0f), 128 * D, 128 * D);
        var r = Dense(x, 1, 1, tokens, QBlock);
        Assert.Equal(2, r.Scales.Length);
        Assert.Equal(1f, r.Scales[1]);
        Assert.NotEqual(1f, r.Scales[0]);
        Assert.All(r.Output.Skip(128 * D), q => Assert.Equal(0, q));
        Assert.Contains(r.Output.Take(128 * D), q => q != 0);
    }

    [Fact]
    public void Codes_round_half_to_even_and_stay_within_127()
    {
        float[] values = [127f, 2.5f, 3.5f, -2.5f, 0.5f, 1.5f, -126.5f, -127f];
        var x = new ushort[16 * D];
        for (var i = 0; i < x.Length; i++)
        {
            x[i] = Bits(values[i % values.Length] * (i < values.Length ? 1f : 0.25f));
        }
        var r = Dense(x, 1, 1, 16, QBlock);
        Assert.Equal(1f, r.Scales[0]);
        Assert.Equal(new sbyte[] { 127, 2, 4, -2, 0, 2, -126, -127 }, r.Output.Take(values.Length).ToArray());
        Assert.Equal((sbyte)-127, QuantizeReference.Quant(-1e30f, 1f));
        Assert.Equal((sbyte)127, QuantizeReference.Quant(float.PositiveInfinity, 1f));
    }

    [Fact]
    public void Strided_BSHD_input_gives_the_dense_BHSD_result_and_gaps_are_never_read()
    {
        const int batch = 2, heads = 3, tokens = 70;
        var dense = Random(batch * heads * tokens * D, 29);
        // BSHD with 8 unused channels after each token's heads: strides (S·(H·D + 8), D, H·D + 8). The gap holds NaN.
        long strideS = heads * D + 8, strideH = D, strideB = tokens * strideS;
        var strided = new ushort[batch * strideB];
        Array.Fill(strided, BitConverter.HalfToUInt16Bits(Half.NaN));
        for (var b = 0; b < batch; b++)
        {
            for (var h = 0; h < heads; h++)
            {
                for (var s = 0; s < tokens; s++)
                {
                    dense.AsSpan((int)((((long)b * heads + h) * tokens + s) * D), D).CopyTo(strided.AsSpan((int)(b * strideB + h * strideH + s * strideS), D));
                }
            }
        }
        foreach (var o in new[] { QBlock, KSmooth, VChannel, VPi })
        {
            var expected = Dense(dense, batch, heads, tokens, o);
            var actual = QuantizeReference.Quantize(strided, Element.F16, strideB, strideH, strideS, batch, heads, tokens, 1f, o);
            Assert.Equal(expected.Output, actual.Output);
            Assert.Equal(expected.Scales, actual.Scales);
            Assert.Equal(expected.ChannelMean, actual.ChannelMean);
        }
    }

    [Fact]
    public void NaN_is_ignored_by_the_scale_and_quantizes_to_zero_and_Inf_zeroes_its_block()
    {
        const int tokens = 256;
        var x = Random(tokens * D, 31);
        var clean = Dense(x, 1, 1, tokens, QBlock);
        x[5] = BitConverter.HalfToUInt16Bits(Half.NaN);
        x[200 * D + 7] = BitConverter.HalfToUInt16Bits(Half.PositiveInfinity);
        var r = Dense(x, 1, 1, tokens, QBlock);
        Assert.Equal(clean.Scales[0], r.Scales[0]);
        Assert.Equal(0, r.Output[5]);
        Assert.Equal(clean.Output.Take(5), r.Output.Take(5));
        Assert.Equal(float.PositiveInfinity, r.Scales[1]);
        Assert.All(r.Output.Skip(128 * D), q => Assert.Equal(0, q));
    }

    [Fact]
    public void Bf16_input_is_widened_exactly()
    {
        const int tokens = 40;
        var f16 = new ushort[tokens * D];
        var bf16 = new ushort[tokens * D];
        var rng = new Random(37);
        for (var i = 0; i < f16.Length; i++)
        {
            var value = (rng.Next(-128, 128) + 1) / 8f; // at most 8 significant bits: exact in both formats
            f16[i] = Bits(value);
            bf16[i] = (ushort)(BitConverter.SingleToInt32Bits(value) >> 16);
            Assert.Equal(value, QuantizeReference.Bf16ToSingle(bf16[i]));
        }
        var a = Dense(f16, 1, 1, tokens, KSmooth);
        var b = Dense(bf16, 1, 1, tokens, KSmooth, input: Element.BF16);
        Assert.Equal(a.Output, b.Output);
        Assert.Equal(a.Scales, b.Scales);
        Assert.Equal(a.ChannelMean, b.ChannelMean);
    }

    [Fact]
    public void A_power_of_two_multiplier_scales_the_scales_and_keeps_the_codes()
    {
        const int tokens = 130;
        var x = Random(2 * tokens * D, 41);
        var one = Dense(x, 1, 2, tokens, QBlock);
        var four = Dense(x, 1, 2, tokens, QBlock, multiplier: 4f);
        Assert.Equal(one.Output, four.Output);
        Assert.Equal(one.Scales.Select(s => 4f * s), four.Scales);
        var negative = Dense(x, 1, 2, tokens, QBlock, multiplier: -1f);
        Assert.Equal(one.Scales, negative.Scales);
        Assert.Equal(one.Output.Select(q => (sbyte)-q), negative.Output);
    }

    [Fact]
    public void Generated_sizes_match_the_reference_layouts()
    {
        const int batch = 2, heads = 3, tokens = 203;
        var x = Random(batch * heads * tokens * D, 43);
        Assert.Equal(QuantizeQBlock128D128.OutputLength(batch, heads, tokens), Dense(x, batch, heads, tokens, QBlock).Output.LongLength);
        Assert.Equal(QuantizeQBlock128D128.ScaleCount(batch, heads, tokens), Dense(x, batch, heads, tokens, QBlock).Scales.LongLength);
        Assert.Equal(QuantizeKSmoothBlock64D128.ScaleCount(batch, heads, tokens), Dense(x, batch, heads, tokens, KSmooth).Scales.LongLength);
        Assert.Equal(QuantizeKSmoothBlock64D128.ChannelMeanLength(batch, heads), Dense(x, batch, heads, tokens, KSmooth).ChannelMean!.LongLength);
        Assert.Equal(QuantizeVChannelD128.ScaleCount(batch, heads, tokens), Dense(x, batch, heads, tokens, VChannel).Scales.LongLength);
        Assert.Equal(QuantizeVChannelPiD128.OutputLength(batch, heads, tokens), Dense(x, batch, heads, tokens, VPi).Output.LongLength);
        Assert.Equal(256, QuantizeVChannelPiD128.PaddedTokens(tokens));
    }
}
