using KernelDsl.Attention.FlashAttention;

namespace AttentionTests.FlashAttention;

/// <summary>ModifierArguments.Check: Forward's checks of a kernel's modifier arguments, made on the CPU, each naming what is wrong.</summary>
public class ModifierArgumentCheckTests
{
    [Fact]
    public void Arguments_that_fit_the_kernel_pass()
    {
        new ModifierArguments().Set("cap", 30f).Check(Softcap.D128.Info);
        new ModifierArguments().Set("window", 1024).Check(SlidingWindow.D128.Info);
        ModifierArguments.None.Check(Int8AttentionD128TransPrmt.Causal.Info);
    }

    [Theory]
    [InlineData(float.NaN, "must be positive")]
    [InlineData(0f, "must be positive")]
    [InlineData(float.PositiveInfinity, "must be positive")]
    public void A_positive_parameter_refuses_what_breaks_its_rule(float cap, string rule)
    {
        var e = Assert.Throws<ArgumentException>(() => new ModifierArguments().Set("cap", cap).Check(Softcap.D128.Info));
        Assert.Equal("arguments", e.ParamName);
        Assert.Contains("'cap'", e.Message);
        Assert.Contains(rule, e.Message);
    }

    [Fact]
    public void Missing_mistyped_and_unknown_arguments_are_named()
    {
        Assert.Contains("needs the modifier argument 'cap'", Assert.Throws<ArgumentException>(() => ModifierArguments.None.Check(Softcap.D128.Info)).Message);
        Assert.Contains("must be a Single", Assert.Throws<ArgumentException>(() => new ModifierArguments().Set("cap", 30).Check(Softcap.D128.Info)).Message);
        Assert.Contains("has no modifier parameter 'window'", Assert.Throws<ArgumentException>(() => new ModifierArguments().Set("cap", 30f).Set("window", 4).Check(Softcap.D128.Info)).Message);
    }
}
