namespace KernelDsl;

/// <summary>
/// Marks a static method as an attention score modifier: <c>float M(float score, int b, int h, int q, int k, params…)</c>.
/// The generator translates its body to a CUDA device function that every attention kernel declared in the same type
/// (or a type nested in it) applies to each visible score; the CPU references call the method itself.
/// </summary>
/// <remarks>
/// <c>score</c> is the natural-log score σ·q·k (σ the softmax scale, 1/√D by default), as in the textbook formula, and
/// the result replaces it before the softmax. Runtime parameters after <c>k</c> are <c>int</c>, <c>float</c>, or
/// read-only arrays (<c>ReadOnlySpan&lt;int&gt;</c>, <c>ReadOnlySpan&lt;float&gt;</c>, or <c>int[]</c>/<c>float[]</c>);
/// they become arguments of the generated launcher. The body may use arithmetic, comparison and logical operators, the
/// conditional operator, locals, constants, <c>MathF</c>/<c>Math</c> functions with a CUDA counterpart, and indexing of
/// an array parameter; anything else is a KDSL06xx error at the construct.
/// </remarks>
[AttributeUsage(AttributeTargets.Method, Inherited = false)]
public sealed class ScoreModifierAttribute : Attribute;

/// <summary>
/// Marks a static method as an attention mask: <c>bool M(int b, int h, int q, int k, params…)</c>, true where query q
/// may see key k. Every attention kernel declared in the same type (or a type nested in it) applies it; blocks of keys
/// the mask hides from a whole block of queries are skipped, and blocks it shows whole run without per-score mask code.
/// Query and key indices are positions in their own sequences (0 ≤ q &lt; Sq, 0 ≤ k &lt; Sk).
/// </summary>
/// <remarks>Runtime parameters and the body follow the rules of <see cref="ScoreModifierAttribute"/>.</remarks>
[AttributeUsage(AttributeTargets.Method, Inherited = false)]
public sealed class MaskModifierAttribute : Attribute;
