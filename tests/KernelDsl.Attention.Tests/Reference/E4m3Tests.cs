using KernelDsl.Attention.Reference;

namespace KernelDsl.Attention.Tests.Reference;

/// <summary>
/// E4m3 against the spec (OCP FP8 / NVIDIA e4m3: bias 7, no infinities, S.1111.111 NaN, max 448, smallest subnormal
/// 2^-9): a table of every code's value built here from its fields, and rounding checked against a brute-force search
/// over that table.
/// </summary>
public class E4m3Tests
{
    /// <summary>The value of each code from its sign, exponent and mantissa fields, by the spec's formulas, in double.</summary>
    private static double SpecValue(int code)
    {
        var sign = (code & 0x80) != 0 ? -1.0 : 1.0;
        var exponent = (code >> 3) & 0xF;
        var mantissa = code & 0x7;
        if (exponent == 0xF && mantissa == 0x7)
        {
            return double.NaN;
        }
        return exponent == 0
            ? sign * Math.Pow(2, 1 - 7) * (mantissa / 8.0)
            : sign * Math.Pow(2, exponent - 7) * (1 + mantissa / 8.0);
    }

    private static readonly int[] FiniteCodes = Enumerable.Range(0, 256).Where(c => (c & 0x7F) != 0x7F).ToArray();

    /// <summary>Nearest finite code by brute force; a tie goes to the even code (mantissa LSB 0); beyond ±448 saturates.</summary>
    private static byte BruteForce(float x)
    {
        var best = -1;
        var bestDistance = double.PositiveInfinity;
        foreach (var code in FiniteCodes)
        {
            // Zero's two codes: the sign follows x (RNE keeps the sign of a value that rounds to zero).
            if ((code & 0x7F) == 0 && ((code & 0x80) != 0) != float.IsNegative(x))
            {
                continue;
            }
            var distance = Math.Abs(x - SpecValue(code));
            if (distance < bestDistance || (distance == bestDistance && (code & 1) == 0))
            {
                (best, bestDistance) = (code, distance);
            }
        }
        return (byte)best;
    }

    [Fact]
    public void Every_code_decodes_to_the_spec_value()
    {
        for (var code = 0; code < 256; code++)
        {
            var expected = SpecValue(code);
            var actual = E4m3.ToSingle((byte)code);
            if (double.IsNaN(expected))
            {
                Assert.True(float.IsNaN(actual), $"code 0x{code:X2} should be NaN, got {actual}");
                continue;
            }
            Assert.Equal(expected, (double)actual);
            Assert.Equal((code & 0x80) != 0, float.IsNegative(actual));
        }
        // Landmarks the spec states outright.
        Assert.Equal(448f, E4m3.ToSingle(0x7E));
        Assert.Equal(-448f, E4m3.ToSingle(0xFE));
        Assert.Equal(MathF.ScaleB(1, -9), E4m3.ToSingle(0x01));
        Assert.Equal(MathF.ScaleB(1, -6), E4m3.ToSingle(0x08));
        Assert.Equal(1f, E4m3.ToSingle(0x38));
        Assert.Equal(0.875f * MathF.ScaleB(1, -6), E4m3.ToSingle(0x07));
        Assert.Equal(2, Enumerable.Range(0, 256).Count(c => float.IsNaN(E4m3.ToSingle((byte)c))));
    }

    [Fact]
    public void Every_finite_code_round_trips()
    {
        foreach (var code in FiniteCodes)
        {
            Assert.Equal((byte)code, E4m3.Round(E4m3.ToSingle((byte)code)));
        }
    }

    [Fact]
    public void Midpoints_round_to_the_even_code_and_their_neighbours_to_the_nearer_one()
    {
        // Every pair of adjacent non-negative codes: subnormals, the subnormal/normal boundary, each exponent's carry.
        for (var code = 0; code < 0x7E; code++)
        {
            var (below, above) = (E4m3.ToSingle((byte)code), E4m3.ToSingle((byte)(code + 1)));
            var middle = (below + above) / 2;  // exact: 5 significant bits
            Assert.Equal((double)below + ((double)above - below) / 2, (double)middle);
            var even = (byte)((code & 1) == 0 ? code : code + 1);
            Assert.Equal(even, E4m3.Round(middle));
            Assert.Equal((byte)(even | 0x80), E4m3.Round(-middle));
            Assert.Equal((byte)code, E4m3.Round(MathF.BitDecrement(middle)));
            Assert.Equal((byte)(code + 1), E4m3.Round(MathF.BitIncrement(middle)));
        }
        // Spot checks by hand: 1 + 1/16 lies between 1 (0x38) and 1.125 (0x39); 2^-10 between 0 and 2^-9.
        Assert.Equal(0x38, E4m3.Round(1.0625f));
        Assert.Equal(0x3A, E4m3.Round(1.1875f));   // between 1.125 (0x39) and 1.25 (0x3A): to the even 0x3A
        Assert.Equal(0x00, E4m3.Round(MathF.ScaleB(1, -10)));
        Assert.Equal(0x02, E4m3.Round(MathF.ScaleB(3, -10)));  // 1.5·2^-9: between 0x01 and 0x02
        Assert.Equal(0x08, E4m3.Round(MathF.ScaleB(15, -10)));  // 7.5·2^-9: the largest subnormal rounds up to 2^-6
        Assert.Equal(0x78, E4m3.Round(248f));                    // 240 (0x77) .. 256 (0x78): the carry into 2^8
    }

    [Fact]
    public void Random_values_round_as_a_brute_force_search_over_the_spec_table()
    {
        var seed = Random.Shared.Next();
        var rng = new Random(seed);
        for (var i = 0; i < 20000; i++)
        {
            // Log-uniform magnitudes from below the smallest subnormal to past the largest finite value.
            var x = (float)((rng.Next(2) == 0 ? -1 : 1) * Math.Pow(2, -12 + 22 * rng.NextDouble()));
            Assert.True(BruteForce(x) == E4m3.Round(x), $"seed {seed}: {x:R} → 0x{E4m3.Round(x):X2}, brute force 0x{BruteForce(x):X2}");
        }
    }

    [Fact]
    public void Magnitudes_past_448_saturate_and_NaN_gives_the_NaN_code()
    {
        foreach (var x in new[] { 448f, MathF.BitIncrement(448f), 464f, 480f, 1e6f, float.MaxValue, float.PositiveInfinity })
        {
            Assert.Equal(0x7E, E4m3.Round(x));
            Assert.Equal(0xFE, E4m3.Round(-x));
        }
        Assert.Equal(0x7E, E4m3.Round(MathF.BitDecrement(448f)));
        Assert.Equal(0x7D, E4m3.Round(MathF.BitDecrement(432f)));   // just below 432, the midpoint of 416 (0x7D) and 448
        Assert.Equal(E4m3.NaN, E4m3.Round(float.NaN));
        Assert.Equal(E4m3.NaN, E4m3.Round(-float.NaN));
    }

    [Fact]
    public void Negative_zero_and_negative_underflow_keep_the_sign()
    {
        Assert.Equal(0x80, E4m3.Round(-0f));
        Assert.Equal(0x80, E4m3.Round(-1e-30f));
        Assert.Equal(0x80, E4m3.Round(-float.Epsilon));
        Assert.Equal(0x00, E4m3.Round(0f));
        Assert.Equal(0x00, E4m3.Round(float.Epsilon));
        Assert.True(float.IsNegative(E4m3.ToSingle(0x80)) && E4m3.ToSingle(0x80) == 0f);
    }
}
