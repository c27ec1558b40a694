namespace KernelDsl.Attention.Reference;

/// <summary>Exact integer GEMM on the CPU: the reference the int8 GEMM kernels must equal bit for bit.</summary>
public static class GemmReference
{
    /// <summary>C[m][n] = Σ_k A[m][k]·B(k, n), with B stored [n][ldb] (TN) or [k][ldb] (NN).</summary>
    public static int[] Multiply(ReadOnlySpan<sbyte> a, ReadOnlySpan<sbyte> b, int m, int n, int k, int lda, int ldb, bool bIsKMajor)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(m, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(n, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(k, 1);
        var c = new int[m * n];
        for (var i = 0; i < m; i++)
        {
            for (var j = 0; j < n; j++)
            {
                var sum = 0;
                for (var p = 0; p < k; p++)
                {
                    var bValue = bIsKMajor ? b[j * ldb + p] : b[p * ldb + j];
                    sum += a[i * lda + p] * bValue;
                }
                c[i * n + j] = sum;
            }
        }
        return c;
    }
}
