using System;
using System.Collections.Generic;
using System.Linq;
using KernelDsl.Generator.Helpers;
using KernelDsl.Generator.Model;

namespace KernelDsl.Generator.Atoms;

/// <summary>How an operand tile is stored in shared memory.</summary>
public enum OperandStorage
{
    /// <summary>A: rows m, bytes k.</summary>
    MK,
    /// <summary>B stored k-major: rows n, bytes k (TN, K for Q·Kᵀ, pre-transposed V).</summary>
    NK,
    /// <summary>B stored n-major: rows k, bytes n (NN, V as it comes).</summary>
    KN,
}

/// <summary>
/// A copy atom as data (CuTe's Copy_Traits): which way it moves data, the lowest SM and PTX ISA that have
/// its instructions, and, for shared → register atoms, the program that defines its lane → element map.
/// </summary>
public sealed class CopyAtom
{
    private readonly Func<OperandStorage, TokenOrder, int, LdmatrixProgram?> _program;

    private CopyAtom(CopyAtomKind kind, CopyDirection direction, int minSm, int minPtxIsa, string instructions,
        Func<OperandStorage, TokenOrder, int, LdmatrixProgram?> program, string? prerequisite = null)
    {
        Kind = kind;
        Direction = direction;
        MinSm = minSm;
        MinPtxIsa = minPtxIsa;
        Instructions = instructions;
        Prerequisite = prerequisite;
        _program = program;
    }

    public CopyAtomKind Kind { get; }
    public CopyDirection Direction { get; }
    public int MinSm { get; }
    /// <summary>PTX ISA ×10.</summary>
    public int MinPtxIsa { get; }
    /// <summary>The PTX instructions it issues, for messages and docs.</summary>
    public string Instructions { get; }
    /// <summary>What choosing it asks of the data besides the atom itself, for messages that suggest it; null when nothing.</summary>
    public string? Prerequisite { get; }

    /// <summary>
    /// The program that loads an operand stored as <paramref name="storage"/> so that the k slots of the MMA
    /// hold tokens in <paramref name="order"/>; null when the atom cannot read that storage at all.
    /// Whether the program really delivers the fragment is not assumed: validation simulates it.
    /// </summary>
    public LdmatrixProgram? ProgramFor(OperandStorage storage, TokenOrder order, int elementBytes = 1) => _program(storage, order, elementBytes);

    public static CopyAtom Get(CopyAtomKind kind) => kind switch
    {
        CopyAtomKind.CpAsync16 => CpAsync16,
        CopyAtomKind.LdgSts16 => LdgSts16,
        CopyAtomKind.Ldsm => Ldsm,
        CopyAtomKind.LdsmTrans => LdsmTrans,
        CopyAtomKind.LdsmTransPrmt => LdsmTransPrmt,
        CopyAtomKind.LdsmPrmtMovmatrix => LdsmPrmtMovmatrix,
        CopyAtomKind.LdsmPretransposed => LdsmPretransposed,
        CopyAtomKind.Stmatrix => Stmatrix,
        CopyAtomKind.Tma => Tma,
        _ => throw new ArgumentOutOfRangeException(nameof(kind)),
    };

    private static EquatableArray<LaneBit> Bits(params (int Row, int Chunk)[] bits) =>
        bits.Select(b => new LaneBit(b.Row, b.Chunk)).ToEquatableArray();

    private static EquatableArray<EquatableArray<int>> Tiles(params int[][] tiles) =>
        tiles.Select(t => t.ToEquatableArray()).ToEquatableArray();

    private static EquatableArray<RegisterOp> Ops(params RegisterOp[] ops) => ops.ToEquatableArray();

    // A, rows m × k bytes: matrices (rows 0-7, k 0-15), (rows 8-15, k 0-15), (rows 0-7, k 16-31), (rows 8-15, k 16-31) = a0..a3.
    private static readonly LdmatrixProgram LdsmA = new("ldsm_a", false, 16, 2,
        Bits((1, 0), (2, 0), (4, 0), (8, 0), (0, 1)), Ops(), Tiles([0, 1, 2, 3]));

    // B stored n × k: matrices (n 0-7, k 0-15), (n 0-7, k 16-31) = b0, b1 of the first n8 tile; then n 8-15.
    private static readonly LdmatrixProgram LdsmB = new("ldsm_b", false, 16, 2,
        Bits((1, 0), (2, 0), (4, 0), (0, 1), (8, 0)), Ops(), Tiles([0, 1], [2, 3]));

    // 16-bit k × n (f16 V): ldmatrix.trans is the right tool; matrices (k 0-7, n 0-7), (k 8-15, n 0-7), then n 8-15.
    private static readonly LdmatrixProgram LdsmTrans16 = new("ldsm_trans_16", true, 16, 2,
        Bits((1, 0), (2, 0), (4, 0), (8, 0), (0, 1)), Ops(), Tiles([0, 1], [2, 3]));

    // The naive try on int8 k × n: ldmatrix.trans moves 16-bit pairs, so each register holds two channels.
    private static readonly LdmatrixProgram LdsmTransNaive = new("ldsm_trans", true, 32, 1,
        Bits((1, 0), (2, 0), (4, 0), (8, 0), (16, 0)), Ops(), Tiles([0, 1], [2, 3]));

    // Recipe A. Matrix q's row r is token 16(q>>1) + 2(q&1) + 4(r>>1) + (r&1) for natural k order, or 8q + r
    // for the π order the S accumulators give P in. prmt 0x6420 keeps the even channel of each pair, 0x7531 the odd.
    private static LdmatrixProgram TransPrmt(TokenOrder order) => new(
        order == TokenOrder.Natural ? "ldsm_trans_prmt" : "ldsm_trans_prmt_pi", true, 32, 1,
        order == TokenOrder.Natural
            ? Bits((1, 0), (4, 0), (8, 0), (2, 0), (16, 0))
            : Bits((1, 0), (2, 0), (4, 0), (8, 0), (16, 0)),
        Ops(new Prmt(4, 0, 1, 0x6420), new Prmt(5, 2, 3, 0x6420), new Prmt(6, 0, 1, 0x7531), new Prmt(7, 2, 3, 0x7531)),
        Tiles([4, 5], [6, 7]));

    // Recipe B. Matrices 0/1 hold even/odd tokens; prmt 0x5140 / 0x7362 pair a token pair's bytes per channel,
    // movmatrix transposes those 16-bit pairs. Natural rows: 16(q>>1) + 2r + (q&1); π rows: 16(q>>1) + (q&1) + [0,8,2,10,4,12,6,14][r].
    private static LdmatrixProgram PrmtMovmatrix(TokenOrder order) => new(
        order == TokenOrder.Natural ? "ldsm_prmt_movm" : "ldsm_prmt_movm_pi", false, 32, 1,
        order == TokenOrder.Natural
            ? Bits((2, 0), (4, 0), (8, 0), (1, 0), (16, 0))
            : Bits((8, 0), (2, 0), (4, 0), (1, 0), (16, 0)),
        Ops(new Prmt(4, 0, 1, 0x5140), new Prmt(5, 0, 1, 0x7362), new Prmt(6, 2, 3, 0x5140), new Prmt(7, 2, 3, 0x7362),
            new Movmatrix(8, 4), new Movmatrix(9, 6), new Movmatrix(10, 5), new Movmatrix(11, 7)),
        Tiles([8, 9], [10, 11]));

    private static readonly CopyAtom CpAsync16 = new(CopyAtomKind.CpAsync16, CopyDirection.GlobalToShared, 80, 70,
        "cp.async.cg.shared.global 16", (_, _, _) => null);

    private static readonly CopyAtom LdgSts16 = new(CopyAtomKind.LdgSts16, CopyDirection.GlobalToShared, 0, 0,
        "ld.global.v4 + st.shared.v4", (_, _, _) => null);

    private static readonly CopyAtom Ldsm = new(CopyAtomKind.Ldsm, CopyDirection.SharedToRegisters, 75, 65,
        "ldmatrix.sync.aligned.m8n8.x4.shared.b16",
        (storage, order, _) => order != TokenOrder.Natural ? null : storage switch
        {
            OperandStorage.MK => LdsmA,
            OperandStorage.NK => LdsmB,
            _ => LdsmB,
        });

    private static readonly CopyAtom LdsmTrans = new(CopyAtomKind.LdsmTrans, CopyDirection.SharedToRegisters, 75, 65,
        "ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16",
        (storage, _, bytes) => storage == OperandStorage.MK ? null : bytes == 2 ? LdsmTrans16 : LdsmTransNaive);

    private static readonly CopyAtom LdsmTransPrmt = new(CopyAtomKind.LdsmTransPrmt, CopyDirection.SharedToRegisters, 75, 65,
        "ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 + prmt.b32",
        (storage, order, _) => storage == OperandStorage.MK ? null : TransPrmt(order));

    private static readonly CopyAtom LdsmPrmtMovmatrix = new(CopyAtomKind.LdsmPrmtMovmatrix, CopyDirection.SharedToRegisters, 75, 78,
        "ldmatrix.sync.aligned.m8n8.x4.shared.b16 + prmt.b32 + movmatrix.sync.aligned.m8n8.trans.b16",
        (storage, order, _) => storage == OperandStorage.MK ? null : PrmtMovmatrix(order));

    // Recipe C: the operand was rewritten n × k (tokens in the order asked) by a kernel beforehand, so a plain ldmatrix feeds the MMA.
    private static readonly CopyAtom LdsmPretransposed = new(CopyAtomKind.LdsmPretransposed, CopyDirection.SharedToRegisters, 75, 65,
        "ldmatrix.sync.aligned.m8n8.x4.shared.b16 (operand transposed beforehand)",
        (storage, _, _) => storage == OperandStorage.MK ? null : LdsmB,
        "the operand transposed beforehand by a kernel of its own");

    // TMA: one thread moves a whole box, swizzled in shared memory by the tensor map, completing on an mbarrier.
    private static readonly CopyAtom Tma = new(CopyAtomKind.Tma, CopyDirection.GlobalToShared, 90, 80,
        "cp.async.bulk.tensor + mbarrier complete_tx", (_, _, _) => null);

    private static readonly CopyAtom Stmatrix = new(CopyAtomKind.Stmatrix, CopyDirection.RegistersToShared, 90, 78,
        "stmatrix.sync.aligned.m8n8.x4.shared.b16", (_, _, _) => null);

    /// <summary>The catalog: every atom, in <see cref="CopyAtomKind"/> order (declared after the atoms: static initializers run in text order).</summary>
    public static IReadOnlyList<CopyAtom> All { get; } = Enum.GetValues(typeof(CopyAtomKind)).Cast<CopyAtomKind>().Select(Get).ToArray();
}
