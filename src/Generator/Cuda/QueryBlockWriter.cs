using KernelDsl.Generator.Helpers;
using KernelDsl.Generator.Model;
using N = KernelDsl.Generator.Cuda.AttentionNames;

namespace KernelDsl.Generator.Cuda;

/// <summary>
/// Which query block a CTA computes, for both attention forms: the grid is (query blocks, query heads, batch), and
/// each CTA names its block, batch, heads and first row here.
/// </summary>
public static class QueryBlockWriter
{
    /// <summary>
    /// A persistent grid's tile <paramref name="tile"/> as the same names. Uniform tiles run head by head, so the blocks
    /// at work share a head's K and V in L2. Causal and masked tiles (<see cref="AttentionPlan.LongestTilesFirst"/>) run
    /// longest first across all heads (query block
    /// q_blocks − 1 − tile / (heads · batch)): with <see cref="WriteTileLoop"/>'s alternating order, a model of key blocks
    /// visited puts the slowest block's work at 0.64–1.00× the one-tile-a-block grid's makespan (S 1024–16384, 16–64
    /// heads × batch on 132 SMs), where the plain stride reached 1.55×.
    /// </summary>
    public static void WriteTile(CodeWriter w, AttentionPlan plan, string tile)
    {
        var s = plan.Spec;
        if (plan.LongestTilesFirst)
        {
            w.Line($"const int tile_head = {tile} % (heads_q * batch), {N.QueryBlock} = q_blocks - 1 - {tile} / (heads_q * batch);");
        }
        else
        {
            w.Line($"const int tile_head = {tile} / q_blocks, {N.QueryBlock} = {tile} % q_blocks;");
        }
        w.Line($"const int {N.Batch} = tile_head / heads_q, {N.Head} = tile_head % heads_q, {N.KvHead} = {N.Head} / (heads_q / heads_kv);");
        WriteIndices(w, s);
    }

    /// <summary>
    /// How many Q and K scales a (batch, head) has, for both forms: the scale arrays' per-head strides and the bound past
    /// which a K scale group is masked. A kernel that quantizes Q has no Q scale array.
    /// </summary>
    public static void WriteScaleTiles(CodeWriter w, AttentionPlan plan)
    {
        if (plan.QuantizesQ)
        {
            w.Line($"const int {N.KTiles} = (seq_k + {plan.KScaleKeys - 1}) / {plan.KScaleKeys};  // K scales per {plan.KScaleKeys} keys");
        }
        else
        {
            w.Line($"const int {N.QTiles} = (seq_q + {plan.QScaleRows - 1}) / {plan.QScaleRows}, {N.KTiles} = (seq_k + {plan.KScaleKeys - 1}) / {plan.KScaleKeys};  // Q scales per {plan.QScaleRows} rows, K scales per {plan.KScaleKeys} keys");
        }
    }

    /// <summary>
    /// A persistent grid's loop over this block's tiles, <paramref name="tilesDone"/> counting them: round r takes tile
    /// r · gridDim.x + blockIdx.x, or its mirror in odd rounds, so no block takes the longest tile of every round.
    /// </summary>
    public static void WriteTileLoop(CodeWriter w, string tilesDone, System.Action body) =>
        w.Block($"for (int {tilesDone} = 0; ; ++{tilesDone})", () =>
        {
            w.Line($"const int tile = {tilesDone} * gridDim.x + ({tilesDone} & 1 ? gridDim.x - 1 - blockIdx.x : blockIdx.x);  // odd rounds run mirrored");
            w.Line($"if (tile >= tiles) break;");
            body();
        });

    public static void Write(CodeWriter w, AttentionPlan plan)
    {
        var s = plan.Spec;
        if (s.Causal)
        {
            // The hardware starts CTAs in grid order. Causal query blocks grow with their index, so counting them from the
            // end starts each head's longest block first and ends each head, and so the grid (its last head), on the
            // shortest ones: no SM waits out a long block at the tail. One head's blocks stay adjacent, which keeps its K and
            // V in L2 while they run.
            w.Line($"// Causal: each head's query blocks run longest first, so the grid ends on short blocks.");
            w.Line($"const int {N.QueryBlock} = gridDim.x - 1 - blockIdx.x;");
        }
        else
        {
            w.Line($"const int {N.QueryBlock} = blockIdx.x;");
        }
        w.Line($"const int {N.Batch} = blockIdx.z, {N.Head} = blockIdx.y, {N.KvHead} = {N.Head} / (heads_q / heads_kv);  // GQA: heads_q / heads_kv query heads share a KV head");
        WriteIndices(w, s);
    }

    private static void WriteIndices(CodeWriter w, AttentionSpec s)
    {
        w.Line($"const long long {N.BatchHead} = (long long){N.Batch} * heads_q + {N.Head}, {N.BatchKvHead} = (long long){N.Batch} * heads_kv + {N.KvHead};");
        w.Line($"const int {N.FirstRow} = {N.QueryBlock} * {s.BlockM};");
    }

    /// <summary>The index of this block's Q scale among its head's.</summary>
    public static string QScaleTile(AttentionPlan plan) =>
        plan.QScaleRows == plan.Spec.BlockM ? N.QueryBlock : $"{N.FirstRow} / {plan.QScaleRows}";
}
