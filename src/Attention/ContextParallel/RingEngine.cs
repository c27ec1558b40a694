using System.Runtime.ExceptionServices;
using KernelDsl.Attention.FlashAttention;
using KernelDsl.Attention.Reference;

namespace KernelDsl.Attention.ContextParallel;

/// <summary>What a rank keeps between context-parallel calls, on its GPU: freed on disposal.</summary>
internal sealed class RankState(CudaDevice device) : IDisposable
{
    public CudaDevice Device => device;
    /// <summary>Its scratch never freed mid-call (a free synchronizes the device, so it could wait on a dead peer's transfer).</summary>
    public Int8Attention Attention { get; } = new(device, retainReplaced: true);
    /// <summary>
    /// Non-blocking, as <see cref="Transfer"/> is: a synchronous copy or free elsewhere in the process (on the legacy
    /// default stream) then never waits for an NCCL receive a failed peer will not send.
    /// </summary>
    public CudaStream Compute { get; } = new(device, CudaStream.NonBlocking);
    /// <summary>The transfers' own stream, so the next step's K/V moves while this step's blocks run.</summary>
    public CudaStream Transfer { get; } = new(device, CudaStream.NonBlocking);
    /// <summary>Its chunks of Q and K/V, block outputs, partials, merged rows; the all-to-all pieces and head shards.</summary>
    public RetainingBuffers Buffers { get; } = new(device);
    /// <summary>The ring's two receive slots (double buffers), each holding one rank's K/V codes (one set of buffers per chunk position).</summary>
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

/// <summary>
/// One rank's tensors in a call, dense [B, H, S, D]: either the whole sequence's (ranks simulated on one GPU read and
/// write their own tokens in place) or the rank's own (its chunks back to back, as NCCL ranks hold them). O is dense
/// BHSD [B][Hq][S][D] and the LSE [B][Hq][S], S being the whole sequence's or the rank's tokens alike.
/// </summary>
internal sealed record RankTensors(int Rank, CudaStream Caller, TensorView<Half> Q, TensorView<Half> K, TensorView<Half> V, DeviceBuffer<Half> O,
    DeviceBuffer<float> Lse, bool Local, TensorLayout QLayout, TensorLayout KLayout, TensorLayout VLayout)
{
    /// <summary>The tokens the tensors hold: the whole sequence, or the rank's.</summary>
    public int Tokens(SequencePartition partition) => Local ? partition.LocalTokens(Rank) : partition.Tokens;

    /// <summary>Where a chunk of this rank's lies in the tensors.</summary>
    public int Start(SequencePartition partition, int chunk) => Local ? partition.LocalRange(chunk).Start : partition.Chunk(chunk).Start;
}

/// <summary>
/// Ring attention (<see cref="RingSchedule"/>) for the ranks one caller drives, over any <see cref="IRankTransport"/>: all
/// ranks simulated on one GPU, or one NCCL rank. Each rank copies its chunks of Q, K and V out of its tensors and
/// quantizes its K/V chunks once; at step t + 1 its transfer stream receives the K/V the rank before it held at step t
/// into one of two slots and sends what it held to the next, queued before step t's blocks so the two overlap; events
/// order a step's blocks after its K/V arrived and a slot's overwrite after its last reader. Every computed block is
/// one <see cref="Int8Attention"/> call on a Q chunk and a K/V chunk; each Q chunk's partials merge by LSE into O.
/// </summary>
internal sealed class RingEngine
{
    private readonly IRankTransport _transport;
    private readonly RingSchedule _schedule;
    private readonly AttentionDims _dims;
    private readonly AttentionOptions _options;
    private readonly RankRun[] _ranks;

    private RingEngine(IRankTransport transport, RingSchedule schedule, AttentionDims dims, AttentionOptions options, IReadOnlyList<(RankState State, RankTensors Tensors)> ranks)
    {
        (_transport, _schedule, _dims, _options) = (transport, schedule, dims, options);
        _ranks = ranks.Select(r => new RankRun(this, r.State, r.Tensors)).ToArray();
    }

    private SequencePartition Partition => _schedule.Partition;

    /// <summary>
    /// Runs the schedule for <paramref name="ranks"/> (checked by the caller: <see cref="ContextParallelArguments"/>) and returns
    /// when their O and LSE are written. <paramref name="dims"/> are the whole sequence's.
    /// </summary>
    public static void Run(IRankTransport transport, RingSchedule schedule, AttentionDims dims, AttentionOptions options, IReadOnlyList<(RankState State, RankTensors Tensors)> ranks)
    {
        var engine = new RingEngine(transport, schedule, dims, options, ranks);
        var completed = false;
        try
        {
            LoadAgreement.Run(transport, engine._ranks.Select(r => (r.Rank, r.State.Compute, (Action)r.Load)).ToArray());
            for (var step = 0; step < schedule.Steps; step++)
            {
                // Step t's blocks queue without waiting (NonFinite was checked in Load), so step t + 1's transfers,
                // queued after them on the transfer stream, still run during them; step 0's blocks (local data, where
                // scratch grows to its size) are queued before any transfer is posted.
                foreach (var rank in engine._ranks)
                {
                    rank.Attend(step);
                }
                if (step + 1 < schedule.Steps)
                {
                    engine.Hop(step + 1);
                }
            }
            foreach (var rank in engine._ranks)
            {
                rank.Merge();
            }
            completed = true;
        }
        finally
        {
            Drain(transport, engine._ranks.Select(r => (r.State, (IDisposable)r)), failing: !completed);
        }
    }

    /// <summary>
    /// Waits for the ranks' streams, then frees what the call made; after a failure, the transport is aborted first (so
    /// the wait does not last a timeout for transfers that will not complete), what a stream may still read is kept
    /// rather than freed, and the failure is not hidden by one from waiting.
    /// </summary>
    internal static void Drain(IRankTransport transport, IEnumerable<(RankState State, IDisposable Call)> ranks, bool failing)
    {
        Exception? error = null;
        if (failing)
        {
            transport.Abort();
        }
        var all = ranks.ToArray();
        foreach (var stream in all.SelectMany(r => new[] { r.State.Compute, r.State.Transfer }))
        {
            try
            {
                transport.Wait(stream);
            }
            catch (Exception e)
            {
                error ??= e;
            }
        }
        if (error is null)
        {
            foreach (var (_, call) in all)
            {
                call.Dispose();
            }
        }
        else if (!failing)
        {
            ExceptionDispatchInfo.Throw(error);
        }
    }

    /// <summary>Step <paramref name="step"/>'s transfers for every rank driven here, as one group.</summary>
    private void Hop(int step)
    {
        _transport.Exchange(_ranks.Select(r => r.Transfers(step)).ToArray());
        foreach (var rank in _ranks)
        {
            rank.Arrived(step);
        }
    }

    /// <summary>The transfers of K/V codes: K's codes, scales and mean, V's codes and scales, exactly as long as the chunk's layout says.</summary>
    private static IEnumerable<Transfer> Transfers(QuantizedKeysValues kv, int peer)
    {
        var (codes, layout) = (kv.Codes, kv.Layout);
        yield return Transfer.Of(codes.K, 0, layout.KCodes, peer);
        yield return Transfer.Of(codes.KScale, 0, layout.KScales, peer);
        yield return Transfer.Of(codes.KMean, 0, layout.Channels, peer);
        yield return codes.V switch
        {
            DeviceBuffer<sbyte> s8 => Transfer.Of(s8, 0, layout.VCodes, peer),
            DeviceBuffer<byte> e4m3 => Transfer.Of(e4m3, 0, layout.VCodes, peer),
            _ => throw new InvalidOperationException("The ring moves V as int8 or e4m3 codes."),
        };
        yield return Transfer.Of(codes.VScale!, 0, layout.Channels, peer);
    }

    /// <summary>One rank's part of one call: what it holds at each step, the events ordering its streams, its partial counts.</summary>
    private sealed class RankRun(RingEngine engine, RankState state, RankTensors tensors) : IDisposable
    {
        private readonly QuantizedKeysValues[]?[] _held = new QuantizedKeysValues[]?[engine._schedule.Steps];
        private readonly CudaEvent?[] _arrived = new CudaEvent?[engine._schedule.Steps];
        private readonly CudaEvent?[] _computed = new CudaEvent?[engine._schedule.Steps];
        private readonly List<IDisposable> _owned = [];
        private readonly int[] _queries = engine.Partition.ChunksOf(tensors.Rank);
        private readonly int[] _partials = new int[2];

        public RankState State => state;

        public int Rank => tensors.Rank;

        private AttentionDims Dims => engine._dims;

        /// <summary>
        /// Its chunks of Q, K and V copied out of its tensors, after the caller's work; each K/V chunk quantized once (the
        /// call waits for the codes). With NonFinite = Throw, the chunks' NaN/Inf are counted here, before any transfer.
        /// </summary>
        public void Load()
        {
            var (partition, dims) = (engine.Partition, Dims);
            var inputs = Own(tensors.Caller.Record());
            state.Compute.Wait(inputs);
            state.Transfer.Wait(inputs);
            var kvOptions = engine._options with { Causal = false };
            var home = new QuantizedKeysValues[_queries.Length];
            foreach (var (position, chunk) in _queries.Index())
            {
                var range = new TokenRange(tensors.Start(partition, chunk), partition.Chunk(chunk).Length);
                var qChunk = ChunkOf(dims.HeadsQ, range.Length, tensors.QLayout);
                DenseTensor.Copy(state.Compute, tensors.Q.Buffer, Whole(dims.HeadsQ, tensors.QLayout), qChunk.AllHeads, range,
                    state.Buffers.Get<Half>($"q{position}", qChunk.Elements), qChunk, 0, 0);
                var (kChunk, vChunk) = (ChunkOf(dims.HeadsKv, range.Length, tensors.KLayout), ChunkOf(dims.HeadsKv, range.Length, tensors.VLayout));
                var (k, v) = (state.Buffers.Get<Half>("k", kChunk.Elements), state.Buffers.Get<Half>("v", vChunk.Elements));
                DenseTensor.Copy(state.Compute, tensors.K.Buffer, Whole(dims.HeadsKv, tensors.KLayout), kChunk.AllHeads, range, k, kChunk, 0, 0);
                DenseTensor.Copy(state.Compute, tensors.V.Buffer, Whole(dims.HeadsKv, tensors.VLayout), vChunk.AllHeads, range, v, vChunk, 0, 0);
                var badQ = engine._options.NonFinite == NonFiniteInputs.Throw ? state.Attention.CountNonFinite(state.Compute, qChunk.View(state.Buffers.Get<Half>($"q{position}", qChunk.Elements)), null).Q : 0;
                try
                {
                    // Waits for the codes, so the buffers "k" and "v" may take the next chunk and any stream may read the codes.
                    home[position] = Own(state.Attention.QuantizeKeysValues(state.Compute, kChunk.View(k), vChunk.View(v), kvOptions));
                }
                catch (NonFiniteInputException e)
                {
                    throw new NonFiniteInputException(badQ, e.KCount, e.VCount);
                }
                if (badQ != 0)
                {
                    throw new NonFiniteInputException(badQ, 0, 0);
                }
            }
            _held[0] = home;
        }

        /// <summary>
        /// Step <paramref name="step"/>'s transfers: slot step mod 2 receives the K/V the rank before holds (after this
        /// rank's blocks two steps back, its last readers, are done), and what this rank held at step − 1 goes to the next.
        /// </summary>
        public RankTransfers Transfers(int step)
        {
            var schedule = engine._schedule;
            if (step >= 2)
            {
                state.Transfer.Wait(_computed[step - 2]!);
            }
            var own = _held[0]![0];
            var slot = state.Slots[step % 2];
            var incoming = engine.Partition.ChunksOf(schedule.KvSource(Rank, step)).Select((chunk, position) => QuantizedKeysValues.Receiving(own.Input,
                KvCodesLayout.For<Half>(own.Batch, own.HeadsKv, engine.Partition.Chunk(chunk).Length, own.HeadDim, own.VLayout), slot[position])).ToArray();
            _held[step] = incoming;
            return new RankTransfers(Rank, state.Transfer, _held[step - 1]!.SelectMany(kv => RingEngine.Transfers(kv, schedule.SendsTo(Rank))).ToArray(),
                incoming.SelectMany(kv => RingEngine.Transfers(kv, schedule.ReceivesFrom(Rank))).ToArray());
        }

        public void Arrived(int step) => _arrived[step] = Own(state.Transfer.Record());

        /// <summary>Step <paramref name="step"/>'s computed blocks, after its K/V arrived; queued without waiting (Load counted NaN/Inf).</summary>
        public void Attend(int step)
        {
            var (schedule, partition, dims) = (engine._schedule, engine.Partition, Dims);
            if (_arrived[step] is { } ready)
            {
                state.Compute.Wait(ready);
            }
            var keys = partition.ChunksOf(schedule.KvSource(Rank, step));
            foreach (var block in schedule.Blocks(Rank, step).Where(b => b.Computed))
            {
                var position = Array.IndexOf(_queries, block.QChunk);
                var rows = ChunkOf(dims.HeadsQ, partition.Chunk(block.QChunk).Length, TensorLayout.BHSD);
                var (blockO, blockLse) = (state.Buffers.Get<Half>("blockO", rows.Elements), state.Buffers.Get<float>("blockLse", rows.Elements / dims.HeadDim));
                var qChunk = ChunkOf(dims.HeadsQ, rows.Tokens, tensors.QLayout);
                var options = engine._options with { Causal = block.Visibility == BlockVisibility.CausalDiagonal, NonFinite = NonFiniteInputs.Ignore };
                state.Attention.Forward(state.Compute, qChunk.View(state.Buffers.Get<Half>($"q{position}", qChunk.Elements)), _held[step]![Array.IndexOf(keys, block.KvChunk)],
                    rows.View(blockO), options, blockLse);
                var (partialO, partialLse, _) = Partials(position);
                var p = _partials[position]++;
                state.Compute.Copy(blockO, 0, partialO, p * rows.Elements, rows.Elements);
                state.Compute.Copy(blockLse, 0, partialLse, p * (rows.Elements / dims.HeadDim), rows.Elements / dims.HeadDim);
            }
            _computed[step] = Own(state.Compute.Record());
        }

        /// <summary>Each Q chunk's partials merged by LSE into its rows of O and the LSE.</summary>
        public void Merge()
        {
            var (partition, dims) = (engine.Partition, Dims);
            var o = Whole(dims.HeadsQ, TensorLayout.BHSD);
            var lse = o with { HeadDim = 1 };
            foreach (var (position, chunk) in _queries.Index())
            {
                var rows = ChunkOf(dims.HeadsQ, partition.Chunk(chunk).Length, TensorLayout.BHSD);
                var lseRows = rows with { HeadDim = 1 };
                var (partialO, partialLse, count) = Partials(position);
                var (mergedO, mergedLse) = (state.Buffers.Get<Half>("mergedO", rows.Elements), state.Buffers.Get<float>("mergedLse", lseRows.Elements));
                Int8Attention.Merge(state.Compute, dims.HeadDim, partialO, partialLse, count, lseRows.Elements, mergedO, mergedLse);
                var start = tensors.Start(partition, chunk);
                DenseTensor.Copy(state.Compute, mergedO, rows, rows.AllHeads, rows.AllTokens, tensors.O, o, 0, start);
                DenseTensor.Copy(state.Compute, mergedLse, lseRows, lseRows.AllHeads, lseRows.AllTokens, tensors.Lse, lse, 0, start);
            }
        }

        public void Dispose()
        {
            foreach (var item in _owned)
            {
                item.Dispose();
            }
            _owned.Clear();
        }

        /// <summary>The rank's tensor of <paramref name="heads"/> heads: over the whole sequence or its own tokens.</summary>
        private DenseTensor Whole(int heads, TensorLayout layout) => ChunkOf(heads, tensors.Tokens(engine.Partition), layout);

        /// <summary>A chunk's tensor: <paramref name="heads"/> heads of <paramref name="tokens"/> tokens.</summary>
        private DenseTensor ChunkOf(int heads, int tokens, TensorLayout layout) => new(Dims.Batch, heads, tokens, Dims.HeadDim, layout);

        /// <summary>A Q chunk's partial O and LSE buffers, [partials][B·Hq·tokens](·D): one partial per block computed for it.</summary>
        private (DeviceBuffer<Half> O, DeviceBuffer<float> Lse, int Count) Partials(int position)
        {
            var (schedule, dims) = (engine._schedule, Dims);
            var chunk = _queries[position];
            var count = Enumerable.Range(0, schedule.Steps).Sum(t => schedule.Blocks(Rank, t).Count(b => b.Computed && b.QChunk == chunk));
            var rows = (long)dims.Batch * dims.HeadsQ * engine.Partition.Chunk(chunk).Length;
            return (state.Buffers.Get<Half>($"partialO{position}", count * rows * dims.HeadDim), state.Buffers.Get<float>($"partialLse{position}", count * rows), count);
        }

        private T Own<T>(T item) where T : IDisposable
        {
            _owned.Add(item);
            return item;
        }
    }
}
