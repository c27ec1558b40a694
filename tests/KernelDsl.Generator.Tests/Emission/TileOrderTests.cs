using GeneratorTests.Generation;
using GeneratorTests.Infrastructure;

namespace GeneratorTests.Emission;

/// <summary>
/// The order query blocks run in. A persistent grid (AttentionPlan.LongestTilesFirst) runs closed-form masks longest
/// first across heads, and masks that read an array by head (run 76: prefix-LM 2.319 → 1.594 ms longest first,
/// documents 0.338 → 0.451 ms, so documents stay by head). The one-tile grid counts from the end for causal kernels only.
/// </summary>
public class TileOrderTests
{
    private const string Forms = """
        using System;
        using KernelDsl;
        namespace Users;
        [FlashAttentionForward(HeadDim = 128, BlockM = 128, BlockN = 128, KScaleKeys = 64, Warps = 12, Stages = 3, Targets = [Sm.Sm90a])]
        [SmemLayout(Operand.Q, Element.S8, 3, 4, 3)]
        [SmemLayout(Operand.K, Element.S8, 3, 4, 3)]
        [SmemLayout(Operand.V, Element.S8, 3, 4, 3)]
        [CopyAtom(Operand.Q, CopyAtoms.Tma)]
        [CopyAtom(Operand.K, CopyAtoms.Tma)]
        [CopyAtom(Operand.V, CopyAtoms.Tma)]
        [CopyAtom(Operand.V, CopyAtoms.LdsmPretransposed)]
        [MmaAtom(MmaAtoms.Wgmma_M64N128K32_S32S8S8)]
        [MmaAtom(MmaAtoms.Wgmma_M64N128K32_S32U8S8_RS, Product = MmaProduct.PV)]
        public static partial class Hopper;

        [AttentionForms]
        public static partial class HopperForms
        {
            [FlashAttentionForward(Like = typeof(Hopper))] public static partial class OneTile;
            [FlashAttentionForward(Like = typeof(Hopper), Persistent = true)] public static partial class Persistent;
        }

        """;

    private const string OneTileLongestFirst = "const int q_block = gridDim.x - 1 - blockIdx.x;";
    private const string PersistentLongestFirst = "const int tile_head = tile % (heads_q * batch), q_block = q_blocks - 1 - tile / (heads_q * batch);";
    private const string PersistentByHead = "const int tile_head = tile / q_blocks, q_block = tile % q_blocks;";

    [Theory]
    [InlineData("[MaskModifier] public static bool Visible(int b, int h, int q, int k, int prefix) => k < prefix || k <= q;", true)]
    [InlineData("[MaskModifier] public static bool Visible(int b, int h, int q, int k, int window) => k <= q && q - k < window;", true)]
    [InlineData("[MaskModifier] public static bool Visible(int b, int h, int q, int k, [Nondecreasing] ReadOnlySpan<int> documents) => documents[q] == documents[k] && k <= q;", false)]
    [InlineData("[ScoreModifier] public static float Cap(float score, int b, int h, int q, int k, float cap) => cap * MathF.Tanh(score / cap);", false)]
    public void On_a_persistent_grid_closed_form_masks_run_longest_first_and_array_masks_by_head(string modifier, bool longestFirst)
    {
        var run = GeneratorHarness.RunGenerator(Forms + $$"""
            [AttentionFamily(typeof(HopperForms))]
            public static partial class Variant
            {
                {{modifier}}
            }
            """);
        Assert.Empty(run.GeneratorDiagnostics);
        var oneTile = SnapshotTests.RawStringContent(run.Source("Users.Variant.OneTile.cu.g.cs"));
        var persistent = SnapshotTests.RawStringContent(run.Source("Users.Variant.Persistent.cu.g.cs"));
        Assert.DoesNotContain(OneTileLongestFirst, oneTile);  // not causal: the one-tile grid keeps blockIdx.x order
        Assert.Contains(longestFirst ? PersistentLongestFirst : PersistentByHead, persistent);
        Assert.DoesNotContain(longestFirst ? PersistentByHead : PersistentLongestFirst, persistent);
    }

    [Fact]
    public void Causal_kernels_run_longest_first_on_both_grids_whatever_their_mask_reads()
    {
        var run = GeneratorHarness.RunGenerator(Forms + """
            [AttentionFamily(typeof(HopperForms), Causal = true)]
            public static partial class Variant
            {
                [MaskModifier] public static bool Visible(int b, int h, int q, int k, [Nondecreasing] ReadOnlySpan<int> documents) => documents[q] == documents[k];
            }
            """);
        Assert.Empty(run.GeneratorDiagnostics);
        Assert.Contains(OneTileLongestFirst, SnapshotTests.RawStringContent(run.Source("Users.Variant.OneTile.cu.g.cs")));
        Assert.Contains(PersistentLongestFirst, SnapshotTests.RawStringContent(run.Source("Users.Variant.Persistent.cu.g.cs")));
    }
}
