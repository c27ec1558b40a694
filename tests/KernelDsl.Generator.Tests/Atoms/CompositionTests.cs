using KernelDsl.Generator.Atoms;
using KernelDsl.Generator.Helpers;
using KernelDsl.Generator.Model;

namespace GeneratorTests.Atoms;

/// <summary>
/// Each V strategy composed with the m16n8k32 B fragment and an A fragment in natural or π k order:
/// every (k, n) element must arrive exactly once, in the slot the MMA reads it from.
/// </summary>
public class CompositionTests
{
    private static readonly MmaAtom Mma = MmaAtom.Get(MmaAtomKind.M16N8K32_S32S8S8);

    private static readonly int[] Natural = Enumerable.Range(0, 32).ToArray();

    /// <summary>π: slot 16h + 4t + i holds token 16h + [2t, 2t+1, 8+2t, 9+2t][i] (V_TRANSPOSE.md).</summary>
    internal static readonly int[] Pi = Enumerable.Range(0, 32)
        .Select(s => (s & 16) + new[] { 2 * ((s & 15) >> 2), 2 * ((s & 15) >> 2) + 1, 8 + 2 * ((s & 15) >> 2), 9 + 2 * ((s & 15) >> 2) }[s & 3])
        .ToArray();

    private static Composition B(CopyAtomKind atom, OperandStorage storage, TokenOrder atomOrder, int[] aOrder, TokenOrder stored = TokenOrder.Natural) =>
        FragmentComposition.ComposeB(Mma, CopyAtom.Get(atom).ProgramFor(storage, atomOrder)!, storage, stored, aOrder.ToEquatableArray());

    [Fact]
    public void Plain_ldmatrix_delivers_the_A_fragment_in_natural_k_order()
    {
        var a = FragmentComposition.ComposeA(Mma, CopyAtom.Get(CopyAtomKind.Ldsm).ProgramFor(OperandStorage.MK, TokenOrder.Natural)!);
        Assert.Empty(a.Errors);
        Assert.Equal(Natural, a.KOrder);
    }

    [Fact]
    public void The_pi_table_matches_the_token_order_function()
    {
        for (var s = 0; s < 32; s++)
        {
            Assert.Equal(Pi[s], FragmentComposition.Token(TokenOrder.Pi, s));
        }
    }

    [Theory]
    [InlineData(CopyAtomKind.LdsmTransPrmt)]
    [InlineData(CopyAtomKind.LdsmPrmtMovmatrix)]
    public void In_kernel_transposes_feed_the_MMA_exactly_in_the_order_asked_for(CopyAtomKind atom)
    {
        var natural = B(atom, OperandStorage.KN, TokenOrder.Natural, Natural);
        Assert.Empty(natural.Errors);
        var pi = B(atom, OperandStorage.KN, TokenOrder.Pi, Pi);
        Assert.Empty(pi.Errors);
    }

    [Theory]
    [InlineData(CopyAtomKind.LdsmTransPrmt)]
    [InlineData(CopyAtomKind.LdsmPrmtMovmatrix)]
    public void A_row_order_for_the_other_k_order_is_caught(CopyAtomKind atom)
    {
        Assert.NotEmpty(B(atom, OperandStorage.KN, TokenOrder.Pi, Natural).Errors);
        Assert.NotEmpty(B(atom, OperandStorage.KN, TokenOrder.Natural, Pi).Errors);
    }

    [Fact]
    public void Recipe_A_lands_even_and_odd_channels_in_separate_tiles()
    {
        var map = B(CopyAtomKind.LdsmTransPrmt, OperandStorage.KN, TokenOrder.Pi, Pi).Channels!;
        // Tile 0 column c is channel 2c, tile 1 column c is 2c + 1: lane t owns channels 4t..4t+3.
        Assert.Equal(new[] { 0, 2, 4, 6, 8, 10, 12, 14 }, Enumerable.Range(0, 8).Select(c => map.ChannelOf(0, c)));
        Assert.Equal(new[] { 1, 3, 5, 7, 9, 11, 13, 15 }, Enumerable.Range(0, 8).Select(c => map.ChannelOf(1, c)));
    }

    [Fact]
    public void Recipe_B_lands_channel_pairs_four_apart()
    {
        var map = B(CopyAtomKind.LdsmPrmtMovmatrix, OperandStorage.KN, TokenOrder.Natural, Natural).Channels!;
        Assert.Equal(new[] { 0, 1, 4, 5, 8, 9, 12, 13 }, Enumerable.Range(0, 8).Select(c => map.ChannelOf(0, c)));
        Assert.Equal(new[] { 2, 3, 6, 7, 10, 11, 14, 15 }, Enumerable.Range(0, 8).Select(c => map.ChannelOf(1, c)));
    }

    [Theory]
    [InlineData(TokenOrder.Natural)]
    [InlineData(TokenOrder.Pi)]
    public void Recipe_C_pretransposed_in_the_consumers_order_needs_only_plain_ldmatrix(TokenOrder order)
    {
        var composed = B(CopyAtomKind.LdsmPretransposed, OperandStorage.NK, order, order == TokenOrder.Pi ? Pi : Natural, stored: order);
        Assert.Empty(composed.Errors);
        Assert.Equal(new[] { 0, 1, 2, 3, 4, 5, 6, 7 }, Enumerable.Range(0, 8).Select(c => composed.Channels!.ChannelOf(0, c)));
        Assert.Equal(8, composed.Channels!.ChannelOf(1, 0));
    }

    [Fact]
    public void Recipe_C_written_in_the_wrong_order_is_caught()
    {
        Assert.NotEmpty(B(CopyAtomKind.LdsmPretransposed, OperandStorage.NK, TokenOrder.Natural, Pi, stored: TokenOrder.Natural).Errors);
    }

    [Fact]
    public void Ldmatrix_trans_alone_moves_byte_pairs_and_cannot_feed_int8_B()
    {
        var composed = B(CopyAtomKind.LdsmTrans, OperandStorage.KN, TokenOrder.Natural, Natural);
        Assert.NotEmpty(composed.Errors);
    }

    [Fact]
    public void Plain_ldmatrix_on_an_n_major_operand_is_caught()
    {
        Assert.NotEmpty(B(CopyAtomKind.Ldsm, OperandStorage.KN, TokenOrder.Natural, Natural).Errors);
        Assert.Empty(B(CopyAtomKind.Ldsm, OperandStorage.NK, TokenOrder.Natural, Natural).Errors);
    }

    [Fact]
    public void Every_B_element_of_the_chunk_arrives_exactly_once()
    {
        foreach (var atom in new[] { CopyAtomKind.LdsmTransPrmt, CopyAtomKind.LdsmPrmtMovmatrix })
        {
            var program = CopyAtom.Get(atom).ProgramFor(OperandStorage.KN, TokenOrder.Natural)!;
            var delivered = FragmentSimulator.Run(program, (r, c) => (K: r, N: c));
            var all = delivered.SelectMany(t => t.SelectMany(l => l.SelectMany(r => r))).ToList();
            Assert.Equal(32 * 16, all.Count);
            Assert.Equal(32 * 16, all.Distinct().Count());
        }
    }
}
