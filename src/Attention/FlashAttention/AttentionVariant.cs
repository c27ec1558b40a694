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
}

/// <summary>Precision of the P·V product.</summary>
public enum PvPrecision
{
    /// <summary>P quantized to u8, V int8 per channel, int32 accumulation (the fast mode).</summary>
    U8,
    /// <summary>P and V in f16 with f32 accumulation (the accuracy mode).</summary>
    F16,
}

/// <summary>The arguments of one attention launch after quantization.</summary>
internal readonly record struct AttentionLaunch(
    CudaStream Stream, DeviceBuffer<sbyte> Q, DeviceBuffer<sbyte> K, DeviceBuffer<sbyte>? V8, DeviceBuffer<Half>? V16,
    DeviceBuffer<float> QScale, DeviceBuffer<float> KScale, DeviceBuffer<float>? VScale, DeviceBuffer<float> KMean,
    DeviceBuffer<Half> O, DeviceBuffer<float>? Lse, int Batch, int HeadsQ, int HeadsKv, int SeqQ, int SeqK,
    long VStrideB, long VStrideH, long VLd, long OStrideB, long OStrideH, long OStrideS);

/// <summary>One declared attention variant, as the host API selects it: its key and its generated launcher.</summary>
internal sealed record AttentionVariant(int HeadDim, bool Causal, PvPrecision Pv, VStrategy V, KernelModuleDefinition Module, Action<AttentionLaunch> Launch)
{
    public static readonly IReadOnlyList<AttentionVariant> All =
    [
        Int8(128, false, VStrategy.TransPrmt, Int8AttentionD128TransPrmt.Module, Int8AttentionD128TransPrmt.Launch),
        Int8(128, false, VStrategy.Movmatrix, Int8AttentionD128Movmatrix.Module, Int8AttentionD128Movmatrix.Launch),
        Int8(128, false, VStrategy.Pretransposed, Int8AttentionD128Pretransposed.Module, Int8AttentionD128Pretransposed.Launch),
        F16(128, false, Int8AttentionD128F16PV.Module, Int8AttentionD128F16PV.Launch),
        Int8(128, true, VStrategy.TransPrmt, Int8AttentionD128CausalTransPrmt.Module, Int8AttentionD128CausalTransPrmt.Launch),
        Int8(128, true, VStrategy.Movmatrix, Int8AttentionD128CausalMovmatrix.Module, Int8AttentionD128CausalMovmatrix.Launch),
        Int8(128, true, VStrategy.Pretransposed, Int8AttentionD128CausalPretransposed.Module, Int8AttentionD128CausalPretransposed.Launch),
        F16(128, true, Int8AttentionD128CausalF16PV.Module, Int8AttentionD128CausalF16PV.Launch),
        Int8(64, false, VStrategy.TransPrmt, Int8AttentionD64TransPrmt.Module, Int8AttentionD64TransPrmt.Launch),
        Int8(64, true, VStrategy.TransPrmt, Int8AttentionD64CausalTransPrmt.Module, Int8AttentionD64CausalTransPrmt.Launch),
        F16(64, false, Int8AttentionD64F16PV.Module, Int8AttentionD64F16PV.Launch),
        F16(64, true, Int8AttentionD64CausalF16PV.Module, Int8AttentionD64CausalF16PV.Launch),
    ];

    /// <summary>Query rows per Q scale and keys per K scale of every declared variant; the quantize kernels must match.</summary>
    public const int BlockM = 128, BlockN = 64;

    private static AttentionVariant Int8(int d, bool causal, VStrategy v, KernelModuleDefinition module, Int8Launcher launch) =>
        new(d, causal, PvPrecision.U8, v, module, a => launch(a.Stream, a.Q, a.K, a.V8!, a.QScale, a.KScale, a.VScale!, a.KMean, a.O, a.Lse,
            a.Batch, a.HeadsQ, a.HeadsKv, a.SeqQ, a.SeqK, a.VStrideB, a.VStrideH, a.VLd, a.OStrideB, a.OStrideH, a.OStrideS));

    // The f16 mode reads V as it comes, through ldmatrix.trans (right for 16-bit V); it is listed under TransPrmt.
    private static AttentionVariant F16(int d, bool causal, KernelModuleDefinition module, F16Launcher launch) =>
        new(d, causal, PvPrecision.F16, VStrategy.TransPrmt, module, a => launch(a.Stream, a.Q, a.K, a.V16!, a.QScale, a.KScale, a.KMean, a.O, a.Lse,
            a.Batch, a.HeadsQ, a.HeadsKv, a.SeqQ, a.SeqK, a.VStrideB, a.VStrideH, a.VLd, a.OStrideB, a.OStrideH, a.OStrideS));

    /// <summary>The generated Launch of an int8 P·V variant.</summary>
    internal delegate void Int8Launcher(CudaStream stream, DeviceBuffer<sbyte> q, DeviceBuffer<sbyte> k, DeviceBuffer<sbyte> v,
        DeviceBuffer<float> qScale, DeviceBuffer<float> kScale, DeviceBuffer<float> vScale, DeviceBuffer<float>? kMean, DeviceBuffer<Half> o,
        DeviceBuffer<float>? lse, int batch, int headsQ, int headsKv, int seqQ, int seqK, long vStrideB, long vStrideH, long vLd,
        long oStrideB, long oStrideH, long oStrideS);

    /// <summary>The generated Launch of an f16 P·V variant.</summary>
    internal delegate void F16Launcher(CudaStream stream, DeviceBuffer<sbyte> q, DeviceBuffer<sbyte> k, DeviceBuffer<Half> v,
        DeviceBuffer<float> qScale, DeviceBuffer<float> kScale, DeviceBuffer<float>? kMean, DeviceBuffer<Half> o,
        DeviceBuffer<float>? lse, int batch, int headsQ, int headsKv, int seqQ, int seqK, long vStrideB, long vStrideH, long vLd,
        long oStrideB, long oStrideH, long oStrideS);
}
