using System.Reflection;
using KernelDsl;
using KernelDsl.Attention.FlashAttention;

namespace AttentionTests.FlashAttention;

/// <summary>
/// The attention kernel reads one Q scale per QScaleRows rows and one K scale per KScaleKeys keys, so the declarations and the
/// quantize kernels that feed them must agree; these tests keep the numbers typed in separate places in step.
/// </summary>
public class TileCouplingTests
{
    private static readonly Assembly Library = typeof(Int8Attention).Assembly;

    private static int Constant(Type type, string name) => (int)type.GetField(name, BindingFlags.Public | BindingFlags.Static)!.GetValue(null)!;

    [Fact]
    public void Every_attention_declaration_uses_the_host_apis_tiles()
    {
        // Every generated attention kernel type (declared, or a family's) has an Info; forms of families have none.
        var declared = Library.GetTypes().Where(t => t.GetProperty("Info", BindingFlags.Public | BindingFlags.Static)?.PropertyType == typeof(KernelDsl.Launching.AttentionKernelInfo)).ToList();
        Assert.NotEmpty(declared);
        Assert.All(declared, t =>
        {
            // A kernel that quantizes Q itself scales each row; the others read the Q quantize kernels' scales.
            var quantizesQ = (bool)t.GetField("QuantizesQ", BindingFlags.Public | BindingFlags.Static)!.GetValue(null)!;
            Assert.Equal(quantizesQ ? 1 : AttentionVariant.QScaleRows, Constant(t, "QScaleRows"));
            Assert.Equal(AttentionVariant.KScaleKeys, Constant(t, "KScaleKeys"));
        });
        Assert.DoesNotContain(Library.GetTypes(), t => t.DeclaringType?.GetCustomAttribute<AttentionFormsAttribute>() is not null && t.GetProperty("Info") is not null);
        // ...and every one is in the catalog the host API selects from.
        Assert.Equal(declared.Count, AttentionVariant.Catalog.Count(v => v.Kernel.Name.StartsWith("KernelDsl.Attention.", StringComparison.Ordinal)));
    }

    [Fact]
    public void Q_and_K_quantize_kernels_scale_per_QScaleRows_and_KScaleKeys_rows()
    {
        var quantizers = Library.GetTypes().Where(t => t.GetCustomAttribute<QuantizeAttribute>() is { } a && a.Granularity == QuantGranularity.PerRowBlock).ToList();
        Assert.All(quantizers.Where(t => t.Name.StartsWith("QuantizeQ", StringComparison.Ordinal)), t => Assert.Equal(AttentionVariant.QScaleRows, Constant(t, "BlockRows")));
        Assert.All(quantizers.Where(t => t.Name.StartsWith("QuantizeK", StringComparison.Ordinal)), t => Assert.Equal(AttentionVariant.KScaleKeys, Constant(t, "BlockRows")));
    }

    [Theory]
    [InlineData(128)]
    [InlineData(64)]
    public void The_host_api_sizes_scales_like_the_kernels_read_them(int headDim)
    {
        foreach (var quantizers in new object[] { Quantizers<Half>.For(headDim), Quantizers<ushort>.For(headDim) })
        {
            var (q, k) = quantizers switch
            {
                Quantizers<Half> h => (h.QScaleCount, h.KScaleCount),
                Quantizers<ushort> u => (u.QScaleCount, u.KScaleCount),
                _ => throw new InvalidOperationException(),
            };
            // The kernel reads q_scale[bh · ceil(Sq/QScaleRows) + m0 / QScaleRows] and k_scale[bhk · ceil(Sk/KScaleKeys) + key / KScaleKeys].
            Assert.Equal(2L * 3 * ((300 + AttentionVariant.QScaleRows - 1) / AttentionVariant.QScaleRows), q(2, 3, 300));
            Assert.Equal(2L * 3 * ((300 + AttentionVariant.KScaleKeys - 1) / AttentionVariant.KScaleKeys), k(2, 3, 300));
        }
    }

    [Fact]
    public void Every_pretransposed_variant_has_a_transposing_V_quantizer()
    {
        foreach (var variant in AttentionVariant.All.Where(v => v.V == VStrategy.Pretransposed))
        {
            var (vPi, padded) = variant.Input == Element.F16
                ? ((object?)Quantizers<Half>.For(variant.HeadDim).VPi, (object?)Quantizers<Half>.For(variant.HeadDim).VPiPaddedTokens)
                : (Quantizers<ushort>.For(variant.HeadDim).VPi, Quantizers<ushort>.For(variant.HeadDim).VPiPaddedTokens);
            Assert.NotNull(vPi);
            Assert.NotNull(padded);
        }
    }

    [Fact]
    public void The_codes_pass_writes_V_in_the_per_operand_kernels_layout()
    {
        // Int8Attention sizes the π-transposed V by VPiPaddedTokens and the attention kernels read it in that token order,
        // whichever kernel wrote it.
        Assert.Equal(KernelDsl.Attention.Quantization.QuantizeVChannelPiD128.TransposePad, KernelDsl.Attention.Quantization.KvCodesPiD128.TransposePad);
        Assert.Equal(KernelDsl.Attention.Quantization.QuantizeVChannelPiD64.TransposePad, KernelDsl.Attention.Quantization.KvCodesPiD64.TransposePad);
        Assert.Equal(KernelDsl.Attention.Quantization.QuantizeVChannelPiD128E4m3.TransposePad, KernelDsl.Attention.Quantization.KvCodesPiD128E4m3.TransposePad);
        Assert.Equal(KernelDsl.Attention.Quantization.QuantizeVChannelPiD128.StoredTokenOrder.ToArray(), KernelDsl.Attention.Quantization.KvCodesPiD128.StoredTokenOrder.ToArray());
        Assert.Equal(KernelDsl.Attention.Quantization.QuantizeVChannelPiD64E4m3Bf16.StoredTokenOrder.ToArray(), KernelDsl.Attention.Quantization.KvCodesPiD64E4m3Bf16.StoredTokenOrder.ToArray());
        // K's scales: one per AttentionVariant.KScaleKeys keys, as the attention kernels read them.
        Assert.Equal(AttentionVariant.KScaleKeys, KernelDsl.Attention.Quantization.KvCodesD128.KScaleKeys);
        Assert.Equal(AttentionVariant.KScaleKeys, KernelDsl.Attention.Quantization.KvCodesPiD64.KScaleKeys);
    }
}
