namespace KernelDsl.Attention.Reference;

/// <summary>How P·V is computed after the int8 Q·Kᵀ and the online softmax.</summary>
public enum PvMode
{
    /// <summary>P quantized to u8 as rne(p·255), V s8 per channel: u8·s8 MMAs.</summary>
    U8 = 0,
    /// <summary>P quantized to s8 as rne(p·127) (0..127), V s8 per channel: s8·s8 MMAs.</summary>
    S8 = 1,
    /// <summary>The accuracy mode ("F16PV"): P rounded to the input's 16-bit type, V left unquantized, f32 accumulation.</summary>
    F16 = 2,
    /// <summary>
    /// fp8 P·V (SageAttention2's): P rounded to e4m3 as rne(p·448) with saturation, V e4m3 per channel (absmax / 448),
    /// each key block's P·V in a fresh f32 accumulator folded into O.
    /// </summary>
    E4M3 = 3,
}

/// <summary>The kernel parameters the int8 reference's numbers depend on.</summary>
public sealed record Int8AttentionOptions
{
    /// <summary>Query rows per Q scale (the kernel's BlockM, or rows per warp when Q is scaled per warp).</summary>
    public required int BlockM { get; init; }
    /// <summary>Keys per online-softmax step (the kernel's BlockN).</summary>
    public required int BlockN { get; init; }
    /// <summary>Keys per K scale (the kernel's KScaleKeys, the K quantize kernel's BlockRows); 0 means BlockN. Divides BlockN.</summary>
    public int KScaleKeys { get; init; }
    /// <summary><see cref="KScaleKeys"/> with 0 resolved to BlockN.</summary>
    public int KeysPerKScale => KScaleKeys == 0 ? BlockN : KScaleKeys;
    public PvMode Pv { get; init; } = PvMode.U8;
    /// <summary>The K quantize variant's generated <c>MeanSlices</c>: the float32 channel mean depends on its summation order.</summary>
    public int KMeanSlices { get; init; } = 1;
    /// <summary>The KvStatistics variant's <c>SliceTokens</c> when K's mean comes from it (and KMeanSlices is its <c>MeanLanes</c>); 0: one slice of all keys.</summary>
    public int KMeanSliceTokens { get; init; }
    /// <summary>The KvStatistics variant's <c>MeanSliceGroup</c>: slices are added in groups of that many, then the groups; 0: one group.</summary>
    public int KMeanSliceGroup { get; init; }

    /// <summary>The scale P's codes carry: 255 (u8), 127 (s8), 448 (e4m3, its largest finite value), 1 (f16).</summary>
    public float PScale => Pv switch
    {
        PvMode.U8 => 255f,
        PvMode.S8 => 127f,
        PvMode.E4M3 => E4m3.MaxFinite,
        _ => 1f,
    };

    /// <summary>V's code type in this mode: e4m3 for fp8 P·V, s8 otherwise (the f16 mode reads V unquantized).</summary>
    public Element VCodes => Pv == PvMode.E4M3 ? Element.E4M3 : Element.S8;

    public void Validate()
    {
        Positive(BlockM, nameof(BlockM));
        Positive(BlockN, nameof(BlockN));
        Positive(KMeanSlices, nameof(KMeanSlices));
        if (KMeanSliceTokens < 0)
        {
            throw new ArgumentException($"KMeanSliceTokens ({KMeanSliceTokens}) must be 0 (one slice of all keys) or positive.", nameof(KMeanSliceTokens));
        }
        if (KMeanSliceGroup < 0)
        {
            throw new ArgumentException($"KMeanSliceGroup ({KMeanSliceGroup}) must be 0 (one group of all slices) or positive.", nameof(KMeanSliceGroup));
        }
        if (KScaleKeys < 0 || (KScaleKeys > 0 && BlockN % KScaleKeys != 0))
        {
            throw new ArgumentException($"KScaleKeys ({KScaleKeys}) must be 0 (= BlockN) or divide BlockN ({BlockN}).", nameof(KScaleKeys));
        }
        if (!Enum.IsDefined(Pv))
        {
            throw new ArgumentException($"Pv must be U8, S8, F16 or E4M3, got {Pv}.", nameof(Pv));
        }
        // O_blk = Σ P8·v8 must stay exact in int32 and in the float32 it is converted to.
        if ((long)255 * 127 * BlockN >= 1 << 24)
        {
            throw new ArgumentException($"BlockN ({BlockN}) must keep 255·127·BlockN below 2^24 so float(O_blk) is exact.", nameof(BlockN));
        }
    }

    private static void Positive(int value, string name)
    {
        if (value <= 0)
        {
            throw new ArgumentException($"{name} must be positive, got {value}.", name);
        }
    }
}
