namespace KernelDsl;

// The DSL's vocabulary. The generator mirrors these enums by name and value
// (KernelDsl.Generator.Model); a test keeps the two in step.

/// <summary>Element types a tile or tensor can hold.</summary>
public enum Element
{
    S8 = 0,
    U8 = 1,
    F16 = 2,
    BF16 = 3,
    F32 = 4,
    E4M3 = 5,
    S32 = 6,
}

/// <summary>The operand a layout or atom applies to.</summary>
public enum Operand
{
    A = 0,
    B = 1,
    C = 2,
    Q = 3,
    K = 4,
    V = 5,
    O = 6,
}

/// <summary>Target GPU architectures. <see cref="Sm90a"/> is Hopper with its architecture-specific instructions (wgmma).</summary>
public enum Sm
{
    Sm75 = 75,
    Sm80 = 80,
    Sm86 = 86,
    Sm89 = 89,
    Sm90 = 90,
    Sm90a = 901,
}

/// <summary>Data movements with a known lane → element map (CuTe's Copy_Atom).</summary>
public enum CopyAtoms
{
    /// <summary>Global → shared, 16-byte <c>cp.async.cg</c>, zero-filled past the end of the tensor.</summary>
    CpAsync16 = 0,
    /// <summary>Global → shared through registers: 16-byte <c>ld.global</c> then <c>st.shared</c>. Synchronous, single stage.</summary>
    LdgSts16 = 1,
    /// <summary>Shared → registers, <c>ldmatrix.x4</c> (non-transposed): the operand's contiguous dimension is k.</summary>
    Ldsm = 2,
    /// <summary>Shared → registers, <c>ldmatrix.x4.trans</c> alone: transposes 16-bit elements, so it is only right for 16-bit operands.</summary>
    LdsmTrans = 3,
    /// <summary>Int8 k-by-n operand: <c>ldmatrix.x4.trans</c> then byte permutes (<c>prmt</c>) (docs/V_TRANSPOSE.md Recipe A).</summary>
    LdsmTransPrmt = 4,
    /// <summary>Int8 k-by-n operand: <c>ldmatrix.x4</c>, <c>prmt</c>, then <c>movmatrix.trans</c> (Recipe B).</summary>
    LdsmPrmtMovmatrix = 5,
    /// <summary>Int8 k-by-n operand transposed to n-by-k by a kernel beforehand, then plain <c>ldmatrix.x4</c> (Recipe C).</summary>
    LdsmPretransposed = 6,
    /// <summary>Registers → shared, <c>stmatrix</c> (sm_90).</summary>
    Stmatrix = 7,
    /// <summary>
    /// Global → shared by the Tensor Memory Accelerator: one thread issues <c>cp.async.bulk.tensor</c> for a whole tile,
    /// which lands swizzled as the operand's [SmemLayout] says and completes on an mbarrier (sm_90). Out-of-range rows arrive as zeros.
    /// </summary>
    Tma = 8,
}

/// <summary>Warp-level matrix-multiply atoms (CuTe's MMA_Atom).</summary>
public enum MmaAtoms
{
    /// <summary><c>mma.sync.m16n8k32.row.col.s32.s8.s8.s32</c> (sm_80).</summary>
    M16N8K32_S32S8S8 = 0,
    /// <summary><c>mma.sync.m16n8k32.row.col.s32.u8.s8.s32</c> (sm_80).</summary>
    M16N8K32_S32U8S8 = 1,
    /// <summary><c>mma.sync.m16n8k16.row.col.f32.f16.f16.f32</c> (sm_80).</summary>
    M16N8K16_F32F16F16 = 2,
    /// <summary><c>mma.sync.m16n8k32.row.col.f32.e4m3.e4m3.f32</c> (sm_89).</summary>
    M16N8K32_F32E4M3E4M3 = 3,
    /// <summary><c>wgmma.mma_async.m64n64k32.s32.s8.s8</c> (sm_90a).</summary>
    Wgmma_M64N64K32_S32S8S8 = 4,
    /// <summary><c>mma.sync.m16n8k16.row.col.f32.bf16.bf16.f32</c> (sm_80).</summary>
    M16N8K16_F32BF16BF16 = 5,
    /// <summary><c>wgmma.mma_async.m64n128k32.s32.s8.s8</c>, A and B from shared memory (sm_90a): attention's Q·Kᵀ.</summary>
    Wgmma_M64N128K32_S32S8S8 = 6,
    /// <summary><c>wgmma.mma_async.m64n128k32.s32.u8.s8</c>, A (u8 P) from registers, B from shared memory (sm_90a): P·V at D = 128.</summary>
    Wgmma_M64N128K32_S32U8S8_RS = 7,
    /// <summary><c>wgmma.mma_async.m64n64k32.s32.u8.s8</c>, A (u8 P) from registers, B from shared memory (sm_90a): P·V at D = 64.</summary>
    Wgmma_M64N64K32_S32U8S8_RS = 8,
    /// <summary><c>wgmma.mma_async.m64n128k32.f32.e4m3.e4m3</c>, A (e4m3 P) from registers, B from shared memory (sm_90a): fp8 P·V at D = 128.</summary>
    Wgmma_M64N128K32_F32E4M3E4M3_RS = 9,
    /// <summary><c>wgmma.mma_async.m64n64k32.f32.e4m3.e4m3</c>, A (e4m3 P) from registers, B from shared memory (sm_90a): fp8 P·V at D = 64.</summary>
    Wgmma_M64N64K32_F32E4M3E4M3_RS = 10,
}

/// <summary>How the GEMM's B operand is stored.</summary>
public enum GemmLayout
{
    /// <summary>B stored [N][K] (k contiguous): both operands K-major.</summary>
    TN = 0,
    /// <summary>B stored [K][N] (n contiguous), as attention's V: the int8 operand must be transposed on its way to the MMA.</summary>
    NN = 1,
}

/// <summary>What the GEMM writes.</summary>
public enum GemmOutput
{
    /// <summary>The exact int32 accumulators.</summary>
    S32 = 0,
    /// <summary>f16 of <c>acc · rowScale[m] · colScale[n]</c>.</summary>
    F16Scaled = 1,
}

/// <summary>Which values share one quantization scale.</summary>
public enum QuantGranularity
{
    /// <summary>One scale per block of <c>BlockRows</c> tokens of one (batch, head).</summary>
    PerRowBlock = 0,
    /// <summary>One scale per channel of one (batch, head), over all tokens.</summary>
    PerChannel = 1,
}

/// <summary>The order in which a transposed int8 operand stores tokens.</summary>
public enum TokenOrder
{
    /// <summary>Tokens in their natural order.</summary>
    Natural = 0,
    /// <summary>Within each 16-token group: 0,1,8,9,2,3,10,11,4,5,12,13,6,7,14,15 — the order the S accumulators deliver P in (docs/V_TRANSPOSE.md).</summary>
    Pi = 1,
}

/// <summary>Which product of a kernel an MMA atom computes.</summary>
public enum MmaProduct
{
    /// <summary>The kernel's only product (a GEMM), or attention's Q·Kᵀ.</summary>
    Main = 0,
    /// <summary>Attention's P·V.</summary>
    PV = 1,
}
