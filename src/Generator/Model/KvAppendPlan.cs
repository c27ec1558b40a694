using System.Collections.Generic;
using KernelDsl.Generator.Helpers;

namespace KernelDsl.Generator.Model;

/// <summary>
/// What a KvCacheAppend variant derives from its declaration: the work item the kernel reads, the shared-memory page
/// and its one signature. The CUDA writer and the launcher writer both read this, so no number is computed twice.
/// </summary>
public sealed record KvAppendPlan(KvAppendSpec Spec)
{
    /// <summary>Channels per 16-byte load of f16/bf16.</summary>
    public const int ChunkChannels = 8;

    /// <summary>
    /// Ints per work item, one item per (sequence, page its new tokens touch), in this order. The runtime's
    /// <c>KernelDsl.Launching.KvAppendWork</c> writes them; a test keeps the two equal.
    /// </summary>
    public static readonly IReadOnlyList<string> ItemFields = ["page", "start", "fill", "source", "slot", "stage_from", "stage_to", "stage_source"];

    public int HeadDim => Spec.HeadDim;
    public int PageSize => Spec.PageSize;
    public int Threads => Spec.Threads;
    public int Warps => Spec.Threads / 32;

    /// <summary>16-byte chunks in one token's channels.</summary>
    public int ChunksPerRow => Spec.HeadDim / ChunkChannels;

    /// <summary>Static shared memory of the kernel: the page's originals (16-bit), one float per channel and one per warp.</summary>
    public static int SharedBytes(int headDim, int pageSize, int threads) => 2 * pageSize * headDim + 4 * headDim + 4 * (threads / 32);

    public int SharedMemoryBytes => SharedBytes(HeadDim, PageSize, Threads);

    /// <summary>The C# element of a 16-bit buffer of the declared input: .NET has no bfloat16, so bf16 bits travel as ushort.</summary>
    public string InputElement => Spec.Input.CSharpName();

    public string AppendSymbol => Spec.KernelPrefix + "_append";

    /// <summary>The kernel that only counts the new tokens' NaN and Inf: the check before an append that must change nothing.</summary>
    public string CountSymbol => Spec.KernelPrefix + "_count_nonfinite";

    /// <summary>16-byte chunks each thread of the count kernel reads, at most; a block covers Threads times as many.</summary>
    public const int CountChunksPerThread = 8;

    /// <summary>Elements of the NaN/Inf counter buffer: K's count, then V's.</summary>
    public const int NonFiniteCounters = 2;

    /// <summary>The launcher's parameters and the kernel's, once.</summary>
    public KernelSignature Signature
    {
        get
        {
            var signature = new SignatureBuilder();
            signature.Stream("the stream the kernel runs on");
            signature.Buffer("kNew", InputElement, KNewRole, "k_new", "const u16* __restrict__");
            signature.Buffer("vNew", InputElement, VNewRole, "v_new", "const u16* __restrict__");
            signature.Host("cuNewTokens", HostKind.HostSpan, "int", "[batch + 1]: sequence i's new tokens are rows cuNewTokens[i] to cuNewTokens[i + 1] − 1 of kNew and vNew");
            signature.Host("lengths", HostKind.HostSpan, "int", "[batch]: tokens each sequence holds before this append");
            signature.Host("pageTable", HostKind.HostSpan, "int", "[batch][tablePages]: each sequence's pages in order, −1 past its last");
            signature.Host("tablePages", HostKind.Scalar, "int", "entries per page table row");
            signature.Host("stagingSlots", HostKind.HostSpan, "int", "[batch]: each sequence's staging slot, distinct");
            signature.Buffer("kCodes", "sbyte", $"K codes [pages][headsKv][{PageSize}][{HeadDim}] int8", "k_codes", "s8* __restrict__");
            signature.Buffer("kScale", "float", "K scale [pages][headsKv]", "k_scale", "float* __restrict__");
            signature.Buffer("kMean", "float", $"K channel mean [pages][headsKv][{HeadDim}]", "k_mean", "float* __restrict__");
            signature.Buffer("vCodes", "sbyte", $"V codes [pages][headsKv][{PageSize}][{HeadDim}] int8", "v_codes", "s8* __restrict__");
            signature.Buffer("vScale", "float", $"V scale per channel [pages][headsKv][{HeadDim}]", "v_scale", "float* __restrict__");
            signature.Buffer("kStaging", InputElement, $"K originals of each slot's partial page [slots][headsKv][{PageSize}][{HeadDim}]", "k_staging", "u16* __restrict__");
            signature.Buffer("vStaging", InputElement, $"V originals, as kStaging", "v_staging", "u16* __restrict__");
            signature.Buffer("workspace", "int", "device scratch for the work list (WorkspaceLength)", "work", "const int* __restrict__");
            signature.Scalar("headsKv", "int", "KV heads", "heads_kv");
            signature.Host("pages", HostKind.Scalar, "int", "pages in the pool");
            signature.Host("slots", HostKind.Scalar, "int", "staging slots");
            // Last, so it defaults to null: the optional counter of the quantize kernels, one element each for K and V.
            signature.Host(NonFinite(optional: true, "or null: nothing counted. Staged originals are not counted again (they were when appended)"));
            signature.Kernel(NonFiniteKernelParameter);
            return signature.Build();
        }
    }

    /// <summary>The count-only kernel's: kNew and vNew read as flat arrays of 16-byte chunks (<c>chunks</c>, a launcher local).</summary>
    public KernelSignature CountSignature => new(new List<HostParameter>
    {
        new("stream", HostKind.Stream, "", false, "the stream the kernel runs on"),
        new("kNew", HostKind.Buffer, InputElement, false, KNewRole),
        new("vNew", HostKind.Buffer, InputElement, false, VNewRole),
        new("newTokens", HostKind.Scalar, "long", false, "rows of kNew and vNew to count"),
        new("headsKv", HostKind.Scalar, "int", false, "KV heads"),
        NonFinite(optional: false, "zero it first"),
    }.ToEquatableArray(), new List<KernelParameter>
    {
        new("k_new", "const u16* __restrict__", Passing.Pointer, "kNew"),
        new("v_new", "const u16* __restrict__", Passing.Pointer, "vNew"),
        new("chunks", "long long", Passing.Value, "chunks"),
        NonFiniteKernelParameter,
    }.ToEquatableArray());

    private string KNewRole => $"new K [newTokens][headsKv][{HeadDim}], the batch's sequences one after another";

    private string VNewRole => $"new V [newTokens][headsKv][{HeadDim}], as kNew";

    private static HostParameter NonFinite(bool optional, string rest) => new("nonFinite", HostKind.Buffer, "uint", optional,
        $"[{NonFiniteCounters}]: where the new tokens' NaN and Inf counts are added on the stream, K's to element 0 and V's to element 1; {rest}");

    private static readonly KernelParameter NonFiniteKernelParameter = new("nonfinite", "unsigned int*", Passing.Pointer, "nonFinite");
}
