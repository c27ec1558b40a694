using KernelDsl;

namespace QuickStart;

/// <summary>
/// An int8 GEMM with B stored [K][N], as attention's V: the int8 operand is transposed on its way to the
/// tensor cores by ldmatrix.trans plus byte permutes (docs/V_TRANSPOSE.md, Recipe A).
/// </summary>
/// <remarks>
/// Each warp computes 64×32 of C, as in the library's Int8GemmNNTransPrmt. The block is 128×64 rather than its 128×128
/// so that B's rows are 64 bytes, where Swizzle(2,4,4) serves Recipe A's row order without bank conflicts (on 128-byte
/// rows every swizzle leaves that order 2-way conflicted: KDSL0103). BlockK = 32 makes each stage one k32 MMA step, so a warp holds half as
/// many A and B fragments at once: 120–123 registers and no spill on sm_80 to sm_90 (NVRTC 11.8). With BlockK = 64
/// this tile needed 134 registers on sm_80, and on sm_90 ptxas kept it to 128 and spilled 32 bytes.
/// </remarks>
[Int8Gemm(BlockM = 128, BlockN = 64, BlockK = 32, Warps = 4, Stages = 3, Layout = GemmLayout.NN)]
[SmemLayout(Operand.A, Element.S8, 1, 4, 3)]   // A's 32-byte rows
[SmemLayout(Operand.B, Element.S8, 2, 4, 4)]   // B's 64-byte rows: conflict-free for Recipe A's row order
[CopyAtom(Operand.A, CopyAtoms.Ldsm)]
[CopyAtom(Operand.B, CopyAtoms.LdsmTransPrmt)]
[MmaAtom(MmaAtoms.M16N8K32_S32S8S8)]
public static partial class Int8GemmQuickStart;
