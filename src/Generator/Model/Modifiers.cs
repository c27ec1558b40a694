using System.Collections.Generic;
using System.Linq;
using KernelDsl.Generator.Helpers;

namespace KernelDsl.Generator.Model;

/// <summary>What a user's modifier method computes inside the attention kernel.</summary>
public enum ModifierKind
{
    /// <summary><c>(float score, int b, int h, int q, int k, params…) → float</c>: replaces the natural-log score σ·q·k.</summary>
    Score,
    /// <summary><c>(int b, int h, int q, int k, params…) → bool</c>: false hides key k from query q.</summary>
    Mask,
}

/// <summary>The value types the translatable subset has: C# bool, int, float and double, and CUDA's of the same size.</summary>
public enum ScalarType { Bool, Int, Float, Double }

/// <summary>What a modifier parameter carries: the score, one of the four indices, or a runtime argument of the launch.</summary>
public enum ParameterRole { Score, Batch, Head, Query, Key, Runtime }

/// <summary>
/// One parameter of a modifier method. Runtime parameters are scalars (a window, a cap) or read-only arrays
/// (<c>ReadOnlySpan&lt;T&gt;</c> or <c>T[]</c> in C#: per-head slopes, per-token document ids), which become typed
/// arguments of the generated launcher and device pointers in CUDA. <paramref name="Nondecreasing"/> is the caller's
/// [Nondecreasing] promise on an array (arr[i] ≤ arr[i + 1]), which lets the block classifier bound arr[i] over a range
/// of i by the two end elements. <paramref name="Positive"/> is a scalar's [Positive] rule (greater than zero, and finite),
/// which the launchers check before launch.
/// </summary>
public sealed record ModifierParameter(string Name, ScalarType Type, bool IsArray, ParameterRole Role, bool Nondecreasing = false, bool Positive = false)
{
    /// <summary>
    /// The CUDA spelling of a C# name in a modifier: prefixed, so that no user name can be a CUDA keyword or collide with
    /// the kernel's own names.
    /// </summary>
    public static string CudaName(string name) => "u_" + name;
}

/// <summary>
/// One modifier method, translated: its signature and its body as a small expression tree that the CUDA writer and the
/// block classifier both walk. No Roslyn type reaches here.
/// </summary>
public sealed record ModifierSpec
{
    public required ModifierKind Kind { get; init; }
    /// <summary>The C# method's name, e.g. "SlidingWindow".</summary>
    public required string MethodName { get; init; }
    /// <summary>The declaring type as C# names it from anywhere: "global::Ns.Outer.Type".</summary>
    public required string DeclaringType { get; init; }
    /// <summary>Every parameter in declaration order: for a score modifier the score first, then b, h, q, k, then runtime ones.</summary>
    public required EquatableArray<ModifierParameter> Parameters { get; init; }
    /// <summary>The locals, in order; each may read the parameters and the locals before it.</summary>
    public required EquatableArray<ModifierLocal> Locals { get; init; }
    /// <summary>What the method returns: float for a score modifier, bool for a mask.</summary>
    public required ModifierExpression Result { get; init; }

    /// <summary>Whether the body reads the parameter of <paramref name="role"/> (a mask that never reads h is the same for every head).</summary>
    public bool Reads(ParameterRole role) =>
        Parameters.FirstOrDefault(p => p.Role == role) is { } parameter && Nodes().OfType<ParameterExpression>().Any(e => e.Name == parameter.Name);

    /// <summary>Every node of the body, the locals' values then the result, each with all its operands (pre-order).</summary>
    public IEnumerable<ModifierExpression> Nodes() => Locals.Select(l => l.Value).Append(Result).SelectMany(NodesOf);

    private static IEnumerable<ModifierExpression> NodesOf(ModifierExpression e) => new[] { e }.Concat(e switch
    {
        UnaryExpression u => NodesOf(u.Operand),
        BinaryExpression b => NodesOf(b.Left).Concat(NodesOf(b.Right)),
        ConditionalExpression c => NodesOf(c.Condition).Concat(NodesOf(c.WhenTrue)).Concat(NodesOf(c.WhenFalse)),
        ConvertExpression c => NodesOf(c.Operand),
        CallExpression c => c.Arguments.SelectMany(NodesOf),
        IndexExpression i => NodesOf(i.Index),
        _ => [],
    });
}

/// <summary><c>var name = value;</c> (locals are never reassigned).</summary>
public sealed record ModifierLocal(string Name, ScalarType Type, ModifierExpression Value);

/// <summary>A node of a modifier body; <see cref="Type"/> is the node's C# type after the compiler's conversions.</summary>
public abstract record ModifierExpression(ScalarType Type);

/// <summary>A constant, already spelled as CUDA reads it with the same value ("3", "1.5f", "true", "0.5").</summary>
public sealed record LiteralExpression(ScalarType Type, string Text) : ModifierExpression(Type);

/// <summary>A parameter of the method (scalar; arrays are only read through <see cref="IndexExpression"/>).</summary>
public sealed record ParameterExpression(ScalarType Type, string Name) : ModifierExpression(Type);

public sealed record LocalExpression(ScalarType Type, string Name) : ModifierExpression(Type);

/// <summary><c>-x</c>, <c>!x</c>, <c>~x</c>, <c>+x</c>.</summary>
public sealed record UnaryExpression(ScalarType Type, string Operator, ModifierExpression Operand) : ModifierExpression(Type);

/// <summary>
/// Arithmetic (<c>+ - * / %</c>), comparison (<c>&lt; &lt;= &gt; &gt;= == !=</c>), logical (<c>&amp;&amp; ||</c>), and
/// integer bitwise and shift operators (<c>&amp; | ^ &lt;&lt; &gt;&gt;</c>), with C#'s operator spelling, which CUDA shares.
/// Operands already have the operator's type (the translator inserts <see cref="ConvertExpression"/> where C# converts).
/// </summary>
public sealed record BinaryExpression(ScalarType Type, string Operator, ModifierExpression Left, ModifierExpression Right) : ModifierExpression(Type);

/// <summary><c>condition ? whenTrue : whenFalse</c>.</summary>
public sealed record ConditionalExpression(ScalarType Type, ModifierExpression Condition, ModifierExpression WhenTrue, ModifierExpression WhenFalse) : ModifierExpression(Type);

/// <summary>A numeric conversion, implicit or a cast: to <see cref="ModifierExpression.Type"/>.</summary>
public sealed record ConvertExpression(ScalarType Type, ModifierExpression Operand) : ModifierExpression(Type);

/// <summary>A <c>MathF</c>/<c>Math</c> function with a CUDA counterpart; the argument types pick the overload.</summary>
public sealed record CallExpression(ScalarType Type, MathFunction Function, EquatableArray<ModifierExpression> Arguments) : ModifierExpression(Type);

/// <summary><c>array[index]</c> on a runtime array parameter; the index is an int.</summary>
public sealed record IndexExpression(ScalarType Type, string Array, ModifierExpression Index) : ModifierExpression(Type);

/// <summary>The <c>System.MathF</c> and <c>System.Math</c> functions the subset translates.</summary>
public enum MathFunction
{
    Abs, Min, Max, Clamp, Sign,
    Exp, Log, Log2, Log10, Pow, Sqrt,
    Tanh, Sinh, Cosh, Sin, Cos, Tan, Atan, Atan2,
    Floor, Ceiling, Round, Truncate,
}
