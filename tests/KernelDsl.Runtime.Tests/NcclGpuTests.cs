using System.Diagnostics;

namespace KernelDsl.Runtime.Tests;

/// <summary>
/// The NCCL binding on one GPU: a one-rank communicator's transfers, and a communicator whose other ranks never come
/// (or come with another id) ending in an error after its timeout instead of a hang. Several GPUs are not needed.
/// </summary>
[KernelDsl.Testing.RequiresCudaDevice]
[KernelDsl.Testing.RequiresNccl]
public class NcclGpuTests
{
    [Fact]
    public void One_rank_moves_bytes_by_send_receive_all_gather_and_all_to_all()
    {
        using var device = Gpu.OpenOrSkip();
        using var stream = device.CreateStream();
        var data = Enumerable.Range(0, 1000).Select(i => (float)i).ToArray();
        using var source = device.Upload<float>(data);
        using var target = device.Allocate<float>(1000);
        var communicators = NcclCommunicator.InitAll([device], TimeSpan.FromSeconds(60));
        using var comm = Assert.Single(communicators);
        Assert.Equal((1, 0), (comm.Ranks, comm.Rank));

        target.FillBytes(0);
        NcclCommunicator.Group([comm], () =>
        {
            comm.Send(stream, source, 100, 300, peer: 0);
            comm.Receive(stream, target, 500, 300, peer: 0);
        });
        comm.Wait(stream);
        var received = target.ToArray();
        Assert.Equal(data[100..400], received[500..800]);
        Assert.All(received[..500], x => Assert.Equal(0f, x));

        comm.AllGather(stream, source, target, 1000);
        comm.Wait(stream);
        Assert.Equal(data, target.ToArray());

        target.FillBytes(0);
        comm.AllToAll(stream, source, target, 1000);
        comm.Wait(stream);
        Assert.Equal(data, target.ToArray());
    }

    [Fact]
    public void A_rank_joining_alone_with_its_own_id_works()
    {
        using var device = Gpu.OpenOrSkip();
        using var comm = NcclCommunicator.InitRank(device, NcclCommunicator.CreateUniqueId(), 1, 0, TimeSpan.FromSeconds(60));
        Assert.False(comm.IsClosed);
        comm.ThrowIfFailed();
    }

    [Fact]
    public void A_rank_whose_peer_never_joins_gets_a_timeout_naming_the_likely_causes_not_a_hang()
    {
        using var device = Gpu.OpenOrSkip();
        var clock = Stopwatch.StartNew();
        var error = Assert.Throws<NcclException>(() => NcclCommunicator.InitRank(device, NcclCommunicator.CreateUniqueId(), 2, 0, TimeSpan.FromSeconds(3)));
        Assert.Equal(NcclResult.Timeout, error.Result);
        Assert.Contains("Not every rank joined within", error.Message);
        Assert.Contains("rank 0 of 2", error.Message);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(30), $"took {clock.Elapsed}");
    }

    [Fact]
    public async Task Ranks_joining_with_different_ids_each_fail_within_the_timeout()
    {
        using var device = Gpu.OpenOrSkip();
        var (first, second) = (NcclCommunicator.CreateUniqueId(), NcclCommunicator.CreateUniqueId());
        var clock = Stopwatch.StartNew();
        var joins = new[] { (Id: first, Rank: 0), (Id: second, Rank: 1) }.Select(x => Task.Run(() =>
            Assert.Throws<NcclException>(() => NcclCommunicator.InitRank(device, x.Id, 2, x.Rank, TimeSpan.FromSeconds(3))))).ToArray();
        var errors = await Task.WhenAll(joins).WaitAsync(TimeSpan.FromSeconds(60), TestContext.Current.CancellationToken);
        Assert.All(errors, error => Assert.NotEqual(NcclResult.Success, error.Result));
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(60), $"took {clock.Elapsed}");
    }
}
