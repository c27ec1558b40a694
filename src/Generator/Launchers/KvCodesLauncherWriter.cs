using System.Linq;
using KernelDsl.Generator.Helpers;
using KernelDsl.Generator.Model;

namespace KernelDsl.Generator.Launchers;

/// <summary>
/// The KvCodes launcher: the outputs' sizes (and, for a transposed V, its padding and token order), and a <c>Launch</c>
/// that checks K, V and every buffer on the host, then queues the one kernel.
/// </summary>
public static class KvCodesLauncherWriter
{
    private const string Guard = ModuleWriter.Launching + ".LaunchGuard";

    public static string Write(KvCodesPlan plan)
    {
        var spec = plan.Spec;
        return CSharpFile.Write(spec.Type, w =>
        {
            var constants = new System.Collections.Generic.List<(string, int, string)>
            {
                ("HeadDim", spec.HeadDim, "Channels per token (the head dimension)."),
                ("KScaleKeys", spec.KScaleKeys, "Tokens per K scale, and per block."),
            };
            if (spec.VTransposed)
            {
                constants.Add(("TransposePad", spec.TransposePad, "The transposed V's token count is padded to a multiple of this, with zero codes."));
            }
            ModuleWriter.Write(w, spec, [new EntryPointInfo("KernelName", plan.Symbol, plan.Threads, 0)], constants);
            w.Line();
            WriteCodeSizes(w, plan);
            w.Line();
            WriteLaunch(w, plan);
        });
    }

    private static void WriteLaunch(CodeWriter w, KvCodesPlan plan)
    {
        var spec = plan.Spec;
        var signature = plan.Signature;
        w.Line($"/// <summary>");
        w.Line($"/// K's and V's codes from one more read of both, after a KvStatistics pass wrote <paramref name=\"kMean\"/> and <paramref name=\"vScale\"/>:");
        w.Line($"/// K's codes are round-half-even((k − mean) · (1 / scale)) clamped to ±127 with scale = absmax / 127 over each tile of KScaleKeys tokens");
        w.Line($"/// (1 where that is 0); V's are {(spec.VOutput == Element.E4M3 ? "the e4m3 code (nearest even, saturating) of v · (1 / scale)" : "round-half-even(v · (1 / scale)) clamped to ±127")} with the channel's scale.");
        w.Line($"/// The same codes as the Quantize variants' LaunchCodes; NaN and Inf are the statistics pass's to count.");
        w.Line($"/// </summary>");
        LauncherSections.WriteParameterDocs(w, signature.Host);
        w.Line($"/// <remarks>Strides must be multiples of 8; K, V and the codes 16-byte aligned (16-byte loads and stores).</remarks>");
        w.Block($"public static void Launch({signature.CSharpParameters})", () =>
        {
            WriteInputChecks(w, signature, spec.VTransposed);
            w.Line($"{Guard}.Fits(batchHeads * HeadDim, \"batch · heads · HeadDim\");");
            w.Line($"{Guard}.Holds(kMean, batchHeads * HeadDim, nameof(kMean), \"one mean per (batch, head, channel)\");");
            w.Line($"{Guard}.Holds(vScale, batchHeads * HeadDim, nameof(vScale), \"one scale per (batch, head, channel)\");");
            WriteCodeChecks(w);
            w.Line($"var blocks = batchHeads * TilesPerHead(tokens);");
            w.Line($"{Guard}.Fits(blocks, \"batch · heads · tiles (the grid)\");");
            LauncherSections.WriteLaunch(w, signature, "KernelName", "blocks");
        });
    }

    /// <summary>
    /// The checks of the references, of batch, heads and tokens and of K's and V's strides, then batchHeads and (transposed)
    /// paddedTokens: this family's and KvSinglePass's.
    /// </summary>
    internal static void WriteInputChecks(CodeWriter w, KernelSignature signature, bool vTransposed)
    {
        LauncherSections.WriteReferenceChecks(w, signature);
        w.Line($"{Guard}.Positive(batch, nameof(batch));");
        w.Line($"{Guard}.Positive(heads, nameof(heads));");
        w.Line($"{Guard}.Positive(tokens, nameof(tokens));");
        LauncherSections.WriteStridedTensorChecks(w, "k");
        LauncherSections.WriteStridedTensorChecks(w, "v");
        w.Line($"var batchHeads = (long)batch * heads;");
        if (vTransposed)
        {
            w.Line($"{Guard}.Fits((long)tokens + TransposePad, nameof(tokens));");
            w.Line($"var paddedTokens = PaddedTokens(tokens);");
        }
    }

    /// <summary>The codes' sizes (KCodesLength, KScaleCount, VCodesLength, TilesPerHead and, transposed, PaddedTokens and StoredTokenOrder): this family's and KvSinglePass's.</summary>
    internal static void WriteCodeSizes(CodeWriter w, KvCodesPlan plan)
    {
        var spec = plan.Spec;
        w.Line($"/// <summary>Elements of <c>kCodes</c>: int8 [batch][heads][tokens][HeadDim].</summary>");
        w.Line($"public static long KCodesLength(int batch, int heads, int tokens) => (long)batch * heads * tokens * HeadDim;");
        w.Line();
        w.Line($"/// <summary>Elements of <c>kScale</c>: one per (batch, head, tile of KScaleKeys tokens), [batch·heads][ceil(tokens / KScaleKeys)].</summary>");
        w.Line($"public static long KScaleCount(int batch, int heads, int tokens) => (long)batch * heads * (((long)tokens + KScaleKeys - 1) / KScaleKeys);");
        w.Line();
        if (spec.VTransposed)
        {
            w.Line($"/// <summary>Tokens of the transposed V: <paramref name=\"tokens\"/> rounded up to <see cref=\"TransposePad\"/>.</summary>");
            w.Line($"public static int PaddedTokens(int tokens) => (int)(((long)tokens + TransposePad - 1) / TransposePad * TransposePad);");
            w.Line();
            w.Line($"/// <summary>Position p of the 16-token group at 16·g holds token 16·g + StoredTokenOrder[p] ({spec.TransposedOrder} order).</summary>");
            w.Line($"public static global::System.ReadOnlySpan<byte> StoredTokenOrder => [{string.Join(", ", plan.StoredOrder)}];");
            w.Line();
            w.Line($"/// <summary>Elements of <c>vCodes</c>: [batch][heads][HeadDim][PaddedTokens(tokens)].</summary>");
            w.Line($"public static long VCodesLength(int batch, int heads, int tokens) => (long)batch * heads * HeadDim * PaddedTokens(tokens);");
        }
        else
        {
            w.Line($"/// <summary>Elements of <c>vCodes</c>: [batch][heads][tokens][HeadDim].</summary>");
            w.Line($"public static long VCodesLength(int batch, int heads, int tokens) => (long)batch * heads * tokens * HeadDim;");
        }
        w.Line();
        w.Line($"/// <summary>Codes blocks per (batch, head): one per tile of KScaleKeys tokens{(spec.VTransposed ? " of the padded rows" : "")}.</summary>");
        w.Line($"public static long TilesPerHead(int tokens) => ((long){(spec.VTransposed ? "PaddedTokens(tokens)" : "tokens")} + KScaleKeys - 1) / KScaleKeys;");
    }

    /// <summary>The host checks of the codes' buffers, by those sizes.</summary>
    internal static void WriteCodeChecks(CodeWriter w)
    {
        w.Line($"{Guard}.Holds(kCodes, KCodesLength(batch, heads, tokens), nameof(kCodes), $\"int8 [{{batch}}][{{heads}}][{{tokens}}][{{HeadDim}}]\");");
        w.Line($"{Guard}.Holds(kScale, KScaleCount(batch, heads, tokens), nameof(kScale), $\"one scale per (batch, head, tile of {{KScaleKeys}} tokens)\");");
        w.Line($"{Guard}.Holds(vCodes, VCodesLength(batch, heads, tokens), nameof(vCodes), \"V's codes\");");
        w.Line($"{Guard}.Aligned(kCodes, 16, nameof(kCodes));");
        w.Line($"{Guard}.Aligned(vCodes, 16, nameof(vCodes));");
    }
}
