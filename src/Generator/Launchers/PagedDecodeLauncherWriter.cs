using System.Linq;
using KernelDsl.Generator.Cuda;
using KernelDsl.Generator.Helpers;
using KernelDsl.Generator.Model;

namespace KernelDsl.Generator.Launchers;

/// <summary>
/// The PagedDecode launcher: buffer sizes, a split count suggestion, and a <c>Launch</c> that checks the batch and every
/// buffer on the host (the page table through <c>KernelDsl.Launching.KvDecodeWork</c>), then queues the checked table's
/// upload, the decode kernel and the merge of its splits.
/// </summary>
public static class PagedDecodeLauncherWriter
{
    private const string Guard = ModuleWriter.Launching + ".LaunchGuard";
    private const string Work = ModuleWriter.Launching + ".KvDecodeWork";

    public static string Write(PagedDecodePlan plan)
    {
        var spec = plan.Spec;
        return CSharpFile.Write(spec.Type, w =>
        {
            ModuleWriter.Write(w, spec,
            [
                new EntryPointInfo("KernelName", spec.KernelPrefix + PagedDecodeKernelWriter.DecodeSuffix, plan.Threads, plan.SharedMemoryBytes),
                new EntryPointInfo("MergeKernelName", spec.KernelPrefix + PagedDecodeKernelWriter.MergeSuffix, 32 * PagedDecodeKernelWriter.MergeWarps, 0),
            ],
            [
                ("HeadDim", spec.HeadDim, "Channels per head."),
                ("PageSize", spec.PageSize, "Tokens per page."),
                ("TileRows", PagedDecodePlan.Rows, "Rows of one block: (query token, query head of a KV head's group) pairs, packed."),
                ("Warps", plan.Warps, "Warps of one block; warp w of a split walks its steps w, w + Warps, … with its own online softmax."),
                ("StageKeys", plan.StageKeys, "Keys of one step of a warp's key loop: the page, or half of it."),
            ]);
            w.Line();
            w.Line($"/// <summary>Ints of <c>workspace</c>: the checked page table's rows, the lengths and the query tokens' running totals.</summary>");
            w.Line($"public static long WorkspaceLength(int batch, int tablePages) => {Work}.Length(batch, tablePages);");
            w.Line();
            w.Line($"/// <summary>Floats of <c>partialO</c>: [splits][Σ queries·headsQ][HeadDim].</summary>");
            w.Line($"public static long PartialOLength(int splits, int queries, int headsQ) => (long)splits * queries * headsQ * HeadDim;");
            w.Line();
            w.Line($"/// <summary>Floats of <c>partialLse</c>: [splits][Σ queries·headsQ].</summary>");
            w.Line($"public static long PartialLseLength(int splits, int queries, int headsQ) => (long)splits * queries * headsQ;");
            w.Line();
            w.Line($"/// <summary>16-row tiles of one KV head's (query token, query head) rows for a sequence of <paramref name=\"queries\"/> query tokens.</summary>");
            w.Line($"public static int RowTiles(int headsQ, int headsKv, int queries) => (int)(((long)queries * (headsQ / headsKv) + TileRows - 1) / TileRows);");
            w.Line();
            w.Line($"/// <summary>");
            w.Line($"/// A split count for a batch whose longest sequence holds <paramref name=\"longest\"/> tokens and whose largest query count");
            w.Line($"/// is <paramref name=\"mostQueries\"/>, on a device that holds <paramref name=\"residentBlocks\"/> blocks of this kernel at once");
            w.Line($"/// (<see cref=\"ResidentBlocks\"/>): the most that run as one wave, each split at least one page per warp.");
            w.Line($"/// </summary>");
            w.Line($"public static int SplitsFor(int longest, int batch, int headsQ, int headsKv, int mostQueries, int residentBlocks) =>");
            w.Line($"    {Work}.Splits(longest, PageSize, (long)batch * headsKv * RowTiles(headsQ, headsKv, mostQueries), residentBlocks, {System.Math.Max(1, plan.Warps / plan.StepsPerPage)});");
            w.Line();
            w.Line($"/// <summary>Blocks of the decode kernel <paramref name=\"device\"/> holds at once: its SMs × the driver's occupancy of the compiled kernel.</summary>");
            w.Line($"public static int ResidentBlocks(global::KernelDsl.CudaDevice device) => device.SmCount * device.ResidentBlocksPerSm(Module, KernelName);");
            w.Line();
            WriteLaunch(w, plan);
            w.Line();
            WriteWith(w, plan);
        });
    }

    /// <summary>
    /// <c>With(modifier arguments)</c>: the variant as a <c>PagedDecodeKernel</c>, its Launch with those arguments bound, so
    /// a cache runs any declared variant through one typed entry. Arrays are checked here already, by name.
    /// </summary>
    private static void WriteWith(CodeWriter w, PagedDecodePlan plan)
    {
        var spec = plan.Spec;
        var runtime = plan.RuntimeParameters.ToList();
        var shared = plan.Signature.Host.Where(h => runtime.All(r => r.Name != h.Name)).Select(h => h.Name).ToList();
        var kernel = $"{ModuleWriter.Launching}.PagedDecodeKernel<{plan.InputElement}>";
        w.Line($"/// <summary>");
        w.Line($"/// This variant {(runtime.Count == 0 ? "as" : "with its modifiers' arguments bound, as")} the kernel a paged cache runs (<c>PagedKvCache.Attend</c>): <see cref=\"Launch\"/>");
        w.Line($"/// {(runtime.Count == 0 ? "itself" : "with these arguments last")}, <see cref=\"SplitsFor\"/> and <see cref=\"ResidentBlocks\"/>.");
        w.Line($"/// </summary>");
        var parameters = runtime.Select(r => plan.Signature.Host.First(h => h.Name == r.Name)).ToList();
        LauncherSections.WriteParameterDocs(w, parameters);
        w.Block($"public static {kernel} With({string.Join(", ", parameters.Select(h => $"{h.DeclaredType} {h.Name}"))})", () =>
        {
            foreach (var parameter in runtime.Where(r => r.IsArray))
            {
                w.Line($"{Guard}.Buffer({parameter.Name}, nameof({parameter.Name}));");
            }
            LauncherSections.WriteModifierArgumentChecks(w, runtime);
            w.Line($"return new({CSharpFile.Literal(spec.Type.FullName)}, HeadDim, global::KernelDsl.Element.{(spec.Input == Element.BF16 ? "BF16" : "F16")}, PageSize, Warps, StageKeys,");
            w.Line($"    ({string.Join(", ", shared)}) =>");
            w.Line($"        Launch({string.Join(", ", shared.Concat(runtime.Select(r => r.Name)))}),");
            w.Line($"    SplitsFor, ResidentBlocks, Module);");
        });
    }

    private static void WriteLaunch(CodeWriter w, PagedDecodePlan plan)
    {
        var signature = plan.Signature;
        var element = plan.Spec.Input == Element.BF16 ? "bf16 bit patterns (typed <c>ushort</c>: .NET has no bfloat16)" : "f16";
        w.Line($"/// <summary>");
        w.Line($"/// Attention over the paged INT8 cache for decode steps and prefill chunks: sequence i's query tokens (rows");
        w.Line($"/// cuQueries[i] to cuQueries[i + 1] − 1 of Q, its last tokens) attend to its <paramref name=\"lengths\"/> tokens (causal,");
        w.Line($"/// bottom-right: its query j of n sees keys below length − n + j + 1). Each sequence's pages are split over");
        w.Line($"/// <paramref name=\"splits\"/> blocks per KV head, whose results a second kernel merges by LSE. Q and O are {element}.");
        if (plan.Spec.Score is not null || plan.Spec.Mask is not null)
        {
            w.Line($"/// The modifiers see q and k as positions in the cache (query j of a sequence's n is at length − n + j), b as the");
            w.Line($"/// sequence's index in the batch and h as the query head; a mask hides keys besides the causal ones.");
        }
        w.Line($"/// </summary>");
        LauncherSections.WriteParameterDocs(w, signature.Host);
        w.Line($"/// <remarks>");
        w.Line($"/// The page table entries a sequence's length needs must be pages of the pool, distinct within the row, and each length");
        w.Line($"/// must fit its row and hold its query tokens; the running totals start at 0 and never decrease. All is checked before");
        w.Line($"/// anything is queued. The checked table is copied into <paramref name=\"workspace\"/> on the stream, so a workspace and");
        w.Line($"/// the partial buffers serve one stream at a time. A table of at most <see cref=\"{Work}.MappedBytes\"/> bytes is instead read");
        w.Line($"/// by the kernel in place, from pinned host memory the stream lends, where the device can map it (PERF_NOTES §20e).");
        w.Line($"/// </remarks>");
        w.Block($"public static void Launch({signature.CSharpParameters})", () =>
        {
            LauncherSections.WriteReferenceChecks(w, signature);
            LauncherSections.WriteModifierArgumentChecks(w, plan.RuntimeParameters);
            w.Line($"{Guard}.Positive(headsKv, nameof(headsKv));");
            w.Line($"{Guard}.Positive(headsQ, nameof(headsQ));");
            w.Line($"{Guard}.MultipleOf(headsQ, headsKv, nameof(headsQ), \"the query heads sharing a KV head are one group\");");
            w.Line($"{Guard}.Positive(pages, nameof(pages));");
            w.Line($"{Guard}.Positive(splits, nameof(splits));");
            w.Line($"{Guard}.AtMost(splits, 65535, nameof(splits), \"splits are the grid's y extent\");");
            w.Block($"if (!(softmaxScale > 0f) || float.IsInfinity(softmaxScale))", () =>
                w.Line($"throw new global::System.ArgumentOutOfRangeException(nameof(softmaxScale), softmaxScale, \"'softmaxScale' must be positive and finite.\");"));
            if (Cuda.ModifierWriter.UsesFloatPositions(plan.Spec.Score))
            {
                w.Line($"foreach (var length in lengths) {Guard}.AtMost(length, {Cuda.ModifierWriter.FloatPositionLimit}, nameof(lengths), \"{Cuda.ModifierWriter.FloatPositionRule}\");");
            }
            w.Line($"using var work = {Work}.Build(cuQueries, lengths, pageTable, tablePages, pages, PageSize);");
            w.Line($"var batch = lengths.Length;");
            var extents = plan.ArrayExtents.ToList();
            if (extents.Any(e => e.Extent == PagedDecodePlan.LongestLocal))
            {
                w.Line($"var {PagedDecodePlan.LongestLocal} = {Work}.Longest(lengths);");
            }
            // A modifier array indexed directly by b, h, q or k holds what the bodies show, before the kernel could read past it.
            foreach (var e in extents)
            {
                w.Line($"{Guard}.Holds({e.Array}, {e.Extent}, nameof({e.Array}), \"{e.What}: the modifier indexes it by {e.Index}\");");
            }
            w.Line($"{Guard}.AtMost(batch, 65535, nameof(lengths), \"sequences are the grid's z extent\");");
            w.Line($"var (queryTokens, mostQueries) = ({Work}.Queries(cuQueries), {Work}.MostQueries(cuQueries));");
            w.Line($"{Guard}.AtMost((long)queryTokens * headsQ, int.MaxValue, nameof(cuQueries), \"query tokens × headsQ output rows are counted in int\");");
            w.Line($"var {PagedDecodePlan.RowsLocal} = queryTokens * headsQ;");
            w.Line($"{Guard}.Holds(queries, (long)rows * HeadDim, nameof(queries), $\"Q [{{queryTokens}}][{{headsQ}}][{{HeadDim}}]\");");
            w.Line($"{Guard}.Holds(output, (long)rows * HeadDim, nameof(output), $\"O [{{queryTokens}}][{{headsQ}}][{{HeadDim}}]\");");
            w.Line($"if (lse is not null) {Guard}.Holds(lse, rows, nameof(lse), $\"LSE [{{queryTokens}}][{{headsQ}}]\");");
            foreach (var (name, length, shape) in new[]
            {
                ("kCodes", "(long)pages * headsKv * PageSize * HeadDim", "int8 [{pages}][{headsKv}][{PageSize}][{HeadDim}]"),
                ("vCodes", "(long)pages * headsKv * PageSize * HeadDim", "int8 [{pages}][{headsKv}][{PageSize}][{HeadDim}]"),
                ("kScale", "(long)pages * headsKv", "one scale per page and KV head, [{pages}][{headsKv}]"),
                ("kMean", "(long)pages * headsKv * HeadDim", "[{pages}][{headsKv}][{HeadDim}]"),
                ("vScale", "(long)pages * headsKv * HeadDim", "[{pages}][{headsKv}][{HeadDim}]"),
                ("partialO", "PartialOLength(splits, queryTokens, headsQ)", "[{splits}][{rows}][{HeadDim}]"),
                ("partialLse", "PartialLseLength(splits, queryTokens, headsQ)", "[{splits}][{rows}]"),
                ("workspace", "work.Length", "the checked page table and lengths, {work.Length} ints"),
            })
            {
                w.Line($"{Guard}.Holds({name}, {length}, nameof({name}), $\"{shape}\");");
            }
            // cp.async moves 16-byte chunks of codes, means and scales; a lane reads its Q channels as one vector; the block's merge
            // stores four channels at a time: a float4 of a split's O, or four elements of O.
            foreach (var (name, bytes) in new[] { ("kCodes", 16), ("vCodes", 16), ("kMean", 16), ("vScale", 16), ("queries", 2 * plan.LaneChannels), ("output", 8), ("partialO", 16) })
            {
                w.Line($"{Guard}.Aligned({name}, {bytes}, nameof({name}));");
            }
            w.Line($"if (rows == 0) return;  // no sequence has a query token: nothing to attend or write");
            w.Line($"// A small table is read in place from pinned host memory, which the stream keeps until the kernels queued before it");
            w.Line($"// is disposed have run; a larger one, or one the stream cannot map, is uploaded (staged before CopyToDevice returns:");
            w.Line($"// the pooled array goes back on dispose).");
            w.Line($"using var {PagedDecodePlan.MappedWorkLocal} = (long)work.Length * sizeof(int) <= {Work}.MappedBytes ? stream.TryMapForKernels(work.Span) : null;");
            w.Line($"if ({PagedDecodePlan.MappedWorkLocal} is null) stream.CopyToDevice(workspace, work.Span);");
            w.Line($"var {PagedDecodePlan.WorkAddressLocal} = {PagedDecodePlan.MappedWorkLocal}?.Address ?? workspace.DevicePointer;");
            LauncherSections.WriteLaunch(w, signature, "KernelName", "(long)headsKv * RowTiles(headsQ, headsKv, mostQueries), splits, batch");
            w.Line($"if (splits == 1) return;  // the decode kernel wrote O and LSE itself");
            LauncherSections.WriteLaunch(w, plan.MergeSignature, "MergeKernelName", $"((long)rows + {PagedDecodeKernelWriter.MergeWarps - 1}) / {PagedDecodeKernelWriter.MergeWarps}", "merge", dependent: true);
        });
    }
}
