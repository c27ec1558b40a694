using KernelDsl;
using KernelDsl.Attention.FlashAttention;
using KernelDsl.Attention.Reference;
using KernelDsl.Launching;
using KernelDsl.Runtime.Tests;

namespace GpuTests.Attention;

/// <summary>
/// A variant declared in this test assembly, as a user declares one in their project: a sliding window with softcap,
/// served by <see cref="Int8Attention"/> like the library's.
/// </summary>
public static partial class UserWindowSoftcap
{
    [MaskModifier]
    public static bool Window(int b, int h, int q, int k, int window) => k <= q && q - k < window;

    [ScoreModifier]
    public static float Softcap(float score, int b, int h, int q, int k, float cap) => cap * MathF.Tanh(score / cap);

    [FlashAttentionForward(Like = typeof(Int8AttentionD128Wgmma))] public static partial class Wgmma;
    [FlashAttentionForward(Like = typeof(Int8AttentionD128TransPrmt))] public static partial class MmaSync;
}

/// <summary>
/// A score modifier whose divisor varies per score and that reads positions as floats (the per-score forms:
/// div.full.f32, float positions for q − k): a distance decay, causal.
/// </summary>
public static partial class UserDistanceDecay
{
    [ScoreModifier]
    public static float Decay(float score, int b, int h, int q, int k, float rate) => score / (1f + rate * MathF.Abs(q - k)) - rate * (q - k);

    [FlashAttentionForward(Like = typeof(Int8AttentionD128Wgmma), Causal = true)] public static partial class Wgmma;
    [FlashAttentionForward(Like = typeof(Int8AttentionD128TransPrmt), Causal = true)] public static partial class MmaSync;
}

/// <summary>
/// Every attention kernel with modifiers in the catalog (the library's families and this assembly's own) through
/// <see cref="Int8Attention"/> on the GPU, against float64 attention with the same C# modifier methods: lengths that are
/// not multiples of the blocks, Sq &lt; Sk and Sq &gt; Sk, GQA, rows the mask leaves empty (O = 0, LSE = −∞), and the
/// bars of the plain modes. O and the LSE are poisoned first.
/// </summary>
public class ModifierVariantGpuTests(ITestOutputHelper output)
{
    public static TheoryData<string> Kernels()
    {
        var data = new TheoryData<string>();
        // Touching the type runs this assembly's module initializer, which registers its own declarations.
        _ = UserWindowSoftcap.Wgmma.Info;
        foreach (var kernel in Int8Attention.Kernels.Where(k => k.ScoreModifier is not null || k.MaskModifier is not null))
        {
            data.Add(kernel.Name);
        }
        return data;
    }

    /// <summary>The GPU's arguments and the CPU reference's bound modifiers for a kernel's family, from the same C# methods.</summary>
    private static (ModifierArguments Gpu, AttentionModifiers Cpu) Bind(AttentionKernelInfo kernel, AttentionShape shape, CudaDevice device, Random random, List<IDisposable> owned)
    {
        var family = kernel.Name[..kernel.Name.LastIndexOf('.')];
        switch (family[(family.LastIndexOf('.') + 1)..])
        {
            case nameof(SlidingWindow):
            {
                var window = 37;
                return (new ModifierArguments().Set("window", window), new AttentionModifiers(Mask: (b, h, q, k) => SlidingWindow.Visible(b, h, q, k, window)));
            }
            case nameof(PrefixLm):
            {
                var prefix = 50;
                return (new ModifierArguments().Set("prefix", prefix), new AttentionModifiers(Mask: (b, h, q, k) => PrefixLm.Visible(b, h, q, k, prefix)));
            }
            case nameof(Softcap):
            {
                var cap = 2.5f;  // small enough that tanh bends most scores
                return (new ModifierArguments().Set("cap", cap), new AttentionModifiers(Score: (s, b, h, q, k) => Softcap.Cap(s, b, h, q, k, cap)));
            }
            case nameof(Alibi):
            {
                var slopes = Enumerable.Range(0, shape.HeadsQ).Select(i => MathF.Pow(2f, -8f * (i + 1) / shape.HeadsQ)).ToArray();
                var buffer = device.Upload<float>(slopes);
                owned.Add(buffer);
                return (new ModifierArguments().Set("slopes", buffer), new AttentionModifiers(Score: (s, b, h, q, k) => Alibi.Bias(s, b, h, q, k, slopes)));
            }
            case nameof(DocumentMask):
            {
                // Documents of random lengths 1..90 over the longer sequence.
                var documents = new int[Math.Max(shape.TokensQ, shape.TokensKv)];
                for (int i = 0, id = 0; i < documents.Length; id++)
                {
                    var length = random.Next(1, 91);
                    for (var j = 0; j < length && i < documents.Length; j++, i++)
                    {
                        documents[i] = id;
                    }
                }
                var buffer = device.Upload<int>(documents);
                owned.Add(buffer);
                return (new ModifierArguments().Set("documents", buffer), new AttentionModifiers(Mask: (b, h, q, k) => DocumentMask.SameDocument(b, h, q, k, documents)));
            }
            case nameof(CausalMask):
            {
                var offset = shape.TokensKv - shape.TokensQ;  // bottom-right, as the built-in causal flag
                return (new ModifierArguments().Set("offset", offset), new AttentionModifiers(Mask: (b, h, q, k) => CausalMask.Visible(b, h, q, k, offset)));
            }
            case nameof(UserWindowSoftcap):
            {
                var (window, cap) = (45, 4f);
                return (new ModifierArguments().Set("window", window).Set("cap", cap), new AttentionModifiers(
                    Score: (s, b, h, q, k) => UserWindowSoftcap.Softcap(s, b, h, q, k, cap),
                    Mask: (b, h, q, k) => UserWindowSoftcap.Window(b, h, q, k, window)));
            }
            case nameof(UserDistanceDecay):
            {
                var rate = 0.01f;
                return (new ModifierArguments().Set("rate", rate), new AttentionModifiers(Score: (s, b, h, q, k) => UserDistanceDecay.Decay(s, b, h, q, k, rate)));
            }
            default:
                throw new InvalidOperationException($"No test binding for {kernel.Name}: add its family here.");
        }
    }

    [Theory]
    [MemberData(nameof(Kernels))]
    public void Kernel_matches_float64_attention_with_the_same_modifiers(string name) => Check(name, small: false);

    /// <summary>
    /// Int8Attention.Fastest over a family's forms: every form that runs here is timed once (a second call reads the
    /// decision), and the chosen form, run alone on poisoned outputs, meets the float64 bars with the same mask.
    /// </summary>
    [Fact]
    public void The_fastest_form_of_a_family_is_timed_once_and_meets_the_bars()
    {
        using var device = Gpu.OpenOrSkip();
        var seed = Environment.TickCount;
        var random = new Random(seed);
        var shape = new AttentionShape(1, 2, 2, 700, 700, 128, false);
        var (q, k, v) = (Int8AttentionGpuTests.Gaussian(random, shape.QElements), Int8AttentionGpuTests.Gaussian(random, shape.KvElements),
            Int8AttentionGpuTests.Gaussian(random, shape.KvElements));
        var window = random.Next(50, 300);
        var forms = Int8Attention.FormsOf(typeof(SlidingWindow));
        var competing = Int8Attention.FormCandidates(forms, Element.F16, 128, device.ComputeCapability);
        var tuner = new Autotuner(null);
        AttentionKernelInfo? chosen = null;
        Int8AttentionGpuTests.Launch(device, shape, new AttentionOptions(), q, k, v, 0x7E, (_, s, tq, tk, tv, to, _, dl) =>
        {
            using var tuned = new Int8Attention(device) { Tuner = tuner };
            var arguments = new ModifierArguments().Set("window", window);
            chosen = tuned.Fastest(s, forms, tq, tk, tv, to, arguments, lse: dl);
            Assert.Equal(competing.Count, tuned.LastFormTuning!.Result.Milliseconds.Count);
            Assert.Same(chosen, tuned.Fastest(s, forms, tq, tk, tv, to, arguments, lse: dl));
            Assert.Equal(1, tuner.Statistics.Tunings);
            Assert.Equal(1, tuner.Statistics.MemoryHits);
        });
        Assert.Contains(chosen!, competing);
        var (o, lse) = Int8AttentionGpuTests.Launch(device, shape, new AttentionOptions(), q, k, v, 0x7E,
            (a, s, tq, tk, tv, to, _, dl) => a.Forward(s, chosen!, tq, tk, tv, to, new ModifierArguments().Set("window", window), lse: dl));
        var expected = Float64Attention.Forward(shape, q, k, v,
            modifiers: new AttentionModifiers(Mask: (b, h, i, j) => SlidingWindow.Visible(b, h, i, j, window)));
        var error = ErrorMetrics.Compare(o.Select(x => (double)x).ToArray(), expected.Output);
        output.WriteLine($"fastest of {competing.Count} SlidingWindow forms: {chosen!.Name} ({tuner.Results.Single().WinnerMilliseconds:F3} ms); rel L2 {error.RelativeL2:E2} cosine {error.Cosine:F6}");
        Assert.True(error.RelativeL2 <= 3e-2 && error.Cosine >= 0.999, $"seed {seed}, window {window}: rel L2 {error.RelativeL2}, cosine {error.Cosine}");
        Assert.True(lse.Zip(expected.Lse).All(x => Math.Abs(x.First - x.Second) <= 0.1), $"seed {seed}, window {window}: LSE off by more than 0.1");
    }

    /// <summary>Two small cases, for the sanitizer runs.</summary>
    internal void Small(string name) => Check(name, small: true);

    private void Check(string name, bool small)
    {
        using var device = Gpu.OpenOrSkip();
        var kernel = Int8Attention.Kernels.Single(k => k.Name == name);
        if (!kernel.RunsOn(device.ComputeCapability))
        {
            Assert.Skip($"{name} is built for {string.Join(", ", kernel.Module.Targets)}; this device is sm_{device.ComputeCapability}.");
        }
        var seed = Environment.TickCount;
        var random = new Random(seed);
        var d = kernel.HeadDim;
        // The plain modes' bars: 1.5e-2 for 16-bit P·V on f16 inputs, 3e-2 otherwise.
        var bar = kernel.FloatPv && kernel.Input == Element.F16 ? 1.5e-2 : 3e-2;
        (string Case, AttentionShape Shape)[] cases =
        [
            ("300×300", new AttentionShape(1, 2, 2, 300, 300, d, kernel.Causal)),
            ("GQA 4:1, Sq<Sk, BSHD", new AttentionShape(2, 4, 1, 77, 333, d, kernel.Causal, layout: TensorLayout.BSHD)),
            ("Sq>Sk, empty rows", new AttentionShape(1, 2, 1, 300, 70, d, kernel.Causal)),
            ("length 1000", new AttentionShape(1, 1, 1, 1000, 1000, d, kernel.Causal)),
        ];
        foreach (var (label, shape) in small ? cases[..1].Concat(cases[2..3]).ToArray() : cases)
        {
            var owned = new List<IDisposable>();
            try
            {
                var (gpu, cpu) = Bind(kernel, shape, device, random, owned);
                var q = Int8AttentionGpuTests.Gaussian(random, shape.QElements);
                var k = Int8AttentionGpuTests.Gaussian(random, shape.KvElements);
                var v = Int8AttentionGpuTests.Gaussian(random, shape.KvElements);
                double[] o;
                float[] lse;
                Float64AttentionResult expected;
                if (kernel.Input == Element.BF16)
                {
                    static ushort[] Bits(Half[] x) => x.Select(h => AttentionTensors.SingleToBf16((float)h)).ToArray();
                    var (qb, kb, vb) = (Bits(q), Bits(k), Bits(v));
                    var (ob, l) = Int8AttentionGpuTests.Launch(device, shape, new AttentionOptions(), qb, kb, vb, 0xFF,
                        (a, s, tq, tk, tv, to, _, dl) => a.ForwardBf16(s, kernel, tq, tk, tv, to, gpu, lse: dl));
                    (o, lse) = (ob.Select(x => (double)BitConverter.Int32BitsToSingle(x << 16)).ToArray(), l);
                    expected = Float64Attention.Forward(shape, qb, kb, vb, Element.BF16, modifiers: cpu);
                }
                else
                {
                    var (oh, l) = Int8AttentionGpuTests.Launch(device, shape, new AttentionOptions(), q, k, v, 0x7E,
                        (a, s, tq, tk, tv, to, _, dl) => a.Forward(s, kernel, tq, tk, tv, to, gpu, lse: dl));
                    (o, lse) = (oh.Select(x => (double)x).ToArray(), l);
                    expected = Float64Attention.Forward(shape, q, k, v, modifiers: cpu);
                }
                var error = ErrorMetrics.Compare(o, expected.Output);
                var (lseMax, emptyRows) = (0.0, 0);
                for (var i = 0; i < lse.Length; i++)
                {
                    if (double.IsNegativeInfinity(expected.Lse[i]))
                    {
                        emptyRows++;
                        Assert.True(float.IsNegativeInfinity(lse[i]), $"seed {seed}, {label}: row {i} sees no key, LSE {lse[i]} (want −∞)");
                        continue;
                    }
                    lseMax = Math.Max(lseMax, Math.Abs(lse[i] - expected.Lse[i]));
                }
                output.WriteLine($"{name} {label,-22} rel L2 {error.RelativeL2:E2}  cosine {error.Cosine:F6}  LSE max |Δ| {lseMax:E2}  empty rows {emptyRows}");
                Assert.True(error.RelativeL2 <= bar, $"seed {seed}, {label}: relative L2 {error.RelativeL2} over {bar}");
                Assert.True(error.Cosine >= 0.999, $"seed {seed}, {label}: cosine {error.Cosine}");
                Assert.True(lseMax <= 0.1, $"seed {seed}, {label}: LSE off by {lseMax}");
                // Empty rows: exactly 0 (the reference's 0, with no poison left).
                Assert.True(o.All(double.IsFinite), $"seed {seed}, {label}: O has non-finite values (unwritten rows keep the NaN poison)");
            }
            finally
            {
                owned.ForEach(x => x.Dispose());
            }
        }
    }

    [Fact]
    public void A_missing_or_mistyped_modifier_argument_is_refused_before_launch()
    {
        using var device = Gpu.OpenOrSkip();
        using var stream = device.CreateStream();
        using var attention = new Int8Attention(device);
        var shape = new AttentionShape(1, 1, 1, 64, 64, 128);
        using var x = device.Allocate<Half>(shape.QElements);
        var view = TensorView<Half>.Contiguous(x, 1, 1, 64, 128);
        var kernel = SlidingWindow.D128.Info;
        var missing = Assert.Throws<ArgumentException>(() => attention.Forward(stream, kernel, view, view, view, view, new ModifierArguments()));
        Assert.Contains("'window'", missing.Message);
        var mistyped = Assert.Throws<ArgumentException>(() => attention.Forward(stream, kernel, view, view, view, view, new ModifierArguments().Set("window", 3.5f)));
        Assert.Contains("must be a Int32", mistyped.Message);
        var extra = Assert.Throws<ArgumentException>(() => attention.Forward(stream, kernel, view, view, view, view, new ModifierArguments().Set("window", 3).Set("cap", 1f)));
        Assert.Contains("no modifier parameter 'cap'", extra.Message);
        // ALiBi indexes its slopes by the query head: fewer slopes than heads is refused before any work.
        using var twoHeads = device.Allocate<Half>(2 * 64 * 128);
        var heads = TensorView<Half>.Contiguous(twoHeads, 1, 2, 64, 128);
        using var oneSlope = device.Upload<float>([0.5f]);
        var shortArray = Assert.Throws<ArgumentException>(() => attention.Forward(stream, Alibi.D128.Info, heads, heads, heads, heads, new ModifierArguments().Set("slopes", oneSlope)));
        Assert.Equal("arguments", shortArray.ParamName);
        Assert.Contains("'slopes'", shortArray.Message);
        Assert.Contains("needs at least 2", shortArray.Message);
    }
}
