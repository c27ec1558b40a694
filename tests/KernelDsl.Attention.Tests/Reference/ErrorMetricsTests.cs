using KernelDsl.Attention.Reference;

namespace AttentionTests.Reference;

public class ErrorMetricsTests
{
    [Fact]
    public void A_scaled_copy_has_relative_error_of_the_scale_and_cosine_one()
    {
        double[] expected = [3, -4, 0, 12];
        var actual = expected.Select(x => 1.01 * x).ToArray();
        var report = ErrorMetrics.Compare(actual, expected);
        Assert.Equal(0.01, report.RelativeL2, 12);
        Assert.Equal(1.0, report.Cosine, 12);
        Assert.Equal(0.12, report.MaxAbs, 12);
    }

    [Fact]
    public void Orthogonal_vectors_have_cosine_zero_and_relative_error_sqrt_two()
    {
        var report = ErrorMetrics.Compare([0.0, 2.0], [1.0, 0.0]);
        Assert.Equal(0.0, report.Cosine, 12);
        Assert.Equal(Math.Sqrt(5), report.RelativeL2, 12);
    }

    [Fact]
    public void Zero_vectors_and_infinities_follow_the_documented_rules()
    {
        Assert.Equal(0.0, ErrorMetrics.RelativeL2([0.0], [0.0]));
        Assert.Equal(double.PositiveInfinity, ErrorMetrics.RelativeL2([1.0], [0.0]));
        Assert.Equal(1.0, ErrorMetrics.Cosine([0.0], [0.0]));
        Assert.Equal(0.0, ErrorMetrics.Cosine([1.0], [0.0]));
        Assert.Equal(0.0, ErrorMetrics.MaxAbs([double.NegativeInfinity, 1.0], [double.NegativeInfinity, 1.0]));
        Assert.Equal(double.PositiveInfinity, ErrorMetrics.MaxAbs([double.NaN], [1.0]));
        Assert.Equal(double.PositiveInfinity, ErrorMetrics.MaxAbs([double.NegativeInfinity], [1.0]));
    }

    [Fact]
    public void Float_results_compare_against_double_references()
    {
        var report = ErrorMetrics.Compare([1f, 2f], [1.0, 2.0]);
        Assert.Equal(0.0, report.RelativeL2);
        Assert.Throws<ArgumentException>(() => ErrorMetrics.Compare([1.0], [1.0, 2.0]));
    }
}
