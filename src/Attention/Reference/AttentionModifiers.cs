namespace KernelDsl.Attention.Reference;

/// <summary>
/// A score modifier with its runtime arguments bound: the natural-log score s = σ·q·k of query <paramref name="query"/>
/// against key <paramref name="key"/> in, the score the softmax uses out (e.g. softcap cap·tanh(s/cap), ALiBi s + slope·(k − q)).
/// </summary>
public delegate float ScoreModifier(float score, int batch, int head, int query, int key);

/// <summary>A mask with its runtime arguments bound: false hides key <paramref name="key"/> from query <paramref name="query"/>.
/// Both are positions in their own sequences.</summary>
public delegate bool MaskModifier(int batch, int head, int query, int key);

/// <summary>
/// The user's modifiers with their runtime arguments bound; <see cref="None"/> applies neither. The mask combines (AND)
/// with the shape's causal mask; a row with no visible key outputs 0 with LSE −∞.
/// </summary>
public sealed record AttentionModifiers(ScoreModifier? Score = null, MaskModifier? Mask = null)
{
    public static readonly AttentionModifiers None = new();

    /// <summary>Whether query <paramref name="q"/> of (batch <paramref name="b"/>, query head <paramref name="h"/>) sees key <paramref name="k"/>.</summary>
    public bool IsVisible(AttentionShape shape, int b, int h, int q, int k) => shape.IsVisible(q, k) && (Mask is null || Mask(b, h, q, k));
}
