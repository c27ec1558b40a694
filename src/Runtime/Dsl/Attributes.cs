namespace KernelDsl;

/// <summary>
/// Declares an int8 GEMM tile kernel: <c>C[M×N] = A[M×K] · B</c> on <c>mma.sync</c> m16n8k32.
/// Put it on a <c>static partial class</c>; the generator adds the CUDA source and a typed <c>Launch</c>.
/// </summary>
[AttributeUsage(AttributeTargets.Class | AttributeTargets.Struct, Inherited = false)]
public sealed class Int8GemmAttribute : Attribute
{
    /// <summary>Rows of C per thread block.</summary>
    public int BlockM { get; set; } = 128;
    /// <summary>Columns of C per thread block.</summary>
    public int BlockN { get; set; } = 128;
    /// <summary>Depth of one pipeline stage, in elements of k.</summary>
    public int BlockK { get; set; } = 64;
    /// <summary>Warps per block.</summary>
    public int Warps { get; set; } = 8;
    /// <summary>Warps along M; 0 lets the generator choose (the most square warp tile).</summary>
    public int WarpsM { get; set; }
    /// <summary>Shared-memory pipeline stages.</summary>
    public int Stages { get; set; } = 3;
    /// <summary>How B is stored.</summary>
    public GemmLayout Layout { get; set; } = GemmLayout.TN;
    /// <summary>What the kernel writes.</summary>
    public GemmOutput Output { get; set; } = GemmOutput.S32;
    /// <summary>Architectures the variant must compile for.</summary>
    public Sm[] Targets { get; set; } = [Sm.Sm80, Sm.Sm90];
}

/// <summary>
/// Declares the quantization kernels for one operand: f16/bf16 <c>[B, H, S, D]</c> (any strides but the last) into int8.
/// </summary>
[AttributeUsage(AttributeTargets.Class | AttributeTargets.Struct, Inherited = false)]
public sealed class QuantizeAttribute : Attribute
{
    /// <summary>Input element: <see cref="Element.F16"/> or <see cref="Element.BF16"/>.</summary>
    public Element Input { get; set; } = Element.F16;
    /// <summary>Which values share a scale.</summary>
    public QuantGranularity Granularity { get; set; } = QuantGranularity.PerRowBlock;
    /// <summary>Tokens per scale for <see cref="QuantGranularity.PerRowBlock"/>.</summary>
    public int BlockRows { get; set; } = 128;
    /// <summary>Channels (the head dimension).</summary>
    public int HeadDim { get; set; } = 128;
    /// <summary>Subtract the per-(batch, head) channel mean over tokens first (K smoothing).</summary>
    public bool SubtractChannelMean { get; set; }
    /// <summary>Write the output [B, H, D, S] (tokens contiguous, padded to <see cref="TransposePad"/>) instead of [B, H, S, D].</summary>
    public bool Transposed { get; set; }
    /// <summary>Token order of a transposed output.</summary>
    public TokenOrder TransposedOrder { get; set; } = TokenOrder.Pi;
    /// <summary>Token padding of a transposed output.</summary>
    public int TransposePad { get; set; } = 64;
    /// <summary>Threads per block.</summary>
    public int Threads { get; set; } = 256;
    /// <summary>
    /// The codes' type: <see cref="Element.S8"/> (scale absmax/127), or <see cref="Element.E4M3"/> (scale absmax/448,
    /// codes rounded to nearest even with saturation; fp8 P·V's V) with <see cref="QuantGranularity.PerChannel"/> and no
    /// channel mean only, on sm_89 and later (set <see cref="Targets"/> accordingly; NVRTC before 12.1 builds the conversion
    /// for sm_90 only). The output buffer is then <c>byte</c>.
    /// </summary>
    public Element Output { get; set; } = Element.S8;
    /// <summary>Architectures the variant must compile for.</summary>
    public Sm[] Targets { get; set; } = [Sm.Sm80, Sm.Sm90];
}

/// <summary>
/// A tile of one operand in shared memory with CuTe's <c>Swizzle(B, M, S)</c>: on an element offset,
/// bits [M+S, M+S+B) are XORed into bits [M, M+B).
/// </summary>
[AttributeUsage(AttributeTargets.Class | AttributeTargets.Struct, AllowMultiple = true, Inherited = false)]
public sealed class SmemLayoutAttribute(Operand operand, Element element, int swizzleBits, int swizzleBase, int swizzleShift) : Attribute
{
    public Operand Operand { get; } = operand;
    public Element Element { get; } = element;
    /// <summary>B: how many bits are XORed.</summary>
    public int SwizzleBits { get; } = swizzleBits;
    /// <summary>M: the lowest bit XORed; 2^M elements stay together (16 bytes for int8 means M = 4).</summary>
    public int SwizzleBase { get; } = swizzleBase;
    /// <summary>S: the distance from the bits read to the bits XORed.</summary>
    public int SwizzleShift { get; } = swizzleShift;
}

/// <summary>A copy atom for one operand: global → shared, or shared → registers; the atom's kind says which.</summary>
[AttributeUsage(AttributeTargets.Class | AttributeTargets.Struct, AllowMultiple = true, Inherited = false)]
public sealed class CopyAtomAttribute(Operand operand, CopyAtoms atom) : Attribute
{
    public Operand Operand { get; } = operand;
    public CopyAtoms Atom { get; } = atom;
}

/// <summary>An MMA atom every warp issues, for one product of the kernel.</summary>
[AttributeUsage(AttributeTargets.Class | AttributeTargets.Struct, AllowMultiple = true, Inherited = false)]
public sealed class MmaAtomAttribute(MmaAtoms atom) : Attribute
{
    public MmaAtoms Atom { get; } = atom;
    /// <summary>Which product it computes: the main one (Q·Kᵀ in attention) or P·V.</summary>
    public MmaProduct Product { get; set; } = MmaProduct.Main;
}

/// <summary>
/// Declares an INT8 FlashAttention forward kernel: S = Q·Kᵀ on int8 MMAs, online softmax in exp2, P quantized
/// (u8 or s8) or kept f16 per the P·V MMA atom, O = P·V, V fed by its declared copy atom.
/// Inputs are the quantize kernels' outputs: Q and K int8 per block of rows, V int8 per channel.
/// </summary>
[AttributeUsage(AttributeTargets.Class | AttributeTargets.Struct, Inherited = false)]
public sealed class FlashAttentionForwardAttribute : Attribute
{
    /// <summary>Channels per head.</summary>
    public int HeadDim { get; set; } = 128;
    /// <summary>Query rows per block.</summary>
    public int BlockM { get; set; } = 128;
    /// <summary>
    /// Query rows per Q scale, i.e. the Q quantize kernel's BlockRows; a multiple of BlockM. 0 (the default) means
    /// BlockM. Lets a smaller block share the scales of a larger quantization tile.
    /// </summary>
    public int QScaleRows { get; set; }
    /// <summary>
    /// Q as the kernel reads it. S8 (the default): int8 codes from a Q quantize kernel, one scale per QScaleRows rows.
    /// F16 or BF16 (the output's type; wgmma form): the f16/bf16 Q itself, quantized in the kernel's prologue with one
    /// scale per row, so no separate Q pass runs and each row is scaled by its own largest value.
    /// </summary>
    public Element QInput { get; set; } = Element.S8;
    /// <summary>Keys per main-loop step.</summary>
    public int BlockN { get; set; } = 64;
    /// <summary>
    /// Keys per K scale, i.e. the K quantize kernel's BlockRows; a divisor of BlockN. 0 (the default) means BlockN. Lets a
    /// larger block (the wgmma kernel's 128 keys) read the scales of a smaller quantization tile.
    /// </summary>
    public int KScaleKeys { get; set; }
    /// <summary>
    /// Warps per block. mma.sync: each owns 16 query rows, so BlockM = 16 · Warps. wgmma: one producer warpgroup plus
    /// consumer warpgroups of 64 rows, so BlockM = 64 · (Warps / 4 − 1).
    /// </summary>
    public int Warps { get; set; } = 8;
    /// <summary>K/V shared-memory stages.</summary>
    public int Stages { get; set; } = 2;
    /// <summary>
    /// Blocks per SM the kernel is compiled for (__launch_bounds__): 2 makes ptxas fit two blocks' threads in the register
    /// file (65536 / (2 · 32 · Warps) registers a thread), trading registers for latency hiding.
    /// </summary>
    public int MinBlocksPerSm { get; set; } = 1;
    /// <summary>
    /// wgmma form with two consumer warpgroups: they take turns issuing their MMAs (FlashAttention-3's warp-scheduler
    /// barriers), so one warpgroup's softmax runs while the other's MMAs hold the tensor cores.
    /// </summary>
    public bool Pingpong { get; set; }
    /// <summary>
    /// wgmma form: a persistent grid, one block an SM walking the (query block, head, batch) tiles, so one tile's epilogue
    /// runs while the next tile's Q, K and V stream in (two Q buffers, or one where the kernel quantizes Q; O staged in
    /// its own shared memory). V transposed by its quantize kernel (Recipe C), without pingpong, one block an SM.
    /// </summary>
    public bool Persistent { get; set; }
    /// <summary>Causal masking, bottom-right aligned when query and key lengths differ.</summary>
    public bool Causal { get; set; }
    /// <summary>
    /// Also build this declaration with causal masking, as the static class <c>Causal</c> the generator nests in this type
    /// (its own typed launcher, catalog entry and snapshot): a causal and a non-causal kernel from one declaration. Not
    /// passed on by <see cref="Like"/>, and refused (KDSL0012) with Causal = true or on a form of an [AttentionForms] type.
    /// </summary>
    public bool AlsoCausal { get; set; }
    /// <summary>Output element: F16 or BF16.</summary>
    public Element Output { get; set; } = Element.F16;
    /// <summary>Write the log-sum-exp (natural log, float32) per query row.</summary>
    public bool Lse { get; set; } = true;
    /// <summary>
    /// Another [FlashAttentionForward] type whose layouts, atoms and parameters this declaration takes; the named
    /// arguments given here replace its. Declares a family of kernels that differ in a few choices (causal, output type,
    /// modifiers) without repeating their attribute lines. Layout and atom attributes given here replace the other's for
    /// the same operand (a layout), operand and direction (a copy atom) or product (an MMA atom), and add to the rest.
    /// </summary>
    public Type? Like { get; set; }
    /// <summary>Architectures the variant must compile for.</summary>
    public Sm[] Targets { get; set; } = [Sm.Sm80, Sm.Sm90];
}

/// <summary>
/// Declares the split-KV merge: partial attention outputs over disjoint key ranges, each with its LSE, combined into
/// the output over all keys: lse = log Σ exp(lse_i), O = Σ exp(lse_i − lse)·O_i. For split-KV and context parallelism.
/// </summary>
[AttributeUsage(AttributeTargets.Class | AttributeTargets.Struct, Inherited = false)]
public sealed class LseMergeAttribute : Attribute
{
    /// <summary>Channels per head.</summary>
    public int HeadDim { get; set; } = 128;
    /// <summary>Threads per block; each warp merges one query row at a time.</summary>
    public int Threads { get; set; } = 128;
    /// <summary>Architectures the variant must compile for.</summary>
    public Sm[] Targets { get; set; } = [Sm.Sm80, Sm.Sm90];
}
