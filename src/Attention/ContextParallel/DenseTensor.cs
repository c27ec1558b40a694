using KernelDsl.Attention.Reference;

namespace KernelDsl.Attention.ContextParallel;

/// <summary>One 2D copy in elements: <see cref="Height"/> rows of <see cref="Width"/>, each pitch apart on its side.</summary>
internal readonly record struct RowCopy(long SourceOffset, long SourcePitch, long TargetOffset, long TargetPitch, long Width, long Height);

/// <summary>
/// A dense [B, H, S, D] tensor in one layout, and how a box of its heads × tokens moves into another such tensor as 2D
/// copies: what context parallelism does to tensors (a rank's chunks of the sequence, a peer's heads, both at once).
/// </summary>
internal readonly record struct DenseTensor(int Batch, int Heads, int Tokens, int HeadDim, TensorLayout Layout)
{
    public long Elements => (long)Batch * Heads * Tokens * HeadDim;

    /// <summary>
    /// The copies that move heads <paramref name="heads"/> × tokens <paramref name="tokens"/> of <paramref name="source"/>
    /// to heads from <paramref name="toHead"/> and tokens from <paramref name="toToken"/> of <paramref name="target"/>
    /// (same batch and head dim). Below the batch, memory holds two axes (heads then tokens in BHSD, tokens then heads in
    /// BSHD): when the box spans the inner one whole on both sides each batch's part is one row; when it spans the outer
    /// one whole its rows are evenly spaced across batches; either way one copy, else one per batch.
    /// </summary>
    public static RowCopy[] Plan(DenseTensor source, HeadRange heads, TokenRange tokens, DenseTensor target, int toHead, int toToken)
    {
        if (source.Batch != target.Batch || source.HeadDim != target.HeadDim)
        {
            throw new ArgumentException($"A copy keeps batch and head dim: [{source.Batch}, ·, ·, {source.HeadDim}] to [{target.Batch}, ·, ·, {target.HeadDim}].", nameof(target));
        }
        Inside(heads.Start, heads.Count, source.Heads, "heads", nameof(source));
        Inside(tokens.Start, tokens.Length, source.Tokens, "tokens", nameof(source));
        Inside(toHead, heads.Count, target.Heads, "heads", nameof(target));
        Inside(toToken, tokens.Length, target.Tokens, "tokens", nameof(target));
        var bhsd = source.Layout == TensorLayout.BHSD;
        if ((target.Layout == TensorLayout.BHSD) != bhsd)
        {
            throw new ArgumentException($"A copy keeps the layout: {source.Layout} to {target.Layout}.", nameof(target));
        }
        // The outer and inner axes below the batch.
        var (outer, inner) = bhsd
            ? (new Axis(heads.Start, toHead, heads.Count, source.Heads, target.Heads), new Axis(tokens.Start, toToken, tokens.Length, source.Tokens, target.Tokens))
            : (new Axis(tokens.Start, toToken, tokens.Length, source.Tokens, target.Tokens), new Axis(heads.Start, toHead, heads.Count, source.Heads, target.Heads));
        long d = source.HeadDim;
        if (inner.Count == inner.Source && inner.Count == inner.Target)
        {
            var row = inner.Count * d;
            return [new(outer.From * row, outer.Source * row, outer.To * row, outer.Target * row, outer.Count * row, source.Batch)];
        }
        if (outer.Count == outer.Source && outer.Count == outer.Target)
        {
            return [new(inner.From * d, inner.Source * d, inner.To * d, inner.Target * d, inner.Count * d, source.Batch * outer.Count)];
        }
        return Enumerable.Range(0, source.Batch).Select(b => new RowCopy(
            (b * outer.Source + outer.From) * inner.Source * d + inner.From * d, inner.Source * d,
            (b * outer.Target + outer.To) * inner.Target * d + inner.To * d, inner.Target * d,
            inner.Count * d, outer.Count)).ToArray();
    }

    /// <summary>Queues <see cref="Plan"/>'s copies on <paramref name="stream"/>.</summary>
    public static void Copy<T>(CudaStream stream, DeviceBuffer<T> source, DenseTensor sourceShape, HeadRange heads, TokenRange tokens,
        DeviceBuffer<T> target, DenseTensor targetShape, int toHead, int toToken) where T : unmanaged
    {
        foreach (var c in Plan(sourceShape, heads, tokens, targetShape, toHead, toToken))
        {
            stream.Copy2D(source, c.SourceOffset, c.SourcePitch, target, c.TargetOffset, c.TargetPitch, c.Width, c.Height);
        }
    }

    /// <summary>Every head of a token range.</summary>
    public HeadRange AllHeads => new(0, Heads);

    /// <summary>Every token of a head range.</summary>
    public TokenRange AllTokens => new(0, Tokens);

    /// <summary>A view of a buffer holding this tensor, for the attention calls.</summary>
    public TensorView<T> View<T>(DeviceBuffer<T> buffer) where T : unmanaged
    {
        var s = new AttentionShape(Batch, Heads, Heads, Tokens, Tokens, HeadDim, layout: Layout).QStrides;
        return new TensorView<T>(buffer, [Batch, Heads, Tokens, HeadDim], [s.Batch, s.Head, s.Token, 1]);
    }

    /// <summary>The box along one axis: its start on each side, its length, and the axis's extent on each side.</summary>
    private readonly record struct Axis(long From, long To, long Count, long Source, long Target);

    private static void Inside(int start, int count, int extent, string axis, string name)
    {
        if (start < 0 || count < 0 || start > extent - count)
        {
            throw new ArgumentException($"{axis} [{start}, {start + count}) do not lie inside the {extent} of '{name}'.", name);
        }
    }
}
