using KernelDsl.Generated;
using KernelDsl.Launching;

namespace KernelDsl.Attention.Tests.Kernels;

/// <summary>
/// Evidence layer 2: every variant declared in KernelDsl.Attention compiles under NVRTC for each of its targets
/// with ptxas verbose, and no kernel spills but the few <see cref="KernelDsl.Testing.SpillBar"/> lists. Skips without
/// NVRTC unless KERNELDSL_REQUIRE_NVRTC=1 (CI).
/// </summary>
public class NvrtcCompileTests(ITestOutputHelper output)
{
    public static TheoryData<string, string> VariantsAndTargets()
    {
        var data = new TheoryData<string, string>();
        foreach (var module in DeclaredKernels.All)
        {
            foreach (var target in module.Targets)
            {
                data.Add(module.Name, target);
            }
        }
        return data;
    }

    [Fact]
    public void The_attention_library_declares_variants()
    {
        Assert.Contains(DeclaredKernels.All, m => m.Name.EndsWith("Int8GemmNNMovmatrix", StringComparison.Ordinal));
        // Every variant runs on Ampere, except the Hopper wgmma form, which is declared for sm_90a alone, the e4m3
        // quantizers of fp8 P·V, whose cvt to e4m3 needs sm_89 (and, before PTX ISA 8.1, sm_90), and a block larger than
        // sm_80's 163 KB of shared memory (three stages of four decode warps): those two declared for sm_90.
        static bool OverSm80(KernelDsl.Launching.KernelModuleDefinition m) => m.EntryPoints.Any(e => e.SharedMemoryBytes > 163 * 1024);
        Assert.All(DeclaredKernels.All, m => Assert.Contains(m.RequiresArchSpecific ? "sm_90a" : m.MinimumSm == 89 || OverSm80(m) ? "sm_90" : "sm_80", m.Targets));
        Assert.Contains(DeclaredKernels.All, m => OverSm80(m) && m.Name.EndsWith("PagedDecodeD128Stages3", StringComparison.Ordinal));
        Assert.Contains(DeclaredKernels.All, m => m.MinimumSm == 89 && m.Name.EndsWith("QuantizeVChannelPiD128E4m3", StringComparison.Ordinal));
        Assert.Contains(DeclaredKernels.All, m => m.RequiresArchSpecific && m.Name.EndsWith("Int8AttentionD128Wgmma", StringComparison.Ordinal));
    }

    [Theory]
    [MemberData(nameof(VariantsAndTargets))]
    [KernelDsl.Testing.RequiresNvrtc(TargetArgument = "target")]
    public void Variant_compiles_for_its_target_without_spills(string variant, string target)
    {
        var compiler = NvrtcAvailability.GetOrSkip(Assert.Skip);
        if (compiler.Version.CannotTarget(target) is { } reason)
        {
            Assert.Skip($"{reason}; NVRTC 12 or later checks it.");
        }
        var module = DeclaredKernels.All.Single(m => m.Name == variant);
        var result = compiler.Compile(NvrtcRequest.ForModule(module, target, ptxasVerbose: true));
        Assert.NotEmpty(result.Cubin);
        foreach (var entry in module.EntryPoints)
        {
            var report = Assert.Single(result.Kernels, k => k.Name == entry.Name);
            output.WriteLine($"{variant} {entry.Name} {target}: {report.Registers} registers, {report.StackFrameBytes} B stack, spills {report.SpillStoreBytes}/{report.SpillLoadBytes} B");
            Assert.Null(KernelDsl.Testing.SpillBar.Miss(report, compiler.Version));
            Assert.True(report.Registers * entry.ThreadsPerBlock <= 65536, $"{entry.Name} needs {report.Registers} registers × {entry.ThreadsPerBlock} threads, over the 64K register file");
        }
    }
}
