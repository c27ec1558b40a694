namespace KernelDsl.Attention.FlashAttention;

/// <summary>Where the quantize steps put their outputs: reused scratch, or buffers a result owns.</summary>
internal interface IDeviceBufferSource
{
    DeviceBuffer<T> Get<T>(string name, long length) where T : unmanaged;
}

/// <summary>Buffers kept between calls, freed when their owner is disposed.</summary>
internal interface IReusedBuffers : IDeviceBufferSource, IDisposable;

/// <summary>Named buffers kept between calls and grown when a call needs more.</summary>
internal sealed class ScratchBuffers(CudaDevice device) : IReusedBuffers
{
    private readonly Dictionary<string, IDisposable> _buffers = [];

    public DeviceBuffer<T> Get<T>(string name, long length) where T : unmanaged
    {
        if (_buffers.TryGetValue(name, out var existing) && existing is DeviceBuffer<T> buffer && buffer.Length >= length)
        {
            return buffer;
        }
        existing?.Dispose();
        var fresh = device.Allocate<T>(Math.Max(length, 1));
        _buffers[name] = fresh;
        return fresh;
    }

    public void Dispose()
    {
        foreach (var buffer in _buffers.Values)
        {
            buffer.Dispose();
        }
        _buffers.Clear();
    }
}

/// <summary>Fresh buffers for one result, which frees them all when it is disposed.</summary>
internal sealed class OwnedBuffers(CudaDevice device) : IDeviceBufferSource, IDisposable
{
    private readonly List<IDisposable> _buffers = [];

    public DeviceBuffer<T> Get<T>(string name, long length) where T : unmanaged
    {
        var buffer = device.Allocate<T>(Math.Max(length, 1));
        _buffers.Add(buffer);
        return buffer;
    }

    public void Dispose()
    {
        foreach (var buffer in _buffers)
        {
            buffer.Dispose();
        }
        _buffers.Clear();
    }
}

/// <summary>
/// Named buffers kept between calls, like <see cref="ScratchBuffers"/>, except that a buffer too small for a call is
/// replaced but not freed until disposal: work queued on other streams may still read it (a ring's transfers).
/// </summary>
internal sealed class RetainingBuffers(CudaDevice device) : IReusedBuffers
{
    private readonly Dictionary<string, IDisposable> _current = [];
    private readonly List<IDisposable> _retired = [];

    public DeviceBuffer<T> Get<T>(string name, long length) where T : unmanaged
    {
        if (_current.TryGetValue(name, out var existing))
        {
            if (existing is DeviceBuffer<T> buffer && buffer.Length >= length)
            {
                return buffer;
            }
            _retired.Add(existing);
        }
        var fresh = device.Allocate<T>(Math.Max(length, 1));
        _current[name] = fresh;
        return fresh;
    }

    public void Dispose()
    {
        foreach (var buffer in _current.Values.Concat(_retired))
        {
            buffer.Dispose();
        }
        _current.Clear();
        _retired.Clear();
    }
}
