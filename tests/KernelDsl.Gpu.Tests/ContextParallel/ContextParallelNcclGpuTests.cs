using System.Diagnostics;
using AttentionTests.Reference;
using KernelDsl;
using KernelDsl.Attention.ContextParallel;
using KernelDsl.Attention.FlashAttention;
using KernelDsl.Attention.Reference;
using KernelDsl.Runtime.Tests;
using KernelDsl.Testing;

namespace GpuTests.ContextParallel;

/// <summary>
/// <see cref="ContextParallelAttention"/> over NCCL, one rank per GPU and thread (<see cref="NcclCommunicator.InitRanks"/>):
/// each rank gets its own tokens of one sequence and returns its rows, which gathered must equal, bit for bit, the
/// simulated ring's on one GPU (the same kernels on the same codes, merged in the same order) and meet the prefill bars
/// against float64; Ulysses', one call on the whole sequence. On one GPU, a one-rank communicator runs the same code with no peer; the several-GPU cases skip as
/// one line per class where the machine has fewer GPUs.
/// </summary>
[RequiresCudaDevice]
[RequiresNccl]
public class ContextParallelNcclGpuTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    // ranks, tokens, headsQ, headsKv, headDim, causal, layout
    public static TheoryData<int, int, int, int, int, bool, TensorLayout> RingCases() => new()
    {
        { 2, 1000, 4, 2, 128, true, TensorLayout.BSHD },
        { 2, 777, 2, 2, 64, false, TensorLayout.BHSD },
        { 4, 1029, 8, 2, 128, true, TensorLayout.BHSD },
        { 4, 600, 4, 4, 64, false, TensorLayout.BSHD },
        { 8, 2053, 4, 1, 128, true, TensorLayout.BSHD },
        { 8, 515, 2, 2, 64, true, TensorLayout.BHSD },
    };

    [Theory]
    [MemberData(nameof(RingCases))]
    [RequiresCudaDevices(CountArgument = "ranks")]
    public void Ring_over_nccl_equals_the_simulated_ring_and_meets_the_prefill_bars(int ranks, int tokens, int headsQ, int headsKv, int headDim, bool causal, TensorLayout layout)
    {
        foreach (var split in causal ? new[] { SequenceSplit.ZigZag, SequenceSplit.Contiguous } : [SequenceSplit.ZigZag])
        {
            var seed = AttentionTestData.FreshSeed();
            var shape = new AttentionShape(tokens > 1000 ? 1 : 2, headsQ, headsKv, tokens, tokens, headDim, causal, layout: layout);
            var (q, k, v) = AttentionTestData.Inputs(shape, seed);
            var schedule = new RingSchedule(new SequencePartition(ranks, tokens, split), causal);
            var options = new AttentionOptions { Causal = causal };
            var (o, lse) = Gather(shape, schedule.Partition, OnRanks(ranks, comm => Ring(comm, shape, schedule, q, k, v, options)));
            using (var device = CudaDevice.Open(0))
            {
                var (simulatedO, simulatedLse) = SimulatedRingGpuTests.Run(device, shape, schedule, q, k, v, options);
                Assert.True(simulatedO.SequenceEqual(o), $"{split} seed {seed}: O differs from the simulated ring's");
                Assert.True(simulatedLse.SequenceEqual(lse), $"{split} seed {seed}: the LSE differs from the simulated ring's");
            }
            var expected = Float64Attention.Forward(shape, q, k, v);
            var error = ErrorMetrics.Compare(o.Select(x => (double)x).ToArray(),
                AttentionTensors.Relayout<double>(expected.Output, shape.Batch, headsQ, tokens, headDim, layout, TensorLayout.BHSD));
            var lseError = ErrorMetrics.MaxAbs(ErrorMetrics.Widen(lse), expected.Lse);
            output.WriteLine($"NCCL {split} N = {ranks}, S = {tokens}, Hq {headsQ} Hkv {headsKv} D {headDim}{(causal ? " causal" : "")} {layout}, seed {seed}: {error}, LSE max abs {lseError:E3}");
            Assert.True(error.RelativeL2 <= 3e-2 && error.Cosine >= 0.999, $"{split} seed {seed}: {error}");
            Assert.True(lseError <= 0.1, $"{split} seed {seed}: LSE off by {lseError}");
        }
    }

    // ranks, tokens, headsQ, headsKv, headDim, causal, layout (heads divide among the ranks)
    public static TheoryData<int, int, int, int, int, bool, TensorLayout> UlyssesCases() => new()
    {
        { 2, 1000, 4, 2, 128, true, TensorLayout.BSHD },
        { 4, 1029, 8, 4, 128, true, TensorLayout.BHSD },
        { 8, 515, 8, 8, 64, false, TensorLayout.BSHD },
    };

    [Theory]
    [MemberData(nameof(UlyssesCases))]
    [RequiresCudaDevices(CountArgument = "ranks")]
    public void Ulysses_over_nccl_is_one_call_on_the_whole_sequence_bit_for_bit(int ranks, int tokens, int headsQ, int headsKv, int headDim, bool causal, TensorLayout layout)
    {
        foreach (var split in new[] { SequenceSplit.ZigZag, SequenceSplit.Contiguous })
        {
            var seed = AttentionTestData.FreshSeed();
            var shape = new AttentionShape(tokens > 1000 ? 1 : 2, headsQ, headsKv, tokens, tokens, headDim, causal, layout: layout);
            var (q, k, v) = AttentionTestData.Inputs(shape, seed);
            var plan = new UlyssesLayout(new SequencePartition(ranks, tokens, split), headsQ, headsKv);
            var options = new AttentionOptions { Causal = causal };
            var (o, lse) = Gather(shape, plan.Partition, OnRanks(ranks, comm => Ulysses(comm, shape, plan, q, k, v, options)));
            using var device = CudaDevice.Open(0);
            var (oneO, oneLse) = SimulatedUlyssesGpuTests.OneCall(device, shape, q, k, v, options);
            output.WriteLine($"NCCL Ulysses {split} N = {ranks}, S = {tokens}, Hq {headsQ} Hkv {headsKv} D {headDim}{(causal ? " causal" : "")} {layout}, seed {seed}");
            Assert.True(oneO.SequenceEqual(o), $"{split} seed {seed}: O differs from one call's");
            Assert.True(oneLse.SequenceEqual(lse), $"{split} seed {seed}: the LSE differs from one call's");
        }
    }

    [Fact]
    public void One_rank_runs_ulysses_with_no_peer_as_one_call()
    {
        var shape = new AttentionShape(2, 4, 2, 300, 300, 128, causal: false, layout: TensorLayout.BHSD);
        var (q, k, v) = AttentionTestData.Inputs(shape, 19);
        var plan = new UlyssesLayout(new SequencePartition(1, 300, SequenceSplit.ZigZag), 4, 2);
        var options = new AttentionOptions();
        var (o, lse) = OnRanks(1, comm => Ulysses(comm, shape, plan, q, k, v, options))[0];
        using var device = CudaDevice.Open(0);
        var (oneO, oneLse) = SimulatedUlyssesGpuTests.OneCall(device, shape, q, k, v, options);
        Assert.Equal(oneO, o);
        Assert.Equal(oneLse, lse);
    }

    [Fact]
    public void One_rank_runs_the_ring_with_no_peer_as_one_simulated_rank_does()
    {
        var shape = new AttentionShape(2, 4, 2, 300, 300, 64, causal: true, layout: TensorLayout.BSHD);
        var (q, k, v) = AttentionTestData.Inputs(shape, 17);
        var schedule = new RingSchedule(new SequencePartition(1, 300, SequenceSplit.ZigZag), true);
        var options = new AttentionOptions { Causal = true };
        var (o, lse) = OnRanks(1, comm => Ring(comm, shape, schedule, q, k, v, options))[0];
        using var device = CudaDevice.Open(0);
        var (simulatedO, simulatedLse) = SimulatedRingGpuTests.Run(device, shape, schedule, q, k, v, options);
        Assert.Equal(simulatedO, o);
        Assert.Equal(simulatedLse, lse);
    }

    [Fact]
    public void A_communicator_of_another_rank_count_and_another_ranks_tokens_are_refused_before_any_transfer()
    {
        OnRanks(1, comm =>
        {
            using var cp = new ContextParallelAttention(comm);
            using var stream = comm.Device.CreateStream();
            var options = new AttentionOptions { Causal = true };
            var (q, o, lse) = (comm.Device.Allocate<Half>(2 * 128 * 64), comm.Device.Allocate<Half>(2 * 128 * 64), comm.Device.Allocate<float>(2 * 128));
            using (q) using (o) using (lse)
            {
                var view = TensorView<Half>.Contiguous(q, 1, 2, 128, 64);
                var two = new RingSchedule(new SequencePartition(2, 256, SequenceSplit.ZigZag), true);
                Assert.Equal("communicator", Assert.Throws<ArgumentException>(() => cp.Ring(stream, two, view, view, view, o, lse, options)).ParamName);
                var longer = new RingSchedule(new SequencePartition(1, 256, SequenceSplit.ZigZag), true);
                Assert.Equal("q", Assert.Throws<ArgumentException>(() => cp.Ring(stream, longer, view, view, view, o, lse, options)).ParamName);
                Assert.False(comm.IsClosed);
            }
            return 0;
        });
    }

    [Fact]
    [RequiresCudaDevices(Count = 2)]
    public void A_stream_or_tensor_on_another_gpu_is_refused_naming_it()
    {
        OnRanks(2, comm =>
        {
            if (comm.Rank == 0)
            {
                using var cp = new ContextParallelAttention(comm);
                using var other = CudaDevice.Open(1);
                using var stream = comm.Device.CreateStream();
                using var foreign = other.CreateStream();
                var schedule = new RingSchedule(new SequencePartition(2, 256, SequenceSplit.ZigZag), true);
                using DeviceBuffer<Half> q = comm.Device.Allocate<Half>(128 * 64), elsewhere = other.Allocate<Half>(128 * 64);
                using var lse = comm.Device.Allocate<float>(128);
                var (view, away) = (TensorView<Half>.Contiguous(q, 1, 1, 128, 64), TensorView<Half>.Contiguous(elsewhere, 1, 1, 128, 64));
                var options = new AttentionOptions { Causal = true };
                Assert.Equal("stream", Assert.Throws<ArgumentException>(() => cp.Ring(foreign, schedule, view, view, view, q, lse, options)).ParamName);
                Assert.Equal("k", Assert.Throws<ArgumentException>(() => cp.Ring(stream, schedule, view, away, view, q, lse, options)).ParamName);
            }
            return 0;
        });
    }

    [Fact]
    [RequiresCudaDevices(Count = 2)]
    public void Ranks_whose_calls_differ_each_get_an_argument_exception_naming_it_and_keep_their_communicator()
    {
        var errors = OnRanks(2, comm =>
        {
            // Rank 0 splits 1000 tokens, rank 1 1002: each rank's own arguments are fine.
            var tokens = comm.Rank == 0 ? 1000 : 1002;
            var shape = new AttentionShape(1, 2, 2, tokens, tokens, 64, causal: true);
            var (q, k, v) = AttentionTestData.Inputs(shape, 3);
            var schedule = new RingSchedule(new SequencePartition(2, tokens, SequenceSplit.ZigZag), true);
            var error = Assert.Throws<ArgumentException>(() => Ring(comm, shape, schedule, q, k, v, new AttentionOptions { Causal = true }));
            Assert.False(comm.IsClosed);
            return error;
        });
        Assert.All(errors, e => Assert.Equal("schedule", e.ParamName));
        Assert.Contains("Rank 1's call differs from this rank's (0) in its tokens: 1002 against 1000", errors[0].Message);
        Assert.Contains("Rank 0's call differs from this rank's (1) in its tokens: 1000 against 1002", errors[1].Message);
    }

    [Fact]
    [RequiresCudaDevices(Count = 2)]
    public void A_rank_whose_peer_never_calls_fails_at_the_timeout_instead_of_hanging()
    {
        var clock = Stopwatch.StartNew();
        var errors = OnRanks(2, comm =>
        {
            if (comm.Rank == 1)
            {
                return null;   // never calls
            }
            var shape = new AttentionShape(1, 2, 2, 512, 512, 64, causal: true);
            var (q, k, v) = AttentionTestData.Inputs(shape, 5);
            var schedule = new RingSchedule(new SequencePartition(2, 512, SequenceSplit.ZigZag), true);
            return Assert.Throws<NcclException>(() => Ring(comm, shape, schedule, q, k, v, new AttentionOptions { Causal = true }));
        }, callTimeout: TimeSpan.FromSeconds(5));
        Assert.Equal(NcclResult.Timeout, errors[0]!.Result);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(90), $"took {clock.Elapsed}");
    }

    [Fact]
    [RequiresCudaDevices(Count = 2)]
    public void A_NaN_in_one_ranks_k_on_a_second_call_throws_on_every_rank_naming_it_before_the_timeout()
    {
        var callTimeout = TimeSpan.FromSeconds(30);
        var shape = new AttentionShape(1, 2, 2, 512, 512, 64, causal: true);
        var (q, k, v) = AttentionTestData.Inputs(shape, 7);
        var schedule = new RingSchedule(new SequencePartition(2, 512, SequenceSplit.ZigZag), true);
        var options = new AttentionOptions { Causal = true };   // NonFinite = Throw, the default
        var clock = new Stopwatch();
        var errors = OnRanks(2, comm =>
        {
            var (device, local) = (comm.Device, schedule.Partition.LocalTokens(comm.Rank));
            Half[] Shard(Half[] x) => ContextParallelReference.Shard<Half>(x, shape.Batch, 2, shape.HeadDim, shape.Layout, schedule.Partition, comm.Rank);
            using var cp = new ContextParallelAttention(comm);
            using var stream = device.CreateStream();
            using DeviceBuffer<Half> dq = device.Upload<Half>(Shard(q)), dk = device.Upload<Half>(Shard(k)), dv = device.Upload<Half>(Shard(v));
            using var o = device.Allocate<Half>((long)2 * local * shape.HeadDim);
            using var lse = device.Allocate<float>(2L * local);
            TensorView<Half> View(DeviceBuffer<Half> buffer) => TensorView<Half>.Contiguous(buffer, 1, 2, local, shape.HeadDim);
            cp.Ring(stream, schedule, View(dq), View(dk), View(dv), o, lse, options);   // the first call is clean
            if (comm.Rank == 1)
            {
                var bad = Shard(k);
                bad[bad.Length / 2] = Half.NaN;
                dk.CopyFrom(bad);
            }
            lock (clock)
            {
                clock.Start();
            }
            return Assert.Throws<NonFiniteInputException>(() => cp.Ring(stream, schedule, View(dq), View(dk), View(dv), o, lse, options));
        }, callTimeout: callTimeout);
        Assert.All(errors, e => Assert.Equal(1, e.Rank));
        Assert.All(errors, e => Assert.Equal("k", e.ParamName));
        Assert.Contains("Rank 1's inputs", errors[0].Message);
        Assert.True(clock.Elapsed < callTimeout, $"rank 0 learned of rank 1's NaN after {clock.Elapsed}, past the timeout: it waited instead of being told");
    }

    /// <summary>
    /// Runs <paramref name="body"/> on one thread per rank, each with its rank of one communicator over GPUs 0..ranks − 1,
    /// and returns their results in rank order; fails rather than waits if a rank does not finish. Joining always has
    /// <see cref="Timeout"/> (a short one would make a slow join fail); the calls have <paramref name="callTimeout"/>.
    /// </summary>
    internal static T[] OnRanks<T>(int ranks, Func<NcclCommunicator, T> body, TimeSpan? callTimeout = null)
    {
        var devices = Enumerable.Range(0, ranks).Select(CudaDevice.Open).ToArray();
        var calls = callTimeout ?? Timeout;
        try
        {
            var communicators = NcclCommunicator.InitRanks(devices, Timeout);
            try
            {
                foreach (var communicator in communicators)
                {
                    communicator.Timeout = calls;
                }
                var work = communicators.Select(c => Task.Factory.StartNew(() => body(c), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default)).ToArray();
                Assert.True(Task.WaitAll(work, 3 * calls), "A rank did not finish: the calls hang.");
                return work.Select(w => w.Result).ToArray();
            }
            finally
            {
                foreach (var communicator in communicators)
                {
                    communicator.Dispose();
                }
            }
        }
        finally
        {
            foreach (var device in devices)
            {
                device.Dispose();
            }
        }
    }

    /// <summary>One rank's ring call on its own tokens of the whole-sequence inputs; its O (BHSD) and LSE rows.</summary>
    internal static (Half[] O, float[] Lse) Ring(NcclCommunicator comm, AttentionShape shape, RingSchedule schedule, Half[] q, Half[] k, Half[] v, AttentionOptions options) =>
        OnRank(comm, shape, schedule.Partition, q, k, v, (cp, stream, dq, dk, dv, o, lse) => cp.Ring(stream, schedule, dq, dk, dv, o, lse, options));

    /// <summary>One rank's Ulysses call on its own tokens of the whole-sequence inputs; its O (BHSD) and LSE rows.</summary>
    internal static (Half[] O, float[] Lse) Ulysses(NcclCommunicator comm, AttentionShape shape, UlyssesLayout plan, Half[] q, Half[] k, Half[] v, AttentionOptions options) =>
        OnRank(comm, shape, plan.Partition, q, k, v, (cp, stream, dq, dk, dv, o, lse) => cp.Ulysses(stream, plan, dq, dk, dv, o, lse, options));

    internal delegate void RankCall(ContextParallelAttention cp, CudaStream stream, TensorView<Half> q, TensorView<Half> k, TensorView<Half> v, DeviceBuffer<Half> o, DeviceBuffer<float> lse);

    /// <summary>Uploads this rank's shard of Q, K and V, runs <paramref name="call"/> with O and the LSE poisoned, and returns this rank's rows.</summary>
    internal static (Half[] O, float[] Lse) OnRank(NcclCommunicator comm, AttentionShape shape, SequencePartition partition, Half[] q, Half[] k, Half[] v, RankCall call)
    {
        var (device, rank) = (comm.Device, comm.Rank);
        var local = partition.LocalTokens(rank);
        Half[] Shard(Half[] x, int heads) => ContextParallelReference.Shard<Half>(x, shape.Batch, heads, shape.HeadDim, shape.Layout, partition, rank);
        var localShape = new AttentionShape(shape.Batch, shape.HeadsQ, shape.HeadsKv, local, local, shape.HeadDim, shape.Causal, layout: shape.Layout);
        using var cp = new ContextParallelAttention(comm);
        using var stream = device.CreateStream();
        using DeviceBuffer<Half> dq = device.Upload<Half>(Shard(q, shape.HeadsQ)), dk = device.Upload<Half>(Shard(k, shape.HeadsKv)), dv = device.Upload<Half>(Shard(v, shape.HeadsKv));
        using var o = device.Allocate<Half>(localShape.QElements);
        using var lse = device.Allocate<float>(localShape.LseElements);
        o.FillBytes(0x7E);
        lse.FillBytes(0x7F);
        TensorView<Half> View(DeviceBuffer<Half> buffer, int heads, TensorStrides s) => new(buffer, [shape.Batch, heads, local, shape.HeadDim], [s.Batch, s.Head, s.Token, 1]);
        call(cp, stream, View(dq, shape.HeadsQ, localShape.QStrides), View(dk, shape.HeadsKv, localShape.KvStrides), View(dv, shape.HeadsKv, localShape.KvStrides), o, lse);
        return (o.ToArray(), lse.ToArray());
    }

    /// <summary>Every rank's rows (O dense BHSD, LSE [B][Hq][S_rank]) where their tokens lie in the whole sequence.</summary>
    internal static (Half[] O, float[] Lse) Gather(AttentionShape shape, SequencePartition partition, (Half[] O, float[] Lse)[] ranks)
    {
        var (o, lse) = (new Half[shape.QElements], new float[shape.LseElements]);
        foreach (var (rows, rank) in ranks.Select((r, i) => (r, i)))
        {
            ContextParallelReference.Unshard<Half>(rows.O, o, shape.Batch, shape.HeadsQ, shape.HeadDim, TensorLayout.BHSD, partition, rank);
            ContextParallelReference.Unshard<float>(rows.Lse, lse, shape.Batch, shape.HeadsQ, 1, TensorLayout.BHSD, partition, rank);
        }
        return (o, lse);
    }
}
