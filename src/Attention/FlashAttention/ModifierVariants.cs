using System;

namespace KernelDsl.Attention.FlashAttention;

// The library's attention variants, written the way a user writes one: a [MaskModifier] or [ScoreModifier] method in
// C# on an [AttentionFamily] type, which gets one kernel per form of D128Forms. The generator translates each method
// to CUDA and derives the mask's block classifier from it; the CPU references call the same methods. A [PagedDecode]
// declared inside a family applies its modifiers to decode and chunked prefill over the paged cache (docs/KV_CACHE.md).

/// <summary>
/// The forms every library family is built in, each Like one of the plain declarations (Int8AttentionVariants.cs): the
/// Hopper wgmma form (u8 P·V, f16; fed by the Q quantize pass, or quantizing Q per row itself, on 128-row blocks or on
/// 64-row blocks two to an SM, whose short per-block work suits masks that leave few key blocks, or on a persistent grid
/// whose blocks walk the tiles) and the mma.sync form in both P·V modes, f16 and bf16. Not kernels of their own.
/// </summary>
[AttentionForms]
public static partial class D128Forms
{
    [FlashAttentionForward(Like = typeof(Int8AttentionD128Wgmma))] public static partial class D128Wgmma;
    [FlashAttentionForward(Like = typeof(Int8AttentionD128Wgmma), QInput = Element.F16)] public static partial class D128WgmmaFusedQ;
    [FlashAttentionForward(Like = typeof(Int8AttentionD128WgmmaBlockM64))] public static partial class D128WgmmaBlockM64;
    [FlashAttentionForward(Like = typeof(Int8AttentionD128WgmmaPersistent))] public static partial class D128WgmmaPersistent;
    [FlashAttentionForward(Like = typeof(Int8AttentionD128TransPrmt))] public static partial class D128;
    [FlashAttentionForward(Like = typeof(Int8AttentionD128F16PV))] public static partial class D128F16PV;
    [FlashAttentionForward(Like = typeof(Int8AttentionD128TransPrmtBf16))] public static partial class D128Bf16;
    [FlashAttentionForward(Like = typeof(Int8AttentionD128Bf16PV))] public static partial class D128Bf16PV;
}

/// <summary>Causal sliding window: query q sees the <c>window</c> keys k ≤ q nearest it (q − k &lt; window).</summary>
[AttentionFamily(typeof(D128Forms))]
public static partial class SlidingWindow
{
    [MaskModifier]
    public static bool Visible(int b, int h, int q, int k, int window) => k <= q && q - k < window;

    /// <summary>Decode over the paged cache with the window, D = 128 f16: pages older than the window are never read.</summary>
    [PagedDecode(HeadDim = 128, PageSize = 64, Input = Element.F16, Warps = 4, Stages = 2)]
    public static partial class PagedDecodeD128;
}

/// <summary>Causal ALiBi: each score gains <c>slopes[h]·(k − q)</c>, a per-head linear penalty on distance.</summary>
[AttentionFamily(typeof(D128Forms), Causal = true)]
public static partial class Alibi
{
    [ScoreModifier]
    public static float Bias(float score, int b, int h, int q, int k, ReadOnlySpan<float> slopes) => score + slopes[h] * (k - q);

    /// <summary>Decode over the paged cache with ALiBi, D = 128 f16 (q and k are positions in the cache).</summary>
    [PagedDecode(HeadDim = 128, PageSize = 64, Input = Element.F16, Warps = 4, Stages = 2)]
    public static partial class PagedDecodeD128;
}

/// <summary>Causal softcapping (Gemma 2, Grok): scores pass through <c>cap·tanh(s / cap)</c>, bounding them to ±cap.</summary>
[AttentionFamily(typeof(D128Forms), Causal = true)]
public static partial class Softcap
{
    [ScoreModifier]
    public static float Cap(float score, int b, int h, int q, int k, [Positive] float cap) => cap * MathF.Tanh(score / cap);

    /// <summary>Decode over the paged cache with softcapping, D = 128 f16.</summary>
    [PagedDecode(HeadDim = 128, PageSize = 64, Input = Element.F16, Warps = 4, Stages = 2)]
    public static partial class PagedDecodeD128;
}

/// <summary>
/// Document masking of packed sequences, causal within each document: q sees k ≤ q of its own document.
/// <c>documents</c> holds each token's document id and is indexed by both query and key positions, so it must cover
/// max(Sq, Sk) tokens. The ids must never decrease (documents[i] ≤ documents[i + 1], as
/// for packed sequences): the parameter is [Nondecreasing], so the block classifier bounds a block's ids by its first and
/// last tokens' and skips blocks of two different documents and runs blocks inside one document without per-score mask
/// code. Ids that decrease anywhere get blocks wrongly skipped or shown whole, and wrong results with no error.
/// </summary>
[AttentionFamily(typeof(D128Forms))]
public static partial class DocumentMask
{
    [MaskModifier]
    public static bool SameDocument(int b, int h, int q, int k, [Nondecreasing] ReadOnlySpan<int> documents) => documents[q] == documents[k] && k <= q;
}

/// <summary>Prefix-LM: the first <c>prefix</c> keys are seen by every query (bidirectional prefix), the rest causally.</summary>
[AttentionFamily(typeof(D128Forms))]
public static partial class PrefixLm
{
    [MaskModifier]
    public static bool Visible(int b, int h, int q, int k, int prefix) => k < prefix || k <= q;
}

/// <summary>
/// Causal attention through a mask modifier instead of the built-in flag (bottom-right aligned when Sq ≠ Sk needs the
/// offset as an argument): the benchmark holds its speed against the built-in causal kernels, which the block
/// classifier's closed-form ranges should match.
/// </summary>
public static partial class CausalMask
{
    [MaskModifier]
    public static bool Visible(int b, int h, int q, int k, int offset) => k <= q + offset;

    [FlashAttentionForward(Like = typeof(Int8AttentionD128Wgmma))] public static partial class D128Wgmma;
    [FlashAttentionForward(Like = typeof(Int8AttentionD128TransPrmt))] public static partial class D128;
}
