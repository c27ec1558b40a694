using KernelDsl.Generator.Atoms;

namespace KernelDsl.Generator.Model;

/// <summary>
/// What an attention variant derives from its declaration: the two MMAs, the V strategy and its storage, the
/// order P leaves the S accumulators in, tile byte sizes, and the compositions that validation checks and the
/// emitter follows.
/// </summary>
public sealed record AttentionPlan(AttentionSpec Spec)
{
    public const int ChunkBytes = 16;

    public MmaAtom Qk => MmaAtom.Get(Spec.Mma ?? MmaAtomKind.M16N8K32_S32S8S8);
    public MmaAtom Pv => MmaAtom.Get(Spec.PvMma ?? MmaAtomKind.M16N8K32_S32U8S8);

    /// <summary>The accuracy mode: P stays a 16-bit float (f16 or bf16, as V is) and V is the input (no V quantization).</summary>
    public bool F16Pv => Pv.AElement is Element.F16 or Element.BF16;
    /// <summary>The fixed scale P is quantized with: 255 for u8, 127 for s8, 1 for f16.</summary>
    public int PScale => Pv.AElement switch { Element.U8 => 255, Element.S8 => 127, _ => 1 };

    public int Threads => Spec.Warps * 32;
    /// <summary>Query rows per Q scale (the Q quantize kernel's tile): BlockM unless declared larger.</summary>
    public int QScaleRows => Spec.QScaleRows == 0 ? Spec.BlockM : Spec.QScaleRows;
    /// <summary>Blocks per SM the kernel is compiled for (__launch_bounds__), as declared.</summary>
    public int MinBlocksPerSm => Spec.MinBlocksPerSm;
    /// <summary>The tile configuration in words, e.g. "128×64 / 8 warps / 2 stages / 1 block/SM": what the autotuner reports (no commas: it lands in CSV).</summary>
    public string Tile => $"{Spec.BlockM}×{Spec.BlockN} / {Spec.Warps} warps / {Spec.Stages} stages / {Spec.MinBlocksPerSm} block{(Spec.MinBlocksPerSm == 1 ? "" : "s")}/SM";
    public Element VElement => F16Pv ? Pv.BElement : Element.S8;
    public int VBytes => VElement.SizeInBytes();

    public CopyAtomKind? VAtom => Spec.CopyAtomOf(Operand.V, CopyDirection.SharedToRegisters);
    public bool PretransposedV => VAtom == CopyAtomKind.LdsmPretransposed;
    public OperandStorage VStorage => PretransposedV ? OperandStorage.NK : OperandStorage.KN;
    /// <summary>A pre-transposed V is written π-ordered by the quantize kernel (Recipe C).</summary>
    public TokenOrder VStoredOrder => PretransposedV ? TokenOrder.Pi : TokenOrder.Natural;

    public int QStageBytes => Spec.BlockM * Spec.HeadDim;
    public int KStageBytes => Spec.BlockN * Spec.HeadDim;
    public int VRows => PretransposedV ? Spec.HeadDim : Spec.BlockN;
    public int VRowBytes => PretransposedV ? Spec.BlockN : Spec.HeadDim * VBytes;
    public int VStageBytes => VRows * VRowBytes;
    public int SharedMemoryBytes => QStageBytes + Spec.Stages * (KStageBytes + VStageBytes);

    /// <summary>Integers below this magnitude survive the float-bias trick exactly (PtxHelper.FloatBias).</summary>
    public const long FloatBiasRange = 1L << 22;
    /// <summary>|S| ≤ 127·127·HeadDim: below 2^22 for every head dim the validator allows, so S is always read biased.</summary>
    public bool BiasedScores => 127L * 127 * Spec.HeadDim < FloatBiasRange;
    /// <summary>One KV block's int32 P·V (|·| ≤ PScale·127·BlockN) can be read biased too, up to BlockN = 128 for u8 P.</summary>
    public bool BiasedPv => !F16Pv && (long)PScale * 127 * Spec.BlockN < FloatBiasRange;

    public int QkSteps => Spec.HeadDim / Qk.K;
    public int STiles => Spec.BlockN / Qk.N;
    public int PvSteps => Spec.BlockN / Pv.K;
    public int OTiles => Spec.HeadDim / Pv.N;

    public LdmatrixProgram? QProgram => Spec.CopyAtomOf(Operand.Q, CopyDirection.SharedToRegisters) is { } atom
        ? CopyAtom.Get(atom).ProgramFor(OperandStorage.MK, TokenOrder.Natural) : null;

    public LdmatrixProgram? KProgram => Spec.CopyAtomOf(Operand.K, CopyDirection.SharedToRegisters) is { } atom
        ? CopyAtom.Get(atom).ProgramFor(OperandStorage.NK, TokenOrder.Natural) : null;

    /// <summary>V's program, asked for the k order P arrives in.</summary>
    public LdmatrixProgram? VProgram => VAtom is { } atom
        ? CopyAtom.Get(atom).ProgramFor(VStorage, POrder, VBytes) : null;

    /// <summary>π for 8-bit P (four S columns per register), natural for f16 P.</summary>
    public TokenOrder POrder => Pv.AElement.SizeInBytes() == 1 ? TokenOrder.Pi : TokenOrder.Natural;

    public Composition ComposeQ() => FragmentComposition.ComposeA(Qk, QProgram!);
    public Composition ComposeK(Composition q) => FragmentComposition.ComposeB(Qk, KProgram!, OperandStorage.NK, TokenOrder.Natural, q.KOrder);
    public Composition ComposeP() => FragmentComposition.ComposeAFromAccumulators(Qk, Pv);
    public Composition ComposeV(Composition p) => FragmentComposition.ComposeB(Pv, VProgram!, VStorage, VStoredOrder, p.KOrder);
}
