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
                ("MaxSeqQ", PagedDecodePlan.Rows, "The most query tokens per sequence."),
            ]);
            w.Line();
            w.Line($"/// <summary>Ints of <c>workspace</c>: the checked page table's rows and the lengths.</summary>");
            w.Line($"public static long WorkspaceLength(int batch, int tablePages) => {Work}.Length(batch, tablePages);");
            w.Line();
            w.Line($"/// <summary>Floats of <c>partialO</c>: [splits][batch·headsQ·seqQ][HeadDim].</summary>");
            w.Line($"public static long PartialOLength(int splits, int batch, int headsQ, int seqQ) => (long)splits * batch * headsQ * seqQ * HeadDim;");
            w.Line();
            w.Line($"/// <summary>Floats of <c>partialLse</c>: [splits][batch·headsQ·seqQ].</summary>");
            w.Line($"public static long PartialLseLength(int splits, int batch, int headsQ, int seqQ) => (long)splits * batch * headsQ * seqQ;");
            w.Line();
            w.Line($"/// <summary>16-row tiles of one KV head's (query token, query head) rows.</summary>");
            w.Line($"public static int RowTiles(int headsQ, int headsKv, int seqQ) => (seqQ * (headsQ / headsKv) + TileRows - 1) / TileRows;");
            w.Line();
            w.Line($"/// <summary>");
            w.Line($"/// A split count for a batch whose longest sequence holds <paramref name=\"longest\"/> tokens, on a device of");
            w.Line($"/// <paramref name=\"multiprocessors\"/> SMs: about two blocks per SM, each split at least one page per warp.");
            w.Line($"/// </summary>");
            w.Line($"public static int SplitsFor(int longest, int batch, int headsQ, int headsKv, int seqQ, int multiprocessors) =>");
            w.Line($"    {Work}.Splits(longest, PageSize, (long)batch * headsKv * RowTiles(headsQ, headsKv, seqQ), multiprocessors, {plan.Warps});");
            w.Line();
            WriteLaunch(w, plan);
        });
    }

    private static void WriteLaunch(CodeWriter w, PagedDecodePlan plan)
    {
        var signature = plan.Signature;
        var element = plan.Spec.Input == Element.BF16 ? "bf16 bit patterns (typed <c>ushort</c>: .NET has no bfloat16)" : "f16";
        w.Line($"/// <summary>");
        w.Line($"/// Decode attention over the paged INT8 cache: each sequence's last <paramref name=\"seqQ\"/> tokens attend to its");
        w.Line($"/// <paramref name=\"lengths\"/> tokens (causal, bottom-right: query i sees keys below length − seqQ + i + 1). Each sequence's");
        w.Line($"/// pages are split over <paramref name=\"splits\"/> blocks per KV head, whose results a second kernel merges by LSE. Q and O");
        w.Line($"/// are {element}.");
        w.Line($"/// </summary>");
        foreach (var parameter in signature.Host)
        {
            w.Line($"/// <param name=\"{parameter.Name}\">{parameter.Role}.</param>");
        }
        w.Line($"/// <remarks>");
        w.Line($"/// The page table entries a sequence's length needs must be pages of the pool, distinct within the row, and each length");
        w.Line($"/// must fit its row and hold the query tokens: all is checked before anything is queued. The checked table is copied");
        w.Line($"/// into <paramref name=\"workspace\"/> on the stream, so a workspace and the partial buffers serve one stream at a time.");
        w.Line($"/// </remarks>");
        w.Block($"public static void Launch({signature.CSharpParameters})", () =>
        {
            foreach (var parameter in signature.Host)
            {
                if (parameter.Kind == HostKind.Stream)
                {
                    w.Line($"{Guard}.Stream({parameter.Name}, nameof({parameter.Name}));");
                }
                else if (parameter.Kind == HostKind.Buffer && !parameter.Optional)
                {
                    w.Line($"{Guard}.Buffer({parameter.Name}, nameof({parameter.Name}));");
                }
                else if (parameter.Kind == HostKind.Buffer)
                {
                    w.Line($"if ({parameter.Name} is not null) {Guard}.Buffer({parameter.Name}, nameof({parameter.Name}));");
                }
            }
            w.Line($"{Guard}.Positive(headsKv, nameof(headsKv));");
            w.Line($"{Guard}.Positive(headsQ, nameof(headsQ));");
            w.Line($"{Guard}.MultipleOf(headsQ, headsKv, nameof(headsQ), \"the query heads sharing a KV head are one group\");");
            w.Line($"{Guard}.Positive(seqQ, nameof(seqQ));");
            w.Line($"{Guard}.AtMost(seqQ, MaxSeqQ, nameof(seqQ), \"decode takes up to 16 query tokens per sequence; use prefill for more\");");
            w.Line($"{Guard}.Positive(pages, nameof(pages));");
            w.Line($"{Guard}.Positive(splits, nameof(splits));");
            w.Line($"{Guard}.AtMost(splits, int.MaxValue / 2, nameof(splits), \"splits are the grid's x extent\");");
            w.Line($"{Guard}.AtMost((long)headsKv * RowTiles(headsQ, headsKv, seqQ), 65535, nameof(headsKv), \"KV heads × row tiles are the grid's y extent\");");
            w.Block($"if (!(softmaxScale > 0f) || float.IsInfinity(softmaxScale))", () =>
                w.Line($"throw new global::System.ArgumentOutOfRangeException(nameof(softmaxScale), softmaxScale, \"'softmaxScale' must be positive and finite.\");"));
            w.Line($"var work = {Work}.Build(lengths, pageTable, tablePages, pages, PageSize, seqQ);");
            w.Line($"var batch = lengths.Length;");
            w.Line($"{Guard}.AtMost(batch, 65535, nameof(lengths), \"sequences are the grid's z extent\");");
            w.Line($"var rows = (long)batch * headsQ * seqQ;");
            w.Line($"{Guard}.Holds(queries, rows * HeadDim, nameof(queries), $\"Q [{{batch}}][{{headsQ}}][{{seqQ}}][{{HeadDim}}]\");");
            w.Line($"{Guard}.Holds(output, rows * HeadDim, nameof(output), $\"O [{{batch}}][{{headsQ}}][{{seqQ}}][{{HeadDim}}]\");");
            w.Line($"if (lse is not null) {Guard}.Holds(lse, rows, nameof(lse), $\"LSE [{{batch}}][{{headsQ}}][{{seqQ}}]\");");
            foreach (var (name, length, shape) in new[]
            {
                ("kCodes", "(long)pages * headsKv * PageSize * HeadDim", "int8 [{pages}][{headsKv}][{PageSize}][{HeadDim}]"),
                ("vCodes", "(long)pages * headsKv * PageSize * HeadDim", "int8 [{pages}][{headsKv}][{PageSize}][{HeadDim}]"),
                ("kScale", "(long)pages * headsKv", "one scale per page and KV head, [{pages}][{headsKv}]"),
                ("kMean", "(long)pages * headsKv * HeadDim", "[{pages}][{headsKv}][{HeadDim}]"),
                ("vScale", "(long)pages * headsKv * HeadDim", "[{pages}][{headsKv}][{HeadDim}]"),
                ("partialO", "PartialOLength(splits, batch, headsQ, seqQ)", "[{splits}][{rows}][{HeadDim}]"),
                ("partialLse", "PartialLseLength(splits, batch, headsQ, seqQ)", "[{splits}][{rows}]"),
                ("workspace", "work.Length", "the checked page table and lengths, {work.Length} ints"),
            })
            {
                w.Line($"{Guard}.Holds({name}, {length}, nameof({name}), $\"{shape}\");");
            }
            // cp.async moves 16-byte chunks of codes, means and scales; the merge stores O two elements at a time.
            foreach (var (name, bytes) in new[] { ("kCodes", 16), ("vCodes", 16), ("kMean", 16), ("vScale", 16), ("output", 4) })
            {
                w.Line($"{Guard}.Aligned({name}, {bytes}, nameof({name}));");
            }
            w.Line($"stream.CopyToDevice(workspace, (global::System.ReadOnlySpan<int>)work);");
            w.Line($"var arguments = new {ModuleWriter.Launching}.KernelArguments();");
            foreach (var parameter in signature.Kernel)
            {
                w.Line($"arguments.Add({parameter.Host});");
            }
            w.Line($"stream.Launch(Module, KernelName, {ModuleWriter.Launching}.Dim3.Of(splits, (long)headsKv * RowTiles(headsQ, headsKv, seqQ), batch), arguments);");
            w.Line($"var merge = new {ModuleWriter.Launching}.KernelArguments();");
            foreach (var parameter in plan.MergeParameters)
            {
                var host = signature.HostOf(parameter);
                if (host.Optional)
                {
                    w.Line($"if ({host.Name} is null) merge.AddNullPointer(); else merge.Add({host.Name});");
                }
                else
                {
                    w.Line($"merge.Add({host.Name});");
                }
            }
            w.Line($"stream.Launch(Module, MergeKernelName, {ModuleWriter.Launching}.Dim3.Of(((long)headsQ * seqQ + {PagedDecodeKernelWriter.MergeWarps - 1}) / {PagedDecodeKernelWriter.MergeWarps}, batch), merge);");
        });
    }
}
