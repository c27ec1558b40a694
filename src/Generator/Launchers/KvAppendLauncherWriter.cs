using System.Linq;
using KernelDsl.Generator.Helpers;
using KernelDsl.Generator.Model;

namespace KernelDsl.Generator.Launchers;

/// <summary>
/// The KvCacheAppend launcher: the cache's buffer sizes, and a <c>Launch</c> that checks the batch and every buffer on the
/// host (the work list comes from <c>KernelDsl.Launching.KvAppendWork</c>), queues the list's upload and the kernel; and a
/// <c>CountNonFinite</c> that only counts the new tokens' NaN and Inf.
/// </summary>
public static class KvAppendLauncherWriter
{
    private const string Guard = ModuleWriter.Launching + ".LaunchGuard";
    private const string Work = ModuleWriter.Launching + ".KvAppendWork";

    public static string Write(KvAppendPlan plan)
    {
        var spec = plan.Spec;
        var signature = plan.Signature;
        return CSharpFile.Write(spec.Type, w =>
        {
            ModuleWriter.Write(w, spec,
            [
                new EntryPointInfo("KernelName", plan.AppendSymbol, plan.Threads, 0),
                new EntryPointInfo("CountNonFiniteKernelName", plan.CountSymbol, plan.Threads, 0),
            ],
            [
                ("HeadDim", spec.HeadDim, "Channels per head."),
                ("PageSize", spec.PageSize, "Tokens per page: one K scale and one K mean per page and KV head."),
                ("WorkItemInts", KvAppendPlan.ItemFields.Count, "Ints per work item (one per sequence and page its new tokens touch)."),
            ]);
            w.Line();
            w.Line($"/// <summary>Elements of <c>kCodes</c> and <c>vCodes</c>: int8 [pages][headsKv][PageSize][HeadDim].</summary>");
            w.Line($"public static long CodesLength(int pages, int headsKv) => (long)pages * headsKv * PageSize * HeadDim;");
            w.Line();
            w.Line($"/// <summary>Elements of <c>kScale</c>: one float per page and KV head, [pages][headsKv].</summary>");
            w.Line($"public static long KScaleLength(int pages, int headsKv) => (long)pages * headsKv;");
            w.Line();
            w.Line($"/// <summary>Elements of <c>kMean</c> and <c>vScale</c>: one float per page, KV head and channel, [pages][headsKv][HeadDim].</summary>");
            w.Line($"public static long ChannelLength(int pages, int headsKv) => (long)pages * headsKv * HeadDim;");
            w.Line();
            w.Line($"/// <summary>Elements of <c>kStaging</c> and <c>vStaging</c>: the originals of one partial page per slot, [slots][headsKv][PageSize][HeadDim].</summary>");
            w.Line($"public static long StagingLength(int slots, int headsKv) => (long)slots * headsKv * PageSize * HeadDim;");
            w.Line();
            w.Line($"/// <summary>Elements of <c>workspace</c> enough for any append of <paramref name=\"newTokens\"/> tokens to <paramref name=\"batch\"/> sequences.</summary>");
            w.Line($"public static long WorkspaceLength(int batch, long newTokens) => {Work}.MaxItems(batch, newTokens, PageSize) * WorkItemInts;");
            w.Line();
            WriteLaunch(w, plan, signature);
            w.Line();
            WriteCountNonFinite(w, plan);
        });
    }

    private static void WriteLaunch(CodeWriter w, KvAppendPlan plan, KernelSignature signature)
    {
        var element = plan.Spec.Input == Element.BF16 ? "bf16 bit patterns (typed <c>ushort</c>: .NET has no bfloat16)" : "f16";
        w.Line($"/// <summary>");
        w.Line($"/// Appends each sequence's new tokens to its pages and requantizes every page they touch from its originals: a partial page's");
        w.Line($"/// earlier tokens come from the sequence's staging slot, which then holds the originals of its new partial page. New K and V");
        w.Line($"/// are {element}.");
        w.Line($"/// </summary>");
        LauncherSections.WriteParameterDocs(w, signature.Host);
        w.Line($"/// <remarks>");
        w.Line($"/// Every page table entry a sequence's tokens need must be a page of the pool, no page may appear twice, and staging slots");
        w.Line($"/// must be distinct: all is checked before anything is queued. The work list is copied into <paramref name=\"workspace\"/> on");
        w.Line($"/// the stream, so a workspace serves one stream at a time. The counts in <paramref name=\"nonFinite\"/> are added while the");
        w.Line($"/// pages are written: a caller that must change nothing when a value is bad counts first with <see cref=\"CountNonFinite\"/>.");
        w.Line($"/// </remarks>");
        w.Block($"public static void Launch({signature.CSharpParametersWithDefaults})", () =>
        {
            LauncherSections.WriteReferenceChecks(w, signature);
            w.Line($"{Guard}.Positive(headsKv, nameof(headsKv));");
            w.Line($"{Guard}.AtMost(headsKv, 65535, nameof(headsKv), \"KV heads are the grid's y extent\");");
            w.Line($"{Guard}.Positive(pages, nameof(pages));");
            w.Line($"{Guard}.Positive(slots, nameof(slots));");
            w.Line($"using var work = {Work}.Build(cuNewTokens, lengths, pageTable, tablePages, stagingSlots, pages, slots, PageSize, out var newTokens);");
            w.Line($"{Guard}.Holds(kNew, (long)newTokens * headsKv * HeadDim, nameof(kNew), $\"new K [{{newTokens}}][{{headsKv}}][{{HeadDim}}]\");");
            w.Line($"{Guard}.Holds(vNew, (long)newTokens * headsKv * HeadDim, nameof(vNew), $\"new V [{{newTokens}}][{{headsKv}}][{{HeadDim}}]\");");
            foreach (var (name, length, shape) in new[]
            {
                ("kCodes", "CodesLength(pages, headsKv)", "int8 [{pages}][{headsKv}][{PageSize}][{HeadDim}]"),
                ("vCodes", "CodesLength(pages, headsKv)", "int8 [{pages}][{headsKv}][{PageSize}][{HeadDim}]"),
                ("kScale", "KScaleLength(pages, headsKv)", "one scale per page and KV head, [{pages}][{headsKv}]"),
                ("kMean", "ChannelLength(pages, headsKv)", "[{pages}][{headsKv}][{HeadDim}]"),
                ("vScale", "ChannelLength(pages, headsKv)", "[{pages}][{headsKv}][{HeadDim}]"),
                ("kStaging", "StagingLength(slots, headsKv)", "[{slots}][{headsKv}][{PageSize}][{HeadDim}]"),
                ("vStaging", "StagingLength(slots, headsKv)", "[{slots}][{headsKv}][{PageSize}][{HeadDim}]"),
            })
            {
                w.Line($"{Guard}.Holds({name}, {length}, nameof({name}), $\"{shape}\");");
            }
            foreach (var name in new[] { "kNew", "vNew", "kStaging", "vStaging" })
            {
                w.Line($"{Guard}.Aligned({name}, 16, nameof({name}));");
            }
            foreach (var name in new[] { "kCodes", "vCodes" })
            {
                w.Line($"{Guard}.Aligned({name}, 8, nameof({name}));");
            }
            WriteCounterCheck(w, "if (nonFinite is not null) ");
            w.Line($"var items = work.Length / WorkItemInts;");
            w.Line($"if (items == 0) return;  // no sequence brought a token");
            w.Line($"{Guard}.Holds(workspace, work.Length, nameof(workspace), $\"the work list of {{items}} pages × {{WorkItemInts}} ints\");");
            w.Line($"stream.CopyToDevice(workspace, work.Span);  // staged before it returns: the pooled array goes back on dispose");
            LauncherSections.WriteLaunch(w, signature, "KernelName", "items, headsKv, 2");
        });
    }

    private static void WriteCountNonFinite(CodeWriter w, KvAppendPlan plan)
    {
        var signature = plan.CountSignature;
        w.Line($"/// <summary>");
        w.Line($"/// Adds the NaN and Inf elements of the first <paramref name=\"newTokens\"/> rows of new K and of new V to");
        w.Line($"/// <paramref name=\"nonFinite\"/>[0] and [1] on the stream, and writes nothing else: the check a cache runs before an append");
        w.Line($"/// that must change nothing when a new value is bad.");
        w.Line($"/// </summary>");
        LauncherSections.WriteParameterDocs(w, signature.Host);
        w.Block($"public static void CountNonFinite({signature.CSharpParameters})", () =>
        {
            LauncherSections.WriteReferenceChecks(w, signature);
            w.Line($"{Guard}.AtLeast(newTokens, 0, nameof(newTokens), \"zero\");");
            w.Line($"{Guard}.Positive(headsKv, nameof(headsKv));");
            w.Line($"{Guard}.Holds(kNew, newTokens * headsKv * HeadDim, nameof(kNew), $\"new K [{{newTokens}}][{{headsKv}}][{{HeadDim}}]\");");
            w.Line($"{Guard}.Holds(vNew, newTokens * headsKv * HeadDim, nameof(vNew), $\"new V [{{newTokens}}][{{headsKv}}][{{HeadDim}}]\");");
            w.Line($"{Guard}.Aligned(kNew, 16, nameof(kNew));");
            w.Line($"{Guard}.Aligned(vNew, 16, nameof(vNew));");
            WriteCounterCheck(w, "");
            w.Line($"var chunks = newTokens * headsKv * (HeadDim / {KvAppendPlan.ChunkChannels});");
            w.Line($"if (chunks == 0) return;");
            w.Line($"const long chunksPerBlock = (long)ThreadsPerBlock * {KvAppendPlan.CountChunksPerThread};");
            w.Line($"var blocks = (chunks + chunksPerBlock - 1) / chunksPerBlock;");
            w.Line($"{Guard}.Fits(blocks, \"the count kernel's grid\");");
            LauncherSections.WriteLaunch(w, signature, "CountNonFiniteKernelName", "blocks, 2");
        });
    }

    private static void WriteCounterCheck(CodeWriter w, string condition) =>
        w.Line($"{condition}{Guard}.Holds(nonFinite, {KvAppendPlan.NonFiniteCounters}, nameof(nonFinite), \"K's and V's NaN/Inf counters\");");
}
