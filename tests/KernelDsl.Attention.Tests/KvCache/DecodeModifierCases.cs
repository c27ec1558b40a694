using KernelDsl.Attention.FlashAttention;
using KernelDsl.Attention.Reference;

namespace AttentionTests.KvCache;

/// <summary>
/// The library's modifiers as the decode tests bind them on the CPU, by name, calling the C# methods the decode variants
/// are generated from (the GPU tests link this file and bind the same arguments to the variants' With).
/// </summary>
internal static class DecodeModifierCases
{
    /// <summary>A case's modifiers with their arguments: "window N", "alibi" or "softcap".</summary>
    internal static AttentionModifiers Modifiers(string name, int headsQ) => name switch
    {
        _ when name.StartsWith("window ", StringComparison.Ordinal) => Window(WindowOf(name)),
        "alibi" => Alibi(Slopes(headsQ)),
        "softcap" => new AttentionModifiers(Score: (s, b, h, q, k) => Softcap.Cap(s, b, h, q, k, Cap)),
        _ => throw new ArgumentException($"no modifier '{name}'", nameof(name)),
    };

    internal static AttentionModifiers Alibi(float[] slopes) => new(Score: (s, b, h, q, k) => KernelDsl.Attention.FlashAttention.Alibi.Bias(s, b, h, q, k, slopes));

    internal static AttentionModifiers Window(int window) => new(Mask: (b, h, q, k) => SlidingWindow.Visible(b, h, q, k, window));

    /// <summary>ALiBi's slopes for a power-of-two head count: 2^(−8(h+1)/H).</summary>
    internal static float[] Slopes(int heads) => Enumerable.Range(0, heads).Select(h => MathF.Pow(2f, -8f * (h + 1) / heads)).ToArray();

    /// <summary>Small enough that tanh bends most scores (K's offsets make them several units).</summary>
    internal const float Cap = 2.5f;

    /// <summary>N of "window N".</summary>
    internal static int WindowOf(string name) => int.Parse(name["window ".Length..], System.Globalization.CultureInfo.InvariantCulture);
}
