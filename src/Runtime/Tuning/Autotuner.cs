using System.Collections.Concurrent;
using System.Diagnostics;

namespace KernelDsl;

/// <summary>
/// Picks the fastest of several candidate configurations for a problem, once per tuning key, and remembers it.
/// The caller builds the key from everything the choice depends on (kernel, GPU, shape, …), names the candidates,
/// and supplies the function that times one candidate in milliseconds; the first request for a key times every
/// candidate, later ones are answered from memory, and a new process reads the decision from disk.
/// <para>
/// On disk each key has its own JSON file in <c>autotune/</c> under the module cache folder
/// (<see cref="ModuleCache.DefaultDirectory()"/>), written to a temporary file and renamed into place. A file
/// that is corrupt or unreadable, or whose timings do not cover every current candidate (its winner may be gone,
/// or a new candidate was added), is ignored with a <see cref="Warning"/> and the key is tuned again. If the folder
/// cannot be written, decisions stay in memory and a warning is raised. Concurrent first requests for one key
/// tune once. A measuring function that throws leaves nothing behind, so the next request tries again.
/// </para>
/// </summary>
public sealed class Autotuner
{
    private const char Separator = '\u001f';

    private readonly OnceByKey<string, TuningResult> _memory = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, TuningResult> _latest = new(StringComparer.Ordinal);
    private readonly TimeProvider _time;
    private long _tunings;
    private long _measurements;
    private long _memoryHits;
    private long _diskHits;
    private long _rejectedEntries;
    private long _warnings;

    /// <summary>A tuner that keeps its files under <paramref name="directory"/> (null: memory only).</summary>
    /// <param name="directory">The module cache folder; the files go in its <c>autotune</c> subfolder.</param>
    /// <param name="time">The clock that dates decisions (tests pass a fake one); the system clock when null.</param>
    public Autotuner(string? directory, TimeProvider? time = null)
    {
        Directory = string.IsNullOrWhiteSpace(directory) ? null : Path.GetFullPath(Path.Combine(directory, TuningFile.Folder));
        _time = time ?? TimeProvider.System;
    }

    /// <summary>A tuner in the default folder: <c>$KERNELDSL_CACHE_DIR</c>, else <c>$XDG_CACHE_HOME/kerneldsl</c>, else <c>~/.cache/kerneldsl</c>.</summary>
    public static Autotuner CreateDefault() => new(ModuleCache.DefaultDirectory());

    /// <summary>Raised with a message when a file is ignored or cannot be written; without a handler it goes to <see cref="Trace"/>.</summary>
    public event EventHandler<string>? Warning;

    /// <summary>The folder holding one JSON file per key, or null for a memory-only tuner.</summary>
    public string? Directory { get; }

    /// <summary>A snapshot of the counters.</summary>
    public AutotunerStatistics Statistics => new(
        Interlocked.Read(ref _tunings),
        Interlocked.Read(ref _measurements),
        Interlocked.Read(ref _memoryHits),
        Interlocked.Read(ref _diskHits),
        Interlocked.Read(ref _rejectedEntries),
        Interlocked.Read(ref _warnings));

    /// <summary>The latest decision this tuner returned for each key.</summary>
    public IReadOnlyCollection<TuningResult> Results => _latest.Values.ToArray();

    /// <summary>
    /// The decision for <paramref name="key"/> among <paramref name="candidates"/>: from memory, else from a valid
    /// file, else by calling <paramref name="measure"/> once per candidate, in order, and taking the smallest time.
    /// </summary>
    /// <param name="key">Everything the choice depends on, e.g. <c>attention|sm_90|F16|D128|causal|Sq=4096|…</c>.</param>
    /// <param name="candidates">Distinct, non-empty names; the winner is one of them.</param>
    /// <param name="measure">Milliseconds for one candidate (see <see cref="MedianOf"/>); it must return a finite number ≥ 0.</param>
    /// <exception cref="InvalidOperationException">The measuring function returned NaN, an infinity or a negative time.</exception>
    public TuningResult Choose(string key, IReadOnlyList<string> candidates, Func<string, double> measure)
    {
        ArgumentException.ThrowIfNullOrEmpty(key);
        ArgumentNullException.ThrowIfNull(candidates);
        ArgumentNullException.ThrowIfNull(measure);
        if (candidates.Count == 0)
        {
            throw new ArgumentException("At least one candidate is needed.", nameof(candidates));
        }
        if (candidates.Any(string.IsNullOrEmpty))
        {
            throw new ArgumentException("Candidate names must not be null or empty.", nameof(candidates));
        }
        if (candidates.Distinct(StringComparer.Ordinal).Count() != candidates.Count)
        {
            throw new ArgumentException($"Candidate names must be distinct: {string.Join(", ", candidates)}.", nameof(candidates));
        }

        // The same key asked with another candidate list is another question: it must not get a winner it cannot use.
        var memoryKey = key + Separator + string.Join(Separator, candidates.Order(StringComparer.Ordinal));
        var result = _memory.GetOrCreate(memoryKey, _ => Produce(key, candidates, measure), out var created);
        if (!created)
        {
            Interlocked.Increment(ref _memoryHits);
        }
        _latest[key] = result;
        return result;
    }

    /// <summary>The latest decision this tuner returned for <paramref name="key"/>, if any.</summary>
    public bool TryGetResult(string key, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out TuningResult? result) =>
        _latest.TryGetValue(key, out result);

    /// <summary>
    /// A measuring function that calls <paramref name="runOnce"/> <paramref name="warmups"/> times, ignoring the
    /// results, then <paramref name="runs"/> times, and returns the median of those (the mean of the middle two for an even count).
    /// </summary>
    public static Func<string, double> MedianOf(Func<string, double> runOnce, int warmups = 2, int runs = 5)
    {
        ArgumentNullException.ThrowIfNull(runOnce);
        ArgumentOutOfRangeException.ThrowIfNegative(warmups);
        ArgumentOutOfRangeException.ThrowIfLessThan(runs, 1);
        return candidate => Median(() => runOnce(candidate), warmups, runs);
    }

    /// <summary>Milliseconds <paramref name="launch"/>'s work takes on <paramref name="stream"/>, between two CUDA events (a measuring function's one run).</summary>
    public static double TimeOnStream(CudaStream stream, Action launch)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentNullException.ThrowIfNull(launch);
        using var start = stream.Record();
        launch();
        using var stop = stream.Record();
        stop.Synchronize();
        return stop.ElapsedMilliseconds(start);
    }

    /// <summary>The median milliseconds of <paramref name="launch"/>'s work on <paramref name="stream"/> (<see cref="TimeOnStream"/>, <see cref="Median"/>): a candidate's measurement.</summary>
    public static double MedianOnStream(CudaStream stream, Action launch, int warmups = 2, int runs = 5) =>
        Median(() => TimeOnStream(stream, launch), warmups, runs);

    /// <summary>The median of <paramref name="runs"/> calls of <paramref name="runOnce"/> after <paramref name="warmups"/> ignored ones.</summary>
    public static double Median(Func<double> runOnce, int warmups = 2, int runs = 5)
    {
        ArgumentNullException.ThrowIfNull(runOnce);
        ArgumentOutOfRangeException.ThrowIfNegative(warmups);
        ArgumentOutOfRangeException.ThrowIfLessThan(runs, 1);
        for (var i = 0; i < warmups; i++)
        {
            runOnce();
        }
        var times = new double[runs];
        for (var i = 0; i < runs; i++)
        {
            times[i] = runOnce();
        }
        Array.Sort(times);
        return runs % 2 == 1 ? times[runs / 2] : (times[runs / 2 - 1] + times[runs / 2]) / 2;
    }

    /// <summary>The file a key's decision lives in, or null for a memory-only tuner.</summary>
    internal string? EntryPath(string key) => Directory is null ? null : Path.Combine(Directory, TuningFile.NameOf(key));

    private TuningResult Produce(string key, IReadOnlyList<string> candidates, Func<string, double> measure)
    {
        var path = EntryPath(key);
        if (path is not null && TryLoad(path, key, candidates) is { } stored)
        {
            Interlocked.Increment(ref _diskHits);
            return stored;
        }
        var result = Measure(key, candidates, measure);
        if (path is not null)
        {
            Store(path, result);
        }
        return result;
    }

    private TuningResult Measure(string key, IReadOnlyList<string> candidates, Func<string, double> measure)
    {
        var times = new Dictionary<string, double>(StringComparer.Ordinal);
        string? winner = null;
        foreach (var candidate in candidates)
        {
            var time = measure(candidate);
            Interlocked.Increment(ref _measurements);
            if (!double.IsFinite(time) || time < 0)
            {
                throw new InvalidOperationException($"Timing candidate '{candidate}' for '{key}' gave {time} ms; a time must be a finite number ≥ 0.");
            }
            times[candidate] = time;
            if (winner is null || time < times[winner])
            {
                winner = candidate;
            }
        }
        Interlocked.Increment(ref _tunings);
        return new TuningResult(key, winner!, times, _time.GetUtcNow(), TuningSource.Measured);
    }

    private TuningResult? TryLoad(string path, string key, IReadOnlyList<string> candidates)
    {
        if (AtomicFile.TryRead(path, out var unreadable) is not { } file)
        {
            if (unreadable is not null)
            {
                Interlocked.Increment(ref _rejectedEntries);
                Warn($"Could not read tuning file '{path}' for '{key}' ({unreadable}); tuning again.");
            }
            return null;
        }
        var stored = TuningFile.Decode(file, key, out var problem);
        if (stored is null)
        {
            Interlocked.Increment(ref _rejectedEntries);
            Warn($"Ignoring tuning file '{path}' for '{key}': {problem}. Tuning again.");
            return null;
        }
        var untimed = candidates.Where(candidate => !stored.Milliseconds.ContainsKey(candidate)).ToArray();
        if (!candidates.Contains(stored.Winner, StringComparer.Ordinal) || untimed.Length > 0)
        {
            Interlocked.Increment(ref _rejectedEntries);
            var why = candidates.Contains(stored.Winner, StringComparer.Ordinal)
                ? $"it never timed {string.Join(", ", untimed)}"
                : $"its winner '{stored.Winner}' is not among the candidates ({string.Join(", ", candidates)})";
            Warn($"Tuning file '{path}' for '{key}' is stale: {why}. Tuning again.");
            return null;
        }
        return stored;
    }

    // AtomicFile: a reader sees no file or a complete one; two processes tuning one key replace one valid file with another.
    private void Store(string path, TuningResult result)
    {
        if (AtomicFile.TryWrite(path, TuningFile.Encode(result)) is { } error)
        {
            Warn($"Could not write tuning file '{path}' for '{result.Key}' ({error}); keeping the decision in memory only.");
        }
    }

    private void Warn(string message) => Warnings.Raise(this, Warning, ref _warnings, message);
}
