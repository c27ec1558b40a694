using KernelDsl.Attention.ContextParallel;

namespace AttentionTests.ContextParallel;

public class UlyssesLayoutTests
{
    [Theory]
    [InlineData(1, 8, 2)]
    [InlineData(2, 8, 2)]
    [InlineData(4, 32, 8)]
    [InlineData(8, 64, 8)]
    public void Head_shards_tile_the_heads_and_each_rank_holds_the_K_V_heads_its_query_heads_read(int ranks, int headsQ, int headsKv)
    {
        var layout = new UlyssesLayout(new SequencePartition(ranks, 3 * ranks + 1, SequenceSplit.Contiguous), headsQ, headsKv);
        var group = headsQ / headsKv;
        var (nextQ, nextKv) = (0, 0);
        for (var r = 0; r < ranks; r++)
        {
            var (q, kv) = (layout.QHeads(r), layout.KvHeads(r));
            Assert.Equal((nextQ, nextKv), (q.Start, kv.Start));
            Assert.Equal((headsQ / ranks, headsKv / ranks), (q.Count, kv.Count));
            for (var h = q.Start; h < q.End; h++)
            {
                Assert.InRange(h / group, kv.Start, kv.End - 1);
            }
            (nextQ, nextKv) = (q.End, kv.End);
        }
        Assert.Equal((headsQ, headsKv), (nextQ, nextKv));
    }

    [Fact]
    public void Heads_that_do_not_divide_among_the_ranks_are_refused_pointing_at_the_ring()
    {
        var partition = new SequencePartition(4, 64, SequenceSplit.ZigZag);
        var q = Assert.Throws<ArgumentException>(() => new UlyssesLayout(partition, 6, 2));
        Assert.Equal("headsQ", q.ParamName);
        Assert.Contains("ring", q.Message);
        var kv = Assert.Throws<ArgumentException>(() => new UlyssesLayout(partition, 8, 2));
        Assert.Equal("headsKv", kv.ParamName);
        Assert.Equal("headsKv", Assert.Throws<ArgumentException>(() => new UlyssesLayout(partition, 8, 3)).ParamName);
        Assert.Equal("rank", Assert.Throws<ArgumentOutOfRangeException>(() => new UlyssesLayout(partition, 8, 4).QHeads(4)).ParamName);
    }
}
