namespace KernelDsl.Attention.Gemm;

// The int8 GEMM isolates attention's int8 V-transpose problem in the simplest kernel that has it: C = A·B with
// B stored [K][N] (NN) as V is. One variant per V strategy of docs/V_TRANSPOSE.md, plus the K-major (TN) baseline.

/// <summary>B stored [N][K]: both operands k-contiguous, plain ldmatrix for both.</summary>
[Int8Gemm(BlockM = 128, BlockN = 128, BlockK = 64, Warps = 8, Stages = 3, Layout = GemmLayout.TN)]
[SmemLayout(Operand.A, Element.S8, 2, 4, 3)]
[SmemLayout(Operand.B, Element.S8, 2, 4, 3)]
[CopyAtom(Operand.A, CopyAtoms.CpAsync16)]
[CopyAtom(Operand.B, CopyAtoms.CpAsync16)]
[CopyAtom(Operand.A, CopyAtoms.Ldsm)]
[CopyAtom(Operand.B, CopyAtoms.Ldsm)]
[MmaAtom(MmaAtoms.M16N8K32_S32S8S8)]
public static partial class Int8GemmTN;

/// <summary>Recipe A: B [K][N] through ldmatrix.x4.trans and byte permutes.</summary>
// Natural k order needs ldmatrix rows {0,1,4,5,8,9,12,13} per matrix: on 128-byte rows every CuTe swizzle leaves
// them 2-way bank-conflicted: KDSL0103 says so (the project file keeps the library build quiet about it; the generator
// tests check it). Attention's π order reads rows 0..7 and has no conflict.
[Int8Gemm(BlockM = 128, BlockN = 128, BlockK = 64, Warps = 8, Stages = 3, Layout = GemmLayout.NN)]
[SmemLayout(Operand.A, Element.S8, 2, 4, 3)]
[SmemLayout(Operand.B, Element.S8, 3, 4, 3)]
[CopyAtom(Operand.A, CopyAtoms.Ldsm)]
[CopyAtom(Operand.B, CopyAtoms.LdsmTransPrmt)]
[MmaAtom(MmaAtoms.M16N8K32_S32S8S8)]
public static partial class Int8GemmNNTransPrmt;

/// <summary>Recipe B: B [K][N] through ldmatrix, byte permutes and movmatrix.</summary>
[Int8Gemm(BlockM = 128, BlockN = 128, BlockK = 64, Warps = 8, Stages = 3, Layout = GemmLayout.NN)]
[SmemLayout(Operand.A, Element.S8, 2, 4, 3)]
[SmemLayout(Operand.B, Element.S8, 3, 4, 4)] // rows 2r + (q&1) of Recipe B: S = 4 spreads them over all 8 bank groups
[CopyAtom(Operand.A, CopyAtoms.Ldsm)]
[CopyAtom(Operand.B, CopyAtoms.LdsmPrmtMovmatrix)]
[MmaAtom(MmaAtoms.M16N8K32_S32S8S8)]
public static partial class Int8GemmNNMovmatrix;

/// <summary>Recipe C: B [K][N] transposed to [N][K] by a kernel first, then plain ldmatrix.</summary>
[Int8Gemm(BlockM = 128, BlockN = 128, BlockK = 64, Warps = 8, Stages = 3, Layout = GemmLayout.NN)]
[SmemLayout(Operand.A, Element.S8, 2, 4, 3)]
[SmemLayout(Operand.B, Element.S8, 2, 4, 3)]
[CopyAtom(Operand.A, CopyAtoms.Ldsm)]
[CopyAtom(Operand.B, CopyAtoms.LdsmPretransposed)]
[MmaAtom(MmaAtoms.M16N8K32_S32S8S8)]
public static partial class Int8GemmNNPretransposed;

/// <summary>Recipe A with the scaled f16 output attention's epilogue uses, on a smaller single-stage tile.</summary>
[Int8Gemm(BlockM = 64, BlockN = 64, BlockK = 32, Warps = 4, Stages = 1, Layout = GemmLayout.NN, Output = GemmOutput.F16Scaled)]
[SmemLayout(Operand.A, Element.S8, 1, 4, 3)]
[SmemLayout(Operand.B, Element.S8, 2, 4, 4)] // Recipe A's natural-order rows on 64-byte rows: S = 4 is conflict-free
[CopyAtom(Operand.A, CopyAtoms.LdgSts16)]
[CopyAtom(Operand.B, CopyAtoms.LdgSts16)]
[CopyAtom(Operand.A, CopyAtoms.Ldsm)]
[CopyAtom(Operand.B, CopyAtoms.LdsmTransPrmt)]
[MmaAtom(MmaAtoms.M16N8K32_S32S8S8)]
public static partial class Int8GemmNNScaledF16;
