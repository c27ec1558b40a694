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
        Assert.Equal([Prefix + "_quantize"], KernelNames(block));
        Assert.Contains("warp_max[", block, StringComparison.Ordinal);
        Assert.Contains("scales[(long long)bh * tiles + tile] = scale;", block, StringComparison.Ordinal);

        var channel = Cuda(Spec() with { Granularity = QuantGranularity.PerChannel });
        Assert.Equal([Prefix + "_clear_scales", Prefix + "_channel_absmax", Prefix + "_channel_scale", Prefix + "_quantize"], KernelNames(channel));
        Assert.Contains("atomicMax((int*)scales + (long long)bh * 128 + c, block_max[c]);", channel, StringComparison.Ordinal);
        Assert.Contains("const float* const sc = scales + (long long)bh * 128 + chunk * 8;", channel, StringComparison.Ordinal);
        Assert.DoesNotContain("warp_max[", channel, StringComparison.Ordinal);
    }

    [Fact]
    public void SubtractChannelMean_adds_the_mean_kernel_and_subtracts_it_everywhere()
    {
        var plain = Cuda(Spec());
        Assert.DoesNotContain("_channel_mean", plain, StringComparison.Ordinal);
        Assert.Contains("return __fmul_rn(x, mul);", plain, StringComparison.Ordinal);

        var smoothed = Cuda(Spec() with { SubtractChannelMean = true });
        Assert.Equal([Prefix + "_channel_mean", Prefix + "_quantize"], KernelNames(smoothed));
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
        Assert.Contains("const float* __restrict__ scales, int s_pad)", transposed, StringComparison.Ordinal);
        Assert.Contains("kdsl_st16(out + ((long long)bh * 128 + c) * s_pad + p0, packed[0], packed[1], packed[2], packed[3]);", transposed, StringComparison.Ordinal);
        Assert.Contains("S_pad = S rounded up to 32", transposed, StringComparison.Ordinal);
        Assert.DoesNotContain("kdsl_st8(", transposed, StringComparison.Ordinal);
    }

    [Fact]
    public void TransposedOrder_sets_which_token_each_position_holds()
    {
        var spec = Spec() with { Granularity = QuantGranularity.PerChannel, Transposed = true };
        var pi = Cuda(spec with { TransposedOrder = TokenOrder.Pi });
        Assert.Contains("holds token [0, 1, 8, 9, 2, 3, 10, 11, 4, 5, 12, 13, 6, 7, 14, 15][p]", pi, StringComparison.Ordinal);
        Assert.Contains("if (p0 + 8 < S) packed[0] |=", pi, StringComparison.Ordinal);
        Assert.Contains("// position 2 <- token 8", pi, StringComparison.Ordinal);
        Assert.Contains("// position 15 <- token 15", pi, StringComparison.Ordinal);

        var natural = Cuda(spec with { TransposedOrder = TokenOrder.Natural });
        Assert.Contains("// position 2 <- token 2", natural, StringComparison.Ordinal);
        Assert.DoesNotContain("// position 2 <- token 8", natural, StringComparison.Ordinal);
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
        Assert.Contains("global::KernelDsl.DeviceBuffer<ushort> x, long strideB, long strideH, long strideS, int batch, int heads, int tokens, global::KernelDsl.DeviceBuffer<sbyte> output, global::KernelDsl.DeviceBuffer<float> scales, global::KernelDsl.DeviceBuffer<float> channelMean, float scaleMultiplier = 1f)", launcher, StringComparison.Ordinal);
        Assert.Contains("public const int MeanSlices = 16;", launcher, StringComparison.Ordinal);
        Assert.Contains("LaunchGuard.MultipleOf(strideS, 8, nameof(strideS)", launcher, StringComparison.Ordinal);

        var transposed = KernelGenerator.Emit(Spec() with { Granularity = QuantGranularity.PerChannel, Transposed = true })[1].Text;
        Assert.Contains("StoredTokenOrder => [0, 1, 8, 9, 2, 3, 10, 11, 4, 5, 12, 13, 6, 7, 14, 15];", transposed, StringComparison.Ordinal);
        Assert.Contains("global::KernelDsl.DeviceBuffer<global::System.Half> x", transposed, StringComparison.Ordinal);
        Assert.DoesNotContain("channelMean", transposed, StringComparison.Ordinal);
    }
}
