using KernelDsl.Attention.FlashAttention;
using KernelDsl.Attention.Reference;

namespace KernelDsl.Attention.ContextParallel;

/// <summary>
/// Ulysses (<see cref="UlyssesLayout"/>) for the ranks one caller drives, over any <see cref="IRankTransport"/>: the
/// sequence → heads all-to-all (each rank packs, per peer, that peer's heads of its own tokens; each receives its heads
/// of every rank's tokens and places them where the tokens lie in the sequence), one <see cref="Int8Attention"/> call
/// per rank on its heads over the whole sequence, and the heads → sequence all-to-all of O and the LSE (each rank
/// packs, per peer, its heads of that peer's tokens; each places what it receives among its own rows). Pieces are
/// dense [B][heads][tokens][D] in the tensor's layout (O and the LSE: BHSD), one buffer per peer. Everything of a rank
/// runs on its compute stream: the all-to-alls are on the critical path, with nothing to overlap them with.
/// </summary>
internal static class UlyssesEngine
{
    /// <summary>
    /// Runs <paramref name="layout"/> for <paramref name="ranks"/> (checked by the caller) and returns when their O and
    /// LSE are written. <paramref name="dims"/> are the whole sequence's.
    /// </summary>
    public static void Run(IRankTransport transport, UlyssesLayout layout, AttentionDims dims, AttentionOptions options, IReadOnlyList<(RankState State, RankTensors Tensors)> ranks)
    {
        var runs = ranks.Select(r => new RankRun(layout, dims, options, r.State, r.Tensors)).ToArray();
        var completed = false;
        try
        {
            LoadAgreement.Run(transport, runs.Select(r => (r.Rank, r.State.Compute, (Action)r.Load)).ToArray());
            transport.Exchange(runs.Select(r => r.ToHeads()).ToArray());
            transport.Exchange(runs.Select(r => r.Attend()).ToArray());
            foreach (var run in runs)
            {
                run.ToSequence();
            }
            completed = true;
        }
        finally
        {
            RingEngine.Drain(transport, runs.Select(r => (r.State, (IDisposable)r)), failing: !completed);
        }
    }

    private sealed class RankRun(UlyssesLayout layout, AttentionDims dims, AttentionOptions options, RankState state, RankTensors tensors) : IDisposable
    {
        private readonly List<IDisposable> _owned = [];
        private RankTransfers? _toHeads;

        public RankState State => state;

        public int Rank => tensors.Rank;

        private SequencePartition Partition => layout.Partition;

        private CudaStream Stream => state.Compute;

        private IEnumerable<int> Peers => Enumerable.Range(0, layout.Ranks);

        /// <summary>
        /// After the caller's work, packs the sequence → heads all-to-all's pieces (<see cref="ToHeads"/>); with NonFinite =
        /// Throw, counts their NaN/Inf, before any transfer: together the pieces are exactly this rank's tokens of Q, K and
        /// V, also when simulated ranks read the whole sequence's tensors.
        /// </summary>
        public void Load()
        {
            var inputs = tensors.Caller.Record();
            _owned.Add(inputs);
            Stream.Wait(inputs);
            _toHeads = Pack();
            if (options.NonFinite != NonFiniteInputs.Throw)
            {
                return;
            }
            var (q, k, v) = (0L, 0L, 0L);
            foreach (var peer in Peers)
            {
                var pieces = Inputs().Select(input =>
                {
                    // Pack's buffer for this peer, by name.
                    var piece = Tensor(input.Shard(peer).Count, Partition.LocalTokens(Rank), input.Layout, dims.HeadDim);
                    return piece.View(state.Buffers.Get<Half>($"{input.Name}Out{peer}", piece.Elements));
                }).ToArray();
                var counts = state.Attention.CountNonFinite(Stream, pieces[0], (pieces[1], pieces[2]));
                (q, k, v) = (q + counts.Q, k + counts.K, v + counts.V);
            }
            if (q + k + v != 0)
            {
                throw new NonFiniteInputException(q, k, v);
            }
        }

        /// <summary>The sequence → heads all-to-all's transfers, packed by <see cref="Load"/>.</summary>
        public RankTransfers ToHeads() => _toHeads ?? throw new InvalidOperationException("A rank sends its pieces once it has loaded them.");

        /// <summary>The sequence → heads all-to-all's transfers: to each peer its heads of this rank's tokens of Q, K and V; from each, this rank's heads of its tokens.</summary>
        private RankTransfers Pack()
        {
            var (sends, receives) = (new List<Transfer>(), new List<Transfer>());
            foreach (var (name, source, heads, tensorLayout, shard) in Inputs())
            {
                var whole = Tensor(heads, tensors.Tokens(Partition), tensorLayout, dims.HeadDim);
                foreach (var peer in Peers)
                {
                    // To the peer: its heads of this rank's tokens, chunk by chunk where they lie in this rank's tensor.
                    var piece = Tensor(shard(peer).Count, Partition.LocalTokens(Rank), tensorLayout, dims.HeadDim);
                    var outgoing = state.Buffers.Get<Half>($"{name}Out{peer}", piece.Elements);
                    foreach (var chunk in Partition.ChunksOf(Rank))
                    {
                        DenseTensor.Copy(Stream, source.Buffer, whole, shard(peer), new TokenRange(tensors.Start(Partition, chunk), Partition.Chunk(chunk).Length),
                            outgoing, piece, 0, Partition.LocalRange(chunk).Start);
                    }
                    sends.Add(Transfer.Of(outgoing, 0, piece.Elements, peer));
                    // From the peer: this rank's heads of the peer's tokens.
                    var incoming = Tensor(shard(Rank).Count, Partition.LocalTokens(peer), tensorLayout, dims.HeadDim);
                    receives.Add(Transfer.Of(state.Buffers.Get<Half>($"{name}In{peer}", incoming.Elements), 0, incoming.Elements, peer));
                }
            }
            return new RankTransfers(Rank, Stream, sends, receives);
        }

        /// <summary>
        /// Places the received pieces where their tokens lie in the sequence, attends this rank's heads over the whole
        /// sequence in one call, and returns the heads → sequence all-to-all's transfers of O and the LSE.
        /// </summary>
        public RankTransfers Attend()
        {
            var views = new Dictionary<string, TensorView<Half>>();
            foreach (var (name, _, _, tensorLayout, shard) in Inputs())
            {
                var heads = Tensor(shard(Rank).Count, Partition.Tokens, tensorLayout, dims.HeadDim);
                var target = state.Buffers.Get<Half>($"{name}Heads", heads.Elements);
                foreach (var peer in Peers)
                {
                    var piece = heads with { Tokens = Partition.LocalTokens(peer) };
                    foreach (var chunk in Partition.ChunksOf(peer))
                    {
                        DenseTensor.Copy(Stream, state.Buffers.Get<Half>($"{name}In{peer}", piece.Elements), piece, piece.AllHeads, Partition.LocalRange(chunk),
                            target, heads, 0, Partition.Chunk(chunk).Start);
                    }
                }
                views[name] = heads.View(target);
            }
            var o = Tensor(layout.QHeads(Rank).Count, Partition.Tokens, TensorLayout.BHSD, dims.HeadDim);
            var lse = o with { HeadDim = 1 };
            var (oHeads, lseHeads) = (state.Buffers.Get<Half>("oHeads", o.Elements), state.Buffers.Get<float>("lseHeads", lse.Elements));
            state.Attention.Forward(Stream, views["q"], views["k"], views["v"], o.View(oHeads), options with { NonFinite = NonFiniteInputs.Ignore }, lseHeads);

            var (sends, receives) = (new List<Transfer>(), new List<Transfer>());
            foreach (var peer in Peers)
            {
                // To the peer: this rank's heads of the peer's tokens, back to back as the peer holds them.
                var (oPiece, lsePiece) = (o with { Tokens = Partition.LocalTokens(peer) }, lse with { Tokens = Partition.LocalTokens(peer) });
                var (oOut, lseOut) = (state.Buffers.Get<Half>($"oOut{peer}", oPiece.Elements), state.Buffers.Get<float>($"lseOut{peer}", lsePiece.Elements));
                foreach (var chunk in Partition.ChunksOf(peer))
                {
                    var tokens = Partition.Chunk(chunk);
                    DenseTensor.Copy(Stream, oHeads, o, o.AllHeads, tokens, oOut, oPiece, 0, Partition.LocalRange(chunk).Start);
                    DenseTensor.Copy(Stream, lseHeads, lse, lse.AllHeads, tokens, lseOut, lsePiece, 0, Partition.LocalRange(chunk).Start);
                }
                sends.Add(Transfer.Of(oOut, 0, oPiece.Elements, peer));
                sends.Add(Transfer.Of(lseOut, 0, lsePiece.Elements, peer));
                // From the peer: its heads of this rank's tokens.
                var (oIn, lseIn) = Received(peer);
                receives.Add(Transfer.Of(state.Buffers.Get<Half>($"oIn{peer}", oIn.Elements), 0, oIn.Elements, peer));
                receives.Add(Transfer.Of(state.Buffers.Get<float>($"lseIn{peer}", lseIn.Elements), 0, lseIn.Elements, peer));
            }
            return new RankTransfers(Rank, Stream, sends, receives);
        }

        /// <summary>Each peer's heads of this rank's rows, placed among its rows of O and the LSE.</summary>
        public void ToSequence()
        {
            var o = Tensor(dims.HeadsQ, tensors.Tokens(Partition), TensorLayout.BHSD, dims.HeadDim);
            var lse = o with { HeadDim = 1 };
            foreach (var peer in Peers)
            {
                var (oIn, lseIn) = Received(peer);
                foreach (var chunk in Partition.ChunksOf(Rank))
                {
                    var (local, start) = (Partition.LocalRange(chunk), tensors.Start(Partition, chunk));
                    DenseTensor.Copy(Stream, state.Buffers.Get<Half>($"oIn{peer}", oIn.Elements), oIn, oIn.AllHeads, local, tensors.O, o, layout.QHeads(peer).Start, start);
                    DenseTensor.Copy(Stream, state.Buffers.Get<float>($"lseIn{peer}", lseIn.Elements), lseIn, lseIn.AllHeads, local, tensors.Lse, lse, layout.QHeads(peer).Start, start);
                }
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

        /// <summary>What a peer sends back: its query heads of this rank's tokens, O and LSE.</summary>
        private (DenseTensor O, DenseTensor Lse) Received(int peer)
        {
            var o = Tensor(layout.QHeads(peer).Count, Partition.LocalTokens(Rank), TensorLayout.BHSD, dims.HeadDim);
            return (o, o with { HeadDim = 1 });
        }

        /// <summary>Q, K and V: their names, tensors, head counts, layouts and each rank's head shard.</summary>
        private (string Name, TensorView<Half> Source, int Heads, TensorLayout Layout, Func<int, HeadRange> Shard)[] Inputs() =>
        [
            ("q", tensors.Q, dims.HeadsQ, tensors.QLayout, layout.QHeads),
            ("k", tensors.K, dims.HeadsKv, tensors.KLayout, layout.KvHeads),
            ("v", tensors.V, dims.HeadsKv, tensors.VLayout, layout.KvHeads),
        ];

        private DenseTensor Tensor(int heads, int tokens, TensorLayout tensorLayout, int headDim) => new(dims.Batch, heads, tokens, headDim, tensorLayout);
    }
}
