using System.Collections.Generic;
using System.Linq;
using KernelDsl.Generator.Helpers;
using KernelDsl.Generator.Model;

namespace KernelDsl.Generator.Atoms;

/// <summary>One byte of an operand: the matrix element (row, col) it belongs to and which byte of it.</summary>
public readonly record struct ByteLabel(int Row, int Col, int Byte)
{
    public override string ToString() => $"({Row},{Col})" + (Byte == 0 ? "" : $".byte{Byte}");
}

/// <summary>
/// Where the accumulator columns of each MMA tile land in the n dimension of the copied chunk:
/// column c of tile j is n = TileOffsets[j] + PairStride·(c >> 1) + OddStride·(c &amp; 1). In the epilogue
/// c = 2t + i, so lane (g, t) writes n = TileOffsets[j] + PairStride·t + OddStride·i.
/// </summary>
public sealed record ChannelMap(EquatableArray<int> TileOffsets, int PairStride, int OddStride)
{
    public int ChannelOf(int tile, int column) => TileOffsets[tile] + PairStride * (column >> 1) + OddStride * (column & 1);
}

/// <summary>The outcome of composing a copy program with an MMA operand: errors, or what the pair means.</summary>
public sealed record Composition(EquatableArray<string> Errors, EquatableArray<int> KOrder, ChannelMap? Channels)
{
    public bool Succeeded => Errors.IsEmpty;
}

/// <summary>
/// Checks that the fragment a copy program delivers is exactly the fragment an MMA atom consumes, every element
/// once: A's rows must match, B's k slots must hold the tokens A's slots hold, and each B column one channel.
/// </summary>
public static class FragmentComposition
{
    private const int MaxErrors = 4;

    /// <summary>Tokens 0..15 in the order P leaves the S accumulators (docs/V_TRANSPOSE.md), as stored positions.</summary>
    public static readonly int[] PiGroup = [0, 1, 8, 9, 2, 3, 10, 11, 4, 5, 12, 13, 6, 7, 14, 15];

    public static int Token(TokenOrder order, int position) =>
        order == TokenOrder.Natural ? position : (position & ~15) + PiGroup[position & 15];

    /// <summary>The tokens that positions 0..15 of a transposed row hold in <paramref name="order"/> (a group repeats every 16).</summary>
    public static IReadOnlyList<int> GroupOrder(TokenOrder order) => Enumerable.Range(0, PiGroup.Length).Select(p => Token(order, p)).ToArray();

    /// <summary>The label of stored byte (row, byteColumn) in logical terms: A as (m, k), B as (k, n).</summary>
    public static ByteLabel Label(OperandStorage storage, Element element, TokenOrder storedOrder, int row, int byteColumn)
    {
        var size = element.SizeInBytes();
        int col = byteColumn / size, b = byteColumn % size;
        return storage switch
        {
            OperandStorage.MK => new ByteLabel(row, Token(storedOrder, col), b),
            OperandStorage.NK => new ByteLabel(Token(storedOrder, col), row, b),
            _ => new ByteLabel(Token(storedOrder, row), col, b),
        };
    }

    /// <summary>Composes an A program; on success <see cref="Composition.KOrder"/>[slot] is the k each MMA k slot holds.</summary>
    public static Composition ComposeA(MmaAtom mma, LdmatrixProgram program, TokenOrder storedOrder = TokenOrder.Natural)
    {
        var delivered = FragmentSimulator.Run(program, (r, c) => Label(OperandStorage.MK, mma.AElement, storedOrder, r, c));
        if (delivered.Length != 1 || delivered[0][0].Length != mma.ARegisters)
        {
            return Fail($"{program.Name} delivers {Wording.Count(delivered.Length, "fragment")} of {Wording.Count(delivered[0][0].Length, "register")}; {mma.Ptx} takes one A fragment of {mma.ARegisters}.");
        }
        return ComposeA(mma, delivered[0]);
    }

    /// <summary>
    /// Where the P·V MMA's A register <c>reg</c>, element <c>e</c> comes from when P is packed straight out of the
    /// Q·Kᵀ accumulators, as in FlashAttention: (S tile within the k step, accumulator register). The emitter packs
    /// with this table, and <see cref="ComposeAFromAccumulators"/> checks it.
    /// </summary>
    public static (int Tile, int Accumulator) PackingOf(MmaAtom pv, int reg, int element)
    {
        var perReg = 4 / pv.AElement.SizeInBytes();
        // 8-bit: a_r = [S(2(r>>1)).c(2(r&1)), .c(2(r&1)+1), S(2(r>>1)+1).c.., ..]; 16-bit: a_r = [S(r>>1).c(2(r&1)), .c(2(r&1)+1)].
        return perReg == 4
            ? (2 * (reg >> 1) + (element >> 1), 2 * (reg & 1) + (element & 1))
            : (reg >> 1, 2 * (reg & 1) + element);
    }

    /// <summary>Composes P packed from the Q·Kᵀ accumulators (<see cref="PackingOf"/>) as the P·V MMA's A; KOrder says which key each k slot holds.</summary>
    public static Composition ComposeAFromAccumulators(MmaAtom qk, MmaAtom pv)
    {
        var size = pv.AElement.SizeInBytes();
        var delivered = new ByteLabel[32][][];
        for (var lane = 0; lane < 32; lane++)
        {
            delivered[lane] = new ByteLabel[pv.ARegisters][];
            for (var reg = 0; reg < pv.ARegisters; reg++)
            {
                delivered[lane][reg] = new ByteLabel[4];
                for (var b = 0; b < 4; b++)
                {
                    var (tile, accumulator) = PackingOf(pv, reg, b / size);
                    var c = qk.C(lane, accumulator);
                    delivered[lane][reg][b] = new ByteLabel(c.Row, tile * qk.N + c.Col, b % size);
                }
            }
        }
        return ComposeA(pv, delivered);
    }

    private static Composition ComposeA(MmaAtom mma, ByteLabel[][][] delivered)
    {
        var errors = new List<string>();
        var size = mma.AElement.SizeInBytes();
        var kOrder = Enumerable.Repeat(-1, mma.K).ToArray();
        for (var lane = 0; lane < 32; lane++)
        {
            for (var reg = 0; reg < mma.ARegisters; reg++)
            {
                for (var b = 0; b < 4; b++)
                {
                    var want = mma.A(lane, reg, b);
                    var got = delivered[lane][reg][b];
                    if (got.Row != want.Row || got.Byte != b % size)
                    {
                        Add(errors, $"lane {lane} a{reg} byte {b} holds A{got} but {mma.Ptx} wants row {want.Row}" + (size > 1 ? $" byte {b % size}" : "") + ".");
                    }
                    else if (kOrder[want.Col] < 0)
                    {
                        kOrder[want.Col] = got.Col;
                    }
                    else if (kOrder[want.Col] != got.Col)
                    {
                        Add(errors, $"k slot {want.Col} holds k={kOrder[want.Col]} in one lane but k={got.Col} in lane {lane}: no single k order.");
                    }
                }
            }
        }
        CheckPermutation(errors, kOrder, "A's k slots");
        return new Composition(errors.ToEquatableArray(), kOrder.ToEquatableArray(), null);
    }

    /// <summary>
    /// Composes a B program with the MMA's B operand, given the k order the A operand delivers.
    /// On success <see cref="Composition.Channels"/> says where each accumulator column lands.
    /// </summary>
    public static Composition ComposeB(MmaAtom mma, LdmatrixProgram program, OperandStorage storage, TokenOrder storedOrder, EquatableArray<int> aKOrder)
    {
        var errors = new List<string>();
        var delivered = FragmentSimulator.Run(program, (r, c) => Label(storage, mma.BElement, storedOrder, r, c));
        var size = mma.BElement.SizeInBytes();
        var tiles = delivered.Length;
        var channel = new int[tiles, mma.N];
        for (var j = 0; j < tiles; j++)
        {
            for (var g = 0; g < mma.N; g++)
            {
                channel[j, g] = -1;
            }
        }
        var seen = new HashSet<(int K, int N, int B)>();
        for (var j = 0; j < tiles; j++)
        {
            if (delivered[j][0].Length != mma.BRegisters)
            {
                return Fail($"{program.Name} tile {j} has {Wording.Count(delivered[j][0].Length, "register")}; {mma.Ptx} takes {mma.BRegisters} for B.");
            }
            for (var lane = 0; lane < 32; lane++)
            {
                for (var reg = 0; reg < mma.BRegisters; reg++)
                {
                    for (var b = 0; b < 4; b++)
                    {
                        var want = mma.B(lane, reg, b);
                        var got = delivered[j][lane][reg][b];
                        if (!seen.Add((got.Row, got.Col, got.Byte)))
                        {
                            Add(errors, $"B{got} arrives twice (again in tile {j}, lane {lane} b{reg} byte {b}).");
                        }
                        if (got.Row != aKOrder[want.Row] || got.Byte != b % size)
                        {
                            Add(errors, $"tile {j} lane {lane} b{reg} byte {b} holds B(k={got.Row}, n={got.Col}{(got.Byte == 0 ? "" : $", byte {got.Byte}")}) but k slot {want.Row} must hold k={aKOrder[want.Row]}{(size > 1 ? $" byte {b % size}" : "")} to meet A.");
                        }
                        else if (channel[j, want.Col] < 0)
                        {
                            channel[j, want.Col] = got.Col;
                        }
                        else if (channel[j, want.Col] != got.Col)
                        {
                            Add(errors, $"tile {j} column {want.Col} mixes channels {channel[j, want.Col]} and {got.Col}.");
                        }
                    }
                }
            }
        }
        if (errors.Count > 0)
        {
            return new Composition(errors.ToEquatableArray(), aKOrder, null);
        }

        var offsets = Enumerable.Range(0, tiles).Select(j => channel[j, 0]).ToArray();
        int pair = channel[0, 2] - channel[0, 0], odd = channel[0, 1] - channel[0, 0];
        var map = new ChannelMap(offsets.ToEquatableArray(), pair, odd);
        for (var j = 0; j < tiles; j++)
        {
            for (var c = 0; c < mma.N; c++)
            {
                if (map.ChannelOf(j, c) != channel[j, c])
                {
                    Add(errors, $"tile {j} column {c} lands on channel {channel[j, c]}, which the epilogue's affine channel map cannot express.");
                }
            }
        }
        return new Composition(errors.ToEquatableArray(), aKOrder, errors.Count == 0 ? map : null);
    }

    private static void CheckPermutation(List<string> errors, int[] order, string what)
    {
        var sorted = order.OrderBy(x => x).ToArray();
        for (var i = 0; i < sorted.Length; i++)
        {
            if (sorted[i] != i)
            {
                Add(errors, $"{what} do not cover k = 0..{order.Length - 1} once each.");
                return;
            }
        }
    }

    private static void Add(List<string> errors, string error)
    {
        if (errors.Count < MaxErrors)
        {
            errors.Add(error);
        }
    }

    private static Composition Fail(string error) => new(new[] { error }.ToEquatableArray(), EquatableArray<int>.Empty, null);
}
