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
            var options = new AttentionOptions { Causal = variant.Causal, Pv = variant.Pv, V = variant.V, Tile = variant.Tile };
            Assert.Equal(variant, Int8Attention.Select(variant.Input, variant.HeadDim, options));
        }
        Assert.Equal(AttentionVariant.All.Count, AttentionVariant.All.Select(v => (v.Input, v.HeadDim, v.Causal, v.Pv, v.V, v.Tile)).Distinct().Count());
    }

    [Fact]
    public void Without_a_tile_the_first_declared_configuration_is_the_default()
    {
        var options = new AttentionOptions { V = VStrategy.Pretransposed };
        var tiles = Int8Attention.TilesFor(Element.F16, 128, options);
        Assert.Equal(["128×64 / 8 warps / 2 stages / 1 block/SM", "128×64 / 8 warps / 3 stages / 1 block/SM", "64×64 / 4 warps / 2 stages / 2 blocks/SM",
            "128×128 / wgmma 1+2 warpgroups / 3 stages", "128×128 / wgmma 1+2 warpgroups / 2 stages", "128×128 / wgmma 1+2 warpgroups pingpong / 2 stages",
            "128×128 / wgmma 1+2 warpgroups persistent / 3 stages", "128×128 / wgmma 1+2 warpgroups / 3 stages / Q per row in kernel",
            "128×128 / wgmma 1+2 warpgroups persistent / 3 stages / Q per row in kernel", "64×128 / wgmma 1+1 warpgroup / 3 stages / 2 blocks/SM / Q per row in kernel"], tiles);
        Assert.Equal(tiles[0], Int8Attention.Select(Element.F16, 128, options).Tile);
        Assert.Equal(tiles[1], Int8Attention.Select(Element.F16, 128, options with { Tile = tiles[1] }).Tile);
        Assert.Equal("128×64 / 8 warps / 2 stages / 2 blocks/SM", Int8Attention.Select(Element.F16, 64, new AttentionOptions()).Tile);
        var error = Assert.Throws<ArgumentException>(() => Int8Attention.Select(Element.F16, 128, options with { Tile = "64×64 / 4 warps" }));
        Assert.Contains("[128×64 / 8 warps / 3 stages / 1 block/SM]", error.Message);
    }

    [Fact]
    public void The_default_kernel_is_the_first_built_for_the_devices_own_architecture()
    {
        // No V strategy and no tile: on an H100 the three-stage wgmma kernel (Pretransposed V), elsewhere the first declared.
        var plain = new AttentionOptions();
        Assert.Equal(typeof(Int8AttentionD128WgmmaStages3).FullName, Int8Attention.Select(Element.F16, 128, plain, computeCapability: 90).Kernel.Name);
        Assert.Equal(Int8AttentionD128WgmmaStages3.Causal.Info.Name, Int8Attention.Select(Element.F16, 128, plain with { Causal = true }, computeCapability: 90).Kernel.Name);
        Assert.Equal(typeof(Int8AttentionD64Wgmma).FullName, Int8Attention.Select(Element.F16, 64, plain, computeCapability: 90).Kernel.Name);
        foreach (var cc in new[] { 80, 86, 89 })
        {
            Assert.Equal(typeof(Int8AttentionD128TransPrmt).FullName, Int8Attention.Select(Element.F16, 128, plain, computeCapability: cc).Kernel.Name);
        }
        // BF16 has no wgmma kernel: the H100 runs the first declared one; a strategy given is kept.
        Assert.Equal(VStrategy.TransPrmt, Int8Attention.Select(Element.BF16, 128, plain, computeCapability: 90).V);
        Assert.Equal(VStrategy.Movmatrix, Int8Attention.Select(Element.F16, 128, plain with { V = VStrategy.Movmatrix }, computeCapability: 90).V);
        // A strategy given keeps declaration order: Pretransposed alone is still the mma.sync kernel, wgmma is asked for by tile.
        Assert.DoesNotContain("wgmma", Int8Attention.Select(Element.F16, 128, plain with { V = VStrategy.Pretransposed }, computeCapability: 90).Tile, StringComparison.Ordinal);
        var hopperTiles = Int8Attention.TilesFor(Element.F16, 128, plain, computeCapability: 90);
        Assert.Equal(Int8AttentionD128WgmmaStages3.Tile, hopperTiles[0]);
        Assert.Equal(hopperTiles.Count, hopperTiles.Distinct().Count());
        Assert.DoesNotContain(Int8Attention.TilesFor(Element.F16, 128, plain, computeCapability: 80), t => t.Contains("wgmma", StringComparison.Ordinal));
        // A tile named with no strategy: the first declared kernel of that tile, whichever strategy it reads V with.
        Assert.Equal(VStrategy.TransPrmt, Int8Attention.Select(Element.F16, 128, plain with { Tile = "128×64 / 8 warps / 2 stages / 1 block/SM" }, computeCapability: 90).V);
    }

    [Fact]
    public void A_mode_declared_only_for_hopper_is_refused_on_other_devices_before_any_work()
    {
        var options = new AttentionOptions { V = VStrategy.InKernelTranspose };
        Assert.Contains("wgmma", Int8Attention.Select(Element.F16, 128, options, computeCapability: 90).Tile);
        var error = Assert.Throws<ArgumentException>(() => Int8Attention.Select(Element.F16, 128, options, computeCapability: 80));
        Assert.Equal("options", error.ParamName);
        Assert.Contains("built for sm_90a; this device is sm_80", error.Message);
        Assert.Contains("runs no declared tile of this mode", error.Message);
        // A wgmma tile asked for by name on an Ada card: the tiles it can run instead are named.
        var wgmmaTile = Int8Attention.TilesFor(Element.F16, 128, new AttentionOptions { V = VStrategy.Pretransposed }).Last(t => t.Contains("wgmma", StringComparison.Ordinal));
        var ada = Assert.Throws<ArgumentException>(() => Int8Attention.Select(Element.F16, 128, new AttentionOptions { V = VStrategy.Pretransposed, Tile = wgmmaTile }, computeCapability: 89));
        Assert.Contains("[128×64 / 8 warps / 2 stages / 1 block/SM]", ada.Message);
        Assert.DoesNotContain(Int8Attention.TilesFor(Element.F16, 128, new AttentionOptions { V = VStrategy.Pretransposed }, computeCapability: 89), t => t.Contains("wgmma", StringComparison.Ordinal));
    }

    [Fact]
    public void An_undeclared_combination_names_the_options_and_lists_what_is_declared()
    {
        var error = Assert.Throws<ArgumentException>(() => Int8Attention.Select(Element.F16, 64, new AttentionOptions { V = VStrategy.Movmatrix }));
        Assert.Equal("options", error.ParamName);
        Assert.Contains("Declared:", error.Message);
        Assert.Contains("F16 D=128 U8 Movmatrix", error.Message);
        // Unset members read as defaults, not as blanks.
        var unset = Assert.Throws<ArgumentException>(() => Int8Attention.Select(Element.F16, 80, new AttentionOptions()));
        Assert.Contains("V = default, Tile = default, SoftmaxScale = 1/√D", unset.Message);
    }

    [Fact]
    public void Autotuning_candidates_are_the_declared_int8_strategies_and_tiles()
    {
        const string two = "128×64 / 8 warps / 2 stages / 1 block/SM", three = "128×64 / 8 warps / 3 stages / 1 block/SM";
        const string half = "64×64 / 4 warps / 2 stages / 2 blocks/SM";
        string[] d128 = [$"TransPrmt | {two}", $"Movmatrix | {two}", $"Pretransposed | {two}", $"TransPrmt | {three}", $"Pretransposed | {three}", $"Pretransposed | {half}", $"TransPrmt | {half}"];
        // An A100 (sm_80) gets the mma.sync tiles; an H100 (sm_90) also the wgmma form, which runs on sm_90a alone.
        Assert.Equal(d128, Int8Attention.TuningCandidates(Element.F16, 128, causal: false, computeCapability: 80));
        Assert.Equal(d128, Int8Attention.TuningCandidates(Element.F16, 128, causal: true, computeCapability: 80));
        string[] wgmma = ["Pretransposed | 128×128 / wgmma 1+2 warpgroups / 3 stages", "Pretransposed | 128×128 / wgmma 1+2 warpgroups / 2 stages",
            "Pretransposed | 128×128 / wgmma 1+2 warpgroups pingpong / 2 stages", "Pretransposed | 128×128 / wgmma 1+2 warpgroups persistent / 3 stages",
            "InKernelTranspose | 128×128 / wgmma 1+2 warpgroups / 3 stages",
            "Pretransposed | 128×128 / wgmma 1+2 warpgroups / 3 stages / Q per row in kernel", "Pretransposed | 128×128 / wgmma 1+2 warpgroups persistent / 3 stages / Q per row in kernel",
            "Pretransposed | 64×128 / wgmma 1+1 warpgroup / 3 stages / 2 blocks/SM / Q per row in kernel"];
        Assert.Equal([.. d128, .. wgmma], Int8Attention.TuningCandidates(Element.F16, 128, causal: false, computeCapability: 90));
        Assert.Equal([.. d128, .. wgmma], Int8Attention.TuningCandidates(Element.F16, 128, causal: true, computeCapability: 90));
        Assert.Equal(["TransPrmt | 128×64 / 8 warps / 2 stages / 2 blocks/SM", "TransPrmt | 128×64 / 8 warps / 3 stages / 1 block/SM"],
            Int8Attention.TuningCandidates(Element.F16, 64, causal: false, computeCapability: 89));
        Assert.Equal(["TransPrmt | 128×64 / 8 warps / 2 stages / 2 blocks/SM", "TransPrmt | 128×64 / 8 warps / 3 stages / 1 block/SM", "Pretransposed | 128×128 / wgmma 1+2 warpgroups / 3 stages",
            "Pretransposed | 128×128 / wgmma 1+2 warpgroups persistent / 3 stages",
            "Pretransposed | 128×128 / wgmma 1+2 warpgroups / 3 stages / Q per row in kernel", "Pretransposed | 128×128 / wgmma 1+2 warpgroups persistent / 3 stages / Q per row in kernel",
            "Pretransposed | 64×128 / wgmma 1+1 warpgroup / 3 stages / 2 blocks/SM / Q per row in kernel"],
            Int8Attention.TuningCandidates(Element.F16, 64, causal: false, computeCapability: 90));
        Assert.Equal([$"TransPrmt | {two}"], Int8Attention.TuningCandidates(Element.BF16, 128, causal: true, computeCapability: 90));
        Assert.Empty(Int8Attention.TuningCandidates(Element.F16, 128, causal: false, computeCapability: 75));
        foreach (var candidate in Int8Attention.TuningCandidates(Element.F16, 128, causal: false, computeCapability: 90))
        {
            var (strategy, tile) = Int8Attention.ParseCandidate(candidate);
            Assert.Equal(candidate, $"{strategy} | {tile}");
        }
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

    [Fact]
    public void Kernels_whose_score_modifier_reads_float_positions_declare_their_longest_sequence()
    {
        // ALiBi's slopes[h]·(k − q) is spelled over exact float positions, which hold below 2^24: the catalog says so, and
        // Int8Attention refuses longer sequences before any work. Softcap and the masks read no position as a float.
        var kernels = Int8Attention.Kernels.Where(k => k.Name.StartsWith("KernelDsl.Attention.FlashAttention.", StringComparison.Ordinal)).ToList();
        var alibi = kernels.Where(k => k.Name.Contains(".Alibi.", StringComparison.Ordinal)).ToList();
        Assert.NotEmpty(alibi);
        Assert.All(alibi, k => Assert.Equal(1 << 22, k.MaxSequence));
        Assert.All(kernels.Except(alibi), k => Assert.Equal(int.MaxValue, k.MaxSequence));
    }
}
