using KernelDsl.Attention.Quantization;

namespace KernelDsl.Attention.FlashAttention;

/// <summary>A generated quantize launcher without a channel mean.</summary>
internal delegate void QuantizeLauncher<T>(CudaStream stream, DeviceBuffer<T> x, long strideB, long strideH, long strideS,
    int batch, int heads, int tokens, DeviceBuffer<sbyte> output, DeviceBuffer<float> scales, float scaleMultiplier) where T : unmanaged;

/// <summary>A generated quantize launcher that subtracts the channel mean first (K smoothing).</summary>
internal delegate void SmoothingLauncher<T>(CudaStream stream, DeviceBuffer<T> x, long strideB, long strideH, long strideS,
    int batch, int heads, int tokens, DeviceBuffer<sbyte> output, DeviceBuffer<float> scales, DeviceBuffer<float> channelMean, float scaleMultiplier) where T : unmanaged;

/// <summary>
/// The declared quantize variants that feed attention for one head dim and input type: Q per BlockM rows, K smoothed per
/// BlockN rows, V per channel (and, for f16 D = 128, V transposed in π order for Recipe C).
/// </summary>
internal sealed record Quantizers<T>(QuantizeLauncher<T> Q, SmoothingLauncher<T> K, QuantizeLauncher<T> V, QuantizeLauncher<T>? VPi) where T : unmanaged
{
    public static Quantizers<T> For(int headDim)
    {
        object? quantizers = (typeof(T) == typeof(Half), headDim) switch
        {
            (true, 128) => new Quantizers<Half>(QuantizeQBlock128D128.Launch, QuantizeKSmoothBlock64D128.Launch, QuantizeVChannelD128.Launch, QuantizeVChannelPiD128.Launch),
            (true, 64) => new Quantizers<Half>(QuantizeQBlock128D64.Launch, QuantizeKSmoothBlock64D64.Launch, QuantizeVChannelD64.Launch, null),
            (false, 128) => new Quantizers<ushort>(QuantizeQBlock128D128Bf16.Launch, QuantizeKSmoothBlock64D128Bf16.Launch, QuantizeVChannelD128Bf16.Launch, null),
            (false, 64) => new Quantizers<ushort>(QuantizeQBlock128D64Bf16.Launch, QuantizeKSmoothBlock64D64Bf16.Launch, QuantizeVChannelD64Bf16.Launch, null),
            _ => null,
        };
        return quantizers as Quantizers<T> ?? throw new ArgumentException($"No quantize kernels are declared for head dim {headDim} and {typeof(T).Name} input.", nameof(headDim));
    }
}
