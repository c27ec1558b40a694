using KernelDsl.Attention.ContextParallel;
using KernelDsl.Attention.FlashAttention;

namespace AttentionTests.ContextParallel;

/// <summary>What each rank throws once the ranks have shared how loading their inputs went (host-side logic only).</summary>
public class LoadAgreementTests
{
    private static readonly long[] Ok = LoadAgreement.Encode(null);

    [Fact]
    public void No_failure_throws_nothing()
    {
        Assert.Null(LoadAgreement.Outcome([Ok, Ok, Ok], 1, null));
    }

    [Fact]
    public void A_peers_NaN_is_an_exception_naming_that_rank_and_input_on_every_rank()
    {
        var bad = new NonFiniteInputException(0, 3, 0);
        var gathered = new[] { Ok, LoadAgreement.Encode(bad), Ok, Ok };
        foreach (var self in new[] { 0, 2, 3 })
        {
            var error = Assert.IsType<NonFiniteInputException>(LoadAgreement.Outcome(gathered, self, null));
            Assert.Equal(1, error.Rank);
            Assert.Equal("k", error.ParamName);
            Assert.Equal(3, error.KCount);
            Assert.Contains("Rank 1's inputs", error.Message);
        }
        var own = Assert.IsType<NonFiniteInputException>(LoadAgreement.Outcome(gathered, 1, bad));
        Assert.Equal(1, own.Rank);
    }

    [Fact]
    public void A_rank_reports_its_own_NaN_before_a_peers_and_its_own_other_failure_as_it_was()
    {
        var gathered = new[] { LoadAgreement.Encode(new NonFiniteInputException(2, 0, 0)), Ok, LoadAgreement.Encode(new NonFiniteInputException(0, 0, 5)) };
        Assert.Equal(2, Assert.IsType<NonFiniteInputException>(LoadAgreement.Outcome(gathered, 2, new NonFiniteInputException(0, 0, 5))).Rank);
        Assert.Equal("q", Assert.IsType<NonFiniteInputException>(LoadAgreement.Outcome(gathered, 1, null)).ParamName);   // the first failed rank: 0

        var outOfMemory = new InvalidOperationException("out of memory");
        var failed = new[] { Ok, LoadAgreement.Encode(outOfMemory) };
        Assert.Same(outOfMemory, LoadAgreement.Outcome(failed, 1, outOfMemory));
        Assert.Contains("Rank 1 failed", Assert.IsType<InvalidOperationException>(LoadAgreement.Outcome(failed, 0, null)).Message);
    }
}
