namespace KernelDsl.Attention.Reference;

/// <summary>
/// The 8-bit float e4m3 of the OCP FP8 spec and NVIDIA's fp8 tensor cores: 1 sign bit, 4 exponent bits with bias 7,
/// 3 mantissa bits; no infinities; S.1111.111 (0x7F, 0xFF) is NaN, so the largest finite value is 448 (S.1111.110) and
/// the smallest subnormal 2^-9. <see cref="Round"/> is PTX's <c>cvt.rn.satfinite.e4m3x2.f32</c> on one value.
/// </summary>
public static class E4m3
{
    public const float MaxFinite = 448f;
    /// <summary>The code the conversion gives a NaN (sign ignored).</summary>
    public const byte NaN = 0x7F;

    /// <summary>
    /// Round to nearest, ties to even, saturating: a magnitude above 448 (infinity included) becomes ±448; NaN becomes
    /// <see cref="NaN"/>; a value that rounds to zero keeps its sign (−0 is 0x80).
    /// </summary>
    public static byte Round(float value)
    {
        if (float.IsNaN(value))
        {
            return NaN;
        }
        var sign = float.IsNegative(value) ? 0x80 : 0;
        var magnitude = Math.Abs((double)value);
        if (magnitude >= MaxFinite)
        {
            return (byte)(sign | 0x7E);
        }
        // The quantum is 2^(e − 3) for a normal of exponent e ≥ −6 and 2^-9 (that of e = −6) below. Scaling by a power
        // of two is exact in double, so the only rounding is Math.Round's, to even. Codes count quanta from the
        // exponent's base, so a round up to 16 quanta carries into e + 1, and a subnormal's into 2^-6, by itself.
        var exponent = Math.Max(-6, Math.ILogB(magnitude));
        var quanta = (int)Math.Round(Math.ScaleB(magnitude, 3 - exponent), MidpointRounding.ToEven);
        return (byte)(sign | ((exponent + 6) * 8 + quanta));
    }

    /// <summary>The value of a code: ±2^(e − 7)·(1 + m/8), ±2^-6·(m/8) for e = 0, NaN for 0x7F and 0xFF. Exact in float.</summary>
    public static float ToSingle(byte code)
    {
        var (exponent, mantissa) = ((code >> 3) & 15, code & 7);
        if (exponent == 15 && mantissa == 7)
        {
            return float.NaN;
        }
        var magnitude = exponent == 0 ? MathF.ScaleB(mantissa, -9) : MathF.ScaleB(8 + mantissa, exponent - 10);
        return (code & 0x80) != 0 ? -magnitude : magnitude;
    }
}
