using KernelDsl.Generator.Helpers;

namespace KernelDsl.Generator.Model;

/// <summary>
/// One declared kernel variant: pure values, no Roslyn types, so it caches by value and the
/// validators and emitters can be tested without a compilation.
/// </summary>
public abstract record KernelSpec
{
    public required TypeDeclaration Type { get; init; }
    public required EquatableArray<Sm> Targets { get; init; }
    public required EquatableArray<SmemLayoutSpec> SmemLayouts { get; init; }
    public required EquatableArray<CopyAtomSpec> CopyAtoms { get; init; }
    /// <summary>The main product's MMA (a GEMM's, attention's Q·Kᵀ); null when the declaration names none.</summary>
    public required MmaAtomKind? Mma { get; init; }
    /// <summary>Attention's P·V MMA; null when none is declared.</summary>
    public MmaAtomKind? PvMma { get; init; }

    /// <summary>The lowest SM of the instructions the family writes itself, beside its declared atoms.</summary>
    public virtual int InstructionMinSm => 75;

    /// <summary>The family's name for messages ("Int8Gemm").</summary>
    public abstract string Family { get; }

    /// <summary>The kernel symbol prefix: "kdsl_" plus the declaring type.</summary>
    public string KernelPrefix => "kdsl_" + Type.Symbol;

    public SmemLayoutSpec? LayoutOf(Operand operand)
    {
        foreach (var layout in SmemLayouts)
        {
            if (layout.Operand == operand)
            {
                return layout;
            }
        }
        return null;
    }

    /// <summary>The declared atom for <paramref name="operand"/> moving data the given way, or null.</summary>
    public CopyAtomKind? CopyAtomOf(Operand operand, CopyDirection direction)
    {
        foreach (var atom in CopyAtoms)
        {
            if (atom.Operand == operand && Atoms.CopyAtom.Get(atom.Atom).Direction == direction)
            {
                return atom.Atom;
            }
        }
        return null;
    }
}

/// <summary>An int8 GEMM tile kernel: C[M×N] = A[M×K]·B on m16n8k32.</summary>
public sealed record GemmSpec : KernelSpec
{
    public required int BlockM { get; init; }
    public required int BlockN { get; init; }
    public required int BlockK { get; init; }
    public required int Warps { get; init; }
    /// <summary>0 when the declaration leaves it to the generator.</summary>
    public required int WarpsM { get; init; }
    public required int Stages { get; init; }
    public required GemmLayout Layout { get; init; }
    public required GemmOutput Output { get; init; }

    public override string Family => "Int8Gemm";
}

/// <summary>Quantization of an f16/bf16 [B, H, S, D] tensor into int8 with scales.</summary>
public sealed record QuantizeSpec : KernelSpec
{
    public required Element Input { get; init; }
    public required QuantGranularity Granularity { get; init; }
    public required int BlockRows { get; init; }
    public required int HeadDim { get; init; }
    public required bool SubtractChannelMean { get; init; }
    public required bool Transposed { get; init; }
    public required TokenOrder TransposedOrder { get; init; }
    public required int TransposePad { get; init; }
    public required int Threads { get; init; }
    /// <summary>The codes' type: S8, or E4M3 (per channel, for fp8 P·V).</summary>
    public required Element Output { get; init; }

    /// <summary>e4m3 codes come from <c>cvt.rn.satfinite.e4m3x2.f32</c>: sm_89 (PTX ISA 8.1; 7.8 has it for sm_90 only).</summary>
    public const int E4m3MinSm = 89;

    public override int InstructionMinSm => Output == Element.E4M3 ? E4m3MinSm : base.InstructionMinSm;

    public override string Family => "Quantize";
}

/// <summary>INT8 FlashAttention forward: Q·Kᵀ on int8 MMAs, online softmax, P·V per the P·V MMA atom.</summary>
public sealed record AttentionSpec : KernelSpec
{
    public required int HeadDim { get; init; }
    public required int BlockM { get; init; }
    /// <summary>Query rows per Q scale; 0 means BlockM.</summary>
    public int QScaleRows { get; init; }
    /// <summary>Q's element as the kernel reads it: S8 (quantized beforehand), or F16/BF16 (quantized in the kernel, per row).</summary>
    public Element QInput { get; init; } = Element.S8;
    public required int BlockN { get; init; }
    /// <summary>Keys per K scale; 0 means BlockN.</summary>
    public int KScaleKeys { get; init; }
    public required int Warps { get; init; }
    public required int Stages { get; init; }
    public int MinBlocksPerSm { get; init; } = 1;
    /// <summary>wgmma form: consumer warpgroups alternate their MMA issue through named barriers.</summary>
    public bool Pingpong { get; init; }
    /// <summary>wgmma form: a persistent grid of one block an SM that walks the tiles.</summary>
    public bool Persistent { get; init; }
    public required bool Causal { get; init; }
    public required Element Output { get; init; }
    public required bool Lse { get; init; }
    /// <summary>The user's score modifier (a [ScoreModifier] method of the type or a type around it), or null.</summary>
    public ModifierSpec? Score { get; init; }
    /// <summary>The user's mask (a [MaskModifier] method of the type or a type around it), or null.</summary>
    public ModifierSpec? Mask { get; init; }

    public override string Family => "FlashAttentionForward";
}

/// <summary>The split-KV merge of partial attention outputs by their LSE.</summary>
public sealed record LseMergeSpec : KernelSpec
{
    public required int HeadDim { get; init; }
    public required int Threads { get; init; }

    public override string Family => "LseMerge";
}

public enum CopyDirection { GlobalToShared, SharedToRegisters, RegistersToShared }
