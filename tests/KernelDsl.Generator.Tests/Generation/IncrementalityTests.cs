using GeneratorTests.Infrastructure;
using KernelDsl.Generator;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;

namespace GeneratorTests.Generation;

/// <summary>The pipeline caches by value: edits that change no declaration re-run nothing downstream.</summary>
public class IncrementalityTests
{
    private const string Declaration = """
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

    private static readonly string[] OurSteps =
    [
        TrackingNames.GemmDeclarations, TrackingNames.Diagnostics, TrackingNames.ValidSpecs, TrackingNames.EmittedSources, TrackingNames.Registry,
    ];

    private static GeneratorRunResult Rerun(string before, string after)
    {
        var compilation = GeneratorHarness.Compilation(before);
        var driver = GeneratorHarness.Driver().RunGenerators(compilation);
        var tree = compilation.SyntaxTrees.Single();
        var edited = compilation.ReplaceSyntaxTree(tree, CSharpSyntaxTree.ParseText(after, GeneratorHarness.ParseOptions, path: tree.FilePath));
        return driver.RunGenerators(edited).GetRunResult().Results.Single();
    }

    private static IEnumerable<(string Step, IncrementalStepRunReason Reason)> Reasons(GeneratorRunResult result) =>
        OurSteps.Where(result.TrackedSteps.ContainsKey)
            .SelectMany(step => result.TrackedSteps[step].SelectMany(s => s.Outputs).Select(o => (step, o.Reason)));

    [Fact]
    public void Adding_a_comment_leaves_every_step_cached()
    {
        var result = Rerun(Declaration, "// a comment above everything\n" + Declaration + "\n// and one below\n");
        var reasons = Reasons(result).ToList();
        Assert.Contains(reasons, r => r.Step == TrackingNames.EmittedSources);
        Assert.All(reasons, r => Assert.True(r.Reason is IncrementalStepRunReason.Cached or IncrementalStepRunReason.Unchanged, $"{r.Step} was {r.Reason}"));
    }

    [Fact]
    public void Adding_an_unrelated_type_leaves_every_step_cached()
    {
        var result = Rerun(Declaration, Declaration + "\npublic sealed class Unrelated { public int X => 1; }\n");
        Assert.All(Reasons(result), r => Assert.True(r.Reason is IncrementalStepRunReason.Cached or IncrementalStepRunReason.Unchanged, $"{r.Step} was {r.Reason}"));
    }

    [Fact]
    public void Changing_an_attribute_reemits()
    {
        var result = Rerun(Declaration, Declaration.Replace("Stages = 2", "Stages = 3"));
        Assert.Contains(Reasons(result), r => r.Step == TrackingNames.EmittedSources && r.Reason == IncrementalStepRunReason.Modified);
    }
}
