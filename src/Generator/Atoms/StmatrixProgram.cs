using KernelDsl.Generator.Helpers;

namespace KernelDsl.Generator.Atoms;

/// <summary>
/// One registers → shared store for one warp, as data: a <c>stmatrix.x4</c> (non-transposed) writing registers
/// <see cref="Sources"/>[q] as matrix q, whose row r lane 8q + r addresses at (RowOf, 16 · ChunkOf) of the destination
/// tile; lane bits weigh rows and 16-byte chunks as in <see cref="LdmatrixProgram"/>.
/// <see cref="FragmentSimulator.Store{T}"/> runs it on labelled registers.
/// </summary>
public sealed record StmatrixProgram(string Name, EquatableArray<LaneBit> LaneBits, EquatableArray<int> Sources)
{
    public int RowOf(int lane) => LaneBit.Sum(LaneBits, lane, true);

    public int ChunkOf(int lane) => LaneBit.Sum(LaneBits, lane, false);

    /// <summary>
    /// docs/V_TRANSPOSE.md Recipe D's store, after Recipe A's ldmatrix.trans + prmt in π order (registers 4, 5 = channel 2g,
    /// slots 0-15 / 16-31; 6, 7 = channel 2g + 1): matrix q's row r is channel 2r + (q >> 1) of the 16-channel chunk,
    /// at slot bytes 16(q &amp; 1). The destination is V transposed, [channel][32 key slots], keys in π order: the K-major B
    /// tile wgmma reads for P·V.
    /// </summary>
    public static readonly StmatrixProgram RecipeD = new("stsm_recipe_d",
        new[] { new LaneBit(2, 0), new LaneBit(4, 0), new LaneBit(8, 0), new LaneBit(0, 1), new LaneBit(1, 0) }.ToEquatableArray(),
        new[] { 4, 5, 6, 7 }.ToEquatableArray());
}
