using System.Globalization;

namespace KernelDsl.Attention.FlashAttention;

/// <summary>What <see cref="AttentionOptions.Autotune"/> chose for one call.</summary>
/// <param name="Key">The tuning key: GPU, input type, head dim, causal and the problem's sizes.</param>
/// <param name="Strategy">The V strategy used.</param>
/// <param name="Tile">The tile configuration used (a declared variant's Tile).</param>
/// <param name="Result">The tuner's decision: every candidate's kernel time, the date, and whether it was timed now or read from disk.</param>
public sealed record AttentionTuning(string Key, VStrategy Strategy, string Tile, TuningResult Result);

// The autotuning glue of Int8Attention: which int8 variants compete, the tuning key, and how one is timed.
public sealed partial class Int8Attention
{
    private static readonly Lazy<Autotuner> SharedTuner = new(Autotuner.CreateDefault);

    /// <summary>
    /// The tuner <see cref="AttentionOptions.Autotune"/> uses. By default one per process, keeping its decisions beside
    /// the module cache (<see cref="ModuleCache.DefaultDirectory()"/>), so a shape is timed once per machine.
    /// </summary>
    public Autotuner Tuner { get; init; } = SharedTuner.Value;

    /// <summary>The decision behind the latest autotuned call, or null if there was none.</summary>
    public AttentionTuning? LastTuning { get; private set; }

    /// <summary>
    /// <paramref name="options"/> with <see cref="AttentionOptions.V"/> and <see cref="AttentionOptions.Tile"/> set to the
    /// fastest declared int8 variant for this problem: on the key's first use each candidate's whole call, its quantize
    /// kernels and its attention kernel, is timed (CUDA events, 2 warm-ups, median of 5); later uses, in this process or
    /// another, reuse the decision.
    /// </summary>
    private AttentionOptions Autotuned<T>(CudaStream stream, TensorView<T> q, TensorView<T> k, TensorView<T> v, TensorView<T> o,
        AttentionOptions options, DeviceBuffer<float>? lse, Element input, AttentionDims shape) where T : unmanaged
    {
        var fixedOptions = options with { Autotune = false };
        var candidates = TuningCandidates(input, shape.HeadDim, options.Causal, stream.Device.ComputeCapability);
        if (candidates.Count == 0)
        {
            return fixedOptions; // Select reports what is declared.
        }
        var key = TuningKey(stream.Device, input, shape, options.Causal);
        var result = Tuner.Choose(key, candidates, candidate =>
        {
            // The whole call is timed, the quantize kernels with the attention kernel: candidates differ in what they need
            // (Recipe C writes V transposed; a kernel that quantizes Q itself needs no Q pass).
            var (strategy, tile) = ParseCandidate(candidate);
            var candidateOptions = fixedOptions with { V = strategy, Tile = tile };
            return Autotuner.MedianOnStream(stream, () =>
            {
                var (variant, launch) = Prepare(stream, q, k, v, o, candidateOptions, lse);
                variant.Launch(launch);
            });
        });
        var (winner, winnerTile) = ParseCandidate(result.Winner);
        LastTuning = new AttentionTuning(key, winner, winnerTile, result);
        return fixedOptions with { V = winner, Tile = winnerTile };
    }

    /// <summary>
    /// Every declared int8 P·V variant for this input, head dim and masking that a device of this compute capability runs
    /// (the wgmma form only on sm_90), as tuner candidates "Strategy | Tile".
    /// </summary>
    internal static IReadOnlyList<string> TuningCandidates(Element input, int headDim, bool causal, int computeCapability) =>
        AttentionVariant.All
            .Where(v => v.Pv == PvPrecision.U8 && v.Input == input && v.HeadDim == headDim && v.Causal == causal && v.RunsOn(computeCapability))
            .Select(v => $"{v.V} | {v.Tile}")
            .ToArray();

    internal static (VStrategy Strategy, string Tile) ParseCandidate(string candidate)
    {
        var bar = candidate.IndexOf(" | ", StringComparison.Ordinal);
        return (Enum.Parse<VStrategy>(candidate[..bar]), candidate[(bar + 3)..]);
    }

    /// <summary>E.g. <c>attention|sm_90|NVIDIA H100 80GB HBM3|F16|D128|causal|Sq=4096|Sk=4096|B=4|Hq=16|Hkv=16</c>.</summary>
    internal static string TuningKey(CudaDevice device, Element input, AttentionDims shape, bool causal) =>
        TuningKey(device.ArchName, device.Name, input, shape, causal);

    internal static string TuningKey(string arch, string gpu, Element input, AttentionDims shape, bool causal) => string.Create(CultureInfo.InvariantCulture,
        $"attention|{arch}|{gpu}|{input}|D{shape.HeadDim}|{(causal ? "causal" : "noncausal")}|Sq={shape.SeqQ}|Sk={shape.SeqK}|B={shape.Batch}|Hq={shape.HeadsQ}|Hkv={shape.HeadsKv}");
}
