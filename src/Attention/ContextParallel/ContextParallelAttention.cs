using KernelDsl.Attention.FlashAttention;
using KernelDsl.Attention.Reference;

namespace KernelDsl.Attention.ContextParallel;

/// <summary>
/// Context-parallel attention across GPUs over NCCL: one rank's part of a sequence split among the ranks of
/// <see cref="Communicator"/>, one rank per GPU and process or thread (<see cref="NcclCommunicator.InitRank"/> with a
/// unique id the caller passes around, or <see cref="NcclCommunicator.InitRanks"/> for one process's GPUs, each rank
/// then driven from its own thread). Every rank makes the same call (same schedule or layout, shape and options) with
/// its own tokens; before any data moves the ranks compare their calls, and a mismatch is an
/// <see cref="ArgumentException"/> on every rank. The schedules and the per-rank work are those of
/// <see cref="SimulatedRingAttention"/>, NCCL's grouped send and receive in place of device copies. Waits poll with the
/// communicator's timeout: a peer that fails or never comes ends a call with <see cref="NcclException"/>, not a hang. Ranks
/// share whether loading their inputs went well before any transfer, so NaN/Inf in one rank's inputs (with the default
/// <see cref="NonFiniteInputs.Throw"/>) is a <see cref="NonFiniteInputException"/> naming that rank on every rank. A call
/// that fails from loading on aborts the communicator, whose transfers may no longer match its peers'.
/// Scratch is kept between calls; dispose to free it (the communicator stays the caller's).
/// </summary>
public sealed class ContextParallelAttention : IDisposable
{
    private readonly RankState _state;
    private readonly NcclTransport _transport;

    public ContextParallelAttention(NcclCommunicator communicator)
    {
        ArgumentNullException.ThrowIfNull(communicator);
        ObjectDisposedException.ThrowIf(communicator.IsClosed, communicator);
        Communicator = communicator;
        _state = new RankState(communicator.Device);
        _transport = new NcclTransport(communicator);
    }

    /// <summary>This rank's communicator, on the GPU this rank runs on.</summary>
    public NcclCommunicator Communicator { get; }

    /// <summary>
    /// Ring attention (<see cref="RingSchedule"/>): this rank's Q, K and V, its chunks of the sequence back to back
    /// (<see cref="SequencePartition.ChunksOf"/>; [B, H, S_rank, D] f16, dense BHSD or BSHD each; GQA), and its rows of the
    /// result: <paramref name="o"/> dense BHSD [B][Hq][S_rank][D], <paramref name="lse"/> the natural-log LSE
    /// [B][Hq][S_rank]. Runs after the work queued on <paramref name="stream"/> (on this rank's GPU) and returns when O and
    /// the LSE are written. <paramref name="options"/> as for <see cref="SimulatedRingAttention.Forward"/>.
    /// </summary>
    /// <exception cref="ArgumentException">An argument is wrong for this rank (its message names it), or another rank's call differs from this one's.</exception>
    /// <exception cref="NcclException">A peer failed or did not take part within the communicator's timeout.</exception>
    public void Ring(CudaStream stream, RingSchedule schedule, TensorView<Half> q, TensorView<Half> k, TensorView<Half> v,
        DeviceBuffer<Half> o, DeviceBuffer<float> lse, AttentionOptions options)
    {
        ArgumentNullException.ThrowIfNull(schedule);
        ContextParallelArguments.Options(options, schedule);
        var (dims, layouts) = Check(stream, schedule.Partition, q, k, v, o, lse);
        ContextParallelArguments.MergedHeadDim(dims.HeadDim);
        options = ContextParallelArguments.Explicit(options, dims.HeadDim, Communicator.Device.ComputeCapability);
        ContextParallelArguments.Kernels(options, dims.HeadDim, Communicator.Device.ComputeCapability, bothMasks: true);
        Agree(CallSignature.Of(ContextParallelMethod.Ring, schedule.Partition, schedule.Causal, dims, options, layouts));
        Moving(() => RingEngine.Run(_transport, schedule, dims with { SeqQ = schedule.Partition.Tokens, SeqK = schedule.Partition.Tokens }, options,
            [(_state, new RankTensors(Communicator.Rank, stream, q, k, v, o, lse, Local: true, layouts.Q, layouts.K, layouts.V))]));
    }

    /// <summary>
    /// Ulysses (<see cref="UlyssesLayout"/>): this rank's Q, K and V, its chunks of the sequence back to back, as for
    /// <see cref="Ring"/>; two all-to-alls around one attention call on this rank's heads over the whole sequence;
    /// <paramref name="o"/> (dense BHSD [B][Hq][S_rank][D]) and <paramref name="lse"/> ([B][Hq][S_rank]) receive this rank's
    /// rows. <paramref name="options"/> are <see cref="Int8Attention"/>'s, any mode (there is no merge), the same on every rank.
    /// </summary>
    /// <exception cref="ArgumentException">An argument is wrong for this rank (its message names it), or another rank's call differs from this one's.</exception>
    /// <exception cref="NcclException">A peer failed or did not take part within the communicator's timeout.</exception>
    public void Ulysses(CudaStream stream, UlyssesLayout layout, TensorView<Half> q, TensorView<Half> k, TensorView<Half> v,
        DeviceBuffer<Half> o, DeviceBuffer<float> lse, AttentionOptions options)
    {
        ArgumentNullException.ThrowIfNull(layout);
        ArgumentNullException.ThrowIfNull(options);
        var (dims, layouts) = Check(stream, layout.Partition, q, k, v, o, lse);
        ContextParallelArguments.Heads(layout, dims);
        ContextParallelArguments.Kernels(options, dims.HeadDim, Communicator.Device.ComputeCapability, bothMasks: false);
        Agree(CallSignature.Of(ContextParallelMethod.Ulysses, layout.Partition, options.Causal, dims, options, layouts));
        Moving(() => UlyssesEngine.Run(_transport, layout, dims with { SeqQ = layout.Partition.Tokens, SeqK = layout.Partition.Tokens }, options,
            [(_state, new RankTensors(Communicator.Rank, stream, q, k, v, o, lse, Local: true, layouts.Q, layouts.K, layouts.V))]));
    }

    public void Dispose() => _state.Dispose();

    /// <summary>The checks of this rank's arguments that need no peer: the communicator against the partition, devices, shapes and the rank's tokens.</summary>
    private (AttentionDims Dims, (TensorLayout Q, TensorLayout K, TensorLayout V) Layouts) Check(CudaStream stream, SequencePartition partition,
        TensorView<Half> q, TensorView<Half> k, TensorView<Half> v, DeviceBuffer<Half> o, DeviceBuffer<float> lse)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ObjectDisposedException.ThrowIf(Communicator.IsClosed, Communicator);
        ContextParallelArguments.Communicator(Communicator.Ranks, partition);
        var device = Communicator.Device.Ordinal;
        ContextParallelArguments.Device(stream.Device.Ordinal, device, Communicator.Rank, nameof(stream));
        var result = ContextParallelArguments.Tensors(q, k, v, o, lse);
        foreach (var (buffer, name) in new (int Ordinal, string Name)[] { (q.Buffer.Device.Ordinal, nameof(q)), (k.Buffer.Device.Ordinal, nameof(k)),
                     (v.Buffer.Device.Ordinal, nameof(v)), (o.Device.Ordinal, nameof(o)), (lse.Device.Ordinal, nameof(lse)) })
        {
            ContextParallelArguments.Device(buffer, device, Communicator.Rank, name);
        }
        ContextParallelArguments.RankTokens(result.Dims.SeqQ, result.Dims.SeqK, partition, Communicator.Rank);
        return result;
    }

    /// <summary>Every rank's call gathered (a few bytes, on this rank's compute stream) and compared with this one's.</summary>
    private void Agree(CallSignature mine)
    {
        var gathered = _transport.AllGather([(Communicator.Rank, _state.Compute, mine.ToArray())]);
        CallSignature.ThrowIfDisagreeing(gathered.Select(values => CallSignature.FromArray(values)).ToArray(), Communicator.Rank);
    }

    /// <summary>Runs the part of a call that moves data; a failure there aborts the communicator, whose peers' transfers no longer match.</summary>
    private void Moving(Action work)
    {
        try
        {
            work();
        }
        catch
        {
            Communicator.Abort();
            throw;
        }
    }
}

/// <summary>Which context-parallel method a call runs.</summary>
internal enum ContextParallelMethod
{
    Ring = 1,
    Ulysses = 2,
}

/// <summary>
/// What every rank of one context-parallel call must agree on, gathered from all of them before any data moves: a
/// rank whose call differs would send or expect other amounts, and NCCL would corrupt or wait forever.
/// </summary>
internal sealed record CallSignature(ContextParallelMethod Method, int Ranks, int Tokens, SequenceSplit Split, bool Causal, int Batch, int HeadsQ, int HeadsKv,
    int HeadDim, PvPrecision Pv, VStrategy? V, float SoftmaxScale, TensorLayout QLayout, TensorLayout KLayout, TensorLayout VLayout)
{
    /// <summary>Each value's name and the argument it comes from, in <see cref="ToArray"/>'s order.</summary>
    private static readonly (string Name, string Argument)[] Fields =
    [
        ("method", "method"), ("rank count", "schedule"), ("tokens", "schedule"), ("split", "schedule"), ("causal", "options"), ("batch", "q"),
        ("query heads", "q"), ("K/V heads", "k"), ("head dim", "q"), ("P·V precision", "options"), ("V strategy", "options"), ("softmax scale", "options"),
        ("layout", "q"), ("layout", "k"), ("layout", "v"),
    ];

    public static CallSignature Of(ContextParallelMethod method, SequencePartition partition, bool causal, AttentionDims dims, AttentionOptions options,
        (TensorLayout Q, TensorLayout K, TensorLayout V) layouts) =>
        new(method, partition.Ranks, partition.Tokens, partition.Split, causal, dims.Batch, dims.HeadsQ, dims.HeadsKv, dims.HeadDim, options.Pv, options.V,
            options.SoftmaxScale ?? 1f / MathF.Sqrt(dims.HeadDim), layouts.Q, layouts.K, layouts.V);

    public long[] ToArray() =>
    [
        (long)Method, Ranks, Tokens, (long)Split, Causal ? 1 : 0, Batch, HeadsQ, HeadsKv, HeadDim, (long)Pv, V is { } strategy ? (long)strategy : -1, BitConverter.SingleToInt32Bits(SoftmaxScale),
        (long)QLayout, (long)KLayout, (long)VLayout,
    ];

    public static CallSignature FromArray(ReadOnlySpan<long> values) => values.Length == Fields.Length
        ? new((ContextParallelMethod)values[0], (int)values[1], (int)values[2], (SequenceSplit)values[3], values[4] != 0, (int)values[5], (int)values[6],
            (int)values[7], (int)values[8], (PvPrecision)values[9], values[10] < 0 ? null : (VStrategy)values[10], BitConverter.Int32BitsToSingle((int)values[11]),
            (TensorLayout)values[12], (TensorLayout)values[13], (TensorLayout)values[14])
        : throw new ArgumentException($"A call signature has {Fields.Length} values; got {values.Length}.", nameof(values));

    /// <summary>Throws, naming the argument, if another rank's call differs from rank <paramref name="rank"/>'s.</summary>
    public static void ThrowIfDisagreeing(IReadOnlyList<CallSignature> signatures, int rank)
    {
        var mine = signatures[rank].ToArray();
        for (var other = 0; other < signatures.Count; other++)
        {
            var theirs = signatures[other].ToArray();
            if (Enumerable.Range(0, mine.Length).FirstOrDefault(i => theirs[i] != mine[i], -1) is var field and >= 0)
            {
                var (name, argument) = Fields[field];
                throw new ArgumentException($"Rank {other}'s call differs from this rank's ({rank}) in its {name}: {Describe(signatures[other], field)} against {Describe(signatures[rank], field)}. " +
                    "Every rank must make the same call (schedule or layout, shape, options) with its own tokens.", argument);
            }
        }
    }

    private static string Describe(CallSignature s, int field) => field switch
    {
        0 => s.Method.ToString(),
        3 => s.Split.ToString(),
        4 => s.Causal ? "causal" : "not causal",
        9 => s.Pv.ToString(),
        10 => s.V?.ToString() ?? "the device's default",
        11 => s.SoftmaxScale.ToString("R", System.Globalization.CultureInfo.InvariantCulture),
        12 => s.QLayout.ToString(),
        13 => s.KLayout.ToString(),
        14 => s.VLayout.ToString(),
        _ => s.ToArray()[field].ToString(System.Globalization.CultureInfo.InvariantCulture),
    };
}
