using KernelDsl;
using KernelDsl.Attention.FlashAttention;
using KernelDsl.Launching;

namespace AttentionTests.FlashAttention;

/// <summary>
/// A modifier's [Positive] scalar (Softcap's cap, which its body divides by): refused before anything is queued, when
/// Int8Attention binds the arguments and in the typed launchers, naming the parameter. No GPU is needed: the checks come
/// before anything is queued.
/// </summary>
public class PositiveArgumentTests
{
    private static AttentionKernelInfo Softcap => Int8Attention.Kernels.Single(k => k.Name == "KernelDsl.Attention.FlashAttention.Softcap.D128");

    [Fact]
    public void The_catalog_says_which_parameters_are_positive()
    {
        Assert.True(Assert.Single(Softcap.Parameters).Positive);
        Assert.All(Int8Attention.FormsOf(typeof(SlidingWindow)).SelectMany(k => k.Parameters), p => Assert.False(p.Positive));
    }

    [Theory]
    [InlineData(0f)]
    [InlineData(-30f)]
    [InlineData(float.NaN)]
    [InlineData(float.PositiveInfinity)]
    public void Binding_refuses_a_cap_that_is_not_positive_and_finite(float cap)
    {
        var error = Assert.Throws<ArgumentException>(() => new ModifierArguments().Set("cap", cap).CheckFor(Softcap, "arguments"));
        Assert.Equal("arguments", error.ParamName);
        Assert.Contains("Modifier argument 'cap' of KernelDsl.Attention.FlashAttention.Softcap.D128 must be positive and finite (its modifier declares it [Positive])", error.Message);
        new ModifierArguments().Set("cap", 30f).CheckFor(Softcap, "arguments");
        new ModifierArguments().Set("cap", float.Epsilon).CheckFor(Softcap, "arguments");
    }

    [Fact]
    public void The_typed_launchers_guard_refuses_zero_negative_NaN_and_infinity_naming_the_parameter()
    {
        // Every generated launcher of a [Positive] float calls this after its reference checks (the Softcap snapshots).
        foreach (var bad in new[] { 0f, -1f, float.NaN, float.PositiveInfinity })
        {
            var error = Assert.Throws<ArgumentOutOfRangeException>(() => LaunchGuard.Positive(bad, "cap"));
            Assert.Equal("cap", error.ParamName);
            Assert.Contains("'cap' must be positive and finite: its modifier declares it [Positive].", error.Message);
        }
        LaunchGuard.Positive(1e-30f, "cap");
    }
}
