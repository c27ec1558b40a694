using GeneratorTests.Infrastructure;
using Microsoft.CodeAnalysis;

namespace GeneratorTests.Generation;

/// <summary>Every KDSL diagnostic, raised by a real declaration through the generator, pointing at the right attribute.</summary>
public class DiagnosticTests
{
    /// <summary>A valid Recipe A GEMM; each test breaks one thing.</summary>
    private const string Valid = """
        using KernelDsl;
        namespace Users;
        [Int8Gemm(BlockM = 64, BlockN = 64, BlockK = 64, Warps = 4, Stages = 2, Layout = GemmLayout.NN)]
        [SmemLayout(Operand.A, Element.S8, 2, 4, 3)]
        [SmemLayout(Operand.B, Element.S8, 2, 4, 4)]
        [CopyAtom(Operand.A, CopyAtoms.Ldsm)]
        [CopyAtom(Operand.B, CopyAtoms.LdsmTransPrmt)]
        [MmaAtom(MmaAtoms.M16N8K32_S32S8S8)]
        public static partial class Gemm;
        """;

    private static readonly Dictionary<Diagnostic, string> Sources = [];

    private static Diagnostic Single(string source, string id, bool allowOthersOfSameId = false)
    {
        var run = GeneratorHarness.RunGenerator(source);
        var matching = run.GeneratorDiagnostics.Where(d => d.Id == id).ToList();
        Assert.True(matching.Count == 1 || (allowOthersOfSameId && matching.Count > 0),
            $"expected one {id}, got: {string.Join(" | ", run.GeneratorDiagnostics.Select(d => d.ToString()))}");
        // Whatever the error, the generated files (UnavailableKernelWriter's placeholders among them) compile: it is the one error.
        var generated = run.CompilationErrors.Where(e => e.Location.SourceTree?.FilePath.EndsWith(".g.cs", StringComparison.Ordinal) == true).ToList();
        Assert.True(generated.Count == 0, $"{id}: generated code does not compile: {string.Join(" | ", generated)}");
        lock (Sources)
        {
            Sources[matching[0]] = source;
        }
        return matching[0];
    }

    /// <summary>The source line the diagnostic points at.</summary>
    private static string LineOf(Diagnostic diagnostic)
    {
        string source;
        lock (Sources)
        {
            source = Sources[diagnostic];
        }
        return source.Split('\n')[diagnostic.Location.GetLineSpan().StartLinePosition.Line];
    }

    [Fact]
    public void The_valid_declaration_is_clean_and_compiles()
    {
        var run = GeneratorHarness.RunGenerator(Valid);
        Assert.Empty(run.GeneratorDiagnostics);
        Assert.Empty(run.CompilationErrors);
        Assert.Contains(run.Sources, s => s.HintName == "Users.Gemm.g.cs");
    }

    [Fact]
    public void KDSL0001_not_partial()
    {
        var d = Single(Valid.Replace("public static partial class Gemm;", "public static class Gemm { }"), "KDSL0001");
        Assert.Contains("add 'partial'", d.GetMessage());
        Assert.Contains("class Gemm", LineOf(d));
    }

    [Fact]
    public void KDSL0001_containing_type_not_partial()
    {
        var source = Valid.Replace("[Int8Gemm", "public static class Outer {\n[Int8Gemm").Replace("public static partial class Gemm;", "public static partial class Gemm { } }");
        var d = Single(source, "KDSL0001");
        Assert.Contains("containing type 'Outer'", d.GetMessage());
    }

    [Fact]
    public void KDSL0002_two_families()
    {
        var d = Single(Valid.Replace("[MmaAtom", "[Quantize]\n[MmaAtom"), "KDSL0002");
        Assert.Contains("[Int8Gemm] and [Quantize]", d.GetMessage());
    }

    [Fact]
    public void KDSL0003_invalid_parameter()
    {
        var d = Single(Valid.Replace("Warps = 4", "Warps = 3"), "KDSL0003");
        Assert.Contains("Int8Gemm.Warps = 3", d.GetMessage());
        Assert.Contains("[Int8Gemm(", LineOf(d));
    }

    [Theory]
    [InlineData(0, "FlashAttentionForward.MinBlocksPerSm = 0")]
    [InlineData(9, "FlashAttentionForward.MinBlocksPerSm = 9")]
    public void KDSL0003_blocks_per_sm_that_no_sm_holds(int blocks, string expected)
    {
        var d = Single(AttentionDeclaration.Replace("BLOCKS", blocks.ToString(System.Globalization.CultureInfo.InvariantCulture)), "KDSL0003");
        Assert.Contains(expected, d.GetMessage());
        Assert.Contains("2048 threads", d.GetMessage());
    }

    private const string AttentionDeclaration = """
            using KernelDsl;
            namespace Users;
            [FlashAttentionForward(HeadDim = 64, BlockM = 128, BlockN = 64, Warps = 8, Stages = 2, MinBlocksPerSm = BLOCKS)]
            [SmemLayout(Operand.Q, Element.S8, 3, 4, 3)]
            [SmemLayout(Operand.K, Element.S8, 3, 4, 3)]
            [SmemLayout(Operand.V, Element.S8, 3, 4, 3)]
            [CopyAtom(Operand.Q, CopyAtoms.Ldsm)]
            [CopyAtom(Operand.K, CopyAtoms.Ldsm)]
            [CopyAtom(Operand.V, CopyAtoms.LdsmTransPrmt)]
            [MmaAtom(MmaAtoms.M16N8K32_S32S8S8)]
            [MmaAtom(MmaAtoms.M16N8K32_S32U8S8, Product = MmaProduct.PV)]
            public static partial class Attention;
            """;

    [Theory]
    [InlineData(64, "FlashAttentionForward.QScaleRows = 64")]
    [InlineData(192, "FlashAttentionForward.QScaleRows = 192")]
    public void KDSL0003_a_q_scale_that_splits_a_block(int rows, string expected)
    {
        var source = AttentionDeclaration.Replace("BlockM = 128,", $"BlockM = 128, QScaleRows = {rows},").Replace("BLOCKS", "1");
        var d = Single(source, "KDSL0003");
        Assert.Contains(expected, d.GetMessage());
        Assert.Contains("multiple of BlockM (128)", d.GetMessage());
    }

    [Fact]
    public void KDSL0003_undefined_enum_value()
    {
        var d = Single(Valid.Replace("CopyAtoms.LdsmTransPrmt", "(CopyAtoms)42"), "KDSL0003");
        Assert.Contains("not a defined CopyAtomKind", d.GetMessage());
    }

    [Fact]
    public void KDSL0004_missing_layout()
    {
        var d = Single(Valid.Replace("[SmemLayout(Operand.B, Element.S8, 2, 4, 4)]", ""), "KDSL0004");
        Assert.Contains("Operand.B", d.GetMessage());
    }

    [Fact]
    public void KDSL0005_duplicate()
    {
        var d = Single(Valid.Replace("[CopyAtom(Operand.A, CopyAtoms.Ldsm)]", "[CopyAtom(Operand.A, CopyAtoms.Ldsm)]\n[CopyAtom(Operand.A, CopyAtoms.LdsmTrans)]"), "KDSL0005");
        Assert.Contains("LdsmTrans", LineOf(d));
    }

    [Fact]
    public void KDSL0005_duplicate_mma_points_at_the_second_one()
    {
        var d = Single(Valid.Replace("[MmaAtom(MmaAtoms.M16N8K32_S32S8S8)]", "[MmaAtom(MmaAtoms.M16N8K32_S32S8S8)]\n[MmaAtom(MmaAtoms.M16N8K32_S32U8S8)]"), "KDSL0005");
        Assert.Contains("M16N8K32_S32U8S8", LineOf(d));
    }

    [Fact]
    public void KDSL0008_generic_type()
    {
        var d = Single(Valid.Replace("public static partial class Gemm;", "public partial class Gemm<T> { }"), "KDSL0008");
        Assert.Contains("is generic", d.GetMessage());
    }

    [Fact]
    public void KDSL0008_private_nested_type()
    {
        var source = Valid.Replace("[Int8Gemm", "public static partial class Outer {\n[Int8Gemm").Replace("public static partial class Gemm;", "private static partial class Gemm { } }");
        var d = Single(source, "KDSL0008");
        Assert.Contains("is private", d.GetMessage());
    }

    [Theory]
    [InlineData("[SmemLayout(Operand.A, Element.S8, 2, 4, 3)]", "[SmemLayout(Operand.A, Element.S8, 2, 4)]")]
    [InlineData("[SmemLayout(Operand.A, Element.S8, 2, 4, 3)]", "[SmemLayout(Operand.A, Element.S8, \"2\", 4, 3)]")]
    [InlineData("[CopyAtom(Operand.A, CopyAtoms.Ldsm)]", "[CopyAtom(Operand.A)]")]
    [InlineData("[MmaAtom(MmaAtoms.M16N8K32_S32S8S8)]", "[MmaAtom]")]
    [InlineData("Stages = 2,", "Stages = \"two\",")]
    public void Malformed_attributes_leave_the_error_to_the_compiler_and_do_not_crash_the_generator(string good, string bad)
    {
        var run = GeneratorHarness.RunGenerator(Valid.Replace(good, bad));
        var all = run.Output.GetDiagnostics(TestContext.Current.CancellationToken).Concat(run.GeneratorDiagnostics).ToList();
        Assert.DoesNotContain(all, x => x.Id == "CS8785");
        Assert.Contains(all, x => x.Severity == DiagnosticSeverity.Error && x.Id.StartsWith("CS", StringComparison.Ordinal));
        Assert.DoesNotContain(run.Sources, x => x.HintName == "Users.Gemm.g.cs");
    }

    [Fact]
    public void KDSL0006_operand_not_in_family()
    {
        var d = Single(Valid.Replace("[CopyAtom(Operand.A, CopyAtoms.Ldsm)]", "[CopyAtom(Operand.A, CopyAtoms.Ldsm)]\n[CopyAtom(Operand.V, CopyAtoms.Ldsm)]"), "KDSL0006");
        Assert.Contains("no operand V", d.GetMessage());
    }

    [Fact]
    public void KDSL0007_missing_atom()
    {
        var d = Single(Valid.Replace("[MmaAtom(MmaAtoms.M16N8K32_S32S8S8)]", ""), "KDSL0007");
        Assert.Contains("[MmaAtom]", d.GetMessage());
    }

    [Fact]
    public void KDSL0101_fp16_swizzle_on_int8_breaks_16_byte_chunks()
    {
        var d = Single(Valid.Replace("[SmemLayout(Operand.A, Element.S8, 2, 4, 3)]", "[SmemLayout(Operand.A, Element.S8, 3, 3, 3)]"), "KDSL0101");
        Assert.Contains("Swizzle(3,3,3)", d.GetMessage());
        Assert.Contains("use M = 4", d.GetMessage());
        Assert.Contains("Operand.A", LineOf(d));
    }

    [Fact]
    public void KDSL0102_swizzle_larger_than_the_tile()
    {
        var d = Single(Valid.Replace("[SmemLayout(Operand.A, Element.S8, 2, 4, 3)]", "[SmemLayout(Operand.A, Element.S8, 3, 4, 7)]"), "KDSL0102");
        Assert.Contains("16384 bytes", d.GetMessage());
    }

    [Fact]
    public void KDSL0103_bank_conflicts_are_a_warning_with_advice()
    {
        var d = Single(Valid.Replace("[SmemLayout(Operand.A, Element.S8, 2, 4, 3)]", "[SmemLayout(Operand.A, Element.S8, 0, 4, 3)]"), "KDSL0103");
        Assert.Equal(DiagnosticSeverity.Warning, d.Severity);
        Assert.Contains("4-way", d.GetMessage());
        Assert.Contains("Swizzle(2,4,3) brings it to 1-way", d.GetMessage());
    }

    [Fact]
    public void KDSL0104_layout_element_differs_from_the_MMA()
    {
        var d = Single(Valid.Replace("[SmemLayout(Operand.B, Element.S8, 2, 4, 4)]", "[SmemLayout(Operand.B, Element.U8, 2, 4, 4)]"), "KDSL0104");
        Assert.Contains("holds U8", d.GetMessage());
    }

    [Fact]
    public void KDSL0201_shared_memory_over_the_limit()
    {
        var source = Valid.Replace("BlockM = 64, BlockN = 64, BlockK = 64, Warps = 4, Stages = 2", "BlockM = 256, BlockN = 256, BlockK = 128, Warps = 8, Stages = 4");
        var d = Single(source, "KDSL0201");
        Assert.Contains("262144 bytes", d.GetMessage());
        Assert.Contains("sm_80 allows at most 166912", d.GetMessage());
    }

    [Fact]
    public void KDSL0301_tile_not_divisible()
    {
        var d = Single(Valid.Replace("BlockK = 64", "BlockK = 48"), "KDSL0301", allowOthersOfSameId: true);
        Assert.Contains("BlockK = 48", d.GetMessage());
    }

    /// <summary>Counts in messages take the number they need: "1 warp", "1 stage", "1 element (1 byte)", never "1 warps".</summary>
    [Fact]
    public void KDSL0301_one_warp_is_singular()
    {
        var d = Single(Valid.Replace("BlockM = 64", "BlockM = 40").Replace("Warps = 4", "Warps = 1"), "KDSL0301");
        Assert.Contains("does not split into 1 warp × 16 rows", d.GetMessage());
    }

    [Fact]
    public void KDSL0301_several_warps_are_plural()
    {
        var d = Single(Valid.Replace("BlockM = 64", "BlockM = 40").Replace("Warps = 4", "Warps = 4, WarpsM = 2"), "KDSL0301", allowOthersOfSameId: true);
        Assert.Contains("does not split into 2 warps × 16 rows", d.GetMessage());
    }

    [Fact]
    public void KDSL0201_one_stage_is_singular()
    {
        var source = Valid.Replace("BlockM = 64, BlockN = 64, BlockK = 64, Warps = 4, Stages = 2", "BlockM = 512, BlockN = 512, BlockK = 256, Warps = 8, Stages = 1");
        var d = Single(source, "KDSL0201");
        Assert.Contains("(1 stage × (", d.GetMessage());
    }

    [Fact]
    public void KDSL0101_one_element_is_singular()
    {
        var d = Single(Valid.Replace("[SmemLayout(Operand.A, Element.S8, 2, 4, 3)]", "[SmemLayout(Operand.A, Element.S8, 1, 0, 3)]"), "KDSL0101");
        Assert.Contains("keeps only 2^0 = 1 element (1 byte) together", d.GetMessage());
    }

    [Fact]
    public void KDSL0401_movmatrix_below_sm75_and_ptx()
    {
        var source = Valid.Replace("Layout = GemmLayout.NN)", "Layout = GemmLayout.NN, Targets = new[] { Sm.Sm75 })").Replace("CopyAtoms.LdsmTransPrmt", "CopyAtoms.LdsmPrmtMovmatrix");
        var run = GeneratorHarness.RunGenerator(source);
        // mma.sync m16n8k32 needs sm_80; movmatrix itself is fine on sm_75.
        var d = Assert.Single(run.GeneratorDiagnostics, x => x.Id == "KDSL0401");
        Assert.Contains("needs sm_80", d.GetMessage());
    }

    [Fact]
    public void KDSL0401_wgmma_needs_sm90a()
    {
        var d = Single(Valid.Replace("M16N8K32_S32S8S8", "Wgmma_M64N64K32_S32S8S8"), "KDSL0401");
        Assert.Contains("sm_90a", d.GetMessage());
        Assert.Contains("[MmaAtom", LineOf(d));
    }

    [Fact]
    public void KDSL0401_e4m3_below_sm89()
    {
        var d = Single(Valid.Replace("M16N8K32_S32S8S8", "M16N8K32_F32E4M3E4M3"), "KDSL0401");
        Assert.Contains("needs sm_89", d.GetMessage());
    }

    [Fact]
    public void KDSL0401_stmatrix_below_sm90()
    {
        var d = Single(Valid.Replace("[CopyAtom(Operand.A, CopyAtoms.Ldsm)]", "[CopyAtom(Operand.A, CopyAtoms.Ldsm)]\n[CopyAtom(Operand.B, CopyAtoms.Stmatrix)]"), "KDSL0401");
        Assert.Contains("needs sm_90", d.GetMessage());
    }

    [Fact]
    public void KDSL0402_plain_loads_cannot_feed_a_multistage_pipeline()
    {
        var d = Single(Valid.Replace("[CopyAtom(Operand.A, CopyAtoms.Ldsm)]", "[CopyAtom(Operand.A, CopyAtoms.Ldsm)]\n[CopyAtom(Operand.A, CopyAtoms.LdgSts16)]"), "KDSL0402");
        Assert.Contains("use CpAsync16 or Stages = 1", d.GetMessage());
    }

    [Fact]
    public void KDSL0402_a_u8_A_MMA_in_the_s8_GEMM()
    {
        var d = Single(Valid.Replace("[MmaAtom(MmaAtoms.M16N8K32_S32S8S8)]", "[MmaAtom(MmaAtoms.M16N8K32_S32U8S8)]"), "KDSL0402");
        Assert.Contains("s8 × s8", d.GetMessage());
    }

    [Fact]
    public void KDSL0501_ldmatrix_trans_alone_cannot_feed_int8_V()
    {
        var d = Single(Valid.Replace("CopyAtoms.LdsmTransPrmt", "CopyAtoms.LdsmTrans"), "KDSL0501");
        Assert.Contains("does not deliver the fragment", d.GetMessage());
        Assert.Contains("must hold k=", d.GetMessage());
        Assert.Contains("LdsmTrans", LineOf(d));
    }

    [Fact]
    public void KDSL0501_plain_ldmatrix_on_an_n_major_B()
    {
        var d = Single(Valid.Replace("CopyAtoms.LdsmTransPrmt", "CopyAtoms.Ldsm"), "KDSL0501");
        Assert.Contains("stored k × n", d.GetMessage());
    }

    [Fact]
    public void KDSL0501_in_kernel_transpose_on_a_k_major_B()
    {
        var d = Single(Valid.Replace("Layout = GemmLayout.NN", "Layout = GemmLayout.TN"), "KDSL0501");
        Assert.Contains("stored n × k", d.GetMessage());
    }

    /// <summary>The declarations KDSL0501 advice is checked on, with the copy atom of one operand left as ATOM.</summary>
    private static string AtomCase(string name) => name switch
    {
        "gemm-nn-A" => Valid.Replace("[CopyAtom(Operand.A, CopyAtoms.Ldsm)]", "[CopyAtom(Operand.A, CopyAtoms.ATOM)]"),
        "gemm-nn-B" => Valid.Replace("[CopyAtom(Operand.B, CopyAtoms.LdsmTransPrmt)]", "[CopyAtom(Operand.B, CopyAtoms.ATOM)]"),
        "gemm-tn-B" => Valid.Replace("Layout = GemmLayout.NN", "Layout = GemmLayout.TN").Replace("[CopyAtom(Operand.B, CopyAtoms.LdsmTransPrmt)]", "[CopyAtom(Operand.B, CopyAtoms.ATOM)]"),
        "attention-K" => AttentionDeclaration.Replace("BLOCKS", "1").Replace("[CopyAtom(Operand.K, CopyAtoms.Ldsm)]", "[CopyAtom(Operand.K, CopyAtoms.ATOM)]"),
        "attention-u8-V" => AttentionDeclaration.Replace("BLOCKS", "1").Replace("[CopyAtom(Operand.V, CopyAtoms.LdsmTransPrmt)]", "[CopyAtom(Operand.V, CopyAtoms.ATOM)]"),
        "attention-f16-V" => AttentionDeclaration.Replace("BLOCKS", "1")
            .Replace("[SmemLayout(Operand.V, Element.S8, 3, 4, 3)]", "[SmemLayout(Operand.V, Element.F16, 3, 3, 3)]")
            .Replace("[CopyAtom(Operand.V, CopyAtoms.LdsmTransPrmt)]", "[CopyAtom(Operand.V, CopyAtoms.ATOM)]")
            .Replace("[MmaAtom(MmaAtoms.M16N8K32_S32U8S8, Product = MmaProduct.PV)]", "[MmaAtom(MmaAtoms.M16N8K16_F32F16F16, Product = MmaProduct.PV)]"),
        _ => throw new ArgumentOutOfRangeException(nameof(name)),
    };

    /// <summary>
    /// KDSL0501 names the atoms that would deliver the fragment, and each of them, put in place of the wrong one, builds:
    /// no KDSL error at all and generated code that compiles. The expected atoms are the recipes docs/V_TRANSPOSE.md
    /// derives by hand; the generator finds them by simulating the catalog.
    /// </summary>
    [Theory]
    [InlineData("gemm-nn-A", "LdsmTrans", "Ldsm")]
    [InlineData("gemm-nn-B", "LdsmTrans", "LdsmTransPrmt LdsmPrmtMovmatrix LdsmPretransposed")]
    [InlineData("gemm-nn-B", "Ldsm", "LdsmTransPrmt LdsmPrmtMovmatrix LdsmPretransposed")]
    [InlineData("gemm-tn-B", "LdsmTransPrmt", "Ldsm")]
    [InlineData("attention-K", "LdsmTransPrmt", "Ldsm")]
    [InlineData("attention-u8-V", "Ldsm", "LdsmTransPrmt LdsmPrmtMovmatrix LdsmPretransposed")]
    [InlineData("attention-f16-V", "Ldsm", "LdsmTrans")]
    public void KDSL0501_names_the_atoms_that_deliver_the_fragment_and_each_builds(string declaration, string wrong, string expected)
    {
        var template = AtomCase(declaration);
        Assert.Empty(GeneratorHarness.RunGenerator(template.Replace("ATOM", expected.Split(' ')[0])).GeneratorDiagnostics.Where(x => x.Severity == DiagnosticSeverity.Error));
        var d = Single(template.Replace("ATOM", wrong), "KDSL0501");
        var message = d.GetMessage();
        var advice = message[..message.IndexOf(". Why: ", StringComparison.Ordinal)];
        var named = System.Text.RegularExpressions.Regex.Matches(advice, @"CopyAtoms\.(\w+)").Select(m => m.Groups[1].Value).ToList();
        Assert.Equal(expected.Split(' '), named);
        Assert.DoesNotContain(wrong, named);
        foreach (var atom in named)
        {
            var run = GeneratorHarness.RunGenerator(template.Replace("ATOM", atom));
            Assert.DoesNotContain(run.GeneratorDiagnostics, x => x.Id == "KDSL0501");
            Assert.Empty(run.GeneratorDiagnostics.Where(x => x.Severity == DiagnosticSeverity.Error));
            Assert.Empty(run.CompilationErrors);
        }
    }

    [Fact]
    public void KDSL0501_says_what_a_pretransposed_atom_needs()
    {
        var d = Single(AtomCase("attention-u8-V").Replace("ATOM", "Ldsm"), "KDSL0501");
        Assert.Contains("CopyAtoms.LdsmPretransposed (with the operand transposed beforehand", d.GetMessage());
        Assert.Contains("which do. Why: ", d.GetMessage());
    }

    /// <summary>A valid warp-specialized wgmma attention (sm_90a); each test breaks one thing.</summary>
    private const string WgmmaAttention = """
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

    [Fact]
    public void The_wgmma_declaration_is_valid()
    {
        var run = GeneratorHarness.RunGenerator(WgmmaAttention);
        Assert.Empty(run.GeneratorDiagnostics);
    }

    [Fact]
    public void The_wgmma_declaration_with_recipe_D_is_valid()
    {
        var run = GeneratorHarness.RunGenerator(WgmmaAttention.Replace("[CopyAtom(Operand.V, CopyAtoms.LdsmPretransposed)]",
            "[CopyAtom(Operand.V, CopyAtoms.LdsmTransPrmt)]\n[CopyAtom(Operand.V, CopyAtoms.Stmatrix)]"));
        Assert.Empty(run.GeneratorDiagnostics);
    }

    [Fact]
    public void KDSL0007_wgmma_with_half_of_recipe_D()
    {
        var d = Single(WgmmaAttention.Replace("[CopyAtom(Operand.V, CopyAtoms.LdsmPretransposed)]", "[CopyAtom(Operand.V, CopyAtoms.Stmatrix)]"), "KDSL0007");
        Assert.Contains("Recipe D: transposed in the kernel", d.GetMessage());
    }

    [Fact]
    public void KDSL0105_a_tma_tile_declared_with_another_swizzle()
    {
        var d = Single(WgmmaAttention.Replace("[SmemLayout(Operand.K, Element.S8, 3, 4, 3)]", "[SmemLayout(Operand.K, Element.S8, 2, 4, 3)]"), "KDSL0105");
        Assert.Contains("operand K is written by TMA in 128-byte rows", d.GetMessage());
        Assert.Contains("use Swizzle(3,4,3)", d.GetMessage());
        Assert.Contains("SmemLayout(Operand.K", LineOf(d));
    }

    [Theory]
    [InlineData("KScaleKeys = 64", "KScaleKeys = 48", "FlashAttentionForward.KScaleKeys = 48")]
    [InlineData("Warps = 12", "Warps = 16", "FlashAttentionForward.Warps = 16")]
    [InlineData("Stages = 2", "Stages = 1", "FlashAttentionForward.Stages = 1")]
    [InlineData("Warps = 12", "Warps = 4", "FlashAttentionForward.Warps = 4")]
    [InlineData("Stages = 2,", "Stages = 2, MinBlocksPerSm = 2,", "FlashAttentionForward.MinBlocksPerSm = 2")]
    [InlineData("HeadDim = 128", "HeadDim = 96", "FlashAttentionForward.HeadDim = 96")]
    public void KDSL0003_wgmma_parameters(string from, string to, string expected)
    {
        var d = Single(WgmmaAttention.Replace(from, to), "KDSL0003");
        Assert.Contains(expected, d.GetMessage());
    }

    [Fact]
    public void The_wgmma_declaration_with_one_consumer_warpgroup_fits_two_blocks_per_SM()
    {
        var run = GeneratorHarness.RunGenerator(WgmmaAttention.Replace("BlockM = 128", "BlockM = 64").Replace("Warps = 12", "Warps = 8").Replace("Stages = 2,", "Stages = 3, MinBlocksPerSm = 2,"));
        Assert.Empty(run.GeneratorDiagnostics);
    }

    [Fact]
    public void KDSL0003_pingpong_with_one_consumer_warpgroup()
    {
        var d = Single(WgmmaAttention.Replace("BlockM = 128", "BlockM = 64").Replace("Warps = 12", "Warps = 8, Pingpong = true"), "KDSL0003");
        Assert.Contains("FlashAttentionForward.Pingpong", d.GetMessage());
        Assert.Contains("alternates two consumer warpgroups", d.GetMessage());
    }

    [Fact]
    public void KDSL0003_two_wgmma_blocks_whose_shared_memory_exceeds_the_SM()
    {
        // 64 rows + 4 stages of 128-key K and V: 1024 + 8192 + 4 × 32768 + barriers = 140 KB a block, 282 KB for two.
        var d = Single(WgmmaAttention.Replace("BlockM = 128", "BlockM = 64").Replace("Warps = 12", "Warps = 8").Replace("Stages = 2,", "Stages = 4, MinBlocksPerSm = 2,"), "KDSL0003");
        Assert.Contains("FlashAttentionForward.MinBlocksPerSm = 2", d.GetMessage());
        Assert.Contains("exceed an sm_90 SM's 233472 bytes of shared memory", d.GetMessage());
    }

    [Fact]
    public void The_wgmma_declaration_that_quantizes_Q_needs_no_Q_copy_atom()
    {
        var run = GeneratorHarness.RunGenerator(WgmmaAttention.Replace("Stages = 2,", "Stages = 2, QInput = Element.F16,").Replace("[CopyAtom(Operand.Q, CopyAtoms.Tma)]", ""));
        Assert.Empty(run.GeneratorDiagnostics);
    }

    [Theory]
    [InlineData("Stages = 2,", "Stages = 2, QInput = Element.E4M3,", "FlashAttentionForward.QInput = E4M3", "or as the output's F16/BF16")]
    [InlineData("Stages = 2,", "Stages = 2, QInput = Element.BF16,", "FlashAttentionForward.QInput = BF16", "comes in the output's type: use F16")]
    [InlineData("Stages = 2,", "Stages = 2, QInput = Element.F16, QScaleRows = 128,", "FlashAttentionForward.QScaleRows = 128", "one scale per row: leave QScaleRows at 0")]
    public void KDSL0003_q_quantized_in_the_wgmma_kernel(string from, string to, string expected, string rule)
    {
        var d = Single(WgmmaAttention.Replace(from, to), "KDSL0003");
        Assert.Contains(expected, d.GetMessage());
        Assert.Contains(rule, d.GetMessage());
    }

    [Fact]
    public void KDSL0003_q_quantized_in_the_mma_sync_kernel()
    {
        var d = Single(AttentionDeclaration.Replace("BLOCKS", "1").Replace("Stages = 2,", "Stages = 2, QInput = Element.F16,"), "KDSL0003");
        Assert.Contains("FlashAttentionForward.QInput = F16", d.GetMessage());
        Assert.Contains("the mma.sync form reads int8 Q", d.GetMessage());
    }

    [Fact]
    public void The_persistent_wgmma_declaration_is_valid()
    {
        var run = GeneratorHarness.RunGenerator(WgmmaAttention.Replace("Stages = 2,", "Stages = 2, Persistent = true,"));
        Assert.Empty(run.GeneratorDiagnostics);
        var quantizingQ = GeneratorHarness.RunGenerator(WgmmaAttention.Replace("Stages = 2,", "Stages = 2, Persistent = true, QInput = Element.F16,").Replace("[CopyAtom(Operand.Q, CopyAtoms.Tma)]", ""));
        Assert.Empty(quantizingQ.GeneratorDiagnostics);
    }

    [Theory]
    [InlineData("Pingpong = true,", "pingpong's turns do not carry from one tile to the next")]
    public void KDSL0003_what_the_persistent_wgmma_grid_leaves_out(string also, string rule)
    {
        var d = Single(WgmmaAttention.Replace("Stages = 2,", $"Stages = 2, Persistent = true, {also}"), "KDSL0003");
        Assert.Contains("FlashAttentionForward.Persistent", d.GetMessage());
        Assert.Contains(rule, d.GetMessage());
    }

    [Fact]
    public void KDSL0003_persistent_with_V_transposed_in_the_kernel()
    {
        var recipeD = WgmmaAttention.Replace("Stages = 2,", "Stages = 2, Persistent = true,")
            .Replace("[CopyAtom(Operand.V, CopyAtoms.LdsmPretransposed)]", "[CopyAtom(Operand.V, CopyAtoms.LdsmTransPrmt)]\n[CopyAtom(Operand.V, CopyAtoms.Stmatrix)]");
        var d = Single(recipeD, "KDSL0003");
        Assert.Contains("FlashAttentionForward.Persistent", d.GetMessage());
        Assert.Contains("use V transposed by its quantize kernel (Recipe C)", d.GetMessage());
    }

    [Fact]
    public void KDSL0003_persistent_with_two_blocks_an_SM()
    {
        var d = Single(WgmmaAttention.Replace("BlockM = 128", "BlockM = 64").Replace("Warps = 12", "Warps = 8").Replace("Stages = 2,", "Stages = 2, MinBlocksPerSm = 2, Persistent = true,"), "KDSL0003");
        Assert.Contains("FlashAttentionForward.Persistent", d.GetMessage());
        Assert.Contains("holds one block an SM: use MinBlocksPerSm = 1", d.GetMessage());
    }

    [Fact]
    public void KDSL0003_persistent_in_the_mma_sync_kernel()
    {
        var d = Single(AttentionDeclaration.Replace("BLOCKS", "1").Replace("Stages = 2,", "Stages = 2, Persistent = true,"), "KDSL0003");
        Assert.Contains("FlashAttentionForward.Persistent", d.GetMessage());
        Assert.Contains("only the wgmma form runs a persistent grid", d.GetMessage());
    }

    [Fact]
    public void KDSL0003_pingpong_in_the_mma_sync_kernel()
    {
        var d = Single(AttentionDeclaration.Replace("BLOCKS", "1").Replace("Stages = 2,", "Stages = 2, Pingpong = true,"), "KDSL0003");
        Assert.Contains("FlashAttentionForward.Pingpong", d.GetMessage());
        Assert.Contains("mma.sync kernel has none", d.GetMessage());
    }

    [Fact]
    public void KDSL0301_wgmma_block_keys_are_the_score_wgmma_N()
    {
        var d = Single(WgmmaAttention.Replace("BlockN = 128", "BlockN = 64"), "KDSL0301");
        Assert.Contains("BlockN = 64 must equal the Q·Kᵀ wgmma's N (128)", d.GetMessage());
    }

    [Fact]
    public void KDSL0301_wgmma_head_dim_is_the_PV_wgmma_N()
    {
        var d = Single(WgmmaAttention.Replace("MmaAtoms.Wgmma_M64N128K32_S32U8S8_RS", "MmaAtoms.Wgmma_M64N64K32_S32U8S8_RS"), "KDSL0301");
        Assert.Contains("HeadDim = 128 must equal the P·V wgmma's N (64)", d.GetMessage());
    }

    [Fact]
    public void KDSL0402_a_register_A_wgmma_for_scores()
    {
        var d = Single(WgmmaAttention.Replace("[MmaAtom(MmaAtoms.Wgmma_M64N128K32_S32S8S8)]", "[MmaAtom(MmaAtoms.Wgmma_M64N128K32_S32U8S8_RS)]"), "KDSL0402");
        Assert.Contains("reads int8 Q and K from shared memory", d.GetMessage());
    }

    [Fact]
    public void KDSL0007_wgmma_without_a_PV_atom()
    {
        var d = Single(WgmmaAttention.Replace("[MmaAtom(MmaAtoms.Wgmma_M64N128K32_S32U8S8_RS, Product = MmaProduct.PV)]", ""), "KDSL0007");
        Assert.Contains("for P·V", d.GetMessage());
    }

    [Fact]
    public void KDSL0402_an_ldmatrix_atom_in_the_wgmma_kernel()
    {
        var d = Single(WgmmaAttention.Replace("[CopyAtom(Operand.Q, CopyAtoms.Tma)]", "[CopyAtom(Operand.Q, CopyAtoms.Tma)]\n[CopyAtom(Operand.Q, CopyAtoms.Ldsm)]"), "KDSL0402");
        Assert.Contains("operand Q of the wgmma kernel", d.GetMessage());
        Assert.Contains("CopyAtom(Operand.Q, CopyAtoms.Ldsm)", LineOf(d));
    }

    [Fact]
    public void KDSL0301_wgmma_block_rows_are_64_per_consumer_warpgroup()
    {
        var d = Single(WgmmaAttention.Replace("BlockM = 128", "BlockM = 64"), "KDSL0301");
        Assert.Contains("64 × consumer warpgroups (128)", d.GetMessage());
    }

    [Fact]
    public void KDSL0402_wgmma_and_mma_sync_products_do_not_mix()
    {
        var d = Single(WgmmaAttention.Replace("MmaAtoms.Wgmma_M64N128K32_S32U8S8_RS", "MmaAtoms.M16N8K32_S32U8S8"), "KDSL0402");
        Assert.Contains("P·V of the wgmma kernel", d.GetMessage());
    }

    [Fact]
    public void KDSL0402_tma_in_the_mma_sync_kernel()
    {
        var source = AttentionDeclaration.Replace("BLOCKS", "1").Replace("[CopyAtom(Operand.Q, CopyAtoms.Ldsm)]", "[CopyAtom(Operand.Q, CopyAtoms.Ldsm)]\n[CopyAtom(Operand.K, CopyAtoms.Tma)]");
        var d = Single(source, "KDSL0402");
        Assert.Contains("TMA feeds the wgmma form", d.GetMessage());
    }

    [Fact]
    public void KDSL0007_wgmma_without_tma()
    {
        var d = Single(WgmmaAttention.Replace("[CopyAtom(Operand.K, CopyAtoms.Tma)]", ""), "KDSL0007");
        Assert.Contains("[CopyAtom(Operand.K, CopyAtoms.Tma)]", d.GetMessage());
    }

    [Fact]
    public void KDSL0401_wgmma_on_a_plain_sm90_target()
    {
        var d = Single(WgmmaAttention.Replace("Targets = [Sm.Sm90a]", "Targets = [Sm.Sm90]"), "KDSL0401", allowOthersOfSameId: true);
        Assert.Contains("sm_90a", d.GetMessage());
    }

    [Fact]
    public void KDSL0009_like_a_type_that_is_no_attention_declaration()
    {
        var source = AttentionDeclaration.Replace("BLOCKS", "1") + "\npublic static class Plain;\n[FlashAttentionForward(Like = typeof(Plain))] public static partial class Derived;";
        var d = Single(source, "KDSL0009");
        Assert.Contains("Like = typeof(Plain)", d.GetMessage());
        Assert.Contains("declares no [FlashAttentionForward]", d.GetMessage());
    }

    [Fact]
    public void KDSL0009_a_like_chain_that_comes_back()
    {
        var source = AttentionDeclaration.Replace("BLOCKS", "1")
            + "\n[FlashAttentionForward(Like = typeof(Again), Causal = true)] public static partial class First;"
            + "\n[FlashAttentionForward(Like = typeof(First))] public static partial class Again;";
        var d = Single(source, "KDSL0009", allowOthersOfSameId: true);
        Assert.Contains("the Like chain comes back", d.GetMessage());
    }

    [Fact]
    public void Like_with_one_layout_and_one_atom_replaces_just_those_and_equals_the_declaration_spelled_out()
    {
        var spelled = AttentionDeclaration.Replace("BLOCKS", "1")
            .Replace("[SmemLayout(Operand.V, Element.S8, 3, 4, 3)]", "[SmemLayout(Operand.V, Element.F16, 3, 3, 3)]")
            .Replace("[CopyAtom(Operand.V, CopyAtoms.LdsmTransPrmt)]", "[CopyAtom(Operand.V, CopyAtoms.LdsmTrans)]")
            .Replace("[MmaAtom(MmaAtoms.M16N8K32_S32U8S8, Product = MmaProduct.PV)]", "[MmaAtom(MmaAtoms.M16N8K16_F32F16F16, Product = MmaProduct.PV)]");
        var derived = AttentionDeclaration.Replace("BLOCKS", "1").Replace("public static partial class Attention;", "public static partial class Base;") + """

            [FlashAttentionForward(Like = typeof(Base))]
            [SmemLayout(Operand.V, Element.F16, 3, 3, 3)]
            [CopyAtom(Operand.V, CopyAtoms.LdsmTrans)]
            [MmaAtom(MmaAtoms.M16N8K16_F32F16F16, Product = MmaProduct.PV)]
            public static partial class Attention;
            """;
        static KernelDsl.Generator.Model.AttentionSpec Spec(string source) => GeneratorHarness.RunGenerator(source).Result.Results.Single()
            .TrackedSteps[KernelDsl.Generator.TrackingNames.ValidSpecs].SelectMany(s => s.Outputs).Select(o => o.Value)
            .OfType<KernelDsl.Generator.Model.AttentionSpec>().Single(s => s.Type.Name == "Attention");
        Assert.Equal(Spec(spelled), Spec(derived));
    }

    [Fact]
    public void Like_follows_a_chain_and_the_nearest_named_argument_wins()
    {
        var source = AttentionDeclaration.Replace("BLOCKS", "2")
            + "\n[FlashAttentionForward(Like = typeof(Attention), Causal = true, Stages = 3)] public static partial class Middle;"
            + "\n[FlashAttentionForward(Like = typeof(Middle), Stages = 1)] public static partial class Last;";
        var run = GeneratorHarness.RunGenerator(source);
        Assert.Empty(run.GeneratorDiagnostics);
        var launcher = run.Source("Users.Last.g.cs");
        Assert.Contains("public const bool IsCausal = true;", launcher);
        Assert.Contains("/ 1 stage /", launcher);
        Assert.Contains("2 blocks/SM", launcher);
    }

    [Fact]
    public void Like_takes_the_others_atoms_and_parameters_and_its_own_named_arguments_win()
    {
        var source = AttentionDeclaration.Replace("BLOCKS", "2")
            + "\n[FlashAttentionForward(Like = typeof(Attention), Causal = true)] public static partial class CausalAttention;";
        var run = GeneratorHarness.RunGenerator(source);
        Assert.Empty(run.GeneratorDiagnostics);
        Assert.Empty(run.CompilationErrors);
        var launcher = run.Source("Users.CausalAttention.g.cs");
        Assert.Contains("public const bool IsCausal = true;", launcher);
        Assert.Contains("public const int HeadDim = 64;", launcher);
        Assert.Contains("2 blocks/SM", launcher);
        // The same kernel body as the original's, but for the causal mask and the kernel's name.
        var cuda = SnapshotTests.RawStringContent(run.Source("Users.CausalAttention.cu.g.cs"));
        Assert.Contains("kdsl_ldsm_x4_trans", cuda);
        Assert.Contains("last_key", cuda);
    }

    [Fact]
    public void AlsoCausal_declares_the_causal_kernel_nested_in_the_declaration_and_Like_does_not_pass_it_on()
    {
        var source = AttentionDeclaration.Replace("BLOCKS", "2").Replace("MinBlocksPerSm = 2)]", "MinBlocksPerSm = 2, AlsoCausal = true)]")
            + "\n[FlashAttentionForward(Like = typeof(Attention), Stages = 3)] public static partial class ThreeStages;"
            + "\npublic static class Caller { public static bool Both => Attention.Causal.IsCausal && !Attention.IsCausal; }";
        var run = GeneratorHarness.RunGenerator(source);
        Assert.Empty(run.GeneratorDiagnostics);
        Assert.Empty(run.CompilationErrors);  // Caller binds Attention.Causal, a static class nested in the declaration
        Assert.Contains("public const bool IsCausal = false;", run.Source("Users.Attention.g.cs"));
        var twin = run.Source("Users.Attention.Causal.g.cs");
        Assert.Contains("public static partial class Causal", twin);
        Assert.Contains("public const bool IsCausal = true;", twin);
        Assert.Contains("2 blocks/SM", twin);
        // The causal kernel is the declaration's, with the causal mask: its CUDA differs by the mask and the kernel's name.
        var plain = SnapshotTests.RawStringContent(run.Source("Users.Attention.cu.g.cs"));
        var causal = SnapshotTests.RawStringContent(run.Source("Users.Attention.Causal.cu.g.cs"));
        Assert.DoesNotContain("last_key", plain);
        Assert.Contains("last_key", causal);
        Assert.Contains("Users_Attention_Causal", causal);
        Assert.Contains("global::Users.Attention.Causal.Module,", run.Source(KernelDsl.Generator.Launchers.RegistryWriter.HintName));
        // Like takes the layouts, atoms and parameters, not the twin.
        var hints = run.Sources.Select(h => h.HintName).ToArray();
        Assert.Contains("Users.ThreeStages.g.cs", hints);
        Assert.DoesNotContain("Users.ThreeStages.Causal.g.cs", hints);
        Assert.Contains("public const bool IsCausal = false;", run.Source("Users.ThreeStages.g.cs"));
    }

    [Fact]
    public void KDSL0009_Like_naming_a_causal_twin_says_to_name_its_declaration()
    {
        // The generator's compilation does not hold the twin it declares, so the twin cannot lend its attributes.
        var source = AttentionDeclaration.Replace("BLOCKS", "1").Replace("MinBlocksPerSm = 1)]", "MinBlocksPerSm = 1, AlsoCausal = true)]")
            + "\n[FlashAttentionForward(Like = typeof(Attention.Causal), Stages = 1)] public static partial class FromTwin;";
        var d = Single(source, "KDSL0009");
        Assert.Contains("Like = typeof(Attention.Causal) cannot be used: it is the causal kernel that Attention's AlsoCausal declares", d.GetMessage());
        Assert.Contains("write Like = typeof(Attention), Causal = true", d.GetMessage());
    }

    [Fact]
    public void An_AlsoCausal_declaration_with_an_error_reports_it_once_and_both_kernels_stay_nameable()
    {
        var source = AttentionDeclaration.Replace("BLOCKS", "1").Replace("MinBlocksPerSm = 1)]", "MinBlocksPerSm = 1, AlsoCausal = true)]")
            .Replace("[SmemLayout(Operand.K, Element.S8, 3, 4, 3)]", "[SmemLayout(Operand.K, Element.S8, 3, 3, 3)]")
            + "\npublic static class Caller { public static string Name => Attention.Causal.KernelName; }";
        var run = GeneratorHarness.RunGenerator(source);
        var error = Assert.Single(run.GeneratorDiagnostics, d => d.Severity == Microsoft.CodeAnalysis.DiagnosticSeverity.Error);
        Assert.Equal("KDSL0101", error.Id);
        Assert.Empty(run.CompilationErrors);
    }

    [Fact]
    public void An_AlsoCausal_declarations_warning_is_reported_once_and_both_kernels_are_emitted()
    {
        // An unswizzled K layout: ldmatrix bank conflicts, a warning the twin shares.
        var source = AttentionDeclaration.Replace("BLOCKS", "1").Replace("MinBlocksPerSm = 1)]", "MinBlocksPerSm = 1, AlsoCausal = true)]")
            .Replace("[SmemLayout(Operand.K, Element.S8, 3, 4, 3)]", "[SmemLayout(Operand.K, Element.S8, 0, 4, 3)]");
        var run = GeneratorHarness.RunGenerator(source);
        Assert.Equal("KDSL0103", Assert.Single(run.GeneratorDiagnostics).Id);
        Assert.Empty(run.CompilationErrors);
        Assert.Contains(run.Sources, x => x.HintName == "Users.Attention.Causal.cu.g.cs");
    }

    [Fact]
    public void KDSL0012_AlsoCausal_on_a_declaration_named_Causal()
    {
        var source = AttentionDeclaration.Replace("BLOCKS", "1").Replace("MinBlocksPerSm = 1)]", "MinBlocksPerSm = 1, AlsoCausal = true)]")
            .Replace("public static partial class Attention;", "public static partial class Causal;");
        var d = Single(source, "KDSL0012");
        Assert.Contains("a nested type cannot have its enclosing type's name", d.GetMessage());
    }

    [Theory]
    [InlineData("Causal = true, AlsoCausal = true", "", "the declaration is causal already")]
    [InlineData("AlsoCausal = true", "{ public static class Causal { } }", "already has a member named 'Causal'")]
    [InlineData("AlsoCausal = true", "{ public const int Causal = 1; }", "already has a member named 'Causal'")]
    public void KDSL0012_AlsoCausal_on_a_causal_declaration_or_one_with_a_member_named_Causal(string arguments, string body, string why)
    {
        var source = AttentionDeclaration.Replace("BLOCKS", "1").Replace("MinBlocksPerSm = 1)]", $"MinBlocksPerSm = 1, {arguments})]")
            .Replace("public static partial class Attention;", body.Length == 0 ? "public static partial class Attention;" : "public static partial class Attention " + body);
        var d = Single(source, "KDSL0012");
        Assert.Contains("'Attention' cannot declare AlsoCausal = true", d.GetMessage());
        Assert.Contains(why, d.GetMessage());
        if (body.Length == 0)
        {
            // The refused twin keeps its placeholder members: a use of it binds, and KDSL0012 is the one error.
            var run = GeneratorHarness.RunGenerator(source + "\npublic static class Caller { public static string Name => Attention.Causal.KernelName; }");
            Assert.Empty(run.CompilationErrors);
        }
    }

    [Fact]
    public void KDSL0012_AlsoCausal_on_a_form_of_an_attention_forms_type()
    {
        var source = AttentionDeclaration.Replace("BLOCKS", "1") + """

            [AttentionForms]
            public static partial class Forms
            {
                [FlashAttentionForward(Like = typeof(Attention), AlsoCausal = true)] public static partial class Plain;
            }

            [AttentionFamily(typeof(Forms))]
            public static partial class Window
            {
                [MaskModifier] public static bool Visible(int b, int h, int q, int k, int window) => q - k < window;
            }
            """;
        var d = Single(source, "KDSL0012");
        Assert.Contains("'Plain' cannot declare AlsoCausal = true: it is a form of the [AttentionForms] type 'Forms'", d.GetMessage());
        // The refused form is still declared in the family, with placeholder members, so its uses bind.
        var run = GeneratorHarness.RunGenerator(source + "\npublic static class Caller { public static string Name => Window.Plain.KernelName; }");
        Assert.Empty(run.CompilationErrors);
    }

    [Theory]
    [InlineData("int seqQ", "the kernel's generated launcher already has a parameter, local or member of that name")]
    [InlineData("int BlockM", "the kernel's generated launcher already has a parameter, local or member of that name")]
    [InlineData("int arguments", "the kernel's generated launcher already has a parameter, local or member of that name")]
    [InlineData("int MaxSequence", "the kernel's generated launcher already has a parameter, local or member of that name")]  // once silently shadowed the limit
    [InlineData("int tiles", "the kernel's generated launcher already has a parameter, local or member of that name")]
    [InlineData("float @base", "it is a C# keyword")]
    [InlineData("float window", "the other modifier has a parameter of the same name with another type")]
    public void KDSL0650_modifier_parameter_names(string scoreParameter, string why)
    {
        var source = AttentionDeclaration.Replace("BLOCKS", "1").Replace("public static partial class Attention;", $$"""
            public static partial class Attention
            {
                [MaskModifier] public static bool Window(int b, int h, int q, int k, int window) => q - k < window;
                [ScoreModifier] public static float Score(float s, int b, int h, int q, int k, {{scoreParameter}}) => s;
            }
            """);
        var d = Single(source, "KDSL0650");
        Assert.Contains(why, d.GetMessage());
        // At the parameter it names, not at the declaration.
        Assert.Equal(scoreParameter.Split(' ')[1], source.Substring(d.Location.SourceSpan.Start, d.Location.SourceSpan.Length));
    }

    [Fact]
    public void KDSL0010_a_family_whose_forms_type_declares_no_kernel()
    {
        var source = AttentionDeclaration.Replace("BLOCKS", "1")
            + "\n[AttentionForms] public static partial class NoForms { }"
            + "\n[AttentionFamily(typeof(NoForms))] public static partial class Family { [MaskModifier] public static bool M(int b, int h, int q, int k) => k <= q; }";
        var d = Single(source, "KDSL0010");
        Assert.Contains("'Family' is an [AttentionFamily] of 'NoForms'", d.GetMessage());
    }

    [Fact]
    public void A_family_declares_one_kernel_per_form_with_its_modifiers_and_the_forms_are_no_kernels_themselves()
    {
        var source = AttentionDeclaration.Replace("BLOCKS", "1") + """

            [AttentionForms]
            public static partial class Forms
            {
                [FlashAttentionForward(Like = typeof(Attention))] public static partial class Plain;
                [FlashAttentionForward(Like = typeof(Attention), Stages = 1)] public static partial class OneStage;
            }

            [AttentionFamily(typeof(Forms), Causal = true)]
            public static partial class Window
            {
                [MaskModifier] public static bool Visible(int b, int h, int q, int k, int window) => q - k < window;
            }
            """;
        var run = GeneratorHarness.RunGenerator(source);
        Assert.Empty(run.GeneratorDiagnostics);
        Assert.Empty(run.CompilationErrors);
        var hints = run.Sources.Select(s => s.HintName).ToArray();
        Assert.DoesNotContain("Users.Forms.Plain.g.cs", hints);
        foreach (var form in new[] { "Plain", "OneStage" })
        {
            var launcher = run.Source($"Users.Window.{form}.g.cs");
            Assert.Contains($"public static partial class {form}", launcher);
            Assert.Contains("public const bool IsCausal = true;", launcher);  // the family's Causal wins over the form's
            Assert.Contains("int window)", launcher);
            Assert.Contains("kdsl_mask_mod", SnapshotTests.RawStringContent(run.Source($"Users.Window.{form}.cu.g.cs")));
        }
        Assert.Contains("/ 1 stage /", run.Source("Users.Window.OneStage.g.cs"));
    }

    [Theory]
    [InlineData("public static partial class Plain { }", "Plain")]
    [InlineData("", "Plain")]
    public void KDSL0011_a_family_kernel_name_that_is_taken(string ownNested, string name)
    {
        // A nested type of the family's own with a form's name, or (second case) a family that is its own forms type.
        var source = AttentionDeclaration.Replace("BLOCKS", "1") + $$"""

            {{(ownNested.Length > 0 ? "[AttentionForms]" : "")}}
            public static partial class Forms
            {
                [FlashAttentionForward(Like = typeof(Attention))] public static partial class Plain;
            }

            [AttentionFamily(typeof({{(ownNested.Length > 0 ? "Forms" : "Family")}}))]
            public static partial class Family
            {
                [MaskModifier] public static bool Visible(int b, int h, int q, int k) => k <= q;
                {{(ownNested.Length > 0 ? ownNested : "[FlashAttentionForward(Like = typeof(Attention))] public static partial class Plain;")}}
            }
            """;
        var d = Single(source, "KDSL0011");
        Assert.Contains($"'Family.{name}'", d.GetMessage());
    }

    [Fact]
    public void KDSL0701_a_kv_cache_page_too_large_for_shared_memory()
    {
        // 128 tokens × 256 channels of f16 is 64 KB: over the 48 KB a kernel declares statically.
        var d = Single("""
            using KernelDsl;
            namespace Users;
            [KvCacheAppend(HeadDim = 256, PageSize = 128)]
            public static partial class Cache;
            """, "KDSL0701");
        Assert.Contains("'Cache' appends into pages of 128 tokens × 256 channels", d.GetMessage());
        Assert.Contains("use PageSize ≤ 80 for HeadDim 256", d.GetMessage());
        Assert.Contains("[KvCacheAppend(", LineOf(d));
    }

    [Theory]
    [InlineData("PageSize = 24", "KvCacheAppend.PageSize = 24 is invalid")]
    [InlineData("HeadDim = 80", "KvCacheAppend.HeadDim = 80 is invalid")]
    [InlineData("Input = Element.S8", "KvCacheAppend.Input = S8 is invalid")]
    [InlineData("Threads = 48", "KvCacheAppend.Threads = 48 is invalid")]
    public void KDSL0003_a_kv_cache_append_parameter(string parameter, string expected)
    {
        var d = Single($$"""
            using KernelDsl;
            namespace Users;
            [KvCacheAppend({{parameter}})]
            public static partial class Cache;
            """, "KDSL0003");
        Assert.Contains(expected, d.GetMessage());
    }

    [Fact]
    public void KDSL0702_decode_page_stages_over_the_shared_memory_limit()
    {
        // Four stages of 18 KB for each of 4 warps at D = 128: 304 KB, over sm_80's 163 KB and sm_90's 227 KB.
        var d = Single("""
            using KernelDsl;
            namespace Users;
            [PagedDecode(HeadDim = 128, Warps = 4, Stages = 4)]
            public static partial class Decode;
            """, "KDSL0702");
        Assert.Contains("'Decode' keeps 4 page stage(s) of K and V for each of its 4 warps", d.GetMessage());
        Assert.Contains("sm_80 allows at most 166912; use Stages ≤ 2 or fewer Warps", d.GetMessage());
        Assert.Contains("[PagedDecode(", LineOf(d));
    }

    [Fact]
    public void KDSL0702_suggests_fewer_warps_when_no_stage_count_fits()
    {
        // Eight warps: even two stages of 17.5 KB each are 280 KB, so no stage count fits sm_80; half-page stages do.
        var d = Single("""
            using KernelDsl;
            namespace Users;
            [PagedDecode(HeadDim = 128, Warps = 8, Stages = 3)]
            public static partial class Decode;
            """, "KDSL0702");
        Assert.Contains("sm_80 allows at most 166912; use StageKeys = 32 (half-page stages) or fewer Warps: two stages of this many warps do not fit", d.GetMessage());
    }

    [Fact]
    public void KDSL0702_does_not_suggest_half_pages_that_do_not_fit_either()
    {
        // Eight warps of four half-page stages: 302 KB; two such stages fit, so it suggests fewer stages.
        var d = Single("""
            using KernelDsl;
            namespace Users;
            [PagedDecode(HeadDim = 128, StageKeys = 32, Warps = 8, Stages = 4)]
            public static partial class Decode;
            """, "KDSL0702");
        Assert.Contains("use Stages ≤ 2 or fewer Warps", d.GetMessage());
        Assert.DoesNotContain("StageKeys = 32", d.GetMessage());
    }

    [Theory]
    [InlineData("PageSize = 32", "PagedDecode.PageSize = 32 is invalid")]
    [InlineData("HeadDim = 256", "PagedDecode.HeadDim = 256 is invalid")]
    [InlineData("Input = Element.S8", "PagedDecode.Input = S8 is invalid")]
    [InlineData("Warps = 3", "PagedDecode.Warps = 3 is invalid")]
    [InlineData("Stages = 1", "PagedDecode.Stages = 1 is invalid")]
    [InlineData("StageKeys = 16", "PagedDecode.StageKeys = 16 is invalid")]
    [InlineData("StageKeys = 48", "PagedDecode.StageKeys = 48 is invalid")]
    public void KDSL0003_a_paged_decode_parameter(string parameter, string expected)
    {
        var d = Single($$"""
            using KernelDsl;
            namespace Users;
            [PagedDecode({{parameter}})]
            public static partial class Decode;
            """, "KDSL0003");
        Assert.Contains(expected, d.GetMessage());
    }

    [Fact]
    public void KDSL0402_a_paged_decode_takes_no_declared_atoms()
    {
        var d = Single("""
            using KernelDsl;
            namespace Users;
            [PagedDecode(HeadDim = 128)]
            [CopyAtom(Operand.V, CopyAtoms.LdsmTransPrmt)]
            public static partial class Decode;
            """, "KDSL0402");
        Assert.Contains("the decode kernel's atoms follow from the cache's page layout", d.GetMessage());
    }

    [Fact]
    public void KDSL0703_a_kv_statistics_block_too_large_for_shared_memory()
    {
        // 1024 threads at D = 128 are 64 token lanes × 128 channels of sums and of maxima: 64 KB, over the 48 KB a kernel declares statically.
        var d = Single("""
            using KernelDsl;
            namespace Users;
            [KvStatistics(HeadDim = 128, Threads = 1024)]
            public static partial class Statistics;
            """, "KDSL0703");
        Assert.Contains("'Statistics' combines its 1024 threads' K sums and V maxima in shared memory, in a fixed order: 65536 bytes for HeadDim 128", d.GetMessage());
        Assert.Contains("use Threads ≤ 512", d.GetMessage());
        Assert.Contains("[KvStatistics(", LineOf(d));
    }

    [Theory]
    [InlineData("SliceTokens = 24", "KvStatistics.SliceTokens = 24 is invalid")]
    [InlineData("HeadDim = 80", "KvStatistics.HeadDim = 80 is invalid")]
    [InlineData("Input = Element.S8", "KvStatistics.Input = S8 is invalid")]
    [InlineData("VOutput = Element.U8", "KvStatistics.VOutput = U8 is invalid")]
    [InlineData("Threads = 48", "KvStatistics.Threads = 48 is invalid")]
    public void KDSL0003_a_kv_statistics_parameter(string parameter, string expected)
    {
        var d = Single($$"""
            using KernelDsl;
            namespace Users;
            [KvStatistics({{parameter}})]
            public static partial class Statistics;
            """, "KDSL0003");
        Assert.Contains(expected, d.GetMessage());
    }

    [Theory]
    [InlineData("KScaleKeys = 24", "KvCodes.KScaleKeys = 24 is invalid")]
    [InlineData("KScaleKeys = 512", "use at most 128 tokens for HeadDim 128 and 256 threads")]
    [InlineData("HeadDim = 80", "KvCodes.HeadDim = 80 is invalid")]
    [InlineData("Input = Element.S8", "KvCodes.Input = S8 is invalid")]
    [InlineData("VOutput = Element.U8", "KvCodes.VOutput = U8 is invalid")]
    [InlineData("VTransposed = true, TransposePad = 32", "KvCodes.TransposePad = 32 is invalid")]
    [InlineData("Threads = 48", "KvCodes.Threads = 48 is invalid")]
    public void KDSL0003_a_kv_codes_parameter(string parameter, string expected)
    {
        var d = Single($$"""
            using KernelDsl;
            namespace Users;
            [KvCodes({{parameter}})]
            public static partial class Codes;
            """, "KDSL0003");
        Assert.Contains(expected, d.GetMessage());
    }

    [Theory]
    [InlineData("HeadDim = 80", "KvSinglePass.HeadDim = 80 is invalid")]
    [InlineData("SliceTokens = 24", "KvSinglePass.SliceTokens = 24 is invalid")]
    [InlineData("VTransposed = true, TransposePad = 32", "KvSinglePass.TransposePad = 32 is invalid")]
    [InlineData("KScaleKeys = 24", "KvSinglePass.KScaleKeys = 24 is invalid")]
    [InlineData("Threads = 48", "KvSinglePass.Threads = 48 is invalid")]
    [InlineData("HeadDim = 256", "KvSinglePass.HeadDim = 256 is invalid: use 64 or 128")]
    [InlineData("Threads = 512", "KvSinglePass.Threads = 512 is invalid: use 256")]
    public void KDSL0003_a_kv_single_pass_parameter(string parameter, string expected)
    {
        // The fused statistics' and codes' rules name this family; its registers are fitted at D = 64 and 128, 256 threads.
        var d = Single($$"""
            using KernelDsl;
            namespace Users;
            [KvSinglePass({{parameter}})]
            public static partial class Once;
            """, "KDSL0003");
        Assert.Contains(expected, d.GetMessage());
    }

    [Fact]
    public void KDSL0401_e4m3_kv_codes_on_a_target_before_sm_89()
    {
        var d = Single("""
            using KernelDsl;
            namespace Users;
            [KvCodes(VOutput = Element.E4M3, VTransposed = true)]
            public static partial class Codes;
            """, "KDSL0401");
        Assert.Contains("KvCodes.VOutput = E4M3", d.GetMessage());
    }

    [Fact]
    public void Every_rule_has_a_test_here_or_in_the_validator_tests()
    {
        var tested = new[] { typeof(DiagnosticTests), typeof(Modifiers.ModifierReaderTests) }.SelectMany(t => t.GetMethods())
            .Where(m => m.Name.StartsWith("KDSL", StringComparison.Ordinal)).Select(m => m.Name[..8]).ToHashSet();
        var untested = KernelDsl.Generator.Validation.Rules.All.Select(r => r.Id).Where(id => !tested.Contains(id)).ToList();
        Assert.Empty(untested);
    }
}
