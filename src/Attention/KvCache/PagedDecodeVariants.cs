namespace KernelDsl.Attention.KvCache;

// Decode attention over the paged INT8 cache (docs/KV_CACHE.md). Four warps a block, each keeping its own pages in flight:
// at D = 128 two stages are 4 × 2 × 18 KB of shared memory, which sm_80 and sm_90 both allow one block.

/// <summary>Decode over the paged cache, D = 128, f16 Q and O.</summary>
[PagedDecode(HeadDim = 128, PageSize = 64, Input = Element.F16, Warps = 4, Stages = 2)]
public static partial class PagedDecodeD128;

/// <summary>Decode over the paged cache, D = 128, bf16 Q and O.</summary>
[PagedDecode(HeadDim = 128, PageSize = 64, Input = Element.BF16, Warps = 4, Stages = 2)]
public static partial class PagedDecodeD128Bf16;

/// <summary>Decode over the paged cache, D = 64, f16 Q and O: half the page bytes, so three stages.</summary>
[PagedDecode(HeadDim = 64, PageSize = 64, Input = Element.F16, Warps = 4, Stages = 3)]
public static partial class PagedDecodeD64;

/// <summary>
/// Decode over the paged cache, D = 128, f16 Q and O, two warps a block: 83 KB, so two blocks an SM on the H100 with the
/// same pages in flight as the default's one. One block's merge tail then overlaps the other's pages; kdsl bench --decode
/// times it beside the default.
/// </summary>
[PagedDecode(HeadDim = 128, PageSize = 64, Input = Element.F16, Warps = 2, Stages = 2)]
public static partial class PagedDecodeD128Warps2;


/// <summary>
/// Decode over the paged cache, D = 128, f16 Q and O, eight warps a block on half-page stages (32 keys): the default's
/// bytes in flight in about the same shared memory, with two warps a scheduler to hide each other's softmax (docs/PERF_NOTES.md
/// §11). kdsl bench --decode times it beside the default.
/// </summary>
[PagedDecode(HeadDim = 128, PageSize = 64, StageKeys = 32, Input = Element.F16, Warps = 8, Stages = 2)]
public static partial class PagedDecodeD128Warps8;

/// <summary>
/// Decode over the paged cache, D = 128, f16 Q and O, the default's four warps with three stages: each warp keeps two pages
/// in flight while it computes a third, where two stages leave one (the next page is issued only once the current one has
/// landed). 216 KB of shared memory, which only sm_90's 227 KB a block holds (docs/PERF_NOTES.md §11).
/// </summary>
[PagedDecode(HeadDim = 128, PageSize = 64, Input = Element.F16, Warps = 4, Stages = 3, Targets = [Sm.Sm90])]
public static partial class PagedDecodeD128Stages3;

/// <summary>
/// Decode over the paged cache, D = 128, f16 Q and O, two warps of three stages: 113 KB, so two blocks still share an sm_90 SM
/// (2 × (113 + 1) KB of its 228), each warp with two pages in flight. The two-warp configuration with that depth.
/// </summary>
[PagedDecode(HeadDim = 128, PageSize = 64, Input = Element.F16, Warps = 2, Stages = 3)]
public static partial class PagedDecodeD128Warps2Stages3;
