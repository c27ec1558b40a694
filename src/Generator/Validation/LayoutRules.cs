using System;
using System.Collections.Generic;
using System.Linq;
using KernelDsl.Generator.Atoms;
using KernelDsl.Generator.Helpers;
using KernelDsl.Generator.Model;

namespace KernelDsl.Generator.Validation;

/// <summary>Rules about swizzled shared-memory layouts, shared by every family.</summary>
public static class LayoutRules
{
    /// <summary>The swizzle that makes 16-byte chunks of <paramref name="rowBytes"/>-byte rows conflict-free for ldmatrix.</summary>
    public static Swizzle Recommended(int rowBytes, Element element)
    {
        var m = Log2(16 / element.SizeInBytes());
        var chunks = rowBytes / 16;
        var bits = chunks >= 8 ? 3 : chunks >= 4 ? 2 : chunks >= 2 ? 1 : 0;
        return new Swizzle(bits, m, 3);
    }

    /// <summary>Checks one staged operand's layout; <paramref name="reader"/> is the program that reads it (null if none).</summary>
    public static void Check(List<Finding> findings, KernelSpec spec, Operand operand, int rows, int rowBytes, LdmatrixProgram? reader)
    {
        var index = IndexOf(spec, operand);
        var layout = spec.SmemLayouts[index];
        var target = new FindingTarget(TargetKind.SmemLayout, index);
        var swizzle = layout.Swizzle;
        var size = layout.Element.SizeInBytes();
        var chunkBase = Log2(16 / size);
        if (swizzle.Bits < 0 || swizzle.Base < 0 || swizzle.Shift < 0 || swizzle.Bits > 8 || swizzle.Base + swizzle.Shift + swizzle.Bits > 20)
        {
            findings.Add(Finding.Of(Rules.InvalidParameter, target, $"SmemLayout({operand}) {swizzle}", swizzle, "B, M and S must be non-negative and B + M + S at most 20"));
            return;
        }
        if (swizzle.Bits > 0 && swizzle.Shift < swizzle.Bits)
        {
            findings.Add(Finding.Of(Rules.InvalidParameter, target, $"SmemLayout({operand}) {swizzle}", swizzle, "S must be at least B, or the bits read overlap the bits written and it is no longer a bijection"));
            return;
        }
        if (!swizzle.IsIdentity && swizzle.Base < chunkBase)
        {
            findings.Add(Finding.Of(Rules.SwizzleBreaksChunks, target, swizzle, layout.Element, swizzle.Base,
                $"{Wording.Count(1 << swizzle.Base, "element")} ({Wording.Count((1 << swizzle.Base) * size, "byte")})", chunkBase, Recommended(rowBytes, layout.Element)));
            return;
        }
        var stageBytes = rows * rowBytes;
        var spanBytes = swizzle.Span * size;
        if (!swizzle.IsIdentity && stageBytes % spanBytes != 0)
        {
            findings.Add(Finding.Of(Rules.SwizzleSpan, target, swizzle, spanBytes, operand, stageBytes));
            return;
        }
        if (reader is not null)
        {
            var ways = LdmatrixConflictWays(reader, swizzle, rowBytes, size);
            if (ways > 1)
            {
                var (better, betterWays) = BestSwizzle(reader, rowBytes, layout.Element, stageBytes);
                var advice = betterWays < ways
                    ? FormattableString.Invariant($"{better} brings it to {betterWays}-way")
                    : "no Swizzle(B, M, S) does better for this copy atom's row order";
                findings.Add(Finding.Of(Rules.BankConflicts, target, operand, rowBytes, swizzle, ways, advice));
            }
        }
    }

    /// <summary>The swizzle with the fewest ldmatrix conflicts for this reader, searched over every B and S that keeps 16-byte chunks whole.</summary>
    public static (Swizzle Swizzle, int Ways) BestSwizzle(LdmatrixProgram reader, int rowBytes, Element element, int stageBytes)
    {
        var size = element.SizeInBytes();
        var m = Log2(16 / size);
        var best = (Swizzle: new Swizzle(0, m, 3), Ways: LdmatrixConflictWays(reader, new Swizzle(0, m, 3), rowBytes, size));
        for (var bits = 1; bits <= 3; bits++)
        {
            for (var shift = bits; shift <= 7; shift++)
            {
                var candidate = new Swizzle(bits, m, shift);
                if (stageBytes % (candidate.Span * size) != 0)
                {
                    continue;
                }
                var ways = LdmatrixConflictWays(reader, candidate, rowBytes, size);
                if (ways < best.Ways)
                {
                    best = (candidate, ways);
                }
            }
        }
        return best;
    }

    /// <summary>
    /// The worst bank-conflict degree of the program's ldmatrix over every 16-byte-aligned position in the tile row:
    /// each 8-lane phase reads eight 16-byte rows, which are conflict-free when they fall in eight different
    /// 16-byte bank groups of a 128-byte line.
    /// </summary>
    public static int LdmatrixConflictWays(LdmatrixProgram reader, Swizzle swizzle, int rowBytes, int elementSize)
    {
        var worst = 1;
        for (var rowBase = 0; rowBase < 8 * reader.Rows; rowBase += reader.Rows)
        {
            for (var colBase = 0; colBase + 16 * reader.Chunks <= rowBytes; colBase += 16 * reader.Chunks)
            {
                for (var matrix = 0; matrix < 4; matrix++)
                {
                    var groups = new int[8];
                    for (var r = 0; r < 8; r++)
                    {
                        var lane = 8 * matrix + r;
                        var logical = (rowBase + reader.RowOf(lane)) * rowBytes + colBase + 16 * reader.ChunkOf(lane);
                        var physical = swizzle.ApplyToBytes(logical, elementSize);
                        groups[(physical / 16) % 8]++;
                    }
                    worst = System.Math.Max(worst, groups.Max());
                }
            }
        }
        return worst;
    }

    public static int IndexOf(KernelSpec spec, Operand operand)
    {
        for (var i = 0; i < spec.SmemLayouts.Count; i++)
        {
            if (spec.SmemLayouts[i].Operand == operand)
            {
                return i;
            }
        }
        return -1;
    }

    public static int Log2(int value)
    {
        var log = 0;
        while ((1 << (log + 1)) <= value)
        {
            log++;
        }
        return log;
    }
}
