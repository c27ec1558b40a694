using System.Collections.Immutable;
using KernelDsl.Attention.FlashAttention;
using KernelDsl.Attention.Reference;

namespace KernelDsl.Attention.ContextParallel;

/// <summary>The checks of a context-parallel call that need no GPU; each message names the argument and the rule.</summary>
internal static class ContextParallelArguments
{
    public static void Options(AttentionOptions options, RingSchedule schedule)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (options.Causal != schedule.Causal)
        {
            throw new ArgumentException($"options.Causal is {options.Causal} but the schedule is {(schedule.Causal ? "" : "not ")}causal: they must agree.", nameof(options));
        }
        if (options.Pv == PvPrecision.Float16)
        {
            throw new ArgumentException("The ring sends K and V as codes quantized once; the 16-bit P·V mode reads V unquantized: choose a quantized P·V mode.", nameof(options));
        }
        if (options.Autotune)
        {
            throw new ArgumentException("options.Autotune may pick a kernel that reads V in another layout than the codes the ring sends: choose V and Tile (Int8Attention.LastTuning says what autotuning picked).", nameof(options));
        }
    }

    /// <summary>
    /// Q, K, V (dense [B, H, S, D], BHSD or BSHD each; GQA), O (dense BHSD, Q's shape) and the LSE ([B][Hq][S]) of one
    /// rank or of the whole sequence: the shape they agree on, and each input's layout.
    /// </summary>
    public static (AttentionDims Dims, (TensorLayout Q, TensorLayout K, TensorLayout V) Layouts) Tensors(TensorView<Half> q, TensorView<Half> k, TensorView<Half> v,
        DeviceBuffer<Half> o, DeviceBuffer<float> lse)
    {
        ArgumentNullException.ThrowIfNull(o);
        ArgumentNullException.ThrowIfNull(lse);
        ArgumentNullException.ThrowIfNull(q.Buffer, nameof(q));
        if (o.Length < q.ElementCount)
        {
            throw new ArgumentException($"o holds {o.Length} elements; O of q's shape [{string.Join(", ", q.Shape)}] needs {q.ElementCount}.", nameof(o));
        }
        var dims = AttentionArguments.Check(q, k, v, TensorView<Half>.Contiguous(o, [.. q.Shape]), lse);
        return (dims, (Layout(q.Shape, q.Strides, nameof(q)), Layout(k.Shape, k.Strides, nameof(k)), Layout(v.Shape, v.Strides, nameof(v))));
    }

    /// <summary>Q and K/V are the partition's one sequence; <paramref name="name"/> is the argument holding the partition.</summary>
    public static void Tokens(int seqQ, int seqK, SequencePartition partition, string name = "schedule")
    {
        if (seqQ != partition.Tokens || seqK != partition.Tokens)
        {
            throw new ArgumentException($"q has {seqQ} tokens and k {seqK}; the {name} partitions one sequence of {partition.Tokens}: all three must be equal.", name);
        }
    }

    /// <summary>Ulysses' layout splits the heads Q and K/V have.</summary>
    public static void Heads(UlyssesLayout layout, AttentionDims dims)
    {
        if (layout.HeadsQ != dims.HeadsQ || layout.HeadsKv != dims.HeadsKv)
        {
            throw new ArgumentException($"The layout splits {layout.HeadsQ} query and {layout.HeadsKv} K/V heads among the ranks; q has {dims.HeadsQ} and k {dims.HeadsKv}.", "layout");
        }
    }

    /// <summary>A communicator has one rank per rank of the partition.</summary>
    public static void Communicator(int communicatorRanks, SequencePartition partition)
    {
        if (communicatorRanks != partition.Ranks)
        {
            throw new ArgumentException($"The communicator has {communicatorRanks} ranks and the sequence is partitioned among {partition.Ranks}: they must be equal (one rank per GPU).", "communicator");
        }
    }

    /// <summary>A stream or buffer of this rank is on its communicator's device.</summary>
    public static void Device(int ordinal, int communicatorOrdinal, int rank, string name)
    {
        if (ordinal != communicatorOrdinal)
        {
            throw new ArgumentException($"'{name}' is on device {ordinal}; rank {rank}'s communicator runs on device {communicatorOrdinal}: a rank's streams and tensors live on its GPU.", name);
        }
    }

    /// <summary>One rank's Q and K/V hold its tokens of the partition: its chunks back to back.</summary>
    public static void RankTokens(int seqQ, int seqK, SequencePartition partition, int rank)
    {
        var local = partition.LocalTokens(rank);
        var (count, name) = seqQ != local ? (seqQ, "q") : (seqK, "k");
        if (seqQ != local || seqK != local)
        {
            throw new ArgumentException($"'{name}' has {count} tokens; rank {rank} holds {local} of the {partition.Tokens} (chunks {string.Join(" and ", partition.RangesOf(rank))}), " +
                "back to back: pass this rank's tokens only.", name);
        }
    }

    /// <summary>
    /// A finite positive softmax scale and a declared kernel for every call a method makes on this device (the ring's
    /// blocks are causal and not), checked before ranks agree or move data: found wrong later, either would cost the communicator.
    /// </summary>
    public static void Kernels(AttentionOptions options, int headDim, int computeCapability, bool bothMasks)
    {
        Int8Attention.SoftmaxScale(options, headDim);
        foreach (var causal in bothMasks ? new[] { false, true } : [options.Causal])
        {
            Int8Attention.Select(Element.F16, headDim, options with { Causal = causal, Autotune = false }, computeCapability);
        }
    }

    /// <summary>
    /// The ring's options with the u8 mode's V strategy and tile made explicit: the default kernel's on this device when
    /// <see cref="AttentionOptions.V"/> is unset. K and V travel as codes quantized once for both masks' blocks, so every
    /// rank, and both masks, must read V in one layout; ranks agree on the explicit strategy, not on "default", which
    /// differs between devices (wgmma on an H100, mma.sync on an A100).
    /// </summary>
    public static AttentionOptions Explicit(AttentionOptions options, int headDim, int computeCapability)
    {
        if (options.Pv != PvPrecision.U8 || options.V is not null)
        {
            return options;
        }
        var chosen = Int8Attention.Select(Element.F16, headDim, options with { Autotune = false }, computeCapability);
        return options with { V = chosen.V, Tile = chosen.Tile };
    }

    public static void MergedHeadDim(int headDim)
    {
        if (!Int8Attention.MergeHeadDims.Contains(headDim))
        {
            throw new ArgumentException($"The ring merges partials by LSE, and a merge kernel is declared for head dims {string.Join(", ", Int8Attention.MergeHeadDims)}; q's is {headDim}.", "q");
        }
    }

    /// <summary>The layout of a dense [B, H, S, D] view: its chunks are whole token ranges, moved by 2D copies.</summary>
    public static TensorLayout Layout(ImmutableArray<long> shape, ImmutableArray<long> strides, string name)
    {
        if (shape.Length == 4)
        {
            var (h, s, d) = (shape[1], shape[2], shape[3]);
            long[] bhsd = [h * s * d, s * d, d, 1], bshd = [s * h * d, d, h * d, 1];
            // With one batch the batch stride is never used; with one head, both layouts are one and the same.
            bool Matches(long[] expected) => (shape[0] == 1 || strides[0] == expected[0]) && strides.AsSpan()[1..].SequenceEqual(expected.AsSpan(1));
            if (Matches(bhsd) || (h == 1 && Matches(bshd)))
            {
                return TensorLayout.BHSD;
            }
            if (Matches(bshd))
            {
                return TensorLayout.BSHD;
            }
        }
        throw new ArgumentException($"'{name}' must be a dense [B, H, S, D] view in BHSD or BSHD order (its strides are [{string.Join(", ", strides)}]): the ring moves whole token ranges.", name);
    }
}
