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
    public void Copies_past_the_drivers_maximum_pitch_go_row_by_row()
    {
        const long max = (1L << 31) - 1;   // CU_DEVICE_ATTRIBUTE_MAX_PITCH on current GPUs
        Assert.False(CudaStream.RowByRow(4096, 8192, 256, 100, max));
        Assert.False(CudaStream.RowByRow((nuint)max, (nuint)max, (nuint)max, 2, max));   // at the limit: one 2D copy
        Assert.True(CudaStream.RowByRow(256, 256, 256, 1, max));                       // one row needs no pitch
        Assert.True(CudaStream.RowByRow((nuint)max + 2, 256, 256, 4, max));             // a big BSHD chunk's source rows
        Assert.True(CudaStream.RowByRow(256, (nuint)max + 2, 256, 4, max));
        Assert.True(CudaStream.RowByRow((nuint)max + 2, (nuint)max + 2, (nuint)max + 1, 4, max));
    }

    [Fact]
    public void The_2D_copy_descriptor_has_the_drivers_layout()
    {
        // CUDA_MEMCPY2D: per side three size_t-sized fields around a padded int, then two size_t: 128 bytes on 64-bit.
        Assert.Equal(128, Unsafe.SizeOf<CudaMemcpy2D>());
    }

    [Fact]
    public unsafe void The_launch_config_and_attribute_have_the_drivers_layout()
    {
        // CUlaunchAttribute: the id, 4 bytes of padding, a 64-byte union. CUlaunchConfig: seven uints, the stream at 32, the
        // attributes at 40, their count at 48, 56 bytes in all.
        Assert.Equal(72, Unsafe.SizeOf<CuLaunchAttribute>());
        var attribute = new CuLaunchAttribute();
        Assert.Equal(8, (int)((byte*)&attribute.Value - (byte*)&attribute));
        Assert.Equal(56, Unsafe.SizeOf<CuLaunchConfig>());
        var config = new CuLaunchConfig();
        Assert.Equal(24, (int)((byte*)&config.SharedMemoryBytes - (byte*)&config));
        Assert.Equal(32, (int)((byte*)&config.Stream - (byte*)&config));
        Assert.Equal(40, (int)((byte*)&config.Attributes - (byte*)&config));
        Assert.Equal(48, (int)((byte*)&config.AttributeCount - (byte*)&config));
        Assert.Equal(6, CuLaunchAttribute.ProgrammaticStreamSerialization);
    }
}
