namespace KernelDsl.Attention.FlashAttention;

// Head dims 96 and 256 on the mma.sync form (docs/HEAD_DIMS.md): u8 P·V with Recipe A V and the 16-bit P·V mode, f16 and
// bf16, plain and (AlsoCausal) causal. The wgmma form refuses both head dims (KDSL0003: no TMA/wgmma swizzle for 96-byte rows; 256-byte
// rows are wider than the 128-byte swizzle and O would need an N = 256 P·V wgmma). Variants of one head dim and mode are
// declared Like the first, overriding only what differs.

// ---- D = 96: 96-byte int8 rows (six 16-byte chunks), 192-byte f16 rows ----
// 64-row blocks of 4 warps, two per SM: a 64 × 96 K or V tile is 384 16-byte chunks, which 256 threads cannot share evenly
// (KDSL0301) but 128 can. Swizzle(1,4,3) on 96-byte rows and Swizzle(2,3,3) on 192-byte f16 rows are conflict-free for
// ldmatrix (the validator's search; the power-of-two swizzles of 64/128-byte rows are 2-way here).

/// <summary>D = 96, Recipe A: ldmatrix.x4.trans + prmt on int8 V.</summary>
[FlashAttentionForward(HeadDim = 96, BlockM = 64, QScaleRows = 128, BlockN = 64, Warps = 4, Stages = 2, MinBlocksPerSm = 2, AlsoCausal = true)]
[SmemLayout(Operand.Q, Element.S8, 1, 4, 3)]
[SmemLayout(Operand.K, Element.S8, 1, 4, 3)]
[SmemLayout(Operand.V, Element.S8, 1, 4, 3)]
[CopyAtom(Operand.Q, CopyAtoms.Ldsm)]
[CopyAtom(Operand.K, CopyAtoms.Ldsm)]
[CopyAtom(Operand.V, CopyAtoms.LdsmTransPrmt)]
[MmaAtom(MmaAtoms.M16N8K32_S32S8S8)]
[MmaAtom(MmaAtoms.M16N8K32_S32U8S8, Product = MmaProduct.PV)]
public static partial class Int8AttentionD96TransPrmt;

/// <summary>D = 96, accuracy mode: int8 Q·Kᵀ, f16 P·V with the f16 V through ldmatrix.trans.</summary>
[FlashAttentionForward(Like = typeof(Int8AttentionD96TransPrmt), AlsoCausal = true)]
[SmemLayout(Operand.V, Element.F16, 2, 3, 3)]
[CopyAtom(Operand.V, CopyAtoms.LdsmTrans)]
[MmaAtom(MmaAtoms.M16N8K16_F32F16F16, Product = MmaProduct.PV)]
public static partial class Int8AttentionD96F16PV;

/// <summary>D = 96, Recipe A, bf16 in and out.</summary>
[FlashAttentionForward(Like = typeof(Int8AttentionD96TransPrmt), Output = Element.BF16, AlsoCausal = true)]
public static partial class Int8AttentionD96TransPrmtBf16;

/// <summary>D = 96, accuracy mode on bf16 MMAs, bf16 in and out: the f16 declaration with V and P·V in bf16.</summary>
[FlashAttentionForward(Like = typeof(Int8AttentionD96F16PV), Output = Element.BF16, AlsoCausal = true)]
[SmemLayout(Operand.V, Element.BF16, 2, 3, 3)]
[MmaAtom(MmaAtoms.M16N8K16_F32BF16BF16, Product = MmaProduct.PV)]
public static partial class Int8AttentionD96Bf16PV;

// ---- D = 256: 256-byte int8 rows, 512-byte f16 rows ----
// O alone is 128 f32 registers a thread (16 rows × 256 channels per warp), so the kernel sits at the 255-register cap.
// NVRTC 11.8 spills 12–20 bytes for sm_90 with two K/V stages (sm_80 does not), and more with 64-row blocks of 4 warps
// (the per-thread tile is the same; 160 bytes for the causal 16-bit P·V): one stage, 128 rows, 8 warps compiles clean for
// both. Swizzle(3,4,4) / (3,3,5) XOR the row bits of 256- and 512-byte rows into the chunk bits (conflict-free).

/// <summary>D = 256, Recipe A.</summary>
[FlashAttentionForward(HeadDim = 256, BlockM = 128, BlockN = 64, Warps = 8, Stages = 1, AlsoCausal = true)]
[SmemLayout(Operand.Q, Element.S8, 3, 4, 4)]
[SmemLayout(Operand.K, Element.S8, 3, 4, 4)]
[SmemLayout(Operand.V, Element.S8, 3, 4, 4)]
[CopyAtom(Operand.Q, CopyAtoms.Ldsm)]
[CopyAtom(Operand.K, CopyAtoms.Ldsm)]
[CopyAtom(Operand.V, CopyAtoms.LdsmTransPrmt)]
[MmaAtom(MmaAtoms.M16N8K32_S32S8S8)]
[MmaAtom(MmaAtoms.M16N8K32_S32U8S8, Product = MmaProduct.PV)]
public static partial class Int8AttentionD256TransPrmt;

/// <summary>D = 256, accuracy mode.</summary>
[FlashAttentionForward(Like = typeof(Int8AttentionD256TransPrmt), AlsoCausal = true)]
[SmemLayout(Operand.V, Element.F16, 3, 3, 5)]
[CopyAtom(Operand.V, CopyAtoms.LdsmTrans)]
[MmaAtom(MmaAtoms.M16N8K16_F32F16F16, Product = MmaProduct.PV)]
public static partial class Int8AttentionD256F16PV;

/// <summary>D = 256, Recipe A, bf16 in and out.</summary>
[FlashAttentionForward(Like = typeof(Int8AttentionD256TransPrmt), Output = Element.BF16, AlsoCausal = true)]
public static partial class Int8AttentionD256TransPrmtBf16;

/// <summary>D = 256, accuracy mode on bf16 MMAs, bf16 in and out: the f16 declaration with V and P·V in bf16.</summary>
[FlashAttentionForward(Like = typeof(Int8AttentionD256F16PV), Output = Element.BF16, AlsoCausal = true)]
[SmemLayout(Operand.V, Element.BF16, 3, 3, 5)]
[MmaAtom(MmaAtoms.M16N8K16_F32BF16BF16, Product = MmaProduct.PV)]
public static partial class Int8AttentionD256Bf16PV;
