using System.Diagnostics;
using KernelDsl;
using KernelDsl.Attention.FlashAttention;
using KernelDsl.Runtime.Tests;

namespace GpuTests.Attention;

/// <summary>
/// Many threads launching many variants on their own streams get exactly the serial results; a long soak of mixed
/// shapes shows no drift and no growth in device memory. Results are compared bit for bit: the kernels are deterministic.
/// </summary>
public class ReliabilityGpuTests(ITestOutputHelper output)
{
    private sealed record Case(int Batch, int HeadsQ, int HeadsKv, int SeqQ, int SeqK, int HeadDim, AttentionOptions Options);

    private static readonly Case[] Cases =
    [
        new(1, 4, 2, 257, 300, 128, new AttentionOptions { V = VStrategy.TransPrmt }),
        new(2, 2, 2, 130, 130, 64, new AttentionOptions { Causal = true }),
        new(1, 2, 1, 500, 700, 128, new AttentionOptions { V = VStrategy.Movmatrix }),
        new(1, 2, 2, 64, 1000, 128, new AttentionOptions { Causal = true, Pv = PvPrecision.Float16 }),
        new(3, 1, 1, 17, 33, 64, new AttentionOptions { Pv = PvPrecision.Float16 }),
        new(1, 8, 1, 1024, 1024, 128, new AttentionOptions { V = VStrategy.Pretransposed }),
    ];

    /// <summary>One case's inputs on the device and its output, run with its own stream and attention instance.</summary>
    private sealed class Prepared : IDisposable
    {
        private readonly DeviceBuffer<Half> _q, _k, _v, _o;
        private readonly Case _case;

        public Prepared(CudaDevice device, Case c, int seed)
        {
            _case = c;
            var random = new Random(seed);
            Half[] Fill(long n) => Enumerable.Range(0, (int)n).Select(_ => (Half)(random.NextDouble() * 4 - 2)).ToArray();
            _q = device.Upload<Half>(Fill((long)c.Batch * c.HeadsQ * c.SeqQ * c.HeadDim));
            _k = device.Upload<Half>(Fill((long)c.Batch * c.HeadsKv * c.SeqK * c.HeadDim));
            _v = device.Upload<Half>(Fill((long)c.Batch * c.HeadsKv * c.SeqK * c.HeadDim));
            _o = device.Allocate<Half>(_q.Length);
        }

        public ushort[] Run(CudaStream stream, Int8Attention attention)
        {
            var c = _case;
            _o.FillBytes(0x7E);
            attention.Forward(stream, TensorView<Half>.Contiguous(_q, c.Batch, c.HeadsQ, c.SeqQ, c.HeadDim), TensorView<Half>.Contiguous(_k, c.Batch, c.HeadsKv, c.SeqK, c.HeadDim),
                TensorView<Half>.Contiguous(_v, c.Batch, c.HeadsKv, c.SeqK, c.HeadDim), TensorView<Half>.Contiguous(_o, c.Batch, c.HeadsQ, c.SeqQ, c.HeadDim), c.Options);
            stream.Synchronize();
            return _o.ToArray().Select(BitConverter.HalfToUInt16Bits).ToArray();
        }

        public void Dispose()
        {
            _q.Dispose();
            _k.Dispose();
            _v.Dispose();
            _o.Dispose();
        }
    }

    [Fact]
    public void Many_threads_on_their_own_streams_match_the_serial_results()
    {
        using var device = Gpu.OpenOrSkip();
        const int Threads = 8;
        // Per thread its own copy of every case: outputs must not be shared between concurrent launches.
        var prepared = Enumerable.Range(0, Threads).Select(_ => Cases.Select((c, i) => new Prepared(device, c, 1000 + i)).ToArray()).ToArray();
        try
        {
            ushort[][] serial;
            using (var stream = device.CreateStream())
            using (var attention = new Int8Attention(device))
            {
                serial = prepared[0].Select(p => p.Run(stream, attention)).ToArray();
            }
            var mismatches = 0;
            Parallel.For(0, Threads, new ParallelOptions { MaxDegreeOfParallelism = Threads }, t =>
            {
                using var stream = device.CreateStream();
                using var attention = new Int8Attention(device);
                for (var round = 0; round < 4; round++)
                {
                    // Each thread walks the cases in its own order, so different variants run at the same time.
                    for (var j = 0; j < Cases.Length; j++)
                    {
                        var i = (j + t) % Cases.Length;
                        if (!prepared[t][i].Run(stream, attention).AsSpan().SequenceEqual(serial[i]))
                        {
                            Interlocked.Increment(ref mismatches);
                        }
                    }
                }
            });
            Assert.Equal(0, mismatches);
        }
        finally
        {
            foreach (var p in prepared.SelectMany(x => x))
            {
                p.Dispose();
            }
        }
    }

    /// <summary>Runs for KERNELDSL_SOAK_SECONDS (skipped when unset): mixed shapes, bit-identical results, flat device memory.</summary>
    [Fact]
    public void Soak_of_mixed_shapes_shows_no_drift_and_no_memory_growth()
    {
        if (!int.TryParse(Environment.GetEnvironmentVariable("KERNELDSL_SOAK_SECONDS"), out var seconds) || seconds <= 0)
        {
            Assert.Skip("Set KERNELDSL_SOAK_SECONDS to run the soak.");
        }
        using var device = Gpu.OpenOrSkip();
        using var stream = device.CreateStream();
        using var attention = new Int8Attention(device);
        var prepared = Cases.Select((c, i) => new Prepared(device, c, 2000 + i)).ToArray();
        try
        {
            // Warm-up: every case once (compiles modules, grows the scratch to its largest), then the baseline.
            var expected = prepared.Select(p => p.Run(stream, attention)).ToArray();
            var freeAtStart = device.FreeMemoryBytes;
            var clock = Stopwatch.StartNew();
            var random = new Random(7);
            long iterations = 0, drift = 0;
            while (clock.Elapsed.TotalSeconds < seconds)
            {
                var i = random.Next(Cases.Length);
                if (!prepared[i].Run(stream, attention).AsSpan().SequenceEqual(expected[i]))
                {
                    drift++;
                }
                iterations++;
            }
            var growth = freeAtStart - device.FreeMemoryBytes;
            output.WriteLine($"soak: {iterations} launches of {Cases.Length} mixed shapes in {clock.Elapsed.TotalSeconds:F0} s; {drift} drifted; device memory growth {growth / 1e6:F1} MB");
            Assert.Equal(0, drift);
            Assert.True(growth <= 16 << 20, $"device memory shrank by {growth} bytes during the soak");
        }
        finally
        {
            foreach (var p in prepared)
            {
                p.Dispose();
            }
        }
    }
}
