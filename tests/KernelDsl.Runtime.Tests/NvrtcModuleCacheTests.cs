namespace KernelDsl.Runtime.Tests;

/// <summary>The cache in front of the real NVRTC: a second cache instance loads the cubin from disk, byte for byte.</summary>
[KernelDsl.Testing.RequiresNvrtc]
public sealed class NvrtcModuleCacheTests : IDisposable
{
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "kerneldsl-tests", Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_directory))
        {
            Directory.Delete(_directory, recursive: true);
        }
    }

    [Fact]
    public void A_real_cubin_round_trips_through_the_disk_cache()
    {
        var nvrtc = NvrtcAvailability.GetOrSkip(Assert.Skip);
        var request = new NvrtcRequest(TestKernels.TensorCoreProbe, "TensorCoreProbe", "sm_80", [], LineInfo: true);

        var cold = new ModuleCache(nvrtc, _directory);
        var compiled = cold.GetOrCompile(request);
        var warm = new ModuleCache(nvrtc, _directory);
        var loaded = warm.GetOrCompile(request);

        Assert.Equal(compiled.Cubin.ToArray(), loaded.Cubin.ToArray());
        Assert.Equal(1, cold.Statistics.Compilations);
        Assert.Equal((0, 1), (warm.Statistics.Compilations, warm.Statistics.DiskHits));
        // An ELF image, as cuModuleLoadData expects.
        Assert.Equal("\u007fELF"u8.ToArray(), loaded.Cubin[..4].ToArray());
    }
}
