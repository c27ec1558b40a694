using KernelDsl.Attention.FlashAttention;
using KernelDsl.Attention.Reference;

namespace KernelDsl.Attention.ContextParallel;

/// <summary>
/// Ring attention (<see cref="RingSchedule"/>) with every rank simulated on one GPU, device copies between the ranks'
/// buffers standing in for NCCL's sends and receives: the whole schedule as it would run on N GPUs, on one, by the same
/// engine as <see cref="ContextParallelAttention.Ring"/>. Each rank has its own <see cref="Int8Attention"/>, a compute
/// stream, a transfer stream and two receive slots (double buffers): while it attends to the K/V it holds at step t,
/// the K/V of step t + 1 is copied into its other slot from the rank before it, events ordering each copy after the data
/// it reads has arrived and after the slot it overwrites has been read. K and V are quantized once per chunk, by the
/// rank holding the chunk, and their codes travel. Every computed block writes a partial O (f16) and LSE; each Q chunk's
/// partials merge by LSE (<see cref="Int8Attention.Merge"/>). Scratch is kept between calls; dispose to free it.
/// </summary>
public sealed class SimulatedRingAttention(CudaDevice device) : IDisposable
{
    private readonly SimulatedRanks _ranks = new(device);

    /// <summary>
    /// Attention of the whole sequence in <paramref name="q"/>, <paramref name="k"/>, <paramref name="v"/> ([B, H, S, D]
    /// f16, each dense BHSD or BSHD; GQA: q's heads a multiple of k's), computed by <paramref name="schedule"/>'s ranks:
    /// <paramref name="o"/> receives O as dense BHSD [B][Hq][S][D] and <paramref name="lse"/> the natural-log LSE
    /// [B][Hq][S]. Runs after the work queued on <paramref name="stream"/>, and returns when O and the LSE are written.
    /// <paramref name="options"/> select the kernels as for <see cref="Int8Attention"/>: Causal must be the schedule's,
    /// P·V a quantized mode (K and V travel as codes), no autotuning. NonFinite applies when K and V are quantized and
    /// to each Q chunk's first block.
    /// </summary>
    /// <exception cref="NonFiniteInputException">q, k or v holds a NaN or ±Inf and <see cref="AttentionOptions.NonFinite"/> is Throw.</exception>
    public void Forward(CudaStream stream, RingSchedule schedule, TensorView<Half> q, TensorView<Half> k, TensorView<Half> v,
        DeviceBuffer<Half> o, DeviceBuffer<float> lse, AttentionOptions options)
    {
        _ranks.CheckStream(stream);
        ArgumentNullException.ThrowIfNull(schedule);
        ContextParallelArguments.Options(options, schedule);
        var (dims, layouts) = ContextParallelArguments.Tensors(q, k, v, o, lse);
        ContextParallelArguments.Tokens(dims.SeqQ, dims.SeqK, schedule.Partition);
        ContextParallelArguments.MergedHeadDim(dims.HeadDim);
        options = ContextParallelArguments.Explicit(options, dims.HeadDim, stream.Device.ComputeCapability);
        RingEngine.Run(new SimulatedTransport(), schedule, dims, options, _ranks.For(schedule.Ranks, stream, q, k, v, o, lse, layouts));
    }

    public void Dispose() => _ranks.Dispose();
}
