using System.Collections.Immutable;
using KernelDsl.Generator;
using KernelDsl.Generator.Helpers;
using KernelDsl.Generator.Model;
using KernelDsl.Generator.Validation;
using NvrtcAvailability = KernelDsl.NvrtcAvailability;
using NvrtcRequest = KernelDsl.NvrtcRequest;

namespace GeneratorTests.Emission;

/// <summary>
/// Attention tile attributes the shipped declarations do not exercise: BlockN above 128 makes one block's int32 P·V
/// exceed the float-bias range (255·127·BlockN ≥ 2^22), so the kernel must fall back to plain int32 accumulators and
/// I2F; the emitted CUDA must say so and still compile.
/// </summary>
public class AttentionTileTests
{
    private static AttentionSpec Spec(int blockN) => new()
    {
        Type = new TypeDeclaration("Users", "Attention", "class", true, EquatableArray<string>.Empty),
        Targets = new[] { Sm.Sm80, Sm.Sm90 }.ToEquatableArray(),
        SmemLayouts = new[]
        {
            new SmemLayoutSpec(Operand.Q, Element.S8, new Swizzle(2, 4, 3)),
            new SmemLayoutSpec(Operand.K, Element.S8, new Swizzle(2, 4, 3)),
            new SmemLayoutSpec(Operand.V, Element.S8, new Swizzle(2, 4, 3)),
        }.ToEquatableArray(),
        CopyAtoms = new[]
        {
            new CopyAtomSpec(Operand.Q, CopyAtomKind.Ldsm), new CopyAtomSpec(Operand.K, CopyAtomKind.Ldsm), new CopyAtomSpec(Operand.V, CopyAtomKind.LdsmTransPrmt),
        }.ToEquatableArray(),
        Mma = MmaAtomKind.M16N8K32_S32S8S8,
        PvMma = MmaAtomKind.M16N8K32_S32U8S8,
        HeadDim = 64, BlockM = 128, BlockN = blockN, Warps = 8, Stages = 1, Causal = false, Output = Element.F16, Lse = true,
    };

    private static string Cuda(AttentionSpec spec)
    {
        Assert.Empty(AttentionValidator.Validate(spec).Where(f => f.Rule.Severity == RuleSeverity.Error));
        return KernelGenerator.EmitCuda(spec);
    }

    [Fact]
    public void Up_to_BlockN_128_the_pv_partials_are_read_through_the_float_bias()
    {
        Assert.True(new AttentionPlan(Spec(128)).BiasedPv);
        Assert.Contains("(__int_as_float(ob[jt][0]) - KDSL_FLOAT_BIAS)", Cuda(Spec(128)));
    }

    [Fact]
    public void Past_BlockN_128_they_fall_back_to_int32_and_a_conversion()
    {
        var spec = Spec(256);
        Assert.False(new AttentionPlan(spec).BiasedPv);
        var cuda = Cuda(spec);
        Assert.Contains("int ob[2][4] = {{0, 0, 0, 0}, {0, 0, 0, 0}};", cuda);
        Assert.Contains("o[ci * 2 + jt][0] += (float)ob[jt][0];", cuda);
        Assert.DoesNotContain("_from(ob[", cuda);
        var compiler = NvrtcAvailability.GetOrSkip(Assert.Skip);
        Assert.NotEmpty(compiler.Compile(new NvrtcRequest(cuda, "AttentionBlockN256", "sm_80", ImmutableArray<string>.Empty)).Cubin);
    }

    /// <summary>
    /// K scales finer than the key block on the mma.sync form: the kernel strides a head's scales by ⌈seq_k / KScaleKeys⌉,
    /// the count its launcher checks kScale against (it once strided them by BlockN), and reads a block's groups apart.
    /// </summary>
    [Fact]
    public void K_scales_finer_than_the_block_are_strided_as_the_launcher_counts_them()
    {
        var spec = Spec(64) with { KScaleKeys = 32 };
        Assert.Equal(2, new AttentionPlan(spec).KScalesPerBlock);
        var cuda = Cuda(spec);
        Assert.Contains("k_tiles = (seq_k + 31) / 32;  // Q scales per 128 rows, K scales per 32 keys", cuda);
        Assert.Contains("for (int ks = 0; ks < 2; ++ks)", cuda);
        var launcher = KernelGenerator.Emit(spec).Single(f => !f.HintName.EndsWith(".cu.g.cs", StringComparison.Ordinal)).Text;
        Assert.Contains("((seqK + KScaleKeys - 1) / KScaleKeys)", launcher);
        Assert.Contains("public const int KScaleKeys = 32;", launcher);
        var compiler = NvrtcAvailability.GetOrSkip(Assert.Skip);
        Assert.NotEmpty(compiler.Compile(new NvrtcRequest(cuda, "AttentionKScales32", "sm_80", ImmutableArray<string>.Empty)).Cubin);
    }
}
