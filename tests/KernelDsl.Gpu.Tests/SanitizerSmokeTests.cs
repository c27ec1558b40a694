using GpuTests.Attention;
using GpuTests.Gemm;
using GpuTests.Quantization;
using KernelDsl.Attention.FlashAttention;

namespace GpuTests;

/// <summary>
/// Every declared kernel once, at small shapes that still cross every tail and pipeline path (several KV blocks,
/// several k tiles, partial tiles). compute-sanitizer racecheck and synccheck run this class: they slow shared-memory
/// kernels by orders of magnitude, so the full suite runs under memcheck only.
/// </summary>
public class SanitizerSmokeTests(ITestOutputHelper output)
{
    [Fact]
    public void Every_gemm_variant_once()
    {
        foreach (var variant in new[] { "TN", "NNTransPrmt", "NNMovmatrix", "NNPretransposed", "NNScaledF16" })
        {
            new Int8GemmGpuTests().Variant_equals_the_exact_cpu_product(variant, 70, 40, 200);
        }
    }

    [Fact]
    public void Every_quantize_variant_once()
    {
        foreach (var name in new[] { "QBlock128D128", "KSmoothBlock64D128", "VChannelD128", "VChannelPiD128", "VChannelPiD64", "QBlock128D128Bf16", "KSmoothBlock64D128Bf16", "QBlock128D64", "KSmoothBlock64D64", "VChannelD64", "QBlock128D64Bf16", "KSmoothBlock64D64Bf16", "VChannelD128Bf16", "VChannelD64Bf16" })
        {
            new QuantizeGpuTests().Variant_matches_the_cpu_reference_bit_for_bit(name, 1, 2, 150, true, true);
            new QuantizeGpuTests().The_count_is_the_number_of_NaN_and_Inf_planted_and_the_codes_are_unchanged(name);
        }
    }

    [Fact]
    public void Every_kv_statistics_and_codes_variant_once()
    {
        int computeCapability;
        using (var device = KernelDsl.Runtime.Tests.Gpu.OpenOrSkip())
        {
            computeCapability = device.ComputeCapability;
        }
        var tests = new KvStatisticsGpuTests();
        foreach (var name in KvStatisticsGpuTests.NamesRunningOn(computeCapability))
        {
            // Two slices, a ragged K tile and π padding; K and V in different layouts.
            tests.Statistics_and_codes_match_the_cpu_reference_bit_for_bit(name, 1, 2, 300, true, true);
        }
        tests.Without_V_the_pass_writes_K_s_mean_alone_and_V_s_scales_are_1(false);
    }

    [Fact]
    public void Every_attention_variant_once()
    {
        var tests = new Int8AttentionGpuTests(output);
        int computeCapability;
        using (var device = KernelDsl.Runtime.Tests.Gpu.OpenOrSkip())
        {
            computeCapability = device.ComputeCapability;
        }
        // The wgmma form runs on sm_90 alone; elsewhere the rest still runs.
        foreach (var v in AttentionVariant.All.Where(v => v.RunsOn(computeCapability)))
        {
            tests.Small(v.Input, v.HeadDim, v.Causal, v.Pv, v.V, v.Tile);
        }
        tests.Split_kv_partials_merged_by_their_lse_match_full_attention(64);
    }

    [Fact]
    public void Every_attention_kernel_with_modifiers_once()
    {
        var tests = new Attention.ModifierVariantGpuTests(output);
        foreach (var row in Attention.ModifierVariantGpuTests.Kernels())
        {
            tests.Small((string)row.Data);
        }
    }

    [Fact]
    public void Every_paged_decode_variant_once()
    {
        var tests = new KvCache.PagedDecodeGpuTests(output);
        foreach (var (headDim, input) in new[] { (128, KernelDsl.Element.F16), (128, KernelDsl.Element.BF16), (64, KernelDsl.Element.F16) })
        {
            tests.Small(headDim, input);
        }
        IReadOnlyList<KernelDsl.Launching.PagedDecodeKernel<System.Half>> configurations;
        using (var device = KernelDsl.Runtime.Tests.Gpu.OpenOrSkip())
        {
            configurations = KernelDsl.Attention.KvCache.PagedKvCache.Configurations<System.Half>(128, KernelDsl.Element.F16, device);
        }
        foreach (var configuration in configurations.Skip(1))
        {
            tests.Small(128, KernelDsl.Element.F16, configuration);
        }
        var modifiers = new KvCache.PagedDecodeModifierGpuTests(output);
        foreach (var modifier in new[] { "window 20", "window 150", "alibi", "softcap" })
        {
            modifiers.Small(modifier);
        }
    }
}
