using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using KernelDsl.Generator.Helpers;
using KernelDsl.Generator.Model;

namespace KernelDsl.Generator.Cuda;

/// <summary>
/// A user's attention modifier as CUDA: the device function the kernel calls per score (<see cref="WriteFunction"/>), and
/// for a mask the block classifier (<see cref="WriteBlockClassifier"/>) that says, from the same IR, whether a whole
/// (query block × key block) tile is masked out, fully visible, or needs the per-element mask.
/// </summary>
public static class ModifierWriter
{
    /// <summary>The device function's name: one score modifier and one mask per kernel.</summary>
    public static string FunctionName(ModifierSpec m) => m.Kind == ModifierKind.Score ? "kdsl_score_mod" : "kdsl_mask_mod";

    /// <summary>A user name as CUDA spells it: prefixed, so no user name meets a CUDA keyword or a kernel's own name.</summary>
    public static string CudaName(string userName) => ModifierParameter.CudaName(userName);

    public static string CudaType(ScalarType t) => t switch
    {
        ScalarType.Bool => "bool",
        ScalarType.Int => "int",
        ScalarType.Float => "float",
        _ => "double",
    };

    /// <summary>
    /// The device function's parameters in the C# method's order, with the float positions of <see cref="FloatIndices"/>
    /// between the indices and the runtime parameters.
    /// </summary>
    public static string CudaParameterList(ModifierSpec m) => string.Join(", ",
        m.Parameters.Where(p => p.Role != ParameterRole.Runtime).Select(Parameter)
            .Concat(FloatIndices(m).Select(p => $"float {FloatIndexName(p.Name)}"))
            .Concat(m.Parameters.Where(p => p.Role == ParameterRole.Runtime).Select(Parameter)));

    /// <summary>
    /// A modifier's call: the score (for a score modifier), the site's b, h, q and k, the float positions its body reads,
    /// then its runtime parameters, which the kernel holds under their CUDA names.
    /// </summary>
    public static string Call(ModifierSpec m, ModifierSite site, string? score = null)
    {
        var floats = FloatIndices(m).Select(p => p.Role switch
        {
            ParameterRole.Batch => $"(float){site.Batch}",
            ParameterRole.Head => $"(float){site.Head}",
            ParameterRole.Query => site.QueryFloat,
            _ => site.KeyFloat,
        });
        return $"{FunctionName(m)}({string.Join(", ", (score is null ? [] : new[] { score }).Concat([site.Batch, site.Head, site.Query, site.Key]).Concat(floats).Concat(RuntimeArgumentNames(m)))})";
    }

    /// <summary>The runtime parameters' CUDA names in order: the arguments the kernel passes after the indices.</summary>
    public static IEnumerable<string> RuntimeArgumentNames(ModifierSpec m) =>
        m.Parameters.Where(p => p.Role == ParameterRole.Runtime).Select(p => CudaName(p.Name));

    private static string Parameter(ModifierParameter p) =>
        p.IsArray ? $"const {CudaType(p.Type)}* __restrict__ {CudaName(p.Name)}" : $"{CudaType(p.Type)} {CudaName(p.Name)}";

    private static string CSharpName(ModifierSpec m)
    {
        var type = m.DeclaringType.StartsWith("global::", StringComparison.Ordinal) ? m.DeclaringType.Substring("global::".Length) : m.DeclaringType;
        return type + "." + m.MethodName;
    }

    /// <summary>
    /// A kernel's modifiers as device functions (<see cref="WriteFunction"/>), with the mask's block classifier and the
    /// constants their callers scale by; nothing for a kernel with none. Every family that applies modifiers writes them so.
    /// </summary>
    public static void WriteModifiers(CodeWriter w, ModifierSpec? score, ModifierSpec? mask)
    {
        if (score is null && mask is null)
        {
            return;
        }
        w.Line();
        w.Line($"// ---- The user's modifiers, translated from C# ----");
        w.Line($"#define KDSL_LOG2E 1.44269504f");
        w.Line($"#define KDSL_LN2 0.693147181f");
        if (score is not null)
        {
            if (UsesApproximateTanh(score))
            {
                WriteApproximateTanh(w);
            }
            if (UsesFullRangeDivision(score))
            {
                WriteFullRangeDivision(w);
            }
            WriteFunction(w, score);
        }
        if (mask is not null)
        {
            WriteFunction(w, mask);
            WriteBlockClassifier(w, mask);
        }
    }

    /// <summary>
    /// <c>static __device__ __forceinline__ float kdsl_score_mod(…) { const T u_local = …; return …; }</c> (a mask returns
    /// bool), under a comment naming the C# method.
    /// </summary>
    public static void WriteFunction(CodeWriter w, ModifierSpec m)
    {
        var returns = m.Kind == ModifierKind.Score ? "float" : "bool";
        w.Raw($"// From C# {CSharpName(m)}");
        w.Block($"static __device__ __forceinline__ {returns} {FunctionName(m)}({CudaParameterList(m)})", () =>
        {
            var speller = new Speller(m.Kind == ModifierKind.Score ? m : null);
            foreach (var local in m.Locals)
            {
                w.Raw($"const {CudaType(local.Type)} {CudaName(local.Name)} = {Bare(speller.Text(local.Value))};");
            }
            w.Raw($"return {Bare(speller.Text(m.Result))};");
        });
    }

    // ------------------------------------------------------------------------------------------------------------------
    // Per-score forms. A score modifier runs once per score inside the softmax, where the SFU and the conversion unit are
    // the scarcest (16 results a clock an SM on sm_80 and sm_90, against 128 FFMAs; the softmax's exp2 already takes one
    // per score). Its body is spelled so that it adds none it can avoid:
    // - float tanh is tanh.approx.f32 (relative error under 2^-10.9; P is quantized to 8 bits after it);
    // - float division by a value the same for every score (runtime scalars and constants) is a multiplication by its
    //   reciprocal, which the compiler computes once (within 1.5 ulp of the quotient); by anything else, div.full.f32
    //   (within 2 ulp) instead of the IEEE division's subroutine;
    // - an int → float conversion of positions (the indices and int constants under + and −, e.g. (float)(k − q)) is the
    //   same sum over the positions as floats, which the kernel passes in and derives per score with an FADD, instead of
    //   an I2F per score. Every value is an integer, so the sum is exact while every partial sum stays below 2^24: the
    //   launchers of such a kernel refuse sequences longer than FloatPositionLimit (2^22 tokens), which keeps a sum of up
    //   to four positions and the constants (each below 2^20) exact.
    // Masks keep C#'s exact semantics: their block classifier bounds the same expressions.
    // ------------------------------------------------------------------------------------------------------------------

    /// <summary>
    /// Where the kernel calls a modifier: b, h, q and k as ints (clamped into the sequences, since a body may index arrays
    /// with them), and the query's and key's positions as exact floats for <see cref="FloatIndices"/>; those need no clamp,
    /// since a score past a sequence is masked or its row discarded.
    /// </summary>
    public sealed record ModifierSite(string Batch, string Head, string Query, string Key, string QueryFloat, string KeyFloat);

    /// <summary>The longest sequence a kernel whose score modifier reads float positions accepts (see the per-score forms).</summary>
    public const int FloatPositionLimit = 1 << 22;

    /// <summary>Whether a kernel with these modifiers passes float positions, so its launcher must hold lengths to <see cref="FloatPositionLimit"/>.</summary>
    public static bool UsesFloatPositions(ModifierSpec? score) => score is not null && FloatIndices(score).Any();

    /// <summary>The rule a launcher states when it refuses a longer sequence.</summary>
    public const string FloatPositionRule = "the score modifier reads positions as exact floats, so sequences hold at most 2^22 tokens";

    /// <summary>A float position's CUDA name ("uf_" cannot meet <see cref="CudaName"/>'s "u_").</summary>
    public static string FloatIndexName(string userName) => "uf_" + userName;

    /// <summary>The index parameters a score modifier converts to float (see the per-score forms), in parameter order; none for a mask.</summary>
    public static IEnumerable<ModifierParameter> FloatIndices(ModifierSpec m)
    {
        if (m.Kind != ModifierKind.Score)
        {
            return [];
        }
        var speller = new Speller(m);
        var read = new HashSet<string>(m.Nodes().OfType<ConvertExpression>().Where(speller.IsFloatPosition).SelectMany(c => speller.PositionsOf(c.Operand)));
        return m.Parameters.Where(p => read.Contains(p.Name));
    }

    /// <summary>The device function for a float division in a score modifier whose divisor varies: PTX div.full.f32.</summary>
    public const string FullRangeDivision = "kdsl_div_full";

    /// <summary>Whether a score modifier divides floats by something that varies per score, so its module needs <see cref="FullRangeDivision"/>.</summary>
    public static bool UsesFullRangeDivision(ModifierSpec m) =>
        m.Kind == ModifierKind.Score && m.Nodes().OfType<BinaryExpression>().Any(new Speller(m).IsVaryingFloatDivision);

    /// <summary>Writes <see cref="FullRangeDivision"/>.</summary>
    public static void WriteFullRangeDivision(CodeWriter w)
    {
        w.Raw($"// a / b within 2 ulp over the full range, without the IEEE division's subroutine (PTX ISA, div.full.f32).");
        w.Block($"static __device__ __forceinline__ float {FullRangeDivision}(float a, float b)", () =>
        {
            w.Raw($"float y;");
            w.Raw($"asm(\"div.full.f32 %0, %1, %2;\" : \"=f\"(y) : \"f\"(a), \"f\"(b));");
            w.Raw($"return y;");
        });
    }

    /// <summary>
    /// Spells a body: exactly, or (given the score modifier) with the per-score forms above. Locals are known by name, so
    /// a local that holds a position sum is spelled as that sum where it is converted to float.
    /// </summary>
    private sealed class Speller(ModifierSpec? perScore)
    {
        private readonly Dictionary<string, ModifierExpression> _locals = perScore?.Locals.ToDictionary(l => l.Name, l => l.Value) ?? [];
        private readonly HashSet<string> _indices = new(perScore?.Parameters.Where(p => p.Role is ParameterRole.Batch or ParameterRole.Head or ParameterRole.Query or ParameterRole.Key).Select(p => p.Name) ?? []);
        private readonly HashSet<string> _runtimeScalars = new(perScore?.Parameters.Where(p => p.Role == ParameterRole.Runtime && !p.IsArray).Select(p => p.Name) ?? []);

        public string Text(ModifierExpression e) => e switch
        {
            LiteralExpression l => Atom(l.Text),
            ParameterExpression p => CudaName(p.Name),
            LocalExpression l => CudaName(l.Name),
            UnaryExpression u => UnaryText(u.Operator, Text(u.Operand)),
            BinaryExpression b when IsVaryingFloatDivision(b) => $"{FullRangeDivision}({Bare(Text(b.Left))}, {Bare(Text(b.Right))})",
            BinaryExpression b when perScore is not null && b is { Operator: "/", Type: ScalarType.Float } => $"({Text(b.Left)} * (1.f / {Text(b.Right)}))",
            BinaryExpression b => BinaryText(b.Operator, b.Left.Type, Text(b.Left), Text(b.Right)),
            ConditionalExpression c => $"({Text(c.Condition)} ? {Text(c.WhenTrue)} : {Text(c.WhenFalse)})",
            ConvertExpression c when IsFloatPosition(c) => FloatPosition(c.Operand),
            ConvertExpression c => ConvertText(c.Type, Text(c.Operand)),
            CallExpression { Function: MathFunction.Tanh } c when perScore is not null && ArgumentType(c) == ScalarType.Float =>
                $"{ApproximateTanh}({Bare(Text(c.Arguments[0]))})",
            CallExpression c => CallText(c.Function, ArgumentType(c), c.Arguments.Select(Text).ToArray()),
            IndexExpression i => $"{CudaName(i.Array)}[{Bare(Text(i.Index))}]",
            _ => throw new NotSupportedException($"Modifier expression {e.GetType().Name} has no CUDA spelling."),
        };

        /// <summary>A float division whose divisor varies per score (it reads the score, an index or an array).</summary>
        public bool IsVaryingFloatDivision(BinaryExpression b) => perScore is not null && b is { Operator: "/", Type: ScalarType.Float } && !IsInvariant(b.Right);

        /// <summary>An int → float conversion of a sum of positions, spelled over the float positions.</summary>
        public bool IsFloatPosition(ConvertExpression c) => perScore is not null && c.Type == ScalarType.Float && c.Operand.Type == ScalarType.Int && IsPositionSum(c.Operand);

        /// <summary>The index parameters a position sum reads.</summary>
        public IEnumerable<string> PositionsOf(ModifierExpression e) => e switch
        {
            ParameterExpression p => [p.Name],
            LocalExpression l => PositionsOf(_locals[l.Name]),
            UnaryExpression u => PositionsOf(u.Operand),
            BinaryExpression b => PositionsOf(b.Left).Concat(PositionsOf(b.Right)),
            _ => [],
        };

        /// <summary>
        /// Indices and int constants under + and − (unary or binary), through locals: an integer whose float is the same
        /// sum over floats. Constants are kept below 2^20 so that no partial sum of a few positions nears 2^24 first.
        /// </summary>
        private bool IsPositionSum(ModifierExpression e) => e switch
        {
            ParameterExpression p => _indices.Contains(p.Name),
            LocalExpression l => l.Type == ScalarType.Int && IsPositionSum(_locals[l.Name]),
            LiteralExpression l => long.TryParse(l.Text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var v) && Math.Abs(v) < 1 << 20,
            UnaryExpression { Operator: "-" or "+" } u => IsPositionSum(u.Operand),
            BinaryExpression { Operator: "+" or "-", Type: ScalarType.Int } b => IsPositionSum(b.Left) && IsPositionSum(b.Right),
            _ => false,
        };

        private string FloatPosition(ModifierExpression e) => e switch
        {
            ParameterExpression p => FloatIndexName(p.Name),
            LocalExpression l => FloatPosition(_locals[l.Name]),
            LiteralExpression l => Atom(l.Text + ".f"),
            UnaryExpression u => UnaryText(u.Operator, FloatPosition(u.Operand)),
            BinaryExpression b => $"({FloatPosition(b.Left)} {b.Operator} {FloatPosition(b.Right)})",
            _ => throw new NotSupportedException($"{e.GetType().Name} is not a position sum."),
        };

        /// <summary>The same for every score of a call: constants, runtime scalars, and what is built from them alone.</summary>
        private bool IsInvariant(ModifierExpression e) => e switch
        {
            LiteralExpression => true,
            ParameterExpression p => _runtimeScalars.Contains(p.Name),
            LocalExpression l => IsInvariant(_locals[l.Name]),
            UnaryExpression u => IsInvariant(u.Operand),
            BinaryExpression b => IsInvariant(b.Left) && IsInvariant(b.Right),
            ConditionalExpression c => IsInvariant(c.Condition) && IsInvariant(c.WhenTrue) && IsInvariant(c.WhenFalse),
            ConvertExpression c => IsInvariant(c.Operand),
            CallExpression c => c.Arguments.All(IsInvariant),
            _ => false,
        };
    }

    // ------------------------------------------------------------------------------------------------------------------
    // Expressions. Every text returned is an operand that needs no parentheses: a name, a simple literal, a call, an
    // index, or a fully parenthesised unary, binary, conditional or cast. The classifier's exact evaluations use the same
    // spellings on exact operand values, so the two agree on what an operator means.
    // ------------------------------------------------------------------------------------------------------------------

    /// <summary>The CUDA text of a modifier expression with C#'s exact semantics, parenthesised wherever precedence could matter.</summary>
    public static string Expression(ModifierExpression e) => new Speller(null).Text(e);

    /// <summary>The device function for a score modifier's float tanh: PTX tanh.approx.f32 (sm_75+).</summary>
    public const string ApproximateTanh = "kdsl_tanh_approx";

    /// <summary>Whether a score modifier calls float tanh, so its module needs <see cref="ApproximateTanh"/>.</summary>
    public static bool UsesApproximateTanh(ModifierSpec m) =>
        m.Kind == ModifierKind.Score && m.Nodes().OfType<CallExpression>().Any(c => c.Function == MathFunction.Tanh && ArgumentType(c) == ScalarType.Float);

    /// <summary>Writes <see cref="ApproximateTanh"/>.</summary>
    public static void WriteApproximateTanh(CodeWriter w)
    {
        w.Raw($"// tanh on the SFU: relative error under 2^-10.9 (PTX ISA, tanh.approx.f32).");
        w.Block($"static __device__ __forceinline__ float {ApproximateTanh}(float x)", () =>
        {
            w.Raw($"float y;");
            w.Raw($"asm(\"tanh.approx.f32 %0, %1;\" : \"=f\"(y) : \"f\"(x));");
            w.Raw($"return y;");
        });
    }

    private static string UnaryText(string op, string operand) => $"({op}{operand})";

    private static string ConvertText(ScalarType to, string operand) => $"(({CudaType(to)}){operand})";

    private static string BinaryText(string op, ScalarType operandType, string l, string r)
    {
        var floating = operandType is ScalarType.Float or ScalarType.Double;
        return op switch
        {
            // C# % on floating point is C's fmod (the remainder of the truncated quotient).
            "%" when floating => $"{(operandType == ScalarType.Float ? "fmodf" : "fmod")}({l}, {r})",
            // C# takes an int shift count mod 32; C leaves counts past 31 undefined.
            "<<" or ">>" => $"({l} {op} ({r} & 31))",
            _ => $"({l} {op} {r})",
        };
    }

    /// <summary>The type that picks a call's overload: its first argument's (C# converts the rest to it).</summary>
    private static ScalarType ArgumentType(CallExpression c)
    {
        var t = c.Arguments.Count > 0 ? c.Arguments[0].Type : c.Type;
        var integral = c.Function is MathFunction.Abs or MathFunction.Min or MathFunction.Max or MathFunction.Clamp or MathFunction.Sign;
        return t == ScalarType.Int && !integral ? c.Type : t;
    }

    private static string CallText(MathFunction f, ScalarType argType, IReadOnlyList<string> a)
    {
        var args = string.Join(", ", a.Select(Bare));
        if (argType == ScalarType.Int)
        {
            return f switch
            {
                MathFunction.Abs => $"abs({args})",
                MathFunction.Min => $"min({args})",
                MathFunction.Max => $"max({args})",
                MathFunction.Clamp => $"min(max({Bare(a[0])}, {Bare(a[1])}), {Bare(a[2])})",
                MathFunction.Sign => $"(({a[0]} > 0) - ({a[0]} < 0))",
                _ => throw new NotSupportedException($"{f} takes no int argument."),
            };
        }
        var single = argType == ScalarType.Float;
        var s = single ? "f" : "";
        return f switch
        {
            MathFunction.Clamp => $"fmin{s}(fmax{s}({Bare(a[0])}, {Bare(a[1])}), {Bare(a[2])})",
            // C#'s Sign returns an int; NaN, which C# rejects, gives 0 here.
            MathFunction.Sign => single ? $"(({a[0]} > 0.f) - ({a[0]} < 0.f))" : $"(({a[0]} > 0.0) - ({a[0]} < 0.0))",
            _ => $"{FloatingName(f)}{s}({args})",
        };
    }

    /// <summary>The double-precision C name of a floating-point function (the float one adds "f").</summary>
    private static string FloatingName(MathFunction f) => f switch
    {
        MathFunction.Abs => "fabs",
        MathFunction.Min => "fmin",
        MathFunction.Max => "fmax",
        MathFunction.Exp => "exp",
        MathFunction.Log => "log",
        MathFunction.Log2 => "log2",
        MathFunction.Log10 => "log10",
        MathFunction.Pow => "pow",
        MathFunction.Sqrt => "sqrt",
        MathFunction.Tanh => "tanh",
        MathFunction.Sinh => "sinh",
        MathFunction.Cosh => "cosh",
        MathFunction.Sin => "sin",
        MathFunction.Cos => "cos",
        MathFunction.Tan => "tan",
        MathFunction.Atan => "atan",
        MathFunction.Atan2 => "atan2",
        MathFunction.Floor => "floor",
        MathFunction.Ceiling => "ceil",
        // C#'s Round(x) rounds half to even, as rint does in the default rounding mode.
        MathFunction.Round => "rint",
        MathFunction.Truncate => "trunc",
        _ => throw new NotSupportedException($"{f} has no floating-point C name."),
    };

    /// <summary>A literal as an operand: simple spellings stand alone, anything else (a sign, a call) is parenthesised.</summary>
    private static string Atom(string text) =>
        text.Length > 0 && text.All(c => char.IsLetterOrDigit(c) || c == '_' || c == '.') ? text : $"({text})";

    /// <summary>An operand without its outer parentheses, for places no operator can reach (a statement, an argument).</summary>
    private static string Bare(string s)
    {
        if (s.Length < 2 || s[0] != '(' || s[s.Length - 1] != ')')
        {
            return s;
        }
        var depth = 0;
        for (var i = 0; i < s.Length; i++)
        {
            depth += s[i] == '(' ? 1 : s[i] == ')' ? -1 : 0;
            if (depth == 0 && i < s.Length - 1)
            {
                return s; // "(a) + (b)": the first parenthesis closes early
            }
        }
        return s.Substring(1, s.Length - 2);
    }

    // ------------------------------------------------------------------------------------------------------------------
    // The block classifier.
    // ------------------------------------------------------------------------------------------------------------------

    /// <summary>
    /// The helpers every block classifier uses, once per module (guarded): the three answers, and the interval rules
    /// that need more than an expression.
    /// </summary>
    public static void WriteBlockClassifierHelpers(CodeWriter w) => w.Raw("""
        #ifndef KDSL_BLOCK_SKIP
        // What a mask is over a block of (q, k) pairs: false for every pair (skip the block), true for every pair (no
        // per-element mask), or either.
        #define KDSL_BLOCK_SKIP 0
        #define KDSL_BLOCK_FULL 1
        #define KDSL_BLOCK_PARTIAL 2
        // The classifier's abstract values. A number is a double interval [lo, hi] holding every value the expression takes
        // over the block (exact for every int); infinite bounds mean unbounded, and a float or double that may be NaN is
        // (-inf, inf). A bool is two flags: it may be true, it may be false.
        #define KDSL_IV_INF __longlong_as_double(0x7ff0000000000000ll)
        static __device__ __forceinline__ void kdsl_iv_unknown(double& lo, double& hi) { lo = -KDSL_IV_INF; hi = KDSL_IV_INF; }
        static __device__ __forceinline__ bool kdsl_iv_nan(double lo, double hi) { return lo == -KDSL_IV_INF && hi == KDSL_IV_INF; }
        // An int's bounds enclose the exact result; past int's range the real one wrapped, so nothing is known.
        static __device__ __forceinline__ void kdsl_iv_fix_i(double& lo, double& hi) { if (!(lo >= -2147483648.0 && hi <= 2147483647.0)) kdsl_iv_unknown(lo, hi); }
        // A float's bounds enclose the exact result, which the real code rounds to a float (to zero when tiny, under ftz):
        // round them outward to floats. NaN (inf - inf, 0 * inf, the log of a negative) is unknown.
        static __device__ __forceinline__ void kdsl_iv_fix_f(double& lo, double& hi)
        {
            if (lo != lo || hi != hi) { kdsl_iv_unknown(lo, hi); return; }
            lo = (double)__double2float_rd(lo);
            hi = (double)__double2float_ru(hi);
            if (lo > 0.0 && lo < 1.1754943508222875e-38) lo = 0.0;
            if (hi < 0.0 && hi > -1.1754943508222875e-38) hi = 0.0;
        }
        static __device__ __forceinline__ void kdsl_iv_fix_d(double& lo, double& hi) { if (lo != lo || hi != hi) kdsl_iv_unknown(lo, hi); }
        // [a] * [b]: the corner products, rounded outward. 0 * inf is 0 for an int (an unbounded int is still finite) and
        // NaN for a float (a float may be infinite), which makes the product unknown.
        static __device__ __forceinline__ void kdsl_iv_mul(double alo, double ahi, double blo, double bhi, bool integral, double& lo, double& hi)
        {
            const double x[4] = {alo, alo, ahi, ahi}, y[4] = {blo, bhi, blo, bhi};
            lo = KDSL_IV_INF;
            hi = -KDSL_IV_INF;
            for (int i = 0; i < 4; ++i)
            {
                const bool zero = integral && (x[i] == 0.0 || y[i] == 0.0);
                const double d = zero ? 0.0 : __dmul_rd(x[i], y[i]), u = zero ? 0.0 : __dmul_ru(x[i], y[i]);
                if (d != d || u != u) { kdsl_iv_unknown(lo, hi); return; }
                lo = fmin(lo, d);
                hi = fmax(hi, u);
            }
        }
        // int a / b truncates (C and C#): monotone in a for one b != 0; a b that varies or may be 0 gives unknown.
        static __device__ __forceinline__ void kdsl_iv_idiv(double alo, double ahi, double blo, double bhi, double& lo, double& hi)
        {
            if (blo != bhi || blo == 0.0) { kdsl_iv_unknown(lo, hi); return; }
            const double x = trunc(alo / blo), y = trunc(ahi / blo);
            lo = fmin(x, y);
            hi = fmax(x, y);
        }
        // int a % b has a's sign and |a % b| < |b|: exact within one period of a single b, else the period's range.
        static __device__ __forceinline__ void kdsl_iv_imod(double alo, double ahi, double blo, double bhi, double& lo, double& hi)
        {
            if (blo != bhi || blo == 0.0) { kdsl_iv_unknown(lo, hi); return; }
            const double m = fabs(blo);
            if (alo >= 0.0)
            {
                if (floor(alo / m) == floor(ahi / m)) { lo = fmod(alo, m); hi = fmod(ahi, m); }
                else { lo = 0.0; hi = m - 1.0; }
            }
            else if (ahi <= 0.0)
            {
                if (ceil(alo / m) == ceil(ahi / m)) { lo = fmod(alo, m); hi = fmod(ahi, m); }
                else { lo = 1.0 - m; hi = 0.0; }
            }
            else { lo = 1.0 - m; hi = m - 1.0; }
        }
        static __device__ __forceinline__ void kdsl_iv_abs(double alo, double ahi, double& lo, double& hi)
        {
            lo = alo >= 0.0 ? alo : (ahi <= 0.0 ? -ahi : 0.0);
            hi = fmax(-alo, ahi);
        }
        static __device__ __forceinline__ double kdsl_iv_sign(double x) { return (double)((x > 0.0) - (x < 0.0)); }
        // A library function's bounds computed in double (exp, tanh, ...) and widened by far more than the real
        // function's error (a few ulps; more under fast math), so they enclose what the real code gets.
        static __device__ __forceinline__ double kdsl_iv_wlo(double x) { return x - fabs(x) * 0x1p-12 - 0x1p-20; }
        static __device__ __forceinline__ double kdsl_iv_whi(double x) { return x + fabs(x) * 0x1p-12 + 0x1p-20; }
        #endif
        """);

    /// <summary>
    /// <c>static __device__ __forceinline__ int kdsl_mask_block(int u_b, int u_h, int q_lo, int q_hi, int k_lo, int k_hi,
    /// runtime parameters…)</c> (preceded by <see cref="WriteBlockClassifierHelpers"/>): KDSL_BLOCK_SKIP when the mask is
    /// false for every (q, k) in [q_lo, q_hi] × [k_lo, k_hi], KDSL_BLOCK_FULL when it is true for every pair, else
    /// KDSL_BLOCK_PARTIAL. It interprets the mask's IR over intervals and three-valued bools: sound (never SKIP or FULL
    /// wrongly), and exact for the linear comparisons and conjunctions/disjunctions masks are made of.
    /// </summary>
    public static void WriteBlockClassifier(CodeWriter w, ModifierSpec mask)
    {
        if (mask.Kind != ModifierKind.Mask)
        {
            throw new ArgumentException($"{CSharpName(mask)} is a score modifier; only masks have a block classifier.", nameof(mask));
        }
        WriteBlockClassifierHelpers(w);
        var batch = mask.Parameters.FirstOrDefault(p => p.Role == ParameterRole.Batch)?.Name;
        var head = mask.Parameters.FirstOrDefault(p => p.Role == ParameterRole.Head)?.Name;
        var parameters = new List<string>
        {
            "int " + (batch is null ? "kdsl_unused_b" : CudaName(batch)),
            "int " + (head is null ? "kdsl_unused_h" : CudaName(head)),
            "int q_lo", "int q_hi", "int k_lo", "int k_hi",
        };
        parameters.AddRange(mask.Parameters.Where(p => p.Role == ParameterRole.Runtime).Select(Parameter));
        w.Raw($"// Block classifier of C# {CSharpName(mask)}: the mask over [q_lo, q_hi] x [k_lo, k_hi] (inclusive), by intervals.");
        w.Block($"static __device__ __forceinline__ int kdsl_mask_block({string.Join(", ", parameters)})", () =>
        {
            var c = new Classifier(w, mask);
            foreach (var local in mask.Locals)
            {
                c.Locals[local.Name] = c.Walk(local.Value, "true");
            }
            var r = c.Walk(mask.Result, "true");
            if (!r.IsBool)
            {
                throw new ArgumentException($"{CSharpName(mask)} does not return bool.", nameof(mask));
            }
            w.Raw($"return ({r.A} && !{r.B}) ? KDSL_BLOCK_FULL : ({r.A} ? KDSL_BLOCK_PARTIAL : KDSL_BLOCK_SKIP);");
        });
    }

    /// <summary>An abstract value's CUDA locals: (lo, hi) of a number, or (may be true, may be false) of a bool.</summary>
    private sealed record Abstract(bool IsBool, string A, string B);

    /// <summary>The recursive walk that emits one local pair per IR node and returns its names.</summary>
    private sealed class Classifier
    {
        private readonly CodeWriter _w;
        private readonly ModifierSpec _m;
        private readonly Dictionary<string, Abstract> _parameters = new();
        /// <summary>
        /// For each reach flag (may the real mask evaluate here for some pair of the block), the flag that it evaluates here
        /// for every pair: a [Nondecreasing] array is read at the ends of an index range only where every pair reads it.
        /// </summary>
        private readonly Dictionary<string, string> _must = new() { ["true"] = "true" };
        private int _next;

        public Classifier(CodeWriter w, ModifierSpec m)
        {
            _w = w;
            _m = m;
        }

        public Dictionary<string, Abstract> Locals { get; } = new();

        /// <summary>
        /// Emits <paramref name="e"/>'s abstract value. <paramref name="reach"/> is a CUDA bool that is false where the real
        /// mask never evaluates e (the right of a decided &amp;&amp;, an untaken branch): array reads happen only under it.
        /// </summary>
        public Abstract Walk(ModifierExpression e, string reach)
        {
            var note = Note(e);
            switch (e)
            {
                case LiteralExpression l when l.Type == ScalarType.Bool:
                    return l.Text is "true" or "false"
                        ? Bool(l.Text, l.Text == "true" ? "false" : "true", note)
                        : Bool(Atom(l.Text), "!" + Atom(l.Text), note);
                case LiteralExpression l:
                    return Number(l.Type, "(double)" + Atom(l.Text), "(double)" + Atom(l.Text), note, fix: l.Type != ScalarType.Int);
                case ParameterExpression p:
                    return Param(p, note);
                case LocalExpression l:
                    return Locals.TryGetValue(l.Name, out var local)
                        ? local
                        : throw new InvalidOperationException($"Local {l.Name} of {_m.MethodName} is read before it is declared.");
                case UnaryExpression u:
                    return Unary(u, reach, note);
                case BinaryExpression b:
                    return Binary(b, reach, note);
                case ConditionalExpression c:
                    return Conditional(c, reach, note);
                case ConvertExpression c:
                    return Convert(c, reach, note);
                case CallExpression c:
                    return Call(c, reach, note);
                case IndexExpression i:
                    return Index(i, reach, note);
                default:
                    throw new NotSupportedException($"Modifier expression {e.GetType().Name} has no block-classifier rule.");
            }
        }

        private Abstract Param(ParameterExpression p, string note)
        {
            if (_parameters.TryGetValue(p.Name, out var known))
            {
                return known;
            }
            var parameter = _m.Parameters.FirstOrDefault(x => x.Name == p.Name)
                ?? throw new InvalidOperationException($"{p.Name} is no parameter of {_m.MethodName}.");
            var name = CudaName(p.Name);
            var value = parameter.Role switch
            {
                ParameterRole.Query => Number(ScalarType.Int, "(double)q_lo", "(double)q_hi", "  // q ranges over the block's rows", fix: false),
                ParameterRole.Key => Number(ScalarType.Int, "(double)k_lo", "(double)k_hi", "  // k ranges over the block's columns", fix: false),
                ParameterRole.Score => Unknown(p.Type, "  // the score is not known per block"),
                _ when p.Type == ScalarType.Bool => Bool(name, "!" + name, note),
                _ => Number(p.Type, "(double)" + name, "(double)" + name, note, fix: p.Type != ScalarType.Int),
            };
            _parameters[p.Name] = value;
            return value;
        }

        private Abstract Unary(UnaryExpression u, string reach, string note)
        {
            var a = Walk(u.Operand, reach);
            return u.Operator switch
            {
                "!" => Bool(a.B, a.A, note),
                "-" => Number(u.Type, "-" + a.B, "-" + a.A, note, fix: u.Type == ScalarType.Int), // -int.MinValue wraps
                "+" => a,
                // ~x == -x - 1: decreasing.
                "~" => Number(u.Type, $"-{a.B} - 1.0", $"-{a.A} - 1.0", note, fix: false),
                _ => throw new NotSupportedException($"Unary {u.Operator} has no block-classifier rule."),
            };
        }

        private Abstract Binary(BinaryExpression b, string reach, string note)
        {
            var op = b.Operator;
            if (op is "&&" or "||")
            {
                // The right side runs only where the left did not decide: && while the left may be true, || while it may be false.
                var l = Walk(b.Left, reach);
                var r = Walk(b.Right, op == "&&" ? Reach(reach, l.A, "!" + l.B) : Reach(reach, l.B, "!" + l.A));
                return op == "&&" ? Bool($"{l.A} && {r.A}", $"{l.B} || {r.B}", note) : Bool($"{l.A} || {r.A}", $"{l.B} && {r.B}", note);
            }
            var x = Walk(b.Left, reach);
            var y = Walk(b.Right, reach);
            if (b.Left.Type == ScalarType.Bool)
            {
                return op switch
                {
                    "&" => Bool($"{x.A} && {y.A}", $"{x.B} || {y.B}", note),
                    "|" => Bool($"{x.A} || {y.A}", $"{x.B} && {y.B}", note),
                    "^" or "!=" => Bool($"({x.A} && {y.B}) || ({x.B} && {y.A})", $"({x.A} && {y.A}) || ({x.B} && {y.B})", note),
                    "==" => Bool($"({x.A} && {y.A}) || ({x.B} && {y.B})", $"({x.A} && {y.B}) || ({x.B} && {y.A})", note),
                    _ => throw new NotSupportedException($"bool {op} has no block-classifier rule."),
                };
            }
            // A NaN operand makes < <= > >= false: a float or double that may be NaN may make them false.
            var nan = b.Left.Type is ScalarType.Float or ScalarType.Double ? $" || kdsl_iv_nan({x.A}, {x.B}) || kdsl_iv_nan({y.A}, {y.B})" : "";
            switch (op)
            {
                case "<": return Bool($"{x.A} < {y.B}", $"{x.B} >= {y.A}{nan}", note);
                case "<=": return Bool($"{x.A} <= {y.B}", $"{x.B} > {y.A}{nan}", note);
                case ">": return Bool($"{x.B} > {y.A}", $"{x.A} <= {y.B}{nan}", note);
                case ">=": return Bool($"{x.B} >= {y.A}", $"{x.A} < {y.B}{nan}", note);
                case "==":
                case "!=":
                    // Equal somewhere if the intervals meet; unequal somewhere unless both are the same single value.
                    var meet = $"{x.A} <= {y.B} && {y.A} <= {x.B}";
                    var differ = $"!({x.A} == {x.B} && {y.A} == {y.B} && {x.A} == {y.A})";
                    return op == "==" ? Bool(meet, differ, note) : Bool(differ, meet, note);
            }
            var t = b.Type;
            switch (op)
            {
                // Rounded outward by the directed-rounding intrinsics, which the compiler never fuses into an FMA.
                case "+": return Number(t, $"__dadd_rd({x.A}, {y.A})", $"__dadd_ru({x.B}, {y.B})", note, fix: true);
                case "-": return Number(t, $"__dsub_rd({x.A}, {y.B})", $"__dsub_ru({x.B}, {y.A})", note, fix: true);
                case "*":
                    return Statements(t, note, (lo, hi) => _w.Raw($"kdsl_iv_mul({x.A}, {x.B}, {y.A}, {y.B}, {(t == ScalarType.Int ? "true" : "false")}, {lo}, {hi});"));
                case "/" when t == ScalarType.Int:
                    return Statements(t, note, (lo, hi) => _w.Raw($"kdsl_iv_idiv({x.A}, {x.B}, {y.A}, {y.B}, {lo}, {hi});"));
                case "%" when t == ScalarType.Int:
                    return Statements(t, note, (lo, hi) => _w.Raw($"kdsl_iv_imod({x.A}, {x.B}, {y.A}, {y.B}, {lo}, {hi});"));
                default:
                    // Floating / and %, shifts, bitwise: the real operation on exact operands, else unknown.
                    return ExactOrUnknown(t, note, new[] { (x, b.Left.Type), (y, b.Right.Type) }, v => BinaryText(op, b.Left.Type, v[0], v[1]));
            }
        }

        private Abstract Conditional(ConditionalExpression c, string reach, string note)
        {
            var k = Walk(c.Condition, reach);
            var x = Walk(c.WhenTrue, Reach(reach, k.A, "!" + k.B));
            var y = Walk(c.WhenFalse, Reach(reach, k.B, "!" + k.A));
            if (c.Type == ScalarType.Bool)
            {
                return Bool($"({k.A} && {x.A}) || ({k.B} && {y.A})", $"({k.A} && {x.B}) || ({k.B} && {y.B})", note);
            }
            // A decided condition picks its branch; an undecided one may give either: the hull.
            return Number(c.Type,
                $"{k.A} ? ({k.B} ? fmin({x.A}, {y.A}) : {x.A}) : {y.A}",
                $"{k.A} ? ({k.B} ? fmax({x.B}, {y.B}) : {x.B}) : {y.B}", note, fix: false);
        }

        private Abstract Convert(ConvertExpression c, string reach, string note)
        {
            var a = Walk(c.Operand, reach);
            var from = c.Operand.Type;
            if (from == c.Type)
            {
                return a;
            }
            if (from == ScalarType.Bool || c.Type == ScalarType.Bool)
            {
                return c.Type == ScalarType.Bool ? Bool("true", "true", note) : Number(c.Type, $"{a.B} ? 0.0 : 1.0", $"{a.A} ? 1.0 : 0.0", note, fix: false);
            }
            return c.Type == ScalarType.Int
                // Truncation toward zero is monotone; a value past int's range (or NaN) is unknown.
                ? Number(c.Type, $"trunc({a.A})", $"trunc({a.B})", note, fix: true)
                // To float: rounded outward (an int past 2^24 or a double need not be a float); to double: exact.
                : Number(c.Type, a.A, a.B, note, fix: c.Type == ScalarType.Float);
        }

        private Abstract Call(CallExpression c, string reach, string note)
        {
            var args = c.Arguments.Select(a => Walk(a, reach)).ToArray();
            var argType = ArgumentType(c);
            var t = c.Type;
            var floating = argType is ScalarType.Float or ScalarType.Double;
            var a = args[0];
            switch (c.Function)
            {
                case MathFunction.Abs:
                    return Statements(t, note, (lo, hi) =>
                    {
                        // fabsf(NaN) is NaN: a float that may be NaN stays unknown.
                        var call = $"kdsl_iv_abs({a.A}, {a.B}, {lo}, {hi});";
                        _w.Raw(floating ? $"if (kdsl_iv_nan({a.A}, {a.B})) kdsl_iv_unknown({lo}, {hi}); else {call}" : call);
                    }, fix: t == ScalarType.Int);
                // fmin/fmax/min/max are monotone in each argument (CUDA's fminf ignores a NaN operand).
                case MathFunction.Min:
                    return Number(t, $"fmin({a.A}, {args[1].A})", $"fmin({a.B}, {args[1].B})", note, fix: false);
                case MathFunction.Max:
                    return Number(t, $"fmax({a.A}, {args[1].A})", $"fmax({a.B}, {args[1].B})", note, fix: false);
                case MathFunction.Clamp:
                    return Number(t, $"fmin(fmax({a.A}, {args[1].A}), {args[2].A})", $"fmin(fmax({a.B}, {args[1].B}), {args[2].B})", note, fix: false);
                case MathFunction.Sign:
                    // Monotone; a NaN gives 0, inside [-1, 1].
                    return Number(t, $"kdsl_iv_sign({a.A})", $"kdsl_iv_sign({a.B})", note, fix: false);
                case MathFunction.Floor or MathFunction.Ceiling or MathFunction.Round or MathFunction.Truncate when floating:
                    // Monotone and exact in double for every float or double.
                    var f = FloatingName(c.Function);
                    return Number(t, $"{f}({a.A})", $"{f}({a.B})", note, fix: true);
                case MathFunction.Exp or MathFunction.Log or MathFunction.Log2 or MathFunction.Log10 or MathFunction.Sqrt
                    or MathFunction.Tanh or MathFunction.Sinh or MathFunction.Atan when floating:
                    // Increasing: the real function on an exact operand, else the ends' values in double, widened.
                    var g = FloatingName(c.Function);
                    var exact = CallText(c.Function, argType, new[] { Typed(a, argType) });
                    return Statements(t, note, (lo, hi) =>
                    {
                        _w.Raw($"if ({a.A} == {a.B}) {lo} = {hi} = (double){exact};");
                        _w.Raw($"else if (kdsl_iv_nan({a.A}, {a.B})) kdsl_iv_unknown({lo}, {hi});");
                        _w.Raw($"else {{ {lo} = kdsl_iv_wlo({g}({a.A})); {hi} = kdsl_iv_whi({g}({a.B})); }}");
                    });
                default:
                    return ExactOrUnknown(t, note, args.Select(v => (v, argType)).ToArray(), v => CallText(c.Function, argType, v));
            }
        }

        private Abstract Index(IndexExpression i, string reach, string note)
        {
            var ix = Walk(i.Index, reach);
            var read = $"{CudaName(i.Array)}[(int){ix.A}]";
            // Only a single index that the real mask reads is read.
            var when = reach == "true" ? $"{ix.A} == {ix.B}" : $"{reach} && {ix.A} == {ix.B}";
            if (i.Type == ScalarType.Bool)
            {
                return Bool($"!({when}) || {read}", $"!({when}) || !{read}", note);
            }
            var array = _m.Parameters.FirstOrDefault(p => p.Name == i.Array);
            // A [Nondecreasing] array over an index range lies between its elements at the range's ends. They are read only
            // where they are indices the real mask reads: every pair of the block evaluates this read (must-reach), and
            // the range's ends are values the index takes at some pair (Attained), so both are in the array.
            var ends = array is { IsArray: true, Nondecreasing: true } && Attained(i.Index) is not null
                ? (Must(reach) == "true" ? "" : Must(reach) + " && ") + $"{ix.A} > -KDSL_IV_INF && {ix.B} < KDSL_IV_INF"
                : null;
            return Statements(i.Type, note, (lo, hi) =>
            {
                _w.Raw($"if ({when}) {lo} = {hi} = (double){read};");
                if (ends is not null)
                {
                    _w.Raw($"else if ({ends}) {{ {lo} = (double){CudaName(i.Array)}[(int){ix.A}]; {hi} = (double){CudaName(i.Array)}[(int){ix.B}]; }}  // nondecreasing: bounded by its ends");
                }
                _w.Raw($"else kdsl_iv_unknown({lo}, {hi});");
            }, fix: i.Type != ScalarType.Int);
        }

        /// <summary>
        /// Whether both ends of the interval the classifier computes for the int <paramref name="e"/> are values e takes
        /// at some (q, k) of the block; if so, the block variables (q, k) it depends on, else null. Sums and differences of
        /// such parts on disjoint variables keep their ends (q - k ends at q_lo - k_hi and q_hi - k_lo); q - q does not.
        /// </summary>
        private HashSet<ParameterRole>? Attained(ModifierExpression e)
        {
            switch (e)
            {
                case LiteralExpression:
                    return [];
                case ParameterExpression p:
                    var role = _m.Parameters.FirstOrDefault(x => x.Name == p.Name)?.Role;
                    return role switch
                    {
                        ParameterRole.Query or ParameterRole.Key => [role.Value],
                        ParameterRole.Score or null => null,
                        _ => [], // one value over the block
                    };
                case LocalExpression l:
                    return _m.Locals.FirstOrDefault(x => x.Name == l.Name) is { } local ? Attained(local.Value) : null;
                case UnaryExpression { Operator: "+" or "-" or "~" } u:
                    return Attained(u.Operand);
                case BinaryExpression { Operator: "+" or "-", Type: ScalarType.Int } b:
                    var left = Attained(b.Left);
                    var right = Attained(b.Right);
                    if (left is null || right is null || left.Overlaps(right))
                    {
                        return null;
                    }
                    left.UnionWith(right);
                    return left;
                default:
                    return null;
            }
        }

        /// <summary>The flag that the real mask evaluates under <paramref name="reach"/> for every pair of the block.</summary>
        private string Must(string reach) => _must.TryGetValue(reach, out var must) ? must : "false";

        /// <summary>The real operation, spelled as the device function spells it, on exact operands; else unknown.</summary>
        private Abstract ExactOrUnknown(ScalarType t, string note, (Abstract Value, ScalarType Type)[] operands, Func<string[], string> real)
        {
            var conditions = operands.Select(o => $"{o.Value.A} == {o.Value.B}");
            var exact = real(operands.Select(o => Typed(o.Value, o.Type)).ToArray());
            return Statements(t, note, (lo, hi) =>
            {
                _w.Raw($"if ({string.Join(" && ", conditions)}) {lo} = {hi} = (double){exact};");
                _w.Raw($"else kdsl_iv_unknown({lo}, {hi});");
            });
        }

        /// <summary>An exact abstract value as the typed C value the real code holds.</summary>
        private static string Typed(Abstract v, ScalarType t) => t switch
        {
            ScalarType.Int => $"((int){v.A})",
            ScalarType.Float => $"((float){v.A})",
            ScalarType.Bool => v.A,
            _ => v.A,
        };

        /// <summary>
        /// The reach of a part evaluated under <paramref name="reach"/> where <paramref name="condition"/> may hold;
        /// <paramref name="always"/> is the flag that it holds for every pair, which gives the part's must-reach.
        /// </summary>
        private string Reach(string reach, string condition, string always)
        {
            var outer = Must(reach);
            var must = outer == "true" ? always : outer == "false" ? "false" : $"{outer} && {always}";
            if (reach == "true")
            {
                _must[condition] = must;
                return condition;
            }
            var n = _next++;
            _w.Raw($"const bool r{n} = {reach} && {condition};");
            _must[$"r{n}"] = must;
            return $"r{n}";
        }

        private Abstract Bool(string mayTrue, string mayFalse, string note)
        {
            var n = _next++;
            _w.Raw($"const bool bv{n}_t = {mayTrue}, bv{n}_f = {mayFalse};{note}");
            return new Abstract(true, $"bv{n}_t", $"bv{n}_f");
        }

        private Abstract Number(ScalarType t, string lo, string hi, string note, bool fix)
        {
            var n = _next++;
            _w.Raw($"double iv{n}_lo = {lo}, iv{n}_hi = {hi};{note}");
            if (fix)
            {
                Fix(t, $"iv{n}_lo", $"iv{n}_hi");
            }
            return new Abstract(false, $"iv{n}_lo", $"iv{n}_hi");
        }

        private Abstract Unknown(ScalarType t, string note) => Number(t, "-KDSL_IV_INF", "KDSL_IV_INF", note, fix: false);

        private Abstract Statements(ScalarType t, string note, Action<string, string> body, bool fix = true)
        {
            var n = _next++;
            var lo = $"iv{n}_lo";
            var hi = $"iv{n}_hi";
            _w.Raw($"double {lo}, {hi};{note}");
            body(lo, hi);
            if (fix)
            {
                Fix(t, lo, hi);
            }
            return new Abstract(false, lo, hi);
        }

        private void Fix(ScalarType t, string lo, string hi)
        {
            var suffix = t switch { ScalarType.Int => "i", ScalarType.Float => "f", _ => "d" };
            _w.Raw($"kdsl_iv_fix_{suffix}({lo}, {hi});");
        }

        /// <summary>A trailing comment with the node's CUDA text, so each pair reads against the mask.</summary>
        private static string Note(ModifierExpression e)
        {
            if (e is LiteralExpression or LocalExpression)
            {
                return "";
            }
            var text = Bare(Expression(e));
            return "  // " + (text.Length > 72 ? text.Substring(0, 69) + "..." : text);
        }
    }
}
