using KernelDsl.Launching;

namespace KernelDsl.Runtime.Tests;

/// <summary>Device, buffers, streams and launches on a real GPU; skipped on machines without one.</summary>
[KernelDsl.Testing.RequiresCudaDevice]
public class GpuRuntimeTests
{
    private static readonly KernelModuleDefinition Saxpy = new()
    {
        Name = "Tests.Saxpy",
        CudaSource = """
            extern "C" __global__ void __launch_bounds__(256) saxpy(const float* x, float* y, int n, float a)
            {
                int i = blockIdx.x * blockDim.x + threadIdx.x;
                if (i < n) y[i] = a * x[i] + y[i];
            }
            """,
        EntryPoints = [new KernelEntryPoint("saxpy", 256, 0)],
        Targets = ["sm_80", "sm_90"],
        MinimumSm = 80,
    };

    // One thread that spins for a number of clock cycles: queued work that cannot end early, whatever the host spends.
    private static readonly KernelModuleDefinition Spin = new()
    {
        Name = "Tests.Spin",
        CudaSource = """
            // Holds its stream until the host opens the gate (writes a nonzero int from another stream), or for at most
            // `cycles`, so a test that fails before opening it cannot hang.
            extern "C" __global__ void __launch_bounds__(32) spin(const volatile int* gate, long long cycles)
            {
                long long start = clock64();
                while (*gate == 0 && clock64() - start < cycles) { }
            }
            """,
        EntryPoints = [new KernelEntryPoint("spin", 32, 0)],
        Targets = ["sm_80", "sm_90"],
        MinimumSm = 80,
    };

    // 100 KiB of dynamic shared memory: more than the 48 KiB a kernel gets without opting in.
    private const int BigSharedBytes = 100 * 1024;

    private static readonly KernelModuleDefinition BigShared = new()
    {
        Name = "Tests.BigShared",
        CudaSource = """
            extern "C" __global__ void __launch_bounds__(256) reverse_sum(int* out)
            {
                extern __shared__ int tile[];
                const int n = 100 * 1024 / 4;
                for (int i = threadIdx.x; i < n; i += blockDim.x) tile[i] = i;
                __syncthreads();
                int sum = 0;
                for (int i = threadIdx.x; i < n; i += blockDim.x) sum += tile[n - 1 - i];
                atomicAdd(out, sum);
            }
            """,
        EntryPoints = [new KernelEntryPoint("reverse_sum", 256, BigSharedBytes)],
        Targets = ["sm_80", "sm_90"],
        MinimumSm = 80,
    };

    [Fact]
    public void The_device_reports_plausible_properties()
    {
        using var device = Gpu.OpenOrSkip();

        Assert.True(device.ComputeCapability >= 50);
        Assert.Equal($"sm_{device.ComputeCapability}", device.ArchName);
        Assert.True(device.SmCount > 0);
        Assert.True(device.L2CacheBytes > 0);
        Assert.True(device.MaxSharedMemoryPerBlockOptin >= device.SharedMemoryPerBlock);
        Assert.InRange(device.FreeMemoryBytes, 1, device.TotalMemoryBytes);
        Assert.False(string.IsNullOrWhiteSpace(device.Name));
    }

    [Fact]
    public void Buffers_round_trip_and_can_be_poisoned()
    {
        using var device = Gpu.OpenOrSkip();
        var data = Enumerable.Range(0, 1000).Select(i => i * 3 - 7).ToArray();
        using var buffer = device.Upload<int>(data);

        Assert.Equal(data, buffer.ToArray());
        Assert.Equal(4000, buffer.SizeInBytes);
        buffer.FillBytes(0xFF);
        Assert.All(buffer.ToArray(), value => Assert.Equal(-1, value));
        buffer.CopyFrom(data.AsSpan(0, 10));
        var prefix = new int[10];
        buffer.CopyTo(prefix);
        Assert.Equal(data[..10], prefix);
    }

    [Fact]
    public void Bad_allocations_and_disposed_buffers_fail_clearly()
    {
        using var device = Gpu.OpenOrSkip();

        Assert.Throws<ArgumentOutOfRangeException>("length", () => device.Allocate<float>(0));
        var tooMuch = Assert.Throws<CudaException>(() => device.Allocate<byte>(device.TotalMemoryBytes * 4));
        Assert.Equal(CuResult.OutOfMemory, tooMuch.Result);
        Assert.Equal("CUDA_ERROR_OUT_OF_MEMORY", tooMuch.ResultName);
        Assert.Contains($"Asked for {device.TotalMemoryBytes * 4} bytes", tooMuch.Message);
        Assert.Contains($"of {device.TotalMemoryBytes} bytes free", tooMuch.Message);
        var buffer = device.Allocate<float>(16);
        buffer.Dispose();
        Assert.Throws<ObjectDisposedException>(() => buffer.DevicePointer);
        Assert.Throws<ObjectDisposedException>(() => buffer.ToArray());
        Assert.Equal("q", Assert.Throws<ObjectDisposedException>(() => LaunchGuard.Buffer(buffer, "q")).ObjectName);
    }

    /// <summary>
    /// Small host-to-device copies go through the stream's four pinned slots. Twelve copies of one size (so no slot is
    /// reallocated) from one host array, overwritten after each call, are queued behind a kernel that spins until another
    /// thread opens its gate, once copy 4 is queued (fixed spins ended too early in whole-suite runs: a fixed amount of
    /// work in run 75, 100 ms in run 77, about a second in run 85): copies 5–12 reuse slots whose copies have not run yet,
    /// so each must wait for its slot's copy, or an earlier copy lands later data. Then copies at the slots' size limit and past it
    /// (pageable) land too.
    /// </summary>
    [Fact]
    public void Copies_queued_behind_work_land_as_they_were_when_queued_through_reused_pinned_slots()
    {
        using var device = Gpu.OpenOrSkip();
        using var stream = device.CreateStream();
        using var opener = device.CreateStream();
        using var gate = device.Allocate<int>(1);
        const int Small = 4096;
        // Compiled before it is queued, so that the spin starts when the copies are queued, not after NVRTC.
        stream.FillBytes(gate, 1);
        stream.Launch(Spin, "spin", Dim3.Of(1), new KernelArguments().Add(gate).Add(1L));
        stream.FillBytes(gate, 0);
        stream.Synchronize();
        int[] lengths = [.. Enumerable.Repeat(Small, 12), (int)(PinnedStaging.MaxBytes / sizeof(float)), (int)(PinnedStaging.MaxBytes / sizeof(float)) + 1];
        var host = new float[lengths.Max()];
        var buffers = lengths.Select(n => device.Allocate<float>(n)).ToArray();
        // The four slots' pinned memory, allocated before the gate closes: allocating pinned memory waits for the device,
        // so a first copy behind the gated kernel blocked the host until the kernel's cap (runs 85 to 87: 10 s).
        for (var i = 0; i < 4; i++)
        {
            stream.CopyToDevice(buffers[i], host.AsSpan(0, Small));
        }
        stream.Synchronize();
        // Closed until copy 5 waits for slot 0's copy, behind it; the cap (about 10 s) only bounds a test that fails before
        // opening it.
        stream.Launch(Spin, "spin", Dim3.Of(1), new KernelArguments().Add(gate).Add(20_000_000_000L));
        Thread? opening = null;
        try
        {
            for (var i = 0; i < lengths.Length; i++)
            {
                for (var j = 0; j < lengths[i]; j++)
                {
                    host[j] = i * 1_000_000 + j;
                }
                stream.CopyToDevice(buffers[i], host.AsSpan(0, lengths[i]));
                Array.Fill(host, -1f);  // the call has taken what it needs
                if (i == 3)
                {
                    Assert.False(stream.IsIdle(), "the gated kernel ended before the slots were reused: the test would prove nothing");
                    // Copy 5 now blocks on slot 0's copy, which waits for the kernel: another thread opens the gate shortly.
                    opening = new Thread(() =>
                    {
                        Thread.Sleep(100);
                        opener.FillBytes(gate, 1);
                    });
                    opening.Start();
                }
            }
            opening!.Join();
            stream.Synchronize();
            for (var i = 0; i < lengths.Length; i++)
            {
                var landed = buffers[i].ToArray();
                var wrong = Enumerable.Range(0, lengths[i]).FirstOrDefault(j => landed[j] != i * 1_000_000 + j, -1);
                Assert.True(wrong < 0, $"copy {i} ({lengths[i]} floats): element {wrong} is {(wrong < 0 ? 0 : landed[wrong])}");
            }
        }
        finally
        {
            opening?.Join();
            opener.FillBytes(gate, 1);  // a test that failed before the gate opened
            stream.Synchronize();
            foreach (var buffer in buffers)
            {
                buffer.Dispose();
            }
        }
    }

    // Copies n ints from a (possibly host-mapped) address to a device buffer: a kernel that reads mapped memory in place,
    // through the read-only path the decode kernel's table takes. It first waits `wait_ns`, so a slot freed before the
    // kernel ran (an event recorded too early) has been rewritten by the host when it reads.
    private static readonly KernelModuleDefinition CopyInts = new()
    {
        Name = "Tests.CopyInts",
        CudaSource = """
            extern "C" __global__ void __launch_bounds__(128) copy_ints(const int* __restrict__ source, int* __restrict__ destination, int n, long long wait_ns)
            {
                unsigned long long start, now;
                asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(start));
                do { asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(now)); } while ((long long)(now - start) < wait_ns);
                for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) destination[i] = __ldg(source + i);
            }
            """,
        EntryPoints = [new KernelEntryPoint("copy_ints", 128, 0)],
        Targets = ["sm_80", "sm_90"],
        MinimumSm = 80,
    };

    /// <summary>A mapped copy, which a test needs: the devices this suite runs on map host memory, and a fresh stream has every slot free.</summary>
    private static MappedHostCopy Map(CudaStream stream, ReadOnlySpan<int> host) =>
        stream.TryMapForKernels(host) ?? throw new InvalidOperationException($"{stream.Device.Name} did not map a copy (can map host memory: {stream.Device.CanMapHostMemory})");

    /// <summary>Queues copy_ints from <paramref name="address"/> into <paramref name="destination"/>, after it waits <paramref name="waitNs"/>.</summary>
    private static void CopyFrom(CudaStream stream, ulong address, DeviceBuffer<int> destination, long waitNs = 0) =>
        stream.Launch(CopyInts, "copy_ints", Dim3.Of(4), new KernelArguments().AddValue(address).Add(destination).Add((int)destination.Length).Add(waitNs));

    /// <summary>
    /// Kernels queued behind a gated kernel read mapped copies in place: twelve copies through the stream's four slots, so
    /// copies 5–12 reuse slots whose kernels have not run yet and must wait for them, or a kernel reads a later copy's data.
    /// </summary>
    [Fact]
    public void Kernels_queued_behind_work_read_mapped_copies_as_they_were_when_mapped()
    {
        using var device = Gpu.OpenOrSkip();
        using var stream = device.CreateStream();
        using var opener = device.CreateStream();
        using var gate = device.Allocate<int>(1);
        const int N = 3000, Copies = 12;
        var host = new int[N];
        var buffers = Enumerable.Range(0, Copies).Select(_ => device.Allocate<int>(N)).ToArray();
        // Both modules compiled, and the four slots' pinned memory allocated, before the gate closes (either would wait for the device).
        stream.FillBytes(gate, 1);
        stream.Launch(Spin, "spin", Dim3.Of(1), new KernelArguments().Add(gate).Add(1L));
        for (var i = 0; i < 4; i++)
        {
            using var warm = Map(stream, host);
            CopyFrom(stream, warm.Address, buffers[i]);
        }
        stream.FillBytes(gate, 0);
        stream.Synchronize();
        stream.Launch(Spin, "spin", Dim3.Of(1), new KernelArguments().Add(gate).Add(20_000_000_000L));
        Thread? opening = null;
        try
        {
            for (var i = 0; i < Copies; i++)
            {
                for (var j = 0; j < N; j++)
                {
                    host[j] = i * 1_000_000 + j;
                }
                using (var mapped = Map(stream, host))
                {
                    CopyFrom(stream, mapped.Address, buffers[i], waitNs: 200_000);
                }
                Array.Fill(host, -1);  // the mapping has taken what it needs
                if (i == 3)
                {
                    Assert.False(stream.IsIdle(), "the gated kernel ended before the slots were reused: the test would prove nothing");
                    // Mapping 5 now blocks on slot 0's kernel, which waits for the gate: another thread opens it shortly.
                    opening = new Thread(() =>
                    {
                        Thread.Sleep(100);
                        opener.FillBytes(gate, 1);
                    });
                    opening.Start();
                }
            }
            opening!.Join();
            stream.Synchronize();
            for (var i = 0; i < Copies; i++)
            {
                var read = buffers[i].ToArray();
                var wrong = Enumerable.Range(0, N).FirstOrDefault(j => read[j] != i * 1_000_000 + j, -1);
                Assert.True(wrong < 0, $"kernel {i}: element {wrong} is {(wrong < 0 ? 0 : read[wrong])}");
            }
        }
        finally
        {
            opening?.Join();
            opener.FillBytes(gate, 1);  // a test that failed before the gate opened
            stream.Synchronize();
            foreach (var buffer in buffers)
            {
                buffer.Dispose();
            }
        }
    }

    [Fact]
    public void A_mapped_copy_refuses_an_empty_or_oversized_span()
    {
        using var device = Gpu.OpenOrSkip();
        using var stream = device.CreateStream();
        var empty = Assert.Throws<ArgumentOutOfRangeException>(() => stream.TryMapForKernels(ReadOnlySpan<int>.Empty));
        Assert.Equal("source", empty.ParamName);
        var big = new byte[PinnedStaging.MaxBytes + 1];
        Assert.Equal("source", Assert.Throws<ArgumentOutOfRangeException>(() => stream.TryMapForKernels<byte>(big)).ParamName);
    }

    /// <summary>
    /// With every slot held by an undisposed mapping, a fifth mapping is refused (null: the caller uploads instead) and small
    /// copies go the pageable way; both land the right data, and a slot is mapped again once one mapping is disposed.
    /// </summary>
    [Fact]
    public void A_stream_with_every_slot_mapped_still_copies_and_maps_again_once_one_is_released()
    {
        using var device = Gpu.OpenOrSkip();
        if (!device.CanMapHostMemory)
        {
            Assert.Skip($"{device.Name} cannot map host memory: every mapping is refused, and the launchers upload.");
        }
        using var stream = device.CreateStream();
        const int N = 1000;
        var buffers = Enumerable.Range(0, 6).Select(_ => device.Allocate<int>(N)).ToArray();
        var held = new List<MappedHostCopy>();
        try
        {
            for (var i = 0; i < 4; i++)
            {
                held.Add(Map(stream, Enumerable.Range(i * N, N).ToArray()));
                CopyFrom(stream, held[i].Address, buffers[i]);
            }
            Assert.Null(stream.TryMapForKernels<int>(new int[N]));
            stream.CopyToDevice(buffers[4], Enumerable.Range(4 * N, N).ToArray());  // no slot: from pageable memory
            held[1].Dispose();
            using (var again = stream.TryMapForKernels<int>(Enumerable.Range(5 * N, N).ToArray()))
            {
                Assert.NotNull(again);
                CopyFrom(stream, again.Address, buffers[5]);
            }
            stream.Synchronize();
            for (var i = 0; i < buffers.Length; i++)
            {
                Assert.Equal(Enumerable.Range(i * N, N), buffers[i].ToArray());
            }
        }
        finally
        {
            held.ForEach(copy => copy.Dispose());
            stream.Synchronize();
            Array.ForEach(buffers, buffer => buffer.Dispose());
        }
    }

    /// <summary>
    /// A stream disposed while a mapping is live waits for the kernels that may read it before freeing its slots: the gated
    /// kernel's copy lands whole, and the stream says it waited (cuMemFreeHost may itself wait for the device, so the copy
    /// alone could land without the stream's wait). The mapping, disposed afterwards, has nothing left to release.
    /// </summary>
    [Fact]
    public void A_stream_disposed_under_a_live_mapping_waits_for_its_readers()
    {
        using var device = Gpu.OpenOrSkip();
        using var opener = device.CreateStream();
        using var gate = device.Allocate<int>(1);
        using var landed = device.Allocate<int>(3000);
        var stream = device.CreateStream();
        var expected = Enumerable.Range(7, 3000).ToArray();
        // Both modules loaded, and the four slots' pinned memory allocated, before the gate closes (either would wait for the device).
        opener.FillBytes(gate, 1);
        opener.Synchronize();
        stream.Launch(Spin, "spin", Dim3.Of(1), new KernelArguments().Add(gate).Add(1L));
        for (var i = 0; i < 4; i++)
        {
            using var warm = Map(stream, expected);
            CopyFrom(stream, warm.Address, landed);
        }
        stream.FillBytes(landed, 0xFF);
        stream.FillBytes(gate, 0);
        stream.Synchronize();
        MappedHostCopy? mapped = null;
        var opening = new Thread(() =>
        {
            Thread.Sleep(200);
            opener.FillBytes(gate, 1);
        });
        try
        {
            stream.Launch(Spin, "spin", Dim3.Of(1), new KernelArguments().Add(gate).Add(20_000_000_000L));
            mapped = Map(stream, expected);
            CopyFrom(stream, mapped.Address, landed, waitNs: 100_000);
            Assert.False(stream.IsIdle(), "the gated kernel ended before the stream was disposed: the test would prove nothing");
            opening.Start();
            stream.Dispose();
            Assert.True(stream.WaitedForMappedReaders, "the stream freed a mapped slot without waiting for the kernels that read it");
            mapped.Dispose();
        }
        finally
        {
            if (opening.IsAlive)
            {
                opening.Join();
            }
            opener.FillBytes(gate, 1);  // a test that failed before the gate opened
            opener.Synchronize();
            stream.Dispose();
            mapped?.Dispose();
        }
        device.Synchronize();
        Assert.Equal(expected, landed.ToArray());
    }

    [Fact]
    public void A_launch_computes_on_the_stream_and_compiles_its_module_once()
    {
        using var device = Gpu.OpenOrSkip();
        using var stream = device.CreateStream();
        const int N = 1000;
        var x = Enumerable.Range(0, N).Select(i => (float)i).ToArray();
        var y = Enumerable.Range(0, N).Select(i => 1.0f - i).ToArray();
        using var dx = device.Allocate<float>(N);
        using var dy = device.Allocate<float>(N);
        stream.CopyToDevice(dx, x);
        stream.CopyToDevice(dy, y);

        using var start = stream.Record();
        for (var launch = 0; launch < 2; launch++)
        {
            stream.Launch(Saxpy, "saxpy", Dim3.Of((N + 255) / 256), new KernelArguments().Add(dx).Add(dy).Add(N).Add(0.5f));
        }
        using var end = stream.Record();
        var result = new float[N];
        stream.CopyToHost(dy, result);
        stream.Synchronize();

        Assert.Equal(Enumerable.Range(0, N).Select(i => 1.0f - i + 2 * 0.5f * i), result);
        Assert.True(end.ElapsedMilliseconds(start) >= 0);
        var stats = device.Modules.Statistics;
        Assert.Equal(1, stats.Compilations + stats.DiskHits);
    }

    [Fact]
    public void A_kernel_with_more_than_48_KiB_of_dynamic_shared_memory_opts_in_and_runs()
    {
        using var device = Gpu.OpenOrSkip();
        if (device.MaxSharedMemoryPerBlockOptin < BigSharedBytes)
        {
            Assert.Skip($"{device.Name} allows only {device.MaxSharedMemoryPerBlockOptin} bytes of shared memory per block.");
        }
        using var stream = device.CreateStream();
        using var output = device.Upload<int>([0]);

        stream.Launch(BigShared, "reverse_sum", Dim3.Of(1), new KernelArguments().Add(output));
        stream.Synchronize();

        const int n = BigSharedBytes / 4;
        Assert.Equal(n * (n - 1) / 2, output.ToArray()[0]);
    }

    [Fact]
    public void A_module_needing_a_newer_sm_is_refused_before_compiling()
    {
        using var device = Gpu.OpenOrSkip();
        using var stream = device.CreateStream();
        using var buffer = device.Allocate<float>(1);
        var future = Saxpy with { Name = "Tests.Future", MinimumSm = 1000 };

        var error = Assert.Throws<NotSupportedException>(() =>
            stream.Launch(future, "saxpy", Dim3.Of(1), new KernelArguments().Add(buffer).Add(buffer).Add(1).Add(1.0f)));

        Assert.Contains("Tests.Future", error.Message);
        Assert.Contains(device.ArchName, error.Message);
    }

    [Fact]
    public void Threads_can_share_one_device()
    {
        using var device = Gpu.OpenOrSkip();

        Parallel.For(0, 8, new ParallelOptions { MaxDegreeOfParallelism = 8 }, worker =>
        {
            using var stream = device.CreateStream();
            var x = Enumerable.Range(0, 512).Select(i => (float)(i + worker)).ToArray();
            using var dx = device.Upload<float>(x);
            using var dy = device.Allocate<float>(x.Length);
            dy.FillBytes(0);
            stream.Launch(Saxpy, "saxpy", Dim3.Of(2), new KernelArguments().Add(dx).Add(dy).Add(x.Length).Add(2.0f));
            var y = new float[x.Length];
            stream.CopyToHost(dy, y);
            stream.Synchronize();
            Assert.Equal(x.Select(value => 2 * value), y);
        });
    }

    [Fact]
    public void Device_copies_move_ranges_and_strided_rows_and_streams_wait_for_events()
    {
        using var device = Gpu.OpenOrSkip();
        using var first = device.CreateStream();
        using var second = device.CreateStream();
        var data = Enumerable.Range(0, 4 * 10).Select(i => (float)i).ToArray();   // 4 rows of 10
        using var source = device.Upload<float>(data);
        using var middle = device.Allocate<float>(4 * 3);
        using var target = device.Allocate<float>(4 * 6);
        target.FillBytes(0);
        // Tokens 5..7 of every row into a dense [4][3], then into columns 2..4 of a [4][6] on another stream.
        first.Copy2D(source, 5, 10, middle, 0, 3, 3, 4);
        using var copied = first.Record();
        second.Wait(copied);
        second.Copy2D(middle, 0, 3, target, 2, 6, 3, 4);
        second.Copy(source, 39, target, 0, 1);
        second.Synchronize();
        var result = target.ToArray();
        for (var row = 0; row < 4; row++)
        {
            Assert.Equal(data[(row * 10 + 5)..(row * 10 + 8)], result[(row * 6 + 2)..(row * 6 + 5)]);
        }
        Assert.Equal(39f, result[0]);
        Assert.Equal("destination", Assert.Throws<ArgumentException>(() => first.Copy2D(source, 0, 10, target, 0, 6, 7, 4)).ParamName);
    }
}
