namespace KernelDsl.Attention.Quantization;

// The statistics pass of K and V (docs/PERF_NOTES.md §10): K's channel mean and V's channel scale from one read of both,
// spread over slices of 256 tokens. Int8Attention then writes the codes with the Quantize variants' LaunchCodes. V's scale
// depends on its codes' type, so fp8 P·V's V (e4m3, absmax / 448) has variants of its own.

/// <summary>K and V, f16, D = 128: K's channel mean and the scales of int8 V (absmax / 127).</summary>
[KvStatistics(Input = Element.F16, HeadDim = 128)]
public static partial class KvStatisticsD128;

/// <summary>K and V, f16, D = 128: K's channel mean and the scales of e4m3 V (absmax / 448).</summary>
[KvStatistics(Input = Element.F16, HeadDim = 128, VOutput = Element.E4M3)]
public static partial class KvStatisticsD128E4m3;

/// <summary>K and V, bf16, D = 128: K's channel mean and the scales of int8 V (absmax / 127).</summary>
[KvStatistics(Input = Element.BF16, HeadDim = 128)]
public static partial class KvStatisticsD128Bf16;

/// <summary>K and V, bf16, D = 128: K's channel mean and the scales of e4m3 V (absmax / 448).</summary>
[KvStatistics(Input = Element.BF16, HeadDim = 128, VOutput = Element.E4M3)]
public static partial class KvStatisticsD128E4m3Bf16;

/// <summary>K and V, f16, D = 64: K's channel mean and the scales of int8 V (absmax / 127).</summary>
[KvStatistics(Input = Element.F16, HeadDim = 64)]
public static partial class KvStatisticsD64;

/// <summary>K and V, f16, D = 64: K's channel mean and the scales of e4m3 V (absmax / 448).</summary>
[KvStatistics(Input = Element.F16, HeadDim = 64, VOutput = Element.E4M3)]
public static partial class KvStatisticsD64E4m3;

/// <summary>K and V, bf16, D = 64: K's channel mean and the scales of int8 V (absmax / 127).</summary>
[KvStatistics(Input = Element.BF16, HeadDim = 64)]
public static partial class KvStatisticsD64Bf16;

/// <summary>K and V, bf16, D = 64: K's channel mean and the scales of e4m3 V (absmax / 448).</summary>
[KvStatistics(Input = Element.BF16, HeadDim = 64, VOutput = Element.E4M3)]
public static partial class KvStatisticsD64E4m3Bf16;

/// <summary>K and V, f16, D = 96: K's channel mean and the scales of int8 V (absmax / 127).</summary>
[KvStatistics(Input = Element.F16, HeadDim = 96)]
public static partial class KvStatisticsD96;

/// <summary>K and V, bf16, D = 96: K's channel mean and the scales of int8 V (absmax / 127).</summary>
[KvStatistics(Input = Element.BF16, HeadDim = 96)]
public static partial class KvStatisticsD96Bf16;

/// <summary>K and V, f16, D = 256: K's channel mean and the scales of int8 V (absmax / 127).</summary>
[KvStatistics(Input = Element.F16, HeadDim = 256)]
public static partial class KvStatisticsD256;

/// <summary>K and V, bf16, D = 256: K's channel mean and the scales of int8 V (absmax / 127).</summary>
[KvStatistics(Input = Element.BF16, HeadDim = 256)]
public static partial class KvStatisticsD256Bf16;

// The codes pass after the statistics pass (docs/PERF_NOTES.md §10): K per 64 keys and V in each layout the attention
// kernels read, from one more read of both, in one launch. Declared beside the statistics variants they follow.

/// <summary>K and V codes, f16, D = 128: V int8 [B][H][S][D].</summary>
[KvCodes(Input = Element.F16, HeadDim = 128)]
public static partial class KvCodesD128;

/// <summary>K and V codes, f16, D = 128: V int8 transposed in π order (Recipe C).</summary>
[KvCodes(Input = Element.F16, HeadDim = 128, VTransposed = true)]
public static partial class KvCodesPiD128;

/// <summary>K and V codes, f16, D = 128: V e4m3 transposed in π order (fp8 P·V).</summary>
[KvCodes(Input = Element.F16, HeadDim = 128, VTransposed = true, VOutput = Element.E4M3, Targets = [Sm.Sm90])]
public static partial class KvCodesPiD128E4m3;

/// <summary>K and V codes, f16, D = 128: V e4m3 [B][H][S][D] (the natural layout, beside QuantizeVChannelD128E4m3).</summary>
[KvCodes(Input = Element.F16, HeadDim = 128, VOutput = Element.E4M3, Targets = [Sm.Sm90])]
public static partial class KvCodesD128E4m3;

/// <summary>K and V codes, f16, D = 64: V int8 [B][H][S][D].</summary>
[KvCodes(Input = Element.F16, HeadDim = 64)]
public static partial class KvCodesD64;

/// <summary>K and V codes, f16, D = 64: V int8 transposed in π order (Recipe C).</summary>
[KvCodes(Input = Element.F16, HeadDim = 64, VTransposed = true)]
public static partial class KvCodesPiD64;

/// <summary>K and V codes, f16, D = 64: V e4m3 transposed in π order (fp8 P·V).</summary>
[KvCodes(Input = Element.F16, HeadDim = 64, VTransposed = true, VOutput = Element.E4M3, Targets = [Sm.Sm90])]
public static partial class KvCodesPiD64E4m3;

/// <summary>K and V codes, bf16, D = 128: V int8 [B][H][S][D].</summary>
[KvCodes(Input = Element.BF16, HeadDim = 128)]
public static partial class KvCodesD128Bf16;

/// <summary>K and V codes, bf16, D = 128: V e4m3 transposed in π order (fp8 P·V).</summary>
[KvCodes(Input = Element.BF16, HeadDim = 128, VTransposed = true, VOutput = Element.E4M3, Targets = [Sm.Sm90])]
public static partial class KvCodesPiD128E4m3Bf16;

/// <summary>K and V codes, bf16, D = 64: V int8 [B][H][S][D].</summary>
[KvCodes(Input = Element.BF16, HeadDim = 64)]
public static partial class KvCodesD64Bf16;

/// <summary>K and V codes, bf16, D = 64: V e4m3 transposed in π order (fp8 P·V).</summary>
[KvCodes(Input = Element.BF16, HeadDim = 64, VTransposed = true, VOutput = Element.E4M3, Targets = [Sm.Sm90])]
public static partial class KvCodesPiD64E4m3Bf16;

// The single pass (docs/PERF_NOTES.md §15): the statistics and the codes above in one launch, the codes blocks trailing
// their head's statistics blocks to read K and V again from L2. Same slices, lanes, tiles and layouts as the two passes (a
// test holds them equal), so the codes are the same. It measured slower than the two passes (runs 79–80: 182–201 µs
// against 144–146 at D = 128, S = 4096 on the H100), so Int8Attention does not take it.

/// <summary>K and V in one pass, f16, D = 128: V int8 [B][H][S][D].</summary>
[KvSinglePass(Input = Element.F16, HeadDim = 128)]
public static partial class KvSinglePassD128;

/// <summary>K and V in one pass, f16, D = 128: V int8 transposed in π order (Recipe C).</summary>
[KvSinglePass(Input = Element.F16, HeadDim = 128, VTransposed = true)]
public static partial class KvSinglePassPiD128;

/// <summary>K and V in one pass, f16, D = 128: V e4m3 transposed in π order (fp8 P·V).</summary>
[KvSinglePass(Input = Element.F16, HeadDim = 128, VTransposed = true, VOutput = Element.E4M3, Targets = [Sm.Sm90])]
public static partial class KvSinglePassPiD128E4m3;

/// <summary>K and V in one pass, f16, D = 64: V int8 [B][H][S][D].</summary>
[KvSinglePass(Input = Element.F16, HeadDim = 64)]
public static partial class KvSinglePassD64;

/// <summary>K and V in one pass, f16, D = 64: V int8 transposed in π order (Recipe C).</summary>
[KvSinglePass(Input = Element.F16, HeadDim = 64, VTransposed = true)]
public static partial class KvSinglePassPiD64;

/// <summary>K and V in one pass, f16, D = 64: V e4m3 transposed in π order (fp8 P·V).</summary>
[KvSinglePass(Input = Element.F16, HeadDim = 64, VTransposed = true, VOutput = Element.E4M3, Targets = [Sm.Sm90])]
public static partial class KvSinglePassPiD64E4m3;

/// <summary>K and V in one pass, bf16, D = 128: V int8 [B][H][S][D].</summary>
[KvSinglePass(Input = Element.BF16, HeadDim = 128)]
public static partial class KvSinglePassD128Bf16;

/// <summary>K and V in one pass, bf16, D = 128: V e4m3 transposed in π order (fp8 P·V).</summary>
[KvSinglePass(Input = Element.BF16, HeadDim = 128, VTransposed = true, VOutput = Element.E4M3, Targets = [Sm.Sm90])]
public static partial class KvSinglePassPiD128E4m3Bf16;

/// <summary>K and V in one pass, bf16, D = 64: V int8 [B][H][S][D].</summary>
[KvSinglePass(Input = Element.BF16, HeadDim = 64)]
public static partial class KvSinglePassD64Bf16;

/// <summary>K and V in one pass, bf16, D = 64: V e4m3 transposed in π order (fp8 P·V).</summary>
[KvSinglePass(Input = Element.BF16, HeadDim = 64, VTransposed = true, VOutput = Element.E4M3, Targets = [Sm.Sm90])]
public static partial class KvSinglePassPiD64E4m3Bf16;
