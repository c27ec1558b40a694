namespace KernelDsl;

// SKELETON: the runtime helper replaces this file with the real implementation.
public sealed class DeviceBuffer<T> : IDisposable where T : unmanaged
{
    public long Length { get; }
    public ulong DevicePointer { get; }
    public bool IsDisposed { get; private set; }
    public void Dispose() => IsDisposed = true;
}
