namespace KernelDsl.Attention.FlashAttention;

/// <summary>Split-KV merge for D = 128.</summary>
[LseMerge(HeadDim = 128, Threads = 128)]
public static partial class LseMergeD128;

/// <summary>Split-KV merge for D = 64.</summary>
[LseMerge(HeadDim = 64, Threads = 128)]
public static partial class LseMergeD64;
