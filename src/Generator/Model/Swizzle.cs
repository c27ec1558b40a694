using System.Collections.Generic;

namespace KernelDsl.Generator.Model;

/// <summary>
/// CuTe's Swizzle(B, M, S) on an element offset: bits [M+S, M+S+B) are XORed into bits [M, M+B).
/// The identity is Swizzle(0, M, S). Any swizzle is a bijection on each aligned block of 2^(B+M+S) elements.
/// </summary>
public sealed record Swizzle(int Bits, int Base, int Shift)
{
    public static readonly Swizzle None = new(0, 4, 3);

    public bool IsIdentity => Bits == 0;

    /// <summary>The mask of the bits that get XORed: ((1 &lt;&lt; B) - 1) &lt;&lt; M.</summary>
    public int Mask => ((1 << Bits) - 1) << Base;

    /// <summary>Elements in the smallest block the swizzle permutes within.</summary>
    public int Span => 1 << (Bits + Base + Shift);

    public int Apply(int offset) => IsIdentity ? offset : offset ^ ((offset >> Shift) & Mask);

    /// <summary>A byte offset through the swizzle of its element offset, for elements of <paramref name="elementSize"/> bytes.</summary>
    public int ApplyToBytes(int byteOffset, int elementSize) => Apply(byteOffset / elementSize) * elementSize + byteOffset % elementSize;

    public override string ToString() => $"Swizzle({Bits},{Base},{Shift})";
}

/// <summary>A tile of one operand in shared memory.</summary>
public sealed record SmemLayoutSpec(Operand Operand, Element Element, Swizzle Swizzle)
{
    /// <summary>The byte offset of (row, byte column) in a tile of <paramref name="rowBytes"/>-byte rows, as the emitted layout function computes it.</summary>
    public int ByteOffset(int row, int col, int rowBytes)
    {
        return Swizzle.ApplyToBytes(row * rowBytes + col, Element.SizeInBytes());
    }

    /// <summary>
    /// Whether every step of a copy factors as offset(r0 + dr, c0 + dc) = (offset(r0, c0) XOR dc) + dr·rowBytes for each
    /// lane origin (r0, c0): then a kernel computes the swizzled lane offset once and each step costs one XOR with a
    /// constant, the row step folding into the instruction's immediate offset. Checked exhaustively, so a layout that
    /// does not factor simply keeps the full layout function.
    /// </summary>
    public bool FactorsSteps(int rowBytes, IEnumerable<(int Row, int Col)> origins, IReadOnlyList<int> rowSteps, IReadOnlyList<int> colSteps)
    {
        foreach (var (row, col) in origins)
        {
            var lane = ByteOffset(row, col, rowBytes);
            foreach (var dr in rowSteps)
            {
                foreach (var dc in colSteps)
                {
                    if (ByteOffset(row + dr, col + dc, rowBytes) != (lane ^ dc) + dr * rowBytes)
                    {
                        return false;
                    }
                }
            }
        }
        return true;
    }

    /// <summary>
    /// How a tile copy's offsets repeat, as <see cref="FactorsSteps"/> asks of ldmatrix steps (TileCopyWriter.WriteWholeChunks):
    /// thread t's copy i of 16 bytes lands at offset(t + (i % Phases)·threads) + (i / Phases)·Stride, with Phases smaller
    /// than the copies a thread makes. Null when no such phase count holds for every thread and copy (checked
    /// exhaustively), or when a thread's chunks do not keep one byte column.
    /// </summary>
    public (int Phases, int Stride)? CopyPhases(int threads, int chunksPerThread, int rowBytes)
    {
        var chunksPerRow = rowBytes / 16;
        if (chunksPerRow == 0 || threads % chunksPerRow != 0)
        {
            return null;
        }
        int Offset(int chunk) => ByteOffset(chunk / chunksPerRow, chunk % chunksPerRow * 16, rowBytes);
        for (var phases = 1; phases < chunksPerThread; ++phases)
        {
            var stride = Offset(phases * threads) - Offset(0);
            var holds = true;
            for (var t = 0; t < threads && holds; ++t)
            {
                for (var i = 0; i < chunksPerThread && holds; ++i)
                {
                    holds = Offset(t + i * threads) == Offset(t + i % phases * threads) + i / phases * stride;
                }
            }
            if (holds)
            {
                return (phases, stride);
            }
        }
        return null;
    }
}

/// <summary>A declared copy atom for one operand.</summary>
public sealed record CopyAtomSpec(Operand Operand, CopyAtomKind Atom);
