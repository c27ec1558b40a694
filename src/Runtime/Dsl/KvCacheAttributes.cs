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
