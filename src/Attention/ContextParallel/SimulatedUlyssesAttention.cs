using KernelDsl.Attention.FlashAttention;

namespace KernelDsl.Attention.ContextParallel;

/// <summary>
/// Ulysses (<see cref="UlyssesLayout"/>) with every rank simulated on one GPU, device copies standing in for NCCL's
/// all-to-alls, by the same engine as <see cref="ContextParallelAttention.Ulysses"/>: each rank packs its tokens of
/// every peer's heads, the pieces move, each rank attends its heads over the whole sequence in one call, and O and the
/// LSE move back. Scratch is kept between calls; dispose to free it.
/// </summary>
public sealed class SimulatedUlyssesAttention(CudaDevice device) : IDisposable
{
    private readonly SimulatedRanks _ranks = new(device);

    /// <summary>
    /// Attention of the whole sequence in <paramref name="q"/>, <paramref name="k"/>, <paramref name="v"/> ([B, H, S, D]
    /// f16, each dense BHSD or BSHD; GQA), computed by <paramref name="layout"/>'s ranks: <paramref name="o"/> receives O
    /// as dense BHSD [B][Hq][S][D] and <paramref name="lse"/> the natural-log LSE [B][Hq][S]. Runs after the work queued
    /// on <paramref name="stream"/>, and returns when O and the LSE are written. <paramref name="options"/> are
    /// <see cref="Int8Attention"/>'s, any mode.
    /// </summary>
    /// <exception cref="NonFiniteInputException">q, k or v holds a NaN or ±Inf and <see cref="AttentionOptions.NonFinite"/> is Throw.</exception>
    public void Forward(CudaStream stream, UlyssesLayout layout, TensorView<Half> q, TensorView<Half> k, TensorView<Half> v,
        DeviceBuffer<Half> o, DeviceBuffer<float> lse, AttentionOptions options)
    {
        _ranks.CheckStream(stream);
        ArgumentNullException.ThrowIfNull(layout);
        ArgumentNullException.ThrowIfNull(options);
        var (dims, layouts) = ContextParallelArguments.Tensors(q, k, v, o, lse);
        ContextParallelArguments.Tokens(dims.SeqQ, dims.SeqK, layout.Partition, nameof(layout));
        ContextParallelArguments.Heads(layout, dims);
        UlyssesEngine.Run(new SimulatedTransport(), layout, dims, options, _ranks.For(layout.Ranks, stream, q, k, v, o, lse, layouts));
    }

    public void Dispose() => _ranks.Dispose();
}
