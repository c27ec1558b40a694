namespace KernelDsl.Attention.KvCache;

// The paged INT8 KV cache's append kernels (issue 16, docs/KV_CACHE.md): pages of 64 tokens, the attention kernels' K
// scale granularity. Each is generated like any user's declaration; KvCache picks one by head dim and input element.

/// <summary>f16, D = 128.</summary>
[KvCacheAppend(HeadDim = 128, PageSize = 64, Input = Element.F16)]
public static partial class KvAppendD128;

/// <summary>bf16, D = 128.</summary>
[KvCacheAppend(HeadDim = 128, PageSize = 64, Input = Element.BF16)]
public static partial class KvAppendD128Bf16;

/// <summary>f16, D = 64.</summary>
[KvCacheAppend(HeadDim = 64, PageSize = 64, Input = Element.F16)]
public static partial class KvAppendD64;

/// <summary>f16, D = 256: a page's originals take 32 KB of shared memory.</summary>
[KvCacheAppend(HeadDim = 256, PageSize = 64, Input = Element.F16, Threads = 256)]
public static partial class KvAppendD256;
