namespace KernelDsl.Attention.FlashAttention;

// INT8 FlashAttention forward, declared with the same attributes a user writes. Q·Kᵀ runs on s8 MMAs; P·V on
// u8·s8 with V fed by each strategy of docs/V_TRANSPOSE.md, or in f16 (the accuracy mode). P leaves the S accumulators
// in π key order, so every V atom is asked for π order — and the build checks, by simulation, that it delivers it.
// Every declaration here has AlsoCausal = true: the generator also builds it with causal masking, as the nested kernel
// `.Causal` (Int8AttentionD128TransPrmt.Causal), so a tile is declared once for both.

/// <summary>D = 128, Recipe A: ldmatrix.x4.trans + prmt on int8 V.</summary>
[FlashAttentionForward(HeadDim = 128, BlockM = 128, BlockN = 64, Warps = 8, Stages = 2, AlsoCausal = true)]
[SmemLayout(Operand.Q, Element.S8, 3, 4, 3)]
[SmemLayout(Operand.K, Element.S8, 3, 4, 3)]
[SmemLayout(Operand.V, Element.S8, 3, 4, 3)]
[CopyAtom(Operand.Q, CopyAtoms.Ldsm)]
[CopyAtom(Operand.K, CopyAtoms.Ldsm)]
[CopyAtom(Operand.V, CopyAtoms.LdsmTransPrmt)]
[MmaAtom(MmaAtoms.M16N8K32_S32S8S8)]
[MmaAtom(MmaAtoms.M16N8K32_S32U8S8, Product = MmaProduct.PV)]
public static partial class Int8AttentionD128TransPrmt;

/// <summary>D = 128, Recipe B: ldmatrix + prmt + movmatrix on int8 V.</summary>
[FlashAttentionForward(Like = typeof(Int8AttentionD128TransPrmt), AlsoCausal = true)]
[SmemLayout(Operand.V, Element.S8, 3, 4, 4)] // Recipe B's π rows pair up under Swizzle(3,4,3); S = 4 separates them
[CopyAtom(Operand.V, CopyAtoms.LdsmPrmtMovmatrix)]
public static partial class Int8AttentionD128Movmatrix;

/// <summary>D = 128, Recipe C: V transposed to [D][S] in π order by its quantize kernel, then plain ldmatrix.</summary>
[FlashAttentionForward(Like = typeof(Int8AttentionD128TransPrmt), AlsoCausal = true)]
[SmemLayout(Operand.V, Element.S8, 2, 4, 3)]
[CopyAtom(Operand.V, CopyAtoms.LdsmPretransposed)]
public static partial class Int8AttentionD128Pretransposed;

/// <summary>D = 128, accuracy mode: int8 Q·Kᵀ, f16 P·V with the f16 V through ldmatrix.trans.</summary>
[FlashAttentionForward(Like = typeof(Int8AttentionD128TransPrmt), AlsoCausal = true)]
[SmemLayout(Operand.V, Element.F16, 3, 3, 4)] // 256-byte f16 rows: XOR the row bits, not a chunk bit
[CopyAtom(Operand.V, CopyAtoms.LdsmTrans)]
[MmaAtom(MmaAtoms.M16N8K16_F32F16F16, Product = MmaProduct.PV)]
public static partial class Int8AttentionD128F16PV;

/// <summary>D = 64, Recipe A; two blocks per SM (the kernel fits 128 registers a thread without spills).</summary>
[FlashAttentionForward(Like = typeof(Int8AttentionD128TransPrmt), HeadDim = 64, MinBlocksPerSm = 2, AlsoCausal = true)]
[SmemLayout(Operand.Q, Element.S8, 2, 4, 3)]
[SmemLayout(Operand.K, Element.S8, 2, 4, 3)]
[SmemLayout(Operand.V, Element.S8, 2, 4, 3)]
public static partial class Int8AttentionD64TransPrmt;

/// <summary>D = 64, accuracy mode (one block per SM).</summary>
[FlashAttentionForward(Like = typeof(Int8AttentionD64TransPrmt), MinBlocksPerSm = 1, AlsoCausal = true)]
[SmemLayout(Operand.V, Element.F16, 3, 3, 3)]
[CopyAtom(Operand.V, CopyAtoms.LdsmTrans)]
[MmaAtom(MmaAtoms.M16N8K16_F32F16F16, Product = MmaProduct.PV)]
public static partial class Int8AttentionD64F16PV;

// bf16 inputs and output: the same kernels with bf16 conversions; the accuracy mode runs P·V on bf16 MMAs.

/// <summary>D = 128, Recipe A, bf16 in and out.</summary>
[FlashAttentionForward(Like = typeof(Int8AttentionD128TransPrmt), Output = Element.BF16, AlsoCausal = true)]
public static partial class Int8AttentionD128TransPrmtBf16;

/// <summary>D = 128, accuracy mode on bf16 MMAs, bf16 in and out: the f16 declaration with V and P·V in bf16.</summary>
[FlashAttentionForward(Like = typeof(Int8AttentionD128F16PV), Output = Element.BF16, AlsoCausal = true)]
[SmemLayout(Operand.V, Element.BF16, 3, 3, 4)]
[MmaAtom(MmaAtoms.M16N8K16_F32BF16BF16, Product = MmaProduct.PV)]
public static partial class Int8AttentionD128Bf16PV;

/// <summary>D = 64, Recipe A, bf16 in and out.</summary>
[FlashAttentionForward(Like = typeof(Int8AttentionD64TransPrmt), Output = Element.BF16, AlsoCausal = true)]
public static partial class Int8AttentionD64TransPrmtBf16;

/// <summary>D = 64, accuracy mode on bf16 MMAs, bf16 in and out: the f16 declaration with V and P·V in bf16.</summary>
[FlashAttentionForward(Like = typeof(Int8AttentionD64F16PV), Output = Element.BF16, AlsoCausal = true)]
[SmemLayout(Operand.V, Element.BF16, 3, 3, 3)]
[MmaAtom(MmaAtoms.M16N8K16_F32BF16BF16, Product = MmaProduct.PV)]
public static partial class Int8AttentionD64Bf16PV;

// ---- Further tile configurations: AttentionOptions.Autotune times them against the ones above. ----

/// <summary>D = 128, Recipe A with 3 K/V stages: a second tile configuration for the autotuner.</summary>
[FlashAttentionForward(Like = typeof(Int8AttentionD128TransPrmt), Stages = 3, AlsoCausal = true)]
public static partial class Int8AttentionD128TransPrmtStages3;

/// <summary>D = 128, Recipe C with 3 K/V stages: a second tile configuration for the autotuner.</summary>
[FlashAttentionForward(Like = typeof(Int8AttentionD128Pretransposed), Stages = 3, AlsoCausal = true)]
public static partial class Int8AttentionD128PretransposedStages3;

/// <summary>D = 64, Recipe A with 3 K/V stages (one block per SM: the tuner weighs registers against occupancy).</summary>
[FlashAttentionForward(Like = typeof(Int8AttentionD64TransPrmt), Stages = 3, MinBlocksPerSm = 1, AlsoCausal = true)]
public static partial class Int8AttentionD64TransPrmtStages3;

/// <summary>D = 128, Recipe C on 64-row blocks of 4 warps, two per SM: the same warps per SM as 128 rows, with independent barriers.</summary>
[FlashAttentionForward(Like = typeof(Int8AttentionD128Pretransposed), BlockM = 64, QScaleRows = 128, Warps = 4, MinBlocksPerSm = 2, AlsoCausal = true)]
public static partial class Int8AttentionD128PretransposedBlockM64;

/// <summary>D = 128, Recipe A on 64-row blocks of 4 warps, two per SM.</summary>
[FlashAttentionForward(Like = typeof(Int8AttentionD128TransPrmt), BlockM = 64, QScaleRows = 128, Warps = 4, MinBlocksPerSm = 2, AlsoCausal = true)]
public static partial class Int8AttentionD128TransPrmtBlockM64;

// ---- Hopper (sm_90a): the warp-specialized wgmma form ----
// One producer warpgroup loads Q once and K/V per stage by TMA onto mbarriers; two consumer warpgroups of 64 query rows
// run S = Q·Kᵀ on wgmma from shared memory, the online softmax in registers, and P·V on wgmma with u8 P from registers.
// wgmma reads 8-bit B only K-major, so V comes transposed and π-ordered from its quantize kernel (Recipe C), or the
// producer transposes it in the kernel (Recipe D, at the end of this file). Layouts are the swizzles TMA writes
// (128 bytes for 128-byte rows, 64 for 64). BlockN = 128 keys read two 64-key K scales.

// Declared first, so they are the Hopper default at D = 128 (Int8Attention takes a mode's first tile built for the
// device's architecture): three stages beat two at every quick-grid shape of run 76 (S = 4096: 709 against 648 TOPS,
// causal 594 against 535).

/// <summary>D = 128 on wgmma with three K/V stages: the producer runs two blocks ahead.</summary>
[FlashAttentionForward(Like = typeof(Int8AttentionD128Wgmma), Stages = 3, AlsoCausal = true)]
public static partial class Int8AttentionD128WgmmaStages3;

/// <summary>D = 128 on wgmma (sm_90a): TMA + mbarrier pipeline, producer/consumer warpgroups, Recipe C V.</summary>
[FlashAttentionForward(HeadDim = 128, BlockM = 128, BlockN = 128, KScaleKeys = 64, Warps = 12, Stages = 2, Targets = [Sm.Sm90a], AlsoCausal = true)]
[SmemLayout(Operand.Q, Element.S8, 3, 4, 3)]
[SmemLayout(Operand.K, Element.S8, 3, 4, 3)]
[SmemLayout(Operand.V, Element.S8, 3, 4, 3)]
[CopyAtom(Operand.Q, CopyAtoms.Tma)]
[CopyAtom(Operand.K, CopyAtoms.Tma)]
[CopyAtom(Operand.V, CopyAtoms.Tma)]
[CopyAtom(Operand.V, CopyAtoms.LdsmPretransposed)]
[MmaAtom(MmaAtoms.Wgmma_M64N128K32_S32S8S8)]
[MmaAtom(MmaAtoms.Wgmma_M64N128K32_S32U8S8_RS, Product = MmaProduct.PV)]
public static partial class Int8AttentionD128Wgmma;

/// <summary>D = 64 on wgmma (sm_90a): 64-byte Q/K rows (64-byte swizzle), V tiles of 64 channels × 128 keys.</summary>
[FlashAttentionForward(Like = typeof(Int8AttentionD128Wgmma), HeadDim = 64, Stages = 3, AlsoCausal = true)]
[SmemLayout(Operand.Q, Element.S8, 2, 4, 3)]
[SmemLayout(Operand.K, Element.S8, 2, 4, 3)]
[MmaAtom(MmaAtoms.Wgmma_M64N64K32_S32U8S8_RS, Product = MmaProduct.PV)]
public static partial class Int8AttentionD64Wgmma;

/// <summary>D = 128 on wgmma with FlashAttention-3's pingpong: the two consumer warpgroups take turns issuing their MMAs.</summary>
[FlashAttentionForward(Like = typeof(Int8AttentionD128Wgmma), Pingpong = true, AlsoCausal = true)]
public static partial class Int8AttentionD128WgmmaPingpong;

/// <summary>
/// D = 128 on wgmma with three K/V stages on a persistent grid: one block an SM walks the tiles, and a tile's epilogue
/// overlaps the next tile's copies (docs/PERF_NOTES.md §13).
/// </summary>
[FlashAttentionForward(Like = typeof(Int8AttentionD128Wgmma), Stages = 3, Persistent = true, AlsoCausal = true)]
public static partial class Int8AttentionD128WgmmaPersistent;

/// <summary>D = 64 on wgmma on a persistent grid (docs/PERF_NOTES.md §14).</summary>
[FlashAttentionForward(Like = typeof(Int8AttentionD64Wgmma), Persistent = true, AlsoCausal = true)]
public static partial class Int8AttentionD64WgmmaPersistent;

/// <summary>
/// D = 128 on wgmma with Recipe D: TMA brings V as it comes, and the producer warpgroup rewrites each block [channel][key] in
/// π order with ldmatrix.trans + prmt + stmatrix before the consumers' P·V (docs/V_TRANSPOSE.md). No transposing quantize kernel.
/// </summary>
[FlashAttentionForward(Like = typeof(Int8AttentionD128Wgmma), Stages = 3, AlsoCausal = true)]
[CopyAtom(Operand.V, CopyAtoms.LdsmTransPrmt)]
[CopyAtom(Operand.V, CopyAtoms.Stmatrix)]
public static partial class Int8AttentionD128WgmmaRecipeD;

// ---- Hopper fp8 P·V (SageAttention2's choice): P rounded to e4m3 at 448·P, V e4m3 with one scale per channel ----
// The same int8 Q·Kᵀ; P keeps a relative precision (e4m3's 3 mantissa bits) where u8 rounds a peaked row's small
// probabilities to 0, and each key block's P·V lands in a fresh f32 accumulator folded into O. V comes transposed in π
// order from its e4m3 quantize kernel (Recipe C).

/// <summary>D = 128 on wgmma with fp8 P·V, three K/V stages.</summary>
[FlashAttentionForward(Like = typeof(Int8AttentionD128WgmmaStages3), AlsoCausal = true)]
[SmemLayout(Operand.V, Element.E4M3, 3, 4, 3)]
[MmaAtom(MmaAtoms.Wgmma_M64N128K32_F32E4M3E4M3_RS, Product = MmaProduct.PV)]
public static partial class Int8AttentionD128WgmmaFp8;

/// <summary>D = 64 on wgmma with fp8 P·V.</summary>
[FlashAttentionForward(Like = typeof(Int8AttentionD64Wgmma), AlsoCausal = true)]
[SmemLayout(Operand.V, Element.E4M3, 3, 4, 3)]
[MmaAtom(MmaAtoms.Wgmma_M64N64K32_F32E4M3E4M3_RS, Product = MmaProduct.PV)]
public static partial class Int8AttentionD64WgmmaFp8;

// ---- Hopper, Q quantized in the kernel (issue 14): no Q quantize pass, one Q scale per row ----
// The consumer warps read their Q rows as they come (f16, with strides), scale each row by its own largest value and
// write the codes where TMA would have put them; the softmax then scales each row by its own Q scale. Same tiles as the
// three-stage wgmma kernels above.

/// <summary>D = 128 on wgmma, three stages, Recipe C V, Q quantized per row in the kernel.</summary>
[FlashAttentionForward(Like = typeof(Int8AttentionD128WgmmaStages3), QInput = Element.F16, AlsoCausal = true)]
public static partial class Int8AttentionD128WgmmaFusedQ;

/// <summary>D = 128 on wgmma, three stages, Q quantized per row in the kernel, on a persistent grid (one Q buffer: each warp rewrites only its own rows).</summary>
[FlashAttentionForward(Like = typeof(Int8AttentionD128WgmmaPersistent), QInput = Element.F16, AlsoCausal = true)]
public static partial class Int8AttentionD128WgmmaFusedQPersistent;

/// <summary>D = 128 on wgmma with fp8 P·V, Q quantized per row in the kernel.</summary>
[FlashAttentionForward(Like = typeof(Int8AttentionD128WgmmaFp8), QInput = Element.F16, AlsoCausal = true)]
public static partial class Int8AttentionD128WgmmaFp8FusedQ;

/// <summary>D = 64 on wgmma, Q quantized per row in the kernel.</summary>
[FlashAttentionForward(Like = typeof(Int8AttentionD64Wgmma), QInput = Element.F16, AlsoCausal = true)]
public static partial class Int8AttentionD64WgmmaFusedQ;

/// <summary>D = 64 on wgmma, Q quantized per row in the kernel, on a persistent grid.</summary>
[FlashAttentionForward(Like = typeof(Int8AttentionD64WgmmaPersistent), QInput = Element.F16, AlsoCausal = true)]
public static partial class Int8AttentionD64WgmmaFusedQPersistent;

/// <summary>D = 64 on wgmma with fp8 P·V, Q quantized per row in the kernel.</summary>
[FlashAttentionForward(Like = typeof(Int8AttentionD64WgmmaFp8), QInput = Element.F16, AlsoCausal = true)]
public static partial class Int8AttentionD64WgmmaFp8FusedQ;

// ---- Hopper, 64-row tiles, two blocks per SM (issue 14, short sequences) ----
// One producer and one consumer warpgroup per block of 64 query rows, two blocks per SM (setmaxnreg: 128·24 + 128·232
// registers each): twice the blocks of the 128-row kernel, so short and causal grids fill the SMs, and one block's
// softmax overlaps the other's MMAs without pingpong barriers (SageAttention2's schedule, with TMA producers).

/// <summary>D = 128 on wgmma, 64-row blocks, two per SM, three stages, Q quantized per row in the kernel.</summary>
[FlashAttentionForward(Like = typeof(Int8AttentionD128WgmmaFusedQ), BlockM = 64, Warps = 8, MinBlocksPerSm = 2, AlsoCausal = true)]
public static partial class Int8AttentionD128WgmmaBlockM64;

/// <summary>D = 64 on wgmma, 64-row blocks, two per SM, Q quantized per row in the kernel.</summary>
[FlashAttentionForward(Like = typeof(Int8AttentionD64WgmmaFusedQ), BlockM = 64, Warps = 8, MinBlocksPerSm = 2, AlsoCausal = true)]
public static partial class Int8AttentionD64WgmmaBlockM64;

// The same 64-row schedule with fp8 e4m3 P·V (§8 of docs/PERF_NOTES.md: +3–9 % kernel at D = 128 on 128-row blocks):
// SageAttention2's whole recipe (one consumer warpgroup of 64 rows, several blocks per SM, fp8 P·V, Q per row).

/// <summary>D = 128 on wgmma, 64-row blocks, two per SM, fp8 e4m3 P·V, Q quantized per row in the kernel.</summary>
[FlashAttentionForward(Like = typeof(Int8AttentionD128WgmmaFp8FusedQ), BlockM = 64, Warps = 8, MinBlocksPerSm = 2, AlsoCausal = true)]
public static partial class Int8AttentionD128WgmmaFp8BlockM64;

/// <summary>D = 64 on wgmma, 64-row blocks, two per SM, fp8 e4m3 P·V.</summary>
[FlashAttentionForward(Like = typeof(Int8AttentionD64WgmmaFp8FusedQ), BlockM = 64, Warps = 8, MinBlocksPerSm = 2, AlsoCausal = true)]
public static partial class Int8AttentionD64WgmmaFp8BlockM64;
