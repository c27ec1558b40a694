using System.Reflection;
using KernelDsl;
using KernelDsl.Attention.FlashAttention;

namespace AttentionTests.FlashAttention;

/// <summary>
/// The attention kernel reads one Q scale per BlockM rows and one K scale per BlockN keys, so the declarations and the
/// quantize kernels that feed them must agree; these tests keep the numbers typed in separate places in step.
/// </summary>
public class TileCouplingTests
{
    private static readonly Assembly Library = typeof(Int8Attention).Assembly;

    private static int Constant(Type type, string name) => (int)type.GetField(name, BindingFlags.Public | BindingFlags.Static)!.GetValue(null)!;

    [Fact]
    public void Every_attention_declaration_uses_the_host_apis_tiles()
    {
        var declared = Library.GetTypes().Where(t => t.GetCustomAttribute<FlashAttentionForwardAttribute>() is not null).ToList();
        Assert.NotEmpty(declared);
        Assert.All(declared, t =>
        {
            Assert.Equal(AttentionVariant.BlockM, Constant(t, "BlockM"));
            Assert.Equal(AttentionVariant.BlockN, Constant(t, "BlockN"));
        });
        Assert.Equal(declared.Count, AttentionVariant.All.Count);
    }

    [Fact]
    public void Q_and_K_quantize_kernels_scale_per_BlockM_and_BlockN_rows()
    {
        var quantizers = Library.GetTypes().Where(t => t.GetCustomAttribute<QuantizeAttribute>() is { } a && a.Granularity == QuantGranularity.PerRowBlock).ToList();
        Assert.All(quantizers.Where(t => t.Name.StartsWith("QuantizeQ", StringComparison.Ordinal)), t => Assert.Equal(AttentionVariant.BlockM, Constant(t, "BlockRows")));
        Assert.All(quantizers.Where(t => t.Name.StartsWith("QuantizeK", StringComparison.Ordinal)), t => Assert.Equal(AttentionVariant.BlockN, Constant(t, "BlockRows")));
    }

    [Fact]
    public void Every_pretransposed_variant_has_a_transposing_V_quantizer()
    {
        foreach (var variant in AttentionVariant.All.Where(v => v.V == VStrategy.Pretransposed))
        {
            var vPi = variant.Input == Element.F16 ? (object?)Quantizers<Half>.For(variant.HeadDim).VPi : Quantizers<ushort>.For(variant.HeadDim).VPi;
            Assert.NotNull(vPi);
        }
    }
}
