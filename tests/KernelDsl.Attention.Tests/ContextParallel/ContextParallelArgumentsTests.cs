using KernelDsl.Attention.ContextParallel;
using KernelDsl.Attention.FlashAttention;
using KernelDsl.Attention.Reference;

namespace AttentionTests.ContextParallel;

/// <summary>What the simulated ring refuses before anything reaches the GPU.</summary>
public class ContextParallelArgumentsTests
{
    private static readonly RingSchedule Causal = new(new SequencePartition(4, 100, SequenceSplit.ZigZag), Causal: true);

    [Fact]
    public void Options_must_match_the_schedule_and_keep_K_and_V_quantized()
    {
        ContextParallelArguments.Options(new AttentionOptions { Causal = true }, Causal);
        ContextParallelArguments.Options(new AttentionOptions { Causal = true, V = VStrategy.Pretransposed }, Causal);
        Assert.Contains("must agree", Assert.Throws<ArgumentException>(() => ContextParallelArguments.Options(new AttentionOptions(), Causal)).Message);
        Assert.Equal("options", Assert.Throws<ArgumentException>(() => ContextParallelArguments.Options(new AttentionOptions { Causal = true, Pv = PvPrecision.Float16 }, Causal)).ParamName);
        Assert.Equal("options", Assert.Throws<ArgumentException>(() => ContextParallelArguments.Options(new AttentionOptions { Causal = true, Autotune = true }, Causal)).ParamName);
    }

    [Fact]
    public void Q_and_K_V_must_be_the_partitions_sequence_with_a_merged_head_dim()
    {
        ContextParallelArguments.Tokens(100, 100, Causal.Partition);
        Assert.Equal("schedule", Assert.Throws<ArgumentException>(() => ContextParallelArguments.Tokens(100, 120, Causal.Partition)).ParamName);
        Assert.Equal("schedule", Assert.Throws<ArgumentException>(() => ContextParallelArguments.Tokens(99, 99, Causal.Partition)).ParamName);
        ContextParallelArguments.MergedHeadDim(128);
        Assert.Contains("64, 128", Assert.Throws<ArgumentException>(() => ContextParallelArguments.MergedHeadDim(96)).Message);
    }

    [Theory]
    [InlineData(float.NaN)]
    [InlineData(0f)]
    [InlineData(-0.1f)]
    [InlineData(float.PositiveInfinity)]
    public void The_softmax_scale_is_checked_before_the_ranks_agree(float scale)
    {
        // Kernels runs before Agree on both NCCL methods: a bad scale is this rank's ArgumentException and costs no communicator.
        ContextParallelArguments.Kernels(new AttentionOptions { Causal = true, SoftmaxScale = 0.1f }, 128, 90, bothMasks: true);
        var error = Assert.ThrowsAny<ArgumentException>(() => ContextParallelArguments.Kernels(new AttentionOptions { Causal = true, SoftmaxScale = scale }, 128, 90, bothMasks: true));
        Assert.Equal("options", error.ParamName);
        Assert.Contains("SoftmaxScale", error.Message);
        Assert.Equal("options", Assert.ThrowsAny<ArgumentException>(() => ContextParallelArguments.Kernels(new AttentionOptions { SoftmaxScale = scale }, 64, 90, bothMasks: false)).ParamName);
    }

    [Theory]
    [InlineData(TensorLayout.BHSD)]
    [InlineData(TensorLayout.BSHD)]
    public void Dense_layouts_are_recognised_by_their_strides(TensorLayout layout)
    {
        var s = new AttentionShape(2, 4, 4, 100, 100, 64, layout: layout).QStrides;
        Assert.Equal(layout, ContextParallelArguments.Layout([2, 4, 100, 64], [s.Batch, s.Head, s.Token, 1], "q"));
        // One head: both orders are the same memory.
        Assert.Equal(TensorLayout.BHSD, ContextParallelArguments.Layout([2, 1, 100, 64], [6400, 6400, 64, 1], "q"));
        // A strided view (every other token) is not dense: its chunks are not token ranges of one 2D copy.
        var error = Assert.Throws<ArgumentException>(() => ContextParallelArguments.Layout([2, 4, 100, 64], [s.Batch * 2, s.Head * 2, s.Token * 2, 1], "k"));
        Assert.Equal("k", error.ParamName);
        Assert.Contains("dense", error.Message);
    }

    [Fact]
    public void Ulysses_layout_must_split_the_heads_and_tokens_q_and_k_have()
    {
        var layout = new UlyssesLayout(new SequencePartition(2, 100, SequenceSplit.ZigZag), 8, 2);
        var dims = new AttentionDims(1, 8, 2, 100, 100, 64);
        ContextParallelArguments.Heads(layout, dims);
        var heads = Assert.Throws<ArgumentException>(() => ContextParallelArguments.Heads(layout, dims with { HeadsKv = 4 }));
        Assert.Equal("layout", heads.ParamName);
        Assert.Contains("8 query and 2 K/V heads", heads.Message);
        ContextParallelArguments.Tokens(100, 100, layout.Partition, "layout");
        var tokens = Assert.Throws<ArgumentException>(() => ContextParallelArguments.Tokens(99, 99, layout.Partition, "layout"));
        Assert.Equal("layout", tokens.ParamName);
        Assert.Contains("the layout partitions one sequence of 100", tokens.Message);
    }

    [Fact]
    public void The_ring_signs_the_default_kernels_V_strategy_and_tile_not_default()
    {
        // An H100 and an A100 resolve "default" to kernels that read V in different layouts: the ranks agree on these.
        var hopper = ContextParallelArguments.Explicit(new AttentionOptions { Causal = true }, 128, 90);
        Assert.Equal((VStrategy?)VStrategy.Pretransposed, hopper.V);
        Assert.Equal(Int8AttentionD128WgmmaStages3.Tile, hopper.Tile);
        ContextParallelArguments.Kernels(hopper, 128, 90, bothMasks: true);  // the non-causal blocks read the same layout
        var ampere = ContextParallelArguments.Explicit(new AttentionOptions { Causal = true }, 128, 80);
        Assert.Equal((VStrategy?)VStrategy.TransPrmt, ampere.V);
        Assert.NotEqual(hopper.V, ampere.V);
        // What the caller chose, and the modes without a V strategy, pass unchanged.
        var given = new AttentionOptions { V = VStrategy.Movmatrix };
        Assert.Same(given, ContextParallelArguments.Explicit(given, 128, 90));
        var fp8 = new AttentionOptions { Pv = PvPrecision.E4M3 };
        Assert.Same(fp8, ContextParallelArguments.Explicit(fp8, 128, 90));
    }

    [Fact]
    public void A_mode_without_a_declared_kernel_is_named_before_ranks_move_data()
    {
        ContextParallelArguments.Kernels(new AttentionOptions { Causal = true }, 128, 90, bothMasks: true);
        ContextParallelArguments.Kernels(new AttentionOptions { V = VStrategy.Pretransposed }, 64, 90, bothMasks: false);
        // D = 64's pretransposed V is declared for Hopper only.
        var hopper = Assert.Throws<ArgumentException>(() => ContextParallelArguments.Kernels(new AttentionOptions { V = VStrategy.Pretransposed }, 64, 80, bothMasks: false));
        Assert.Equal("options", hopper.ParamName);
        Assert.Contains("sm_80", hopper.Message);
        Assert.Equal("options", Assert.Throws<ArgumentException>(() => ContextParallelArguments.Kernels(new AttentionOptions { Tile = "no-such-tile" }, 128, 90, bothMasks: true)).ParamName);
    }
}
