namespace KernelDsl.Launching;

/// <summary>A CUDA grid or block extent.</summary>
public readonly record struct Dim3(uint X, uint Y = 1, uint Z = 1)
{
    /// <summary>A grid extent within CUDA's limits: x up to 2^31 − 1, y and z up to 65535.</summary>
    public static Dim3 Of(long x, long y = 1, long z = 1)
    {
        Check(x, int.MaxValue, nameof(x));
        Check(y, ushort.MaxValue, nameof(y));
        Check(z, ushort.MaxValue, nameof(z));
        return new Dim3((uint)x, (uint)y, (uint)z);
    }

    private static void Check(long value, long maximum, string name)
    {
        if (value < 1 || value > maximum)
        {
            throw new ArgumentOutOfRangeException(name, value, $"A grid's {name} extent must be between 1 and {maximum} (CUDA's limit).");
        }
    }
}
