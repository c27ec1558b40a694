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
        : this(qCount, kCount, vCount, "Attention inputs hold")
    {
    }

    /// <summary>A context-parallel rank's inputs, reported on every rank: <paramref name="rank"/> is the one that holds them.</summary>
    internal NonFiniteInputException(long qCount, long kCount, long vCount, int rank, int reportingRank)
        : this(qCount, kCount, vCount, string.Create(CultureInfo.InvariantCulture,
            $"Rank {rank}'s inputs (seen on rank {reportingRank}) hold"))
    {
        Rank = rank;
    }

    private NonFiniteInputException(long qCount, long kCount, long vCount, string subject)
        : base(Describe(subject, qCount, kCount, vCount), qCount > 0 ? "q" : kCount > 0 ? "k" : "v")
    {
        (QCount, KCount, VCount) = (qCount, kCount, vCount);
    }

    /// <summary>The context-parallel rank whose inputs hold them; null for a single-GPU call.</summary>
    public int? Rank { get; }

    /// <summary>NaN and ±Inf elements in q.</summary>
    public long QCount { get; }

    /// <summary>NaN and ±Inf elements in k.</summary>
    public long KCount { get; }

    /// <summary>NaN and ±Inf elements in v.</summary>
    public long VCount { get; }

    private static string Describe(string subject, long q, long k, long v) => string.Create(CultureInfo.InvariantCulture,
        $"{subject} NaN or ±Inf elements: q {q}, k {k}, v {v}. Int8 quantization cannot carry them, so what this call wrote (O and the LSE, or quantized K and V) is not meaningful. " +
        $"Set AttentionOptions.NonFinite = Ignore to skip this check (and its stream synchronization) and get the quantizers' treatment instead.");
}
