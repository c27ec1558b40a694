using KernelDsl.Native;

namespace KernelDsl.Runtime.Tests;

/// <summary>Real NVRTC compilations. Skipped without NVRTC unless KERNELDSL_REQUIRE_NVRTC=1, which makes them fail.</summary>
[KernelDsl.Testing.RequiresNvrtc]
public class NvrtcCompilerTests
{
    private static NvrtcCompiler Nvrtc() => NvrtcAvailability.GetOrSkip(Assert.Skip);

    [Theory]
    [InlineData("sm_80")]
    [InlineData("sm_90")]
    public void Inline_int8_mma_and_movmatrix_compile_to_a_cubin_without_spills(string arch)
    {
        var request = new NvrtcRequest(TestKernels.TensorCoreProbe, "TensorCoreProbe", arch, [], PtxasVerbose: true);

        var result = Nvrtc().Compile(request);

        Assert.NotEmpty(result.Cubin);
        var kernel = Assert.Single(result.Kernels);
        Assert.Equal("tensor_core_probe", kernel.Name);
        Assert.Equal(arch, kernel.Arch);
        Assert.True(kernel.Registers > 0, result.Log);
        Assert.Equal(0, kernel.SpillStoreBytes);
        Assert.Equal(0, kernel.SpillLoadBytes);
        Assert.False(kernel.Spills);
    }

    [Fact]
    public void The_supported_architectures_come_from_nvrtc_and_a_target_outside_them_is_refused_listing_them()
    {
        var nvrtc = Nvrtc();
        var supported = nvrtc.SupportedArchitectures;
        Assert.Contains(80, supported);  // every NVRTC the runtime loads (11.2 and newer) builds sm_80
        Assert.Equal(supported.Distinct().Order(), supported);
        Assert.Null(nvrtc.CannotTarget("sm_80"));

        var reason = nvrtc.CannotTarget("sm_10");
        Assert.NotNull(reason);
        Assert.StartsWith($"NVRTC {nvrtc.Version} cannot compile sm_10: it supports ", reason);
        Assert.Contains("sm_80", reason);

        // What the version alone rules out is said as the version says it.
        Assert.Equal(nvrtc.Version.CannotTarget("sm_90a"), nvrtc.CannotTarget("sm_90a"));
    }

    [Fact]
    public void A_target_outside_the_supported_architectures_does_not_compile()
    {
        var nvrtc = Nvrtc();
        var outside = Enumerable.Range(nvrtc.SupportedArchitectures.Max() + 1, 200).First(c => c % 10 == 0);
        Assert.NotNull(nvrtc.CannotTarget($"sm_{outside}"));
        Assert.Throws<NvrtcCompilationException>(() => nvrtc.Compile(new NvrtcRequest(TestKernels.TensorCoreProbe, "TensorCoreProbe", $"sm_{outside}", [])));
    }

    [Fact]
    public void A_kernel_squeezed_into_too_few_registers_is_reported_as_spilling()
    {
        var request = new NvrtcRequest(TestKernels.Spiller, "Spiller", "sm_90", ["-maxrregcount=32"], PtxasVerbose: true);

        var kernel = Assert.Single(Nvrtc().Compile(request).Kernels);

        Assert.Equal("spiller", kernel.Name);
        Assert.True(kernel.Spills);
        Assert.True(kernel.SpillStoreBytes > 0);
        Assert.True(kernel.SpillLoadBytes > 0);
        Assert.True(kernel.StackFrameBytes > 0);
        Assert.True(kernel.Registers <= 32);
    }

    [Fact]
    public void A_compile_error_names_the_variant_and_quotes_the_generated_source_line()
    {
        var request = new NvrtcRequest(TestKernels.Broken, "Samples.BrokenVariant", "sm_90", []);

        var error = Assert.Throws<NvrtcCompilationException>(() => Nvrtc().Compile(request));

        Assert.Equal("Samples.BrokenVariant", error.VariantName);
        Assert.Equal("sm_90", error.Arch);
        var undeclared = error.Diagnostics[0];
        Assert.Equal(3, undeclared.Line);
        Assert.Equal("error", undeclared.Severity);
        Assert.Contains("undeclared_thing", undeclared.Message);
        Assert.Equal("    int x = undeclared_thing;", undeclared.SourceLine);
        Assert.Contains(error.Diagnostics, diagnostic => diagnostic.Line == 5 && diagnostic.Message == "expected a \";\"");
        Assert.Contains("'Samples.BrokenVariant' for sm_90", error.Message);
        Assert.Contains("Samples.BrokenVariant.cu(3): error:", error.Message);
        Assert.Contains("    3 |     int x = undeclared_thing;", error.Message);
        Assert.Contains(error.Log.Trim(), error.Message);
    }

    [Fact]
    public void Ptx_is_returned_only_when_asked_for()
    {
        var request = new NvrtcRequest(TestKernels.TensorCoreProbe, "TensorCoreProbe", "sm_80", []);

        Assert.Null(Nvrtc().Compile(request).Ptx);
        var ptx = Nvrtc().Compile(request with { KeepPtx = true }).Ptx;

        Assert.NotNull(ptx);
        Assert.Contains("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32", ptx);
        Assert.Contains(".entry tensor_core_probe", ptx);
    }

    [Fact]
    public void The_compiler_reports_which_candidate_loaded_and_its_version()
    {
        var nvrtc = Nvrtc();

        Assert.True(nvrtc.Version.Major >= 11, nvrtc.Version.ToString());
        var candidates = NativeLibraries.NvrtcCandidates(Environment.GetEnvironmentVariable(NativeLibraries.NvrtcPathVariable));
        Assert.Contains(nvrtc.LibraryName, candidates);
    }
}
