namespace KernelDsl.Testing;

/// <summary>
/// The compile tests' bar on register spills. No kernel may spill, under any NVRTC, except the sm_90a kernels that
/// NVRTC 12.4 (CI's, scripts/install-nvrtc12) compiles with spills. Their consumer warpgroups run at the edge of their
/// setmaxnreg budget (240 registers; 232 at two blocks an SM or on the persistent grid) with a modifier's per-score
/// code beside S, P·V and O: ALiBi's float indices, prefix-LM's, the documents' and the window-and-softcap's per-score
/// masks, the persistent grid's per-tile range (docs/PERF_NOTES.md §18a). Under NVRTC 12 such a kernel may not store
/// more bytes than when it was listed, and one that stops spilling fails until it is taken off, so the list only
/// shrinks. Under other versions (the device's 13 allocates differently) a listed kernel is not held to it.
/// </summary>
public static class SpillBar
{
    /// <summary>Bytes each listed kernel stored to local memory under NVRTC 12.4 when it was listed.</summary>
    public static readonly IReadOnlyDictionary<string, int> KnownNvrtc12Spills = new Dictionary<string, int>
    {
        ["kdsl_KernelDsl_Attention_FlashAttention_Alibi_D128Wgmma"] = 12,
        ["kdsl_KernelDsl_Attention_FlashAttention_Alibi_D128WgmmaBlockM64"] = 136,
        ["kdsl_KernelDsl_Attention_FlashAttention_Alibi_D128WgmmaFusedQ"] = 28,
        ["kdsl_KernelDsl_Attention_FlashAttention_DocumentMask_D128WgmmaBlockM64"] = 40,
        ["kdsl_KernelDsl_Attention_FlashAttention_DocumentMask_D128WgmmaPersistent"] = 240,
        ["kdsl_KernelDsl_Attention_FlashAttention_PrefixLm_D128Wgmma"] = 56,
        ["kdsl_KernelDsl_Attention_FlashAttention_PrefixLm_D128WgmmaFusedQ"] = 60,
        ["kdsl_KernelDsl_Attention_FlashAttention_PrefixLm_D128WgmmaPersistent"] = 100,
        ["kdsl_KernelDsl_Attention_FlashAttention_SlidingWindow_D128WgmmaPersistent"] = 116,
        ["kdsl_QuickStart_SlidingWindowSoftcap_Wgmma"] = 120,
    };

    /// <summary>Why <paramref name="kernel"/>'s ptxas report misses the bar under NVRTC <paramref name="nvrtcMajor"/>; null when it meets it.</summary>
    public static string? Miss(PtxasKernelReport kernel, int nvrtcMajor)
    {
        var spills = $"{kernel.Name} spills on {kernel.Arch}: {kernel.Registers} registers, {kernel.SpillStoreBytes} B stored, {kernel.SpillLoadBytes} B loaded";
        if (!KnownNvrtc12Spills.TryGetValue(kernel.Name, out var bound))
        {
            return kernel.Spills ? spills : null;
        }
        if (nvrtcMajor != 12)
        {
            return null;
        }
        if (!kernel.Spills)
        {
            return $"{kernel.Name} no longer spills on {kernel.Arch} under NVRTC 12: take it off {nameof(SpillBar)}.{nameof(KnownNvrtc12Spills)}";
        }
        return kernel.SpillStoreBytes > bound ? $"{spills}, more than the {bound} B it stored when listed" : null;
    }
}
