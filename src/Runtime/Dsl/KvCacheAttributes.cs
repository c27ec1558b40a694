namespace KernelDsl;

/// <summary>
/// Declares the append kernel of a paged INT8 KV cache (docs/KV_CACHE.md): new f16/bf16 K and V tokens of a batch of
/// sequences are quantized straight into their pages. Per page and KV head, K keeps its channel mean, the int8 codes of
/// k − mean and one scale; V keeps int8 codes and one scale per channel. A page that is still filling is requantized
/// from its original values at every append (the cache keeps the originals of each sequence's last, partial page).
/// </summary>
[AttributeUsage(AttributeTargets.Class | AttributeTargets.Struct, Inherited = false)]
public sealed class KvCacheAppendAttribute : Attribute
{
    /// <summary>Channels per head.</summary>
    public int HeadDim { get; set; } = 128;
    /// <summary>Tokens per page: one K scale and one K mean per page (the attention kernels' 64 keys per K scale).</summary>
    public int PageSize { get; set; } = 64;
    /// <summary>Element of the new tokens: <see cref="Element.F16"/> or <see cref="Element.BF16"/>.</summary>
    public Element Input { get; set; } = Element.F16;
    /// <summary>Threads per block; each block (re)quantizes one page of one KV head of K or of V.</summary>
    public int Threads { get; set; } = 128;
    /// <summary>Architectures the variant must compile for.</summary>
    public Sm[] Targets { get; set; } = [Sm.Sm80, Sm.Sm90];
}

/// <summary>
/// Declares the decode attention kernel over a paged INT8 KV cache (docs/KV_CACHE.md, issue 16): each sequence's query
/// tokens (a decode step's 1 to 16, or a prefill chunk's, given as running totals) and the query heads sharing a KV head
/// packed into the rows of 16-row MMA tiles, each sequence's
/// pages split across blocks (flash-decoding), the splits merged by their log-sum-exp. Q is quantized to int8 per row
/// inside the kernel; S = Q·Kᵀ and P·V run on int8 tensor cores with the page's K mean and V scales folded per page.
/// </summary>
[AttributeUsage(AttributeTargets.Class | AttributeTargets.Struct, Inherited = false)]
public sealed class PagedDecodeAttribute : Attribute
{
    /// <summary>Channels per head: 64 or 128.</summary>
    public int HeadDim { get; set; } = 128;
    /// <summary>Tokens per page: 64, the cache's K scale and mean granularity.</summary>
    public int PageSize { get; set; } = 64;
    /// <summary>
    /// Keys of one stage, one step of a warp's key loop: the page (64), or half of it (32), so twice the warps keep the same
    /// bytes in flight in the same shared memory and each scheduler has two warps to switch between.
    /// </summary>
    public int StageKeys { get; set; } = 64;
    /// <summary>Element of Q and O: <see cref="Element.F16"/> or <see cref="Element.BF16"/>.</summary>
    public Element Input { get; set; } = Element.F16;
    /// <summary>Warps per block; each walks its own pages of the block's split with its own softmax state.</summary>
    public int Warps { get; set; } = 4;
    /// <summary>Stages each warp keeps in flight with cp.async (each: StageKeys keys of K and V, the page's K mean and V scales).</summary>
    public int Stages { get; set; } = 2;
    /// <summary>Architectures the variant must compile for.</summary>
    public Sm[] Targets { get; set; } = [Sm.Sm80, Sm.Sm90];
}
