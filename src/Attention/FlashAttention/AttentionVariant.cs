using KernelDsl.Launching;

namespace KernelDsl.Attention.FlashAttention;

/// <summary>How V reaches the P·V tensor cores (V_TRANSPOSE.md).</summary>
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

/// <summary>Precision of the P·V product.</summary>
public enum PvPrecision
{
    /// <summary>P quantized to u8, V int8 per channel, int32 accumulation (the fast mode).</summary>
    U8,
    /// <summary>P and V in the input's 16-bit float type (f16 or bf16) with f32 accumulation (the accuracy mode).</summary>
    Float16,
}

/// <summary>The arguments of one attention launch after quantization; <typeparamref name="T"/> is Half, or ushort for bf16 bits.</summary>
internal readonly record struct AttentionLaunch<T>(
    CudaStream Stream, DeviceBuffer<sbyte> Q, DeviceBuffer<sbyte> K, DeviceBuffer<sbyte>? V8, DeviceBuffer<T>? VFloat,
    DeviceBuffer<float> QScale, DeviceBuffer<float> KScale, DeviceBuffer<float>? VScale, DeviceBuffer<float> KMean,
    DeviceBuffer<T> O, DeviceBuffer<float>? Lse, int Batch, int HeadsQ, int HeadsKv, int SeqQ, int SeqK,
    long VStrideB, long VStrideH, long VLd, long OStrideB, long OStrideH, long OStrideS) where T : unmanaged;

/// <summary>The generated Launch of an int8 P·V variant.</summary>
internal delegate void Int8Launcher<T>(CudaStream stream, DeviceBuffer<sbyte> q, DeviceBuffer<sbyte> k, DeviceBuffer<sbyte> v,
    DeviceBuffer<float> qScale, DeviceBuffer<float> kScale, DeviceBuffer<float> vScale, DeviceBuffer<float>? kMean, DeviceBuffer<T> o,
    DeviceBuffer<float>? lse, int batch, int headsQ, int headsKv, int seqQ, int seqK, long vStrideB, long vStrideH, long vLd,
    long oStrideB, long oStrideH, long oStrideS) where T : unmanaged;

/// <summary>The generated Launch of a 16-bit float P·V variant.</summary>
internal delegate void FloatLauncher<T>(CudaStream stream, DeviceBuffer<sbyte> q, DeviceBuffer<sbyte> k, DeviceBuffer<T> v,
    DeviceBuffer<float> qScale, DeviceBuffer<float> kScale, DeviceBuffer<float>? kMean, DeviceBuffer<T> o,
    DeviceBuffer<float>? lse, int batch, int headsQ, int headsKv, int seqQ, int seqK, long vStrideB, long vStrideH, long vLd,
    long oStrideB, long oStrideH, long oStrideS) where T : unmanaged;

/// <summary>
/// One declared attention variant, as the host API selects it: its key, its tile configuration and its generated
/// launcher. Several tiles may share a key; the first listed is the default and the autotuner times them all.
/// </summary>
internal sealed record AttentionVariant(Element Input, int HeadDim, bool Causal, PvPrecision Pv, VStrategy V, string Tile, KernelModuleDefinition Module, Delegate Launcher)
{
    /// <summary>Query rows per Q scale and keys per K scale of every declared variant; the quantize kernels must match.</summary>
    public const int QScaleRows = 128, KScaleKeys = 64;

    public static readonly IReadOnlyList<AttentionVariant> All =
    [
        Int8<Half>(128, false, VStrategy.TransPrmt, Int8AttentionD128TransPrmt.Tile, Int8AttentionD128TransPrmt.Module, Int8AttentionD128TransPrmt.Launch),
        Int8<Half>(128, false, VStrategy.Movmatrix, Int8AttentionD128Movmatrix.Tile, Int8AttentionD128Movmatrix.Module, Int8AttentionD128Movmatrix.Launch),
        Int8<Half>(128, false, VStrategy.Pretransposed, Int8AttentionD128Pretransposed.Tile, Int8AttentionD128Pretransposed.Module, Int8AttentionD128Pretransposed.Launch),
        Float<Half>(128, false, Int8AttentionD128F16PV.Tile, Int8AttentionD128F16PV.Module, Int8AttentionD128F16PV.Launch),
        Int8<Half>(128, true, VStrategy.TransPrmt, Int8AttentionD128CausalTransPrmt.Tile, Int8AttentionD128CausalTransPrmt.Module, Int8AttentionD128CausalTransPrmt.Launch),
        Int8<Half>(128, true, VStrategy.Movmatrix, Int8AttentionD128CausalMovmatrix.Tile, Int8AttentionD128CausalMovmatrix.Module, Int8AttentionD128CausalMovmatrix.Launch),
        Int8<Half>(128, true, VStrategy.Pretransposed, Int8AttentionD128CausalPretransposed.Tile, Int8AttentionD128CausalPretransposed.Module, Int8AttentionD128CausalPretransposed.Launch),
        Float<Half>(128, true, Int8AttentionD128CausalF16PV.Tile, Int8AttentionD128CausalF16PV.Module, Int8AttentionD128CausalF16PV.Launch),
        Int8<Half>(64, false, VStrategy.TransPrmt, Int8AttentionD64TransPrmt.Tile, Int8AttentionD64TransPrmt.Module, Int8AttentionD64TransPrmt.Launch),
        Int8<Half>(64, true, VStrategy.TransPrmt, Int8AttentionD64CausalTransPrmt.Tile, Int8AttentionD64CausalTransPrmt.Module, Int8AttentionD64CausalTransPrmt.Launch),
        Float<Half>(64, false, Int8AttentionD64F16PV.Tile, Int8AttentionD64F16PV.Module, Int8AttentionD64F16PV.Launch),
        Float<Half>(64, true, Int8AttentionD64CausalF16PV.Tile, Int8AttentionD64CausalF16PV.Module, Int8AttentionD64CausalF16PV.Launch),
        Int8<ushort>(128, false, VStrategy.TransPrmt, Int8AttentionD128TransPrmtBf16.Tile, Int8AttentionD128TransPrmtBf16.Module, Int8AttentionD128TransPrmtBf16.Launch),
        Int8<ushort>(128, true, VStrategy.TransPrmt, Int8AttentionD128CausalTransPrmtBf16.Tile, Int8AttentionD128CausalTransPrmtBf16.Module, Int8AttentionD128CausalTransPrmtBf16.Launch),
        Float<ushort>(128, false, Int8AttentionD128Bf16PV.Tile, Int8AttentionD128Bf16PV.Module, Int8AttentionD128Bf16PV.Launch),
        Float<ushort>(128, true, Int8AttentionD128CausalBf16PV.Tile, Int8AttentionD128CausalBf16PV.Module, Int8AttentionD128CausalBf16PV.Launch),
        Int8<ushort>(64, false, VStrategy.TransPrmt, Int8AttentionD64TransPrmtBf16.Tile, Int8AttentionD64TransPrmtBf16.Module, Int8AttentionD64TransPrmtBf16.Launch),
        Int8<ushort>(64, true, VStrategy.TransPrmt, Int8AttentionD64CausalTransPrmtBf16.Tile, Int8AttentionD64CausalTransPrmtBf16.Module, Int8AttentionD64CausalTransPrmtBf16.Launch),
        Float<ushort>(64, false, Int8AttentionD64Bf16PV.Tile, Int8AttentionD64Bf16PV.Module, Int8AttentionD64Bf16PV.Launch),
        Float<ushort>(64, true, Int8AttentionD64CausalBf16PV.Tile, Int8AttentionD64CausalBf16PV.Module, Int8AttentionD64CausalBf16PV.Launch),
        // Further tile configurations of the same keys: the autotuner's other candidates.
        Int8<Half>(128, false, VStrategy.TransPrmt, Int8AttentionD128TransPrmtStages3.Tile, Int8AttentionD128TransPrmtStages3.Module, Int8AttentionD128TransPrmtStages3.Launch),
        Int8<Half>(128, false, VStrategy.Pretransposed, Int8AttentionD128PretransposedStages3.Tile, Int8AttentionD128PretransposedStages3.Module, Int8AttentionD128PretransposedStages3.Launch),
        Int8<Half>(128, true, VStrategy.TransPrmt, Int8AttentionD128CausalTransPrmtStages3.Tile, Int8AttentionD128CausalTransPrmtStages3.Module, Int8AttentionD128CausalTransPrmtStages3.Launch),
        Int8<Half>(128, true, VStrategy.Pretransposed, Int8AttentionD128CausalPretransposedStages3.Tile, Int8AttentionD128CausalPretransposedStages3.Module, Int8AttentionD128CausalPretransposedStages3.Launch),
        Int8<Half>(64, false, VStrategy.TransPrmt, Int8AttentionD64TransPrmtStages3.Tile, Int8AttentionD64TransPrmtStages3.Module, Int8AttentionD64TransPrmtStages3.Launch),
        Int8<Half>(64, true, VStrategy.TransPrmt, Int8AttentionD64CausalTransPrmtStages3.Tile, Int8AttentionD64CausalTransPrmtStages3.Module, Int8AttentionD64CausalTransPrmtStages3.Launch),
        Int8<Half>(128, false, VStrategy.Pretransposed, Int8AttentionD128PretransposedBlockM64.Tile, Int8AttentionD128PretransposedBlockM64.Module, Int8AttentionD128PretransposedBlockM64.Launch),
        Int8<Half>(128, true, VStrategy.Pretransposed, Int8AttentionD128CausalPretransposedBlockM64.Tile, Int8AttentionD128CausalPretransposedBlockM64.Module, Int8AttentionD128CausalPretransposedBlockM64.Launch),
        Int8<Half>(128, false, VStrategy.TransPrmt, Int8AttentionD128TransPrmtBlockM64.Tile, Int8AttentionD128TransPrmtBlockM64.Module, Int8AttentionD128TransPrmtBlockM64.Launch),
        Int8<Half>(128, true, VStrategy.TransPrmt, Int8AttentionD128CausalTransPrmtBlockM64.Tile, Int8AttentionD128CausalTransPrmtBlockM64.Module, Int8AttentionD128CausalTransPrmtBlockM64.Launch),
        // Hopper (sm_90a only): the warp-specialized wgmma form, Recipe C V. Offered where the device runs it.
        Int8<Half>(128, false, VStrategy.Pretransposed, Int8AttentionD128Wgmma.Tile, Int8AttentionD128Wgmma.Module, Int8AttentionD128Wgmma.Launch),
        Int8<Half>(128, true, VStrategy.Pretransposed, Int8AttentionD128CausalWgmma.Tile, Int8AttentionD128CausalWgmma.Module, Int8AttentionD128CausalWgmma.Launch),
        Int8<Half>(64, false, VStrategy.Pretransposed, Int8AttentionD64Wgmma.Tile, Int8AttentionD64Wgmma.Module, Int8AttentionD64Wgmma.Launch),
        Int8<Half>(64, true, VStrategy.Pretransposed, Int8AttentionD64CausalWgmma.Tile, Int8AttentionD64CausalWgmma.Module, Int8AttentionD64CausalWgmma.Launch),
        Int8<Half>(128, false, VStrategy.Pretransposed, Int8AttentionD128WgmmaPingpong.Tile, Int8AttentionD128WgmmaPingpong.Module, Int8AttentionD128WgmmaPingpong.Launch),
        Int8<Half>(128, true, VStrategy.Pretransposed, Int8AttentionD128CausalWgmmaPingpong.Tile, Int8AttentionD128CausalWgmmaPingpong.Module, Int8AttentionD128CausalWgmmaPingpong.Launch),
        Int8<Half>(128, false, VStrategy.Pretransposed, Int8AttentionD128WgmmaStages3.Tile, Int8AttentionD128WgmmaStages3.Module, Int8AttentionD128WgmmaStages3.Launch),
        Int8<Half>(128, true, VStrategy.Pretransposed, Int8AttentionD128CausalWgmmaStages3.Tile, Int8AttentionD128CausalWgmmaStages3.Module, Int8AttentionD128CausalWgmmaStages3.Launch),
        Int8<Half>(128, false, VStrategy.InKernelTranspose, Int8AttentionD128WgmmaRecipeD.Tile, Int8AttentionD128WgmmaRecipeD.Module, Int8AttentionD128WgmmaRecipeD.Launch),
        Int8<Half>(128, true, VStrategy.InKernelTranspose, Int8AttentionD128CausalWgmmaRecipeD.Tile, Int8AttentionD128CausalWgmmaRecipeD.Module, Int8AttentionD128CausalWgmmaRecipeD.Launch),
    ];

    /// <summary>Whether a device of this compute capability (major·10 + minor) can run the variant (the wgmma form needs exactly sm_90).</summary>
    public bool RunsOn(int computeCapability) => Module.RunsOn(computeCapability);

    public void Launch<T>(AttentionLaunch<T> a) where T : unmanaged
    {
        switch (Launcher)
        {
            case Int8Launcher<T> int8:
                int8(a.Stream, a.Q, a.K, a.V8!, a.QScale, a.KScale, a.VScale!, a.KMean, a.O, a.Lse,
                    a.Batch, a.HeadsQ, a.HeadsKv, a.SeqQ, a.SeqK, a.VStrideB, a.VStrideH, a.VLd, a.OStrideB, a.OStrideH, a.OStrideS);
                break;
            case FloatLauncher<T> half:
                half(a.Stream, a.Q, a.K, a.VFloat!, a.QScale, a.KScale, a.KMean, a.O, a.Lse,
                    a.Batch, a.HeadsQ, a.HeadsKv, a.SeqQ, a.SeqK, a.VStrideB, a.VStrideH, a.VLd, a.OStrideB, a.OStrideH, a.OStrideS);
                break;
            default:
                throw new InvalidOperationException($"Variant {Module.Name} takes {Input} tensors, not {typeof(T).Name}.");
        }
    }

    private static Element ElementOf<T>() => typeof(T) == typeof(Half) ? Element.F16 : Element.BF16;

    private static AttentionVariant Int8<T>(int d, bool causal, VStrategy v, string tile, KernelModuleDefinition module, Int8Launcher<T> launch) where T : unmanaged =>
        new(ElementOf<T>(), d, causal, PvPrecision.U8, v, tile, module, launch);

    // The float mode reads V as it comes, through ldmatrix.trans (right for 16-bit V); it is listed under TransPrmt.
    private static AttentionVariant Float<T>(int d, bool causal, string tile, KernelModuleDefinition module, FloatLauncher<T> launch) where T : unmanaged =>
        new(ElementOf<T>(), d, causal, PvPrecision.Float16, VStrategy.TransPrmt, tile, module, launch);
}
