using System.Runtime.InteropServices;
using KernelDsl.Launching;

namespace KernelDsl.Runtime.Tests;

public class KernelArgumentsTests
{
    [Fact]
    public void Each_argument_gets_a_naturally_aligned_slot_holding_its_value()
    {
        var args = new KernelArguments().Add(7).Add(123456789012L).Add(1.5f).AddNullPointer();
        Assert.Equal(4, args.Count);
        Assert.Equal(7, MemoryMarshal.Read<int>(args.ArgumentBytes(0, 4)));
        Assert.Equal(123456789012L, MemoryMarshal.Read<long>(args.ArgumentBytes(1, 8)));
        Assert.Equal(1.5f, MemoryMarshal.Read<float>(args.ArgumentBytes(2, 4)));
        Assert.Equal(0UL, MemoryMarshal.Read<ulong>(args.ArgumentBytes(3, 8)));
    }
}

public class Dim3Tests
{
    [Fact]
    public void Grid_extents_follow_cudas_limits_and_name_the_dimension()
    {
        Assert.Equal(new KernelDsl.Launching.Dim3(int.MaxValue, 65535, 65535), KernelDsl.Launching.Dim3.Of(int.MaxValue, 65535, 65535));
        Assert.Equal("y", Assert.Throws<ArgumentOutOfRangeException>(() => KernelDsl.Launching.Dim3.Of(1, 65536)).ParamName);
        Assert.Equal("z", Assert.Throws<ArgumentOutOfRangeException>(() => KernelDsl.Launching.Dim3.Of(1, 1, 70000)).ParamName);
        Assert.Equal("x", Assert.Throws<ArgumentOutOfRangeException>(() => KernelDsl.Launching.Dim3.Of((long)int.MaxValue + 1)).ParamName);
        Assert.Equal("x", Assert.Throws<ArgumentOutOfRangeException>(() => KernelDsl.Launching.Dim3.Of(0)).ParamName);
    }
}
