using KernelDsl.Attention.Quantization;

namespace KernelDsl.Attention.FlashAttention;

/// <summary>A generated quantize launcher without a channel mean; <paramref name="nonFinite"/> (may be null) counts x's NaN and Inf.</summary>
internal delegate void QuantizeLauncher<T>(CudaStream stream, DeviceBuffer<T> x, long strideB, long strideH, long strideS,
    int batch, int heads, int tokens, DeviceBuffer<sbyte> output, DeviceBuffer<float> scales, float scaleMultiplier, DeviceBuffer<uint>? nonFinite) where T : unmanaged;

/// <summary>A generated quantize launcher writing e4m3 codes (V for the fp8 P·V kernels).</summary>
internal delegate void E4M3QuantizeLauncher<T>(CudaStream stream, DeviceBuffer<T> x, long strideB, long strideH, long strideS,
    int batch, int heads, int tokens, DeviceBuffer<byte> output, DeviceBuffer<float> scales, float scaleMultiplier, DeviceBuffer<uint>? nonFinite) where T : unmanaged;

/// <summary>A generated quantize launcher of K smoothing: subtracts the channel mean (LaunchCodes: given, computed beforehand).</summary>
internal delegate void SmoothingLauncher<T>(CudaStream stream, DeviceBuffer<T> x, long strideB, long strideH, long strideS,
    int batch, int heads, int tokens, DeviceBuffer<sbyte> output, DeviceBuffer<float> scales, DeviceBuffer<float> channelMean, float scaleMultiplier,
    DeviceBuffer<uint>? nonFinite) where T : unmanaged;

/// <summary>A generated KvStatistics launcher: K's channel mean and V's channel scale from one read of K and V.</summary>
internal delegate void KvStatisticsLauncher<T>(CudaStream stream, DeviceBuffer<T> k, long kStrideB, long kStrideH, long kStrideS,
    DeviceBuffer<T>? v, long vStrideB, long vStrideH, long vStrideS, int batch, int heads, int tokens, DeviceBuffer<float> kMean, DeviceBuffer<float> vScale,
    DeviceBuffer<float> workspace, DeviceBuffer<uint>? kNonFinite, DeviceBuffer<uint>? vNonFinite) where T : unmanaged;

/// <summary>A generated KvCodes launcher: K's and V's codes in one launch, from the statistics pass's mean and scales.</summary>
internal delegate void KvCodesLauncher<T, TCode>(CudaStream stream, DeviceBuffer<T> k, long kStrideB, long kStrideH, long kStrideS,
    DeviceBuffer<T> v, long vStrideB, long vStrideH, long vStrideS, int batch, int heads, int tokens, DeviceBuffer<float> kMean, DeviceBuffer<float> vScale,
    DeviceBuffer<sbyte> kCodes, DeviceBuffer<float> kScale, DeviceBuffer<TCode> vCodes) where T : unmanaged where TCode : unmanaged;

/// <summary>One declared KvStatistics variant: its launcher, its workspace size and the summation order of K's mean (MeanLanes, SliceTokens, MeanSliceGroup).</summary>
internal sealed record KvStatistics<T>(KvStatisticsLauncher<T> Launch, Func<int, int, int, long> WorkspaceLength, int MeanLanes, int SliceTokens, int SliceGroup) where T : unmanaged;

/// <summary>
/// The declared kernels that quantize attention's inputs for one head dim and input type: Q per QScaleRows rows (a whole
/// Quantize launch), and K and V in two passes over both — <see cref="Statistics"/> (K's channel mean and V's channel
/// scales, one read of K and V) then the codes from those statistics: both tensors' in one launch (<see cref="Codes"/>,
/// <see cref="CodesPi"/>, <see cref="CodesPiE4M3"/>, KvCodes) where declared, else each tensor's (<see cref="K"/>,
/// <see cref="V"/>, <see cref="VPi"/>, <see cref="VPiE4M3"/>: the Quantize variants' <c>LaunchCodes</c>). K is smoothed per
/// KScaleKeys rows, V per channel (and, for f16 input at head dims 64 and 128, transposed in π order for Recipe C).
/// </summary>
internal sealed record Quantizers<T>(QuantizeLauncher<T> Q, SmoothingLauncher<T> K, QuantizeLauncher<T> V, QuantizeLauncher<T>? VPi) where T : unmanaged
{
    /// <summary>Q's scale count (batch, heads, tokens), as its generated launcher computes it.</summary>
    public required Func<int, int, int, long> QScaleCount { get; init; }
    /// <summary>K's scale count (batch, heads, tokens), as its generated launcher computes it.</summary>
    public required Func<int, int, int, long> KScaleCount { get; init; }
    /// <summary>K's mean and the int8 V scales (absmax / 127); in the 16-bit P·V mode it also counts V's NaN/Inf, V being used as it is.</summary>
    public required KvStatistics<T> Statistics { get; init; }
    /// <summary>K's mean and the e4m3 V scales (absmax / 448), for the fp8 P·V kernels; null where no e4m3 V is declared.</summary>
    public KvStatistics<T>? StatisticsE4M3 { get; init; }
    /// <summary>K's and V's codes in one launch (KvCodes), V [B][H][S][D] int8; null where not declared (K and V then go through K and V).</summary>
    public KvCodesLauncher<T, sbyte>? Codes { get; init; }
    /// <summary>The same with V int8 in VPi's layout.</summary>
    public KvCodesLauncher<T, sbyte>? CodesPi { get; init; }
    /// <summary>The same with V e4m3 in VPi's layout (fp8 P·V).</summary>
    public KvCodesLauncher<T, byte>? CodesPiE4M3 { get; init; }
    /// <summary>Lanes of K's channel mean (its summation order), which the int8 CPU reference follows (Int8AttentionOptions.KMeanSlices).</summary>
    public int KMeanSlices => Statistics.MeanLanes;
    /// <summary>Tokens per slice of K's channel mean (Int8AttentionOptions.KMeanSliceTokens).</summary>
    public int KMeanSliceTokens => Statistics.SliceTokens;
    /// <summary>Slices per group of K's channel mean (Int8AttentionOptions.KMeanSliceGroup).</summary>
    public int KMeanSliceGroup => Statistics.SliceGroup;
    /// <summary>V as e4m3 codes in VPi's layout, one scale per channel (absmax / 448), for the fp8 P·V kernels; null where none is declared.</summary>
    public E4M3QuantizeLauncher<T>? VPiE4M3 { get; init; }
    /// <summary>Tokens per channel row of the π-transposed V (int8 or e4m3), when there is a VPi or VPiE4M3 quantizer.</summary>
    public Func<int, int>? VPiPaddedTokens { get; init; }

    public static Quantizers<T> For(int headDim)
    {
        object? quantizers = (typeof(T) == typeof(Half), headDim) switch
        {
            (true, 128) => new Quantizers<Half>(QuantizeQBlock128D128.Launch, QuantizeKSmoothBlock64D128.LaunchCodes, QuantizeVChannelD128.LaunchCodes, QuantizeVChannelPiD128.LaunchCodes)
            {
                QScaleCount = QuantizeQBlock128D128.ScaleCount, KScaleCount = QuantizeKSmoothBlock64D128.ScaleCount,
                Statistics = new(KvStatisticsD128.Launch, KvStatisticsD128.WorkspaceLength, KvStatisticsD128.MeanLanes, KvStatisticsD128.SliceTokens, KvStatisticsD128.MeanSliceGroup),
                StatisticsE4M3 = new(KvStatisticsD128E4m3.Launch, KvStatisticsD128E4m3.WorkspaceLength, KvStatisticsD128E4m3.MeanLanes, KvStatisticsD128E4m3.SliceTokens, KvStatisticsD128E4m3.MeanSliceGroup),
                VPiPaddedTokens = QuantizeVChannelPiD128.PaddedTokens, VPiE4M3 = QuantizeVChannelPiD128E4m3.LaunchCodes,
                Codes = KvCodesD128.Launch, CodesPi = KvCodesPiD128.Launch, CodesPiE4M3 = KvCodesPiD128E4m3.Launch,
            },
            (true, 64) => new Quantizers<Half>(QuantizeQBlock128D64.Launch, QuantizeKSmoothBlock64D64.LaunchCodes, QuantizeVChannelD64.LaunchCodes, QuantizeVChannelPiD64.LaunchCodes)
            {
                QScaleCount = QuantizeQBlock128D64.ScaleCount, KScaleCount = QuantizeKSmoothBlock64D64.ScaleCount,
                Statistics = new(KvStatisticsD64.Launch, KvStatisticsD64.WorkspaceLength, KvStatisticsD64.MeanLanes, KvStatisticsD64.SliceTokens, KvStatisticsD64.MeanSliceGroup),
                StatisticsE4M3 = new(KvStatisticsD64E4m3.Launch, KvStatisticsD64E4m3.WorkspaceLength, KvStatisticsD64E4m3.MeanLanes, KvStatisticsD64E4m3.SliceTokens, KvStatisticsD64E4m3.MeanSliceGroup),
                VPiPaddedTokens = QuantizeVChannelPiD64.PaddedTokens, VPiE4M3 = QuantizeVChannelPiD64E4m3.LaunchCodes,
                Codes = KvCodesD64.Launch, CodesPi = KvCodesPiD64.Launch, CodesPiE4M3 = KvCodesPiD64E4m3.Launch,
            },
            (false, 128) => new Quantizers<ushort>(QuantizeQBlock128D128Bf16.Launch, QuantizeKSmoothBlock64D128Bf16.LaunchCodes, QuantizeVChannelD128Bf16.LaunchCodes, null)
            {
                QScaleCount = QuantizeQBlock128D128Bf16.ScaleCount, KScaleCount = QuantizeKSmoothBlock64D128Bf16.ScaleCount,
                Statistics = new(KvStatisticsD128Bf16.Launch, KvStatisticsD128Bf16.WorkspaceLength, KvStatisticsD128Bf16.MeanLanes, KvStatisticsD128Bf16.SliceTokens, KvStatisticsD128Bf16.MeanSliceGroup),
                StatisticsE4M3 = new(KvStatisticsD128E4m3Bf16.Launch, KvStatisticsD128E4m3Bf16.WorkspaceLength, KvStatisticsD128E4m3Bf16.MeanLanes, KvStatisticsD128E4m3Bf16.SliceTokens, KvStatisticsD128E4m3Bf16.MeanSliceGroup),
                VPiPaddedTokens = QuantizeVChannelPiD128E4m3Bf16.PaddedTokens, VPiE4M3 = QuantizeVChannelPiD128E4m3Bf16.LaunchCodes,
                Codes = KvCodesD128Bf16.Launch, CodesPiE4M3 = KvCodesPiD128E4m3Bf16.Launch,
            },
            (false, 64) => new Quantizers<ushort>(QuantizeQBlock128D64Bf16.Launch, QuantizeKSmoothBlock64D64Bf16.LaunchCodes, QuantizeVChannelD64Bf16.LaunchCodes, null)
            {
                QScaleCount = QuantizeQBlock128D64Bf16.ScaleCount, KScaleCount = QuantizeKSmoothBlock64D64Bf16.ScaleCount,
                Statistics = new(KvStatisticsD64Bf16.Launch, KvStatisticsD64Bf16.WorkspaceLength, KvStatisticsD64Bf16.MeanLanes, KvStatisticsD64Bf16.SliceTokens, KvStatisticsD64Bf16.MeanSliceGroup),
                StatisticsE4M3 = new(KvStatisticsD64E4m3Bf16.Launch, KvStatisticsD64E4m3Bf16.WorkspaceLength, KvStatisticsD64E4m3Bf16.MeanLanes, KvStatisticsD64E4m3Bf16.SliceTokens, KvStatisticsD64E4m3Bf16.MeanSliceGroup),
                VPiPaddedTokens = QuantizeVChannelPiD64E4m3Bf16.PaddedTokens, VPiE4M3 = QuantizeVChannelPiD64E4m3Bf16.LaunchCodes,
                Codes = KvCodesD64Bf16.Launch, CodesPiE4M3 = KvCodesPiD64E4m3Bf16.Launch,
            },
            (true, 96) => new Quantizers<Half>(QuantizeQBlock128D96.Launch, QuantizeKSmoothBlock64D96.LaunchCodes, QuantizeVChannelD96.LaunchCodes, null)
            {
                QScaleCount = QuantizeQBlock128D96.ScaleCount, KScaleCount = QuantizeKSmoothBlock64D96.ScaleCount,
                Statistics = new(KvStatisticsD96.Launch, KvStatisticsD96.WorkspaceLength, KvStatisticsD96.MeanLanes, KvStatisticsD96.SliceTokens, KvStatisticsD96.MeanSliceGroup),
            },
            (false, 96) => new Quantizers<ushort>(QuantizeQBlock128D96Bf16.Launch, QuantizeKSmoothBlock64D96Bf16.LaunchCodes, QuantizeVChannelD96Bf16.LaunchCodes, null)
            {
                QScaleCount = QuantizeQBlock128D96Bf16.ScaleCount, KScaleCount = QuantizeKSmoothBlock64D96Bf16.ScaleCount,
                Statistics = new(KvStatisticsD96Bf16.Launch, KvStatisticsD96Bf16.WorkspaceLength, KvStatisticsD96Bf16.MeanLanes, KvStatisticsD96Bf16.SliceTokens, KvStatisticsD96Bf16.MeanSliceGroup),
            },
            (true, 256) => new Quantizers<Half>(QuantizeQBlock128D256.Launch, QuantizeKSmoothBlock64D256.LaunchCodes, QuantizeVChannelD256.LaunchCodes, null)
            {
                QScaleCount = QuantizeQBlock128D256.ScaleCount, KScaleCount = QuantizeKSmoothBlock64D256.ScaleCount,
                Statistics = new(KvStatisticsD256.Launch, KvStatisticsD256.WorkspaceLength, KvStatisticsD256.MeanLanes, KvStatisticsD256.SliceTokens, KvStatisticsD256.MeanSliceGroup),
            },
            (false, 256) => new Quantizers<ushort>(QuantizeQBlock128D256Bf16.Launch, QuantizeKSmoothBlock64D256Bf16.LaunchCodes, QuantizeVChannelD256Bf16.LaunchCodes, null)
            {
                QScaleCount = QuantizeQBlock128D256Bf16.ScaleCount, KScaleCount = QuantizeKSmoothBlock64D256Bf16.ScaleCount,
                Statistics = new(KvStatisticsD256Bf16.Launch, KvStatisticsD256Bf16.WorkspaceLength, KvStatisticsD256Bf16.MeanLanes, KvStatisticsD256Bf16.SliceTokens, KvStatisticsD256Bf16.MeanSliceGroup),
            },
            _ => null,
        };
        return quantizers as Quantizers<T> ?? throw new ArgumentException($"No quantize kernels are declared for head dim {headDim} and {typeof(T).Name} input.", nameof(headDim));
    }
}
