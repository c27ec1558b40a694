namespace KernelDsl;

/// <summary>
/// Declares the statistics pass over K and V together, f16/bf16 <c>[B, H, S, D]</c> each (any strides but the last): K's
/// channel mean (K smoothing) and V's per-channel scale, both over all tokens, which every K and V code depends on. Each
/// block reads one slice of <see cref="SliceTokens"/> tokens of one (batch, head) of K and of V and writes its partial sums
/// and maxima; a second kernel adds the slices in slice order, so the mean is deterministic and the CPU reference repeats it
/// bit for bit. The codes then come from the Quantize variants' <c>LaunchCodes</c>.
/// </summary>
[AttributeUsage(AttributeTargets.Class | AttributeTargets.Struct, Inherited = false)]
public sealed class KvStatisticsAttribute : Attribute
{
    /// <summary>Element of K and V: <see cref="Element.F16"/> or <see cref="Element.BF16"/>.</summary>
    public Element Input { get; set; } = Element.F16;
    /// <summary>Channels per head.</summary>
    public int HeadDim { get; set; } = 128;
    /// <summary>Tokens per block (one slice of one (batch, head)); a multiple of 16.</summary>
    public int SliceTokens { get; set; } = 256;
    /// <summary>
    /// The V codes the scales are for: <see cref="Element.S8"/> (scale absmax / 127) or <see cref="Element.E4M3"/>
    /// (absmax / 448, fp8 P·V's V).
    /// </summary>
    public Element VOutput { get; set; } = Element.S8;
    /// <summary>Threads per block.</summary>
    public int Threads { get; set; } = 256;
    /// <summary>Architectures the variant must compile for.</summary>
    public Sm[] Targets { get; set; } = [Sm.Sm80, Sm.Sm90];
}

/// <summary>
/// Declares the codes pass over K and V together, after a <see cref="KvStatisticsAttribute"/> pass: K smoothed (its
/// channel mean subtracted) into int8 with one scale per <see cref="KScaleKeys"/> tokens, and V into int8 or e4m3 with
/// the per-channel scales the statistics pass wrote, natural [B, H, S, D] or transposed [B, H, D, S_pad] in
/// <see cref="TransposedOrder"/>. One launch; each block reads one tile of K and of V once.
/// </summary>
[AttributeUsage(AttributeTargets.Class | AttributeTargets.Struct, Inherited = false)]
public sealed class KvCodesAttribute : Attribute
{
    /// <summary>Element of K and V: <see cref="Element.F16"/> or <see cref="Element.BF16"/>.</summary>
    public Element Input { get; set; } = Element.F16;
    /// <summary>Channels per head.</summary>
    public int HeadDim { get; set; } = 128;
    /// <summary>Tokens per K scale, and per block.</summary>
    public int KScaleKeys { get; set; } = 64;
    /// <summary>V's codes: <see cref="Element.S8"/> or <see cref="Element.E4M3"/> (sm_89 and later: set <see cref="Targets"/>).</summary>
    public Element VOutput { get; set; } = Element.S8;
    /// <summary>Write V [B, H, D, S_pad] (tokens contiguous, padded with zero codes to <see cref="TransposePad"/>) instead of [B, H, S, D].</summary>
    public bool VTransposed { get; set; }
    /// <summary>Token order of a transposed V.</summary>
    public TokenOrder TransposedOrder { get; set; } = TokenOrder.Pi;
    /// <summary>Token padding of a transposed V; a multiple of <see cref="KScaleKeys"/>.</summary>
    public int TransposePad { get; set; } = 64;
    /// <summary>Threads per block.</summary>
    public int Threads { get; set; } = 256;
    /// <summary>Architectures the variant must compile for.</summary>
    public Sm[] Targets { get; set; } = [Sm.Sm80, Sm.Sm90];
}

/// <summary>
/// Declares K and V quantized in one launch: what a <see cref="KvStatisticsAttribute"/> pass and a
/// <see cref="KvCodesAttribute"/> pass compute, DRAM serving K and V once where the codes' second read hits L2 (measured
/// slower than the two passes on an H100: docs/PERF_NOTES.md §15). Per (batch, head), statistics blocks (one
/// per slice of <see cref="SliceTokens"/> tokens) combine their partials as they finish and raise the head's flag; codes
/// blocks (one per tile of <see cref="KScaleKeys"/> tokens), queued one device-full of statistics blocks later, wait for
/// it and read their tile again. A codes block only waits for blocks that started before it, so any sequence length runs.
/// The mean's order equals a KvStatistics variant's with the same <see cref="SliceTokens"/> and <see cref="Threads"/>, so
/// the CPU reference and the two passes give the same codes.
/// </summary>
[AttributeUsage(AttributeTargets.Class | AttributeTargets.Struct, Inherited = false)]
public sealed class KvSinglePassAttribute : Attribute
{
    /// <summary>Element of K and V: <see cref="Element.F16"/> or <see cref="Element.BF16"/>.</summary>
    public Element Input { get; set; } = Element.F16;
    /// <summary>Channels per head: 64 or 128.</summary>
    public int HeadDim { get; set; } = 128;
    /// <summary>Tokens per statistics block (one slice of one (batch, head)); a multiple of 16.</summary>
    public int SliceTokens { get; set; } = 256;
    /// <summary>Tokens per K scale.</summary>
    public int KScaleKeys { get; set; } = 64;
    /// <summary>V's codes: <see cref="Element.S8"/> or <see cref="Element.E4M3"/> (sm_89 and later: set <see cref="Targets"/>).</summary>
    public Element VOutput { get; set; } = Element.S8;
    /// <summary>Write V [B, H, D, S_pad] (tokens contiguous, padded with zero codes to <see cref="TransposePad"/>) instead of [B, H, S, D].</summary>
    public bool VTransposed { get; set; }
    /// <summary>Token order of a transposed V.</summary>
    public TokenOrder TransposedOrder { get; set; } = TokenOrder.Pi;
    /// <summary>Token padding of a transposed V; a multiple of <see cref="KScaleKeys"/>.</summary>
    public int TransposePad { get; set; } = 64;
    /// <summary>Threads per block: 256.</summary>
    public int Threads { get; set; } = 256;
    /// <summary>Architectures the variant must compile for (sm_80 and later).</summary>
    public Sm[] Targets { get; set; } = [Sm.Sm80, Sm.Sm90];
}
