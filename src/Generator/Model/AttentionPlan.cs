using System;
using System.Linq;
using KernelDsl.Generator.Atoms;

namespace KernelDsl.Generator.Model;

/// <summary>
/// What an attention variant derives from its declaration: the two MMAs, the V strategy and its storage, the
/// order P leaves the S accumulators in, tile byte sizes, and the compositions that validation checks and the
/// emitter follows.
/// </summary>
public sealed record AttentionPlan(AttentionSpec Spec)
{
    public const int ChunkBytes = 16;

    /// <summary>The kernel's one signature: the launcher's parameters and the CUDA parameters made from them.</summary>
    public KernelSignature Signature => AttentionSignature.Of(this);

    public MmaAtom Qk => MmaAtom.Get(Spec.Mma ?? MmaAtomKind.M16N8K32_S32S8S8);
    public MmaAtom Pv => MmaAtom.Get(Spec.PvMma ?? MmaAtomKind.M16N8K32_S32U8S8);

    /// <summary>
    /// The Hopper form: Q·Kᵀ on wgmma from shared memory, a producer warpgroup feeding K/V through TMA and mbarriers,
    /// consumer warpgroups of 64 query rows each. The mma.sync form otherwise.
    /// </summary>
    public bool WarpSpecialized => Qk.IsWarpgroup;
    /// <summary>Warpgroups that compute (all warps but the producer's four), 64 query rows each.</summary>
    public int ConsumerWarpgroups => Spec.Warps / 4 - 1;
    /// <summary>
    /// The wgmma form on a persistent grid: one block an SM walks the tiles; Q has two buffers and O its own staging, so a
    /// tile's epilogue overlaps the next tile's copies.
    /// </summary>
    public bool Persistent => WarpSpecialized && Spec.Persistent;
    /// <summary>
    /// Whether a persistent grid's tiles run longest first across heads: causal, or with a mask that reads no array, whose visible keys are then a
    /// closed form of the row. For the library's (causal as a mask, prefix-LM) they grow with it; a window's stay level,
    /// and the order costs it nothing; a mask whose keys shrink with the row (k ≥ q) would want the opposite order, which
    /// nothing declared needs. A causal kernel with an array mask keeps the causal order. Run 75 timed prefix-LM on the
    /// head-by-head persistent order at 2.319 ms, against 1.594 longest first (run 76, S = 16384): by head, a round's
    /// tiles are one head's short and long ones, and the alternating rounds no longer pair them. A mask that reads an
    /// array (document ids) has data-dependent work: causal within each document, it repeats per document, so
    /// longest-first rounds pair long with long; run 76 timed it at 0.451 ms against 0.338 by head. The one-tile grid,
    /// which the hardware schedules as blocks free up, counts query blocks from the end for causal kernels alone: masks
    /// ordered so in run 76 were slower (causal as a mask +3.5 % / +5.7 % at S = 4096 / 16384 against run 75, prefix-LM
    /// +2.6 %), the window 2.5 % faster.
    /// </summary>
    public bool LongestTilesFirst => Spec.Causal || Spec.Mask is { } mask && !mask.Parameters.Any(p => p.IsArray);
    /// <summary>
    /// Q's shared-memory buffers: two on a persistent grid whose producer loads Q (the next tile's Q lands while this one's
    /// LSE reads it); one where the consumers quantize Q themselves.
    /// </summary>
    public int QBuffers => Persistent && !QuantizesQ ? 2 : 1;

    /// <summary>
    /// The wgmma form's setmaxnreg budgets. A producer thread keeps 24 registers (40 with Recipe D, whose producer warps
    /// transpose V, and on a persistent grid with a mask, whose producer warp runs the block classifier per tile); the
    /// consumers share the rest of the block's 65536 / MinBlocksPerSm, in multiples of 8, at most 240:
    /// 128·24 + 256·240 ≤ 65536 for two consumer warpgroups, 128·24 + 128·232 ≤ 32768 for one at two blocks per SM.
    /// </summary>
    public int ProducerRegisters => InKernelTransposedV || (Persistent && Spec.Mask is not null) ? 40 : 24;
    public int ConsumerRegisters => Math.Min(240, (65536 / Spec.MinBlocksPerSm - 128 * ProducerRegisters) / (128 * ConsumerWarpgroups) / 8 * 8);
    /// <summary>Keys per K scale: the K quantize kernel's BlockRows; BlockN unless declared smaller.</summary>
    public int KScaleKeys => Spec.KScaleKeys == 0 ? Spec.BlockN : Spec.KScaleKeys;
    /// <summary>K scales one block of keys spans.</summary>
    public int KScalesPerBlock => Spec.BlockN / KScaleKeys;

    /// <summary>The accuracy mode: P stays a 16-bit float (f16 or bf16, as V is) and V is the input (no V quantization).</summary>
    public bool FloatPv => Pv.AElement is Element.F16 or Element.BF16;
    /// <summary>
    /// The fp8 mode: P rounded to e4m3 at a fixed scale, V e4m3 with one scale per channel, each key block's P·V in a fresh
    /// f32 accumulator folded into O (Hopper's fp8 MMAs accumulate with fewer mantissa bits, so blocks stay short).
    /// </summary>
    public bool Fp8Pv => Pv.AElement == Element.E4M3;
    /// <summary>
    /// The fixed scale P is quantized with: 255 for u8, 127 for s8, 448 (e4m3's largest finite value) for e4m3, 1 for f16.
    /// </summary>
    public int PScale => Pv.AElement switch { Element.U8 => 255, Element.S8 => 127, Element.E4M3 => 448, _ => 1 };

    public int Threads => Spec.Warps * 32;
    /// <summary>
    /// Q comes as f16/bf16 and the consumer warpgroups quantize it in the prologue, one scale per row (wgmma form): no
    /// separate Q pass, and the softmax scales each row by its own Q scale.
    /// </summary>
    public bool QuantizesQ => Spec.QInput != Element.S8;
    /// <summary>Query rows per Q scale: 1 when the kernel quantizes Q; else the Q quantize kernel's tile, BlockM unless declared larger.</summary>
    public int QScaleRows => QuantizesQ ? 1 : Spec.QScaleRows == 0 ? Spec.BlockM : Spec.QScaleRows;
    /// <summary>Blocks per SM the kernel is compiled for (__launch_bounds__), as declared.</summary>
    public int MinBlocksPerSm => Spec.MinBlocksPerSm;
    /// <summary>The tile configuration in words, e.g. "128×64 / 8 warps / 2 stages / 1 block/SM": what the autotuner reports (no commas: it lands in CSV).</summary>
    public string Tile => WarpSpecialized
        ? $"{Spec.BlockM}×{Spec.BlockN} / wgmma 1+{ConsumerWarpgroups} warpgroup{(ConsumerWarpgroups == 1 ? "" : "s")}{(Spec.Pingpong ? " pingpong" : "")}{(Persistent ? " persistent" : "")} / {Stages}" +
          (Spec.MinBlocksPerSm == 1 ? "" : $" / {Spec.MinBlocksPerSm} blocks/SM") + (QuantizesQ ? " / Q per row in kernel" : "")
        : $"{Spec.BlockM}×{Spec.BlockN} / {Spec.Warps} warps / {Stages} / {Spec.MinBlocksPerSm} block{(Spec.MinBlocksPerSm == 1 ? "" : "s")}/SM";

    private string Stages => $"{Spec.Stages} stage{(Spec.Stages == 1 ? "" : "s")}";
    /// <summary>
    /// <see cref="Tile"/> as a short ASCII name a command line takes ("128x64-w8-s2", "64x64-w4-s2-b2", "wgmma-s3",
    /// "wgmma-pingpong-s2"): every part of the tile that varies is kept, so distinct tiles keep distinct names.
    /// </summary>
    public string TileName => WarpSpecialized
        ? "wgmma" + (Spec.BlockM == 128 && Spec.BlockN == 128 ? "" : $"-{Spec.BlockM}x{Spec.BlockN}") + (ConsumerWarpgroups == 2 ? "" : $"-wg{ConsumerWarpgroups}")
            + (Spec.Pingpong ? "-pingpong" : "") + (Persistent ? "-persistent" : "") + $"-s{Spec.Stages}" + (Spec.MinBlocksPerSm == 1 ? "" : $"-b{Spec.MinBlocksPerSm}") + (QuantizesQ ? "-qrow" : "")
        : $"{Spec.BlockM}x{Spec.BlockN}-w{Spec.Warps}-s{Spec.Stages}" + (Spec.MinBlocksPerSm == 1 ? "" : $"-b{Spec.MinBlocksPerSm}");
    public Element VElement => FloatPv || Fp8Pv ? Pv.BElement : Element.S8;
    public int VBytes => VElement.SizeInBytes();

    public CopyAtomKind? VAtom => Spec.CopyAtomOf(Operand.V, CopyDirection.SharedToRegisters);
    /// <summary>
    /// Recipe D (wgmma form): TMA brings V as it comes, [key][channel], into a staging tile, and the producer warpgroup
    /// rewrites it K-major in π order with ldmatrix.trans + prmt + stmatrix for the P·V wgmma.
    /// </summary>
    public bool InKernelTransposedV => WarpSpecialized && Spec.CopyAtomOf(Operand.V, CopyDirection.RegistersToShared) == CopyAtomKind.Stmatrix;
    /// <summary>The staging tile of Recipe D: BlockN keys × HeadDim channel bytes, swizzled as TMA writes rows of that length.</summary>
    public int VStagingBytes => InKernelTransposedV ? Spec.BlockN * Spec.HeadDim : 0;
    /// <summary>V arrives transposed, [B][H][D][S_pad] in π order, from its quantize kernel (Recipe C).</summary>
    public bool PretransposedV => VAtom == CopyAtomKind.LdsmPretransposed;
    /// <summary>The P·V operand's tile is V transposed, [channel][key] (Recipes C and D).</summary>
    public bool TransposedVTile => PretransposedV || InKernelTransposedV;
    public OperandStorage VStorage => TransposedVTile ? OperandStorage.NK : OperandStorage.KN;
    /// <summary>V's tile for P·V is [channel][key] in π order: written so by the quantize kernel (Recipe C) or in the kernel (Recipe D).</summary>
    public TokenOrder VStoredOrder => TransposedVTile ? TokenOrder.Pi : TokenOrder.Natural;

    public int QStageBytes => Spec.BlockM * Spec.HeadDim;
    public int KStageBytes => Spec.BlockN * Spec.HeadDim;
    public int VRows => TransposedVTile ? Spec.HeadDim : Spec.BlockN;
    public int VRowBytes => TransposedVTile ? Spec.BlockN : Spec.HeadDim * VBytes;
    public int VStageBytes => VRows * VRowBytes;
    public int TileBytes => QBuffers * QStageBytes + Spec.Stages * (KStageBytes + VStageBytes + VStagingBytes) + (Persistent ? OutputStagingBytes : 0);
    /// <summary>
    /// A row of O staged in shared memory by the warp-specialized epilogue: HeadDim 16-bit values and 16 bytes of padding,
    /// which puts the 8 rows of a quad-pair store on distinct banks.
    /// </summary>
    public int OutputStagingRowBytes => 2 * Spec.HeadDim + 16;
    public int OutputStagingBytes => Spec.BlockM * OutputStagingRowBytes;
    /// <summary>
    /// The warp-specialized epilogue stages O in shared memory and stores whole rows in 16-byte pieces: in its own region on
    /// a persistent grid, else in the K/V stages (free once every consumer is past its last MMA), where it fits there.
    /// </summary>
    public bool StagesOutput => Persistent || (WarpSpecialized && OutputStagingBytes <= Spec.Stages * (KStageBytes + VStageBytes + VStagingBytes));
    /// <summary>TMA's 128-byte swizzle repeats every 1024 bytes and needs tiles aligned to it; the dynamic base is aligned by hand.</summary>
    public const int TmaAlignment = 1024;
    /// <summary>
    /// mbarriers of the warp-specialized form: Q full (unless the kernel quantizes Q itself; on a persistent grid Q full and
    /// Q empty per Q buffer), then K full, V full, K/V empty (and Recipe D's staged V full) per stage, 8 bytes each.
    /// </summary>
    public int Barriers => WarpSpecialized ? (QuantizesQ ? 0 : Persistent ? 2 * QBuffers : 1) + (InKernelTransposedV ? 4 : 3) * Spec.Stages : 0;
    public int SharedMemoryBytes => !WarpSpecialized ? TileBytes
        : TmaAlignment + (SharesKeyBlockRange ? KeyBlockRangeOffset + KeyBlockRangeBytes : TileBytes + 8 * Barriers);

    /// <summary>
    /// Whether one warp finds the mask's key-block range before the warpgroups part and hands it to both through shared
    /// memory (the one-tile wgmma form with a mask). Kept in registers across setmaxnreg, ptxas 12 spills the range; found
    /// again after it, the producer's 24 registers spill the classifier.
    /// </summary>
    public bool SharesKeyBlockRange => WarpSpecialized && !Persistent && Spec.Mask is not null;
    /// <summary>Where the shared key-block range sits from the aligned base: after the mbarriers, on a 16-byte boundary.</summary>
    public int KeyBlockRangeOffset => (TileBytes + 8 * Barriers + 15) / 16 * 16;
    /// <summary>The shared key-block range: first block, block count, first and last whole block, whether they form one run, 3 zeros.</summary>
    public const int KeyBlockRangeBytes = 32;

    /// <summary>Integers below this magnitude survive the float-bias trick exactly (PtxHelper.FloatBias).</summary>
    public const long FloatBiasRange = 1L << 22;
    /// <summary>|S| ≤ 127·127·HeadDim: below 2^22 for every head dim the validator allows, so S is always read biased.</summary>
    public bool BiasedScores => 127L * 127 * Spec.HeadDim < FloatBiasRange;
    /// <summary>One KV block's int32 P·V (|·| ≤ PScale·127·BlockN) can be read biased too, up to BlockN = 128 for u8 P.</summary>
    public bool BiasedPv => !FloatPv && !Fp8Pv && (long)PScale * 127 * Spec.BlockN < FloatBiasRange;

    /// <summary>One warp's share of each MMA (the mma.sync atom itself, or a wgmma's 16-row slice): the fragment model.</summary>
    public MmaAtom QkWarp => Qk.WarpView;
    public MmaAtom PvWarp => Pv.WarpView;

    public int QkSteps => Spec.HeadDim / Qk.K;
    /// <summary>n8 accumulator tiles of S a thread holds for one block of keys.</summary>
    public int STiles => Spec.BlockN / QkWarp.N;
    public int PvSteps => Spec.BlockN / Pv.K;
    /// <summary>n8 accumulator tiles of O a thread holds.</summary>
    public int OTiles => Spec.HeadDim / PvWarp.N;

    public LdmatrixProgram? QProgram => Spec.CopyAtomOf(Operand.Q, CopyDirection.SharedToRegisters) is { } atom
        ? CopyAtom.Get(atom).ProgramFor(OperandStorage.MK, TokenOrder.Natural) : null;

    public LdmatrixProgram? KProgram => Spec.CopyAtomOf(Operand.K, CopyDirection.SharedToRegisters) is { } atom
        ? CopyAtom.Get(atom).ProgramFor(OperandStorage.NK, TokenOrder.Natural) : null;

    /// <summary>V's program, asked for the k order P arrives in.</summary>
    public LdmatrixProgram? VProgram => VAtom is { } atom
        ? CopyAtom.Get(atom).ProgramFor(VStorage, POrder, VBytes) : null;

    /// <summary>π for 8-bit P (four S columns per register), natural for f16 P.</summary>
    public TokenOrder POrder => Pv.AElement.SizeInBytes() == 1 ? TokenOrder.Pi : TokenOrder.Natural;

    public Composition ComposeQ() => FragmentComposition.ComposeA(Qk, QProgram!);
    public Composition ComposeK(Composition q) => FragmentComposition.ComposeB(Qk, KProgram!, OperandStorage.NK, TokenOrder.Natural, q.KOrder);
    public Composition ComposeP() => FragmentComposition.ComposeAFromAccumulators(QkWarp, PvWarp);
    public Composition ComposeV(Composition p) => FragmentComposition.ComposeB(Pv, VProgram!, VStorage, VStoredOrder, p.KOrder);
}
