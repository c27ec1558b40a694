using KernelDsl.Attention.FlashAttention;

namespace AttentionTests.FlashAttention;

/// <summary>Issue 6 on the CPU side: the default, the exception's contract, and that every V path has a counter of its own head dim.</summary>
public class NonFiniteInputTests
{
    [Fact]
    public void Non_finite_inputs_throw_unless_the_caller_opts_out()
    {
        Assert.Equal(NonFiniteInputs.Throw, new AttentionOptions().NonFinite);
        Assert.Equal(NonFiniteInputs.Throw, default(NonFiniteInputs));
        Assert.NotEqual(new AttentionOptions(), new AttentionOptions { NonFinite = NonFiniteInputs.Ignore });
    }

    [Theory]
    [InlineData(1, 0, 0, "q")]
    [InlineData(0, 1, 0, "k")]
    [InlineData(0, 0, 1, "v")]
    [InlineData(0, 2, 3, "k")]
    [InlineData(4, 0, 7, "q")]
    public void The_exception_names_the_first_bad_tensor_and_gives_every_count(long q, long k, long v, string first)
    {
        var error = new NonFiniteInputException(q, k, v);
        Assert.IsAssignableFrom<ArgumentException>(error);
        Assert.Equal(first, error.ParamName);
        Assert.Equal((q, k, v), (error.QCount, error.KCount, error.VCount));
        Assert.Contains($"q {q}, k {k}, v {v}", error.Message, StringComparison.Ordinal);
        Assert.Contains("what this call wrote (O and the LSE, or quantized K and V) is not meaningful", error.Message, StringComparison.Ordinal);
        Assert.Contains("NonFinite = Ignore", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(true, 128)]
    [InlineData(true, 64)]
    [InlineData(false, 128)]
    [InlineData(false, 64)]
    public void The_statistics_pass_that_counts_K_and_V_reads_their_head_dim_and_element(bool f16, int headDim)
    {
        // Every mode counts K's and V's NaN/Inf in the statistics pass (in the 16-bit P·V mode V is not quantized at all):
        // it must read them with the same head dim and element type.
        Delegate launch = f16 ? Quantizers<Half>.For(headDim).Statistics.Launch : Quantizers<ushort>.For(headDim).Statistics.Launch;
        Assert.Equal(headDim, HeadDimQuantizerTests.HeadDimOf(launch));
        Assert.Equal(f16 ? typeof(KernelDsl.DeviceBuffer<Half>) : typeof(KernelDsl.DeviceBuffer<ushort>), launch.Method.GetParameters()[1].ParameterType);
    }
}
