using KernelDsl;
using KernelDsl.Attention.FlashAttention;

namespace AttentionTests.FlashAttention;

/// <summary>How the host API picks a declared variant and what it tunes over — CPU-side, no GPU needed.</summary>
public class VariantSelectionTests
{
    [Fact]
    public void Every_declared_combination_is_selectable_and_unique()
    {
        foreach (var variant in AttentionVariant.All)
        {
            var options = new AttentionOptions { Causal = variant.Causal, Pv = variant.Pv, V = variant.V };
            Assert.Same(variant, Int8Attention.Select(variant.Input, variant.HeadDim, options));
        }
        Assert.Equal(AttentionVariant.All.Count, AttentionVariant.All.Select(v => (v.Input, v.HeadDim, v.Causal, v.Pv, v.V)).Distinct().Count());
    }

    [Fact]
    public void An_undeclared_combination_names_the_options_and_lists_what_is_declared()
    {
        var error = Assert.Throws<ArgumentException>(() => Int8Attention.Select(Element.F16, 64, new AttentionOptions { V = VStrategy.Movmatrix }));
        Assert.Equal("options", error.ParamName);
        Assert.Contains("Declared:", error.Message);
        Assert.Contains("F16 D=128 U8 Movmatrix", error.Message);
    }

    [Fact]
    public void Autotuning_candidates_are_the_declared_int8_strategies()
    {
        Assert.Equal(["TransPrmt", "Movmatrix", "Pretransposed"], Int8Attention.TuningCandidates(Element.F16, 128, causal: false));
        Assert.Equal(["TransPrmt", "Movmatrix", "Pretransposed"], Int8Attention.TuningCandidates(Element.F16, 128, causal: true));
        Assert.Equal(["TransPrmt"], Int8Attention.TuningCandidates(Element.F16, 64, causal: false));
        Assert.Equal(["TransPrmt"], Int8Attention.TuningCandidates(Element.BF16, 128, causal: true));
    }

    [Fact]
    public void The_tuning_key_separates_every_thing_that_changes_the_winner()
    {
        var shape = new AttentionDims(2, 16, 4, 4096, 4096, 128);
        var key = Int8Attention.TuningKey("sm_90", "NVIDIA H100 80GB HBM3", Element.F16, shape, causal: true);
        Assert.Contains("sm_90", key);
        Assert.Contains("H100", key);
        Assert.NotEqual(key, Int8Attention.TuningKey("sm_90", "NVIDIA H100 80GB HBM3", Element.F16, shape, causal: false));
        Assert.NotEqual(key, Int8Attention.TuningKey("sm_90", "NVIDIA H100 80GB HBM3", Element.BF16, shape, causal: true));
        Assert.NotEqual(key, Int8Attention.TuningKey("sm_90", "NVIDIA H100 80GB HBM3", Element.F16, shape with { SeqK = 8192 }, causal: true));
        Assert.NotEqual(key, Int8Attention.TuningKey("sm_90", "NVIDIA H200", Element.F16, shape, causal: true));
    }
}
