using KernelDsl.Attention.Gemm;
using KernelDsl.Attention.Reference;
using KernelDsl.Runtime.Tests;

namespace GpuTests.Gemm;

/// <summary>
/// Every declared int8 GEMM variant on the GPU against exact int32 CPU results: equality, not tolerance.
/// Outputs are poisoned first, so an element the kernel never writes fails the comparison.
/// </summary>
public class Int8GemmGpuTests
{
    private const byte Poison = 0xA5;

    public static TheoryData<string, int, int, int> Cases()
    {
        var data = new TheoryData<string, int, int, int>();
        (int M, int N, int K)[] shapes = [(128, 128, 64), (256, 256, 512), (1, 1, 1), (17, 33, 45), (1000, 520, 777), (130, 200, 4096)];
        foreach (var variant in new[] { "TN", "NNTransPrmt", "NNMovmatrix", "NNPretransposed", "NNScaledF16" })
        {
            foreach (var (m, n, k) in shapes)
            {
                data.Add(variant, m, n, k);
            }
        }
        return data;
    }

    private static sbyte[] RandomInt8(Random random, int length, bool structured)
    {
        var values = new sbyte[length];
        for (var i = 0; i < length; i++)
        {
            // Structured: the extremes -128/127 and runs, where an off-by-one byte or a sign slip shows at once.
            values[i] = structured ? (sbyte)((i % 7) switch { 0 => -128, 1 => 127, 2 => -1, _ => random.Next(-128, 128) }) : (sbyte)random.Next(-128, 128);
        }
        return values;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Variant_equals_the_exact_cpu_product(string variant, int m, int n, int k)
    {
        using var device = Gpu.OpenOrSkip();
        using var stream = device.CreateStream();
        var random = new Random(HashCode.Combine(variant, m, n, k, Environment.TickCount));
        var structured = (m + n + k) % 2 == 0;
        var lda = (k + 15) / 16 * 16;
        var isTn = variant == "TN";
        var ldb = isTn ? lda : (n + 15) / 16 * 16;
        var a = RandomInt8(random, m * lda, structured);
        var b = RandomInt8(random, (isTn ? n : k) * ldb, structured);
        var expected = GemmReference.Multiply(a, b, m, n, k, lda, ldb, bIsKMajor: isTn);

        using var da = device.Upload<sbyte>(a);
        using var db = device.Upload<sbyte>(b);
        if (variant == "NNScaledF16")
        {
            var rowScale = Enumerable.Range(0, m).Select(_ => (float)(random.NextDouble() * 1e-3 + 1e-4)).ToArray();
            var colScale = Enumerable.Range(0, n).Select(_ => (float)(random.NextDouble() * 1e-2 + 1e-3)).ToArray();
            using var dr = device.Upload<float>(rowScale);
            using var dcs = device.Upload<float>(colScale);
            using var dc = device.Allocate<Half>((long)m * n);
            dc.FillBytes(Poison);
            Int8GemmNNScaledF16.Launch(stream, da, db, dc, dr, dcs, m, n, k, lda, ldb, n);
            stream.Synchronize();
            var actual = dc.ToArray();
            for (var i = 0; i < m; i++)
            {
                for (var j = 0; j < n; j++)
                {
                    // The kernel rounds acc·row·col (float) to f16 once: compare with the same rounding.
                    var want = (Half)((float)expected[i * n + j] * rowScale[i] * colScale[j]);
                    Assert.True(actual[i * n + j] == want, $"C[{i},{j}] = {actual[i * n + j]} but the exact product gives {want}");
                }
            }
            return;
        }

        using var c = device.Allocate<int>((long)m * n);
        c.FillBytes(Poison);
        switch (variant)
        {
            case "TN": Int8GemmTN.Launch(stream, da, db, c, m, n, k, lda, ldb, n); break;
            case "NNTransPrmt": Int8GemmNNTransPrmt.Launch(stream, da, db, c, m, n, k, lda, ldb, n); break;
            case "NNMovmatrix": Int8GemmNNMovmatrix.Launch(stream, da, db, c, m, n, k, lda, ldb, n); break;
            case "NNPretransposed":
                using (var bt = device.Allocate<sbyte>(Int8GemmNNPretransposed.TransposedBLength(n, k)))
                {
                    bt.FillBytes(Poison);
                    Int8GemmNNPretransposed.Launch(stream, da, db, bt, c, m, n, k, lda, ldb, n);
                    stream.Synchronize();
                }
                break;
        }
        stream.Synchronize();
        var result = c.ToArray();
        var mismatches = Enumerable.Range(0, expected.Length).Where(i => result[i] != expected[i]).ToList();
        Assert.True(mismatches.Count == 0,
            $"{mismatches.Count} of {expected.Length} elements differ; first at C[{mismatches.FirstOrDefault() / n},{mismatches.FirstOrDefault() % n}] = {(mismatches.Count > 0 ? result[mismatches[0]] : 0)}, expected {(mismatches.Count > 0 ? expected[mismatches[0]] : 0)}");
    }

    [Fact]
    public void Bad_arguments_are_refused_before_launch_and_name_the_argument()
    {
        using var device = Gpu.OpenOrSkip();
        using var stream = device.CreateStream();
        using var a = device.Allocate<sbyte>(64 * 64);
        using var b = device.Allocate<sbyte>(64 * 64);
        using var c = device.Allocate<int>(64 * 64);
        using var smallC = device.Allocate<int>(64 * 63);
        Assert.Equal("m", Assert.Throws<ArgumentOutOfRangeException>(() => Int8GemmTN.Launch(stream, a, b, c, 0, 64, 64)).ParamName);
        Assert.Equal("lda", Assert.Throws<ArgumentException>(() => Int8GemmTN.Launch(stream, a, b, c, 64, 64, 40, 40, 48, 64)).ParamName);
        Assert.Equal("c", Assert.Throws<ArgumentException>(() => Int8GemmTN.Launch(stream, a, b, smallC, 64, 64, 64)).ParamName);
        Assert.Equal("ldc", Assert.Throws<ArgumentOutOfRangeException>(() => Int8GemmTN.Launch(stream, a, b, c, 64, 64, 64, 64, 64, 63)).ParamName);
        using var disposed = device.Allocate<sbyte>(64 * 64);
        disposed.Dispose();
        Assert.Equal("b", Assert.Throws<ObjectDisposedException>(() => Int8GemmNNMovmatrix.Launch(stream, a, disposed, c, 64, 64, 64)).ObjectName);
        Assert.Equal("a", Assert.Throws<ArgumentNullException>(() => Int8GemmTN.Launch(stream, null!, b, c, 64, 64, 64)).ParamName);
    }
}
