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
    /// A persistent grid's tile <paramref name="tile"/> as the same names: tiles run head by head, and within a head its
    /// query blocks longest first when causal, as the one-tile-a-block grid orders them.
    /// </summary>
    public static void WriteTile(CodeWriter w, AttentionPlan plan, string tile)
    {
        var s = plan.Spec;
        w.Line($"const int tile_head = {tile} / q_blocks, tile_block = {tile} % q_blocks;");
        w.Line($"const int {N.QueryBlock} = {(s.Causal ? "q_blocks - 1 - tile_block" : "tile_block")};");
        w.Line($"const int {N.Batch} = tile_head / heads_q, {N.Head} = tile_head % heads_q, {N.KvHead} = {N.Head} / (heads_q / heads_kv);");
        WriteIndices(w, s);
    }

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
