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
        TrackingNames.UnavailableKernels, TrackingNames.UnavailableSources,
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

    [Fact]
    public void A_paged_decode_caches_through_a_comment_and_reemits_on_its_stages()
    {
        const string Decode = """
            using KernelDsl;
            namespace Users;
            [PagedDecode(HeadDim = 64, Stages = 2)]
            public static partial class Decode;
            """;
        static IEnumerable<(string Step, IncrementalStepRunReason Reason)> DecodeReasons(GeneratorRunResult result) =>
            new[] { TrackingNames.PagedDecodeDeclarations, TrackingNames.EmittedSources }.Where(result.TrackedSteps.ContainsKey)
                .SelectMany(step => result.TrackedSteps[step].SelectMany(s => s.Outputs).Select(o => (step, o.Reason)));
        var comment = DecodeReasons(Rerun(Decode, "// a comment\n" + Decode)).ToList();
        Assert.Contains(comment, r => r.Step == TrackingNames.EmittedSources);
        Assert.All(comment, r => Assert.True(r.Reason is IncrementalStepRunReason.Cached or IncrementalStepRunReason.Unchanged, $"{r.Step} was {r.Reason}"));
        Assert.Contains(DecodeReasons(Rerun(Decode, Decode.Replace("Stages = 2", "Stages = 3", StringComparison.Ordinal))),
            r => r.Step == TrackingNames.EmittedSources && r.Reason == IncrementalStepRunReason.Modified);
    }

    [Fact]
    public void An_AlsoCausal_declaration_caches_both_kernels_through_a_comment_and_reemits_both_on_its_stages()
    {
        const string Attention = """
            using KernelDsl;
            namespace Users;
            [FlashAttentionForward(HeadDim = 64, BlockM = 128, BlockN = 64, Warps = 8, Stages = 2, AlsoCausal = true)]
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
        static List<IncrementalStepRunReason> Emitted(GeneratorRunResult result) =>
            result.TrackedSteps[TrackingNames.EmittedSources].SelectMany(s => s.Outputs).Select(o => o.Reason).ToList();
        var comment = Emitted(Rerun(Attention, "// a comment\n" + Attention));
        Assert.Equal(2, comment.Count);  // the declaration's kernel and its causal twin
        Assert.All(comment, r => Assert.True(r is IncrementalStepRunReason.Cached or IncrementalStepRunReason.Unchanged, $"emitted source was {r}"));
        var stages = Emitted(Rerun(Attention, Attention.Replace("Stages = 2", "Stages = 1", StringComparison.Ordinal)));
        Assert.Equal(2, stages.Count(r => r == IncrementalStepRunReason.Modified));
    }

    /// <summary>The declaration with a KDSL0301 (BlockK not a multiple of the MMA's k): it gets placeholder members instead of a kernel.</summary>
    private static readonly string Broken = Declaration.Replace("BlockK = 64", "BlockK = 48", StringComparison.Ordinal);

    [Fact]
    public void A_comment_leaves_a_broken_declarations_placeholders_cached()
    {
        var result = Rerun(Broken, "// a comment above everything\n" + Broken);
        var reasons = Reasons(result).ToList();
        Assert.Contains(reasons, r => r.Step == TrackingNames.UnavailableSources);
        // The diagnostics move with the comment; what the placeholders are made from does not.
        Assert.All(reasons.Where(r => r.Step is TrackingNames.UnavailableKernels or TrackingNames.UnavailableSources),
            r => Assert.True(r.Reason is IncrementalStepRunReason.Cached or IncrementalStepRunReason.Unchanged, $"{r.Step} was {r.Reason}"));
    }

    [Fact]
    public void Fixing_the_error_replaces_the_placeholders_with_the_kernel()
    {
        var compilation = GeneratorHarness.Compilation(Broken);
        var driver = GeneratorHarness.Driver().RunGenerators(compilation, TestContext.Current.CancellationToken);
        Assert.Equal(["Users.Gemm.unavailable.cu.g.cs", "Users.Gemm.unavailable.g.cs"],
            driver.GetRunResult().Results.Single().GeneratedSources.Select(s => s.HintName).Order(StringComparer.Ordinal));
        var tree = compilation.SyntaxTrees.Single();
        var fixedRun = driver.RunGenerators(compilation.ReplaceSyntaxTree(tree, CSharpSyntaxTree.ParseText(Declaration, GeneratorHarness.ParseOptions, path: tree.FilePath, cancellationToken: TestContext.Current.CancellationToken)),
            TestContext.Current.CancellationToken).GetRunResult().Results.Single();
        Assert.Equal([RegistryHint, "Users.Gemm.cu.g.cs", "Users.Gemm.g.cs"], fixedRun.GeneratedSources.Select(s => s.HintName).Order(StringComparer.Ordinal));
        Assert.Contains(Reasons(fixedRun), r => r.Step == TrackingNames.UnavailableSources && r.Reason == IncrementalStepRunReason.Removed);
    }

    private const string RegistryHint = "KernelDsl.DeclaredKernels.g.cs";

    // Two kernel types with their own [MaskModifier], each in its own file, both Like one plain declaration in a third.
    private const string BaseAttention = """
        using KernelDsl;
        namespace Users;
        [FlashAttentionForward(HeadDim = 64, BlockM = 128, BlockN = 64, Warps = 8, Stages = 2)]
        [SmemLayout(Operand.Q, Element.S8, 3, 4, 3)]
        [SmemLayout(Operand.K, Element.S8, 3, 4, 3)]
        [SmemLayout(Operand.V, Element.S8, 3, 4, 3)]
        [CopyAtom(Operand.Q, CopyAtoms.Ldsm)]
        [CopyAtom(Operand.K, CopyAtoms.Ldsm)]
        [CopyAtom(Operand.V, CopyAtoms.LdsmTransPrmt)]
        [MmaAtom(MmaAtoms.M16N8K32_S32S8S8)]
        [MmaAtom(MmaAtoms.M16N8K32_S32U8S8, Product = MmaProduct.PV)]
        public static partial class BaseAttention;
        """;

    private const string WindowFamily = """
        using KernelDsl;
        namespace Users;
        public static partial class Window
        {
            [MaskModifier]
            public static bool Visible(int b, int h, int q, int k, int window) => k <= q && q - k < window;

            [FlashAttentionForward(Like = typeof(BaseAttention))] public static partial class Kernel;
        }
        """;

    private const string PrefixFamily = """
        using KernelDsl;
        namespace Users;
        public static partial class Prefix
        {
            [MaskModifier]
            public static bool Visible(int b, int h, int q, int k, int prefix) => k < prefix || k <= q;

            [FlashAttentionForward(Like = typeof(BaseAttention))] public static partial class Kernel;
        }
        """;

    /// <summary>The reasons of a step's outputs, by the kernel type whose files each output carries (EmittedSources) or "other".</summary>
    private static IEnumerable<(string Step, string Kernel, IncrementalStepRunReason Reason)> ReasonsByKernel(GeneratorRunResult result) =>
        OurSteps.Where(result.TrackedSteps.ContainsKey)
            .SelectMany(step => result.TrackedSteps[step].SelectMany(s => s.Outputs).Select(o => (step, KernelOf(o.Value), o.Reason)));

    private static string KernelOf(object value) => value is IEnumerable<GeneratedSource> files && files.FirstOrDefault() is { } file
        ? file.HintName.Replace(".cu.g.cs", "", StringComparison.Ordinal).Replace(".g.cs", "", StringComparison.Ordinal)
        : "other";

    /// <summary>
    /// Editing one modifier's body re-emits only the kernels that apply it. The pipeline keys on
    /// ForAttributeWithMetadataName, which re-runs its transform for every attributed type in an edited syntax tree (and
    /// only there), so the families sit in separate files: the edited file's kernel is re-read and its spec, holding the
    /// translated modifier, differs, so its EmittedSources output is Modified; the other file's kernel is not re-read, and
    /// every one of its steps, EmittedSources included, is Cached or Unchanged. The registry (the list of kernel names)
    /// does not change either. (With both families in one file the other kernel would be re-read too; this test does not
    /// cover that layout.)
    /// </summary>
    [Fact]
    public void Changing_one_modifier_body_reemits_only_the_kernel_that_applies_it()
    {
        var compilation = GeneratorHarness.Compilation(BaseAttention, WindowFamily, PrefixFamily);
        var driver = GeneratorHarness.Driver().RunGenerators(compilation, TestContext.Current.CancellationToken);
        var first = driver.GetRunResult();
        Assert.Empty(first.Diagnostics.Where(d => d.Severity == DiagnosticSeverity.Error));
        Assert.Contains(first.Results.Single().GeneratedSources, s => s.HintName == "Users.Window.Kernel.cu.g.cs");
        Assert.Contains(first.Results.Single().GeneratedSources, s => s.HintName == "Users.Prefix.Kernel.cu.g.cs");

        var tree = compilation.SyntaxTrees.ElementAt(1);
        var edited = WindowFamily.Replace("q - k < window", "q - k <= window", StringComparison.Ordinal);
        Assert.NotEqual(WindowFamily, edited);
        var result = driver.RunGenerators(
                compilation.ReplaceSyntaxTree(tree, CSharpSyntaxTree.ParseText(edited, GeneratorHarness.ParseOptions, path: tree.FilePath, cancellationToken: TestContext.Current.CancellationToken)),
                TestContext.Current.CancellationToken)
            .GetRunResult().Results.Single();

        var reasons = ReasonsByKernel(result).ToList();
        var emitted = reasons.Where(r => r.Step == TrackingNames.EmittedSources).ToList();
        Assert.Contains(emitted, r => r.Kernel == "Users.Window.Kernel" && r.Reason == IncrementalStepRunReason.Modified);
        Assert.Contains(emitted, r => r.Kernel == "Users.Prefix.Kernel");
        Assert.Contains(emitted, r => r.Kernel == "Users.BaseAttention");
        Assert.All(emitted.Where(r => r.Kernel != "Users.Window.Kernel"),
            r => Assert.True(r.Reason is IncrementalStepRunReason.Cached or IncrementalStepRunReason.Unchanged, $"{r.Kernel}'s {r.Step} was {r.Reason}"));
        Assert.All(reasons.Where(r => r.Step == TrackingNames.Registry),
            r => Assert.True(r.Reason is IncrementalStepRunReason.Cached or IncrementalStepRunReason.Unchanged, $"{r.Step} was {r.Reason}"));

        // The other file's declaration is not re-read at all: ForAttributeWithMetadataName's outputs for it are Cached.
        var declarations = result.TrackedSteps[TrackingNames.AttentionDeclarations].SelectMany(s => s.Outputs).ToList();
        Assert.Equal(1, declarations.Count(o => o.Reason == IncrementalStepRunReason.Modified));
        Assert.All(declarations.Where(o => o.Reason != IncrementalStepRunReason.Modified),
            o => Assert.True(o.Reason is IncrementalStepRunReason.Cached or IncrementalStepRunReason.Unchanged, $"a declaration was {o.Reason}"));

        var window = result.GeneratedSources.Single(s => s.HintName == "Users.Window.Kernel.cu.g.cs").SourceText.ToString();
        Assert.Contains("(u_q - u_k) <= u_window", window);
    }
    private const string DecodeWindow = """
        using KernelDsl;
        namespace Users;
        public static partial class DecodeWindow
        {
            [MaskModifier]
            public static bool Visible(int b, int h, int q, int k, int window) => k <= q && q - k < window;

            [PagedDecode(HeadDim = 64, Stages = 2)] public static partial class Decode;
        }
        """;

    private const string DecodeCap = """
        using System;
        using KernelDsl;
        namespace Users;
        public static partial class DecodeCap
        {
            [ScoreModifier]
            public static float Cap(float s, int b, int h, int q, int k, float cap) => cap * MathF.Tanh(s / cap);

            [PagedDecode(HeadDim = 64, Stages = 2)] public static partial class Decode;
        }
        """;

    /// <summary>
    /// A decode variant that applies modifiers caches as a plain one does: a comment re-emits nothing, and editing one
    /// modifier's body re-emits only the decode variant that applies it (the families in separate files, as above).
    /// </summary>
    [Fact]
    public void A_decode_variant_with_modifiers_reemits_only_when_its_own_modifier_changes()
    {
        var compilation = GeneratorHarness.Compilation(DecodeWindow, DecodeCap);
        var driver = GeneratorHarness.Driver().RunGenerators(compilation, TestContext.Current.CancellationToken);
        Assert.Empty(driver.GetRunResult().Diagnostics.Where(d => d.Severity == DiagnosticSeverity.Error));
        GeneratorRunResult Edit(string edited)
        {
            var tree = compilation.SyntaxTrees.First();
            return driver.RunGenerators(
                    compilation.ReplaceSyntaxTree(tree, CSharpSyntaxTree.ParseText(edited, GeneratorHarness.ParseOptions, path: tree.FilePath, cancellationToken: TestContext.Current.CancellationToken)),
                    TestContext.Current.CancellationToken)
                .GetRunResult().Results.Single();
        }

        var comment = ReasonsByKernel(Edit("// a comment\n" + DecodeWindow)).ToList();
        Assert.Contains(comment, r => r.Step == TrackingNames.EmittedSources && r.Kernel == "Users.DecodeWindow.Decode");
        Assert.All(comment.Where(r => r.Step is TrackingNames.EmittedSources or TrackingNames.Registry),
            r => Assert.True(r.Reason is IncrementalStepRunReason.Cached or IncrementalStepRunReason.Unchanged, $"{r.Kernel}'s {r.Step} was {r.Reason}"));

        var edited = Edit(DecodeWindow.Replace("q - k < window", "q - k <= window", StringComparison.Ordinal));
        var emitted = ReasonsByKernel(edited).Where(r => r.Step == TrackingNames.EmittedSources).ToList();
        Assert.Contains(emitted, r => r.Kernel == "Users.DecodeWindow.Decode" && r.Reason == IncrementalStepRunReason.Modified);
        Assert.Contains(emitted, r => r.Kernel == "Users.DecodeCap.Decode");
        Assert.All(emitted.Where(r => r.Kernel != "Users.DecodeWindow.Decode"),
            r => Assert.True(r.Reason is IncrementalStepRunReason.Cached or IncrementalStepRunReason.Unchanged, $"{r.Kernel}'s {r.Step} was {r.Reason}"));
        Assert.Contains("(u_q - u_k) <= u_window", edited.GeneratedSources.Single(s => s.HintName == "Users.DecodeWindow.Decode.cu.g.cs").SourceText.ToString());
    }
}
