using KernelDsl.Generator.Atoms;
using KernelDsl.Generator.Helpers;
using KernelDsl.Generator.Model;

namespace GeneratorTests.Atoms;

/// <summary>
/// Recipe D (V_TRANSPOSE.md) for the Hopper path: Recipe A's ldmatrix.trans + prmt, then stmatrix, must leave V
/// transposed in shared memory — [channel][key slot], keys in the π order P comes out of the S accumulators in — so a
/// K-major wgmma B operand can read it. Simulated byte by byte on a labelled tile.
/// </summary>
public class RecipeDTests
{
    private static readonly int[] Pi = CompositionTests.Pi;

    [Fact]
    public void Ldmatrix_trans_prmt_then_stmatrix_writes_V_transposed_in_pi_key_order()
    {
        // V tile of 32 keys × one 16-byte chunk of channels; each byte labelled (key, channel).
        var load = CopyAtom.Get(CopyAtomKind.LdsmTransPrmt).ProgramFor(OperandStorage.KN, TokenOrder.Pi)!;
        var registers = FragmentSimulator.Registers(load, (key, channel) => (Key: key, Channel: channel));

        var transposed = FragmentSimulator.Store(StmatrixProgram.RecipeD, registers, rows: 16, rowBytes: 32);

        for (var channel = 0; channel < 16; channel++)
        {
            for (var slot = 0; slot < 32; slot++)
            {
                Assert.Equal((Pi[slot], channel), transposed[channel, slot]);
            }
        }
    }

    [Fact]
    public void The_store_covers_every_byte_of_its_tile_once()
    {
        // Labels are the byte's own destination: any address mistake shows up as a mismatch or a double write.
        var registers = Enumerable.Range(0, 32).Select(lane => Enumerable.Range(0, 8).Select(reg =>
            Enumerable.Range(0, 4).Select(b => (Lane: lane, Reg: reg, Byte: b)).ToArray()).ToArray()).ToArray();
        var tile = FragmentSimulator.Store(StmatrixProgram.RecipeD, registers, rows: 16, rowBytes: 32);
        Assert.Equal(16 * 32, tile.Cast<(int, int, int)?>().Count(x => x is not null));
    }

    [Fact]
    public void A_store_that_overlaps_itself_is_caught()
    {
        var clash = StmatrixProgram.RecipeD with
        {
            LaneBits = new[] { new LaneBit(2, 0), new LaneBit(4, 0), new LaneBit(8, 0), new LaneBit(0, 0), new LaneBit(1, 0) }.ToEquatableArray(),
        };
        var registers = Enumerable.Range(0, 32).Select(_ => Enumerable.Range(0, 8).Select(_ => new int[4]).ToArray()).ToArray();
        var error = Assert.Throws<InvalidOperationException>(() => FragmentSimulator.Store(clash, registers, 16, 32));
        Assert.Contains("written twice", error.Message);
    }
}
