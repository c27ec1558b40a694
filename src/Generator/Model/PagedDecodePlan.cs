using System.Collections.Generic;
using System.Linq;
using KernelDsl.Generator.Atoms;
using KernelDsl.Generator.Helpers;

namespace KernelDsl.Generator.Model;

/// <summary>
/// What a PagedDecode variant derives from its declaration: the MMAs and the copy programs that feed them, the shared
/// memory of one block (Q, then each warp's page stages), and the one signature of its two kernels (decode and merge).
/// The CUDA writer and the launcher writer both read this, so no number is computed twice.
/// </summary>
public sealed record PagedDecodePlan(PagedDecodeSpec Spec)
{
    /// <summary>Query rows of one block: the rows of one MMA tile, (query token, query head of the group) packed.</summary>
    public const int Rows = 16;

    /// <summary>
    /// Every stage's base is aligned to this: the shared memory's bank period, so the XOR swizzle's conflict-free pattern holds
    /// at any stage (ldmatrix and cp.async need no more; only TMA and wgmma descriptors would need the swizzle's 1024-byte span).
    /// </summary>
    public const int StageAlignment = 128;

    public int HeadDim => Spec.HeadDim;
    public int PageSize => Spec.PageSize;
    public int StageKeys => Spec.StageKeys;
    /// <summary>Steps of a warp's key loop per page: 1, or 2 with half-page stages.</summary>
    public int StepsPerPage => Spec.PageSize / Spec.StageKeys;
    public int Warps => Spec.Warps;
    public int Stages => Spec.Stages;
    public int Threads => 32 * Spec.Warps;
    /// <summary>The helper that packs two floats into a u32 of the output element (the merge's and the one-split write's).</summary>
    public string PackPairHelper => Spec.Input == Element.BF16 ? "kdsl_pack_bf16x2" : "kdsl_pack_f16x2";

    /// <summary>Q·Kᵀ: int8 Q codes (per-row scale) against the page's K codes (k − mean, one scale).</summary>
    public MmaAtom Qk => MmaAtom.Get(MmaAtomKind.M16N8K32_S32S8S8);

    /// <summary>P·V: P as u8 (×255 of exp2(x − m)) against V's s8 codes; the page's channel scales fold into O after it.</summary>
    public MmaAtom Pv => MmaAtom.Get(MmaAtomKind.M16N8K32_S32U8S8);

    /// <summary>The P scale: exp2 gives at most 1, rounded to n = 255·p.</summary>
    public int PScale => 255;

    /// <summary>Q: the block's 16 rows stored m × k, read once into A fragments.</summary>
    public LdmatrixProgram QProgram => CopyAtom.Get(CopyAtomKind.Ldsm).ProgramFor(OperandStorage.MK, TokenOrder.Natural)!;

    /// <summary>K: a page stored [key][channel], Q·Kᵀ's B k-major.</summary>
    public LdmatrixProgram KProgram => CopyAtom.Get(CopyAtomKind.Ldsm).ProgramFor(OperandStorage.NK, TokenOrder.Natural)!;

    /// <summary>V: a page stored token-major (k × n), read by Recipe A in the π key order P leaves the S accumulators in.</summary>
    public LdmatrixProgram VProgram => CopyAtom.Get(CopyAtomKind.LdsmTransPrmt).ProgramFor(OperandStorage.KN, TokenOrder.Pi)!;

    /// <summary>P packed from the S accumulators composed with the P·V MMA, then V's program against the keys P holds.</summary>
    public Composition ComposeV() => FragmentComposition.ComposeB(Pv, VProgram, OperandStorage.KN, TokenOrder.Natural, FragmentComposition.ComposeAFromAccumulators(Qk, Pv).KOrder);

    /// <summary>The copy atoms the kernel issues: cp.async for pages, ldmatrix (+ prmt) for fragments.</summary>
    public static IReadOnlyList<CopyAtomKind> Atoms { get; } = [CopyAtomKind.CpAsync16, CopyAtomKind.Ldsm, CopyAtomKind.LdsmTransPrmt];

    /// <summary>Q, K and V rows of HeadDim int8 codes: 16-byte chunks XOR-swizzled by the row within each 8-row span (the prefill's layouts).</summary>
    public SmemLayoutSpec Layout(Operand operand) => new(operand, Element.S8, new Swizzle(HeadDim switch { 64 => 2, _ => 3 }, 4, 3));

    /// <summary>Bytes of one page of one head's codes.</summary>
    public int PageBytes => PageSize * HeadDim;

    /// <summary>Bytes of one stage's codes of K (and of V): StageKeys rows of the page.</summary>
    public int StageCodeBytes => StageKeys * HeadDim;

    /// <summary>Offsets in a stage: K codes, V codes, the page's K mean (float [D]), V scales (float [D]), K scale (one float in a 16-byte slot).</summary>
    public int KMeanOffset => 2 * StageCodeBytes;
    public int VScaleOffset => KMeanOffset + 4 * HeadDim;
    public int KScaleOffset => VScaleOffset + 4 * HeadDim;
    public int StageBytes => RoundUp(KScaleOffset + 16, StageAlignment);

    /// <summary>
    /// A lane's channels of a row where a warp spans the row: Q's loads and the split merge's, each one vector access (Q's
    /// alignment, checked by the launcher, is twice this).
    /// </summary>
    public int LaneChannels => HeadDim / 32;

    /// <summary>Block-wide: Q codes [16][D] (swizzled), Q as float [16][D] (for q·mean), the rows' Q scales.</summary>
    public int QCodesBytes => Rows * HeadDim;
    public int QFloatOffset => QCodesBytes;
    public int QScaleOffset => QFloatOffset + 4 * Rows * HeadDim;
    public int StagesOffset => RoundUp(QScaleOffset + 4 * Rows, StageAlignment);

    /// <summary>
    /// Floats between two rows of a warp's O in the block's merge: D + 16, which is 16 words past a multiple of 32, so the
    /// two rows a quarter-warp's 16-byte stores reach (g and g + 1, 4 lanes each) fill the 32 banks once.
    /// </summary>
    public int MergeRowStride => HeadDim + 16;

    /// <summary>
    /// After the loop the stages hold the block's merge: each warp's scaled O [warps][16][MergeRowStride], its rows' max
    /// and sum [warps][16] each, each row's 1 / sum [16], and each row's output row [16] (a long long, −1 for padding).
    /// </summary>
    public int MergeMOffset => 4 * Warps * Rows * MergeRowStride;
    public int MergeLOffset => MergeMOffset + 4 * Warps * Rows;
    public int MergeInvOffset => MergeLOffset + 4 * Warps * Rows;
    public int MergeRowOffset => MergeInvOffset + 4 * Rows;
    public int MergeBytes => MergeRowOffset + 8 * Rows;

    public int SharedMemoryBytes => StagesOffset + System.Math.Max(Warps * Stages * StageBytes, MergeBytes);

    /// <summary>The C# element of Q and O: .NET has no bfloat16, so bf16 bits travel as ushort.</summary>
    public string InputElement => Spec.Input.CSharpName();

    private static int RoundUp(int x, int to) => (x + to - 1) / to * to;

    /// <summary>The launcher's parameters and the decode kernel's, once.</summary>
    public KernelSignature Signature
    {
        get
        {
            var signature = new SignatureBuilder();
            signature.Stream("the stream the kernels run on");
            signature.Buffer("queries", InputElement, $"Q [Σ queries][headsQ][{HeadDim}]: sequence i's query tokens are rows cuQueries[i] to cuQueries[i + 1] − 1, its last tokens", "queries", "const u16* __restrict__");
            signature.Host("cuQueries", HostKind.HostSpan, "int", "[batch + 1]: running totals of each sequence's query tokens, from 0 (a decode step: 0, 1, 2, ...; a chunk: its length)");
            signature.Host("lengths", HostKind.HostSpan, "int", "[batch]: tokens each sequence holds, its query tokens included (at least its query count)");
            signature.Host("pageTable", HostKind.HostSpan, "int", "[batch][tablePages]: each sequence's pages in order, −1 past its last");
            signature.Host("tablePages", HostKind.Scalar, "int", "entries per page table row");
            signature.Buffer("kCodes", "sbyte", $"K codes [pages][headsKv][{PageSize}][{HeadDim}] int8", "k_codes", "const s8* __restrict__");
            signature.Buffer("kScale", "float", "K scale [pages][headsKv]", "k_scale", "const float* __restrict__");
            signature.Buffer("kMean", "float", $"K channel mean [pages][headsKv][{HeadDim}]", "k_mean", "const float* __restrict__");
            signature.Buffer("vCodes", "sbyte", $"V codes [pages][headsKv][{PageSize}][{HeadDim}] int8", "v_codes", "const s8* __restrict__");
            signature.Buffer("vScale", "float", $"V scale per channel [pages][headsKv][{HeadDim}]", "v_scale", "const float* __restrict__");
            // The kernel reads the checked table from the workspace, or, for a small one, from pinned host memory in place (WorkAddressLocal).
            signature.Host("workspace", HostKind.Buffer, "int", "device copy of the checked page table, lengths and query totals (WorkspaceLength)");
            signature.Kernel(new KernelParameter("work", "const int* __restrict__", Passing.Address, WorkAddressLocal));
            signature.Buffer("partialO", "float", $"each split's O [splits][Σ queries·headsQ][{HeadDim}] (PartialOLength)", "partial_o", "float* __restrict__");
            signature.Buffer("partialLse", "float", "each split's LSE [splits][Σ queries·headsQ] (PartialLseLength)", "partial_lse", "float* __restrict__");
            // With one split the decode kernel writes O and LSE itself and the merge does not run.
            signature.Buffer("output", InputElement, $"O [Σ queries][headsQ][{HeadDim}], Q's layout", "output", "u16* __restrict__");
            signature.Buffer("lse", "float", "LSE [Σ queries][headsQ] (natural log), or null", "lse", "float* __restrict__", optional: true);
            signature.Scalar("headsQ", "int", "query heads: a multiple of headsKv", "heads_q");
            signature.Scalar("headsKv", "int", "KV heads", "heads_kv");
            signature.Kernel(new KernelParameter("table_pages", "int", Passing.Value, "tablePages"));
            signature.Host("pages", HostKind.Scalar, "int", "pages in the pool");
            signature.Host("splits", HostKind.Scalar, "int", "blocks each sequence's pages are split over (SplitsFor suggests one)");
            signature.Scalar("softmaxScale", "float", "the scores' scale, usually 1/√HeadDim", "softmax_scale");
            foreach (var (hostParameter, kernelParameter) in RuntimeParameters.Select(ModifierSignature.Parameter))
            {
                signature.Host(hostParameter);
                signature.Kernel(kernelParameter);
            }
            return signature.Build();
        }
    }

    /// <summary>The modifiers' runtime parameters, the last of the launcher's and of the decode kernel's parameters.</summary>
    public IEnumerable<ModifierParameter> RuntimeParameters => ModifierSignature.RuntimeParameters(Spec.Score, Spec.Mask);

    /// <summary>The launcher's local holding the longest sequence's length, which modifier arrays indexed by q or k must cover.</summary>
    public const string LongestLocal = "longest";

    /// <summary>
    /// What a modifier array indexed by a bare b, h, q or k must hold: q and k are positions in the cache (a query token's
    /// is its sequence's length − n + j), so both reach the longest sequence's length.
    /// </summary>
    public IEnumerable<(string Array, string Extent, string What, string Index)> ArrayExtents =>
        ModifierSignature.ArrayExtents(Spec.Score, Spec.Mask, new Dictionary<ParameterRole, (string Extent, string What)>
        {
            [ParameterRole.Batch] = ("batch", "one element per sequence of the batch"),
            [ParameterRole.Head] = ("headsQ", "one element per query head"),
            [ParameterRole.Query] = (LongestLocal, "one element per position of the longest sequence"),
            [ParameterRole.Key] = (LongestLocal, "one element per position of the longest sequence"),
        });

    /// <summary>
    /// Row groups the mask's block classifier is asked about per page: one, the tile's query tokens, when the mask never
    /// reads h (then the tile's rows are exactly its tokens × the page's keys); else each of the 16 rows, one (q, h) pair.
    /// </summary>
    public int MaskRowGroups => Spec.Mask is { } mask && mask.Reads(ParameterRole.Head) ? Rows : 1;

    /// <summary>
    /// The names a modifier parameter may not take: the launcher's parameters (also the parameters of the lambda
    /// <c>With</c> returns), its locals, and the members it generates.
    /// </summary>
    public static IEnumerable<string> LauncherNames(PagedDecodeSpec spec) =>
        new PagedDecodePlan(spec with { Score = null, Mask = null }).Signature.Host.Select(h => h.Name).Concat(
        [
            "work", "batch", "length", "queryTokens", "mostQueries", RowsLocal, LongestLocal, WorkAddressLocal, MappedWorkLocal, "arguments", "merge",
            "Module", "KernelName", "MergeKernelName", "CudaSource", "ThreadsPerBlock", "SharedMemoryBytes", "MinimumSm", "HeadDim", "PageSize",
            "TileRows", "Warps", "StageKeys", "WorkspaceLength", "PartialOLength", "PartialLseLength", "RowTiles", "SplitsFor", "ResidentBlocks", "Launch", "With",
        ]);

    /// <summary>The launcher's local holding the address the decode kernel reads the checked table from.</summary>
    public const string WorkAddressLocal = "workAddress";

    /// <summary>The launcher's local holding a small table's pinned host copy, which the kernel reads in place.</summary>
    public const string MappedWorkLocal = "mappedWork";

    /// <summary>The launcher's local holding the output rows (Σ queries · headsQ), an argument of the merge kernel.</summary>
    public const string RowsLocal = "rows";

    /// <summary>The merge kernel's parameters, from the same launcher parameters (and the rows the launcher counts).</summary>
    public EquatableArray<KernelParameter> MergeParameters => new KernelParameter[]
    {
        new("partial_o", "const float* __restrict__", Passing.Pointer, "partialO"),
        new("partial_lse", "const float* __restrict__", Passing.Pointer, "partialLse"),
        new("o", "u16* __restrict__", Passing.Pointer, "output"),
        new("lse", "float* __restrict__", Passing.Pointer, "lse"),
        new("rows", "int", Passing.Value, RowsLocal),
        new("splits", "int", Passing.Value, "splits"),
    }.ToEquatableArray();

    public KernelSignature MergeSignature => Signature with { Kernel = MergeParameters };
}
