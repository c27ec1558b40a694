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
