using System;
using KernelDsl;
using KernelDsl.Attention.FlashAttention;

namespace QuickStart;

/// <summary>
/// An attention variant of your own: a causal sliding window (query q sees the <c>window</c> keys k ≤ q nearest it) with
/// Gemma 2's softcap on the scores. The two methods are plain C#: the generator translates them to CUDA, derives from the
/// mask which key blocks each block of queries can skip, and declares one kernel per line at the bottom.
/// </summary>
public static partial class SlidingWindowSoftcap
{
    [MaskModifier]
    public static bool Window(int b, int h, int q, int k, int window) => k <= q && q - k < window;

    [ScoreModifier]
    public static float Softcap(float score, int b, int h, int q, int k, [Positive] float cap) => cap * MathF.Tanh(score / cap);

    [FlashAttentionForward(Like = typeof(Int8AttentionD128Wgmma))] public static partial class Wgmma;        // Hopper (sm_90a): TMA + wgmma
    [FlashAttentionForward(Like = typeof(Int8AttentionD128TransPrmt))] public static partial class MmaSync;  // sm_80 and later: mma.sync
}
