using System.Diagnostics;
using KernelDsl.Generator.Cuda;
using KernelDsl.Generator.Helpers;
using KernelDsl.Generator.Model;
using static KernelDsl.Generator.Model.ScalarType;

namespace GeneratorTests.Modifiers;

/// <summary>
/// The CUDA of attention modifiers: the device functions as text, and the mask block classifier proven sound and tight by
/// compiling it, with the mask's own device function as the element-wise truth, on the host with g++ and checking
/// thousands of random blocks against every element.
/// </summary>
public class ModifierCudaWriterTests
{
    // ---- IR builders ---------------------------------------------------------------------------------------------

    private static ModifierExpression P(string name, ScalarType t = Int) => new ParameterExpression(t, name);
    private static ModifierExpression L(string name, ScalarType t = Int) => new LocalExpression(t, name);
    private static ModifierExpression I(int value) => new LiteralExpression(Int, value.ToString(System.Globalization.CultureInfo.InvariantCulture));
    private static ModifierExpression F(string text) => new LiteralExpression(Float, text);
    private static ModifierExpression B(ScalarType t, string op, ModifierExpression l, ModifierExpression r) => new BinaryExpression(t, op, l, r);
    private static ModifierExpression Cmp(string op, ModifierExpression l, ModifierExpression r) => new BinaryExpression(Bool, op, l, r);
    private static ModifierExpression ToFloat(ModifierExpression e) => new ConvertExpression(Float, e);
    private static ModifierExpression Call(ScalarType t, MathFunction f, params ModifierExpression[] args) => new CallExpression(t, f, args.ToEquatableArray());

    private static readonly ModifierParameter[] Indices =
    [
        new("b", Int, false, ParameterRole.Batch), new("h", Int, false, ParameterRole.Head),
        new("q", Int, false, ParameterRole.Query), new("k", Int, false, ParameterRole.Key),
    ];

    private static ModifierSpec Spec(ModifierKind kind, string method, ModifierExpression result, ModifierParameter[] runtime, params ModifierLocal[] locals) => new()
    {
        Kind = kind,
        MethodName = method,
        DeclaringType = "global::Users.Mods",
        Parameters = (kind == ModifierKind.Score ? new[] { new ModifierParameter("score", Float, false, ParameterRole.Score) } : [])
            .Concat(Indices).Concat(runtime).ToEquatableArray(),
        Locals = locals.ToEquatableArray(),
        Result = result,
    };

    private static ModifierParameter Runtime(string name, ScalarType t = Int, bool array = false) => new(name, t, array, ParameterRole.Runtime);

    // cap * MathF.Tanh(score / cap)
    private static readonly ModifierSpec Softcap = Spec(ModifierKind.Score, "Softcap",
        B(Float, "*", P("cap", Float), Call(Float, MathFunction.Tanh, B(Float, "/", P("score", Float), P("cap", Float)))), [Runtime("cap", Float)]);

    // score + slopes[h] * (float)(k - q)
    private static readonly ModifierSpec Alibi = Spec(ModifierKind.Score, "Alibi",
        B(Float, "+", P("score", Float), B(Float, "*", new IndexExpression(Float, "slopes", P("h")), ToFloat(B(Int, "-", P("k"), P("q"))))),
        [Runtime("slopes", Float, array: true)]);

    // k <= q
    private static readonly ModifierSpec Causal = Spec(ModifierKind.Mask, "Causal", Cmp("<=", P("k"), P("q")), []);

    // k <= q && q - k < window
    private static readonly ModifierSpec Window = Spec(ModifierKind.Mask, "SlidingWindow",
        B(Bool, "&&", Cmp("<=", P("k"), P("q")), Cmp("<", B(Int, "-", P("q"), P("k")), P("window"))), [Runtime("window")]);

    // k < prefix || k <= q
    private static readonly ModifierSpec Prefix = Spec(ModifierKind.Mask, "PrefixLm",
        B(Bool, "||", Cmp("<", P("k"), P("prefix")), Cmp("<=", P("k"), P("q"))), [Runtime("prefix")]);

    // doc[q] == doc[k]
    private static readonly ModifierSpec Document = Spec(ModifierKind.Mask, "Document",
        Cmp("==", new IndexExpression(Int, "doc", P("q")), new IndexExpression(Int, "doc", P("k"))), [Runtime("doc", Int, array: true)]);

    // doc[q] == doc[k] && k <= q, with and without [Nondecreasing] doc: the library's DocumentMask.SameDocument.
    private static ModifierSpec SameDocument(bool nondecreasing) => Spec(ModifierKind.Mask, "SameDocument",
        B(Bool, "&&", Cmp("==", new IndexExpression(Int, "doc", P("q")), new IndexExpression(Int, "doc", P("k"))), Cmp("<=", P("k"), P("q"))),
        [new ModifierParameter("doc", Int, true, ParameterRole.Runtime, nondecreasing)]);

    // k <= q && doc[k] == doc[q], [Nondecreasing] doc: the reads run only where k <= q, so only blocks below the diagonal read the ends.
    private static readonly ModifierSpec GuardedDocument = Spec(ModifierKind.Mask, "GuardedDocument",
        B(Bool, "&&", Cmp("<=", P("k"), P("q")), Cmp("==", new IndexExpression(Int, "doc", P("k")), new IndexExpression(Int, "doc", P("q")))),
        [new ModifierParameter("doc", Int, true, ParameterRole.Runtime, Nondecreasing: true)]);

    // var d = q - k; return d >= 0 && d < window;
    private static readonly ModifierSpec LocalWindow = Spec(ModifierKind.Mask, "LocalWindow",
        B(Bool, "&&", Cmp(">=", L("d"), I(0)), Cmp("<", L("d"), P("window"))), [Runtime("window")],
        new ModifierLocal("d", Int, B(Int, "-", P("q"), P("k"))));

    // Math.Abs(q - k) <= window && q / 64 >= k / 64 && (k > q ? k - q : q - k) % 5 != 4
    private static readonly ModifierSpec Bands = Spec(ModifierKind.Mask, "Bands",
        B(Bool, "&&",
            B(Bool, "&&", Cmp("<=", Call(Int, MathFunction.Abs, B(Int, "-", P("q"), P("k"))), P("window")), Cmp(">=", B(Int, "/", P("q"), I(64)), B(Int, "/", P("k"), I(64)))),
            Cmp("!=", B(Int, "%", new ConditionalExpression(Int, Cmp(">", P("k"), P("q")), B(Int, "-", P("k"), P("q")), B(Int, "-", P("q"), P("k"))), I(5)), I(4))),
        [Runtime("window")]);

    // (float)(q - k) * 0.5f < (float)window || q % 7 == 3 || !(Math.Min(q, prefix) < k) && MathF.Sqrt((float)k) <= (float)q * 0.25f
    private static readonly ModifierSpec Floaty = Spec(ModifierKind.Mask, "Floaty",
        B(Bool, "||",
            B(Bool, "||", Cmp("<", B(Float, "*", ToFloat(B(Int, "-", P("q"), P("k"))), F("0.5f")), ToFloat(P("window"))), Cmp("==", B(Int, "%", P("q"), I(7)), I(3))),
            B(Bool, "&&", new UnaryExpression(Bool, "!", Cmp("<", Call(Int, MathFunction.Min, P("q"), P("prefix")), P("k"))),
                Cmp("<=", Call(Float, MathFunction.Sqrt, ToFloat(P("k"))), B(Float, "*", ToFloat(P("q")), F("0.25f"))))),
        [Runtime("window"), Runtime("prefix")]);

    // (q >> 4) == (k >> 4) || MathF.Floor((float)k * 0.125f) < MathF.Exp(-(float)window) + (float)(q / 8) && k != doc[q]
    private static readonly ModifierSpec Odd = Spec(ModifierKind.Mask, "Odd",
        B(Bool, "||",
            Cmp("==", B(Int, ">>", P("q"), I(4)), B(Int, ">>", P("k"), I(4))),
            B(Bool, "&&",
                Cmp("<", Call(Float, MathFunction.Floor, B(Float, "*", ToFloat(P("k")), F("0.125f"))),
                    B(Float, "+", Call(Float, MathFunction.Exp, new UnaryExpression(Float, "-", ToFloat(P("window")))), ToFloat(B(Int, "/", P("q"), I(8))))),
                Cmp("!=", P("k"), new IndexExpression(Int, "doc", P("q"))))),
        [Runtime("window"), Runtime("doc", Int, array: true)]);

    // ---- Device functions as text --------------------------------------------------------------------------------

    private static string Function(ModifierSpec m)
    {
        var w = new CodeWriter();
        ModifierWriter.WriteFunction(w, m);
        return w.ToString();
    }

    [Fact]
    public void Softcap_divides_by_the_caps_reciprocal_and_its_tanh_runs_on_the_sfu()
    {
        // cap is the same for every score, so 1/cap is computed once and each score pays a multiplication.
        Assert.Equal("""
            // From C# Users.Mods.Softcap
            static __device__ __forceinline__ float kdsl_score_mod(float u_score, int u_b, int u_h, int u_q, int u_k, float u_cap)
            {
                return u_cap * kdsl_tanh_approx(u_score * (1.f / u_cap));
            }

            """.Replace("\r\n", "\n"), Function(Softcap));
        Assert.True(ModifierWriter.UsesApproximateTanh(Softcap));
        Assert.False(ModifierWriter.UsesFullRangeDivision(Softcap));
        Assert.Empty(ModifierWriter.FloatIndices(Softcap));
        // Outside a score modifier (a mask, whose classifier bounds the exact function) tanh stays tanhf.
        Assert.Equal("tanhf(u_score)", ModifierWriter.Expression(new CallExpression(Float, MathFunction.Tanh, new ModifierExpression[] { new ParameterExpression(Float, "score") }.ToEquatableArray())));
    }

    [Fact]
    public void Window_function_is_exact()
    {
        Assert.Equal("""
            // From C# Users.Mods.SlidingWindow
            static __device__ __forceinline__ bool kdsl_mask_mod(int u_b, int u_h, int u_q, int u_k, int u_window)
            {
                return (u_k <= u_q) && ((u_q - u_k) < u_window);
            }

            """.Replace("\r\n", "\n"), Function(Window));
    }

    [Fact]
    public void Alibi_reads_the_head_slope_through_a_restrict_pointer_and_subtracts_float_positions()
    {
        Assert.Equal("float u_score, int u_b, int u_h, int u_q, int u_k, float uf_q, float uf_k, const float* __restrict__ u_slopes", ModifierWriter.CudaParameterList(Alibi));
        Assert.Contains("return u_score + (u_slopes[u_h] * (uf_k - uf_q));", Function(Alibi));
        // Spelled exactly (as a mask's classifier reads it), the conversion stays.
        Assert.Equal("(u_score + (u_slopes[u_h] * ((float)(u_k - u_q))))", ModifierWriter.Expression(Alibi.Result));
        Assert.Equal("kdsl_score_mod", ModifierWriter.FunctionName(Alibi));
        Assert.Equal(["u_slopes"], ModifierWriter.RuntimeArgumentNames(Alibi));
        var site = new ModifierWriter.ModifierSite("b", "h", "row", "key", QueryFloat: "qf", KeyFloat: "kf");
        Assert.Equal("kdsl_score_mod(s, b, h, row, key, qf, kf, u_slopes)", ModifierWriter.Call(Alibi, site, "s"));
        // Float positions are exact below 2^24, so such a kernel's launchers hold sequences to 2^22 tokens; softcap's need not.
        Assert.True(ModifierWriter.UsesFloatPositions(Alibi));
        Assert.False(ModifierWriter.UsesFloatPositions(Softcap));
        Assert.False(ModifierWriter.UsesFloatPositions(null));
    }

    // var d = k - q + 1; return score * (1f + (float)b) / (float)d + (float)(-h) + (float)(k * 2) + (float)doc[k] + (float)(q + 1048576);
    private static readonly ModifierSpec Mixed = Spec(ModifierKind.Score, "Mixed",
        B(Float, "+", B(Float, "+", B(Float, "+", B(Float, "+",
            B(Float, "/", B(Float, "*", P("score", Float), B(Float, "+", F("1.f"), ToFloat(P("b")))), ToFloat(L("d"))),
            ToFloat(new UnaryExpression(Int, "-", P("h")))),
            ToFloat(B(Int, "*", P("k"), I(2)))),
            ToFloat(new IndexExpression(Int, "doc", P("k")))),
            ToFloat(B(Int, "+", P("q"), I(1 << 20)))),
        [Runtime("doc", Int, array: true)],
        new ModifierLocal("d", Int, B(Int, "+", B(Int, "-", P("k"), P("q")), I(1))));

    [Fact]
    public void Per_score_forms_take_only_position_sums_and_varying_divisors()
    {
        var text = Function(Mixed);
        // d = k − q + 1 is a position sum through a local, so its float is (uf_k − uf_q) + 1; it varies, so the division is div.full.
        Assert.Contains("kdsl_div_full(u_score * (1.f + uf_b), (uf_k - uf_q) + 1.f)", text);
        // (float)b and (float)(−h) are position sums too; k·2, an array element and a constant of 2^20 are not.
        Assert.Contains("(-uf_h)", text);
        Assert.Contains("((float)(u_k * 2))", text);
        Assert.Contains("((float)u_doc[u_k])", text);
        Assert.Contains("((float)(u_q + 1048576))", text);
        Assert.True(ModifierWriter.UsesFullRangeDivision(Mixed));
        Assert.Equal(["b", "h", "q", "k"], ModifierWriter.FloatIndices(Mixed).Select(p => p.Name));
        // The int local itself is still declared for anything else that reads it.
        Assert.Contains("const int u_d = (u_k - u_q) + 1;", text);
        var site = new ModifierWriter.ModifierSite("bb", "hh", "row", "key", QueryFloat: "qf", KeyFloat: "kf");
        Assert.Equal("kdsl_score_mod(s, bb, hh, row, key, (float)bb, (float)hh, qf, kf, u_doc)", ModifierWriter.Call(Mixed, site, "s"));

        var w = new CodeWriter();
        ModifierWriter.WriteModifiers(w, Mixed, null);
        Assert.Contains("asm(\"div.full.f32 %0, %1, %2;\"", w.ToString());
    }

    [Fact]
    public void Masks_keep_exact_conversions_and_division()
    {
        // A mask's classifier bounds the exact expressions, so its body is spelled as C# means it.
        Assert.Contains("((float)(u_q - u_k))", Function(Floaty));
        Assert.Empty(ModifierWriter.FloatIndices(Floaty));
        var site = new ModifierWriter.ModifierSite("b", "h", "row", "key", QueryFloat: "qf", KeyFloat: "kf");
        Assert.Equal("kdsl_mask_mod(b, h, row, key, u_window, u_prefix)", ModifierWriter.Call(Floaty, site));
        var divides = Spec(ModifierKind.Mask, "Divides", Cmp("<", B(Float, "/", ToFloat(P("k")), ToFloat(P("q"))), F("2.f")), []);
        Assert.Contains("(((float)u_k) / ((float)u_q)) < 2.f", Function(divides));
        Assert.False(ModifierWriter.UsesFullRangeDivision(divides));
    }

    [Fact]
    public void Locals_are_const_and_prefixed()
    {
        Assert.Equal("""
            // From C# Users.Mods.LocalWindow
            static __device__ __forceinline__ bool kdsl_mask_mod(int u_b, int u_h, int u_q, int u_k, int u_window)
            {
                const int u_d = u_q - u_k;
                return (u_d >= 0) && (u_d < u_window);
            }

            """.Replace("\r\n", "\n"), Function(LocalWindow));
    }

    [Fact]
    public void Calls_map_by_argument_type()
    {
        var x = P("x", Float);
        var d = P("y", ScalarType.Double);
        var n = P("n");
        Assert.Equal("fminf(fmaxf(u_x, 0.f), 1.f)", ModifierWriter.Expression(Call(Float, MathFunction.Clamp, x, F("0.f"), F("1.f"))));
        Assert.Equal("min(max(u_n, 0), 7)", ModifierWriter.Expression(Call(Int, MathFunction.Clamp, n, I(0), I(7))));
        Assert.Equal("((u_x > 0.f) - (u_x < 0.f))", ModifierWriter.Expression(Call(Int, MathFunction.Sign, x)));
        Assert.Equal("rint(u_y)", ModifierWriter.Expression(Call(ScalarType.Double, MathFunction.Round, d)));
        Assert.Equal("rintf(u_x)", ModifierWriter.Expression(Call(Float, MathFunction.Round, x)));
        Assert.Equal("abs(u_n)", ModifierWriter.Expression(Call(Int, MathFunction.Abs, n)));
        Assert.Equal("atan2f(u_x, 1.f)", ModifierWriter.Expression(Call(Float, MathFunction.Atan2, x, F("1.f"))));
        Assert.Equal("fmodf(u_x, 2.f)", ModifierWriter.Expression(B(Float, "%", x, F("2.f"))));
        Assert.Equal("(u_n << (3 & 31))", ModifierWriter.Expression(B(Int, "<<", n, I(3))));
        Assert.Equal("(-(-1))", ModifierWriter.Expression(new UnaryExpression(Int, "-", new LiteralExpression(Int, "-1"))));
        Assert.Equal("((int)u_x)", ModifierWriter.Expression(new ConvertExpression(Int, x)));
    }

    [Fact]
    public void Causal_classifier_is_one_comparison()
    {
        var w = new CodeWriter();
        ModifierWriter.WriteBlockClassifier(w, Causal);
        var text = w.ToString();
        Assert.Contains("#ifndef KDSL_BLOCK_SKIP", text);
        Assert.EndsWith("""
            // Block classifier of C# Users.Mods.Causal: the mask over [q_lo, q_hi] x [k_lo, k_hi] (inclusive), by intervals.
            static __device__ __forceinline__ int kdsl_mask_block(int u_b, int u_h, int q_lo, int q_hi, int k_lo, int k_hi)
            {
                double iv0_lo = (double)k_lo, iv0_hi = (double)k_hi;  // k ranges over the block's columns
                double iv1_lo = (double)q_lo, iv1_hi = (double)q_hi;  // q ranges over the block's rows
                const bool bv2_t = iv0_lo <= iv1_hi, bv2_f = iv0_hi > iv1_lo;  // u_k <= u_q
                return (bv2_t && !bv2_f) ? KDSL_BLOCK_FULL : (bv2_t ? KDSL_BLOCK_PARTIAL : KDSL_BLOCK_SKIP);
            }

            """.Replace("\r\n", "\n"), text);
    }

    [Fact]
    public void Nondecreasing_array_over_a_range_reads_its_two_ends()
    {
        var w = new CodeWriter();
        ModifierWriter.WriteBlockClassifier(w, SameDocument(nondecreasing: true));
        Assert.EndsWith("""
            // Block classifier of C# Users.Mods.SameDocument: the mask over [q_lo, q_hi] x [k_lo, k_hi] (inclusive), by intervals.
            static __device__ __forceinline__ int kdsl_mask_block(int u_b, int u_h, int q_lo, int q_hi, int k_lo, int k_hi, const int* __restrict__ u_doc)
            {
                double iv0_lo = (double)q_lo, iv0_hi = (double)q_hi;  // q ranges over the block's rows
                double iv1_lo, iv1_hi;  // u_doc[u_q]
                if (iv0_lo == iv0_hi) iv1_lo = iv1_hi = (double)u_doc[(int)iv0_lo];
                else if (iv0_lo > -KDSL_IV_INF && iv0_hi < KDSL_IV_INF) { iv1_lo = (double)u_doc[(int)iv0_lo]; iv1_hi = (double)u_doc[(int)iv0_hi]; }  // nondecreasing: bounded by its ends
                else kdsl_iv_unknown(iv1_lo, iv1_hi);
                double iv2_lo = (double)k_lo, iv2_hi = (double)k_hi;  // k ranges over the block's columns
                double iv3_lo, iv3_hi;  // u_doc[u_k]
                if (iv2_lo == iv2_hi) iv3_lo = iv3_hi = (double)u_doc[(int)iv2_lo];
                else if (iv2_lo > -KDSL_IV_INF && iv2_hi < KDSL_IV_INF) { iv3_lo = (double)u_doc[(int)iv2_lo]; iv3_hi = (double)u_doc[(int)iv2_hi]; }  // nondecreasing: bounded by its ends
                else kdsl_iv_unknown(iv3_lo, iv3_hi);
                const bool bv4_t = iv1_lo <= iv3_hi && iv3_lo <= iv1_hi, bv4_f = !(iv1_lo == iv1_hi && iv3_lo == iv3_hi && iv1_lo == iv3_lo);  // u_doc[u_q] == u_doc[u_k]
                const bool bv5_t = iv2_lo <= iv0_hi, bv5_f = iv2_hi > iv0_lo;  // u_k <= u_q
                const bool bv6_t = bv4_t && bv5_t, bv6_f = bv4_f || bv5_f;  // (u_doc[u_q] == u_doc[u_k]) && (u_k <= u_q)
                return (bv6_t && !bv6_f) ? KDSL_BLOCK_FULL : (bv6_t ? KDSL_BLOCK_PARTIAL : KDSL_BLOCK_SKIP);
            }

            """.Replace("\r\n", "\n"), w.ToString());
    }

    [Fact]
    public void Nondecreasing_ends_are_read_only_where_every_pair_reads_the_array()
    {
        var w = new CodeWriter();
        ModifierWriter.WriteBlockClassifier(w, GuardedDocument);
        var text = w.ToString();
        // The reads sit right of k <= q: the ends are read only where k <= q holds for the whole block.
        Assert.Contains("if (bv2_t && iv0_lo == iv0_hi) iv3_lo = iv3_hi = (double)u_doc[(int)iv0_lo];", text);
        Assert.Contains("else if (!bv2_f && iv0_lo > -KDSL_IV_INF && iv0_hi < KDSL_IV_INF) { iv3_lo = (double)u_doc[(int)iv0_lo]; iv3_hi = (double)u_doc[(int)iv0_hi]; }", text);

        // An index whose interval's ends need not be values it takes (q - (q - k) spans [k_lo - (q_hi - q_lo), ...]) stays unknown.
        var loose = Spec(ModifierKind.Mask, "Loose", Cmp("==", new IndexExpression(Int, "doc", B(Int, "-", P("q"), B(Int, "-", P("q"), P("k")))), I(0)),
            [new ModifierParameter("doc", Int, true, ParameterRole.Runtime, Nondecreasing: true)]);
        w = new CodeWriter();
        ModifierWriter.WriteBlockClassifier(w, loose);
        Assert.DoesNotContain("nondecreasing", w.ToString());
    }

    [Fact]
    public void Score_modifiers_have_no_classifier() =>
        Assert.Throws<ArgumentException>(() => ModifierWriter.WriteBlockClassifier(new CodeWriter(), Softcap));

    // ---- The classifier on the host ------------------------------------------------------------------------------

    /// <summary>One mask under test: its C++ reference, its runtime arguments and what else the blocks must show.</summary>
    public sealed record Case(ModifierSpec Mask, string Reference, string Setup, bool Tight, string Extra = "", string Final = "", bool AllClasses = false);

    private const string DocSetup = "if (it % 500 == 0) { int d = 0; for (int i = 0; i < 4096;) { int n = 1 + (int)rnd(rnd(2) ? 300 : 20); for (int j = 0; j < n && i < 4096; ++j) g_doc[i++] = d; ++d; } }";

    /// <summary>Packed documents of 1 to 300 tokens with nondecreasing (and gapped) ids.</summary>
    private const string PackedSetup = "if (it % 500 == 0) { int d = (int)rnd(5); for (int i = 0; i < 4096;) { int n = 1 + (int)rnd(rnd(2) ? 300 : 20); for (int j = 0; j < n && i < 4096; ++j) g_doc[i++] = d; d += 1 + (int)rnd(3); } }";

    /// <summary>
    /// What a block of packed documents is, from its corners: -1 where the classifier need not decide, else the one
    /// class of "same document and k &lt;= q": SKIP when the q and k documents are disjoint ranges, and for a block whose
    /// rows and columns each lie in one document, exactly what its elements are.
    /// </summary>
    private const string PackedWant = """
        const bool one_q = g_doc[q_lo] == g_doc[q_hi], one_k = g_doc[k_lo] == g_doc[k_hi];
        const bool disjoint = g_doc[q_hi] < g_doc[k_lo] || g_doc[k_hi] < g_doc[q_lo];
        const int want = disjoint ? KDSL_BLOCK_SKIP : !(one_q && one_k) ? -1 : k_hi <= q_lo ? KDSL_BLOCK_FULL : k_lo > q_hi ? KDSL_BLOCK_SKIP : KDSL_BLOCK_PARTIAL;

        """;

    private static readonly Dictionary<string, Case> Cases = new()
    {
        // [Nondecreasing] ids: the documents' block structure in closed form.
        ["same-document-nondecreasing"] = new(SameDocument(nondecreasing: true), "return g_doc[q] == g_doc[k] && k <= q;", PackedSetup, Tight: false, AllClasses: true,
            Extra: PackedWant + """
                if (want >= 0 && cls != want) { std::printf("document block [%d,%d]x[%d,%d]: class %d, want %d\n", q_lo, q_hi, k_lo, k_hi, cls, want); return 1; }
                if (want >= 0 && !(q_lo == q_hi && k_lo == k_hi)) ++g_decided;
                """,
            Final: """std::printf("decided by the ends: %ld\n", g_decided); if (g_decided < 300) { std::printf("too few decided blocks\n"); return 1; }"""),
        // The same mask without the promise: every block below the diagonal is partial, single documents or not.
        ["same-document-unannotated"] = new(SameDocument(nondecreasing: false), "return g_doc[q] == g_doc[k] && k <= q;", PackedSetup, Tight: false,
            Extra: PackedWant + """
                if (!(q_lo == q_hi && k_lo == k_hi) && k_hi <= q_lo && cls != KDSL_BLOCK_PARTIAL) { std::printf("unannotated block [%d,%d]x[%d,%d]: class %d\n", q_lo, q_hi, k_lo, k_hi, cls); return 1; }
                if (want >= 0 && want != KDSL_BLOCK_PARTIAL && cls == KDSL_BLOCK_PARTIAL) ++g_decided;
                """,
            Final: """std::printf("partial where the ends would decide: %ld\n", g_decided); if (g_decided < 300) { std::printf("too few such blocks\n"); return 1; }"""),
        // The reads right of k <= q: blocks below the diagonal are decided as above; those across it stay partial.
        ["guarded-document"] = new(GuardedDocument, "return k <= q && g_doc[k] == g_doc[q];", PackedSetup, Tight: false, AllClasses: true,
            Extra: PackedWant + """
                const bool across = k_lo <= q_hi && k_hi > q_lo;
                if (want >= 0 && cls != want && !(across && cls == KDSL_BLOCK_PARTIAL)) { std::printf("guarded block [%d,%d]x[%d,%d]: class %d, want %d\n", q_lo, q_hi, k_lo, k_hi, cls, want); return 1; }
                """),
        ["causal"] = new(Causal, "return k <= q;", "", Tight: true),
        ["window"] = new(Window, "return k <= q && q - k < g_window;", "g_window = 1 + (int)rnd(rnd(2) ? 400 : 40);", Tight: true),
        ["prefix"] = new(Prefix, "return k < g_prefix || k <= q;", "g_prefix = (int)rnd(1200);", Tight: true),
        ["local-window"] = new(LocalWindow, "return q - k >= 0 && q - k < g_window;", "g_window = 1 + (int)rnd(rnd(2) ? 400 : 40);", Tight: true),
        // Per-token ids are unknown over a range: only a single (q, k) is decided.
        ["document"] = new(Document, "return g_doc[q] == g_doc[k];", DocSetup, Tight: false,
            Extra: "if ((q_lo == q_hi && k_lo == k_hi) != (cls != KDSL_BLOCK_PARTIAL)) { std::printf(\"document block [%d,%d]x[%d,%d]: class %d\\n\", q_lo, q_hi, k_lo, k_hi, cls); return 1; }"),
        ["bands"] = new(Bands, "int d = q > k ? q - k : k - q; return d <= g_window && q / 64 >= k / 64 && d % 5 != 4;", "g_window = (int)rnd(rnd(2) ? 400 : 40);", Tight: false),
        ["floaty"] = new(Floaty, "return (float)(q - k) * 0.5f < (float)g_window || q % 7 == 3 || (!(std::min(q, g_prefix) < k) && std::sqrt((float)k) <= (float)q * 0.25f);",
            "g_window = (int)rnd(300) - 100; g_prefix = (int)rnd(1200);", Tight: false),
        ["odd"] = new(Odd, "return (q >> 4) == (k >> 4) || (std::floor((float)k * 0.125f) < std::exp(-(float)g_window) + (float)(q / 8) && k != g_doc[q]);",
            DocSetup + " g_window = (int)rnd(8) - 4;", Tight: false),
    };

    public static TheoryData<string> CaseNames => new(Cases.Keys);

    [Theory]
    [MemberData(nameof(CaseNames))]
    public void Block_classifier_is_sound_and_tight_on_the_host(string name)
    {
        var c = Cases[name];
        var gxx = FindGxx() ?? throw SkipException("g++ is not installed: the block classifier cannot be compiled on the host.");
        var dir = Path.Combine(Path.GetTempPath(), "kdsl-classifier-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            var source = Path.Combine(dir, name.Replace('-', '_') + ".cpp");
            File.WriteAllText(source, Program(c));
            var exe = Path.Combine(dir, "classifier");
            var (rc, output) = Run(gxx, $"-std=c++17 -O1 -frounding-math -Wno-unused-variable -o \"{exe}\" \"{source}\"");
            Assert.True(rc == 0, $"g++ failed:\n{output}\n--- source ---\n{File.ReadAllText(source)}");
            (rc, output) = Run(exe, "");
            Assert.True(rc == 0, $"{name}: {output}\n--- source ---\n{File.ReadAllText(source)}");
            TestContext.Current.TestOutputHelper?.WriteLine(output);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private static Exception SkipException(string why)
    {
        Assert.Skip(why);
        return new InvalidOperationException(why);
    }

    /// <summary>The host program: CUDA shims, the mask's device function and classifier, and a random block driver.</summary>
    private static string Program(Case c)
    {
        var w = new CodeWriter();
        w.Raw(HostShims);
        ModifierWriter.WriteFunction(w, c.Mask);
        ModifierWriter.WriteBlockClassifier(w, c.Mask);
        var args = string.Concat(ModifierWriter.RuntimeArgumentNames(c.Mask).Select(n => ", " + n.Replace("u_", "g_")));
        w.Raw($$"""
            static bool reference(int b, int h, int q, int k) { (void)b; (void)h; {{c.Reference}} }
            static int block_width() { int r = (int)rnd(6); return r == 0 ? 0 : r == 1 ? 63 : r == 2 ? 127 : (int)rnd(300); }
            int main()
            {
                long counts[3] = {0, 0, 0};
                for (int it = 0; it < 3000; ++it)
                {
                    {{c.Setup}}
                    const int b = (int)rnd(4), h = (int)rnd(16);
                    const int q_lo = (int)rnd(1500);
                    const int k_lo = rnd(4) == 0 ? (int)rnd(1500) : std::max(0, q_lo + (int)rnd(700) - 500);
                    const int q_hi = q_lo + block_width(), k_hi = k_lo + block_width();
                    const int cls = kdsl_mask_block(b, h, q_lo, q_hi, k_lo, k_hi{{args}});
                    if (cls < 0 || cls > 2) { std::printf("class %d\n", cls); return 1; }
                    bool any_true = false, any_false = false;
                    for (int q = q_lo; q <= q_hi; ++q)
                        for (int k = k_lo; k <= k_hi; ++k)
                        {
                            const bool v = kdsl_mask_mod(b, h, q, k{{args}});
                            if (v != reference(b, h, q, k)) { std::printf("device function disagrees with the reference at q=%d k=%d\n", q, k); return 1; }
                            any_true |= v;
                            any_false |= !v;
                        }
                    if ((cls == KDSL_BLOCK_SKIP && any_true) || (cls == KDSL_BLOCK_FULL && any_false))
                    {
                        std::printf("unsound: block [%d,%d]x[%d,%d] classified %d, has true %d false %d\n", q_lo, q_hi, k_lo, k_hi, cls, any_true, any_false);
                        return 1;
                    }
                    if ({{(c.Tight ? "true" : "false")}} && cls == KDSL_BLOCK_PARTIAL && !(any_true && any_false))
                    {
                        std::printf("not tight: uniform block [%d,%d]x[%d,%d] (all %s) classified partial\n", q_lo, q_hi, k_lo, k_hi, any_true ? "true" : "false");
                        return 1;
                    }
                    {{c.Extra}}
                    counts[cls]++;
                }
                std::printf("skip %ld, full %ld, partial %ld\n", counts[0], counts[1], counts[2]);
                {{c.Final}}
                if (counts[KDSL_BLOCK_PARTIAL] == 0 || ({{(c.Tight || c.AllClasses ? "true" : "false")}} && (counts[KDSL_BLOCK_SKIP] == 0 || counts[KDSL_BLOCK_FULL] == 0))) { std::printf("too few classes seen\n"); return 1; }
                return 0;
            }
            """);
        return w.ToString();
    }

    /// <summary>Just enough CUDA for the host: qualifiers, bit casts and the directed-rounding intrinsics (-frounding-math).</summary>
    private const string HostShims = """
        #include <algorithm>
        #include <cfenv>
        #include <cmath>
        #include <cstdio>
        #include <cstdlib>
        #include <cstring>
        using std::abs;
        using std::max;
        using std::min;
        #define __device__
        #define __forceinline__ inline
        static inline double __longlong_as_double(long long x) { double d; std::memcpy(&d, &x, sizeof d); return d; }
        static inline float __int_as_float(int x) { float f; std::memcpy(&f, &x, sizeof f); return f; }
        #define KDSL_HOST_DIRECTED(name, mode, expr) static inline double name(double a, double b) { std::fesetround(mode); volatile double x = a, y = b; volatile double r = expr; std::fesetround(FE_TONEAREST); return r; }
        KDSL_HOST_DIRECTED(__dadd_rd, FE_DOWNWARD, x + y)
        KDSL_HOST_DIRECTED(__dadd_ru, FE_UPWARD, x + y)
        KDSL_HOST_DIRECTED(__dsub_rd, FE_DOWNWARD, x - y)
        KDSL_HOST_DIRECTED(__dsub_ru, FE_UPWARD, x - y)
        KDSL_HOST_DIRECTED(__dmul_rd, FE_DOWNWARD, x * y)
        KDSL_HOST_DIRECTED(__dmul_ru, FE_UPWARD, x * y)
        static inline float __double2float_rd(double a) { std::fesetround(FE_DOWNWARD); volatile double x = a; volatile float r = (float)x; std::fesetround(FE_TONEAREST); return r; }
        static inline float __double2float_ru(double a) { std::fesetround(FE_UPWARD); volatile double x = a; volatile float r = (float)x; std::fesetround(FE_TONEAREST); return r; }
        static int g_window, g_prefix;
        static int g_doc[4096];
        static long g_decided;
        static unsigned long long g_rng = 88172645463325252ull;
        static unsigned rnd(unsigned n) { g_rng ^= g_rng << 13; g_rng ^= g_rng >> 7; g_rng ^= g_rng << 17; return (unsigned)(g_rng % n); }

        """;

    private static string? FindGxx()
    {
        try
        {
            var (rc, _) = Run("g++", "--version");
            return rc == 0 ? "g++" : null;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return null;
        }
    }

    private static (int ExitCode, string Output) Run(string file, string arguments)
    {
        var info = new ProcessStartInfo(file, arguments) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        using var p = Process.Start(info)!;
        var stderr = p.StandardError.ReadToEndAsync();
        var stdout = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        return (p.ExitCode, stdout + stderr.Result);
    }
}
