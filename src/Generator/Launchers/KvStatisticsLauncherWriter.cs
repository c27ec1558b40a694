using System.Linq;
using KernelDsl.Generator.Helpers;
using KernelDsl.Generator.Model;

namespace KernelDsl.Generator.Launchers;

/// <summary>
/// The KvStatistics launcher: the workspace's size, the constants the CPU reference follows (MeanLanes, SliceTokens), and a
/// <c>Launch</c> that checks K, V and every buffer on the host, then queues the partials and combine kernels.
/// </summary>
public static class KvStatisticsLauncherWriter
{
    private const string Guard = ModuleWriter.Launching + ".LaunchGuard";

    public static string Write(KvStatisticsPlan plan)
    {
        var spec = plan.Spec;
        return CSharpFile.Write(spec.Type, w =>
        {
            ModuleWriter.Write(w, spec,
            [
                new EntryPointInfo("KernelName", plan.PartialsSymbol, plan.Threads, 0),
                new EntryPointInfo("CombineKernelName", plan.CombineSymbol, plan.Threads, 0),
            ], Constants(plan));
            w.Line();
            WriteStatisticsSizes(w);
            w.Line($"/// <summary>Elements of <c>workspace</c>: K's sums and V's maxima of every slice, 2 × [batch·heads·SlicesPerHead(tokens)][HeadDim] float.</summary>");
            w.Line($"public static long WorkspaceLength(int batch, int heads, int tokens) => 2L * batch * heads * SlicesPerHead(tokens) * HeadDim;");
            w.Line();
            WriteLaunch(w, plan);
        });
    }

    private static void WriteLaunch(CodeWriter w, KvStatisticsPlan plan)
    {
        var spec = plan.Spec;
        var host = plan.Host;
        w.Line($"/// <summary>");
        w.Line($"/// K's channel mean and V's channel scale over all tokens, from one read of K and V: what the K and V codes");
        w.Line($"/// kernels (the Quantize variants' <c>LaunchCodes</c>) need first. The mean's float32 sums run in a fixed order (lanes in");
        w.Line($"/// token order, then lanes, then slices of <see cref=\"SliceTokens\"/>), so the result is deterministic. A NaN in K makes");
        w.Line($"/// its channel's mean NaN, an Inf its channel's mean ±Inf (or NaN); a NaN in V never raises the absmax, an Inf makes its");
        w.Line($"/// channel's scale Inf. When the counters are given, the NaN and Inf elements of K and of V are added to them on the stream");
        w.Line($"/// (atomically: zero them first).");
        w.Line($"/// </summary>");
        LauncherSections.WriteParameterDocs(w, plan.Partials.Host);
        w.Line($"/// <remarks>Strides must be multiples of 8 and K and V 16-byte aligned (each thread reads 8 channels as one 16-byte load).</remarks>");
        w.Block($"public static void Launch({plan.Partials.CSharpParametersWithDefaults})", () =>
        {
            LauncherSections.WriteReferenceChecks(w, plan.Partials);
            w.Line($"{Guard}.Positive(batch, nameof(batch));");
            w.Line($"{Guard}.Positive(heads, nameof(heads));");
            w.Line($"{Guard}.Positive(tokens, nameof(tokens));");
            foreach (var tensor in host.Where(p => p.Kind == HostKind.Buffer && p.CSharpType == plan.InputElement))
            {
                // An absent V (optional) is not read, so its strides are not checked.
                LauncherSections.WriteStridedTensorChecks(w, tensor.Name, tensor.Optional ? $"if ({tensor.Name} is not null) " : "");
            }
            w.Line($"var batchHeads = (long)batch * heads;");
            w.Line($"var parts = batchHeads * SlicesPerHead(tokens);");
            w.Line($"{Guard}.Fits(parts * HeadDim, \"batch · heads · slices · HeadDim\");");
            WriteStatisticsChecks(w, host);
            w.Line($"{Guard}.Holds(workspace, WorkspaceLength(batch, heads, tokens), nameof(workspace), \"2 × [batch·heads·slices][HeadDim]\");");
            w.Line($"var slices = (int)SlicesPerHead(tokens);");
            LauncherSections.WriteLaunch(w, plan.Partials, "KernelName", "parts", "partials");
            LauncherSections.WriteLaunch(w, plan.Combine, "CombineKernelName", "(batchHeads * HeadDim + ThreadsPerBlock - 1) / ThreadsPerBlock", "combine");
        });
    }

    /// <summary>The constants of K's mean order and V's scale, which the CPU reference follows: this family's and KvSinglePass's.</summary>
    internal static (string Name, int Value, string Doc)[] Constants(KvStatisticsPlan plan) =>
    [
        ("HeadDim", plan.HeadDim, "Channels per token (the head dimension)."),
        ("SliceTokens", plan.SliceTokens, "Tokens per statistics block (one slice): K's mean adds each slice's sum in slice order, within groups of MeanSliceGroup."),
        ("MeanSliceGroup", KvStatisticsPlan.SliceGroup, "K's mean adds the slices in groups of this many (each in slice order), then the groups in order."),
        ("MeanLanes", plan.Lanes, "Within a slice, K's mean adds tokens s ≡ j (mod MeanLanes) in token order for each lane j, then the lanes in order: the CPU reference repeats this order."),
        ("LargestVCode", plan.LargestVCode, "V's scale is its channel's absmax over this (1 where that is 0)."),
    ];

    /// <summary>SlicesPerHead and ChannelLength, the statistics' sizes.</summary>
    internal static void WriteStatisticsSizes(CodeWriter w)
    {
        w.Line($"/// <summary>Statistics blocks per (batch, head): ceil(tokens / SliceTokens).</summary>");
        w.Line($"public static long SlicesPerHead(int tokens) => ((long)tokens + SliceTokens - 1) / SliceTokens;");
        w.Line();
        w.Line($"/// <summary>Elements of <c>kMean</c> and <c>vScale</c>: [batch·heads][HeadDim] float.</summary>");
        w.Line($"public static long ChannelLength(int batch, int heads) => (long)batch * heads * HeadDim;");
        w.Line();
    }

    /// <summary>The host checks of the statistics' outputs: the mean, the scales and the NaN/Inf counters among <paramref name="host"/>.</summary>
    internal static void WriteStatisticsChecks(CodeWriter w, System.Collections.Generic.IEnumerable<HostParameter> host)
    {
        w.Line($"{Guard}.Holds(kMean, ChannelLength(batch, heads), nameof(kMean), \"one mean per (batch, head, channel)\");");
        w.Line($"{Guard}.Holds(vScale, ChannelLength(batch, heads), nameof(vScale), \"one scale per (batch, head, channel)\");");
        // The counters are the optional uint buffers (a single pass's sync words are uint too, and required).
        foreach (var counter in host.Where(p => p.Kind == HostKind.Buffer && p.CSharpType == "uint" && p.Optional))
        {
            w.Line($"if ({counter.Name} is not null) {Guard}.Holds({counter.Name}, 1, nameof({counter.Name}), \"one NaN/Inf counter\");");
        }
    }
}
