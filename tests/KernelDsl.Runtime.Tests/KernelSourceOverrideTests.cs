using KernelDsl.Launching;

namespace KernelDsl.Runtime.Tests;

public sealed class KernelSourceOverrideTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("kdsl-override-").FullName;

    private static readonly KernelModuleDefinition Module = new()
    {
        Name = "Tests.Probe",
        CudaSource = TestKernels.TensorCoreProbe,
        EntryPoints = [new KernelEntryPoint("tensor_core_probe", 32, 0)],
        Targets = ["sm_80"],
        MinimumSm = 80,
    };

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    [Fact]
    public void A_file_named_after_the_variant_replaces_the_generated_source()
    {
        var edited = TestKernels.TensorCoreProbe.Replace("int d0 = 0", "int d0 = 1", StringComparison.Ordinal);
        File.WriteAllText(Path.Combine(_directory, "Tests.Probe.cu"), edited);

        Assert.Equal(edited, KernelSourceOverride.SourceFor(Module, _directory));
        Assert.Equal(Path.Combine(_directory, "Tests.Probe.cu"), KernelSourceOverride.PathFor(Module, _directory));
    }

    [Fact]
    public void Without_a_file_for_the_variant_or_without_a_folder_the_generated_source_is_compiled()
    {
        File.WriteAllText(Path.Combine(_directory, "Tests.Other.cu"), "not this one");

        Assert.Equal(TestKernels.TensorCoreProbe, KernelSourceOverride.SourceFor(Module, _directory));
        Assert.Null(KernelSourceOverride.PathFor(Module, _directory));
        Assert.Equal(TestKernels.TensorCoreProbe, KernelSourceOverride.SourceFor(Module, directory: null));
    }

    [Fact]
    public void An_edited_source_gets_its_own_cache_key()
    {
        var edited = TestKernels.TensorCoreProbe + "\n// edited\n";
        File.WriteAllText(Path.Combine(_directory, "Tests.Probe.cu"), edited);
        var generated = new NvrtcRequest(KernelSourceOverride.SourceFor(Module, null), Module.Name, "sm_80", []);
        var replaced = new NvrtcRequest(KernelSourceOverride.SourceFor(Module, _directory), Module.Name, "sm_80", []);
        var version = new NvrtcVersion(12, 4);

        Assert.NotEqual(ModuleCache.KeyOf(generated, version), ModuleCache.KeyOf(replaced, version));
    }
}
