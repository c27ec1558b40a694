namespace KernelDsl.Generator.Tests.Emission;

// Inside the namespace, so the generator's model enums win over the runtime's public ones of the same names.
using KernelDsl.Generator.Model;
using KernelDsl.Generator.Tests.Validation;

/// <summary>Each Quantize attribute reaches the CUDA text: flip one and the kernel changes where it should.</summary>
public class QuantizeEmissionTests
{
    private const string Prefix = "kdsl_Tests_QuantizeProbe";

    private static QuantizeSpec Spec() => QuantizeValidatorTests.Spec();

    private static string Cuda(QuantizeSpec spec) => KernelGenerator.EmitCuda(spec);

    private static string[] KernelNames(string cuda) => cuda.Split('\n')
        .Where(l => l.TrimStart().StartsWith(Prefix, StringComparison.Ordinal))
        .Select(l => l.Trim().Substring(0, l.Trim().IndexOf('(')))
        .ToArray();

    [Fact]
    public void The_module_is_self_contained_and_every_kernel_is_extern_C_and_prefixed()
    {
        foreach (var spec in new[] { Spec(), Spec() with { Granularity = QuantGranularity.PerChannel, Transposed = true, SubtractChannelMean = true } })
        {
            var cuda = Cuda(spec);
            Assert.DoesNotContain("#include", cuda, StringComparison.Ordinal);
            var lines = cuda.Split('\n');
            for (var i = 0; i < lines.Length; i++)
            {
                if (lines[i].Contains("__global__", StringComparison.Ordinal))
                {
                    Assert.StartsWith("extern \"C\" __global__", lines[i], StringComparison.Ordinal);
                    Assert.StartsWith(Prefix + "_", lines[i + 1], StringComparison.Ordinal);
                }
            }
        }
    }

    [Fact]
    public void Granularity_picks_the_kernels_and_where_scales_come_from()
    {
        var block = Cuda(Spec());
        Assert.Equal([Prefix + "_quantize", Prefix + "_count_nonfinite"], KernelNames(block));
        Assert.Contains("warp_max[", block, StringComparison.Ordinal);
        Assert.Contains("scales[(long long)bh * tiles + tile] = scale;", block, StringComparison.Ordinal);

        var channel = Cuda(Spec() with { Granularity = QuantGranularity.PerChannel });
        Assert.Equal([Prefix + "_clear_scales", Prefix + "_channel_absmax", Prefix + "_channel_scale", Prefix + "_quantize", Prefix + "_count_nonfinite"], KernelNames(channel));
        Assert.Contains("atomicMax((int*)scales + (long long)bh * 128 + c, block_max[c]);", channel, StringComparison.Ordinal);
        Assert.Contains("inv[c] = kdsl_inv_of(scales[(long long)bh * 128 + c]);", channel, StringComparison.Ordinal);
        Assert.Contains("kdsl_quant(kdsl_prep(v[j], scale_multiplier), inv[chunk * 8 + j])", channel, StringComparison.Ordinal);
        // 256 threads over 12 chunks of a 96-channel row: a thread's chunk changes from one token to the next.
        var d96 = Cuda(Spec() with { Granularity = QuantGranularity.PerChannel, HeadDim = 96 });
        Assert.Contains("const int r = e / 12, chunk = e % 12;", d96, StringComparison.Ordinal);
        Assert.Contains("inv[chunk * 8 + j]", d96, StringComparison.Ordinal);
        Assert.DoesNotContain("warp_max[", channel, StringComparison.Ordinal);
    }

    [Fact]
    public void SubtractChannelMean_adds_the_mean_kernel_and_subtracts_it_everywhere()
    {
        var plain = Cuda(Spec());
        Assert.DoesNotContain("_channel_mean", plain, StringComparison.Ordinal);
        Assert.Contains("return __fmul_rn(x, mul);", plain, StringComparison.Ordinal);

        var smoothed = Cuda(Spec() with { SubtractChannelMean = true });
        Assert.Equal([Prefix + "_channel_mean", Prefix + "_quantize", Prefix + "_count_nonfinite"], KernelNames(smoothed));
        Assert.Contains("return __fmul_rn(__fsub_rn(x, mean), mul);", smoothed, StringComparison.Ordinal);
        Assert.Contains("mean[(long long)bh * 128 + c] = __fdiv_rn(total, (float)S);", smoothed, StringComparison.Ordinal);
        Assert.Contains("const float* __restrict__ mean, float scale_multiplier", smoothed, StringComparison.Ordinal);
    }

    [Fact]
    public void Transposed_writes_channel_rows_of_padded_tokens()
    {
        var spec = Spec() with { Granularity = QuantGranularity.PerChannel };
        var natural = Cuda(spec);
        Assert.Contains("kdsl_st8(out + ((long long)bh * S + s0 + r) * 128 + chunk * 8, lo, hi);", natural, StringComparison.Ordinal);
        Assert.DoesNotContain("s_pad", natural, StringComparison.Ordinal);

        var transposed = Cuda(spec with { Transposed = true, TransposePad = 32 });
        Assert.Contains("const float* __restrict__ scales, int s_pad, unsigned int* nonfinite)", transposed, StringComparison.Ordinal);
        Assert.Contains("kdsl_st16(out + ((long long)bh * 128 + c) * s_pad + s0 + p0, piece.x, piece.y, piece.z, piece.w);", transposed, StringComparison.Ordinal);
        Assert.Contains("if (s0 + p0 >= s_pad) continue;", transposed, StringComparison.Ordinal);
        Assert.Contains("S_pad = S rounded up to 32", transposed, StringComparison.Ordinal);
        Assert.DoesNotContain("kdsl_st8(", transposed, StringComparison.Ordinal);
    }

    [Fact]
    public void TransposedOrder_sets_which_token_each_position_holds()
    {
        var spec = Spec() with { Granularity = QuantGranularity.PerChannel, Transposed = true };
        var pi = Cuda(spec with { TransposedOrder = TokenOrder.Pi });
        Assert.Contains("holds token [0, 1, 8, 9, 2, 3, 10, 11, 4, 5, 12, 13, 6, 7, 14, 15][p]", pi, StringComparison.Ordinal);
        // Token t of a group goes to position (0x… >> 4t) & 15: π sends token 8 to position 2, token 2 to position 4.
        Assert.Contains("(0xFEBA7632DC985410ull >> (4 * (r & 15))) & 15u", pi, StringComparison.Ordinal);
        var natural = Cuda(spec with { TransposedOrder = TokenOrder.Natural });
        Assert.Contains("(0xFEDCBA9876543210ull >> (4 * (r & 15))) & 15u", natural, StringComparison.Ordinal);
    }

    [Fact]
    public void BlockRows_sets_the_tile_of_tokens()
    {
        var rows128 = Cuda(Spec());
        Assert.Contains("const int tiles = (S + 127) / 128;", rows128, StringComparison.Ordinal);
        var rows64 = Cuda(Spec() with { BlockRows = 64 });
        Assert.Contains("const int tiles = (S + 63) / 64;", rows64, StringComparison.Ordinal);
        Assert.Contains("const int s0 = tile * 64;", rows64, StringComparison.Ordinal);
        Assert.Contains("const int rows = kdsl_min(64, S - s0);", rows64, StringComparison.Ordinal);
        Assert.Contains("for (int i = 0; i < 4; ++i)", rows64, StringComparison.Ordinal); // 64 rows × 16 chunks / 256 threads
    }

    [Fact]
    public void HeadDim_sets_chunks_per_row_and_row_length()
    {
        var d128 = Cuda(Spec() with { SubtractChannelMean = true });
        Assert.Contains("const int r = e / 16, chunk = e % 16;", d128, StringComparison.Ordinal);
        Assert.Contains("__shared__ float partial[16][128];", d128, StringComparison.Ordinal);
        var d64 = Cuda(Spec() with { HeadDim = 64, SubtractChannelMean = true });
        Assert.Contains("const int r = e / 8, chunk = e % 8;", d64, StringComparison.Ordinal);
        Assert.Contains("__shared__ float partial[32][64];", d64, StringComparison.Ordinal);
        Assert.Contains("* 64 + chunk * 8, lo, hi);", d64, StringComparison.Ordinal);
        var d96 = Cuda(Spec() with { HeadDim = 96, SubtractChannelMean = true });
        Assert.Contains("__shared__ float partial[21][96];", d96, StringComparison.Ordinal); // 256 / 12 chunks: 4 threads idle
    }

    [Fact]
    public void Input_picks_the_widening_conversion()
    {
        var f16 = Cuda(Spec());
        Assert.Contains("v[2 * i] = kdsl_f16_to_f32((u16)(w[i] & 0xffffu));", f16, StringComparison.Ordinal);
        Assert.DoesNotContain("kdsl_bf16_to_f32", f16, StringComparison.Ordinal);
        var bf16 = Cuda(Spec() with { Input = Element.BF16 });
        Assert.Contains("v[2 * i] = kdsl_bf16_to_f32((u16)(w[i] & 0xffffu));", bf16, StringComparison.Ordinal);
        Assert.DoesNotContain("kdsl_f16_to_f32", bf16, StringComparison.Ordinal);
        Assert.Contains("// bf16 [B, H, S, 128]", bf16, StringComparison.Ordinal);
    }

    [Fact]
    public void Threads_set_launch_bounds_warps_and_strides()
    {
        var t256 = Cuda(Spec());
        Assert.Contains("__launch_bounds__(256)", t256, StringComparison.Ordinal);
        Assert.Contains("__shared__ float warp_max[8];", t256, StringComparison.Ordinal);
        Assert.Contains("u32 tile_raw[8][4];", t256, StringComparison.Ordinal);
        var t128 = Cuda(Spec() with { Threads = 128 });
        Assert.Contains("__launch_bounds__(128)", t128, StringComparison.Ordinal);
        Assert.DoesNotContain("__launch_bounds__(256)", t128, StringComparison.Ordinal);
        Assert.Contains("__shared__ float warp_max[4];", t128, StringComparison.Ordinal);
        Assert.Contains("const int e = threadIdx.x + i * 128;", t128, StringComparison.Ordinal);
        // 16 chunks per thread would take 64 registers: the tile is read twice instead of cached.
        Assert.DoesNotContain("tile_raw", t128, StringComparison.Ordinal);
        Assert.Contains("the tile is read twice", t128, StringComparison.Ordinal);
    }

    [Fact]
    public void Emit_writes_the_module_and_a_typed_launcher()
    {
        var files = KernelGenerator.Emit(Spec() with { Input = Element.BF16, SubtractChannelMean = true });
        Assert.Equal(["Tests.QuantizeProbe.cu.g.cs", "Tests.QuantizeProbe.g.cs"], files.Select(f => f.HintName));
        var launcher = files[1].Text;
        Assert.Contains("public const string KernelName = \"kdsl_Tests_QuantizeProbe_quantize\";", launcher, StringComparison.Ordinal);
        Assert.Contains("public const string ChannelMeanKernelName = \"kdsl_Tests_QuantizeProbe_channel_mean\";", launcher, StringComparison.Ordinal);
        Assert.Contains("global::KernelDsl.DeviceBuffer<ushort> x, long strideB, long strideH, long strideS, int batch, int heads, int tokens, global::KernelDsl.DeviceBuffer<sbyte> output, global::KernelDsl.DeviceBuffer<float> scales, global::KernelDsl.DeviceBuffer<float> channelMean, float scaleMultiplier = 1f, global::KernelDsl.DeviceBuffer<uint>? nonFinite = null)", launcher, StringComparison.Ordinal);
        Assert.Contains("public const int MeanSlices = 16;", launcher, StringComparison.Ordinal);
        Assert.Contains("LaunchGuard.MultipleOf(strideS, 8, nameof(strideS)", launcher, StringComparison.Ordinal);

        var transposed = KernelGenerator.Emit(Spec() with { Granularity = QuantGranularity.PerChannel, Transposed = true })[1].Text;
        Assert.Contains("StoredTokenOrder => [0, 1, 8, 9, 2, 3, 10, 11, 4, 5, 12, 13, 6, 7, 14, 15];", transposed, StringComparison.Ordinal);
        Assert.Contains("global::KernelDsl.DeviceBuffer<global::System.Half> x", transposed, StringComparison.Ordinal);
        Assert.DoesNotContain("channelMean", transposed, StringComparison.Ordinal);
    }

    /// <summary>The text of one kernel: from its name to the next kernel's <c>extern "C"</c> (or the end).</summary>
    private static string KernelText(string cuda, string suffix)
    {
        var start = cuda.IndexOf(Prefix + suffix + "(", StringComparison.Ordinal);
        Assert.True(start >= 0, $"no kernel {suffix}");
        var end = cuda.IndexOf("extern \"C\"", start, StringComparison.Ordinal);
        return end < 0 ? cuda[start..] : cuda[start..end];
    }

    private static int Count(string text, string what) => text.Split(what).Length - 1;

    public static TheoryData<string> CountingShapes() => ["row block", "row block read twice", "per channel", "transposed", "smoothed bf16"];

    private static QuantizeSpec Shape(string name) => name switch
    {
        "row block" => Spec(),
        "row block read twice" => Spec() with { Threads = 128 },
        "per channel" => Spec() with { Granularity = QuantGranularity.PerChannel },
        "transposed" => Spec() with { Granularity = QuantGranularity.PerChannel, Transposed = true, SubtractChannelMean = true },
        _ => Spec() with { Input = Element.BF16, SubtractChannelMean = true },
    };

    [Theory]
    [MemberData(nameof(CountingShapes))]
    public void The_quantize_kernel_counts_each_input_element_once_and_reports_the_count(string shape)
    {
        var cuda = Cuda(Shape(shape));
        var quantize = KernelText(cuda, "_quantize");
        Assert.Contains("unsigned int* nonfinite)", quantize.Split('\n')[0], StringComparison.Ordinal);
        // Every element counted once: the row-block kernel that reads its tile twice counts in the first pass only, and
        // the transposed kernel reads each of a group's 16 tokens through the counting load and no other way.
        Assert.Equal(1, Count(quantize, "n_nonfinite += kdsl_nonfinite8("));
        Assert.Equal(shape == "row block read twice" ? 2 : 1, Count(quantize, "kdsl_ld16(xs + "));
        Assert.Equal(1, Count(quantize, "kdsl_report_nonfinite(nonfinite, n_nonfinite);"));
        // The statistics kernels read the same elements again and must not count them a second time.
        foreach (var statistics in new[] { "_channel_mean", "_channel_absmax" }.Where(k => cuda.Contains(Prefix + k + "(", StringComparison.Ordinal)))
        {
            Assert.DoesNotContain("nonfinite", KernelText(cuda, statistics), StringComparison.Ordinal);
        }
        var count = KernelText(cuda, "_count_nonfinite");
        Assert.Contains("int heads, int S, unsigned int* nonfinite)", count.Split('\n')[0], StringComparison.Ordinal);
        Assert.Contains("n_nonfinite += kdsl_nonfinite8(raw);", count, StringComparison.Ordinal);
        Assert.DoesNotContain("out", count, StringComparison.Ordinal);
    }

    [Fact]
    public void Nonfinite_inputs_are_told_by_their_exponent_bits_and_a_finite_warp_costs_one_vote()
    {
        var f16 = Cuda(Spec());
        Assert.Contains("return (h & 0x7c00u) == 0x7c00u;", f16, StringComparison.Ordinal);
        var bf16 = Cuda(Spec() with { Input = Element.BF16 });
        Assert.Contains("return (h & 0x7f80u) == 0x7f80u;", bf16, StringComparison.Ordinal);
        Assert.Contains("if (nonfinite == 0 || !__any_sync(0xffffffffu, n != 0)) return;", f16, StringComparison.Ordinal);
        Assert.Contains("if ((threadIdx.x & 31) == 0) atomicAdd(nonfinite, (unsigned int)n);", f16, StringComparison.Ordinal);
        // The NaN -> 0 / Inf -> scale Inf behaviour of the codes is unchanged: the count is all that is added.
        Assert.Contains("return r != r ? 0 : __float_as_int(fminf(fmaxf(r, 12582785.0f), 12583039.0f)) - 0x4B400000;", f16, StringComparison.Ordinal);
    }

    [Fact]
    public void The_launcher_takes_an_optional_counter_and_can_count_alone()
    {
        var launcher = KernelGenerator.Emit(Spec() with { Granularity = QuantGranularity.PerChannel, Transposed = true })[1].Text;
        Assert.Contains("float scaleMultiplier = 1f, global::KernelDsl.DeviceBuffer<uint>? nonFinite = null)", launcher, StringComparison.Ordinal);
        Assert.Contains("HeadDim, batch, heads, tokens, output, scales, scaleMultiplier, nonFinite);", launcher, StringComparison.Ordinal);
        Assert.Contains("if (nonFinite is not null) global::KernelDsl.Launching.LaunchGuard.Buffer(nonFinite, nameof(nonFinite));", launcher, StringComparison.Ordinal);
        Assert.Contains("if (nonFinite is not null) global::KernelDsl.Launching.LaunchGuard.Holds(nonFinite, 1, nameof(nonFinite), \"one NaN/Inf counter\");", launcher, StringComparison.Ordinal);
        Assert.Contains("if (nonFinite is null) quantize.AddNullPointer(); else quantize.Add(nonFinite);", launcher, StringComparison.Ordinal);
        Assert.Contains("public const string CountNonFiniteKernelName = \"kdsl_Tests_QuantizeProbe_count_nonfinite\";", launcher, StringComparison.Ordinal);
        Assert.Contains("public static void CountNonFinite(global::KernelDsl.CudaStream stream, global::KernelDsl.DeviceBuffer<global::System.Half> x, long strideB, long strideH, long strideS, int batch, int heads, int tokens, global::KernelDsl.DeviceBuffer<uint> nonFinite)", launcher, StringComparison.Ordinal);
        var count = launcher[launcher.IndexOf("public static void CountNonFinite(", StringComparison.Ordinal)..];
        Assert.Contains("LaunchGuard.Buffer(nonFinite, nameof(nonFinite));", count, StringComparison.Ordinal);
        Assert.Contains("LaunchGuard.Holds(x, ", count, StringComparison.Ordinal);
        // Counting covers the S tokens read, not the transposed output's padding.
        Assert.Contains("var blocks = batchHeads * ((tokens + BlockRows - 1L) / BlockRows);", count, StringComparison.Ordinal);
        Assert.Contains("counting.Add(tokens);\n        counting.Add(nonFinite);", count.ReplaceLineEndings("\n"), StringComparison.Ordinal);
    }
}
