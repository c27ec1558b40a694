using KernelDsl.Attention.KvCache;
using KernelDsl.Launching;
using KernelDsl;

namespace AttentionTests.KvCache;

/// <summary>
/// The declared decode variants: both entry points compile under NVRTC for every target without spills (the library-wide
/// compile test covers them too; this one prints their registers), and the launchers' sizes agree with the layout.
/// </summary>
public class PagedDecodeKernelTests(ITestOutputHelper output)
{
    public static TheoryData<string, string> Targets() => new(
        from module in new[] { PagedDecodeD128.Module, PagedDecodeD128Bf16.Module, PagedDecodeD64.Module }
        from target in module.Targets
        select (module.Name, target));

    [Theory]
    [MemberData(nameof(Targets))]
    [KernelDsl.Testing.RequiresNvrtc(TargetArgument = "target")]
    public void Decode_and_merge_compile_without_spills(string variant, string target)
    {
        var compiler = NvrtcAvailability.GetOrSkip(Assert.Skip);
        if (compiler.Version.CannotTarget(target) is { } reason)
        {
            Assert.Skip($"{reason}; NVRTC 12 or later checks it.");
        }
        var module = new[] { PagedDecodeD128.Module, PagedDecodeD128Bf16.Module, PagedDecodeD64.Module }.Single(m => m.Name == variant);
        var result = compiler.Compile(NvrtcRequest.ForModule(module, target, ptxasVerbose: true));
        Assert.Equal(2, module.EntryPoints.Length);
        foreach (var entry in module.EntryPoints)
        {
            var report = Assert.Single(result.Kernels, k => k.Name == entry.Name);
            output.WriteLine($"{variant} {entry.Name} {target}: {report.Registers} registers, {report.StackFrameBytes} B stack, spills {report.SpillStoreBytes}/{report.SpillLoadBytes} B, {entry.SharedMemoryBytes} B dynamic shared");
            Assert.False(report.Spills, $"{entry.Name} spills on {target}");
        }
    }

    [Fact]
    public void The_launchers_sizes_follow_the_layout()
    {
        Assert.Equal(2L * (5 + 1) + 3, PagedDecodeD128.WorkspaceLength(2, 5));
        Assert.Equal(3L * 9 * 8 * 128, PagedDecodeD128.PartialOLength(3, 9, 8));
        Assert.Equal(3L * 9 * 8, PagedDecodeD128.PartialLseLength(3, 9, 8));
        // GQA 8:1 packs 2 query tokens of 8 heads into one 16-row tile; Sq = 16 needs 8 tiles.
        Assert.Equal(1, PagedDecodeD128.RowTiles(8, 1, 2));
        Assert.Equal(8, PagedDecodeD128.RowTiles(32, 4, 16));
        Assert.Equal(1, PagedDecodeD128.RowTiles(32, 32, 16));
        // A prefill chunk of 1000 tokens at GQA 8:1: 500 tiles.
        Assert.Equal(500, PagedDecodeD128.RowTiles(8, 1, 1000));
        Assert.True(PagedDecodeD128.SharedMemoryBytes <= 163 * 1024, "sm_80 must be able to opt into the block's shared memory");
    }
}
