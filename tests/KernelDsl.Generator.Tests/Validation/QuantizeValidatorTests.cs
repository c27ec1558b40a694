namespace KernelDsl.Generator.Tests.Validation;

// Inside the namespace, so the generator's model enums win over the runtime's public ones of the same names.
using KernelDsl.Generator.Helpers;
using KernelDsl.Generator.Model;
using KernelDsl.Generator.Validation;

/// <summary>Each Quantize rule on a spec built directly (no Roslyn): the rule's id, where it points, and a message that names the parameter.</summary>
public class QuantizeValidatorTests
{
    internal static QuantizeSpec Spec() => new()
    {
        Type = new TypeDeclaration("Tests", "QuantizeProbe", "class", true, EquatableArray<string>.Empty),
        Targets = new[] { Sm.Sm80, Sm.Sm90 }.ToEquatableArray(),
        SmemLayouts = EquatableArray<SmemLayoutSpec>.Empty,
        CopyAtoms = EquatableArray<CopyAtomSpec>.Empty,
        Mma = null,
        Input = Element.F16,
        Granularity = QuantGranularity.PerRowBlock,
        BlockRows = 128,
        HeadDim = 128,
        SubtractChannelMean = false,
        Transposed = false,
        TransposedOrder = TokenOrder.Pi,
        TransposePad = 64,
        Threads = 256,
        Output = Element.S8,
    };

    private static QuantizeSpec VTransposed() => Spec() with { Granularity = QuantGranularity.PerChannel, Transposed = true };

    /// <summary>fp8 P·V's V: e4m3 per channel, π-transposed, for sm_89 and sm_90.</summary>
    private static QuantizeSpec VE4m3() => VTransposed() with { Output = Element.E4M3, Targets = new[] { Sm.Sm89, Sm.Sm90 }.ToEquatableArray() };

    private static Finding Single(QuantizeSpec spec, Rule rule, params string[] named)
    {
        var finding = Assert.Single(QuantizeValidator.Validate(spec));
        Assert.Equal(rule.Id, finding.Rule.Id);
        foreach (var text in named)
        {
            Assert.Contains(text, finding.Message, StringComparison.Ordinal);
        }
        return finding;
    }

    public static TheoryData<QuantizeSpec> ValidSpecs() =>
    [
        Spec(),
        Spec() with { BlockRows = 64, SubtractChannelMean = true },
        Spec() with { Granularity = QuantGranularity.PerChannel },
        VTransposed(),
        VTransposed() with { TransposedOrder = TokenOrder.Natural, TransposePad = 16, SubtractChannelMean = true },
        Spec() with { Input = Element.BF16, HeadDim = 64, Threads = 64 },
        Spec() with { HeadDim = 96, Threads = 1024, BlockRows = 16 },
        Spec() with { HeadDim = 256, BlockRows = 1024 },
        Spec() with { TransposePad = 7 }, // only a transposed output is padded
        VE4m3(),
        VE4m3() with { Transposed = false, Input = Element.BF16, HeadDim = 64 },
        VE4m3() with { Targets = new[] { Sm.Sm90a }.ToEquatableArray() },
    ];

    [Theory]
    [MemberData(nameof(ValidSpecs))]
    public void Sensible_declarations_have_no_findings(QuantizeSpec spec) => Assert.Empty(QuantizeValidator.Validate(spec));

    [Theory]
    [InlineData(Element.S8)]
    [InlineData(Element.F32)]
    [InlineData(Element.E4M3)]
    public void Input_must_be_f16_or_bf16(Element input)
    {
        var finding = Single(Spec() with { Input = input }, Rules.InvalidParameter, "Quantize.Input", input.ToString(), "f16 or bf16");
        Assert.Equal(TargetKind.Family, finding.Target.Kind);
    }

    [Theory]
    [InlineData(80)]
    [InlineData(32)]
    [InlineData(512)]
    [InlineData(0)]
    public void HeadDim_must_be_an_attention_head_dim(int headDim) =>
        Single(Spec() with { HeadDim = headDim }, Rules.InvalidParameter, "Quantize.HeadDim", $"= {headDim}", "64, 96, 128 or 256");

    [Fact]
    public void HeadDim_not_a_multiple_of_16_says_so() =>
        Single(Spec() with { HeadDim = 100 }, Rules.InvalidParameter, "Quantize.HeadDim = 100", "not a multiple of 16");

    [Theory]
    [InlineData(0)]
    [InlineData(-16)]
    [InlineData(8)]
    [InlineData(72)]
    [InlineData(2048)]
    public void BlockRows_must_be_a_positive_multiple_of_16(int rows) =>
        Single(Spec() with { BlockRows = rows }, Rules.InvalidParameter, "Quantize.BlockRows", $"= {rows}", "multiple of 16");

    [Theory]
    [InlineData(32)]
    [InlineData(96)]
    [InlineData(2048)]
    [InlineData(0)]
    public void Threads_must_be_a_power_of_two_from_64_to_1024(int threads) =>
        Single(Spec() with { Threads = threads }, Rules.InvalidParameter, "Quantize.Threads", $"= {threads}", "power of two from 64 to 1024");

    [Theory]
    [InlineData(0)]
    [InlineData(24)]
    [InlineData(2048)]
    public void TransposePad_of_a_pi_output_is_a_multiple_of_16(int pad) =>
        Single(VTransposed() with { TransposePad = pad }, Rules.InvalidParameter, "Quantize.TransposePad", $"= {pad}", "multiple of 16", "π order permutes whole 16-token groups");

    [Fact]
    public void TransposePad_of_a_natural_output_is_a_multiple_of_16_too() =>
        Single(VTransposed() with { TransposedOrder = TokenOrder.Natural, TransposePad = 40 }, Rules.InvalidParameter, "Quantize.TransposePad = 40", "16-byte chunks");

    [Fact]
    public void A_transposed_output_stages_its_block_within_48_KB_of_shared_memory() =>
        Single(VTransposed() with { HeadDim = 256, BlockRows = 176 }, Rules.InvalidParameter, "Quantize.BlockRows = 176", "50176 bytes here", "BlockRows ≤ 160");

    [Fact]
    public void A_transposed_output_is_quantized_per_channel() =>
        Single(Spec() with { Transposed = true }, Rules.InvalidParameter, "Quantize.Granularity = PerRowBlock", "QuantGranularity.PerChannel");

    [Theory]
    [InlineData(Element.S32)]
    [InlineData(Element.U8)]
    [InlineData(Element.F16)]
    public void Output_must_be_s8_or_e4m3(Element output) =>
        Single(Spec() with { Output = output }, Rules.InvalidParameter, "Quantize.Output", output.ToString(), "Element.S8 or Element.E4M3");

    [Fact]
    public void E4m3_output_is_per_channel_only()
    {
        var finding = Single(VE4m3() with { Granularity = QuantGranularity.PerRowBlock, Transposed = false }, Rules.InvalidParameter,
            "Quantize.Output = E4M3", "Granularity = PerRowBlock", "QuantGranularity.PerChannel");
        Assert.Equal(TargetKind.Family, finding.Target.Kind);
    }

    [Fact]
    public void E4m3_output_takes_no_channel_mean() =>
        Single(VE4m3() with { SubtractChannelMean = true }, Rules.InvalidParameter, "Quantize.Output = E4M3", "SubtractChannelMean = false");

    [Theory]
    [InlineData(Sm.Sm80)]
    [InlineData(Sm.Sm86)]
    [InlineData(Sm.Sm75)]
    public void E4m3_output_needs_sm_89(Sm below) =>
        Single(VE4m3() with { Targets = new[] { below, Sm.Sm90 }.ToEquatableArray() }, Rules.AtomTargetMismatch,
            "Quantize.Output = E4M3", "cvt.rn.satfinite.e4m3x2.f32", "needs sm_89", $"targets {below.ArchName()}");

    [Fact]
    public void S8_output_keeps_the_sm_80_targets() => Assert.Empty(QuantizeValidator.Validate(VTransposed() with { Targets = new[] { Sm.Sm75, Sm.Sm80 }.ToEquatableArray() }));

    [Fact]
    public void Targets_must_name_an_architecture() =>
        Single(Spec() with { Targets = EquatableArray<Sm>.Empty }, Rules.InvalidParameter, "Quantize.Targets");

    [Fact]
    public void A_declared_shared_memory_layout_is_an_error_not_ignored()
    {
        var spec = Spec() with { SmemLayouts = new[] { new SmemLayoutSpec(Operand.V, Element.S8, new Swizzle(3, 4, 3)) }.ToEquatableArray() };
        var finding = Single(spec, Rules.UnknownOperand, "Quantize has no operand V", "[SmemLayout]");
        Assert.Equal(new FindingTarget(TargetKind.SmemLayout, 0), finding.Target);
    }

    [Fact]
    public void A_declared_copy_atom_is_not_for_this_family()
    {
        var spec = Spec() with { CopyAtoms = new[] { new CopyAtomSpec(Operand.V, CopyAtomKind.CpAsync16), new CopyAtomSpec(Operand.V, CopyAtomKind.LdsmPretransposed) }.ToEquatableArray() };
        var findings = QuantizeValidator.Validate(spec);
        Assert.Equal(2, findings.Length);
        Assert.All(findings, f => Assert.Equal(Rules.AtomNotForFamily.Id, f.Rule.Id));
        Assert.Contains("CpAsync16 cannot be used for Quantize", findings[0].Message, StringComparison.Ordinal);
        Assert.Contains("LdsmPretransposed cannot be used for Quantize", findings[1].Message, StringComparison.Ordinal);
        Assert.Equal(new FindingTarget(TargetKind.CopyAtom, 1), findings[1].Target);
    }

    [Fact]
    public void A_declared_mma_atom_is_not_for_this_family()
    {
        var finding = Single(Spec() with { Mma = MmaAtomKind.M16N8K32_S32S8S8 }, Rules.AtomNotForFamily, "M16N8K32_S32S8S8 cannot be used for Quantize");
        Assert.Equal(FindingTarget.Mma, finding.Target);
    }

    [Fact]
    public void Independent_mistakes_are_all_reported()
    {
        var findings = QuantizeValidator.Validate(Spec() with { HeadDim = 80, Threads = 100, BlockRows = 10, Input = Element.S8 });
        Assert.Equal(["Quantize.Input", "Quantize.HeadDim", "Quantize.BlockRows", "Quantize.Threads"], findings.Select(f => f.Arguments[0]));
    }
}
