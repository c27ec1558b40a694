using KernelDsl;

namespace QuickStart;

/// <summary>
/// An int8 GEMM with B stored [K][N], as attention's V: the int8 operand is transposed on its way to the
/// tensor cores by ldmatrix.trans plus byte permutes (docs/V_TRANSPOSE.md, Recipe A).
/// </summary>
[Int8Gemm(BlockM = 128, BlockN = 64, BlockK = 64, Warps = 4, Stages = 3, Layout = GemmLayout.NN)]
[SmemLayout(Operand.A, Element.S8, 2, 4, 3)]
[SmemLayout(Operand.B, Element.S8, 2, 4, 4)]
[CopyAtom(Operand.A, CopyAtoms.Ldsm)]
[CopyAtom(Operand.B, CopyAtoms.LdsmTransPrmt)]
[MmaAtom(MmaAtoms.M16N8K32_S32S8S8)]
public static partial class Int8GemmQuickStart;
