using KernelDsl.Attention.Quantization;

namespace KernelDsl.Attention.FlashAttention;

/// <summary>A generated quantize launcher without a channel mean; <paramref name="nonFinite"/> (may be null) counts x's NaN and Inf.</summary>
internal delegate void QuantizeLauncher<T>(CudaStream stream, DeviceBuffer<T> x, long strideB, long strideH, long strideS,
    int batch, int heads, int tokens, DeviceBuffer<sbyte> output, DeviceBuffer<float> scales, float scaleMultiplier, DeviceBuffer<uint>? nonFinite) where T : unmanaged;

/// <summary>A generated quantize launcher writing e4m3 codes (V for the fp8 P·V kernels).</summary>
internal delegate void E4M3QuantizeLauncher<T>(CudaStream stream, DeviceBuffer<T> x, long strideB, long strideH, long strideS,
    int batch, int heads, int tokens, DeviceBuffer<byte> output, DeviceBuffer<float> scales, float scaleMultiplier, DeviceBuffer<uint>? nonFinite) where T : unmanaged;

/// <summary>A generated quantize launcher that subtracts the channel mean first (K smoothing).</summary>
internal delegate void SmoothingLauncher<T>(CudaStream stream, DeviceBuffer<T> x, long strideB, long strideH, long strideS,
    int batch, int heads, int tokens, DeviceBuffer<sbyte> output, DeviceBuffer<float> scales, DeviceBuffer<float> channelMean, float scaleMultiplier,
    DeviceBuffer<uint>? nonFinite) where T : unmanaged;

/// <summary>A generated quantize module's count-only pass: adds x's NaN and Inf count to <paramref name="nonFinite"/>[0].</summary>
internal delegate void NonFiniteCounter<T>(CudaStream stream, DeviceBuffer<T> x, long strideB, long strideH, long strideS,
    int batch, int heads, int tokens, DeviceBuffer<uint> nonFinite) where T : unmanaged;

/// <summary>
/// The declared quantize variants that feed attention for one head dim and input type: Q per QScaleRows rows, K smoothed
/// per KScaleKeys rows, V per channel (and, for f16 input at head dims 64 and 128, V transposed in π order for Recipe C).
/// </summary>
internal sealed record Quantizers<T>(QuantizeLauncher<T> Q, SmoothingLauncher<T> K, QuantizeLauncher<T> V, QuantizeLauncher<T>? VPi) where T : unmanaged
{
    /// <summary>Q's scale count (batch, heads, tokens), as its generated launcher computes it.</summary>
    public required Func<int, int, int, long> QScaleCount { get; init; }
    /// <summary>K's scale count (batch, heads, tokens), as its generated launcher computes it.</summary>
    public required Func<int, int, int, long> KScaleCount { get; init; }
    /// <summary>The K quantizer's <c>MeanSlices</c> (its channel mean's summation order), which the int8 CPU reference follows.</summary>
    public required int KMeanSlices { get; init; }
    /// <summary>V's NaN/Inf count alone, for the 16-bit P·V mode, which reads V as it is.</summary>
    public required NonFiniteCounter<T> CountV { get; init; }
    /// <summary>V as e4m3 codes in VPi's layout, one scale per channel (absmax / 448), for the fp8 P·V kernels; null where none is declared.</summary>
    public E4M3QuantizeLauncher<T>? VPiE4M3 { get; init; }
    /// <summary>Tokens per channel row of the π-transposed V (int8 or e4m3), when there is a VPi or VPiE4M3 quantizer.</summary>
    public Func<int, int>? VPiPaddedTokens { get; init; }

    public static Quantizers<T> For(int headDim)
    {
        object? quantizers = (typeof(T) == typeof(Half), headDim) switch
        {
            (true, 128) => new Quantizers<Half>(QuantizeQBlock128D128.Launch, QuantizeKSmoothBlock64D128.Launch, QuantizeVChannelD128.Launch, QuantizeVChannelPiD128.Launch)
            {
                QScaleCount = QuantizeQBlock128D128.ScaleCount, KScaleCount = QuantizeKSmoothBlock64D128.ScaleCount, KMeanSlices = QuantizeKSmoothBlock64D128.MeanSlices, CountV = QuantizeVChannelD128.CountNonFinite,
                VPiPaddedTokens = QuantizeVChannelPiD128.PaddedTokens, VPiE4M3 = QuantizeVChannelPiD128E4m3.Launch,
            },
            (true, 64) => new Quantizers<Half>(QuantizeQBlock128D64.Launch, QuantizeKSmoothBlock64D64.Launch, QuantizeVChannelD64.Launch, QuantizeVChannelPiD64.Launch)
            {
                QScaleCount = QuantizeQBlock128D64.ScaleCount, KScaleCount = QuantizeKSmoothBlock64D64.ScaleCount, KMeanSlices = QuantizeKSmoothBlock64D64.MeanSlices, CountV = QuantizeVChannelD64.CountNonFinite,
                VPiPaddedTokens = QuantizeVChannelPiD64.PaddedTokens, VPiE4M3 = QuantizeVChannelPiD64E4m3.Launch,
            },
            (false, 128) => new Quantizers<ushort>(QuantizeQBlock128D128Bf16.Launch, QuantizeKSmoothBlock64D128Bf16.Launch, QuantizeVChannelD128Bf16.Launch, null)
            {
                QScaleCount = QuantizeQBlock128D128Bf16.ScaleCount, KScaleCount = QuantizeKSmoothBlock64D128Bf16.ScaleCount, KMeanSlices = QuantizeKSmoothBlock64D128Bf16.MeanSlices, CountV = QuantizeVChannelD128Bf16.CountNonFinite,
                VPiPaddedTokens = QuantizeVChannelPiD128E4m3Bf16.PaddedTokens, VPiE4M3 = QuantizeVChannelPiD128E4m3Bf16.Launch,
            },
            (false, 64) => new Quantizers<ushort>(QuantizeQBlock128D64Bf16.Launch, QuantizeKSmoothBlock64D64Bf16.Launch, QuantizeVChannelD64Bf16.Launch, null)
            {
                QScaleCount = QuantizeQBlock128D64Bf16.ScaleCount, KScaleCount = QuantizeKSmoothBlock64D64Bf16.ScaleCount, KMeanSlices = QuantizeKSmoothBlock64D64Bf16.MeanSlices, CountV = QuantizeVChannelD64Bf16.CountNonFinite,
                VPiPaddedTokens = QuantizeVChannelPiD64E4m3Bf16.PaddedTokens, VPiE4M3 = QuantizeVChannelPiD64E4m3Bf16.Launch,
            },
            (true, 96) => new Quantizers<Half>(QuantizeQBlock128D96.Launch, QuantizeKSmoothBlock64D96.Launch, QuantizeVChannelD96.Launch, null)
            {
                QScaleCount = QuantizeQBlock128D96.ScaleCount, KScaleCount = QuantizeKSmoothBlock64D96.ScaleCount, KMeanSlices = QuantizeKSmoothBlock64D96.MeanSlices, CountV = QuantizeVChannelD96.CountNonFinite,
            },
            (false, 96) => new Quantizers<ushort>(QuantizeQBlock128D96Bf16.Launch, QuantizeKSmoothBlock64D96Bf16.Launch, QuantizeVChannelD96Bf16.Launch, null)
            {
                QScaleCount = QuantizeQBlock128D96Bf16.ScaleCount, KScaleCount = QuantizeKSmoothBlock64D96Bf16.ScaleCount, KMeanSlices = QuantizeKSmoothBlock64D96Bf16.MeanSlices, CountV = QuantizeVChannelD96Bf16.CountNonFinite,
            },
            (true, 256) => new Quantizers<Half>(QuantizeQBlock128D256.Launch, QuantizeKSmoothBlock64D256.Launch, QuantizeVChannelD256.Launch, null)
            {
                QScaleCount = QuantizeQBlock128D256.ScaleCount, KScaleCount = QuantizeKSmoothBlock64D256.ScaleCount, KMeanSlices = QuantizeKSmoothBlock64D256.MeanSlices, CountV = QuantizeVChannelD256.CountNonFinite,
            },
            (false, 256) => new Quantizers<ushort>(QuantizeQBlock128D256Bf16.Launch, QuantizeKSmoothBlock64D256Bf16.Launch, QuantizeVChannelD256Bf16.Launch, null)
            {
                QScaleCount = QuantizeQBlock128D256Bf16.ScaleCount, KScaleCount = QuantizeKSmoothBlock64D256Bf16.ScaleCount, KMeanSlices = QuantizeKSmoothBlock64D256Bf16.MeanSlices, CountV = QuantizeVChannelD256Bf16.CountNonFinite,
            },
            _ => null,
        };
        return quantizers as Quantizers<T> ?? throw new ArgumentException($"No quantize kernels are declared for head dim {headDim} and {typeof(T).Name} input.", nameof(headDim));
    }
}
