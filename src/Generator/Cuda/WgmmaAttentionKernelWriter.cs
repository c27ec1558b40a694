using KernelDsl.Generator.Atoms;
using KernelDsl.Generator.Helpers;
using KernelDsl.Generator.Model;
using N = KernelDsl.Generator.Cuda.AttentionNames;

namespace KernelDsl.Generator.Cuda;

/// <summary>
/// Writes the warp-specialized Hopper form of the INT8 FlashAttention forward kernel, one method per section: shared
/// memory and barriers, the producer warpgroup (TMA loads of Q once and K/V per stage), the consumer warpgroups
/// (S = Q·Kᵀ on wgmma from shared memory, the shared online softmax, O += P·V on wgmma with P from registers), and
/// the shared epilogue.
/// </summary>
public sealed class WgmmaAttentionKernelWriter(AttentionPlan plan)
{
    private readonly AttentionSpec _spec = plan.Spec;
    private CodeWriter _w = null!;

    public void WriteKernel(CodeWriter w)
    {
        _w = w;
        w.Line($"extern \"C\" __global__ void __launch_bounds__({plan.Threads}, {plan.MinBlocksPerSm})");
        KernelSignatureWriter.WriteDeclaration(w, _spec.KernelPrefix, plan.Signature);
        w.Raw("{");
        w.Indent();
        WriteSharedMemory();
        WriteProducer();
        WriteConsumer();
        w.Outdent();
        w.Raw("}");
    }

    private void WriteSharedMemory()
    {
        var s = _spec;
        var d = s.HeadDim;
        var stages = s.Stages;
        _w.Line($"extern __shared__ __align__(128) u8 kdsl_shared_raw[];");
        _w.Line($"// TMA's swizzle pattern repeats every {AttentionPlan.TmaAlignment} bytes and wgmma's descriptors assume the same phase: align the tiles to it.");
        var q = TwoQBuffers ? QBase : N.SharedQ;
        _w.Line($"u8* const {q} = (u8*)(((unsigned long long)kdsl_shared_raw + {AttentionPlan.TmaAlignment - 1}) & ~{AttentionPlan.TmaAlignment - 1}ull);  // Q: {(TwoQBuffers ? "2 × " : "")}{s.BlockM}×{d} bytes");
        _w.Line($"u8* const {N.SharedK} = {q} + {plan.QBuffers * plan.QStageBytes};                 // K: {stages} × {plan.KStageBytes} bytes, [key][channel]");
        _w.Line($"u8* const sv = {N.SharedK} + {stages * plan.KStageBytes};        // V: {stages} × {plan.VStageBytes} bytes, [channel][key] in π order ({(plan.InKernelTransposedV ? "written by the producer, Recipe D" : "as its quantize kernel wrote it, Recipe C")})");
        if (plan.InKernelTransposedV)
        {
            _w.Line($"u8* const sn = sv + {stages * plan.VStageBytes};        // V as it comes: {stages} × {plan.VStagingBytes} bytes, [key][channel], for Recipe D");
        }
        _w.Line($"const u32 {(TwoQBuffers ? QBaseAddress : "sq_addr")} = kdsl_smem({q}), {N.SharedKAddress} = kdsl_smem({N.SharedK}), sv_addr = kdsl_smem(sv);");
        if (plan.InKernelTransposedV)
        {
            _w.Line($"const u32 sn_addr = kdsl_smem(sn);");
            _w.Line($"// mbarriers: Q full; per stage K full, V full (the producer's four warps, after transposing), K/V empty (one arrival");
            _w.Line($"// per consumer warp), staged V full (TMA bytes).");
            _w.Line($"const u32 q_full = sn_addr + {stages * plan.VStagingBytes};");
            _w.Line($"const u32 k_full = q_full + 8, v_full = k_full + {8 * stages}, kv_empty = v_full + {8 * stages}, vn_full = kv_empty + {8 * stages};");
        }
        else
        {
            // What follows the V stages: a persistent grid's own O staging, then the mbarriers.
            var next = $"sv_addr + {stages * plan.VStageBytes}";
            if (plan.Persistent)
            {
                _w.Line($"const u32 {N.OutputStagingAddress} = {next};  // O: {s.BlockM} rows of {plan.OutputStagingRowBytes} bytes, staged by the epilogue");
                next = $"{N.OutputStagingAddress} + {plan.OutputStagingBytes}";
            }
            if (plan.QuantizesQ)
            {
                _w.Line($"// mbarriers: per stage K full, V full (TMA bytes), K/V empty (one arrival per consumer warp). Q needs none: the consumers write it.");
                _w.Line($"const u32 k_full = {next}, v_full = k_full + {8 * stages}, kv_empty = v_full + {8 * stages};");
            }
            else if (TwoQBuffers)
            {
                _w.Line($"// mbarriers: per Q buffer Q full (TMA bytes) and Q empty (one arrival per consumer warp); per stage K full, V full, K/V empty.");
                _w.Line($"const u32 q_full = {next}, q_empty = q_full + 16;");
                _w.Line($"const u32 k_full = q_empty + 16, v_full = k_full + {8 * stages}, kv_empty = v_full + {8 * stages};");
            }
            else
            {
                _w.Line($"// mbarriers: Q full; per stage K full, V full (TMA bytes), K/V empty (one arrival per consumer warp).");
                _w.Line($"const u32 q_full = {next};");
                _w.Line($"const u32 k_full = q_full + 8, v_full = k_full + {8 * stages}, kv_empty = v_full + {8 * stages};");
            }
        }
        _w.Line($"const int tid = threadIdx.x, {N.Lane} = tid & 31, {N.Warp} = tid >> 5, wg = {N.Warp} >> 2, {N.Group} = {N.Lane} >> 2, {N.ThreadInGroup} = {N.Lane} & 3;");
        if (plan.Persistent)
        {
            _w.Line($"// A persistent grid: this block walks its share of the q_blocks × heads_q × batch tiles, one a round.");
            _w.Line($"const int q_blocks = (seq_q + {s.BlockM - 1}) / {s.BlockM}, tiles = q_blocks * heads_q * batch;");
        }
        else
        {
            QueryBlockWriter.Write(_w, plan);
        }
        QueryBlockWriter.WriteScaleTiles(_w, plan);
        _w.Block($"if (tid == 0)", () =>
        {
            if (TwoQBuffers)
            {
                _w.Line($"for (int qs = 0; qs < 2; ++qs) {{ kdsl_mbar_init(q_full + 8 * qs, 1); kdsl_mbar_init(q_empty + 8 * qs, {4 * plan.ConsumerWarpgroups}); }}");
            }
            else if (!plan.QuantizesQ)
            {
                _w.Line($"kdsl_mbar_init(q_full, 1);");
            }
            _w.Line($"#pragma unroll");
            _w.Block($"for (int st = 0; st < {stages}; ++st)", () =>
            {
                _w.Line($"kdsl_mbar_init(k_full + 8 * st, 1);");
                _w.Line($"kdsl_mbar_init(v_full + 8 * st, {(plan.InKernelTransposedV ? 4 : 1)});");
                _w.Line($"kdsl_mbar_init(kv_empty + 8 * st, {4 * plan.ConsumerWarpgroups});");
                if (plan.InKernelTransposedV)
                {
                    _w.Line($"kdsl_mbar_init(vn_full + 8 * st, 1);");
                }
            });
            _w.Line($"kdsl_mbar_init_fence();");
            if (!plan.Persistent)
            {
                WriteQCopy();
            }
        });
        if (plan.SharesKeyBlockRange)
        {
            _w.Line($"const u32 {RangeAddress} = sq_addr + {plan.KeyBlockRangeOffset};");
            KeyBlockRangeWriter.WriteShared(_w, plan, RangeAddress);
        }
        _w.Line($"__syncthreads();  // the last block-wide barrier: the warpgroups part ways here");
        if (!plan.Persistent && !plan.SharesKeyBlockRange)
        {
            KeyBlockRangeWriter.Write(_w, plan);
        }
        _w.Line();
    }

    private void WriteProducer()
    {
        var s = _spec;
        var stages = s.Stages;
        if (plan.InKernelTransposedV)
        {
            _w.Line($"// Producer warpgroup: thread 0 issues every TMA copy once all consumer warps released the stage; then the four warps");
            _w.Line($"// rewrite the staged V [key][channel] as [channel][key] in π order (Recipe D) and signal V full.");
        }
        else
        {
            _w.Line($"// Producer warpgroup: one thread issues every TMA copy; a stage is refilled once all consumer warps released it.");
        }
        _w.Block($"if (wg == 0)", () =>
        {
            _w.Line($"kdsl_setmaxnreg_dec<{plan.ProducerRegisters}>();");
            ReadSharedRange(consumer: false);
            if (plan.InKernelTransposedV)
            {
                var load = CopyAtom.Get(CopyAtomKind.LdsmTransPrmt).ProgramFor(OperandStorage.KN, TokenOrder.Pi)!;
                CopyProgramWriter.WriteLaneOffsets(_w, load, "v");
                CopyProgramWriter.WriteLaneOffsets(_w, StmatrixProgram.RecipeD, "t");
                _w.Block($"if (tid == 0)", () =>
                {
                    _w.Block($"if ({N.KeyBlocks} > 0)", () => WriteKvCopies(N.FirstKeyBlock, "0", "vn_full", "sn_addr", plan.VStagingBytes, $"0, {N.FirstKeyBlock} * {s.BlockN}, {N.KvHead}, {N.Batch}"));
                });
                _w.Block($"for (int j = 0; j < {N.KeyBlocks}; ++j)", () =>
                {
                    _w.Line($"const int st = j % {stages};");
                    _w.Line($"// Block j + 1's copies go out before block j is transposed, so their latency hides under the transpose.");
                    _w.Block($"if (tid == 0 && j + 1 < {N.KeyBlocks})", () =>
                    {
                        _w.Line($"const int sn = (j + 1) % {stages};");
                        _w.Line($"if (j + 1 >= {stages}) kdsl_mbar_wait(kv_empty + 8 * sn, (((j + 1) / {stages}) - 1) & 1);");
                        WriteKvCopies($"({N.FirstKeyBlock} + j + 1)", "sn", "vn_full", "sn_addr", plan.VStagingBytes, $"0, ({N.FirstKeyBlock} + j + 1) * {s.BlockN}, {N.KvHead}, {N.Batch}");
                    });
                    _w.Line($"kdsl_mbar_wait(vn_full + 8 * st, (j / {stages}) & 1);");
                    var units = s.BlockN / 32 * (s.HeadDim / 16);
                    _w.Line($"// {units} pieces of 32 keys × 16 channels, {units / 4} per warp: ldmatrix.trans + prmt (Recipe A's program in π order), then stmatrix.");
                    _w.Line($"#pragma unroll");
                    _w.Block($"for (int u = {N.Warp}; u < {units}; u += 4)", () =>
                    {
                        _w.Line($"const int kb = u % {s.BlockN / 32}, cb = u / {s.BlockN / 32};  // keys 32kb.., channels 16cb..");
                        CopyProgramWriter.WriteLoad(_w, load, "vr", $"sn_addr + st * {plan.VStagingBytes} + {StagingFunction}(kb * 32 + v_row, cb * 16 + v_chunk * 16)");
                        CopyProgramWriter.WriteStore(_w, StmatrixProgram.RecipeD, "vr", $"sv_addr + st * {plan.VStageBytes} + {LayoutWriter.FunctionName(Operand.V)}(cb * 16 + t_row, kb * 32 + t_chunk * 16)");
                    });
                    _w.Line($"kdsl_fence_proxy_async();  // the stmatrix writes become visible to wgmma, which reads through the async proxy");
                    _w.Line($"__syncwarp();");
                    _w.Line($"if ({N.Lane} == 0) kdsl_mbar_arrive(v_full + 8 * st);");
                });
            }
            else if (plan.Persistent)
            {
                WritePersistentProducer();
            }
            else
            {
                _w.Block($"if (tid == 0)", WriteKvLoop);
            }
            _w.Line($"return;");
        });
        _w.Line();
    }

    /// <summary>The shared-memory address of the key-block range the warpgroups read (<see cref="AttentionPlan.SharesKeyBlockRange"/>).</summary>
    private const string RangeAddress = "kv_range_addr";

    private void ReadSharedRange(bool consumer)
    {
        if (plan.SharesKeyBlockRange)
        {
            KeyBlockRangeWriter.ReadShared(_w, RangeAddress, withWholeBlocks: consumer);
        }
    }

    /// <summary>
    /// A persistent grid's producer: warp 0 walks the block's tiles. For each, lane 0 issues its Q copy (unless the
    /// consumers quantize Q) into buffer <c>tiles_done &amp; 1</c> once the consumers released that buffer's tile before
    /// last; the warp then finds the tile's key-block range (warp-wide, as the consumers do), and lane 0 issues its K/V
    /// copies. K/V stages and phases count every block of every tile, so the next tile's
    /// copies fill the stages the current one frees.
    /// </summary>
    private void WritePersistentProducer()
    {
        var s = _spec;
        var stages = s.Stages;
        _w.Block($"if ({N.Warp} == 0)", () =>
        {
            _w.Line($"int {N.BlocksBefore} = 0;");
            QueryBlockWriter.WriteTileLoop(_w, N.TilesBefore, () =>
            {
                QueryBlockWriter.WriteTile(_w, plan, "tile");
                if (TwoQBuffers)
                {
                    _w.Block($"if ({N.Lane} == 0)", () =>
                    {
                        _w.Line($"const int qs = {N.TilesBefore} & 1;");
                        _w.Line($"if ({N.TilesBefore} >= 2) kdsl_mbar_wait(q_empty + 8 * qs, (({N.TilesBefore} >> 1) - 1) & 1);  // the consumers are done with the tile before last");
                        _w.Line($"kdsl_mbar_arrive_expect_tx(q_full + 8 * qs, {plan.QStageBytes});");
                        _w.Line($"kdsl_tma_load_3d({QBaseAddress} + qs * {plan.QStageBytes}, &q_map, q_full + 8 * qs, 0, {N.FirstRow}, (int){N.BatchHead});  // rows past seq_q arrive as zeros");
                    });
                    _w.Line($"// Q is in flight while the warp finds the tile's key blocks.");
                }
                KeyBlockRangeWriter.Write(_w, plan);
                _w.Block($"if ({N.Lane} == 0)", WriteKvLoop);
                _w.Line($"{N.BlocksBefore} += {N.KeyBlocks};");
            });
        });
    }

    /// <summary>
    /// The copies of the range's K/V blocks, each into stage <see cref="Counted"/>(j) % Stages once every consumer warp
    /// released the block that used the stage before (Recipe C; Recipe D's producer has its own loop).
    /// </summary>
    private void WriteKvLoop()
    {
        var (s, stages) = (_spec, _spec.Stages);
        _w.Block($"for (int j = 0; j < {N.KeyBlocks}; ++j)", () =>
        {
            _w.Line($"const int st = {Counted("j")} % {stages};");
            _w.Line($"if ({Counted("j")} >= {stages}) kdsl_mbar_wait(kv_empty + 8 * st, (({Counted("j")} / {stages}) - 1) & 1);");
            WriteKvCopies($"({N.FirstKeyBlock} + j)", "st", "v_full", "sv_addr", plan.VStageBytes, $"({N.FirstKeyBlock} + j) * {s.BlockN}, 0, {N.KvHead}, {N.Batch}");
        });
    }

    /// <summary>
    /// A persistent grid whose producer loads Q: two buffers, so the next tile's Q lands while this one's is read. When the
    /// consumers quantize Q themselves, each warp rewrites only its own rows after it is done with them: one buffer.
    /// </summary>
    private bool TwoQBuffers => plan.QBuffers == 2;

    /// <summary>A persistent grid's Q buffers: the base of both, and its shared-memory address.</summary>
    private const string QBase = "sq_base", QBaseAddress = "sq_base_addr";

    /// <summary>
    /// The TMA copy of this block's Q rows onto q_full, once, issued by the thread that initialises the barriers right
    /// after it, so the key-block range (the mask's classifier) is computed while Q is in flight.
    /// </summary>
    private void WriteQCopy()
    {
        if (plan.QuantizesQ)
        {
            return;  // the consumer warps load and quantize Q themselves
        }
        _w.Line($"kdsl_mbar_arrive_expect_tx(q_full, {plan.QStageBytes});");
        _w.Line($"kdsl_tma_load_3d(sq_addr, &q_map, q_full, 0, {N.FirstRow}, (int){N.BatchHead});  // rows past seq_q arrive as zeros");
    }

    /// <summary>
    /// The TMA copies of K/V block <paramref name="block"/> into stage <paramref name="stage"/>: K onto k_full, V (as the
    /// V map has it) onto <paramref name="vBarrier"/>.
    /// </summary>
    private void WriteKvCopies(string block, string stage, string vBarrier, string vBase, int vBytes, string vCoordinates)
    {
        _w.Line($"kdsl_mbar_arrive_expect_tx(k_full + 8 * {stage}, {plan.KStageBytes});");
        _w.Line($"kdsl_tma_load_3d({N.SharedKAddress} + {stage} * {plan.KStageBytes}, &k_map, k_full + 8 * {stage}, 0, {block} * {_spec.BlockN}, (int){N.BatchKvHead});");
        _w.Line($"kdsl_mbar_arrive_expect_tx({vBarrier} + 8 * {stage}, {vBytes});");
        _w.Line($"kdsl_tma_load_4d({vBase} + {stage} * {vBytes}, &v_map, {vBarrier} + 8 * {stage}, {vCoordinates});");
    }

    /// <summary>Recipe D's staging tile layout function: rows of HeadDim bytes with the swizzle TMA writes them in.</summary>
    public const string StagingFunction = "kdsl_smem_vn";

    /// <summary>The staging tile's layout: TMA's swizzle for rows of HeadDim bytes.</summary>
    public SmemLayoutSpec StagingLayout => new(Operand.V, Element.S8, TmaSwizzle.ForRowBytes(_spec.HeadDim)!);

    private void WriteConsumer()
    {
        var s = _spec;
        var d = s.HeadDim;
        var stages = s.Stages;
        _w.Line($"// Consumer warpgroups: {plan.ConsumerWarpgroups} × 64 query rows; warp w of a warpgroup owns 16 of them, as in an m16 MMA.");
        _w.Line($"kdsl_setmaxnreg_inc<{plan.ConsumerRegisters}>();");
        ReadSharedRange(consumer: true);
        _w.Line($"const int cg = wg - 1;");
        _w.Line($"const int warp_row = cg * 64 + ({N.Warp} & 3) * 16;");
        if (!plan.Persistent)
        {
            WriteConsumerTile();
            return;
        }
        _w.Line($"int {N.BlocksBefore} = 0;");
        QueryBlockWriter.WriteTileLoop(_w, N.TilesBefore, () =>
        {
            QueryBlockWriter.WriteTile(_w, plan, "tile");
            KeyBlockRangeWriter.Write(_w, plan);
            if (TwoQBuffers)
            {
                _w.Line($"const int qs = {N.TilesBefore} & 1;");
                _w.Line($"u8* const {N.SharedQ} = {QBase} + qs * {plan.QStageBytes};  // this tile's Q buffer, under the name every section reads");
                _w.Line($"const u32 sq_addr = {QBaseAddress} + qs * {plan.QStageBytes};");
            }
            WriteConsumerTile();
            _w.Line($"{N.BlocksBefore} += {N.KeyBlocks};");
            _w.Line($"__syncwarp();  // the warp's last reads of this tile's Q (the LSE) and of its O rows come before anything of the next tile");
            if (TwoQBuffers)
            {
                _w.Line($"if ({N.Lane} == 0) kdsl_mbar_arrive(q_empty + 8 * qs);");
            }
        });
    }

    /// <summary>
    /// One tile's work in a consumer warp: Q's scale and wait, the key blocks, the epilogue. On a persistent grid, K/V stages
    /// and phases count from the blocks of the tiles before (<see cref="AttentionNames.BlocksBefore"/>).
    /// </summary>
    private void WriteConsumerTile()
    {
        var s = _spec;
        var d = s.HeadDim;
        var stages = s.Stages;
        _w.Line($"float {N.RowMax}[2] = {{-KDSL_INF, -KDSL_INF}}, {N.RowSum}[2] = {{0.f, 0.f}};");
        _w.Line($"float {N.O}[{plan.OTiles}][4];");
        WriteFill(N.O, plan.OTiles, "0.f");
        if (plan.QuantizesQ)
        {
            if (plan.Persistent)
            {
                _w.Line($"// Each warp rewrites only its own Q rows, after its wgmma_wait<0> of the tile before retired every wgmma that read them.");
            }
            new QueryQuantizeWriter(plan, _w, "warp_row").Write();
        }
        else
        {
            _w.Line($"const float {N.QScale} = q_scale[{N.BatchHead} * {N.QTiles} + {QueryBlockWriter.QScaleTile(plan)}];");
        }
        _w.Line($"// K-major descriptors, {d}-byte rows of Q and K, {plan.VRowBytes}-byte rows of V: 8 rows per swizzle atom; each k32 step moves 32 bytes (2 in the address field).");
        _w.Line($"const unsigned long long q_desc = kdsl_wgmma_desc(sq_addr + cg * {64 * d}, {8 * d}, {TmaSwizzle.DescriptorMode(d)});");
        if (TwoQBuffers)
        {
            _w.Line($"kdsl_mbar_wait(q_full + 8 * qs, ({N.TilesBefore} >> 1) & 1);");
        }
        else if (!plan.QuantizesQ)
        {
            _w.Line($"kdsl_mbar_wait(q_full, 0);");
        }
        if (s.Score is not null)
        {
            new AttentionEpilogueWriter(plan, NaturalChannels, _w, "warp_row").WriteRowMeanScores();
        }
        _w.Line();
        _w.Line($"// FA3's intra-warpgroup pipeline: S of block j is issued before P·V of block j − 1, so the softmax of j runs on");
        _w.Line($"// the CUDA cores while the tensor cores finish P·V of j − 1. P of the previous block waits in pa, packed after that wait.");
        _w.Line($"u32 {N.PackedP}[{plan.PvSteps}][4];");
        if (_spec.Pingpong)
        {
            _w.Line($"// Pingpong: warpgroup cg issues its MMAs after named barrier {N.TurnBarrier} + cg, then hands the turn to the other; 0 starts.");
            _w.Line($"if (cg == 1 && {N.KeyBlocks} > 0) kdsl_bar_arrive({N.TurnBarrier}, 256);");
        }
        _w.Block($"if ({N.KeyBlocks} > 0)", () =>
        {
            _w.Line($"const int j = 0, {N.KeyBlock} = {N.FirstKeyBlock};");
            if (plan.Persistent)
            {
                _w.Line($"const int st = {N.BlocksBefore} % {stages};");
                WriteScores("st", $"(u32)({N.BlocksBefore} / {stages}) & 1u", pipelined: false);
            }
            else
            {
                WriteScores("0", "0u", pipelined: false);
            }
            var softmax = new AttentionSoftmaxWriter(plan, _w, "warp_row");
            softmax.WriteSoftmax();
            softmax.WritePackP(N.PackedP, declare: false);
        });
        _w.Block($"for (int j = 1; j < {N.KeyBlocks}; ++j)", () =>
        {
            _w.Line($"const int st = {Counted("j")} % {stages}, prev = {Counted("j - 1")} % {stages}, {N.KeyBlock} = {N.FirstKeyBlock} + j;");
            var softmax = new AttentionSoftmaxWriter(plan, _w, "warp_row");
            softmax.WriteKScaleLoads();
            WriteScores("st", $"(u32)({Counted("j")} / {stages}) & 1u", pipelined: true);
            softmax.WriteSoftmax(kScalesLoaded: true);
            WriteProductWait("prev");
            _w.Line($"// P is packed into pa only now: written while P·V still read pa's stage, ptxas would serialize every wgmma (C7513).");
            softmax.WritePackP(N.PackedP, declare: false);
            _w.Line($"// O already carries this block's rescale; P·V of block j − 1 joins it scaled the same way.");
            _w.Line($"#pragma unroll");
            _w.Line($"for (int i = 0; i < {plan.OTiles}; ++i) {{ {N.O}[i][0] = fmaf({Block(0)}, {N.Alpha}[0], {N.O}[i][0]); {N.O}[i][1] = fmaf({Block(1)}, {N.Alpha}[0], {N.O}[i][1]); {N.O}[i][2] = fmaf({Block(2)}, {N.Alpha}[1], {N.O}[i][2]); {N.O}[i][3] = fmaf({Block(3)}, {N.Alpha}[1], {N.O}[i][3]); }}");
        });
        _w.Block($"if ({N.KeyBlocks} > 0)", () =>
        {
            _w.Line($"// The last block's P·V, with nothing left to overlap it with.");
            _w.Line($"const int prev = {Counted($"{N.KeyBlocks} - 1")} % {stages};");
            WriteProductIssue("prev", $"(u32)({Counted($"{N.KeyBlocks} - 1")} / {stages}) & 1u");
            WriteProductWait("prev");
            _w.Line($"#pragma unroll");
            _w.Line($"for (int i = 0; i < {plan.OTiles}; ++i) {{ {N.O}[i][0] += {Block(0)}; {N.O}[i][1] += {Block(1)}; {N.O}[i][2] += {Block(2)}; {N.O}[i][3] += {Block(3)}; }}");
        });
        _w.Line();
        // The O accumulators of a warp's wgmma slice hold channel 8i + 2t + (r & 1) in tile i: in the epilogue's terms,
        // tile 2ci + jt lands on 16ci + 8jt + 2t + i.
        new AttentionEpilogueWriter(plan, NaturalChannels, _w, "warp_row").Write();
    }

    /// <summary>
    /// Block <paramref name="j"/> of the tile counted from the block's first tile: K/V stages and their phases follow
    /// every block this block has consumed, which on a persistent grid includes the tiles before.
    /// </summary>
    private string Counted(string j) => plan.Persistent ? $"({N.BlocksBefore} + {j})" : j.Contains(" ") ? $"({j})" : j;

    /// <summary>Accumulator r of tile i of one block's P·V as a float: read through the float bias (integer P), or as it is (fp8).</summary>
    private string Block(int r) => plan.Fp8Pv ? $"ob[i][{r}]" : $"__int_as_float(ob[i][{r}]) - KDSL_FLOAT_BIAS";

    /// <summary>
    /// S = Q·Kᵀ of block j on stage <paramref name="stage"/>. Pipelined, P·V of block j − 1 (P in pa, V on stage prev) is
    /// issued right behind it and left running; the wait returns once S alone has landed.
    /// </summary>
    private void WriteScores(string stage, string phase, bool pipelined)
    {
        var (s, d) = (_spec, _spec.HeadDim);
        _w.Line($"const unsigned long long k_desc = kdsl_wgmma_desc({N.SharedKAddress} + {stage} * {plan.KStageBytes}, {8 * d}, {TmaSwizzle.DescriptorMode(d)});");
        _w.Line($"kdsl_mbar_wait(k_full + 8 * {stage}, {phase});");
        _w.Line($"// S = Q·Kᵀ on {plan.Qk.Ptx}, both from shared memory; the accumulators start at the float bias (|S| ≤ 127²·{d} < 2^22).");
        _w.Line($"int {N.S}[{plan.STiles}][4];");
        WriteFill(N.S, plan.STiles, "KDSL_FLOAT_BIAS_BITS");
        if (pipelined)
        {
            WriteProductIssue("prev", $"(u32)({Counted("j - 1")} / {s.Stages}) & 1u", scoresFirst: true);
            _w.Line($"kdsl_wgmma_wait<1>();  // S has landed; P·V of block j − 1 may still run");
        }
        else
        {
            _w.Line($"kdsl_fence_regs({N.S});  // the bias lands before the fence: ptxas serializes wgmmas whose inputs are written inside a stage");
            WriteTurnBegin();
            _w.Line($"kdsl_wgmma_fence();");
            WriteScoreMmas();
            _w.Line($"kdsl_wgmma_commit();");
            WriteTurnEnd(last: false);
            _w.Line($"kdsl_wgmma_wait<0>();");
        }
        _w.Line($"kdsl_fence_regs({N.S});");
    }

    /// <summary>
    /// Issues O_block = P·V on <see cref="AttentionPlan.Pv"/> (P from pa, V's stage <paramref name="stage"/>) into fresh
    /// accumulators ob (int32 started at the float bias, or f32 overwritten by the first k step); with <paramref name="scoresFirst"/>, S = Q·Kᵀ is issued first as its own commit group.
    /// </summary>
    private void WriteProductIssue(string stage, string phase, bool scoresFirst = false)
    {
        var (s, pv) = (_spec, plan.Pv);
        _w.Line($"const unsigned long long v_desc = kdsl_wgmma_desc(sv_addr + {stage} * {plan.VStageBytes}, {8 * plan.VRowBytes}, {TmaSwizzle.DescriptorMode(plan.VRowBytes)});");
        if (plan.Fp8Pv)
        {
            _w.Line($"float ob[{plan.OTiles}][4];  // one block's f32 P·V: the first k step overwrites it (scale-d = 0), so it needs no zeroing");
        }
        else
        {
            _w.Line($"int ob[{plan.OTiles}][4];  // one block's int32 P·V, started at the float bias ({plan.PScale}·127·{s.BlockN} < 2^22)");
            WriteFill("ob", plan.OTiles, "KDSL_FLOAT_BIAS_BITS");
        }
        _w.Line($"kdsl_mbar_wait(v_full + 8 * {stage}, {phase});");
        _w.Line($"// Every wgmma input is written before the fence: ptxas serializes wgmmas whose inputs are written inside a stage.");
        if (scoresFirst)
        {
            _w.Line($"kdsl_fence_regs({N.S});");
        }
        _w.Line($"kdsl_fence_regs(ob);");
        _w.Line($"kdsl_fence_regs({N.PackedP});");
        WriteTurnBegin();
        _w.Line($"kdsl_wgmma_fence();");
        if (scoresFirst)
        {
            WriteScoreMmas();
            _w.Line($"kdsl_wgmma_commit();");
        }
        _w.Line($"// O += P·V on {pv.Ptx}: P from registers in π key order, V's [channel][key] tile in the same order from shared memory.");
        _w.Line($"#pragma unroll");
        _w.Line($"for (int kk = 0; kk < {plan.PvSteps}; ++kk) kdsl_{pv.HelperName}(ob, {N.PackedP}[kk][0], {N.PackedP}[kk][1], {N.PackedP}[kk][2], {N.PackedP}[kk][3], v_desc + 2 * kk{(plan.Fp8Pv ? ", kk > 0" : "")});");
        _w.Line($"kdsl_wgmma_commit();");
        WriteTurnEnd(last: !scoresFirst);
    }

    /// <summary>The k steps of S = Q·Kᵀ, each one wgmma from the Q and K descriptors advanced by 32 bytes (2 in the address field).</summary>
    private void WriteScoreMmas()
    {
        _w.Line($"#pragma unroll");
        _w.Line($"for (int kk = 0; kk < {plan.QkSteps}; ++kk) kdsl_{plan.Qk.HelperName}({N.S}, q_desc + 2 * kk, k_desc + 2 * kk);");
    }

    /// <summary>Pingpong: wait for this warpgroup's turn to issue MMAs.</summary>
    private void WriteTurnBegin()
    {
        if (_spec.Pingpong)
        {
            _w.Line($"kdsl_bar_sync({N.TurnBarrier} + cg, 256);  // my turn");
        }
    }

    /// <summary>Pingpong: hand the turn to the other warpgroup; after its last turn warpgroup 1 has no one left to wake.</summary>
    private void WriteTurnEnd(bool last)
    {
        if (_spec.Pingpong)
        {
            if (last)
            {
                _w.Line($"if (cg == 0) kdsl_bar_arrive({N.TurnBarrier + 1}, 256);  // the other's turn (warpgroup 1's last turn wakes no one)");
            }
            else
            {
                _w.Line($"kdsl_bar_arrive({N.TurnBarrier + 1} - cg, 256);  // the other's turn");
            }
        }
    }

    /// <summary>Every register of the accumulator array <paramref name="name"/>[<paramref name="tiles"/>][4] set to <paramref name="value"/>.</summary>
    private void WriteFill(string name, int tiles, string value)
    {
        _w.Line($"#pragma unroll");
        _w.Line($"for (int i = 0; i < {tiles}; ++i) {name}[i][0] = {name}[i][1] = {name}[i][2] = {name}[i][3] = {value};");
    }

    /// <summary>Waits for P·V, keeps its registers (ob, and pa it read) untouched until then, and frees the stage for the producer.</summary>
    private void WriteProductWait(string stage)
    {
        _w.Line($"kdsl_wgmma_wait<0>();");
        _w.Line($"kdsl_fence_regs(ob);");
        _w.Line($"kdsl_fence_regs({N.PackedP});  // the wgmma read pa asynchronously: its registers stay live until here");
        _w.Line($"if ({N.Lane} == 0) kdsl_mbar_arrive(kv_empty + 8 * {stage});  // this warp is done with the stage");
    }

    /// <summary>Accumulator column 2t + i of tile 2ci + jt is channel 16ci + 8jt + 2t + i: V's channels are its tile's rows, in order.</summary>
    public static readonly ChannelMap NaturalChannels = new(new[] { 0, 8 }.ToEquatableArray(), 2, 1);
}
