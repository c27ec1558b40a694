namespace KernelDsl.Attention.Quantization;

// Step 1 of INT8 attention (DESIGN.md): Q per block of BlockM rows with softmax scale · log2 e folded in through the
// launch's scaleMultiplier, K smoothed (channel mean subtracted) then per block of BlockN rows, V per channel, plain or
// transposed in π order for Recipe C (docs/V_TRANSPOSE.md). Each variant is generated like any user's declaration.

/// <summary>Q, f16, D = 128: one scale per 128 tokens.</summary>
[Quantize(Input = Element.F16, Granularity = QuantGranularity.PerRowBlock, BlockRows = 128, HeadDim = 128)]
public static partial class QuantizeQBlock128D128;

/// <summary>K, f16, D = 128: channel mean subtracted, one scale per 64 tokens.</summary>
[Quantize(Input = Element.F16, Granularity = QuantGranularity.PerRowBlock, BlockRows = 64, HeadDim = 128, SubtractChannelMean = true)]
public static partial class QuantizeKSmoothBlock64D128;

/// <summary>V, f16, D = 128: one scale per channel, [B][H][S][D] output.</summary>
[Quantize(Input = Element.F16, Granularity = QuantGranularity.PerChannel, BlockRows = 128, HeadDim = 128)]
public static partial class QuantizeVChannelD128;

/// <summary>V, f16, D = 128: one scale per channel, written [B][H][D][S_pad] in π order for plain-ldmatrix P·V (Recipe C).</summary>
[Quantize(Input = Element.F16, Granularity = QuantGranularity.PerChannel, BlockRows = 128, HeadDim = 128,
    Transposed = true, TransposedOrder = TokenOrder.Pi, TransposePad = 64)]
public static partial class QuantizeVChannelPiD128;

/// <summary>V, f16, D = 64, transposed in π order (Recipe C): the wgmma D = 64 kernel's V.</summary>
[Quantize(Input = Element.F16, Granularity = QuantGranularity.PerChannel, BlockRows = 128, HeadDim = 64,
    Transposed = true, TransposedOrder = TokenOrder.Pi, TransposePad = 64)]
public static partial class QuantizeVChannelPiD64;

// V for fp8 (e4m3) P·V (docs/PERF_NOTES.md §7, SageAttention2's scheme): one scale per channel, absmax / 448, codes
// e4m3 rounded to nearest even with saturation, written transposed in π order (Recipe C) for the Hopper kernel.
// cvt.rn.satfinite.e4m3x2.f32 exists from sm_89, but PTX ISA 7.8 (CUDA 11.8, whose NVRTC refuses it for sm_89) has it
// for sm_90 only and 8.1 (CUDA 12.1) adds sm_89: declaring sm_90 alone keeps every NVRTC that can build them passing.

/// <summary>V, f16, D = 128: e4m3 per channel, transposed in π order (Recipe C).</summary>
[Quantize(Input = Element.F16, Granularity = QuantGranularity.PerChannel, BlockRows = 128, HeadDim = 128,
    Transposed = true, TransposedOrder = TokenOrder.Pi, TransposePad = 64, Output = Element.E4M3, Targets = [Sm.Sm90])]
public static partial class QuantizeVChannelPiD128E4m3;

/// <summary>V, f16, D = 64: e4m3 per channel, transposed in π order (Recipe C).</summary>
[Quantize(Input = Element.F16, Granularity = QuantGranularity.PerChannel, BlockRows = 128, HeadDim = 64,
    Transposed = true, TransposedOrder = TokenOrder.Pi, TransposePad = 64, Output = Element.E4M3, Targets = [Sm.Sm90])]
public static partial class QuantizeVChannelPiD64E4m3;

/// <summary>V, bf16, D = 128: e4m3 per channel, transposed in π order (Recipe C).</summary>
[Quantize(Input = Element.BF16, Granularity = QuantGranularity.PerChannel, BlockRows = 128, HeadDim = 128,
    Transposed = true, TransposedOrder = TokenOrder.Pi, TransposePad = 64, Output = Element.E4M3, Targets = [Sm.Sm90])]
public static partial class QuantizeVChannelPiD128E4m3Bf16;

/// <summary>V, bf16, D = 64: e4m3 per channel, transposed in π order (Recipe C).</summary>
[Quantize(Input = Element.BF16, Granularity = QuantGranularity.PerChannel, BlockRows = 128, HeadDim = 64,
    Transposed = true, TransposedOrder = TokenOrder.Pi, TransposePad = 64, Output = Element.E4M3, Targets = [Sm.Sm90])]
public static partial class QuantizeVChannelPiD64E4m3Bf16;

/// <summary>V, f16, D = 128: e4m3 per channel, [B][H][S][D] (the natural layout, for an sm_89 mma.sync e4m3 kernel).</summary>
[Quantize(Input = Element.F16, Granularity = QuantGranularity.PerChannel, BlockRows = 128, HeadDim = 128, Output = Element.E4M3, Targets = [Sm.Sm90])]
public static partial class QuantizeVChannelD128E4m3;

/// <summary>Q, bf16, D = 128: one scale per 128 tokens.</summary>
[Quantize(Input = Element.BF16, Granularity = QuantGranularity.PerRowBlock, BlockRows = 128, HeadDim = 128)]
public static partial class QuantizeQBlock128D128Bf16;

/// <summary>K, bf16, D = 128: channel mean subtracted, one scale per 64 tokens.</summary>
[Quantize(Input = Element.BF16, Granularity = QuantGranularity.PerRowBlock, BlockRows = 64, HeadDim = 128, SubtractChannelMean = true)]
public static partial class QuantizeKSmoothBlock64D128Bf16;

/// <summary>Q, f16, D = 64: one scale per 128 tokens.</summary>
[Quantize(Input = Element.F16, Granularity = QuantGranularity.PerRowBlock, BlockRows = 128, HeadDim = 64)]
public static partial class QuantizeQBlock128D64;

/// <summary>K, f16, D = 64: channel mean subtracted, one scale per 64 tokens.</summary>
[Quantize(Input = Element.F16, Granularity = QuantGranularity.PerRowBlock, BlockRows = 64, HeadDim = 64, SubtractChannelMean = true)]
public static partial class QuantizeKSmoothBlock64D64;

/// <summary>V, f16, D = 64: one scale per channel, [B][H][S][D] output.</summary>
[Quantize(Input = Element.F16, Granularity = QuantGranularity.PerChannel, BlockRows = 128, HeadDim = 64)]
public static partial class QuantizeVChannelD64;

/// <summary>Q, bf16, D = 64: one scale per 128 tokens.</summary>
[Quantize(Input = Element.BF16, Granularity = QuantGranularity.PerRowBlock, BlockRows = 128, HeadDim = 64)]
public static partial class QuantizeQBlock128D64Bf16;

/// <summary>K, bf16, D = 64: channel mean subtracted, one scale per 64 tokens.</summary>
[Quantize(Input = Element.BF16, Granularity = QuantGranularity.PerRowBlock, BlockRows = 64, HeadDim = 64, SubtractChannelMean = true)]
public static partial class QuantizeKSmoothBlock64D64Bf16;

/// <summary>V, bf16, D = 128: one scale per channel.</summary>
[Quantize(Input = Element.BF16, Granularity = QuantGranularity.PerChannel, BlockRows = 128, HeadDim = 128)]
public static partial class QuantizeVChannelD128Bf16;

/// <summary>V, bf16, D = 64: one scale per channel.</summary>
[Quantize(Input = Element.BF16, Granularity = QuantGranularity.PerChannel, BlockRows = 128, HeadDim = 64)]
public static partial class QuantizeVChannelD64Bf16;

// Head dims 96 and 256 (Int8AttentionHeadDims.cs): Q per 128 rows, K smoothed per 64 rows, V per channel, f16 and bf16.
// Their attention kernels read V with Recipe A or as it is (16-bit P·V), so no π-transposed V is declared.

/// <summary>Q, f16, D = 96: one scale per 128 tokens.</summary>
[Quantize(Input = Element.F16, Granularity = QuantGranularity.PerRowBlock, BlockRows = 128, HeadDim = 96)]
public static partial class QuantizeQBlock128D96;

/// <summary>K, f16, D = 96: channel mean subtracted, one scale per 64 tokens.</summary>
[Quantize(Input = Element.F16, Granularity = QuantGranularity.PerRowBlock, BlockRows = 64, HeadDim = 96, SubtractChannelMean = true)]
public static partial class QuantizeKSmoothBlock64D96;

/// <summary>V, f16, D = 96: one scale per channel.</summary>
[Quantize(Input = Element.F16, Granularity = QuantGranularity.PerChannel, BlockRows = 128, HeadDim = 96)]
public static partial class QuantizeVChannelD96;

/// <summary>Q, bf16, D = 96: one scale per 128 tokens.</summary>
[Quantize(Input = Element.BF16, Granularity = QuantGranularity.PerRowBlock, BlockRows = 128, HeadDim = 96)]
public static partial class QuantizeQBlock128D96Bf16;

/// <summary>K, bf16, D = 96: channel mean subtracted, one scale per 64 tokens.</summary>
[Quantize(Input = Element.BF16, Granularity = QuantGranularity.PerRowBlock, BlockRows = 64, HeadDim = 96, SubtractChannelMean = true)]
public static partial class QuantizeKSmoothBlock64D96Bf16;

/// <summary>V, bf16, D = 96: one scale per channel.</summary>
[Quantize(Input = Element.BF16, Granularity = QuantGranularity.PerChannel, BlockRows = 128, HeadDim = 96)]
public static partial class QuantizeVChannelD96Bf16;

/// <summary>Q, f16, D = 256: one scale per 128 tokens.</summary>
[Quantize(Input = Element.F16, Granularity = QuantGranularity.PerRowBlock, BlockRows = 128, HeadDim = 256)]
public static partial class QuantizeQBlock128D256;

/// <summary>K, f16, D = 256: channel mean subtracted, one scale per 64 tokens.</summary>
[Quantize(Input = Element.F16, Granularity = QuantGranularity.PerRowBlock, BlockRows = 64, HeadDim = 256, SubtractChannelMean = true)]
public static partial class QuantizeKSmoothBlock64D256;

/// <summary>V, f16, D = 256: one scale per channel.</summary>
[Quantize(Input = Element.F16, Granularity = QuantGranularity.PerChannel, BlockRows = 128, HeadDim = 256)]
public static partial class QuantizeVChannelD256;

/// <summary>Q, bf16, D = 256: one scale per 128 tokens.</summary>
[Quantize(Input = Element.BF16, Granularity = QuantGranularity.PerRowBlock, BlockRows = 128, HeadDim = 256)]
public static partial class QuantizeQBlock128D256Bf16;

/// <summary>K, bf16, D = 256: channel mean subtracted, one scale per 64 tokens.</summary>
[Quantize(Input = Element.BF16, Granularity = QuantGranularity.PerRowBlock, BlockRows = 64, HeadDim = 256, SubtractChannelMean = true)]
public static partial class QuantizeKSmoothBlock64D256Bf16;

/// <summary>V, bf16, D = 256: one scale per channel.</summary>
[Quantize(Input = Element.BF16, Granularity = QuantGranularity.PerChannel, BlockRows = 128, HeadDim = 256)]
public static partial class QuantizeVChannelD256Bf16;
