using KernelDsl.Attention.FlashAttention;
using KernelDsl.Attention.KvCache;
using KernelDsl.Launching;
using KernelDsl;

namespace AttentionTests.KvCache;

/// <summary>
/// The declared decode variants, the modifier families' included: both entry points compile under NVRTC for every target
/// without spills (the library-wide compile test covers them too; this one prints their registers), and the launchers'
/// sizes agree with the layout.
/// </summary>
public class PagedDecodeKernelTests(ITestOutputHelper output)
{
    private static readonly KernelModuleDefinition[] Modules =
    [
        PagedDecodeD128.Module, PagedDecodeD128Bf16.Module, PagedDecodeD64.Module,
        SlidingWindow.PagedDecodeD128.Module, Alibi.PagedDecodeD128.Module, Softcap.PagedDecodeD128.Module,
    ];

    public static TheoryData<string, string> Targets() => new(
        from module in Modules
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
        var module = Modules.Single(m => m.Name == variant);
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
        // The two-warp configuration holds half the stages: two blocks (+1 KB reserved each) in an H100 SM's 228 KB, one default block.
        Assert.Equal((4, 2), (PagedDecodeD128.Warps, PagedDecodeD128Warps2.Warps));
        Assert.True(2 * (PagedDecodeD128Warps2.SharedMemoryBytes + 1024) <= 228 * 1024, $"{PagedDecodeD128Warps2.SharedMemoryBytes} B");
        Assert.True(2 * (PagedDecodeD128.SharedMemoryBytes + 1024) > 228 * 1024, $"{PagedDecodeD128.SharedMemoryBytes} B");
        Assert.Equal(2, PagedDecodeD128Warps2.With().Warps);
    }

    [Fact]
    public void A_modifier_variant_has_the_plain_layout_and_binds_its_arguments_by_name()
    {
        // The modifiers add parameters, not shared memory: the same pages, stages and merge.
        Assert.Equal(PagedDecodeD128.SharedMemoryBytes, SlidingWindow.PagedDecodeD128.SharedMemoryBytes);
        var kernel = SlidingWindow.PagedDecodeD128.With(window: 256);
        Assert.Equal("KernelDsl.Attention.FlashAttention.SlidingWindow.PagedDecodeD128", kernel.Name);
        Assert.Equal((128, Element.F16, 64), (kernel.HeadDim, kernel.Input, kernel.PageSize));
        Assert.Equal(PagedDecodeD128.SplitsFor(4096, 2, 8, 1, 1, 132), kernel.SplitsFor(4096, 2, 8, 1, 1, 132));
        Assert.Equal("KernelDsl.Attention.FlashAttention.Softcap.PagedDecodeD128", Softcap.PagedDecodeD128.With(cap: 30f).Name);
        // An array argument is checked when it is bound, by name.
        Assert.Equal("slopes", Assert.Throws<ArgumentNullException>(() => Alibi.PagedDecodeD128.With(null!)).ParamName);
    }
}
