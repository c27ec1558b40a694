using System.Text;

namespace KernelDsl.Runtime.Tests;

/// <summary>A stand-in for NVRTC that counts its calls and returns a cubin derived from the request.</summary>
internal sealed class CountingCompiler(NvrtcVersion version) : IKernelCompiler
{
    private int _calls;

    public CountingCompiler() : this(new NvrtcVersion(13, 0))
    {
    }

    public int Calls => Volatile.Read(ref _calls);

    public NvrtcVersion Version => version;

    /// <summary>Runs inside every compilation, e.g. to hold compilers at a barrier or to fail.</summary>
    public Action<int>? During { get; init; }

    public NvrtcResult Compile(NvrtcRequest request)
    {
        var call = Interlocked.Increment(ref _calls);
        During?.Invoke(call);
        return new NvrtcResult(CubinFor(request), "", [], null, TimeSpan.FromMilliseconds(1));
    }

    public byte[] CubinFor(NvrtcRequest request) =>
        Encoding.UTF8.GetBytes($"cubin|{request.Arch}|{version}|{string.Join(' ', request.EffectiveOptions())}|{request.Source}");
}
