namespace KernelDsl.Attention.Reference;

/// <summary>How far a result is from a reference: relative L2 ‖a − e‖/‖e‖, cosine similarity, largest absolute difference.</summary>
public readonly record struct ErrorReport(double RelativeL2, double Cosine, double MaxAbs)
{
    public override string ToString() => $"rel L2 {RelativeL2:E3}, cosine {Cosine:F6}, max abs {MaxAbs:E3}";
}

/// <summary>Error metrics for comparing kernels and references, in float64 whatever the inputs.</summary>
public static class ErrorMetrics
{
    public static ErrorReport Compare(ReadOnlySpan<double> actual, ReadOnlySpan<double> expected) =>
        new(RelativeL2(actual, expected), Cosine(actual, expected), MaxAbs(actual, expected));

    public static ErrorReport Compare(ReadOnlySpan<float> actual, ReadOnlySpan<double> expected) => Compare(Widen(actual), expected);

    /// <summary>‖a − e‖ / ‖e‖; 0 when both are zero, +∞ when only the reference is.</summary>
    public static double RelativeL2(ReadOnlySpan<double> actual, ReadOnlySpan<double> expected)
    {
        SameLength(actual, expected);
        double diff = 0, norm = 0;
        for (var i = 0; i < actual.Length; i++)
        {
            var delta = actual[i] - expected[i];
            diff += delta * delta;
            norm += expected[i] * expected[i];
        }
        return norm == 0 ? (diff == 0 ? 0 : double.PositiveInfinity) : Math.Sqrt(diff / norm);
    }

    /// <summary>a·e / (‖a‖·‖e‖); 1 when both are zero, 0 when only one is.</summary>
    public static double Cosine(ReadOnlySpan<double> actual, ReadOnlySpan<double> expected)
    {
        SameLength(actual, expected);
        double dot = 0, na = 0, ne = 0;
        for (var i = 0; i < actual.Length; i++)
        {
            dot += actual[i] * expected[i];
            na += actual[i] * actual[i];
            ne += expected[i] * expected[i];
        }
        return na == 0 && ne == 0 ? 1 : na == 0 || ne == 0 ? 0 : dot / Math.Sqrt(na * ne);
    }

    /// <summary>max |a − e|; equal infinities (an LSE of −∞ on both sides) count as no difference, NaN as +∞.</summary>
    public static double MaxAbs(ReadOnlySpan<double> actual, ReadOnlySpan<double> expected)
    {
        SameLength(actual, expected);
        var max = 0.0;
        for (var i = 0; i < actual.Length; i++)
        {
            if (actual[i] == expected[i])
            {
                continue;
            }
            var delta = Math.Abs(actual[i] - expected[i]);
            max = Math.Max(max, double.IsNaN(delta) ? double.PositiveInfinity : delta);
        }
        return max;
    }

    public static double[] Widen(ReadOnlySpan<float> values)
    {
        var result = new double[values.Length];
        for (var i = 0; i < values.Length; i++)
        {
            result[i] = values[i];
        }
        return result;
    }

    private static void SameLength(ReadOnlySpan<double> actual, ReadOnlySpan<double> expected)
    {
        if (actual.Length != expected.Length)
        {
            throw new ArgumentException($"actual has {actual.Length} values, expected {expected.Length}.", nameof(actual));
        }
    }
}
