using System.Globalization;

namespace KernelDsl.Attention.FlashAttention;

/// <summary>
/// q, k or v held a NaN or ±Inf (<see cref="NonFiniteInputs.Throw"/>). Int8 codes cannot hold them, so what the call
/// wrote (O and the LSE, or the codes of <see cref="Int8Attention.QuantizeKeysValues(CudaStream, TensorView{Half}, TensorView{Half}, AttentionOptions)"/>)
/// is not meaningful. <see cref="ArgumentException.ParamName"/> is the first tensor, in the order
/// q, k, v, that had any; the counts say how many elements each had.
/// </summary>
public sealed class NonFiniteInputException : ArgumentException
{
    public NonFiniteInputException(long qCount, long kCount, long vCount)
        : base(Describe(qCount, kCount, vCount), qCount > 0 ? "q" : kCount > 0 ? "k" : "v")
    {
        (QCount, KCount, VCount) = (qCount, kCount, vCount);
    }

    /// <summary>NaN and ±Inf elements in q.</summary>
    public long QCount { get; }

    /// <summary>NaN and ±Inf elements in k.</summary>
    public long KCount { get; }

    /// <summary>NaN and ±Inf elements in v.</summary>
    public long VCount { get; }

    private static string Describe(long q, long k, long v) => string.Create(CultureInfo.InvariantCulture,
        $"Attention inputs hold NaN or ±Inf elements: q {q}, k {k}, v {v}. Int8 quantization cannot carry them, so what this call wrote (O and the LSE, or quantized K and V) is not meaningful. " +
        $"Set AttentionOptions.NonFinite = Ignore to skip this check (and its stream synchronization) and get the quantizers' treatment instead.");
}
