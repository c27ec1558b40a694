namespace KernelDsl.Attention.Reference;

/// <summary>How a [batch, heads, tokens, headDim] tensor lies in memory; the head dimension is always innermost.</summary>
public enum TensorLayout
{
    /// <summary>[batch][heads][tokens][headDim]: each head's tokens are contiguous.</summary>
    BHSD = 0,
    /// <summary>[batch][tokens][heads][headDim]: the layout a fused QKV projection writes.</summary>
    BSHD = 1,
}

/// <summary>Element strides of one tensor; the channel stride is 1.</summary>
public readonly record struct TensorStrides(long Batch, long Head, long Token)
{
    public long Offset(int b, int h, int s) => b * Batch + h * Head + s * Token;
}

/// <summary>
/// One attention problem: Q/O are [Batch, HeadsQ, TokensQ, HeadDim], K/V are [Batch, HeadsKv, TokensKv, HeadDim], all in
/// <see cref="Layout"/>. Query head h reads key/value head h / (HeadsQ / HeadsKv) (GQA; MQA when HeadsKv = 1).
/// Causal masking is bottom-right aligned as in FlashAttention 2: query i sees key j iff j ≤ i + (TokensKv − TokensQ),
/// so the last query sees every key; with TokensQ &gt; TokensKv the first rows see none.
/// </summary>
public sealed record AttentionShape
{
    private const double Log2E = 1.4426950408889634;

    public AttentionShape(int batch, int headsQ, int headsKv, int tokensQ, int tokensKv, int headDim,
        bool causal = false, double? softmaxScale = null, TensorLayout layout = TensorLayout.BHSD)
    {
        Positive(batch, nameof(batch));
        Positive(headsQ, nameof(headsQ));
        Positive(headsKv, nameof(headsKv));
        Positive(tokensQ, nameof(tokensQ));
        Positive(tokensKv, nameof(tokensKv));
        Positive(headDim, nameof(headDim));
        if (headsQ % headsKv != 0)
        {
            throw new ArgumentException(
                $"headsQ ({headsQ}) must be a whole multiple of headsKv ({headsKv}): each key/value head serves a whole group of query heads.",
                nameof(headsKv));
        }
        var scale = softmaxScale ?? 1.0 / Math.Sqrt(headDim);
        if (!double.IsFinite(scale) || scale <= 0)
        {
            throw new ArgumentException($"softmaxScale must be finite and positive, got {scale}.", nameof(softmaxScale));
        }
        if (!Enum.IsDefined(layout))
        {
            throw new ArgumentException($"layout must be BHSD or BSHD, got {layout}.", nameof(layout));
        }
        // Offsets are computed in long, but the CPU references index arrays with int.
        if ((long)batch * headsQ * tokensQ * headDim > Array.MaxLength || (long)batch * headsKv * tokensKv * headDim > Array.MaxLength)
        {
            throw new ArgumentException("A tensor of this shape has more elements than a .NET array can hold.", nameof(batch));
        }
        (Batch, HeadsQ, HeadsKv, TokensQ, TokensKv, HeadDim) = (batch, headsQ, headsKv, tokensQ, tokensKv, headDim);
        (Causal, SoftmaxScale, Layout) = (causal, scale, layout);
    }

    public int Batch { get; }
    public int HeadsQ { get; }
    public int HeadsKv { get; }
    public int TokensQ { get; }
    public int TokensKv { get; }
    public int HeadDim { get; }
    public bool Causal { get; }
    /// <summary>σ in softmax(σ·QKᵀ); 1/√HeadDim unless given.</summary>
    public double SoftmaxScale { get; }
    public TensorLayout Layout { get; }

    /// <summary>Query heads per key/value head.</summary>
    public int GroupSize => HeadsQ / HeadsKv;

    public int KvHeadOf(int headQ) => headQ / GroupSize;

    /// <summary>TokensKv − TokensQ: the diagonal's shift under bottom-right causal alignment.</summary>
    public int CausalOffset => TokensKv - TokensQ;

    public bool IsVisible(int query, int key) => key < TokensKv && (!Causal || key <= query + CausalOffset);

    /// <summary>Keys [0, VisibleKeys(i)) are the ones query i may see (a prefix, possibly empty).</summary>
    public int VisibleKeys(int query) => Causal ? Math.Clamp(query + CausalOffset + 1, 0, TokensKv) : TokensKv;

    /// <summary>σ·log₂e rounded once to float32: the multiplier folded into Q's quantization scale so softmax can use exp2.</summary>
    public float QScaleMultiplier => (float)(SoftmaxScale * Log2E);

    public TensorStrides QStrides => StridesOf(HeadsQ, TokensQ);

    public TensorStrides KvStrides => StridesOf(HeadsKv, TokensKv);

    public int QElements => Batch * HeadsQ * TokensQ * HeadDim;

    public int KvElements => Batch * HeadsKv * TokensKv * HeadDim;

    /// <summary>Entries of the LSE output, laid out [Batch][HeadsQ][TokensQ] whatever the layout.</summary>
    public int LseElements => Batch * HeadsQ * TokensQ;

    public int LseIndex(int b, int h, int i) => (b * HeadsQ + h) * TokensQ + i;

    /// <summary>Throws unless q, k and v hold exactly the elements of this shape.</summary>
    public void CheckLengths(int q, int k, int v)
    {
        Length(q, QElements, "q");
        Length(k, KvElements, "k");
        Length(v, KvElements, "v");
    }

    private static void Length(int actual, int expected, string name)
    {
        if (actual != expected)
        {
            throw new ArgumentException($"{name} has {actual} elements; the shape needs {expected}.", name);
        }
    }

    private TensorStrides StridesOf(int heads, int tokens) => Layout == TensorLayout.BHSD
        ? new TensorStrides((long)heads * tokens * HeadDim, (long)tokens * HeadDim, HeadDim)
        : new TensorStrides((long)tokens * heads * HeadDim, HeadDim, (long)heads * HeadDim);

    private static void Positive(int value, string name)
    {
        if (value <= 0)
        {
            throw new ArgumentException($"{name} must be positive, got {value}.", name);
        }
    }
}
