namespace KernelDsl.Generator.Cuda;

/// <summary>
/// The CUDA locals that the attention kernel's section writers share: <see cref="AttentionKernelWriter"/> and
/// <see cref="WgmmaAttentionKernelWriter"/> define most of them, <see cref="KeyBlockRangeWriter"/>,
/// <see cref="AttentionSoftmaxWriter"/> and <see cref="AttentionEpilogueWriter"/> read them (or define some the kernels
/// read). Each is spelled once here; the writers reference it as <c>N.Name</c> (<c>using N = KernelDsl.Generator.Cuda.AttentionNames;</c>).
/// Kernel parameters (q_scale, seq_k, …) are not here: <see cref="Model.AttentionSignature"/> names them.
/// </summary>
internal static class AttentionNames
{
    // Thread and block coordinates (the kernels' prologue).

    /// <summary>The thread's lane in its warp, 0..31.</summary>
    public const string Lane = "lane";
    /// <summary>The thread's warp in the block.</summary>
    public const string Warp = "warp";
    /// <summary>The lane's group of four in the m16n8 fragments (lane / 4): it owns rows g and g + 8 of its warp's 16.</summary>
    public const string Group = "g";
    /// <summary>The lane within its group of four (lane % 4): it owns accumulator columns 2t and 2t + 1.</summary>
    public const string ThreadInGroup = "t";
    /// <summary>The query block this CTA computes (from the grid's x; QueryBlockWriter says in which order).</summary>
    public const string QueryBlock = "q_block";
    /// <summary>The batch index (the grid's z).</summary>
    public const string Batch = "b";
    /// <summary>The query head (the grid's y).</summary>
    public const string Head = "h";
    /// <summary>The KV head the query head reads under GQA.</summary>
    public const string KvHead = "hk";
    /// <summary>The (batch, query head) index, <c>b · heads_q + h</c>: a long long.</summary>
    public const string BatchHead = "bh";
    /// <summary>The (batch, KV head) index, <c>b · heads_kv + hk</c>: a long long.</summary>
    public const string BatchKvHead = "bhk";
    /// <summary>The block's first query row in the sequence.</summary>
    public const string FirstRow = "m0";
    /// <summary>Q scales per (batch, query head): one per QScaleRows query rows.</summary>
    public const string QTiles = "q_tiles";
    /// <summary>K scales per (batch, KV head): one per KScaleKeys keys.</summary>
    public const string KTiles = "k_tiles";
    /// <summary>The block's Q tile in shared memory (swizzled bytes).</summary>
    public const string SharedQ = "sq";
    /// <summary>The block's K stages in shared memory; the V stages follow them.</summary>
    public const string SharedK = "sk";
    /// <summary>The K stages' shared-memory address (u32), as TMA, wgmma and st/ld.shared take it.</summary>
    public const string SharedKAddress = "sk_addr";
    /// <summary>A persistent grid's own O staging region (u32 shared address): BlockM padded rows.</summary>
    public const string OutputStagingAddress = "so_addr";
    /// <summary>A persistent grid's running count of the K/V blocks this block has consumed (or issued) before the tile.</summary>
    public const string BlocksBefore = "it";
    /// <summary>A persistent grid's count of the tiles this block has done before this one; its parity picks the Q buffer.</summary>
    public const string TilesBefore = "tiles_done";

    // Named barriers of the warp-specialized form (0 is __syncthreads).

    /// <summary>1 + cg: consumer warpgroup cg's turn to issue MMAs under pingpong (1 and 2).</summary>
    public const int TurnBarrier = 1;
    /// <summary>3 + cg: consumer warpgroup cg's 64 quantized Q rows are written before its first wgmma (3 and 4).</summary>
    public const int QueryQuantizeBarrier = 3;
    /// <summary>Every consumer warp is past its last MMA, so the epilogue may reuse the K/V stages.</summary>
    public const int EpilogueBarrier = 5;

    // The key-block range (KeyBlockRangeWriter) and the main loop.

    /// <summary>The first key block the query block visits.</summary>
    public const string FirstKeyBlock = "kv_first";
    /// <summary>How many key blocks the query block visits, from <see cref="FirstKeyBlock"/> on.</summary>
    public const string KeyBlocks = "n_blocks";
    /// <summary>The key block the loop is on: the kernels define it per step as the range's first block plus the step.</summary>
    public const string KeyBlock = "kb";

    // Per-thread softmax state and accumulators.

    /// <summary>S accumulators: float-biased int32, [STiles][4] per thread (the m16n8 C fragment).</summary>
    public const string S = "sacc";
    /// <summary>The scores as floats, [STiles][4]: bias + S (or the modified score in the log2 domain), −∞ where masked.</summary>
    public const string Scores = "xs";
    /// <summary>Running maximum of rows g and g + 8, [2], in the log2 domain.</summary>
    public const string RowMax = "row_max";
    /// <summary>Partial sum of P over this thread's keys of rows g and g + 8, [2]; the epilogue reduces it over the quad.</summary>
    public const string RowSum = "row_sum";
    /// <summary>O accumulators: float, [OTiles][4] per thread, rescaled by <see cref="Alpha"/> as the row maxima grow.</summary>
    public const string O = "o";
    /// <summary>This block's Q scale (softmax scale · log2 e folded in).</summary>
    public const string QScale = "q_sc";
    /// <summary>The key block's K scales, loaded ahead of the MMAs: a float, or [KScalesPerBlock].</summary>
    public const string KScales = "ksc";
    /// <summary>The scores' scale q_sc · k_sc: a float, or [KScalesPerBlock] (one per K scale group).</summary>
    public const string ScoreScale = "sc";
    /// <summary>What the exponent of each score subtracts (bias·sc + base …), [2] or [KScalesPerBlock][2]: one FFMA per score.</summary>
    public const string ExponentOffset = "cb";
    /// <summary>The O and row-sum rescale of rows g and g + 8 for this key block, [2].</summary>
    public const string Alpha = "alpha";
    /// <summary>The new row maximum of rows g and g + 8 (0 while a row saw no key), [2]: what the exponents subtract.</summary>
    public const string Base = "base";
    /// <summary>q·mean(K)·q_sc of rows g and g + 8, [2]: what K smoothing took from each score, added back for a score modifier.</summary>
    public const string RowMeanScores = "qm";
    /// <summary>P packed into the P·V MMA's A registers, u32 [PvSteps][4].</summary>
    public const string PackedP = "pa";
    /// <summary>Quantized P as f16 pairs 1024 + n, [STiles][2] (row g, row g + 8), before the bytes are gathered; not "h", the head.</summary>
    public const string PPairs = "ph";
}
