namespace KernelDsl.Launching;

/// <summary>A CUDA grid or block extent.</summary>
public readonly record struct Dim3(uint X, uint Y = 1, uint Z = 1)
{
    public static Dim3 Of(long x, long y = 1, long z = 1)
    {
        Check(x, nameof(x));
        Check(y, nameof(y));
        Check(z, nameof(z));
        return new Dim3((uint)x, (uint)y, (uint)z);
    }

    private static void Check(long value, string name)
    {
        if (value < 1 || value > uint.MaxValue)
        {
            throw new ArgumentOutOfRangeException(name, value, "A grid or block extent must be between 1 and 2^32-1.");
        }
    }
}
