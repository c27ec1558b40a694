using KernelDsl.Generator.Helpers;
using KernelDsl.Generator.Model;
using N = KernelDsl.Generator.Cuda.AttentionNames;

namespace KernelDsl.Generator.Cuda;

/// <summary>
/// The key blocks a query block visits, for both attention forms: <c>[kv_first, kv_first + n_blocks)</c>. Causal
/// masking bounds the end in closed form; a user's mask is asked, through the block classifier the generator derives
/// from its C# body, which blocks it hides from every row of this block, and the range shrinks to the others. Each step
/// then asks again whether its block is shown whole (no per-score mask code) or in part.
/// </summary>
public static class KeyBlockRangeWriter
{
    public static void Write(CodeWriter w, AttentionPlan plan)
    {
        var s = plan.Spec;
        w.Line($"const int k_blocks = (seq_k + {s.BlockN - 1}) / {s.BlockN};");
        if (s.Causal)
        {
            w.Line($"// Causal, bottom-right aligned: row i sees keys j <= i + (seq_k - seq_q); later blocks are never visited.");
            w.Line($"const int last_key = {N.FirstRow} + {s.BlockM - 1} + (seq_k - seq_q);");
            w.Line($"const int kv_end = last_key < 0 ? 0 : kdsl_min(k_blocks, last_key / {s.BlockN} + 1);");
        }
        else
        {
            w.Line($"const int kv_end = k_blocks;");
        }
        if (s.Mask is not { } mask)
        {
            w.Line($"const int {N.FirstKeyBlock} = 0, {N.KeyBlocks} = kv_end;");
            return;
        }
        w.Line($"// The mask's block classifier over this block's rows and each key block; a warp's lanes split the blocks, and");
        w.Line($"// every warp that runs it finds the same range. Blocks inside it that the mask hides are computed, fully masked.");
        w.Line($"// The blocks it shows whole are counted too: when they form one run, a step tells whole from partial by two");
        w.Line($"// compares instead of asking the classifier again.");
        w.Line($"int kv_lo = kv_end, kv_hi = -1, full_lo = kv_end, full_hi = -1, full_count = 0;");
        w.Block($"for (int kb = {N.Lane}; kb < kv_end; kb += 32)", () =>
        {
            w.Line($"const int block_class = {BlockClassifierCall(plan, mask, "kb")};");
            w.Line($"if (block_class != KDSL_BLOCK_SKIP) {{ kv_lo = kdsl_min(kv_lo, kb); kv_hi = kb; }}");
            w.Line($"if (block_class == KDSL_BLOCK_FULL) {{ full_lo = kdsl_min(full_lo, kb); full_hi = kb; ++full_count; }}");
        });
        w.Line($"const int {N.FirstKeyBlock} = __reduce_min_sync(0xffffffffu, kv_lo), kv_last = __reduce_max_sync(0xffffffffu, kv_hi);");
        w.Line($"const int {N.KeyBlocks} = kv_last < {N.FirstKeyBlock} ? 0 : kv_last + 1 - {N.FirstKeyBlock};");
        w.Line($"const int {FullFirst} = __reduce_min_sync(0xffffffffu, full_lo), {FullLast} = __reduce_max_sync(0xffffffffu, full_hi);");
        w.Line($"const int full_blocks = (int)__reduce_add_sync(0xffffffffu, (unsigned)full_count);");
        w.Line($"const bool {FullRun} = full_blocks == 0 || full_blocks == {FullLast} + 1 - {FullFirst};");
    }

    /// <summary>
    /// The range found once, by warp 0, and left by its lane 0 at shared address <paramref name="slot"/> (16-byte aligned,
    /// <see cref="AttentionPlan.KeyBlockRangeBytes"/>) for the warps that read it after the block-wide barrier.
    /// </summary>
    public static void WriteShared(CodeWriter w, AttentionPlan plan, string slot)
    {
        w.Line($"// The mask's key-block range is found once, by warp 0, and both warpgroups read it after the barrier: kept in");
        w.Line($"// registers across their setmaxnreg, it would be spilled.");
        w.Block($"if ({N.Warp} == 0)", () =>
        {
            Write(w, plan);
            w.Block($"if ({N.Lane} == 0)", () =>
            {
                w.Line($"const int range[8] = {{{N.FirstKeyBlock}, {N.KeyBlocks}, {FullFirst}, {FullLast}, (int){FullRun}, 0, 0, 0}};");
                w.Line($"#pragma unroll");
                w.Line($"for (int i = 0; i < 8; ++i) kdsl_st_shared_b32({slot} + 4 * i, (u32)range[i]);");
            });
        });
    }

    /// <summary>
    /// The range <see cref="WriteShared"/> left at <paramref name="slot"/>, under the names the steps read; the run of
    /// whole blocks only where <paramref name="withWholeBlocks"/> (the warps that mask scores).
    /// </summary>
    public static void ReadShared(CodeWriter w, string slot, bool withWholeBlocks)
    {
        w.Line($"u32 range[{(withWholeBlocks ? 2 : 1)}][4];");
        w.Line($"kdsl_ld_shared_v4(range[0], {slot});");
        w.Line($"const int {N.FirstKeyBlock} = (int)range[0][0], {N.KeyBlocks} = (int)range[0][1];");
        if (withWholeBlocks)
        {
            w.Line($"kdsl_ld_shared_v4(range[1], {slot} + 16);");
            w.Line($"const int {FullFirst} = (int)range[0][2], {FullLast} = (int)range[0][3];");
            w.Line($"const bool {FullRun} = range[1][0] != 0u;");
        }
    }

    private const string FullFirst = "full_first", FullLast = "full_last", FullRun = "full_run";

    /// <summary>
    /// Whether key block <paramref name="block"/> is not shown whole by the mask (so the step runs the per-score mask):
    /// outside the run of whole blocks when they form one, else the classifier's answer for it.
    /// </summary>
    public static string PartialBlock(AttentionPlan plan, ModifierSpec mask, string block) =>
        $"({FullRun} ? ({block} < {FullFirst} || {block} > {FullLast}) : {BlockClassifierCall(plan, mask, block)} != KDSL_BLOCK_FULL)";

    /// <summary>The mask's class of key block <paramref name="block"/> for this query block's rows inside the sequences.</summary>
    public static string BlockClassifierCall(AttentionPlan plan, ModifierSpec mask, string block)
    {
        var s = plan.Spec;
        var runtime = string.Join("", System.Linq.Enumerable.Select(ModifierWriter.RuntimeArgumentNames(mask), a => ", " + a));
        return $"kdsl_mask_block({N.Batch}, {N.Head}, {N.FirstRow}, kdsl_min({N.FirstRow} + {s.BlockM}, seq_q) - 1, {block} * {s.BlockN}, kdsl_min(({block} + 1) * {s.BlockN}, seq_k) - 1{runtime})";
    }
}
