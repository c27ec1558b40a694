using System.Globalization;
using GeneratorTests.Infrastructure;
using KernelDsl.Generator.Diagnostics;
using KernelDsl.Generator.Helpers;
using KernelDsl.Generator.Model;
using KernelDsl.Generator.Parsing;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;

namespace GeneratorTests.Modifiers;

/// <summary>
/// <see cref="ModifierReader"/> on real compilations: the IR of the modifiers attention users write, literal spelling,
/// the containing-type lookup, and every KDSL06xx rule at exactly the node it is about.
/// </summary>
public class ModifierReaderTests
{
    private const ScalarType Bool = ScalarType.Bool, Int = ScalarType.Int, Float = ScalarType.Float, Double = ScalarType.Double;

    private static string Source(string members) => $$"""
        using System;
        using KernelDsl;
        namespace Users;
        public partial class Mods
        {
        {{members}}
        }
        """;

    private static Compilation Compile(string source)
    {
        var compilation = GeneratorHarness.Compilation(source);
        Assert.Empty(compilation.GetDiagnostics().Where(d => d.Severity == DiagnosticSeverity.Error));
        return compilation;
    }

    /// <summary>Translates the one method of Mods that carries a modifier attribute.</summary>
    private static (ModifierSpec? Spec, List<DiagnosticInfo> Diagnostics, Compilation Compilation) Translate(string members)
    {
        var compilation = Compile(Source(members));
        var (method, kind) = compilation.GetTypeByMetadataName("Users.Mods")!.GetMembers().OfType<IMethodSymbol>()
            .SelectMany(m => m.GetAttributes().Select(a => (m, a.AttributeClass?.Name)))
            .Where(p => p.Name is "ScoreModifierAttribute" or "MaskModifierAttribute")
            .Select(p => (p.m, p.Name == "ScoreModifierAttribute" ? ModifierKind.Score : ModifierKind.Mask))
            .Single();
        var diagnostics = new List<DiagnosticInfo>();
        var spec = ModifierReader.Translate(method, kind, compilation, diagnostics, TestContext.Current.CancellationToken);
        return (spec, diagnostics, compilation);
    }

    private static ModifierSpec Translated(string members)
    {
        var (spec, diagnostics, _) = Translate(members);
        Assert.Empty(diagnostics);
        return Assert.IsType<ModifierSpec>(spec);
    }

    private static ModifierExpression Result(string members) => Translated(members).Result;

    /// <summary>The one diagnostic, its id, and the exact source text it points at.</summary>
    private static DiagnosticInfo Refused(string members, string id, string node)
    {
        var (spec, diagnostics, compilation) = Translate(members);
        Assert.Null(spec);
        return At(diagnostics, compilation, id, node);
    }

    private static DiagnosticInfo At(List<DiagnosticInfo> diagnostics, Compilation compilation, string id, string node)
    {
        var diagnostic = Assert.Single(diagnostics);
        Assert.Equal(id, diagnostic.Rule.Id);
        Assert.Equal(node, Spanned(diagnostic, compilation));
        return diagnostic;
    }

    private static string Spanned(DiagnosticInfo diagnostic, Compilation compilation)
    {
        var location = Assert.IsType<LocationInfo>(diagnostic.Location);
        return compilation.SyntaxTrees.Single(t => t.FilePath == location.FilePath).GetText().ToString(location.Span);
    }

    private static string Message(DiagnosticInfo diagnostic) => diagnostic.ToDiagnostic().GetMessage(CultureInfo.InvariantCulture);

    private static EquatableArray<T> List<T>(params T[] items) => items.ToEquatableArray();

    private static ParameterExpression P(ScalarType type, string name) => new(type, name);

    private static LiteralExpression L(ScalarType type, string text) => new(type, text);

    private static BinaryExpression B(ScalarType type, ModifierExpression left, string op, ModifierExpression right) => new(type, op, left, right);

    /// <summary>The score (for a score modifier) and b, h, q, k, then the runtime parameters.</summary>
    private static EquatableArray<ModifierParameter> Leading(ModifierKind kind, params ModifierParameter[] runtime) =>
        (kind == ModifierKind.Score ? [new ModifierParameter("score", Float, false, ParameterRole.Score)] : Array.Empty<ModifierParameter>())
            .Concat([
                new("b", Int, false, ParameterRole.Batch), new("h", Int, false, ParameterRole.Head),
                new("q", Int, false, ParameterRole.Query), new("k", Int, false, ParameterRole.Key)])
            .Concat(runtime)
            .ToEquatableArray();

    private const string ScoreHead = "[ScoreModifier] public static float M(float score, int b, int h, int q, int k";
    private const string MaskHead = "[MaskModifier] public static bool M(int b, int h, int q, int k";

    [Fact]
    public void Softcap_translates_to_its_exact_IR()
    {
        var spec = Translated("[ScoreModifier] public static float Softcap(float score, int b, int h, int q, int k, float cap) => cap * MathF.Tanh(score / cap);");
        var expected = new ModifierSpec
        {
            Kind = ModifierKind.Score,
            MethodName = "Softcap",
            DeclaringType = "global::Users.Mods",
            Parameters = Leading(ModifierKind.Score, new ModifierParameter("cap", Float, false, ParameterRole.Runtime)),
            Locals = EquatableArray<ModifierLocal>.Empty,
            Result = B(Float, P(Float, "cap"), "*",
                new CallExpression(Float, MathFunction.Tanh, List<ModifierExpression>(B(Float, P(Float, "score"), "/", P(Float, "cap"))))),
        };
        Assert.Equal(expected, spec);
    }

    [Fact]
    public void Alibi_converts_the_int_distance_to_float()
    {
        var spec = Translated("[ScoreModifier] public static float Alibi(float score, int b, int h, int q, int k, ReadOnlySpan<float> slopes) => score + slopes[h] * (k - q);");
        Assert.Equal(Leading(ModifierKind.Score, new ModifierParameter("slopes", Float, true, ParameterRole.Runtime)), spec.Parameters);
        Assert.Equal(
            B(Float, P(Float, "score"), "+",
                B(Float, new IndexExpression(Float, "slopes", P(Int, "h")), "*", new ConvertExpression(Float, B(Int, P(Int, "k"), "-", P(Int, "q"))))),
            spec.Result);
    }

    [Fact]
    public void Sliding_window_mask()
    {
        var spec = Translated("[MaskModifier] public static bool SlidingWindow(int b, int h, int q, int k, int window) => k <= q && q - k < window;");
        Assert.Equal(ModifierKind.Mask, spec.Kind);
        Assert.Equal(Leading(ModifierKind.Mask, new ModifierParameter("window", Int, false, ParameterRole.Runtime)), spec.Parameters);
        Assert.Equal(
            B(Bool, B(Bool, P(Int, "k"), "<=", P(Int, "q")), "&&", B(Bool, B(Int, P(Int, "q"), "-", P(Int, "k")), "<", P(Int, "window"))),
            spec.Result);
    }

    [Theory]
    [InlineData("ReadOnlySpan<int>")]
    [InlineData("int[]")]
    public void Document_mask_indexes_an_int_array(string arrayType)
    {
        var spec = Translated($"[MaskModifier] public static bool SameDocument(int b, int h, int q, int k, {arrayType} doc) => doc[q] == doc[k];");
        Assert.Equal(new ModifierParameter("doc", Int, true, ParameterRole.Runtime), spec.Parameters[^1]);
        Assert.Equal(B(Bool, new IndexExpression(Int, "doc", P(Int, "q")), "==", new IndexExpression(Int, "doc", P(Int, "k"))), spec.Result);
    }

    [Theory]
    [InlineData("ReadOnlySpan<int>")]
    [InlineData("int[]")]
    [InlineData("ReadOnlySpan<float>")]
    public void Nondecreasing_marks_the_array_parameter(string arrayType)
    {
        var spec = Translated($"[MaskModifier] public static bool SameDocument(int b, int h, int q, int k, [Nondecreasing] {arrayType} doc, ReadOnlySpan<int> other) => doc[q] == doc[k] && other[q] > 0;");
        var element = arrayType.Contains("float") ? Float : Int;
        Assert.Equal(new ModifierParameter("doc", element, true, ParameterRole.Runtime, Nondecreasing: true), spec.Parameters[^2]);
        Assert.Equal(new ModifierParameter("other", Int, true, ParameterRole.Runtime), spec.Parameters[^1]);
        Assert.All(spec.Parameters.Take(4), p => Assert.False(p.Nondecreasing));
    }

    [Fact]
    public void Prefix_lm_mask()
    {
        Assert.Equal(
            B(Bool, B(Bool, P(Int, "k"), "<", P(Int, "prefix")), "||", B(Bool, P(Int, "k"), "<=", P(Int, "q"))),
            Result("[MaskModifier] public static bool PrefixLm(int b, int h, int q, int k, int prefix) => k < prefix || k <= q;"));
    }

    [Fact]
    public void A_block_body_becomes_locals_and_a_conditional()
    {
        var spec = Translated("""
            [ScoreModifier]
            public static float Penalized(float score, int b, int h, int q, int k, float[] bias)
            {
                var distance = q - k;
                float penalty = distance;
                const float Floor = -1e4f;
                return distance > 0 ? MathF.Max(score - penalty * bias[h], Floor) : score;
            }
            """);
        Assert.Equal(
            List(new ModifierLocal("distance", Int, B(Int, P(Int, "q"), "-", P(Int, "k"))),
                new ModifierLocal("penalty", Float, new ConvertExpression(Float, new LocalExpression(Int, "distance")))),
            spec.Locals);
        Assert.Equal(
            new ConditionalExpression(Float,
                B(Bool, new LocalExpression(Int, "distance"), ">", L(Int, "0")),
                new CallExpression(Float, MathFunction.Max, List<ModifierExpression>(
                    B(Float, P(Float, "score"), "-", B(Float, new LocalExpression(Float, "penalty"), "*", new IndexExpression(Float, "bias", P(Int, "h")))),
                    L(Float, "(-10000.0f)"))),
                P(Float, "score")),
            spec.Result);
    }

    [Fact]
    public void Const_fields_and_MathF_constants_fold_to_literals()
    {
        Assert.Equal(
            B(Float, B(Float, P(Float, "score"), "*", L(Float, "0.5f")), "+", L(Float, "3.1415927f")),
            Result("private const float Scale = 0.5f;\n" + ScoreHead + ") => score * Scale + MathF.PI;"));
    }

    [Theory]
    [InlineData("2f", "2.0f")]
    [InlineData("3", "3.0f")]
    [InlineData("1.5f", "1.5f")]
    [InlineData("-0.25f", "(-0.25f)")]
    [InlineData("1e-5f", "1e-05f")]
    [InlineData("MathF.E", "2.7182817f")]
    [InlineData("(float)(0.5 + 1)", "1.5f")]
    [InlineData("float.PositiveInfinity", "__int_as_float(0x7f800000)")]
    [InlineData("float.NegativeInfinity", "__int_as_float(0xff800000)")]
    [InlineData("float.NaN", "__int_as_float(0x7fffffff)")]
    public void Float_constants_are_spelled_as_CUDA_float_literals(string constant, string cuda) =>
        Assert.Equal(L(Float, cuda), Result($"{ScoreHead}) => {constant};"));

    [Theory]
    [InlineData("0.5", "0.5")]
    [InlineData("2.0", "2.0")]
    [InlineData("Math.PI", "3.141592653589793")]
    [InlineData("1e300", "1e+300")]
    public void Double_constants_stay_double(string constant, string cuda) =>
        Assert.Equal(
            new ConvertExpression(Float, B(Double, new ConvertExpression(Double, P(Float, "score")), "*", L(Double, cuda))),
            Result($"{ScoreHead}) => (float)(score * {constant});"));

    [Theory]
    [InlineData("128", "128")]
    [InlineData("-3", "(-3)")]
    [InlineData("1 << 4", "16")]
    [InlineData("int.MaxValue", "2147483647")]
    [InlineData("int.MinValue", "(-2147483647 - 1)")]
    public void Int_constants(string constant, string cuda) =>
        Assert.Equal(B(Bool, P(Int, "k"), "<", L(Int, cuda)), Result($"{MaskHead}) => k < {constant};"));

    [Fact]
    public void A_constant_condition_folds_to_a_bool_literal() =>
        Assert.Equal(L(Bool, "true"), Result($"private const int Window = 4;\n{MaskHead}) => Window > 1;"));

    [Fact]
    public void Math_Max_on_ints_is_an_int_call_and_MathF_Max_on_floats_a_float_call()
    {
        Assert.Equal(
            B(Bool, new CallExpression(Int, MathFunction.Max, List<ModifierExpression>(B(Int, P(Int, "q"), "-", P(Int, "k")), L(Int, "0"))), "<", P(Int, "window")),
            Result($"{MaskHead}, int window) => Math.Max(q - k, 0) < window;"));
        var floatMax = new CallExpression(Float, MathFunction.Max, List<ModifierExpression>(P(Float, "score"), L(Float, "0.0f")));
        Assert.Equal(floatMax, Result($"{ScoreHead}) => MathF.Max(score, 0);"));
        Assert.Equal(floatMax, Result($"{ScoreHead}) => Math.Max(score, 0);"));
        Assert.Equal(
            new CallExpression(Float, MathFunction.Round, List<ModifierExpression>(P(Float, "score"))),
            Result($"{ScoreHead}) => MathF.Round(score);"));
    }

    [Fact]
    public void Unary_operators_and_casts()
    {
        Assert.Equal(
            new UnaryExpression(Float, "-", new ConvertExpression(Float, new UnaryExpression(Int, "~", P(Int, "k")))),
            Result($"{ScoreHead}) => -(float)~k;"));
        Assert.Equal(new UnaryExpression(Bool, "!", B(Bool, P(Int, "k"), ">", P(Int, "q"))), Result($"{MaskHead}) => !(k > q);"));
        Assert.Equal(new ConvertExpression(Float, new ConvertExpression(Int, P(Float, "score"))), Result($"{ScoreHead}) => (int)score;"));
    }

    private const string Nested = """
        using System;
        using KernelDsl;
        namespace Users;
        public static partial class Outer
        {
            [MaskModifier] public static bool Causal(int b, int h, int q, int k) => k <= q;
            [ScoreModifier] public static float Shadowed(float score, int b, int h, int q, int k) => score;
            public static partial class Inner
            {
                [ScoreModifier] public static float Softcap(float score, int b, int h, int q, int k) => 30f * MathF.Tanh(score / 30f);
                public static partial class Attention;
            }
        }
        """;

    [Fact]
    public void A_kernel_finds_modifiers_in_its_containing_types_innermost_first()
    {
        var compilation = Compile(Nested);
        var diagnostics = new List<DiagnosticInfo>();
        var (score, mask) = ModifierReader.Read(compilation.GetTypeByMetadataName("Users.Outer+Inner+Attention")!, compilation, diagnostics, TestContext.Current.CancellationToken);
        Assert.Empty(diagnostics);
        Assert.Equal(("Softcap", "global::Users.Outer.Inner"), (score!.MethodName, score.DeclaringType));
        Assert.Equal(("Causal", "global::Users.Outer"), (mask!.MethodName, mask.DeclaringType));
    }

    [Fact]
    public void A_kernel_without_modifiers_reads_none()
    {
        var compilation = Compile(Source("public static float NotAModifier(float score, int b, int h, int q, int k) => score;"));
        var diagnostics = new List<DiagnosticInfo>();
        var (score, mask) = ModifierReader.Read(compilation.GetTypeByMetadataName("Users.Mods")!, compilation, diagnostics, TestContext.Current.CancellationToken);
        Assert.Null(score);
        Assert.Null(mask);
        Assert.Empty(diagnostics);
    }

    [Fact]
    public void Code_the_compiler_rejects_is_left_to_the_compiler()
    {
        var compilation = GeneratorHarness.Compilation(Source($"{ScoreHead}) => score * Missing;"));
        var method = compilation.GetTypeByMetadataName("Users.Mods")!.GetMembers("M").OfType<IMethodSymbol>().Single();
        var diagnostics = new List<DiagnosticInfo>();
        Assert.Null(ModifierReader.Translate(method, ModifierKind.Score, compilation, diagnostics, TestContext.Current.CancellationToken));
        Assert.Empty(diagnostics);
    }

    [Theory]
    [InlineData("[ScoreModifier] public float M(float score, int b, int h, int q, int k) => score;", "M", "is not static")]
    [InlineData("[ScoreModifier] public static float M<T>(float score, int b, int h, int q, int k) => score;", "M", "is generic")]
    [InlineData("[ScoreModifier] public static double M(float score, int b, int h, int q, int k) => score;", "double", "returns float")]
    [InlineData("[MaskModifier] public static int M(int b, int h, int q, int k) => 1;", "int", "returns bool")]
    [InlineData("[MaskModifier] public static bool M(int b, int h, int q) => true;", "(int b, int h, int q)", "starts with (int b, int h, int q, int k)")]
    [InlineData("[MaskModifier] public static bool M(int b) => true;", "(int b)", "has 1 parameter, but a mask")]
    [InlineData("[ScoreModifier] public static float M(float score, int b, int h, float q, int k) => score;", "float q", "the query index, an int")]
    [InlineData("[ScoreModifier] public static float M(double score, int b, int h, int q, int k) => (float)score;", "double score", "the score, a float")]
    [InlineData("[ScoreModifier] public static float M(float score, int b, int h, int q, int k, Span<float> slopes) => score;", "Span<float> slopes", "runtime parameters are int, float")]
    [InlineData("[ScoreModifier] public static float M(float score, int b, int h, int q, int k, long window) => score;", "long window", "runtime parameters are int, float")]
    [InlineData("[ScoreModifier] public static float M(float score, int b, int h, int q, int k, double cap) => score;", "double cap", "runtime parameters are int, float")]
    [InlineData("[ScoreModifier] public static float M(float score, int b, int h, int q, int k, in float cap) => score;", "in float cap", "by reference")]
    [InlineData("[ScoreModifier] public static float M(float score, int b, int h, int q, int k, params float[] extra) => score;", "params float[] extra", "'params'")]
    [InlineData("[ScoreModifier] public static float M(float score, int b, int h, int q, int k, float cap = 30f) => score;", "float cap = 30f", "default value")]
    [InlineData("public static float P { [ScoreModifier] get => 1f; }", "get", "ordinary static method")]
    public void KDSL0601_method_shape(string members, string node, string why) =>
        Assert.Contains(why, Message(Refused(members, "KDSL0601", node)));

    [Theory]
    [InlineData("for (var i = 0; i < k; i++) { score += 1f; }", "for")]
    [InlineData("while (k > q) { k--; }", "while")]
    [InlineData("do { k--; } while (k > q);", "do")]
    [InlineData("foreach (var s in slopes) { score += s; }", "foreach")]
    public void KDSL0602_loops(string loop, string keyword)
    {
        var d = Refused($"{ScoreHead}, ReadOnlySpan<float> slopes)\n{{\n{loop}\nreturn score;\n}}", "KDSL0602", loop);
        Assert.StartsWith($"'{keyword}' loops are not supported in a modifier: it runs once per score", Message(d));
    }

    [Theory]
    [InlineData("if (k > q) return float.NegativeInfinity;", "if (k > q) return float.NegativeInfinity;", "conditional operator")]
    [InlineData("score = score * 2f;", "score = score * 2f;", "never reassigned")]
    [InlineData("float a = 1f, c = 2f;", "float a = 1f, c = 2f;", "one local per statement")]
    [InlineData("static float Twice(float x) => 2f * x;", "static float Twice(float x) => 2f * x;", "inline it")]
    [InlineData("var next = score + k++;", "k++", "never reassigned")]
    [InlineData("return -score;", "return -score;", "return once, at the end")]
    public void KDSL0603_statements(string statement, string node, string why) =>
        Assert.Contains(why, Message(Refused($"{ScoreHead})\n{{\n{statement}\nreturn score;\n}}", "KDSL0603", node)));

    [Theory]
    [InlineData("switch (h) { case 0: return score; default: return -score; }", "'switch'")]
    [InlineData("try { return score; } catch { return 0f; }", "'try'")]
    [InlineData("throw new InvalidOperationException();", "'throw'")]
    public void KDSL0603_statements_that_end_the_body(string statement, string what) =>
        Assert.StartsWith(what, Message(Refused($"{ScoreHead})\n{{\n{statement}\n}}", "KDSL0603", statement)));

    [Theory]
    [InlineData("Helper(score)", "calls to other methods are not supported: the body must be translatable to CUDA; inline it, or call one of the Math and MathF functions a modifier can call: Abs,")]
    [InlineData("score.CompareTo(1f)", "inline it")]
    [InlineData("MathF.Cbrt(score)", "no CUDA counterpart")]
    [InlineData("MathF.Log(score, 2f)", "only the one-argument Log")]
    [InlineData("MathF.Round(score, 2)", "only the one-argument Round")]
    public void KDSL0604_calls(string call, string why) =>
        Assert.Contains(why, Message(Refused($"private static float Helper(float x) => x;\n{ScoreHead}) => score + {call};", "KDSL0604", call)));

    [Theory]
    [InlineData("score + Console.Read() * Scale")]
    [InlineData("k > q ? Console.Read() : Scale")]
    [InlineData("MathF.Max(Console.Read(), Scale)")]
    public void Every_refusal_in_one_expression_is_reported_in_one_build(string body)
    {
        // An operator's operands, the conditional's branches and a call's arguments are all read: both mistakes at once.
        var (spec, diagnostics, _) = Translate($"private static float Scale = 2f;\n{ScoreHead}) => {body};");
        Assert.Null(spec);
        Assert.Equal(["KDSL0604", "KDSL0607"], diagnostics.Select(d => d.Rule.Id).Order());
    }

    [Theory]
    [InlineData("var t = new float[] { 1f, 2f };", "new float[] { 1f, 2f }")]
    [InlineData("ReadOnlySpan<float> t = stackalloc float[] { 1f, 2f };", "stackalloc float[] { 1f, 2f }")]
    [InlineData("ReadOnlySpan<float> t = [1f, 2f];", "[1f, 2f]")]
    public void KDSL0605_allocations(string declaration, string node) =>
        Assert.Contains("allocates", Message(Refused($"{ScoreHead})\n{{\n{declaration}\nreturn score * t[h & 1];\n}}", "KDSL0605", node)));

    [Fact]
    public void KDSL0605_strings() =>
        Refused($"{MaskHead}) => $\"{{k}}\".Length > q;", "KDSL0605", "$\"{k}\"");

    [Theory]
    [InlineData("(long)k < q", "(long)k", "'(long)k' has type 'long'")]
    [InlineData("(byte)k < q", "(byte)k", "'byte'")]
    [InlineData("(decimal)k > 0m", "(decimal)k", "'decimal'")]
    [InlineData("k < 3L", "k", "'k' is converted to type 'long'")]
    public void KDSL0606_types(string expression, string node, string message)
    {
        // Both operands are read, so the other side's 64-bit or decimal value is refused too, at its own node.
        var (spec, diagnostics, compilation) = Translate($"{MaskHead}) => {expression};");
        Assert.Null(spec);
        Assert.All(diagnostics, d => Assert.Equal("KDSL0606", d.Rule.Id));
        var text = Message(At([diagnostics.First(d => Spanned(d, compilation) == node)], compilation, "KDSL0606", node));
        Assert.Contains(message, text);
        Assert.Contains("bool, int, float and double only", text);
    }

    [Theory]
    [InlineData("private static float Scale = 2f;", "score * Scale", "Scale", "reads the field 'Scale'")]
    [InlineData("private static readonly float[] Table = [1f, 2f];", "score * Table[h & 1]", "Table", "reads the field 'Table'")]
    [InlineData("private static float Cap => 30f;", "score * Cap", "Cap", "reads the property 'Cap'")]
    public void KDSL0607_state_outside_the_parameters(string declaration, string expression, string node, string why) =>
        Assert.Contains(why, Message(Refused($"{declaration}\n{ScoreHead}) => {expression};", "KDSL0607", node)));

    [Fact]
    public void KDSL0607_lambdas() =>
        Assert.Contains("lambda", Message(Refused($"{ScoreHead})\n{{\nFunc<float, float> twice = x => 2f * x;\nreturn score;\n}}", "KDSL0607", "x => 2f * x")));

    [Fact]
    public void KDSL0608_two_modifiers_of_a_kind_in_one_type()
    {
        var compilation = Compile(Source("""
            [ScoreModifier] public static float First(float score, int b, int h, int q, int k) => score;
            [ScoreModifier] public static float Second(float score, int b, int h, int q, int k) => -score;
            [MaskModifier] public static bool Causal(int b, int h, int q, int k) => k <= q;
            """));
        var diagnostics = new List<DiagnosticInfo>();
        var (score, mask) = ModifierReader.Read(compilation.GetTypeByMetadataName("Users.Mods")!, compilation, diagnostics, TestContext.Current.CancellationToken);
        Assert.Null(score);
        Assert.Equal("Causal", mask?.MethodName);
        Assert.Contains("'Mods' declares more than one [ScoreModifier] method ('First' and 'Second')", Message(At(diagnostics, compilation, "KDSL0608", "Second")));
    }

    [Fact]
    public void KDSL0609_a_modifier_from_metadata()
    {
        var library = Compile(Source($"{ScoreHead}) => score;"));
        using var image = new MemoryStream();
        Assert.True(library.Emit(image, cancellationToken: TestContext.Current.CancellationToken).Success);
        var user = GeneratorHarness.Compilation("namespace Other; public static class Empty;")
            .AddReferences(MetadataReference.CreateFromImage(image.ToArray()));
        var method = user.GetTypeByMetadataName("Users.Mods")!.GetMembers("M").OfType<IMethodSymbol>().Single();
        var diagnostics = new List<DiagnosticInfo>();
        Assert.Null(ModifierReader.Translate(method, ModifierKind.Score, user, diagnostics, TestContext.Current.CancellationToken));
        var d = Assert.Single(diagnostics);
        Assert.Equal("KDSL0609", d.Rule.Id);
        Assert.Null(d.Location);
        Assert.StartsWith("[ScoreModifier] method 'M' has no source in this compilation", Message(d));
    }

    [Theory]
    [InlineData("k <= q & q < 10", "k <= q & q < 10", "use && and ||")]
    [InlineData("k is > 0 and < 10", "k is > 0 and < 10", "comparison and logical operators")]
    [InlineData("(k >>> 1) < q", "k >>> 1", "no CUDA counterpart")]
    [InlineData("slopes.Length > q", "slopes.Length", "another runtime parameter")]
    [InlineData("(h switch { 0 => q, _ => k }) > 0", "h switch { 0 => q, _ => k }", "conditional operator")]
    public void KDSL0610_expressions(string expression, string node, string why) =>
        Assert.Contains(why, Message(Refused($"{MaskHead}, ReadOnlySpan<float> slopes) => {expression};", "KDSL0610", node)));

    [Fact]
    public void KDSL0610_float_remainder() =>
        Assert.Contains("no '%' on floating-point", Message(Refused($"{ScoreHead}) => score % 2f;", "KDSL0610", "score % 2f")));

    [Fact]
    public void KDSL0610_an_array_parameter_read_whole() =>
        Assert.Contains("can only be indexed", Message(Refused($"{ScoreHead}, float[] slopes)\n{{\nvar all = slopes;\nreturn score;\n}}", "KDSL0610", "slopes")));

    [Theory]
    [InlineData("[MaskModifier] public static bool M(int b, int h, int q, int k, [Nondecreasing] int window) => q - k < window;", "Nondecreasing", "is a scalar int")]
    [InlineData("[ScoreModifier] public static float M(float score, int b, int h, int q, int k, [Nondecreasing] float cap) => score / cap;", "Nondecreasing", "is a scalar float")]
    [InlineData("[MaskModifier] public static bool M(int b, int h, [Nondecreasing] int q, int k) => k <= q;", "Nondecreasing", "is the query index, an int")]
    [InlineData("[ScoreModifier] public static float M([Nondecreasing] float score, int b, int h, int q, int k) => score;", "Nondecreasing", "is the score, a float")]
    public void KDSL0611_nondecreasing_on_a_parameter_that_is_not_an_array(string members, string node, string why)
    {
        var message = Message(Refused(members, "KDSL0611", node));
        Assert.StartsWith("[Nondecreasing] on parameter '", message);
        Assert.Contains(why, message);
    }

    [Theory]
    [InlineData("[MaskModifier] public static bool M(int b, int h, int q, int k, [Positive] ReadOnlySpan<int> ids) => ids[q] == ids[k];", "Positive", "is an array of int")]
    [InlineData("[MaskModifier] public static bool M(int b, int h, [Positive] int q, int k) => k <= q;", "Positive", "is the query index, an int")]
    [InlineData("[ScoreModifier] public static float M([Positive] float score, int b, int h, int q, int k) => score;", "Positive", "is the score, a float")]
    public void KDSL0612_positive_on_a_parameter_that_is_not_a_runtime_scalar(string members, string node, string why)
    {
        var message = Message(Refused(members, "KDSL0612", node));
        Assert.StartsWith("[Positive] on parameter '", message);
        Assert.Contains(why, message);
    }

    [Fact]
    public void A_positive_runtime_scalar_carries_its_rule_and_a_shared_name_takes_it_from_either_modifier()
    {
        var spec = Translated($"[ScoreModifier] public static float M(float score, int b, int h, int q, int k, [Positive] float cap, int window) => cap * MathF.Tanh(score / cap) + window;");
        Assert.Equal([true, false], spec.Parameters.Where(p => p.Role == ParameterRole.Runtime).Select(p => p.Positive));
        var mask = Translated("[MaskModifier] public static bool M(int b, int h, int q, int k, float cap) => k <= q;");
        Assert.True(Assert.Single(ModifierSignature.RuntimeParameters(spec, mask), p => p.Name == "cap").Positive);
        Assert.True(Assert.Single(ModifierSignature.RuntimeParameters(mask, spec), p => p.Name == "cap").Positive);
    }
}
