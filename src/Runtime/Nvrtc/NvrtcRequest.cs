using System.Collections.Immutable;
using System.Text.RegularExpressions;
using KernelDsl.Launching;

namespace KernelDsl;

/// <summary>One NVRTC compilation: a self-contained CUDA source compiled straight to a cubin for one real architecture.</summary>
/// <param name="Source">Self-contained CUDA C++ (no toolkit headers are available).</param>
/// <param name="VariantName">The variant's name; the program is named <c>&lt;variant&gt;.cu</c> so log lines say which.</param>
/// <param name="Arch">A real architecture: <c>sm_80</c>, <c>sm_90</c>, <c>sm_90a</c>.</param>
/// <param name="Options">Extra NVRTC options, passed after the ones this runtime sets.</param>
/// <param name="LineInfo">Emit line information (<c>-lineinfo</c>) for profilers and compute-sanitizer.</param>
/// <param name="PtxasVerbose">Ask ptxas for its per-kernel report (<c>--ptxas-options=-v</c>): registers, spills, stack.</param>
public sealed partial record NvrtcRequest(
    string Source,
    string VariantName,
    string Arch,
    ImmutableArray<string> Options,
    bool LineInfo = false,
    bool PtxasVerbose = false)
{
    /// <summary>Also return the PTX NVRTC produced on the way (for reading; it does not change the cubin).</summary>
    public bool KeepPtx { get; init; }

    /// <summary>The NVRTC program name, which the compiler's log uses as the file name.</summary>
    public string ProgramName => VariantName + ".cu";

    /// <summary>
    /// The request that compiles a generated module for <paramref name="arch"/>, with line information; its source is
    /// the generated one unless <see cref="KernelSourceOverride"/> names a replacement.
    /// </summary>
    public static NvrtcRequest ForModule(KernelModuleDefinition module, string arch, bool ptxasVerbose = false)
    {
        ArgumentNullException.ThrowIfNull(module);
        return new NvrtcRequest(KernelSourceOverride.SourceFor(module), module.Name, arch, module.CompileOptions, LineInfo: true, ptxasVerbose);
    }

    /// <summary>
    /// Every option NVRTC receives, in order. The cache keys on this list, so anything that changes the cubin
    /// must show up here.
    /// </summary>
    public IReadOnlyList<string> EffectiveOptions()
    {
        ArgumentException.ThrowIfNullOrEmpty(Source);
        ArgumentException.ThrowIfNullOrEmpty(VariantName);
        if (Arch is null || !RealArch().IsMatch(Arch))
        {
            throw new ArgumentException($"'{Arch}' is not a real GPU architecture such as sm_80, sm_90 or sm_90a.", nameof(Arch));
        }
        var options = new List<string> { "-arch=" + Arch, "--std=c++17" };
        if (LineInfo)
        {
            options.Add("-lineinfo");
        }
        if (PtxasVerbose)
        {
            options.Add("--ptxas-options=-v");
        }
        options.AddRange(Options.IsDefault ? [] : Options);
        return options;
    }

    [GeneratedRegex("^sm_[0-9]{2,3}[af]?$", RegexOptions.CultureInvariant)]
    private static partial Regex RealArch();
}
