using System.Linq;
using KernelDsl.Generator.Helpers;
using KernelDsl.Generator.Model;

namespace KernelDsl.Generator.Launchers;

/// <summary>
/// The KvSinglePass launcher: the constants the CPU reference follows (as KvStatistics and KvCodes write them), the outputs'
/// and scratch sizes, and a <c>Launch</c> that checks K, V and every buffer on the host, zeroes the sync words on the
/// stream, then queues the one kernel with its lead (how many heads the codes blocks trail the statistics blocks).
/// </summary>
public static class KvSinglePassLauncherWriter
{
    private const string Guard = ModuleWriter.Launching + ".LaunchGuard";

    public static string Write(KvSinglePassPlan plan)
    {
        var spec = plan.Spec;
        return CSharpFile.Write(spec.Type, w =>
        {
            var constants = new System.Collections.Generic.List<(string, int, string)>(KvStatisticsLauncherWriter.Constants(plan.Statistics))
            {
                ("KScaleKeys", spec.KScaleKeys, "Tokens per K scale."),
            };
            if (spec.VTransposed)
            {
                constants.Add(("TransposePad", spec.TransposePad, "The transposed V's token count is padded to a multiple of this, with zero codes."));
            }
            ModuleWriter.Write(w, spec, [new EntryPointInfo("KernelName", plan.Symbol, plan.Threads, 0)], constants);
            w.Line();
            KvStatisticsLauncherWriter.WriteStatisticsSizes(w);
            w.Line($"/// <summary>Groups of MeanSliceGroup slices per (batch, head).</summary>");
            w.Line($"public static long GroupsPerHead(int tokens) => (SlicesPerHead(tokens) + MeanSliceGroup - 1) / MeanSliceGroup;");
            w.Line();
            w.Line($"/// <summary>Elements of <c>workspace</c>: K's sums and V's maxima of every slice and of every group, 2 × [batch·heads·(slices + groups)][HeadDim] float.</summary>");
            w.Line($"public static long WorkspaceLength(int batch, int heads, int tokens) => 2L * batch * heads * (SlicesPerHead(tokens) + GroupsPerHead(tokens)) * HeadDim;");
            w.Line();
            w.Line($"/// <summary>Elements of <c>sync</c>: the ticket, and per (batch, head) its groups' arrival counts, its closed groups and its flag.</summary>");
            w.Line($"public static long SyncLength(int batch, int heads, int tokens) => 1L + (long)batch * heads * (GroupsPerHead(tokens) + 2);");
            w.Line();
            KvCodesLauncherWriter.WriteCodeSizes(w, plan.Codes);
            w.Line();
            w.Line($"/// <summary>Blocks of this kernel the device holds at once (its SMs × the occupancy calculator's blocks an SM).</summary>");
            w.Line($"public static int ResidentBlocks(global::KernelDsl.CudaDevice device) => device.SmCount * device.ResidentBlocksPerSm(Module, KernelName);");
            w.Line();
            w.Line($"/// <summary>");
            w.Line($"/// How many heads the codes blocks trail the statistics blocks: as many heads' statistics blocks as the device holds at");
            w.Line($"/// once (about three device-fulls of both roles at D = 128), so a head's statistics are done when its codes blocks start.");
            w.Line($"/// Run 79 timed one device-full of both roles: the codes blocks waited; run 80 this lead: their re-reads missed L2.");
            w.Line($"/// </summary>");
            w.Line($"public static int Lead(global::KernelDsl.CudaDevice device, int batch, int heads, int tokens) =>");
            w.Line($"    (int)global::System.Math.Clamp((ResidentBlocks(device) + SlicesPerHead(tokens) - 1) / SlicesPerHead(tokens), 1L, (long)batch * heads);");
            w.Line();
            WriteLaunch(w, plan);
        });
    }

    private static void WriteLaunch(CodeWriter w, KvSinglePassPlan plan)
    {
        var spec = plan.Spec;
        var signature = plan.Signature;
        w.Line($"/// <summary>");
        w.Line($"/// K's channel mean and V's channel scales, then K's and V's codes, in one launch (the codes blocks read K and V again, from L2");
        w.Line($"/// where their head's statistics were read recently enough): what a KvStatistics pass and");
        w.Line($"/// a KvCodes pass with the same slices, tiles and layout write, bit for bit. K's codes are round-half-even((k − mean) · (1 / scale))");
        w.Line($"/// clamped to ±127 with scale = absmax / 127 over each tile of KScaleKeys tokens (1 where that is 0); V's are");
        w.Line($"/// {(spec.VOutput == Element.E4M3 ? "the e4m3 code (nearest even, saturating) of v · (1 / scale)" : "round-half-even(v · (1 / scale)) clamped to ±127")} with its channel's scale.");
        w.Line($"/// When the counters are given, the NaN and Inf elements of K and of V are added to them (atomically: zero them first).");
        w.Line($"/// </summary>");
        LauncherSections.WriteParameterDocs(w, signature.Host);
        w.Line($"/// <remarks>Strides must be multiples of 8; K, V and the codes 16-byte aligned (16-byte loads and stores).</remarks>");
        w.Block($"public static void Launch({signature.CSharpParametersWithDefaults})", () =>
        {
            KvCodesLauncherWriter.WriteInputChecks(w, signature, spec.VTransposed);
            w.Line($"var blocks = batchHeads * (SlicesPerHead(tokens) + TilesPerHead(tokens));");
            KvStatisticsLauncherWriter.WriteStatisticsChecks(w, signature.Host);
            KvCodesLauncherWriter.WriteCodeChecks(w);
            w.Line($"{Guard}.Holds(workspace, WorkspaceLength(batch, heads, tokens), nameof(workspace), \"2 × [batch·heads·(slices + groups)][HeadDim]\");");
            w.Line($"{Guard}.Holds(sync, SyncLength(batch, heads, tokens), nameof(sync), \"the ticket and 2 + groups words per (batch, head)\");");
            w.Line($"{Guard}.Fits(blocks, \"batch · heads · (slices + tiles) (the grid)\");");
            w.Line($"var lead = Lead(stream.Device, batch, heads, tokens);");
            w.Line($"stream.FillBytes(sync, 0);  // the ticket, the counts and the flags start at zero");
            LauncherSections.WriteLaunch(w, signature, "KernelName", "blocks");
        });
    }
}
