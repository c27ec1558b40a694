using System.Collections.Immutable;
using GeneratorTests.Infrastructure;
using KernelDsl;
using KernelDsl.Generator.Model;
using KernelDsl.Generator.Parsing;
using Microsoft.CodeAnalysis;

namespace GeneratorTests.Generation;

/// <summary>
/// A [PagedDecode] declared inside a type with modifiers (an [AttentionFamily], or any type, as for prefill kernels) applies
/// them: the spec carries them, the one signature gains their runtime parameters (launcher, kernel, <c>With</c>), the CUDA
/// calls the translated methods and the mask's classifier bounds the pages a tile visits. Wrong combinations are the
/// existing diagnostics, reported once.
/// </summary>
public class PagedDecodeModifierTests
{
    private const string Family = """
        using KernelDsl;
        namespace Users;

        [AttentionForms]
        public static partial class Forms
        {
            [FlashAttentionForward(HeadDim = 64, BlockM = 128, BlockN = 64, Warps = 8, Stages = 2)]
            [SmemLayout(Operand.Q, Element.S8, 3, 4, 3)]
            [SmemLayout(Operand.K, Element.S8, 3, 4, 3)]
            [SmemLayout(Operand.V, Element.S8, 3, 4, 3)]
            [CopyAtom(Operand.Q, CopyAtoms.Ldsm)]
            [CopyAtom(Operand.K, CopyAtoms.Ldsm)]
            [CopyAtom(Operand.V, CopyAtoms.LdsmTransPrmt)]
            [MmaAtom(MmaAtoms.M16N8K32_S32S8S8)]
            [MmaAtom(MmaAtoms.M16N8K32_S32U8S8, Product = MmaProduct.PV)]
            public static partial class Prefill;
        }

        [AttentionFamily(typeof(Forms))]
        public static partial class Window
        {
            MODIFIERS

            [PagedDecode(HeadDim = 128)] public static partial class Decode;
        }
        """;

    private const string WindowMask = "[MaskModifier] public static bool Visible(int b, int h, int q, int k, int window) => k <= q && q - k < window;";

    private static string Declare(string modifiers) => Family.Replace("MODIFIERS", modifiers, StringComparison.Ordinal);

    private static PagedDecodeSpec DecodeSpec(GeneratorHarness.Run run) =>
        run.Result.Results.Single().TrackedSteps[KernelDsl.Generator.TrackingNames.PagedDecodeDeclarations]
            .SelectMany(s => s.Outputs).Select(o => (DeclarationResult)o.Value).Select(r => (PagedDecodeSpec)r.Spec!).Single();

    [Fact]
    public void A_decode_variant_in_a_family_applies_its_mask_and_the_launcher_takes_its_arguments()
    {
        var run = GeneratorHarness.RunGenerator(Declare(WindowMask));
        Assert.Empty(run.GeneratorDiagnostics);
        Assert.Empty(run.CompilationErrors);
        var spec = DecodeSpec(run);
        Assert.Equal("Visible", spec.Mask?.MethodName);
        Assert.Null(spec.Score);
        var launcher = run.Source("Users.Window.Decode.g.cs");
        Assert.Contains("float softmaxScale, int window)", launcher);
        Assert.Contains("PagedDecodeKernel<global::System.Half> With(int window)", launcher);
        Assert.Contains("pages, splits, softmaxScale, window),", launcher);
        var cuda = SnapshotTests.RawStringContent(run.Source("Users.Window.Decode.cu.g.cs"));
        Assert.Contains("int u_window)", cuda);
        Assert.Contains("static __device__ __forceinline__ int kdsl_mask_block(", cuda);
        // The tile's query tokens as one group (the mask never reads h), positions in the cache.
        Assert.Contains("const int row_first = tile * 16, row_last = kdsl_min(tile * 16 + 15, packed - 1);", cuda);
        Assert.Contains("const int first_page = range_first + (int)((long long)split * range_pages / splits);", cuda);
        Assert.Contains("if (__all_sync(0xffffffffu, page_class == KDSL_BLOCK_SKIP)) continue;", cuda);
        Assert.Contains("!kdsl_mask_mod(b, row_h[e >> 1], row_q[e >> 1], key, u_window)", cuda);
        // The prefill form of the family is untouched by the decode variant nested beside it.
        Assert.Contains("int window)", run.Source("Users.Window.Prefill.g.cs"));
    }

    [Fact]
    public void A_mask_that_reads_h_is_classified_per_row_and_arrays_are_checked_against_what_they_are_indexed_by()
    {
        var run = GeneratorHarness.RunGenerator(Declare("""
            [MaskModifier] public static bool Visible(int b, int h, int q, int k, ReadOnlySpan<int> windows) => k <= q && q - k < windows[h];
            [ScoreModifier] public static float Bias(float s, int b, int h, int q, int k, ReadOnlySpan<float> bias) => s + bias[k];
            """).Replace("using KernelDsl;", "using System;\nusing KernelDsl;", StringComparison.Ordinal));
        Assert.Empty(run.GeneratorDiagnostics);
        Assert.Empty(run.CompilationErrors);
        var cuda = SnapshotTests.RawStringContent(run.Source("Users.Window.Decode.cu.g.cs"));
        Assert.Contains("const int row_first = kdsl_min(tile * 16 + lane % 16, packed - 1), row_last = row_first;", cuda);
        Assert.Contains("for (int page = lane / 16; page < causal_pages; page += 2)", cuda);
        Assert.Contains("const float score_unit = softmax_scale;", cuda);
        Assert.Contains("* KDSL_LOG2E;", cuda);
        var launcher = run.Source("Users.Window.Decode.g.cs");
        Assert.Contains("var longest = global::KernelDsl.Launching.KvDecodeWork.Longest(lengths);", launcher);
        Assert.Contains("LaunchGuard.Holds(bias, longest, nameof(bias), \"one element per position of the longest sequence: the modifier indexes it by k\");", launcher);
        Assert.Contains("LaunchGuard.Holds(windows, headsQ, nameof(windows), \"one element per query head: the modifier indexes it by h\");", launcher);
        Assert.Contains("With(global::KernelDsl.DeviceBuffer<float> bias, global::KernelDsl.DeviceBuffer<int> windows)", launcher);
    }

    /// <summary>
    /// A score modifier in the per-score forms (a varying divisor as div.full.f32, float positions for q − k) compiles in
    /// the prefill and decode kernels that call it, for sm_80, without spills.
    /// </summary>
    [Fact]
    [KernelDsl.Testing.RequiresNvrtc]
    public void Nvrtc_compiles_a_score_modifier_with_a_varying_divisor_and_float_positions()
    {
        var compiler = NvrtcAvailability.GetOrSkip(Assert.Skip);
        var run = GeneratorHarness.RunGenerator(Declare("""
            [ScoreModifier] public static float Decay(float s, int b, int h, int q, int k, float rate) => s / (1f + rate * (q - k)) - 0.5f * (k - q + 3);
            """));
        Assert.Empty(run.GeneratorDiagnostics);
        foreach (var kernel in new[] { "Users.Window.Prefill", "Users.Window.Decode" })
        {
            var cuda = SnapshotTests.RawStringContent(run.Source($"{kernel}.cu.g.cs"));
            Assert.Contains("return kdsl_div_full(u_s, 1.0f + (u_rate * (uf_q - uf_k))) - (0.5f * ((uf_k - uf_q) + 3.f));", cuda);
            Assert.Contains("div.full.f32", cuda);
            var result = compiler.Compile(new NvrtcRequest(cuda, kernel, "sm_80", ImmutableArray<string>.Empty, PtxasVerbose: true));
            Assert.NotEmpty(result.Kernels);
            Assert.All(result.Kernels, k => Assert.False(k.Spills, $"{k.Name} spills"));
        }
    }

    /// <summary>Both ways of classifying pages, with a score modifier, compile for sm_80 without spills.</summary>
    [Theory]
    [InlineData("k <= q && q - k < window")]
    [InlineData("k <= q && q - k < window + h")]
    [KernelDsl.Testing.RequiresNvrtc]
    public void Nvrtc_compiles_a_decode_variant_with_both_modifiers(string mask)
    {
        var compiler = NvrtcAvailability.GetOrSkip(Assert.Skip);
        var run = GeneratorHarness.RunGenerator(Declare($$"""
            [MaskModifier] public static bool Visible(int b, int h, int q, int k, int window) => {{mask}};
            [ScoreModifier] public static float Cap(float s, int b, int h, int q, int k, float cap) => cap * MathF.Tanh(s / cap);
            """).Replace("using KernelDsl;", "using System;\nusing KernelDsl;", StringComparison.Ordinal));
        Assert.Empty(run.GeneratorDiagnostics);
        var cuda = SnapshotTests.RawStringContent(run.Source("Users.Window.Decode.cu.g.cs"));
        var result = compiler.Compile(new NvrtcRequest(cuda, "Users.Window.Decode", "sm_80", ImmutableArray<string>.Empty, PtxasVerbose: true));
        Assert.Equal(2, result.Kernels.Count);
        Assert.All(result.Kernels, k => Assert.False(k.Spills, $"{k.Name} spills"));
    }

    [Theory]
    [InlineData("lengths")]  // a decode launcher parameter, though no prefill launcher has one
    [InlineData("splits")]
    [InlineData("longest")]  // the launcher's local for arrays indexed by q or k
    [InlineData("With")]
    public void KDSL0650_a_modifier_parameter_the_decode_launcher_already_has(string name)
    {
        var source = Declare($"[MaskModifier] public static bool Visible(int b, int h, int q, int k, int {name}) => k <= q;");
        var run = GeneratorHarness.RunGenerator(source);
        var d = Assert.Single(run.GeneratorDiagnostics, d => d.Id == "KDSL0650");
        Assert.Contains($"parameter '{name}' of modifier 'Visible'", d.GetMessage());
        Assert.Contains("already has a parameter, local or member of that name", d.GetMessage());
        // Reported by the decode variant, at its declaration, which is not emitted; the prefill form is.
        Assert.Contains("class Decode", source.Split('\n')[d.Location.GetLineSpan().StartLinePosition.Line]);
        Assert.Contains(run.Sources, s => s.HintName == "Users.Window.Decode.unavailable.g.cs");
        Assert.Contains(run.Sources, s => s.HintName == "Users.Window.Prefill.g.cs");
        Assert.True(run.CompilationErrors.IsEmpty, string.Join("\n", run.CompilationErrors));
    }

    [Fact]
    public void A_modifier_error_is_reported_once_though_the_decode_variant_applies_it_too()
    {
        var run = GeneratorHarness.RunGenerator(Declare("[MaskModifier] public static bool Visible(int b, int h, int q, int k, int window) { for (;;) { } }"));
        var d = Assert.Single(run.GeneratorDiagnostics, d => d.Id == "KDSL0602");
        Assert.Contains("for", d.GetMessage());
        // Neither kernel is emitted; both keep their members, the decode's with the modifier's parameter.
        Assert.Contains("int window)", run.Source("Users.Window.Decode.unavailable.g.cs"));
        Assert.Contains(run.Sources, s => s.HintName == "Users.Window.Prefill.unavailable.g.cs");
    }

    [Fact]
    public void A_decode_variant_nested_in_any_type_with_modifiers_applies_them()
    {
        var run = GeneratorHarness.RunGenerator("""
            using System;
            using KernelDsl;
            namespace Users;
            public static partial class Capped
            {
                [ScoreModifier] public static float Cap(float s, int b, int h, int q, int k, float cap) => cap * MathF.Tanh(s / cap);
                [PagedDecode(HeadDim = 64, Stages = 3)] public static partial class Decode;
            }
            """);
        Assert.Empty(run.GeneratorDiagnostics);
        Assert.Empty(run.CompilationErrors);
        Assert.Equal("Cap", DecodeSpec(run).Score?.MethodName);
        Assert.Contains("With(float cap)", run.Source("Users.Capped.Decode.g.cs"));
        Assert.Contains("kdsl_tanh_approx", SnapshotTests.RawStringContent(run.Source("Users.Capped.Decode.cu.g.cs")));
    }
}
