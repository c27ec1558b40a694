using KernelDsl;
using KernelDsl.Attention.ContextParallel;
using KernelDsl.Attention.FlashAttention;
using KernelDsl.Attention.Quantization;
using KernelDsl.Attention.Reference;

namespace AttentionTests.ContextParallel;

/// <summary>
/// What context parallelism moves and checks, without a GPU: the 2D copies of tensor boxes (run here on arrays against
/// the references' Slice and Place), which send each receive takes, the codes' lengths both sides compute, the call
/// signatures ranks compare, and each rank's argument checks.
/// </summary>
public class RankTransportTests
{
    // batch, heads, tokens, layout; boxes of heads × tokens between tensors of other extents
    public static TheoryData<int, TensorLayout> Layouts() => new()
    {
        { 1, TensorLayout.BHSD }, { 3, TensorLayout.BHSD }, { 1, TensorLayout.BSHD }, { 3, TensorLayout.BSHD },
    };

    [Theory]
    [MemberData(nameof(Layouts))]
    public void Box_copies_move_exactly_the_heads_and_tokens_asked_for(int batch, TensorLayout layout)
    {
        const int d = 4;
        var random = new Random(batch * 10 + (int)layout);
        // (source heads, source tokens, target heads, target tokens, heads box, tokens box, to head, to token)
        var boxes = new (int Hs, int Ss, int Ht, int St, HeadRange Heads, TokenRange Tokens, int ToHead, int ToToken)[]
        {
            (4, 30, 4, 7, new(0, 4), new(11, 7), 0, 0),       // a ring chunk out of the whole sequence
            (4, 7, 4, 30, new(0, 4), new(0, 7), 0, 23),       // its merged rows back
            (4, 30, 4, 30, new(0, 4), new(0, 30), 0, 0),      // the whole tensor
            (8, 13, 2, 13, new(4, 2), new(0, 13), 0, 0),      // a peer's heads of a rank's tokens (Ulysses)
            (2, 13, 8, 13, new(0, 2), new(0, 13), 6, 0),      // and back among every head
            (8, 30, 2, 11, new(2, 2), new(19, 5), 0, 6),      // a peer's heads of one chunk, from the whole sequence
            (2, 5, 8, 30, new(0, 2), new(1, 3), 5, 20),       // both ranges partial on both sides
        };
        foreach (var box in boxes)
        {
            var (source, target) = (new DenseTensor(batch, box.Hs, box.Ss, d, layout), new DenseTensor(batch, box.Ht, box.St, d, layout));
            var from = Enumerable.Range(0, (int)source.Elements).Select(_ => random.Next()).ToArray();
            var into = Enumerable.Range(0, (int)target.Elements).Select(_ => -1).ToArray();
            var expected = (int[])into.Clone();
            var part = AttentionTensors.Slice<int>(from, batch, box.Hs, box.Ss, d, layout, box.Heads.Start..box.Heads.End, box.Tokens.ToRange());
            AttentionTensors.Place<int>(part, expected, batch, box.Ht, box.St, d, layout, box.ToHead..(box.ToHead + box.Heads.Count), box.ToToken..(box.ToToken + box.Tokens.Length));
            var plan = DenseTensor.Plan(source, box.Heads, box.Tokens, target, box.ToHead, box.ToToken);
            foreach (var c in plan)
            {
                for (var row = 0L; row < c.Height; row++)
                {
                    Array.Copy(from, c.SourceOffset + row * c.SourcePitch, into, c.TargetOffset + row * c.TargetPitch, c.Width);
                }
            }
            Assert.True(expected.SequenceEqual(into), $"{layout} B {batch}: box {box}");
            // One copy when the box spans either axis below the batch whole on both sides; one per batch otherwise.
            var whole = box.Heads.Count == box.Hs && box.Heads.Count == box.Ht || box.Tokens.Length == box.Ss && box.Tokens.Length == box.St;
            Assert.Equal(whole ? 1 : batch, plan.Length);
        }
    }

    [Fact]
    public void Box_copies_refuse_boxes_outside_either_tensor_and_other_layouts()
    {
        var (a, b) = (new DenseTensor(1, 4, 30, 8, TensorLayout.BHSD), new DenseTensor(1, 4, 10, 8, TensorLayout.BHSD));
        Assert.Equal("source", Assert.Throws<ArgumentException>(() => DenseTensor.Plan(a, new(0, 4), new(25, 10), b, 0, 0)).ParamName);
        Assert.Equal("target", Assert.Throws<ArgumentException>(() => DenseTensor.Plan(a, new(0, 4), new(0, 10), b, 0, 1)).ParamName);
        Assert.Equal("target", Assert.Throws<ArgumentException>(() => DenseTensor.Plan(a, new(0, 4), new(0, 10), b with { Layout = TensorLayout.BSHD }, 0, 0)).ParamName);
        Assert.Equal("target", Assert.Throws<ArgumentException>(() => DenseTensor.Plan(a, new(0, 4), new(0, 10), b with { HeadDim = 4 }, 0, 0)).ParamName);
    }

    private sealed class Fake(int peer, long count, string name) : Transfer(peer, count)
    {
        public string Name => name;
        public override void Send(NcclCommunicator communicator, CudaStream stream) => throw new NotSupportedException();
        public override void Receive(NcclCommunicator communicator, CudaStream stream) => throw new NotSupportedException();
        public override void CopyTo(CudaStream stream, Transfer receive) => throw new NotSupportedException();
    }

    [Fact]
    public void Sends_match_receives_in_order_per_pair_as_nccl_pairs_them()
    {
        // A ring of three: each rank sends two buffers to the next and receives two from the one before; rank 1 also to itself.
        var group = Enumerable.Range(0, 3).Select(r => new RankTransfers(r, null!,
            [new Fake((r + 1) % 3, 10, $"{r}a"), new Fake((r + 1) % 3, 20, $"{r}b"), .. r == 1 ? new[] { new Fake(1, 5, "self") } : []],
            [new Fake((r + 2) % 3, 10, $"into {r}a"), new Fake((r + 2) % 3, 20, $"into {r}b"), .. r == 1 ? new[] { new Fake(1, 5, "into self") } : []])).ToArray();
        var pairs = TransferMatching.Match(group).Select(p => $"{p.Sender}->{p.Receiver} {((Fake)p.Send).Name}:{((Fake)p.Receive).Name}").ToArray();
        Assert.Equal(["0->1 0a:into 1a", "0->1 0b:into 1b", "1->1 self:into self", "1->2 1a:into 2a", "1->2 1b:into 2b", "2->0 2a:into 0a", "2->0 2b:into 0b"], pairs);

        var missing = group.Select(g => g.Rank == 2 ? g with { Receives = g.Receives.Take(1).ToArray() } : g).ToArray();
        Assert.Contains("receives 1", Assert.Throws<InvalidOperationException>(() => TransferMatching.Match(missing)).Message);
        var stranger = group.Select(g => g.Rank == 0 ? g with { Sends = [new Fake(7, 1, "x")] } : g).ToArray();
        Assert.Contains("rank 7", Assert.Throws<InvalidOperationException>(() => TransferMatching.Match(stranger)).Message);
    }

    [Fact]
    public void Both_sides_of_a_hop_compute_the_same_code_lengths_from_the_chunk_alone()
    {
        var natural = KvCodesLayout.For<Half>(2, 4, 1000, 128, VLayout.Natural);
        Assert.Equal(2L * 4 * 1000 * 128, natural.KCodes);
        Assert.Equal(natural.KCodes, natural.VCodes);
        Assert.Equal(QuantizeKSmoothBlock64D128.ScaleCount(2, 4, 1000), natural.KScales);
        Assert.Equal(2L * 4 * 128, natural.Channels);
        var pi = KvCodesLayout.For<Half>(2, 4, 1000, 128, VLayout.Pretransposed);
        Assert.Equal(QuantizeVChannelPiD128.PaddedTokens(1000), pi.VTokens);
        Assert.Equal(pi.Channels * pi.VTokens, pi.VCodes);
        Assert.True(KvCodesLayout.For<Half>(1, 1, 129, 64, VLayout.PretransposedE4M3).VE4M3);
        Assert.Equal(KvCodesLayout.For<Half>(1, 2, 77, 64, VLayout.Natural), KvCodesLayout.For<Half>(1, 2, 77, 64, VLayout.Natural));
    }

    [Fact]
    public void Ranks_compare_their_calls_and_a_difference_names_its_argument()
    {
        var partition = new SequencePartition(4, 1000, SequenceSplit.ZigZag);
        var dims = new AttentionDims(1, 8, 2, 250, 250, 128);
        var options = new AttentionOptions { Causal = true };
        var layouts = (TensorLayout.BHSD, TensorLayout.BSHD, TensorLayout.BSHD);
        var mine = CallSignature.Of(ContextParallelMethod.Ring, partition, true, dims, options, layouts);
        Assert.Equal(mine, CallSignature.FromArray(mine.ToArray()));
        CallSignature.ThrowIfDisagreeing([mine, mine, mine, mine], 2);

        void Differs(CallSignature other, string argument, string text)
        {
            var error = Assert.Throws<ArgumentException>(() => CallSignature.ThrowIfDisagreeing([mine, mine, other, mine], 1));
            Assert.Equal(argument, error.ParamName);
            Assert.Contains($"Rank 2's call differs from this rank's (1) in its {text}", error.Message);
        }
        Differs(mine with { Tokens = 1002 }, "schedule", "tokens: 1002 against 1000");
        Differs(mine with { Split = SequenceSplit.Contiguous }, "schedule", "split: Contiguous against ZigZag");
        Differs(mine with { Method = ContextParallelMethod.Ulysses }, "method", "method: Ulysses against Ring");
        Differs(mine with { HeadsKv = 8 }, "k", "K/V heads: 8 against 2");
        Differs(mine with { KLayout = TensorLayout.BHSD }, "k", "layout: BHSD against BSHD");
        Differs(mine with { Causal = false }, "options", "causal: not causal against causal");
        Differs(CallSignature.Of(ContextParallelMethod.Ring, partition, true, dims, options with { SoftmaxScale = 0.1f }, layouts), "options", "softmax scale");
        Assert.Equal(mine, CallSignature.Of(ContextParallelMethod.Ring, partition, true, dims, options with { SoftmaxScale = 1f / MathF.Sqrt(128) }, layouts));
    }

    [Fact]
    public void A_ranks_communicator_devices_and_tokens_are_checked_before_any_transfer()
    {
        var partition = new SequencePartition(4, 1001, SequenceSplit.ZigZag);
        ContextParallelArguments.Communicator(4, partition);
        var ranks = Assert.Throws<ArgumentException>(() => ContextParallelArguments.Communicator(2, partition));
        Assert.Equal("communicator", ranks.ParamName);
        Assert.Contains("2 ranks", ranks.Message);
        Assert.Contains("among 4", ranks.Message);

        ContextParallelArguments.Device(1, 1, 1, "q");
        var device = Assert.Throws<ArgumentException>(() => ContextParallelArguments.Device(0, 1, 1, "stream"));
        Assert.Equal("stream", device.ParamName);
        Assert.Contains("device 0; rank 1's communicator runs on device 1", device.Message);

        // Rank 0 holds chunks 0 (126 tokens) and 7 (125): 251 tokens.
        ContextParallelArguments.RankTokens(251, 251, partition, 0);
        var q = Assert.Throws<ArgumentException>(() => ContextParallelArguments.RankTokens(1001, 1001, partition, 0));
        Assert.Equal("q", q.ParamName);
        Assert.Contains("rank 0 holds 251 of the 1001 (chunks [0, 126) and [876, 1001))", q.Message);
        Assert.Equal("k", Assert.Throws<ArgumentException>(() => ContextParallelArguments.RankTokens(251, 250, partition, 0)).ParamName);
    }

    [Theory]
    [InlineData(SequenceSplit.ZigZag, TensorLayout.BSHD)]
    [InlineData(SequenceSplit.Contiguous, TensorLayout.BHSD)]
    public void A_rank_shard_is_its_chunks_back_to_back_and_unsharding_every_rank_gives_the_whole(SequenceSplit split, TensorLayout layout)
    {
        var partition = new SequencePartition(4, 37, split);
        var whole = Enumerable.Range(0, 2 * 3 * 37 * 4).ToArray();
        var rebuilt = new int[whole.Length];
        for (var rank = 0; rank < 4; rank++)
        {
            var shard = ContextParallelReference.Shard<int>(whole, 2, 3, 4, layout, partition, rank);
            Assert.Equal(2 * 3 * partition.LocalTokens(rank) * 4, shard.Length);
            var first = partition.RangesOf(rank)[0];
            Assert.Equal(AttentionTensors.Slice<int>(whole, 2, 3, 37, 4, layout, .., first.ToRange()),
                AttentionTensors.Slice<int>(shard, 2, 3, partition.LocalTokens(rank), 4, layout, .., ..first.Length));
            ContextParallelReference.Unshard<int>(shard, rebuilt, 2, 3, 4, layout, partition, rank);
        }
        Assert.Equal(whole, rebuilt);
    }
}
