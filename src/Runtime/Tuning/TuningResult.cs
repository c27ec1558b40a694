namespace KernelDsl;

/// <summary>Where a <see cref="TuningResult"/> came from.</summary>
public enum TuningSource
{
    /// <summary>Every candidate was timed in this process.</summary>
    Measured,
    /// <summary>Read from a valid entry on disk written by an earlier tuning (this process or another).</summary>
    Disk,
}

/// <summary>The decision for one tuning key: the fastest candidate and what every candidate measured.</summary>
/// <param name="Key">The tuning key, as the caller built it.</param>
/// <param name="Winner">The candidate with the smallest time (the first listed on a tie).</param>
/// <param name="Milliseconds">Each candidate's measured time in milliseconds.</param>
/// <param name="TunedAt">When the candidates were timed (UTC).</param>
/// <param name="Source">Whether this process timed them or read them from disk.</param>
public sealed record TuningResult(
    string Key,
    string Winner,
    IReadOnlyDictionary<string, double> Milliseconds,
    DateTimeOffset TunedAt,
    TuningSource Source)
{
    /// <summary>The winner's time in milliseconds.</summary>
    public double WinnerMilliseconds => Milliseconds[Winner];
}

/// <summary>A snapshot of an <see cref="Autotuner"/>'s counters.</summary>
/// <param name="Tunings">Keys for which every candidate was timed.</param>
/// <param name="Measurements">Calls made to the caller's measuring function.</param>
/// <param name="MemoryHits">Requests answered from memory.</param>
/// <param name="DiskHits">Requests answered by a valid disk entry.</param>
/// <param name="RejectedEntries">Disk entries ignored as corrupt, unreadable or stale, and tuned again.</param>
/// <param name="Warnings">Warnings raised.</param>
public sealed record AutotunerStatistics(
    long Tunings,
    long Measurements,
    long MemoryHits,
    long DiskHits,
    long RejectedEntries,
    long Warnings);
