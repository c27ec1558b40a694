using System.Runtime.CompilerServices;
using KernelDsl.Native;

namespace KernelDsl.Runtime.Tests;

/// <summary>The checks of stream copies, made before anything reaches the driver.</summary>
public class StreamCopyTests
{
    [Fact]
    public void Rows_must_lie_inside_the_buffer()
    {
        CudaStream.CheckRows(40, 5, 10, 3, 4, "source");          // rows at 5, 15, 25, 35: the last ends at 38
        CudaStream.CheckRows(40, 0, 10, 10, 4, "source");
        CudaStream.CheckRows(0, 0, 0, 0, 0, "source");             // nothing to copy
        Assert.Contains("reach past", Assert.Throws<ArgumentException>(() => CudaStream.CheckRows(40, 8, 10, 3, 4, "source")).Message);
        Assert.Equal("target", Assert.Throws<ArgumentException>(() => CudaStream.CheckRows(40, 0, 2, 3, 4, "target")).ParamName);   // pitch < width
        Assert.Equal("target", Assert.Throws<ArgumentException>(() => CudaStream.CheckRows(40, -1, 10, 3, 1, "target")).ParamName);
        Assert.Equal("target", Assert.Throws<ArgumentException>(() => CudaStream.CheckRows(long.MaxValue, 0, long.MaxValue, 2, 3, "target")).ParamName);
    }

    [Fact]
    public void The_2D_copy_descriptor_has_the_drivers_layout()
    {
        // CUDA_MEMCPY2D: per side three size_t-sized fields around a padded int, then two size_t: 128 bytes on 64-bit.
        Assert.Equal(128, Unsafe.SizeOf<CudaMemcpy2D>());
    }
}
