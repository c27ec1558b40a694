using System.Collections.Immutable;
using KernelDsl.Attention.FlashAttention;
using KernelDsl.Attention.Reference;

namespace KernelDsl.Attention.ContextParallel;

/// <summary>
/// Ring attention (<see cref="RingSchedule"/>) with every rank simulated on one GPU, device copies between the ranks'
/// buffers standing in for NCCL's sends and receives: the whole schedule as it would run on N GPUs, on one. Each rank
/// has its own <see cref="Int8Attention"/>, a compute stream, a transfer stream and two receive slots (double buffers):
/// while it attends to the K/V it holds at step t, the K/V of step t + 1 is copied into its other slot from the rank
/// before it, events ordering each copy after the data it reads has arrived and after the slot it overwrites has been
/// read. K and V are quantized once per chunk, by the rank holding the chunk, and their codes travel. Every computed
/// block writes a partial O (f16) and LSE; each Q chunk's partials merge by LSE (<see cref="Int8Attention.Merge"/>).
/// Scratch is kept between calls; dispose to free it.
/// </summary>
public sealed class SimulatedRingAttention(CudaDevice device) : IDisposable
{
    private readonly List<RankState> _ranks = [];

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
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentNullException.ThrowIfNull(schedule);
        ArgumentNullException.ThrowIfNull(o);
        ArgumentNullException.ThrowIfNull(lse);
        ArgumentNullException.ThrowIfNull(q.Buffer, nameof(q));
        RingArguments.Options(options, schedule);
        if (!ReferenceEquals(stream.Device, device))
        {
            throw new ArgumentException($"stream is on device {stream.Device.Ordinal}; this ring simulates its ranks on device {device.Ordinal}.", nameof(stream));
        }
        if (o.Length < q.ElementCount)
        {
            throw new ArgumentException($"o holds {o.Length} elements; O of q's shape [{string.Join(", ", q.Shape)}] needs {q.ElementCount}.", nameof(o));
        }
        var dims = AttentionArguments.Check(q, k, v, TensorView<Half>.Contiguous(o, [.. q.Shape]), lse);
        RingArguments.Tokens(dims.SeqQ, dims.SeqK, schedule.Partition);
        RingArguments.MergedHeadDim(dims.HeadDim);
        var run = new Run(schedule, dims, options,
            RingArguments.Layout(q.Shape, q.Strides, nameof(q)), RingArguments.Layout(k.Shape, k.Strides, nameof(k)), RingArguments.Layout(v.Shape, v.Strides, nameof(v)));

        while (_ranks.Count < schedule.Ranks)
        {
            _ranks.Add(new RankState(device));
        }
        var ranks = _ranks.Take(schedule.Ranks).ToArray();
        var home = new QuantizedKeysValues?[schedule.Partition.ChunkCount];
        var events = new List<CudaEvent>();
        try
        {
            using var inputs = stream.Record();
            foreach (var rank in ranks)
            {
                rank.Compute.Wait(inputs);
                rank.Transfer.Wait(inputs);
            }
            Scatter(run, ranks, q, k, v, home);
            Ring(run, ranks, home, events);
            Gather(run, ranks, o, lse);
        }
        finally
        {
            // Nothing per call is freed while a stream may still read it.
            foreach (var rank in ranks)
            {
                rank.Compute.Synchronize();
                rank.Transfer.Synchronize();
            }
            foreach (var item in home.OfType<IDisposable>().Concat(events))
            {
                item.Dispose();
            }
        }
    }

    public void Dispose()
    {
        foreach (var rank in _ranks)
        {
            rank.Dispose();
        }
        _ranks.Clear();
    }

    /// <summary>One call: the schedule, the problem's dims, the options and the inputs' layouts.</summary>
    private sealed record Run(RingSchedule Schedule, AttentionDims Dims, AttentionOptions Options, TensorLayout QLayout, TensorLayout KLayout, TensorLayout VLayout)
    {
        public SequencePartition Partition => Schedule.Partition;

        /// <summary>A dense [B, heads, tokens, D] view of a buffer in a layout.</summary>
        public TensorView<Half> View(DeviceBuffer<Half> buffer, int heads, int tokens, TensorLayout layout)
        {
            var s = Shape(heads, tokens, layout).QStrides;
            return new TensorView<Half>(buffer, [Dims.Batch, heads, tokens, Dims.HeadDim], [s.Batch, s.Head, s.Token, 1]);
        }

        /// <summary>
        /// Queues copying tokens [from, from + count) of a dense tensor of <paramref name="sourceTokens"/> tokens into
        /// tokens [to, to + count) of one of <paramref name="targetTokens"/>, both [B, heads, ·, D] in <paramref name="layout"/>:
        /// as [outer][tokens][inner], one 2D copy.
        /// </summary>
        public void CopyTokens<T>(CudaStream stream, DeviceBuffer<T> source, int sourceTokens, int from, DeviceBuffer<T> target, int targetTokens, int to,
            int count, int heads, int headDim, TensorLayout layout) where T : unmanaged
        {
            var (outer, inner) = layout == TensorLayout.BHSD ? ((long)Dims.Batch * heads, (long)headDim) : (Dims.Batch, (long)heads * headDim);
            stream.Copy2D(source, from * inner, sourceTokens * inner, target, to * inner, targetTokens * inner, count * inner, outer);
        }

        private AttentionShape Shape(int heads, int tokens, TensorLayout layout) =>
            new(Dims.Batch, heads, heads, tokens, tokens, Dims.HeadDim, layout: layout);
    }

    /// <summary>What a simulated rank keeps between calls.</summary>
    private sealed class RankState(CudaDevice device) : IDisposable
    {
        public Int8Attention Attention { get; } = new(device);
        public CudaStream Compute { get; } = device.CreateStream();
        public CudaStream Transfer { get; } = device.CreateStream();
        /// <summary>Its chunks of Q and K/V, block outputs, partials and merged rows.</summary>
        public RetainingBuffers Buffers { get; } = new(device);
        /// <summary>The two receive slots, each holding one rank's K/V codes (one set of buffers per chunk position).</summary>
        public RetainingBuffers[][] Slots { get; } = [[new(device), new(device)], [new(device), new(device)]];

        public void Dispose()
        {
            Attention.Dispose();
            Buffers.Dispose();
            foreach (var slot in Slots.SelectMany(s => s))
            {
                slot.Dispose();
            }
            Compute.Dispose();
            Transfer.Dispose();
        }
    }

    /// <summary>Each rank copies its chunks of Q, K and V out of the whole tensors and quantizes its K/V chunks once.</summary>
    private static void Scatter(Run run, RankState[] ranks, TensorView<Half> q, TensorView<Half> k, TensorView<Half> v, QuantizedKeysValues?[] home)
    {
        var (dims, partition) = (run.Dims, run.Partition);
        var kvOptions = run.Options with { Causal = false };
        for (var r = 0; r < ranks.Length; r++)
        {
            var rank = ranks[r];
            foreach (var (position, chunk) in partition.ChunksOf(r).Index())
            {
                var range = partition.Chunk(chunk);
                var qChunk = rank.Buffers.Get<Half>($"q{position}", (long)dims.Batch * dims.HeadsQ * range.Length * dims.HeadDim);
                run.CopyTokens(rank.Compute, q.Buffer, dims.SeqQ, range.Start, qChunk, range.Length, 0, range.Length, dims.HeadsQ, dims.HeadDim, run.QLayout);
                var kvLength = (long)dims.Batch * dims.HeadsKv * range.Length * dims.HeadDim;
                var (kChunk, vChunk) = (rank.Buffers.Get<Half>("k", kvLength), rank.Buffers.Get<Half>("v", kvLength));
                run.CopyTokens(rank.Compute, k.Buffer, dims.SeqK, range.Start, kChunk, range.Length, 0, range.Length, dims.HeadsKv, dims.HeadDim, run.KLayout);
                run.CopyTokens(rank.Compute, v.Buffer, dims.SeqK, range.Start, vChunk, range.Length, 0, range.Length, dims.HeadsKv, dims.HeadDim, run.VLayout);
                // Waits for the codes, so every rank's stream may read them from here on.
                home[chunk] = rank.Attention.QuantizeKeysValues(rank.Compute, run.View(kChunk, dims.HeadsKv, range.Length, run.KLayout),
                    run.View(vChunk, dims.HeadsKv, range.Length, run.VLayout), kvOptions);
            }
        }
    }

    /// <summary>
    /// The schedule's steps. Step t + 1's transfers are queued before step t's blocks so they overlap them; a transfer
    /// into rank r's slot waits for what it reads (the rank before it received it at step t) and for the slot's last
    /// readers (r's blocks of step t − 1, and the next rank's transfer of step t, which copied from it).
    /// </summary>
    private static void Ring(Run run, RankState[] ranks, QuantizedKeysValues?[] home, List<CudaEvent> events)
    {
        var (schedule, partition, dims) = (run.Schedule, run.Partition, run.Dims);
        var steps = schedule.Steps;
        var held = new QuantizedKeysValues[ranks.Length, steps][];
        var (arrived, computed) = (new CudaEvent?[ranks.Length, steps], new CudaEvent?[ranks.Length, steps]);
        var partials = new int[partition.ChunkCount];
        var checkedQ = new bool[partition.ChunkCount];
        for (var r = 0; r < ranks.Length; r++)
        {
            held[r, 0] = partition.ChunksOf(r).Select(c => home[c]!).ToArray();
        }
        for (var step = 0; step < steps; step++)
        {
            if (step + 1 < steps)
            {
                for (var r = 0; r < ranks.Length; r++)
                {
                    Receive(r, step + 1);
                }
            }
            for (var r = 0; r < ranks.Length; r++)
            {
                Attend(r, step);
            }
        }

        void Receive(int r, int step)
        {
            var (rank, from, next) = (ranks[r], schedule.ReceivesFrom(r), schedule.SendsTo(r));
            foreach (var ready in new[] { arrived[from, step - 1], Before(computed, r, step - 2), arrived[next, step - 1] })
            {
                if (ready is not null)
                {
                    rank.Transfer.Wait(ready);
                }
            }
            var slot = rank.Slots[step % 2];
            held[r, step] = held[from, step - 1].Select((kv, position) => kv.CopyTo(rank.Transfer, slot[position])).ToArray();
            arrived[r, step] = Record(rank.Transfer);
        }

        void Attend(int r, int step)
        {
            var rank = ranks[r];
            if (arrived[r, step] is { } ready)
            {
                rank.Compute.Wait(ready);
            }
            var (queries, keys) = (partition.ChunksOf(r), partition.ChunksOf(schedule.KvSource(r, step)));
            foreach (var block in schedule.Blocks(r, step).Where(b => b.Computed))
            {
                var tokens = partition.Chunk(block.QChunk).Length;
                var rows = (long)dims.Batch * dims.HeadsQ * tokens;
                var (blockO, blockLse) = (rank.Buffers.Get<Half>("blockO", rows * dims.HeadDim), rank.Buffers.Get<float>("blockLse", rows));
                var qChunk = rank.Buffers.Get<Half>($"q{Array.IndexOf(queries, block.QChunk)}", rows * dims.HeadDim);
                var options = run.Options with
                {
                    Causal = block.Visibility == BlockVisibility.CausalDiagonal,
                    NonFinite = checkedQ[block.QChunk] ? NonFiniteInputs.Ignore : run.Options.NonFinite,
                };
                checkedQ[block.QChunk] = true;
                rank.Attention.Forward(rank.Compute, run.View(qChunk, dims.HeadsQ, tokens, run.QLayout), held[r, step][Array.IndexOf(keys, block.KvChunk)],
                    run.View(blockO, dims.HeadsQ, tokens, TensorLayout.BHSD), options, blockLse);
                var (partialO, partialLse, _) = Partials(run, rank, queries, block.QChunk);
                var p = partials[block.QChunk]++;
                rank.Compute.Copy(blockO, 0, partialO, p * rows * dims.HeadDim, rows * dims.HeadDim);
                rank.Compute.Copy(blockLse, 0, partialLse, p * rows, rows);
            }
            computed[r, step] = Record(rank.Compute);
        }

        CudaEvent Record(CudaStream stream)
        {
            var recorded = stream.Record();
            events.Add(recorded);
            return recorded;
        }

        static CudaEvent? Before(CudaEvent?[,] recorded, int r, int step) => step >= 0 ? recorded[r, step] : null;
    }

    /// <summary>A Q chunk's partial O and LSE buffers, [partials][B·Hq·tokens](·D): one partial per computed block of the chunk.</summary>
    private static (DeviceBuffer<Half> O, DeviceBuffer<float> Lse, int Count) Partials(Run run, RankState rank, int[] queries, int chunk)
    {
        var (schedule, dims) = (run.Schedule, run.Dims);
        var owner = run.Partition.OwnerOf(chunk);
        var count = Enumerable.Range(0, schedule.Steps).Sum(t => schedule.Blocks(owner, t).Count(b => b.Computed && b.QChunk == chunk));
        var rows = (long)dims.Batch * dims.HeadsQ * run.Partition.Chunk(chunk).Length;
        var position = Array.IndexOf(queries, chunk);
        return (rank.Buffers.Get<Half>($"partialO{position}", count * rows * dims.HeadDim), rank.Buffers.Get<float>($"partialLse{position}", count * rows), count);
    }

    /// <summary>Each rank merges its Q chunks' partials and copies the rows into the whole O and LSE.</summary>
    private static void Gather(Run run, RankState[] ranks, DeviceBuffer<Half> o, DeviceBuffer<float> lse)
    {
        var (partition, dims) = (run.Partition, run.Dims);
        for (var r = 0; r < ranks.Length; r++)
        {
            var (rank, queries) = (ranks[r], partition.ChunksOf(r));
            foreach (var chunk in queries)
            {
                var range = partition.Chunk(chunk);
                var rows = (long)dims.Batch * dims.HeadsQ * range.Length;
                var (partialO, partialLse, count) = Partials(run, rank, queries, chunk);
                var (mergedO, mergedLse) = (rank.Buffers.Get<Half>("mergedO", rows * dims.HeadDim), rank.Buffers.Get<float>("mergedLse", rows));
                Int8Attention.Merge(rank.Compute, dims.HeadDim, partialO, partialLse, count, rows, mergedO, mergedLse);
                run.CopyTokens(rank.Compute, mergedO, range.Length, 0, o, dims.SeqQ, range.Start, range.Length, dims.HeadsQ, dims.HeadDim, TensorLayout.BHSD);
                run.CopyTokens(rank.Compute, mergedLse, range.Length, 0, lse, dims.SeqQ, range.Start, range.Length, dims.HeadsQ, 1, TensorLayout.BHSD);
            }
        }
    }
}

/// <summary>The checks of a context-parallel call that need no GPU; each message names the argument and the rule.</summary>
internal static class RingArguments
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

    /// <summary>Q and K/V are the partition's one sequence.</summary>
    public static void Tokens(int seqQ, int seqK, SequencePartition partition)
    {
        if (seqQ != partition.Tokens || seqK != partition.Tokens)
        {
            throw new ArgumentException($"q has {seqQ} tokens and k {seqK}; the schedule partitions one sequence of {partition.Tokens}: all three must be equal.", "schedule");
        }
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
