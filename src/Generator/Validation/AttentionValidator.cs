using System.Collections.Generic;
using System.Collections.Immutable;
using System.Linq;
using KernelDsl.Generator.Atoms;
using KernelDsl.Generator.Helpers;
using KernelDsl.Generator.Model;

namespace KernelDsl.Generator.Validation;

/// <summary>The FlashAttentionForward family's rules.</summary>
public static class AttentionValidator
{
    private static readonly Operand[] Operands = [Operand.Q, Operand.K, Operand.V];

    public static ImmutableArray<Finding> Validate(AttentionSpec spec) => Validate(spec, adviseAtoms: true);

    /// <param name="adviseAtoms">Whether a KDSL0501 names the atoms that would deliver the fragment, found by validating
    /// the declaration with each of them; off for those validations themselves.</param>
    private static ImmutableArray<Finding> Validate(AttentionSpec spec, bool adviseAtoms)
    {
        var findings = new List<Finding>();
        var warpgroup = spec.Mma is { } qk && MmaAtom.Get(qk).IsWarpgroup;
        CheckParameters(findings, spec, warpgroup);
        DeclarationRules.CheckOperands(findings, spec, Operands, Operands);
        DeclarationRules.CheckTargets(findings, spec);
        if (warpgroup)
        {
            CheckWarpgroupAtoms(findings, spec);
        }
        else
        {
            CheckAtoms(findings, spec);
        }
        if (HasErrors(findings))
        {
            return findings.ToImmutableArray();
        }
        var plan = new AttentionPlan(spec);
        if (warpgroup)
        {
            return ValidateWarpgroup(findings, plan, adviseAtoms);
        }
        CheckTiles(findings, plan);
        CheckElements(findings, plan);
        if (HasErrors(findings))
        {
            return findings.ToImmutableArray();
        }
        LayoutRules.Check(findings, spec, Operand.Q, spec.BlockM, spec.HeadDim, plan.QProgram);
        LayoutRules.Check(findings, spec, Operand.K, spec.BlockN, spec.HeadDim, plan.KProgram);
        LayoutRules.Check(findings, spec, Operand.V, plan.VRows, plan.VRowBytes, plan.VProgram);
        DeclarationRules.CheckSharedMemory(findings, spec, plan.SharedMemoryBytes,
            $"Q {plan.QStageBytes} bytes + {Wording.Count(spec.Stages, "stage")} × (K {plan.KStageBytes} + V {plan.VStageBytes} bytes)");
        if (!HasErrors(findings))
        {
            CheckComposition(findings, plan, adviseAtoms);
        }
        return findings.ToImmutableArray();
    }

    private static bool HasErrors(List<Finding> findings) => findings.Any(f => f.Rule.Severity == RuleSeverity.Error);

    private static void CheckParameters(List<Finding> findings, AttentionSpec spec, bool warpgroup)
    {
        void Bad(string name, object value, string rule) => findings.Add(Finding.Of(Rules.InvalidParameter, FindingTarget.Family, "FlashAttentionForward." + name, value, rule));

        if (warpgroup)
        {
            if (spec.HeadDim is not (64 or 128))
            {
                Bad(nameof(spec.HeadDim), spec.HeadDim, WarpgroupHeadDimReason(spec.HeadDim));
            }
            if (spec.Warps is not (8 or 12))
            {
                Bad(nameof(spec.Warps), spec.Warps, "the wgmma kernel runs one producer warpgroup and one or two consumer warpgroups, whose setmaxnreg budgets share the SM's registers: use 8 or 12 warps");
            }
            else if (spec.MinBlocksPerSm is < 1 or > 2 || (spec.MinBlocksPerSm == 2 && spec.Warps != 8))
            {
                Bad(nameof(spec.MinBlocksPerSm), spec.MinBlocksPerSm,
                    "the wgmma kernel's register budgets (setmaxnreg) fit one block per SM, or two with one consumer warpgroup (8 warps): use 1, or 2 with Warps = 8");
            }
            if (spec.Pingpong && spec.Warps != 12)
            {
                Bad(nameof(spec.Pingpong), true, "pingpong alternates two consumer warpgroups: use 12 warps");
            }
        }
        else if (spec.HeadDim is not (64 or 96 or 128 or 256))
        {
            // 256 is the largest: |S| ≤ 127²·D must stay below the float bias's 2^22 (127²·256 = 4129024 < 4194304), and the
            // O accumulators alone are D/2 f32 registers a thread (128 at D = 256; docs/HEAD_DIMS.md has the measured counts).
            Bad(nameof(spec.HeadDim), spec.HeadDim, "supported head dims are 64, 96, 128 and 256 (multiples of the 32-channel Q·Kᵀ step whose |S| ≤ 127²·D stays in the float-bias range)");
        }
        if (!warpgroup && (!DeclarationRules.IsPowerOfTwo(spec.Warps) || spec.Warps > 16))
        {
            Bad(nameof(spec.Warps), spec.Warps, "use 1, 2, 4, 8 or 16 warps");
        }
        if (spec.KScaleKeys != 0 && (spec.KScaleKeys < 8 || spec.KScaleKeys % 8 != 0 || spec.BlockN % spec.KScaleKeys != 0))
        {
            Bad(nameof(spec.KScaleKeys), spec.KScaleKeys, $"a K scale must cover whole accumulator tiles of 8 keys within a block: use 0 (= BlockN) or a multiple of 8 dividing BlockN ({spec.BlockN})");
        }
        if (spec.Stages < 1 || spec.Stages > 4)
        {
            Bad(nameof(spec.Stages), spec.Stages, "use 1 to 4 K/V stages");
        }
        if (spec.QScaleRows != 0 && (spec.QScaleRows < spec.BlockM || spec.QScaleRows % spec.BlockM != 0))
        {
            Bad(nameof(spec.QScaleRows), spec.QScaleRows, $"a Q scale must cover whole blocks: use 0 (= BlockM) or a multiple of BlockM ({spec.BlockM})");
        }
        if (spec.QInput is not (Element.S8 or Element.F16 or Element.BF16))
        {
            Bad(nameof(spec.QInput), spec.QInput, "Q is read as S8 codes from its quantize kernel, or as the output's F16/BF16 and quantized in the kernel");
        }
        else if (spec.QInput != Element.S8)
        {
            if (!warpgroup)
            {
                Bad(nameof(spec.QInput), spec.QInput, "only the wgmma form's consumer warpgroups quantize Q in the kernel; the mma.sync form reads int8 Q: use S8");
            }
            else if (spec.QInput != spec.Output)
            {
                Bad(nameof(spec.QInput), spec.QInput, $"Q quantized in the kernel comes in the output's type: use {spec.Output}");
            }
            if (spec.QScaleRows != 0)
            {
                Bad(nameof(spec.QScaleRows), spec.QScaleRows, "Q quantized in the kernel has one scale per row: leave QScaleRows at 0");
            }
        }
        if (spec.Pingpong && !warpgroup)
        {
            Bad(nameof(spec.Pingpong), true, "only the wgmma form's consumer warpgroups take turns; the mma.sync kernel has none");
        }
        if (spec.Persistent)
        {
            var recipeD = spec.CopyAtomOf(Operand.V, CopyDirection.RegistersToShared) == CopyAtomKind.Stmatrix;
            var why = !warpgroup ? "only the wgmma form runs a persistent grid; the mma.sync kernel launches a block a tile"
                : spec.Pingpong ? "pingpong's turns do not carry from one tile to the next: drop Pingpong or Persistent"
                : recipeD ? "the persistent grid's producer issues copies only; V transposed in the kernel (Recipe D) keeps its warps busy: use V transposed by its quantize kernel (Recipe C)"
                : spec.MinBlocksPerSm != 1 ? "the persistent grid holds one block an SM: use MinBlocksPerSm = 1"
                : null;
            if (why is not null)
            {
                Bad(nameof(spec.Persistent), true, why);
            }
        }
        if (spec.MinBlocksPerSm < 1 || spec.MinBlocksPerSm * spec.Warps * 32 > 2048)
        {
            Bad(nameof(spec.MinBlocksPerSm), spec.MinBlocksPerSm, $"use 1 or more blocks per SM, at most 2048 threads in all ({spec.Warps * 32} a block)");
        }
        if (spec.BlockN < 32 || spec.BlockN > 256)
        {
            Bad(nameof(spec.BlockN), spec.BlockN, "use 32 to 256 keys per step");
        }
        if (spec.Output is not (Element.F16 or Element.BF16))
        {
            Bad(nameof(spec.Output), spec.Output, "the output is F16 or BF16");
        }
    }

    /// <summary>Why the wgmma form refuses a head dim: the TMA/wgmma swizzle widths, and at 256 the P·V wgmma's N and the consumers' registers.</summary>
    private static string WarpgroupHeadDimReason(int headDim) => headDim switch
    {
        96 => "the wgmma kernel supports head dims 64 and 128: Q and K rows of 96 bytes have no TMA/wgmma swizzle (those are 32, 64 and 128 bytes wide), " +
              "and O = 64×96 per consumer warpgroup has no P·V wgmma (N = 64 or 128); use the mma.sync form for head dim 96",
        256 => "the wgmma kernel supports head dims 64 and 128: Q and K rows of 256 bytes are wider than the 128-byte swizzle TMA writes and wgmma reads " +
               "(one row would need two boxes and two descriptors per k step), O = 64×256 per consumer warpgroup needs an N = 256 P·V wgmma, " +
               "whose 128 f32 accumulators a thread plus S's 64 take 192 of the consumers' 240-register setmaxnreg budget before P, softmax state and addresses; " +
               "use the mma.sync form for head dim 256",
        _ => "the wgmma kernel supports head dims 64 and 128 (Q and K rows must fit one 128-byte swizzle atom)",
    };

    private static void CheckAtoms(List<Finding> findings, AttentionSpec spec)
    {
        if (spec.Mma is null)
        {
            findings.Add(Finding.Of(Rules.MissingAtom, FindingTarget.Family, spec.Type.Name, "[MmaAtom] for Q·Kᵀ"));
        }
        else if (spec.Mma != MmaAtomKind.M16N8K32_S32S8S8)
        {
            findings.Add(Finding.Of(Rules.AtomNotForFamily, FindingTarget.Mma, spec.Mma, "Q·Kᵀ", "Q and K are int8: use M16N8K32_S32S8S8"));
        }
        if (spec.PvMma is null)
        {
            findings.Add(Finding.Of(Rules.MissingAtom, FindingTarget.Family, spec.Type.Name, "[MmaAtom(..., Product = MmaProduct.PV)] for P·V"));
        }
        else if (spec.PvMma is not (MmaAtomKind.M16N8K32_S32U8S8 or MmaAtomKind.M16N8K32_S32S8S8 or MmaAtomKind.M16N8K16_F32F16F16 or MmaAtomKind.M16N8K16_F32BF16BF16))
        {
            findings.Add(Finding.Of(Rules.AtomNotForFamily, FindingTarget.PvMma, spec.PvMma, "P·V", "P·V runs u8·s8 or s8·s8 into int32, or f16/bf16 into f32"));
        }
        foreach (var operand in Operands)
        {
            if (spec.CopyAtomOf(operand, CopyDirection.SharedToRegisters) is null)
            {
                findings.Add(Finding.Of(Rules.MissingAtom, FindingTarget.Family, spec.Type.Name, $"shared → register [CopyAtom] for operand {operand}"));
            }
        }
        for (var i = 0; i < spec.CopyAtoms.Count; i++)
        {
            var declared = spec.CopyAtoms[i];
            var target = new FindingTarget(TargetKind.CopyAtom, i);
            if (CopyAtom.Get(declared.Atom).Direction == CopyDirection.RegistersToShared)
            {
                findings.Add(Finding.Of(Rules.AtomNotForFamily, target, declared.Atom, "this mma.sync kernel", "it writes no operand back to shared memory (stmatrix belongs to the wgmma path)"));
            }
            else if (declared.Atom == CopyAtomKind.Tma)
            {
                findings.Add(Finding.Of(Rules.AtomNotForFamily, target, declared.Atom, "this mma.sync kernel", "its warps stream K and V through cp.async; TMA feeds the wgmma form (declare wgmma MMA atoms)"));
            }
            else if (declared.Atom == CopyAtomKind.LdgSts16)
            {
                findings.Add(Finding.Of(Rules.AtomNotForFamily, target, declared.Atom, "attention", "K and V stream through a cp.async pipeline: use CpAsync16"));
            }
            else if (declared.Atom == CopyAtomKind.LdsmPretransposed && (declared.Operand != Operand.V || spec.PvMma is MmaAtomKind.M16N8K16_F32F16F16 or MmaAtomKind.M16N8K16_F32BF16BF16))
            {
                findings.Add(Finding.Of(Rules.AtomNotForFamily, target, declared.Atom, $"operand {declared.Operand}", "only int8 V is transposed beforehand (by its quantize kernel)"));
            }
        }
    }

    private static readonly MmaAtomKind[] WarpgroupQk = [MmaAtomKind.Wgmma_M64N128K32_S32S8S8, MmaAtomKind.Wgmma_M64N64K32_S32S8S8];
    private static readonly MmaAtomKind[] WarpgroupPv = [MmaAtomKind.Wgmma_M64N128K32_S32U8S8_RS, MmaAtomKind.Wgmma_M64N64K32_S32U8S8_RS,
        MmaAtomKind.Wgmma_M64N128K32_F32E4M3E4M3_RS, MmaAtomKind.Wgmma_M64N64K32_F32E4M3E4M3_RS];

    /// <summary>The Hopper form's atoms: wgmma for both products, TMA for every operand, V transposed by its quantize kernel (Recipe C) or in the kernel (Recipe D).</summary>
    private static void CheckWarpgroupAtoms(List<Finding> findings, AttentionSpec spec)
    {
        if (!WarpgroupQk.Contains(spec.Mma!.Value))
        {
            findings.Add(Finding.Of(Rules.AtomNotForFamily, FindingTarget.Mma, spec.Mma, "Q·Kᵀ", "the wgmma kernel reads int8 Q and K from shared memory: use Wgmma_M64N128K32_S32S8S8 (or its N = 64 form)"));
        }
        if (spec.PvMma is null)
        {
            findings.Add(Finding.Of(Rules.MissingAtom, FindingTarget.Family, spec.Type.Name, "[MmaAtom(..., Product = MmaProduct.PV)] for P·V"));
        }
        else if (!WarpgroupPv.Contains(spec.PvMma.Value))
        {
            findings.Add(Finding.Of(Rules.AtomNotForFamily, FindingTarget.PvMma, spec.PvMma, "P·V of the wgmma kernel",
                "P leaves the wgmma accumulators in registers as u8 or e4m3: use Wgmma_M64N128K32_S32U8S8_RS (D = 128) or Wgmma_M64N64K32_S32U8S8_RS (D = 64), " +
                "or their fp8 forms Wgmma_M64N128K32_F32E4M3E4M3_RS / Wgmma_M64N64K32_F32E4M3E4M3_RS"));
        }
        // Q quantized in the kernel is read by the consumer warps with plain loads; a Q TMA atom a Like declaration brings is unused.
        foreach (var operand in spec.QInput == Element.S8 ? Operands : [Operand.K, Operand.V])
        {
            if (spec.CopyAtomOf(operand, CopyDirection.GlobalToShared) != CopyAtomKind.Tma)
            {
                findings.Add(Finding.Of(Rules.MissingAtom, FindingTarget.Family, spec.Type.Name, $"[CopyAtom(Operand.{operand}, CopyAtoms.Tma)]: the producer warpgroup loads every tile by TMA"));
            }
        }
        // wgmma reads 8-bit B only K-major: V arrives transposed by its quantize kernel (Recipe C), or the producer
        // transposes it in shared memory with ldmatrix.trans + prmt + stmatrix (Recipe D).
        var vLoad = spec.CopyAtomOf(Operand.V, CopyDirection.SharedToRegisters);
        var vStore = spec.CopyAtomOf(Operand.V, CopyDirection.RegistersToShared);
        var recipeC = vLoad == CopyAtomKind.LdsmPretransposed && vStore is null;
        var recipeD = vLoad == CopyAtomKind.LdsmTransPrmt && vStore == CopyAtomKind.Stmatrix;
        if (!recipeC && !recipeD)
        {
            findings.Add(Finding.Of(Rules.MissingAtom, FindingTarget.Family, spec.Type.Name,
                "V strategy the wgmma P·V can read: [CopyAtom(Operand.V, CopyAtoms.LdsmPretransposed)] (Recipe C: V transposed by its quantize kernel) or " +
                "[CopyAtom(Operand.V, CopyAtoms.LdsmTransPrmt)] with [CopyAtom(Operand.V, CopyAtoms.Stmatrix)] (Recipe D: transposed in the kernel)"));
        }
        for (var i = 0; i < spec.CopyAtoms.Count; i++)
        {
            var declared = spec.CopyAtoms[i];
            var target = new FindingTarget(TargetKind.CopyAtom, i);
            if (declared.Atom == CopyAtomKind.Tma || (declared.Operand == Operand.V && declared.Atom is CopyAtomKind.LdsmPretransposed or CopyAtomKind.LdsmTransPrmt or CopyAtomKind.Stmatrix))
            {
                continue;
            }
            findings.Add(Finding.Of(Rules.AtomNotForFamily, target, declared.Atom, $"operand {declared.Operand} of the wgmma kernel",
                "wgmma reads Q, K and the transposed V from shared memory through descriptors; TMA fills them (and only V may be transposed in the kernel)"));
        }
    }

    /// <summary>The Hopper form's tiles, layouts and the π agreement of P and V (a build-time proof: P's order is fixed by the atoms, V's by the recipe).</summary>
    /// <summary>An sm_90 SM's shared memory, and what the hardware keeps of it for each resident block (CUDA's occupancy rules).</summary>
    private const int SharedMemoryPerSm = 228 * 1024, ReservedSharedMemoryPerBlock = 1024;

    private static ImmutableArray<Finding> ValidateWarpgroup(List<Finding> findings, AttentionPlan plan, bool adviseAtoms)
    {
        var spec = plan.Spec;
        void Tile(string message) => findings.Add(Finding.Of(Rules.TileNotDivisible, FindingTarget.Family, message));
        if (spec.BlockM != 64 * plan.ConsumerWarpgroups)
        {
            Tile($"BlockM = {spec.BlockM} must be 64 × consumer warpgroups ({64 * plan.ConsumerWarpgroups}): each owns the 64 rows of one wgmma");
        }
        if (spec.BlockN != plan.Qk.N)
        {
            Tile($"BlockN = {spec.BlockN} must equal the Q·Kᵀ wgmma's N ({plan.Qk.N}): one wgmma row of S per block");
        }
        if (spec.HeadDim != plan.Pv.N)
        {
            Tile($"HeadDim = {spec.HeadDim} must equal the P·V wgmma's N ({plan.Pv.N}): one wgmma row of O per warpgroup");
        }
        if (spec.Stages < 2)
        {
            findings.Add(Finding.Of(Rules.InvalidParameter, FindingTarget.Family, "FlashAttentionForward.Stages", spec.Stages, "the producer runs ahead of the consumers: use 2 or more stages"));
        }
        // BlockN is a wgmma N (≤ 128 here), so one block's u8 P·V, 255·127·BlockN, stays inside the float-bias range.
        CheckElements(findings, plan);
        if (HasErrors(findings))
        {
            return findings.ToImmutableArray();
        }
        CheckTmaLayout(findings, spec, Operand.Q, spec.HeadDim, "TMA");
        CheckTmaLayout(findings, spec, Operand.K, spec.HeadDim, "TMA");
        CheckTmaLayout(findings, spec, Operand.V, plan.VRowBytes, plan.InKernelTransposedV ? "the producer's stmatrix" : "TMA");
        DeclarationRules.CheckSharedMemory(findings, spec, plan.SharedMemoryBytes,
            $"{AttentionPlan.TmaAlignment} alignment + Q {plan.QStageBytes} bytes + {Wording.Count(spec.Stages, "stage")} × (K {plan.KStageBytes} + V {plan.VStageBytes}" +
            (plan.InKernelTransposedV ? $" + staged V {plan.VStagingBytes}" : "") + $" bytes) + {plan.Barriers} mbarriers");
        if (spec.MinBlocksPerSm > 1 && spec.MinBlocksPerSm * (plan.SharedMemoryBytes + ReservedSharedMemoryPerBlock) > SharedMemoryPerSm)
        {
            findings.Add(Finding.Of(Rules.InvalidParameter, FindingTarget.Family, "FlashAttentionForward.MinBlocksPerSm", spec.MinBlocksPerSm,
                $"{spec.MinBlocksPerSm} blocks of {plan.SharedMemoryBytes} bytes (+ {ReservedSharedMemoryPerBlock} the hardware reserves for each) exceed an sm_90 SM's {SharedMemoryPerSm} bytes of shared memory: use fewer stages or 1 block"));
        }
        if (!HasErrors(findings))
        {
            var p = plan.ComposeP();
            var mismatch = !p.Succeeded ? -1 : Enumerable.Range(0, plan.PvWarp.K).Where(slot => p.KOrder[slot] != FragmentComposition.Token(plan.VStoredOrder, slot)).DefaultIfEmpty(-1).First();
            if (!p.Succeeded || mismatch >= 0)
            {
                findings.Add(Finding.Of(Rules.FragmentMismatch, FindingTarget.PvMma, spec.PvMma!, Operand.V, plan.Pv.Ptx, Advice(spec, Operand.V, adviseAtoms),
                    p.Succeeded ? $"k slot {mismatch} of P holds key {p.KOrder[mismatch]}, but V's transposed tile stores key {FragmentComposition.Token(plan.VStoredOrder, mismatch)} there" : string.Join(" ", p.Errors)));
            }
        }
        return findings.ToImmutableArray();
    }

    /// <summary>
    /// TMA writes a box with the swizzle its row length allows and wgmma reads it back with the same mode, so the declared
    /// layout must be that swizzle (TmaSwizzle). Row lengths are a head dim or a wgmma N here, so one always exists.
    /// </summary>
    private static void CheckTmaLayout(List<Finding> findings, AttentionSpec spec, Operand operand, int rowBytes, string writer)
    {
        var index = LayoutRules.IndexOf(spec, operand);
        var declared = spec.SmemLayouts[index].Swizzle;
        var wanted = TmaSwizzle.ForRowBytes(rowBytes)!;
        if (declared != wanted)
        {
            findings.Add(Finding.Of(Rules.TmaSwizzle, new FindingTarget(TargetKind.SmemLayout, index), operand, writer, rowBytes, declared, $"use {wanted}, the {rowBytes}-byte swizzle wgmma reads"));
        }
    }

    private static void CheckTiles(List<Finding> findings, AttentionPlan plan)
    {
        var spec = plan.Spec;
        void Tile(string message) => findings.Add(Finding.Of(Rules.TileNotDivisible, FindingTarget.Family, message));
        if (spec.BlockM != 16 * spec.Warps)
        {
            Tile($"BlockM = {spec.BlockM} must be 16 × Warps ({16 * spec.Warps}): each warp owns 16 query rows of the m16 MMA");
        }
        if (spec.BlockN % plan.Pv.K != 0 || spec.BlockN % 16 != 0)
        {
            Tile($"BlockN = {spec.BlockN} must be a multiple of the P·V MMA's k ({plan.Pv.K}) and of 16 (one K copy covers 16 keys)");
        }
        foreach (var (name, bytes) in new[] { ("Q", plan.QStageBytes), ("K", plan.KStageBytes), ("V", plan.VStageBytes) })
        {
            if (bytes / AttentionPlan.ChunkBytes % plan.Threads != 0)
            {
                Tile($"the {name} tile ({bytes} bytes) does not split into 16-byte chunks evenly over {plan.Threads} threads");
            }
        }
    }

    private static void CheckElements(List<Finding> findings, AttentionPlan plan)
    {
        foreach (var (operand, element, reader) in new[] { (Operand.Q, Element.S8, plan.Qk.Ptx), (Operand.K, Element.S8, plan.Qk.Ptx), (Operand.V, plan.VElement, plan.Pv.Ptx) })
        {
            var index = LayoutRules.IndexOf(plan.Spec, operand);
            if (plan.Spec.SmemLayouts[index].Element != element)
            {
                findings.Add(Finding.Of(Rules.LayoutElement, new FindingTarget(TargetKind.SmemLayout, index), operand, plan.Spec.SmemLayouts[index].Element, reader, element));
            }
        }
    }

    /// <summary>KDSL0501's advice for <paramref name="operand"/>: the catalog's atoms that would deliver its fragment (empty when not asked for).</summary>
    private static string Advice(AttentionSpec spec, Operand operand, bool adviseAtoms) => adviseAtoms
        ? DeclarationRules.Advice(DeclarationRules.AtomsThatDeliver(spec, operand, s => Validate((AttentionSpec)s, adviseAtoms: false)))
        : "";

    private static void CheckComposition(List<Finding> findings, AttentionPlan plan, bool adviseAtoms)
    {
        var spec = plan.Spec;
        void Mismatch(Operand operand, string consumer, string why) =>
            findings.Add(Finding.Of(Rules.FragmentMismatch, DeclarationRules.LoaderOf(spec, operand), spec.CopyAtomOf(operand, CopyDirection.SharedToRegisters)!, operand, consumer,
                Advice(spec, operand, adviseAtoms), why));

        if (plan.QProgram is null || plan.KProgram is null || plan.VProgram is null)
        {
            var operand = plan.QProgram is null ? Operand.Q : plan.KProgram is null ? Operand.K : Operand.V;
            Mismatch(operand, operand == Operand.V ? plan.Pv.Ptx : plan.Qk.Ptx, "it cannot read that operand's shared-memory layout");
            return;
        }
        var q = plan.ComposeQ();
        if (!q.Succeeded)
        {
            Mismatch(Operand.Q, plan.Qk.Ptx, string.Join(" ", q.Errors));
            return;
        }
        var k = plan.ComposeK(q);
        if (!k.Succeeded)
        {
            Mismatch(Operand.K, plan.Qk.Ptx, string.Join(" ", k.Errors));
            return;
        }
        // P is packed by S tile, so S tile j must hold keys 8j..8j+7 in order.
        if (k.Channels!.TileOffsets[0] != 0 || k.Channels.TileOffsets[1] != plan.Qk.N || k.Channels.PairStride != 2 || k.Channels.OddStride != 1)
        {
            Mismatch(Operand.K, plan.Qk.Ptx, "its S accumulator columns are not keys in order, which P's packing needs");
            return;
        }
        var p = plan.ComposeP();
        var v = plan.ComposeV(p);
        if (!v.Succeeded)
        {
            Mismatch(Operand.V, plan.Pv.Ptx, $"P leaves the S accumulators in {plan.POrder} key order; " + string.Join(" ", v.Errors));
        }
    }
}
