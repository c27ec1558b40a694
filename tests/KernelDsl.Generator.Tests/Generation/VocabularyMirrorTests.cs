using GeneratorTests.Infrastructure;
using KernelDsl.Generator.Model;
using KernelDsl.Generator.Parsing;

namespace GeneratorTests.Generation;

/// <summary>The generator's mirror of the public vocabulary cannot drift from the attributes users write.</summary>
public class VocabularyMirrorTests
{
    [Theory]
    [InlineData(typeof(KernelDsl.Element), typeof(Element))]
    [InlineData(typeof(KernelDsl.Operand), typeof(Operand))]
    [InlineData(typeof(KernelDsl.Sm), typeof(Sm))]
    [InlineData(typeof(KernelDsl.CopyAtoms), typeof(CopyAtomKind))]
    [InlineData(typeof(KernelDsl.MmaAtoms), typeof(MmaAtomKind))]
    [InlineData(typeof(KernelDsl.GemmLayout), typeof(GemmLayout))]
    [InlineData(typeof(KernelDsl.GemmOutput), typeof(GemmOutput))]
    [InlineData(typeof(KernelDsl.QuantGranularity), typeof(QuantGranularity))]
    [InlineData(typeof(KernelDsl.TokenOrder), typeof(TokenOrder))]
    public void Enums_match_by_name_and_value(Type runtime, Type mirror)
    {
        static IEnumerable<(string, int)> Members(Type t) => Enum.GetNames(t).Select(n => (n, (int)Enum.Parse(t, n)));
        Assert.Equal(Members(runtime), Members(mirror));
    }

    /// <summary>
    /// The host API binds launcher arguments by the names the signature model gives them: the runtime's constants and
    /// the model's must be the same set, so a launch can never miss an argument by spelling.
    /// </summary>
    [Fact]
    public void Attention_argument_names_match_the_signature_model()
    {
        static string[] Constants(Type t) => t.GetFields().Where(f => f.IsLiteral).Select(f => (string)f.GetRawConstantValue()!).Order(StringComparer.Ordinal).ToArray();
        var runtime = Constants(typeof(KernelDsl.Launching.AttentionArgumentNames));
        var model = AttentionSignature.Names.All.Where(n => n != AttentionSignature.Names.Stream).Order(StringComparer.Ordinal).ToArray();
        Assert.Equal(model, runtime);
        // ...and every launcher parameter of every plain declaration, in every form, is one of them.
        var run = GeneratorHarness.RunGenerator(File.ReadAllText(Path.Combine(Root(), "src/Attention/FlashAttention/Int8AttentionVariants.cs")));
        var specs = run.Result.Results.Single().TrackedSteps[KernelDsl.Generator.TrackingNames.ValidSpecs]
            .SelectMany(s => s.Outputs).Select(o => o.Value).OfType<AttentionSpec>().ToArray();
        Assert.NotEmpty(specs);
        Assert.All(specs.SelectMany(spec => new AttentionPlan(spec).Signature.Host), p => Assert.Contains(p.Name, AttentionSignature.Names.All));
    }

    private static string Root([System.Runtime.CompilerServices.CallerFilePath] string path = "") =>
        Path.GetFullPath(Path.Combine(Path.GetDirectoryName(path)!, "..", "..", ".."));

    [Fact]
    public void Gemm_defaults_match_the_attribute()
    {
        var attribute = new KernelDsl.Int8GemmAttribute();
        var run = GeneratorHarness.RunGenerator("""
            using KernelDsl;
            [Int8Gemm]
            [SmemLayout(Operand.A, Element.S8, 2, 4, 3)]
            [SmemLayout(Operand.B, Element.S8, 3, 4, 3)]
            [CopyAtom(Operand.A, CopyAtoms.Ldsm)]
            [CopyAtom(Operand.B, CopyAtoms.Ldsm)]
            [MmaAtom(MmaAtoms.M16N8K32_S32S8S8)]
            public static partial class Defaults;
            """);
        var spec = (GemmSpec)run.Result.Results.Single().TrackedSteps[KernelDsl.Generator.TrackingNames.ValidSpecs].Single().Outputs.Single().Value;
        Assert.Equal((attribute.BlockM, attribute.BlockN, attribute.BlockK, attribute.Warps, attribute.WarpsM, attribute.Stages), (spec.BlockM, spec.BlockN, spec.BlockK, spec.Warps, spec.WarpsM, spec.Stages));
        Assert.Equal((int)attribute.Layout, (int)spec.Layout);
        Assert.Equal((int)attribute.Output, (int)spec.Output);
        Assert.Equal(attribute.Targets.Select(t => (int)t), spec.Targets.Select(t => (int)t));
        Assert.Equal(attribute.Targets.Select(t => (int)t), DeclarationReader.DefaultTargets.Select(t => (int)t));
    }

    [Fact]
    public void Quantize_defaults_match_the_attribute()
    {
        var attribute = new KernelDsl.QuantizeAttribute();
        var run = GeneratorHarness.RunGenerator("using KernelDsl;\n[Quantize]\npublic static partial class Q;\n");
        var step = run.Result.Results.Single().TrackedSteps[KernelDsl.Generator.TrackingNames.QuantizeDeclarations].Single().Outputs.Single().Value;
        var spec = (QuantizeSpec)((DeclarationResult)step).Spec!;
        Assert.Equal((int)attribute.Input, (int)spec.Input);
        Assert.Equal((int)attribute.Granularity, (int)spec.Granularity);
        Assert.Equal((attribute.BlockRows, attribute.HeadDim, attribute.SubtractChannelMean, attribute.Transposed, attribute.TransposePad, attribute.Threads),
            (spec.BlockRows, spec.HeadDim, spec.SubtractChannelMean, spec.Transposed, spec.TransposePad, spec.Threads));
        Assert.Equal((int)attribute.TransposedOrder, (int)spec.TransposedOrder);
    }

    [Fact]
    public void KvCacheAppend_defaults_match_the_attribute()
    {
        var attribute = new KernelDsl.KvCacheAppendAttribute();
        var run = GeneratorHarness.RunGenerator("using KernelDsl;\n[KvCacheAppend]\npublic static partial class Cache;\n");
        var step = run.Result.Results.Single().TrackedSteps[KernelDsl.Generator.TrackingNames.KvAppendDeclarations].Single().Outputs.Single().Value;
        var spec = (KvAppendSpec)((DeclarationResult)step).Spec!;
        Assert.Equal((attribute.HeadDim, attribute.PageSize, (int)attribute.Input, attribute.Threads), (spec.HeadDim, spec.PageSize, (int)spec.Input, spec.Threads));
        Assert.Equal(attribute.Targets.Select(t => (int)t), spec.Targets.Select(t => (int)t));
    }

    [Fact]
    public void PagedDecode_defaults_match_the_attribute()
    {
        var attribute = new KernelDsl.PagedDecodeAttribute();
        var run = GeneratorHarness.RunGenerator("using KernelDsl;\n[PagedDecode]\npublic static partial class Decode;\n");
        var step = run.Result.Results.Single().TrackedSteps[KernelDsl.Generator.TrackingNames.PagedDecodeDeclarations].Single().Outputs.Single().Value;
        var spec = (PagedDecodeSpec)((DeclarationResult)step).Spec!;
        Assert.Equal((attribute.HeadDim, attribute.PageSize, attribute.StageKeys, (int)attribute.Input, attribute.Warps, attribute.Stages),
            (spec.HeadDim, spec.PageSize, spec.StageKeys, (int)spec.Input, spec.Warps, spec.Stages));
        Assert.Equal(attribute.Targets.Select(t => (int)t), spec.Targets.Select(t => (int)t));
    }

    [Fact]
    public void KvCodes_defaults_match_the_attribute()
    {
        var attribute = new KernelDsl.KvCodesAttribute();
        var run = GeneratorHarness.RunGenerator("using KernelDsl;\n[KvCodes]\npublic static partial class Codes;\n");
        var step = run.Result.Results.Single().TrackedSteps[KernelDsl.Generator.TrackingNames.KvCodesDeclarations].Single().Outputs.Single().Value;
        var spec = (KvCodesSpec)((DeclarationResult)step).Spec!;
        Assert.Equal(((int)attribute.Input, attribute.HeadDim, attribute.KScaleKeys, (int)attribute.VOutput, attribute.VTransposed, (int)attribute.TransposedOrder, attribute.TransposePad, attribute.Threads),
            ((int)spec.Input, spec.HeadDim, spec.KScaleKeys, (int)spec.VOutput, spec.VTransposed, (int)spec.TransposedOrder, spec.TransposePad, spec.Threads));
        Assert.Equal(attribute.Targets.Select(t => (int)t), spec.Targets.Select(t => (int)t));
    }

    [Fact]
    public void KvSinglePass_defaults_match_the_attribute()
    {
        var attribute = new KernelDsl.KvSinglePassAttribute();
        var run = GeneratorHarness.RunGenerator("using KernelDsl;\n[KvSinglePass]\npublic static partial class Once;\n");
        var step = run.Result.Results.Single().TrackedSteps[KernelDsl.Generator.TrackingNames.KvSinglePassDeclarations].Single().Outputs.Single().Value;
        var spec = (KvSinglePassSpec)((DeclarationResult)step).Spec!;
        Assert.Equal(((int)attribute.Input, attribute.HeadDim, attribute.SliceTokens, attribute.KScaleKeys, (int)attribute.VOutput, attribute.VTransposed, (int)attribute.TransposedOrder, attribute.TransposePad, attribute.Threads),
            ((int)spec.Input, spec.HeadDim, spec.SliceTokens, spec.KScaleKeys, (int)spec.VOutput, spec.VTransposed, (int)spec.TransposedOrder, spec.TransposePad, spec.Threads));
        Assert.Equal(attribute.Targets.Select(t => (int)t), spec.Targets.Select(t => (int)t));
    }

    [Fact]
    public void KvStatistics_defaults_match_the_attribute()
    {
        var attribute = new KernelDsl.KvStatisticsAttribute();
        var run = GeneratorHarness.RunGenerator("using KernelDsl;\n[KvStatistics]\npublic static partial class Statistics;\n");
        var step = run.Result.Results.Single().TrackedSteps[KernelDsl.Generator.TrackingNames.KvStatisticsDeclarations].Single().Outputs.Single().Value;
        var spec = (KvStatisticsSpec)((DeclarationResult)step).Spec!;
        Assert.Equal(((int)attribute.Input, attribute.HeadDim, attribute.SliceTokens, (int)attribute.VOutput, attribute.Threads),
            ((int)spec.Input, spec.HeadDim, spec.SliceTokens, (int)spec.VOutput, spec.Threads));
        Assert.Equal(attribute.Targets.Select(t => (int)t), spec.Targets.Select(t => (int)t));
    }
}
