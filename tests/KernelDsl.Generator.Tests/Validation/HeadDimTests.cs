using GeneratorTests.Infrastructure;
using Microsoft.CodeAnalysis;

namespace GeneratorTests.Validation;

/// <summary>
/// Head dims 96 and 256 (docs/HEAD_DIMS.md): the mma.sync form takes both, with tiles and swizzles the validator accepts;
/// the wgmma form refuses both with a KDSL0003 that names the reason; and the limits that shaped the declared tiles.
/// </summary>
public class HeadDimTests
{
    /// <summary>The declared D = 96 form (Int8AttentionD96TransPrmt): 64-row blocks of 4 warps, Swizzle(1,4,3) on 96-byte rows.</summary>
    private const string D96 = """
        using KernelDsl;
        namespace Users;
        [FlashAttentionForward(HeadDim = 96, BlockM = 64, QScaleRows = 128, BlockN = 64, Warps = 4, Stages = 2, MinBlocksPerSm = 2)]
        [SmemLayout(Operand.Q, Element.S8, 1, 4, 3)]
        [SmemLayout(Operand.K, Element.S8, 1, 4, 3)]
        [SmemLayout(Operand.V, Element.S8, 1, 4, 3)]
        [CopyAtom(Operand.Q, CopyAtoms.Ldsm)]
        [CopyAtom(Operand.K, CopyAtoms.Ldsm)]
        [CopyAtom(Operand.V, CopyAtoms.LdsmTransPrmt)]
        [MmaAtom(MmaAtoms.M16N8K32_S32S8S8)]
        [MmaAtom(MmaAtoms.M16N8K32_S32U8S8, Product = MmaProduct.PV)]
        public static partial class Attention;
        """;

    /// <summary>The declared D = 256 accuracy form (Int8AttentionD256F16PV): one stage, Swizzle(3,4,4) / (3,3,5) on 256- / 512-byte rows.</summary>
    private const string D256 = """
        using KernelDsl;
        namespace Users;
        [FlashAttentionForward(HeadDim = 256, BlockM = 128, BlockN = 64, Warps = 8, Stages = 1)]
        [SmemLayout(Operand.Q, Element.S8, 3, 4, 4)]
        [SmemLayout(Operand.K, Element.S8, 3, 4, 4)]
        [SmemLayout(Operand.V, Element.F16, 3, 3, 5)]
        [CopyAtom(Operand.Q, CopyAtoms.Ldsm)]
        [CopyAtom(Operand.K, CopyAtoms.Ldsm)]
        [CopyAtom(Operand.V, CopyAtoms.LdsmTrans)]
        [MmaAtom(MmaAtoms.M16N8K32_S32S8S8)]
        [MmaAtom(MmaAtoms.M16N8K16_F32F16F16, Product = MmaProduct.PV)]
        public static partial class Attention;
        """;

    /// <summary>The D = 128 wgmma declaration of Int8AttentionVariants.cs; each test changes its head dim.</summary>
    private const string Wgmma = """
        using KernelDsl;
        namespace Users;
        [FlashAttentionForward(HeadDim = 128, BlockM = 128, BlockN = 128, KScaleKeys = 64, Warps = 12, Stages = 2, Targets = [Sm.Sm90a])]
        [SmemLayout(Operand.Q, Element.S8, 3, 4, 3)]
        [SmemLayout(Operand.K, Element.S8, 3, 4, 3)]
        [SmemLayout(Operand.V, Element.S8, 3, 4, 3)]
        [CopyAtom(Operand.Q, CopyAtoms.Tma)]
        [CopyAtom(Operand.K, CopyAtoms.Tma)]
        [CopyAtom(Operand.V, CopyAtoms.Tma)]
        [CopyAtom(Operand.V, CopyAtoms.LdsmPretransposed)]
        [MmaAtom(MmaAtoms.Wgmma_M64N128K32_S32S8S8)]
        [MmaAtom(MmaAtoms.Wgmma_M64N128K32_S32U8S8_RS, Product = MmaProduct.PV)]
        public static partial class HopperAttention;
        """;

    private static Diagnostic Single(string source, string id)
    {
        var run = GeneratorHarness.RunGenerator(source);
        var matching = run.GeneratorDiagnostics.Where(d => d.Id == id).ToList();
        Assert.True(matching.Count == 1, $"expected one {id}, got: {string.Join(" | ", run.GeneratorDiagnostics.Select(d => d.ToString()))}");
        return matching[0];
    }

    [Theory]
    [InlineData(D96)]
    [InlineData(D256)]
    public void The_declared_head_dim_96_and_256_forms_are_clean_and_compile(string source)
    {
        var run = GeneratorHarness.RunGenerator(source);
        Assert.Empty(run.GeneratorDiagnostics);
        Assert.Empty(run.CompilationErrors);
        Assert.Contains(run.Sources, s => s.HintName == "Users.Attention.g.cs");
    }

    [Fact]
    public void KDSL0003_wgmma_head_dim_96_names_the_TMA_swizzle_widths()
    {
        var d = Single(Wgmma.Replace("HeadDim = 128", "HeadDim = 96"), "KDSL0003");
        Assert.Contains("FlashAttentionForward.HeadDim = 96", d.GetMessage());
        Assert.Contains("rows of 96 bytes have no TMA/wgmma swizzle (those are 32, 64 and 128 bytes wide)", d.GetMessage());
        Assert.Contains("use the mma.sync form for head dim 96", d.GetMessage());
    }

    [Fact]
    public void KDSL0003_wgmma_head_dim_256_names_the_swizzle_the_PV_wgmma_and_the_registers()
    {
        var d = Single(Wgmma.Replace("HeadDim = 128", "HeadDim = 256"), "KDSL0003");
        Assert.Contains("FlashAttentionForward.HeadDim = 256", d.GetMessage());
        Assert.Contains("wider than the 128-byte swizzle", d.GetMessage());
        Assert.Contains("N = 256 P·V wgmma", d.GetMessage());
        Assert.Contains("240-register setmaxnreg budget", d.GetMessage());
    }

    [Theory]
    [InlineData(160)]
    [InlineData(512)]
    public void KDSL0003_mma_sync_head_dims_other_than_64_96_128_256(int headDim)
    {
        var d = Single(D256.Replace("HeadDim = 256", $"HeadDim = {headDim}"), "KDSL0003");
        Assert.Contains($"FlashAttentionForward.HeadDim = {headDim}", d.GetMessage());
        Assert.Contains("64, 96, 128 and 256", d.GetMessage());
    }

    [Fact]
    public void KDSL0301_head_dim_96_on_8_warps_does_not_split_a_K_tile_over_the_threads()
    {
        // 64 keys × 96 bytes = 384 chunks of 16 bytes: 3 per thread over 128 threads, 1.5 over 256.
        var run = GeneratorHarness.RunGenerator(D96.Replace("BlockM = 64, QScaleRows = 128, BlockN = 64, Warps = 4", "BlockM = 128, BlockN = 64, Warps = 8"));
        var d = Assert.Single(run.GeneratorDiagnostics, d => d.Id == "KDSL0301" && d.GetMessage().Contains("the K tile", StringComparison.Ordinal));
        Assert.Contains("the K tile (6144 bytes) does not split into 16-byte chunks evenly over 256 threads", d.GetMessage());
    }

    [Fact]
    public void KDSL0103_head_dim_96_with_the_64_byte_row_swizzle_is_2_way_and_points_at_Swizzle_1_4_3()
    {
        var run = GeneratorHarness.RunGenerator(D96.Replace("[SmemLayout(Operand.K, Element.S8, 1, 4, 3)]", "[SmemLayout(Operand.K, Element.S8, 2, 4, 3)]"));
        var d = Assert.Single(run.GeneratorDiagnostics);
        Assert.Equal("KDSL0103", d.Id);
        Assert.Equal(DiagnosticSeverity.Warning, d.Severity);
        Assert.Contains("operand K (96-byte rows, Swizzle(2,4,3)) has 2-way bank conflicts; Swizzle(1,4,3) brings it to 1-way", d.GetMessage());
    }

    [Fact]
    public void KDSL0103_head_dim_256_with_the_128_byte_row_swizzle_conflicts()
    {
        var run = GeneratorHarness.RunGenerator(D256.Replace("[SmemLayout(Operand.Q, Element.S8, 3, 4, 4)]", "[SmemLayout(Operand.Q, Element.S8, 3, 4, 3)]"));
        var d = Assert.Single(run.GeneratorDiagnostics);
        Assert.Equal("KDSL0103", d.Id);
        Assert.Contains("operand Q (256-byte rows, Swizzle(3,4,3))", d.GetMessage());
    }

    [Fact]
    public void KDSL0201_head_dim_256_16_bit_PV_with_3_stages_is_over_sm_80s_shared_memory()
    {
        // Q 128×256 + 3 × (K 64×256 + f16 V 64×512) = 180224 bytes; sm_80 allows 166912 (sm_90 232448).
        var d = Single(D256.Replace("Stages = 1", "Stages = 3"), "KDSL0201");
        Assert.Contains("needs 180224 bytes", d.GetMessage());
        Assert.Contains("sm_80 allows at most 166912", d.GetMessage());
    }
}
