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
/// they become arguments of the generated launcher. Like FlexAttention's score_mod, the kernel calls it for every pair
/// (q, k) of a block it computes, including pairs the mask or causality then hide, so it must be safe for any
/// 0 ≤ q &lt; Sq, 0 ≤ k &lt; Sk (an array indexed by <c>q - k</c> is not); only its results for visible pairs count.
/// The body may use arithmetic, comparison and logical operators, the
/// conditional operator, locals, constants, <c>MathF</c>/<c>Math</c> functions with a CUDA counterpart, and indexing of
/// an array parameter; anything else is a KDSL06xx error at the construct.
/// </remarks>
[AttributeUsage(AttributeTargets.Method, Inherited = false)]
public sealed class ScoreModifierAttribute : Attribute;

/// <summary>
/// Marks a static method as an attention mask: <c>bool M(int b, int h, int q, int k, params…)</c>, true where query q
/// may see key k. Every attention kernel declared in the same type (or a type nested in it) applies it; blocks of keys
/// the mask hides from a whole block of queries are skipped, and blocks it shows whole run without per-score mask code.
/// Query and key indices are positions in their own sequences (0 ≤ q &lt; Sq, 0 ≤ k &lt; Sk); the kernel may ask about
/// any such pair of a block it computes (its block classifier bounds the method over whole blocks), so the body must be
/// safe for all of them.
/// </summary>
/// <remarks>Runtime parameters and the body follow the rules of <see cref="ScoreModifierAttribute"/>.</remarks>
[AttributeUsage(AttributeTargets.Method, Inherited = false)]
public sealed class MaskModifierAttribute : Attribute;

/// <summary>
/// On an array parameter of a [MaskModifier] or [ScoreModifier] method: the caller promises the array never decreases,
/// <c>arr[i] ≤ arr[i + 1]</c> for every i (the document ids of packed sequences, cumulative lengths). The generator then
/// bounds <c>arr[i]</c> over a range of i by its two end elements, which lets a mask's block classifier skip whole blocks
/// and show whole blocks without per-score mask code (two documents' tokens never meet; one document's tokens all do).
/// </summary>
/// <remarks>
/// The promise is not checked. An array that decreases anywhere gets blocks wrongly skipped or wrongly shown whole, so
/// the kernel returns wrong results without any error: the documentation of every method that takes such an array must
/// say that it has to be nondecreasing. The attribute is allowed on runtime array parameters only (KDSL0611 elsewhere).
/// </remarks>
[AttributeUsage(AttributeTargets.Parameter, Inherited = false)]
public sealed class NondecreasingAttribute : Attribute;

/// <summary>
/// On a runtime scalar parameter of a [MaskModifier] or [ScoreModifier] method: its value must be positive (and finite,
/// for a float), such as a softcap's cap, which the body divides by. The generated launchers and
/// <c>Int8Attention</c>'s argument binding refuse any other value before anything is queued, naming the parameter.
/// </summary>
/// <remarks>The attribute is allowed on runtime scalar parameters only (KDSL0612 elsewhere).</remarks>
[AttributeUsage(AttributeTargets.Parameter, Inherited = false)]
public sealed class PositiveAttribute : Attribute;

/// <summary>
/// Declares a family of attention kernels: nested in this type, one kernel for each <c>[FlashAttentionForward]</c> type
/// nested in <see cref="Forms"/>, with the same name and declaration, applying this type's [ScoreModifier] and
/// [MaskModifier] methods. A set of forms (say Hopper wgmma, mma.sync, both P·V modes, f16 and bf16) is then written
/// once and every family of modifiers is built in all of them.
/// </summary>
[AttributeUsage(AttributeTargets.Class | AttributeTargets.Struct, Inherited = false)]
public sealed class AttentionFamilyAttribute(Type forms) : Attribute
{
    /// <summary>The type whose nested [FlashAttentionForward] types are this family's kernels.</summary>
    public Type Forms { get; } = forms;
    /// <summary>Build every form with causal masking (bottom-right aligned), whatever the form declares.</summary>
    public bool Causal { get; set; }
}

/// <summary>
/// Marks a type whose nested [FlashAttentionForward] types are forms for [AttentionFamily] types only: they are not
/// kernels of their own, so a set of forms costs nothing until a family uses it.
/// </summary>
[AttributeUsage(AttributeTargets.Class | AttributeTargets.Struct, Inherited = false)]
public sealed class AttentionFormsAttribute : Attribute;
