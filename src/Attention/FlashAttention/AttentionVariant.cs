using KernelDsl.Launching;

namespace KernelDsl.Attention.FlashAttention;

/// <summary>How V reaches the P·V tensor cores (docs/V_TRANSPOSE.md).</summary>
public enum VStrategy
{
    /// <summary>Recipe A: ldmatrix.x4.trans + prmt.</summary>
    TransPrmt,
    /// <summary>Recipe B: ldmatrix + prmt + movmatrix.</summary>
    Movmatrix,
    /// <summary>Recipe C: V written transposed, π-ordered, by its quantize kernel.</summary>
    Pretransposed,
    /// <summary>Recipe D (Hopper): V loaded as it comes by TMA and rewritten [channel][key] in π order in the kernel, with ldmatrix.trans + prmt + stmatrix.</summary>
    InKernelTranspose,
}

/// <summary>How quantized V is stored for the attention kernels (<see cref="QuantizedKeysValues.VLayout"/>).</summary>
public enum VLayout
{
    /// <summary>[B][Hkv][S][D], as V comes: read by the TransPrmt, Movmatrix and InKernelTranspose strategies.</summary>
    Natural,
    /// <summary>[B][Hkv][D][S_pad], tokens π-ordered within 16-token groups (Recipe C): read by the Pretransposed strategy.</summary>
    Pretransposed,
    /// <summary>The <see cref="Pretransposed"/> layout of e4m3 codes, one scale per channel (absmax / 448): read by the fp8 P·V kernels.</summary>
    PretransposedE4M3,
}

/// <summary>Precision of the P·V product.</summary>
public enum PvPrecision
{
    /// <summary>P quantized to u8, V int8 per channel, int32 accumulation (the fast mode).</summary>
    U8,
    /// <summary>P and V in the input's 16-bit float type (f16 or bf16) with f32 accumulation (the accuracy mode).</summary>
    Float16,
    /// <summary>
    /// P rounded to fp8 e4m3 at 448·P and V e4m3 with one scale per channel, f32 accumulation (Hopper wgmma; SageAttention2's
    /// choice): e4m3's relative rounding keeps a peaked row's small probabilities, which u8 rounds to 0.
    /// </summary>
    E4M3,
}

/// <summary>
/// One declared attention kernel as the host API selects it: a view of its catalog entry (<see cref="AttentionKernelInfo"/>,
/// generated for every declaration in any assembly). Several tiles may share a mode; <see cref="All"/> says which is the
/// default, and the autotuner times them all.
/// </summary>
internal sealed record AttentionVariant(AttentionKernelInfo Kernel)
{
    /// <summary>Query rows per Q scale and keys per K scale the host API's quantize kernels produce; a kernel must match (or quantize Q itself).</summary>
    public const int QScaleRows = 128, KScaleKeys = 64;

    /// <summary>
    /// The kernels without modifiers that the host API's quantizers feed, the library's first, each assembly's in
    /// declaration order, then those of other assemblies. A mode's default on a device is its first declared tile built for
    /// that device's architecture (sm_90a), else its first declared one (<see cref="AttentionOptions.Tile"/>). Kernels with
    /// modifiers are asked for by name.
    /// </summary>
    public static IReadOnlyList<AttentionVariant> All => View().All;

    /// <summary>Every registered kernel the host API can feed, with modifiers or without.</summary>
    public static IReadOnlyList<AttentionVariant> Catalog => View().Catalog;

    private sealed record CatalogView(int Version, AttentionVariant[] Catalog, AttentionVariant[] All);

    private static CatalogView? _view;

    /// <summary>
    /// The catalog as the host API sees it, rebuilt only when an assembly registered more kernels: every Forward selects
    /// from it before its first launch, so the work would otherwise sit between the caller's timing events and the GPU.
    /// </summary>
    private static CatalogView View()
    {
        var version = AttentionCatalog.Version;
        if (Volatile.Read(ref _view) is { } view && view.Version == version)
        {
            return view;
        }
        var catalog = AttentionCatalog.All
            .Where(k => (k.QuantizesQ || k.QScaleRows == QScaleRows) && k.KScaleKeys == KScaleKeys)
            .OrderBy(k => k.Name.StartsWith(LibraryNamespace, StringComparison.Ordinal) ? 0 : 1)
            .Select(k => new AttentionVariant(k))
            .ToArray();
        var fresh = new CatalogView(version, catalog, catalog.Where(v => !v.HasModifiers).ToArray());
        Volatile.Write(ref _view, fresh);
        return fresh;
    }

    /// <summary>The namespace of the library's own attention kernels, with its trailing dot: "KernelDsl.Attention.FlashAttention.".</summary>
    internal static readonly string LibraryNamespace = typeof(AttentionVariant).Namespace! + ".";

    public Element Input => Kernel.Input;
    public int HeadDim => Kernel.HeadDim;
    public bool Causal => Kernel.Causal;
    public PvPrecision Pv => Kernel.PElement switch
    {
        Element.U8 => PvPrecision.U8,
        Element.E4M3 => PvPrecision.E4M3,
        _ => PvPrecision.Float16,
    };
    /// <summary>The layout of quantized V this kernel reads; null for the 16-bit P·V mode, which reads V as it comes.</summary>
    public VLayout? VLayout => Pv switch
    {
        PvPrecision.Float16 => null,
        PvPrecision.E4M3 => FlashAttention.VLayout.PretransposedE4M3,
        _ => V == VStrategy.Pretransposed ? FlashAttention.VLayout.Pretransposed : FlashAttention.VLayout.Natural,
    };
    public VStrategy V { get; } = Enum.Parse<VStrategy>(Kernel.VStrategy);
    public string Tile => Kernel.Tile;
    public KernelModuleDefinition Module => Kernel.Module;
    /// <summary>The kernel takes Q as it comes and quantizes it per row: no Q quantize pass runs for it.</summary>
    public bool QuantizesQ => Kernel.QuantizesQ;
    public bool HasModifiers => Kernel.ScoreModifier is not null || Kernel.MaskModifier is not null;

    /// <summary>Whether a device of this compute capability (major·10 + minor) can run the variant (the wgmma form needs exactly sm_90).</summary>
    public bool RunsOn(int computeCapability) => Module.RunsOn(computeCapability);

    public void Launch(AttentionKernelArguments arguments) => Kernel.Launch(arguments);
}
