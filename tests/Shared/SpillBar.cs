namespace KernelDsl.Testing;

/// <summary>
/// The compile tests' bar on register spills. No kernel may spill, under any NVRTC, except the sm_90a kernels that
/// NVRTC 12.4 (CI's, scripts/install-nvrtc12) compiles with spills. Their consumer warpgroups run at the edge of their
/// setmaxnreg budget (240 registers; 232 at two blocks an SM or on the persistent grid) with a modifier's per-score
/// code beside S, P·V and O: ALiBi's float indices, prefix-LM's, the documents' and the window-and-softcap's per-score
/// masks, the persistent grid's per-tile range (docs/PERF_NOTES.md §18a). Under NVRTC 12.4 such a kernel may not store
/// or load more bytes than when it was listed, and one that stops spilling fails until it is taken off, so the list only
/// shrinks. Under other versions (the device's 13 and other 12.x releases allocate differently) a listed kernel's
/// spills are the test output's, not a failure.
/// </summary>
public static class SpillBar
{
    /// <summary>The NVRTC whose spills the list records.</summary>
    public static readonly NvrtcVersion Listed = new(12, 4);

    /// <summary>Bytes each listed kernel stored and loaded to local memory under NVRTC 12.4 when it was listed.</summary>
    public static readonly IReadOnlyDictionary<string, (int Stored, int Loaded)> KnownSpills = new Dictionary<string, (int, int)>
    {
        ["kdsl_KernelDsl_Attention_FlashAttention_Alibi_D128Wgmma"] = (12, 8),
        ["kdsl_KernelDsl_Attention_FlashAttention_Alibi_D128WgmmaBlockM64"] = (136, 156),
        ["kdsl_KernelDsl_Attention_FlashAttention_Alibi_D128WgmmaFusedQ"] = (28, 32),
        ["kdsl_KernelDsl_Attention_FlashAttention_DocumentMask_D128WgmmaBlockM64"] = (40, 56),
        ["kdsl_KernelDsl_Attention_FlashAttention_DocumentMask_D128WgmmaPersistent"] = (240, 340),
        ["kdsl_KernelDsl_Attention_FlashAttention_PrefixLm_D128Wgmma"] = (56, 48),
        ["kdsl_KernelDsl_Attention_FlashAttention_PrefixLm_D128WgmmaFusedQ"] = (60, 76),
        ["kdsl_KernelDsl_Attention_FlashAttention_PrefixLm_D128WgmmaPersistent"] = (100, 184),
        ["kdsl_KernelDsl_Attention_FlashAttention_SlidingWindow_D128WgmmaPersistent"] = (116, 208),
        ["kdsl_QuickStart_SlidingWindowSoftcap_Wgmma"] = (120, 112),
    };

    /// <summary>Why <paramref name="kernel"/>'s ptxas report misses the bar under <paramref name="nvrtc"/>; null when it meets it.</summary>
    public static string? Miss(PtxasKernelReport kernel, NvrtcVersion nvrtc)
    {
        var spills = $"{kernel.Name} spills on {kernel.Arch}: {kernel.Registers} registers, {kernel.SpillStoreBytes} B stored, {kernel.SpillLoadBytes} B loaded";
        if (!KnownSpills.TryGetValue(kernel.Name, out var bound))
        {
            return kernel.Spills ? spills : null;
        }
        if (nvrtc != Listed)
        {
            return null;
        }
        if (!kernel.Spills)
        {
            return $"{kernel.Name} no longer spills on {kernel.Arch} under NVRTC {Listed.Major}.{Listed.Minor}: take it off {nameof(SpillBar)}.{nameof(KnownSpills)}";
        }
        return kernel.SpillStoreBytes > bound.Stored || kernel.SpillLoadBytes > bound.Loaded
            ? $"{spills}, more than the {bound.Stored} B stored and {bound.Loaded} B loaded when listed"
            : null;
    }
}
