using KernelDsl.Attention.Reference;

namespace KernelDsl.Attention.ContextParallel;

/// <summary>
/// The ranks a simulated engine runs on one GPU: their state, kept between calls and grown to the most ranks asked
/// for, and each call's per-rank tensors (every simulated rank reads the whole sequence's q, k and v and writes its rows
/// of the whole o and LSE).
/// </summary>
internal sealed class SimulatedRanks(CudaDevice device) : IDisposable
{
    private readonly List<RankState> _ranks = [];

    /// <summary>The stream is on the device the ranks are simulated on.</summary>
    public void CheckStream(CudaStream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        if (!ReferenceEquals(stream.Device, device))
        {
            throw new ArgumentException($"stream is on device {stream.Device.Ordinal}; these ranks are simulated on device {device.Ordinal}.", nameof(stream));
        }
    }

    /// <summary>The first <paramref name="ranks"/> ranks with this call's tensors.</summary>
    public (RankState State, RankTensors Tensors)[] For(int ranks, CudaStream stream, TensorView<Half> q, TensorView<Half> k, TensorView<Half> v,
        DeviceBuffer<Half> o, DeviceBuffer<float> lse, (TensorLayout Q, TensorLayout K, TensorLayout V) layouts)
    {
        while (_ranks.Count < ranks)
        {
            _ranks.Add(new RankState(device));
        }
        return _ranks.Take(ranks).Select((state, rank) => (state, new RankTensors(rank, stream, q, k, v, o, lse, Local: false, layouts.Q, layouts.K, layouts.V))).ToArray();
    }

    public void Dispose()
    {
        foreach (var rank in _ranks)
        {
            rank.Dispose();
        }
        _ranks.Clear();
    }
}
