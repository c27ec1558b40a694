using System.Reflection;
using System.Runtime.Loader;
using GeneratorTests.Infrastructure;
using Microsoft.CodeAnalysis;

namespace GeneratorTests.Generation;

/// <summary>
/// A declaration with a KDSL error still gets its members, with the signatures a valid declaration gets, so its uses
/// compile and the mistake is one diagnostic (the KDSL error), not that plus a CS0117 at every use; the members throw,
/// naming the error, if ever run.
/// </summary>
public class UnavailableKernelTests
{
    private const string Gemm = """
        using KernelDsl;
        namespace Users;
        [Int8Gemm(BlockM = 64, BlockN = 64, BlockK = 64, Warps = 4, Stages = 2, Layout = GemmLayout.NN)]
        [SmemLayout(Operand.A, Element.S8, 2, 4, 3)]
        [SmemLayout(Operand.B, Element.S8, 2, 4, 4)]
        [CopyAtom(Operand.A, CopyAtoms.Ldsm)]
        [CopyAtom(Operand.B, CopyAtoms.LdsmTransPrmt)]
        [MmaAtom(MmaAtoms.M16N8K32_S32S8S8)]
        public static partial class Kernel;
        """;

    private const string Attention = """
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
        public static partial class Kernel;
        """;

    private const string Quantize = """
        using KernelDsl;
        namespace Users;
        [Quantize(Input = Element.F16, Granularity = QuantGranularity.PerRowBlock, BlockRows = 128, HeadDim = 128, Threads = 256)]
        public static partial class Kernel;
        """;

    private const string Merge = """
        using KernelDsl;
        namespace Users;
        [LseMerge(HeadDim = 128, Threads = 128)]
        public static partial class Kernel;
        """;

    /// <summary>An attention family: the kernel is the form Users.Window.Kernel, with the family's mask and its runtime parameter.</summary>
    private const string Family = Attention + """

        [AttentionForms]
        public static partial class Forms
        {
            [FlashAttentionForward(Like = typeof(Users.Kernel), Stages = 2)] public static partial class Kernel;
        }

        [AttentionFamily(typeof(Forms))]
        public static partial class Window
        {
            [MaskModifier] public static bool Visible(int b, int h, int q, int k, int window) => q - k < window;
        }
        """;

    /// <summary>(valid declaration, the edit that breaks it, the error it then has, the kernel type's C# name, uses of members only this family has).</summary>
    public static TheoryData<string, string, string, string, string, string> Cases => new()
    {
        { "gemm", Gemm, "BlockK = 64|BlockK = 48", "KDSL0301", "Users.Kernel", "Users.Kernel.Launch(default!, default!, default!, default!, 64, 64, 64); _ = Users.Kernel.BlockK;" },
        { "gemm-atom", Gemm, "CopyAtoms.LdsmTransPrmt|CopyAtoms.LdsmTrans", "KDSL0501", "Users.Kernel", "_ = Users.Kernel.Stages;" },
        { "attention", Attention, "CopyAtoms.LdsmTransPrmt|CopyAtoms.Ldsm", "KDSL0501", "Users.Kernel", "_ = Users.Kernel.Info; _ = Users.Kernel.Tile;" },
        { "quantize", Quantize, "Threads = 256|Threads = 100", "KDSL0003", "Users.Kernel", "_ = Users.Kernel.OutputLength(1, 1, 1); _ = nameof(Users.Kernel.CountNonFinite);" },
        { "merge", Merge, "Threads = 128|Threads = 100", "KDSL0003", "Users.Kernel", "" },
        { "family form", Family, "Stages = 2)] public static partial class Kernel;|Stages = 9)] public static partial class Kernel;", "KDSL0003", "Users.Window.Kernel", "_ = Users.Window.Kernel.Info;" },
    };

    private static string Broken(string valid, string edit)
    {
        var (from, to) = (edit.Split('|')[0], edit.Split('|')[1]);
        Assert.Contains(from, valid, StringComparison.Ordinal);
        return valid.Replace(from, to, StringComparison.Ordinal);
    }

    private static string Uses(string type, string extra) => $$"""

        public static class Uses
        {
            public static void Use()
            {
                _ = nameof({{type}}.Launch);
                _ = {{type}}.Module;
                _ = {{type}}.CudaSource;
                _ = {{type}}.KernelName;
                _ = {{type}}.ThreadsPerBlock;
                _ = {{type}}.SharedMemoryBytes;
                {{extra}}
            }
        }
        """;

    [Theory]
    [MemberData(nameof(Cases))]
    public void A_declaration_with_an_error_reports_it_once_and_its_uses_compile(string name, string valid, string edit, string id, string type, string extra)
    {
        var clean = GeneratorHarness.RunGenerator(valid + Uses(type, extra));
        Assert.Empty(clean.GeneratorDiagnostics.Where(d => d.Severity == DiagnosticSeverity.Error));
        Assert.Empty(clean.CompilationErrors);

        var run = GeneratorHarness.RunGenerator(Broken(valid, edit) + Uses(type, extra));
        Assert.Contains(run.GeneratorDiagnostics, d => d.Id == id);
        Assert.True(run.CompilationErrors.IsEmpty, $"{name}: {string.Join("\n", run.CompilationErrors)}");
        Assert.DoesNotContain(run.Sources, s => s.HintName == type.Replace("global::", "") + ".g.cs");
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void The_members_have_the_signatures_of_a_valid_declaration(string name, string valid, string edit, string id, string type, string extra)
    {
        _ = (id, extra);
        static string[] Members(string source, string type)
        {
            var run = GeneratorHarness.RunGenerator(source);
            var symbol = run.Output.GetTypeByMetadataName(type.Replace(".Window.", ".Window+", StringComparison.Ordinal))!;
            return symbol.GetMembers().Where(m => !m.IsImplicitlyDeclared && m.Kind != SymbolKind.NamedType && m.DeclaredAccessibility == Accessibility.Public)
                .Select(m => m.ToDisplayString(Signature)).Order(StringComparer.Ordinal).ToArray();
        }
        var expected = Members(valid, type);
        Assert.Contains(expected, m => m.Contains("Launch(", StringComparison.Ordinal));
        Assert.True(expected.SequenceEqual(Members(Broken(valid, edit), type)), name);
    }

    /// <summary>A member as its callers see it: modifiers, type, name, and each parameter's type, name and default.</summary>
    private static readonly SymbolDisplayFormat Signature = new(
        typeQualificationStyle: SymbolDisplayTypeQualificationStyle.NameAndContainingTypesAndNamespaces,
        genericsOptions: SymbolDisplayGenericsOptions.IncludeTypeParameters,
        memberOptions: SymbolDisplayMemberOptions.IncludeModifiers | SymbolDisplayMemberOptions.IncludeAccessibility | SymbolDisplayMemberOptions.IncludeType
            | SymbolDisplayMemberOptions.IncludeParameters | SymbolDisplayMemberOptions.IncludeRef,
        parameterOptions: SymbolDisplayParameterOptions.IncludeType | SymbolDisplayParameterOptions.IncludeName | SymbolDisplayParameterOptions.IncludeDefaultValue
            | SymbolDisplayParameterOptions.IncludeParamsRefOut,
        miscellaneousOptions: SymbolDisplayMiscellaneousOptions.IncludeNullableReferenceTypeModifier | SymbolDisplayMiscellaneousOptions.UseSpecialTypes);

    [Fact]
    public void The_members_throw_naming_the_error_and_the_CUDA_source_is_an_error_directive()
    {
        var run = GeneratorHarness.RunGenerator(Broken(Gemm, "BlockK = 64|BlockK = 48"));
        using var image = new MemoryStream();
        var emitted = run.Output.Emit(image, cancellationToken: TestContext.Current.CancellationToken);
        Assert.True(emitted.Success, string.Join("\n", emitted.Diagnostics));
        var context = new AssemblyLoadContext("unavailable", isCollectible: true);
        try
        {
            image.Position = 0;
            var kernel = context.LoadFromStream(image).GetType("Users.Kernel")!;
            var launch = kernel.GetMethods().First(m => m.Name == "Launch");
            var thrown = Assert.Throws<TargetInvocationException>(() => launch.Invoke(null, new object?[launch.GetParameters().Length]));
            var error = Assert.IsType<InvalidOperationException>(thrown.InnerException);
            Assert.Contains("'Users.Kernel' has no kernel", error.Message, StringComparison.Ordinal);
            Assert.Contains("KDSL0301: BlockK = 48 is not a multiple of the MMA's k", error.Message, StringComparison.Ordinal);
            var module = Assert.Throws<TargetInvocationException>(() => kernel.GetProperty("Module")!.GetValue(null));
            Assert.IsType<InvalidOperationException>(module.InnerException);
            var cuda = (string)kernel.GetField("CudaSource")!.GetValue(null)!;
            Assert.StartsWith("#error 'Users.Kernel' has no kernel: its declaration has KDSL0301", cuda, StringComparison.Ordinal);
        }
        finally
        {
            context.Unload();
        }
    }

    [Fact]
    public void A_family_whose_modifier_has_an_error_reports_it_once_and_every_form_keeps_its_members()
    {
        var source = Family.Replace("[FlashAttentionForward(Like = typeof(Users.Kernel), Stages = 2)] public static partial class Kernel;",
                "[FlashAttentionForward(Like = typeof(Users.Kernel), Stages = 2)] public static partial class Kernel;\n    [FlashAttentionForward(Like = typeof(Users.Kernel), Stages = 3)] public static partial class Deeper;",
                StringComparison.Ordinal)
            .Replace("=> q - k < window;", "{ while (k > q) { k--; } return q - k < window; }", StringComparison.Ordinal)
            + Uses("Users.Window.Kernel", "_ = Users.Window.Deeper.Module; _ = Users.Window.Deeper.Info; _ = Users.Window.Deeper.CudaSource;");
        var run = GeneratorHarness.RunGenerator(source);
        Assert.Single(run.GeneratorDiagnostics, d => d.Id == "KDSL0602");
        Assert.DoesNotContain(run.GeneratorDiagnostics, d => d.Severity == DiagnosticSeverity.Error && d.Id != "KDSL0602");
        Assert.True(run.CompilationErrors.IsEmpty, string.Join("\n", run.CompilationErrors));
        Assert.Contains(run.Sources, s => s.HintName == "Users.Window.Deeper.unavailable.g.cs");
        // The modifier's runtime parameter stays in every placeholder Launch, so calls passing it still bind.
        foreach (var form in new[] { "Kernel", "Deeper" })
        {
            var placeholder = run.Sources.Single(s => s.HintName == $"Users.Window.{form}.unavailable.g.cs").SourceText.ToString();
            Assert.Contains("int window)", placeholder, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void The_placeholder_of_a_broken_modifier_keeps_its_runtime_parameters()
    {
        // The mask's body has a loop (KDSL0602): the placeholder Launch still takes `int window`, so a call that passes it
        // binds, and KDSL0602 stays the one error (without ModifierReader.Signatures it was CS1739 at every such call).
        var run = GeneratorHarness.RunGenerator(Family.Replace("=> q - k < window;", "{ while (k > q) { k--; } return q - k < window; }", StringComparison.Ordinal));
        Assert.Equal("KDSL0602", Assert.Single(run.GeneratorDiagnostics, d => d.Severity == DiagnosticSeverity.Error).Id);
        Assert.True(run.CompilationErrors.IsEmpty, string.Join("\n", run.CompilationErrors));
        var launch = run.Sources.Single(s => s.HintName == "Users.Window.Kernel.unavailable.g.cs").SourceText.ToString();
        Assert.Matches(@"public static void Launch\([^)]*, int window\)", launch);
    }

    /// <summary>
    /// A family whose score modifier has a runtime parameter KDSL0650 refuses, with a prefill form and a decode variant:
    /// every placeholder Launch appends the modifier's parameters to its own, so as declared 'lse' was CS0100 (a duplicate
    /// parameter) and 'base' a syntax error in the placeholder, beside the KDSL0650 that says to rename it.
    /// </summary>
    private const string ClashingFamily = Attention + """

        [AttentionForms]
        public static partial class Forms
        {
            [FlashAttentionForward(Like = typeof(Users.Kernel))] public static partial class MmaSync;
        }

        [AttentionFamily(typeof(Forms))]
        public static partial class ParamClash
        {
            [ScoreModifier] public static float Score(float score, int b, int h, int q, int k, float seq_q, PARAMETER) => score;
            [PagedDecode(HeadDim = 128)] public static partial class Decode;
        }
        """;

    [Theory]
    [InlineData("float lse", "lse_")]          // a parameter of both launchers (the reported case)
    [InlineData("float seqQ", "seqQ_")]        // a parameter of the prefill launcher
    [InlineData("float stream", "stream_")]    // the first parameter of both
    [InlineData("float lengths", "lengths_")]  // a parameter of the decode launcher only
    [InlineData("float arguments", "arguments_")]  // a local: harmless in a placeholder, renamed all the same
    [InlineData("float @base", "base_")]       // a keyword
    public void A_modifier_parameter_named_like_a_launcher_parameter_is_one_KDSL0650_and_the_placeholders_compile(string parameter, string renamed)
    {
        var run = GeneratorHarness.RunGenerator(ClashingFamily.Replace("PARAMETER", parameter, StringComparison.Ordinal));
        var errors = run.GeneratorDiagnostics.Where(d => d.Severity == DiagnosticSeverity.Error).ToList();
        Assert.NotEmpty(errors);
        Assert.All(errors, d => Assert.Equal("KDSL0650", d.Id));
        Assert.True(run.CompilationErrors.IsEmpty, string.Join("\n", run.CompilationErrors));
        // Each refused launcher's placeholder takes the parameter, renamed, in its place: positional calls still bind.
        var placeholders = run.Sources.Where(s => s.HintName.EndsWith(".unavailable.g.cs", StringComparison.Ordinal)).ToList();
        Assert.NotEmpty(placeholders);
        foreach (var placeholder in placeholders)
        {
            Assert.Contains($"float seq_q, float {renamed})", placeholder.SourceText.ToString(), StringComparison.Ordinal);
        }
    }

    [Fact]
    public void A_type_that_cannot_take_members_gets_none()
    {
        // Not partial (KDSL0001): adding members would only add CS0260.
        var run = GeneratorHarness.RunGenerator(Gemm.Replace("public static partial class Kernel;", "public static class Kernel { }", StringComparison.Ordinal));
        Assert.Contains(run.GeneratorDiagnostics, d => d.Id == "KDSL0001");
        Assert.Empty(run.Sources);
        Assert.Empty(run.CompilationErrors);
    }
}
