using System;

namespace KernelDsl.Attention.FlashAttention;

// The library's attention variants, written the way a user writes one: a [MaskModifier] or [ScoreModifier] method in
// C#, and the kernels that apply it, each declared Like one of the plain declarations (Int8AttentionVariants.cs) so
// that no attribute line repeats. The generator translates each method to CUDA and derives the mask's block classifier
// from it; the CPU references call the same methods. Every family has the Hopper wgmma form (u8 P·V, f16) and the
// mma.sync form in both P·V modes, f16 and bf16.

/// <summary>Causal sliding window: query q sees the <c>window</c> keys k ≤ q nearest it (q − k &lt; window).</summary>
public static partial class SlidingWindow
{
    [MaskModifier]
    public static bool Visible(int b, int h, int q, int k, int window) => k <= q && q - k < window;

    [FlashAttentionForward(Like = typeof(Int8AttentionD128Wgmma))] public static partial class D128Wgmma;
    [FlashAttentionForward(Like = typeof(Int8AttentionD128TransPrmt))] public static partial class D128;
    [FlashAttentionForward(Like = typeof(Int8AttentionD128F16PV))] public static partial class D128F16PV;
    [FlashAttentionForward(Like = typeof(Int8AttentionD128TransPrmtBf16))] public static partial class D128Bf16;
    [FlashAttentionForward(Like = typeof(Int8AttentionD128Bf16PV))] public static partial class D128Bf16PV;
}

/// <summary>Causal ALiBi: each score gains <c>slopes[h]·(k − q)</c>, a per-head linear penalty on distance.</summary>
public static partial class Alibi
{
    [ScoreModifier]
    public static float Bias(float score, int b, int h, int q, int k, ReadOnlySpan<float> slopes) => score + slopes[h] * (k - q);

    [FlashAttentionForward(Like = typeof(Int8AttentionD128Wgmma), Causal = true)] public static partial class D128Wgmma;
    [FlashAttentionForward(Like = typeof(Int8AttentionD128TransPrmt), Causal = true)] public static partial class D128;
    [FlashAttentionForward(Like = typeof(Int8AttentionD128F16PV), Causal = true)] public static partial class D128F16PV;
    [FlashAttentionForward(Like = typeof(Int8AttentionD128TransPrmtBf16), Causal = true)] public static partial class D128Bf16;
    [FlashAttentionForward(Like = typeof(Int8AttentionD128Bf16PV), Causal = true)] public static partial class D128Bf16PV;
}

/// <summary>Causal softcapping (Gemma 2, Grok): scores pass through <c>cap·tanh(s / cap)</c>, bounding them to ±cap.</summary>
public static partial class Softcap
{
    [ScoreModifier]
    public static float Cap(float score, int b, int h, int q, int k, float cap) => cap * MathF.Tanh(score / cap);

    [FlashAttentionForward(Like = typeof(Int8AttentionD128Wgmma), Causal = true)] public static partial class D128Wgmma;
    [FlashAttentionForward(Like = typeof(Int8AttentionD128TransPrmt), Causal = true)] public static partial class D128;
    [FlashAttentionForward(Like = typeof(Int8AttentionD128F16PV), Causal = true)] public static partial class D128F16PV;
    [FlashAttentionForward(Like = typeof(Int8AttentionD128TransPrmtBf16), Causal = true)] public static partial class D128Bf16;
    [FlashAttentionForward(Like = typeof(Int8AttentionD128Bf16PV), Causal = true)] public static partial class D128Bf16PV;
}

/// <summary>
/// Document masking of packed sequences, causal within each document: q sees k ≤ q of its own document.
/// <c>documents</c> holds each token's document id (nondecreasing for packed sequences) and is indexed by both query and
/// key positions, so it must cover max(Sq, Sk) tokens.
/// </summary>
public static partial class DocumentMask
{
    [MaskModifier]
    public static bool SameDocument(int b, int h, int q, int k, ReadOnlySpan<int> documents) => documents[q] == documents[k] && k <= q;

    [FlashAttentionForward(Like = typeof(Int8AttentionD128Wgmma))] public static partial class D128Wgmma;
    [FlashAttentionForward(Like = typeof(Int8AttentionD128TransPrmt))] public static partial class D128;
    [FlashAttentionForward(Like = typeof(Int8AttentionD128F16PV))] public static partial class D128F16PV;
    [FlashAttentionForward(Like = typeof(Int8AttentionD128TransPrmtBf16))] public static partial class D128Bf16;
    [FlashAttentionForward(Like = typeof(Int8AttentionD128Bf16PV))] public static partial class D128Bf16PV;
}

/// <summary>Prefix-LM: the first <c>prefix</c> keys are seen by every query (bidirectional prefix), the rest causally.</summary>
public static partial class PrefixLm
{
    [MaskModifier]
    public static bool Visible(int b, int h, int q, int k, int prefix) => k < prefix || k <= q;

    [FlashAttentionForward(Like = typeof(Int8AttentionD128Wgmma))] public static partial class D128Wgmma;
    [FlashAttentionForward(Like = typeof(Int8AttentionD128TransPrmt))] public static partial class D128;
    [FlashAttentionForward(Like = typeof(Int8AttentionD128F16PV))] public static partial class D128F16PV;
    [FlashAttentionForward(Like = typeof(Int8AttentionD128TransPrmtBf16))] public static partial class D128Bf16;
    [FlashAttentionForward(Like = typeof(Int8AttentionD128Bf16PV))] public static partial class D128Bf16PV;
}
