namespace KernelDsl.Generator.Model;

/// <summary>The statistics pass over K and V: K's channel mean and V's channel scale, token slices over many blocks.</summary>
public sealed record KvStatisticsSpec : KernelSpec
{
    public required Element Input { get; init; }
    public required int HeadDim { get; init; }
    public required int SliceTokens { get; init; }
    /// <summary>The V codes the scales are for: S8 (absmax / 127) or E4M3 (absmax / 448).</summary>
    public required Element VOutput { get; init; }
    public required int Threads { get; init; }

    public override string Family => "KvStatistics";
}

/// <summary>The codes pass over K and V: K smoothed per KScaleKeys tokens, V per channel (natural or transposed), one launch.</summary>
public sealed record KvCodesSpec : KernelSpec
{
    public required Element Input { get; init; }
    public required int HeadDim { get; init; }
    public required int KScaleKeys { get; init; }
    public required Element VOutput { get; init; }
    public required bool VTransposed { get; init; }
    public required TokenOrder TransposedOrder { get; init; }
    public required int TransposePad { get; init; }
    public required int Threads { get; init; }

    public override int InstructionMinSm => VOutput == Element.E4M3 ? QuantizeSpec.E4m3MinSm : base.InstructionMinSm;

    public override string Family => "KvCodes";
}

/// <summary>
/// K and V quantized in one launch: the statistics of a <see cref="KvStatisticsSpec"/> and the codes of a
/// <see cref="KvCodesSpec"/>, the codes blocks trailing their head's statistics blocks so that L2 serves their reads.
/// </summary>
public sealed record KvSinglePassSpec : KernelSpec
{
    public required Element Input { get; init; }
    public required int HeadDim { get; init; }
    public required int SliceTokens { get; init; }
    public required int KScaleKeys { get; init; }
    public required Element VOutput { get; init; }
    public required bool VTransposed { get; init; }
    public required TokenOrder TransposedOrder { get; init; }
    public required int TransposePad { get; init; }
    public required int Threads { get; init; }

    public override int InstructionMinSm => VOutput == Element.E4M3 ? QuantizeSpec.E4m3MinSm : 80;

    public override string Family => "KvSinglePass";

    /// <summary>The statistics this pass computes, as the two-pass family declares them (same slices, lanes and order).</summary>
    public KvStatisticsSpec Statistics => new()
    {
        Type = Type, Targets = Targets, SmemLayouts = Helpers.EquatableArray<SmemLayoutSpec>.Empty, CopyAtoms = Helpers.EquatableArray<CopyAtomSpec>.Empty, Mma = null,
        Input = Input, HeadDim = HeadDim, SliceTokens = SliceTokens, VOutput = VOutput, Threads = Threads,
    };

    /// <summary>The codes this pass writes, as the two-pass family declares them (same tiles and layout).</summary>
    public KvCodesSpec Codes => new()
    {
        Type = Type, Targets = Targets, SmemLayouts = Helpers.EquatableArray<SmemLayoutSpec>.Empty, CopyAtoms = Helpers.EquatableArray<CopyAtomSpec>.Empty, Mma = null,
        Input = Input, HeadDim = HeadDim, KScaleKeys = KScaleKeys, VOutput = VOutput, VTransposed = VTransposed,
        TransposedOrder = TransposedOrder, TransposePad = TransposePad, Threads = Threads,
    };
}
