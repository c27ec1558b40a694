using System;

namespace KernelDsl.Generator.Atoms;

/// <summary>
/// Runs an <see cref="LdmatrixProgram"/> for a whole warp on a shared-memory tile whose every byte is labelled
/// with the matrix element it holds. The instruction semantics are the PTX ISA's:
/// <list type="bullet">
/// <item>ldmatrix.x4: lanes 8q..8q+7 give the 8 row addresses of matrix q. Without .trans, register q of lane T
/// holds bytes 4(T&amp;3)..4(T&amp;3)+3 of row T>>2; with .trans, it holds 16-bit element T>>2 of rows 2(T&amp;3) and 2(T&amp;3)+1.</item>
/// <item>prmt.b32: result byte i is byte (selector nibble i &amp; 7) of b:a.</item>
/// <item>movmatrix.trans: the warp's 8×8 matrix of 16-bit elements (lane T holds row T>>2, elements 2(T&amp;3), 2(T&amp;3)+1) transposed.</item>
/// </list>
/// </summary>
public static class FragmentSimulator
{
    /// <summary>
    /// Returns, per MMA tile, per lane, per fragment register, per byte, the label of the byte delivered there.
    /// </summary>
    /// <param name="program">The copy program.</param>
    /// <param name="label">The label of stored byte (row, byte column) of the tile.</param>
    public static T[][][][] Run<T>(LdmatrixProgram program, Func<int, int, T> label)
    {
        var regs = Registers(program, label);
        var tiles = new T[program.Fragments.Count][][][];
        for (var tile = 0; tile < tiles.Length; tile++)
        {
            var fragment = program.Fragments[tile];
            tiles[tile] = new T[32][][];
            for (var lane = 0; lane < 32; lane++)
            {
                tiles[tile][lane] = new T[fragment.Count][];
                for (var r = 0; r < fragment.Count; r++)
                {
                    tiles[tile][lane][r] = regs[lane][fragment[r]] ?? throw new InvalidOperationException(
                        $"{program.Name}: fragment register {fragment[r]} is never written.");
                }
            }
        }
        return tiles;
    }

    /// <summary>
    /// Runs <paramref name="store"/> (stmatrix.x4, non-transposed: register q of lane T holds bytes 4(T&amp;3)..+3 of
    /// row T>>2 of matrix q, whose row r lane 8q + r addresses) on the warp's registers: per destination (row, byte
    /// column), the label written there, or default when nothing was. Two writes to one byte throw.
    /// </summary>
    public static T?[,] Store<T>(StmatrixProgram store, T[][][] registers, int rows, int rowBytes)
    {
        var tile = new T?[rows, rowBytes];
        var written = new bool[rows, rowBytes];
        for (var q = 0; q < 4; q++)
        {
            for (var lane = 0; lane < 32; lane++)
            {
                var address = 8 * q + (lane >> 2);
                var (row, column) = (store.RowOf(address), 16 * store.ChunkOf(address) + 4 * (lane & 3));
                for (var b = 0; b < 4; b++)
                {
                    if (written[row, column + b])
                    {
                        throw new InvalidOperationException($"{store.Name}: byte ({row}, {column + b}) is written twice.");
                    }
                    written[row, column + b] = true;
                    tile[row, column + b] = registers[lane][store.Sources[q]][b];
                }
            }
        }
        return tile;
    }

    /// <summary>Every register of every lane after the program's ldmatrix and register ops (null where never written).</summary>
    public static T[][][] Registers<T>(LdmatrixProgram program, Func<int, int, T> label)
    {
        var regs = new T[32][][];
        for (var lane = 0; lane < 32; lane++)
        {
            regs[lane] = new T[program.RegisterCount][];
        }

        for (var q = 0; q < 4; q++)
        {
            for (var lane = 0; lane < 32; lane++)
            {
                regs[lane][q] = new T[4];
                int g = lane >> 2, t = lane & 3;
                for (var b = 0; b < 4; b++)
                {
                    int matrixRow, byteInRow;
                    if (program.Transposed)
                    {
                        matrixRow = 2 * t + (b >> 1);
                        byteInRow = 2 * g + (b & 1);
                    }
                    else
                    {
                        matrixRow = g;
                        byteInRow = 4 * t + b;
                    }
                    var source = 8 * q + matrixRow;
                    regs[lane][q][b] = label(program.RowOf(source), 16 * program.ChunkOf(source) + byteInRow);
                }
            }
        }

        foreach (var op in program.Ops)
        {
            switch (op)
            {
                case Prmt p:
                    for (var lane = 0; lane < 32; lane++)
                    {
                        var result = new T[4];
                        for (var i = 0; i < 4; i++)
                        {
                            var pick = (p.Selector >> (4 * i)) & 7;
                            result[i] = pick < 4 ? regs[lane][p.A][pick] : regs[lane][p.B][pick - 4];
                        }
                        regs[lane][p.Destination] = result;
                    }
                    break;
                case Movmatrix m:
                    // Gather the 8×8 matrix of byte pairs, then hand out its transpose in the same layout.
                    var matrix = new T[8, 8][];
                    for (var lane = 0; lane < 32; lane++)
                    {
                        for (var h = 0; h < 2; h++)
                        {
                            matrix[lane >> 2, 2 * (lane & 3) + h] = [regs[lane][m.Source][2 * h], regs[lane][m.Source][2 * h + 1]];
                        }
                    }
                    for (var lane = 0; lane < 32; lane++)
                    {
                        var result = new T[4];
                        for (var h = 0; h < 2; h++)
                        {
                            var pair = matrix[2 * (lane & 3) + h, lane >> 2];
                            result[2 * h] = pair[0];
                            result[2 * h + 1] = pair[1];
                        }
                        regs[lane][m.Destination] = result;
                    }
                    break;
                default:
                    throw new InvalidOperationException("Unknown register op " + op);
            }
        }

        return regs;
    }
}
