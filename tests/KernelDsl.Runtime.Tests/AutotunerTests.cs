using System.Collections.Concurrent;
using System.Text.Json;

namespace KernelDsl.Runtime.Tests;

public sealed class AutotunerTests : IDisposable
{
    private const string Key = "attention|sm_90|F16|D128|causal|Sq=4096|Sk=4096|B=4|Hq=16|Hkv=16";
    private static readonly string[] Strategies = ["TransPrmt", "Movmatrix", "Pretransposed"];

    private readonly string _directory = Path.Combine(Path.GetTempPath(), "kerneldsl-tests", Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_directory))
        {
            Directory.Delete(_directory, recursive: true);
        }
    }

    [Fact]
    public void The_first_request_times_every_candidate_once_and_picks_the_fastest()
    {
        var timer = new FakeTimer(("TransPrmt", 1.30), ("Movmatrix", 1.40), ("Pretransposed", 1.20));
        var tuner = new Autotuner(_directory);

        var result = tuner.Choose(Key, Strategies, timer.Measure);

        Assert.Equal("Pretransposed", result.Winner);
        Assert.Equal(1.20, result.WinnerMilliseconds);
        Assert.Equal(TuningSource.Measured, result.Source);
        Assert.Equal(Key, result.Key);
        Assert.Equal(new Dictionary<string, double> { ["TransPrmt"] = 1.30, ["Movmatrix"] = 1.40, ["Pretransposed"] = 1.20 }, result.Milliseconds);
        Assert.All(Strategies, name => Assert.Equal(1, timer.CallsOf(name)));
        Assert.Equal(new AutotunerStatistics(Tunings: 1, Measurements: 3, MemoryHits: 0, DiskHits: 0, RejectedEntries: 0, Warnings: 0), tuner.Statistics);
    }

    [Fact]
    public void A_tie_goes_to_the_first_listed_candidate()
    {
        var timer = new FakeTimer(("TransPrmt", 2.0), ("Movmatrix", 1.0), ("Pretransposed", 1.0));

        Assert.Equal("Movmatrix", new Autotuner(null).Choose(Key, Strategies, timer.Measure).Winner);
    }

    [Fact]
    public void A_second_request_for_the_key_is_answered_from_memory_without_timing()
    {
        var timer = new FakeTimer(("TransPrmt", 1.0), ("Movmatrix", 2.0), ("Pretransposed", 3.0));
        var tuner = new Autotuner(_directory);

        var first = tuner.Choose(Key, Strategies, timer.Measure);
        var second = tuner.Choose(Key, Strategies, timer.Measure);

        Assert.Same(first, second);
        Assert.Equal(3, timer.TotalCalls);
        Assert.Equal((1L, 1L, 0L), (tuner.Statistics.Tunings, tuner.Statistics.MemoryHits, tuner.Statistics.DiskHits));
        Assert.True(tuner.TryGetResult(Key, out var stored));
        Assert.Same(first, stored);
        Assert.False(tuner.TryGetResult("another key", out _));
        Assert.Equal([first], tuner.Results);
    }

    [Fact]
    public void A_new_tuner_on_the_same_folder_reads_the_decision_from_disk_without_timing()
    {
        var tunedAt = new DateTimeOffset(2026, 11, 25, 12, 30, 15, TimeSpan.Zero);
        var first = new Autotuner(_directory, new FixedTime(tunedAt))
            .Choose(Key, Strategies, new FakeTimer(("TransPrmt", 1.25), ("Movmatrix", 1.5), ("Pretransposed", 1.125)).Measure);
        var timer = new FakeTimer(("TransPrmt", 9.0), ("Movmatrix", 9.0), ("Pretransposed", 9.0));
        var tuner = new Autotuner(_directory);

        var result = tuner.Choose(Key, Strategies, timer.Measure);

        Assert.Equal(0, timer.TotalCalls);
        Assert.Equal(TuningSource.Disk, result.Source);
        Assert.Equal(first.Winner, result.Winner);
        Assert.Equal(first.Milliseconds, result.Milliseconds);
        Assert.Equal(tunedAt, result.TunedAt);
        Assert.Equal((0L, 1L, 0L), (tuner.Statistics.Tunings, tuner.Statistics.DiskHits, tuner.Statistics.Warnings));

        tuner.Choose(Key, Strategies, timer.Measure);
        Assert.Equal((1L, 1L), (tuner.Statistics.DiskHits, tuner.Statistics.MemoryHits));
    }

    [Fact]
    public void The_file_is_readable_json_with_the_key_winner_every_time_and_the_date()
    {
        var tunedAt = new DateTimeOffset(2026, 11, 25, 12, 30, 15, TimeSpan.Zero);
        var tuner = new Autotuner(_directory, new FixedTime(tunedAt));
        tuner.Choose(Key, Strategies, new FakeTimer(("TransPrmt", 1.25), ("Movmatrix", 1.5), ("Pretransposed", 1.125)).Measure);

        Assert.Equal(Path.Combine(Path.GetFullPath(_directory), "autotune"), tuner.Directory);
        var file = Assert.Single(Directory.GetFiles(tuner.Directory!));
        Assert.Matches("^[0-9a-f]{64}\\.json$", Path.GetFileName(file));
        using var json = JsonDocument.Parse(File.ReadAllBytes(file));
        var root = json.RootElement;
        Assert.Equal(1, root.GetProperty("format").GetInt32());
        Assert.Equal(Key, root.GetProperty("key").GetString());
        Assert.Equal("Pretransposed", root.GetProperty("winner").GetString());
        var times = root.GetProperty("milliseconds");
        Assert.Equal((1.25, 1.5, 1.125), (times.GetProperty("TransPrmt").GetDouble(), times.GetProperty("Movmatrix").GetDouble(), times.GetProperty("Pretransposed").GetDouble()));
        Assert.Equal(tunedAt, root.GetProperty("tunedAt").GetDateTimeOffset());
    }

    [Theory]
    [InlineData("not json")]
    [InlineData("truncated")]
    [InlineData("empty")]
    [InlineData("null")]
    [InlineData("another key")]
    [InlineData("future format")]
    [InlineData("no timings")]
    [InlineData("negative time")]
    [InlineData("winner not the fastest")]
    [InlineData("no date")]
    public void A_corrupt_file_is_ignored_with_a_warning_and_the_key_tuned_again(string damage)
    {
        var writer = new Autotuner(_directory);
        writer.Choose(Key, Strategies, new FakeTimer(("TransPrmt", 1.0), ("Movmatrix", 2.0), ("Pretransposed", 3.0)).Measure);
        var path = writer.EntryPath(Key)!;
        var text = File.ReadAllText(path);
        File.WriteAllText(path, damage switch
        {
            "not json" => "{ this is not json",
            "truncated" => text[..(text.Length / 2)],
            "empty" => "",
            "null" => "null",
            "another key" => text.Replace("\"key\": \"attention|", "\"key\": \"gemm|"),
            "future format" => text.Replace("\"format\": 1", "\"format\": 2"),
            "no timings" => text.Replace("\"winner\"", "\"ignored\"").Replace("\"milliseconds\"", "\"winner\": \"TransPrmt\", \"elsewhere\""),
            "negative time" => text.Replace("\"Movmatrix\": 2", "\"Movmatrix\": -2"),
            "winner not the fastest" => text.Replace("\"winner\": \"TransPrmt\"", "\"winner\": \"Pretransposed\""),
            "no date" => text.Replace("\"tunedAt\"", "\"when\""),
            _ => throw new ArgumentOutOfRangeException(nameof(damage)),
        });
        Assert.NotEqual(text, File.ReadAllText(path));
        var warnings = new List<string>();
        var timer = new FakeTimer(("TransPrmt", 5.0), ("Movmatrix", 4.0), ("Pretransposed", 6.0));
        var tuner = new Autotuner(_directory);
        tuner.Warning += (_, message) => warnings.Add(message);

        var result = tuner.Choose(Key, Strategies, timer.Measure);

        Assert.Equal("Movmatrix", result.Winner);
        Assert.Equal(TuningSource.Measured, result.Source);
        Assert.Equal(3, timer.TotalCalls);
        Assert.Contains(path, Assert.Single(warnings));
        Assert.Equal((1L, 0L, 1L, 1L), (tuner.Statistics.Tunings, tuner.Statistics.DiskHits, tuner.Statistics.RejectedEntries, tuner.Statistics.Warnings));
        // The new decision replaced the damaged file.
        Assert.Equal("Movmatrix", new Autotuner(_directory).Choose(Key, Strategies, timer.Measure).Winner);
        Assert.Equal(3, timer.TotalCalls);
    }

    [Fact]
    public void A_stored_winner_that_is_no_longer_a_candidate_is_tuned_again()
    {
        new Autotuner(_directory).Choose(Key, Strategies, new FakeTimer(("TransPrmt", 3.0), ("Movmatrix", 2.0), ("Pretransposed", 1.0)).Measure);
        var warnings = new List<string>();
        var timer = new FakeTimer(("TransPrmt", 3.0), ("Movmatrix", 2.0));
        var tuner = new Autotuner(_directory);
        tuner.Warning += (_, message) => warnings.Add(message);

        var result = tuner.Choose(Key, ["TransPrmt", "Movmatrix"], timer.Measure);

        Assert.Equal("Movmatrix", result.Winner);
        Assert.Equal(2, timer.TotalCalls);
        Assert.Contains("'Pretransposed' is not among the candidates", Assert.Single(warnings));
        Assert.Equal(1, tuner.Statistics.RejectedEntries);
    }

    [Fact]
    public void A_stored_decision_that_never_timed_a_new_candidate_is_tuned_again()
    {
        new Autotuner(_directory).Choose(Key, ["TransPrmt", "Movmatrix"], new FakeTimer(("TransPrmt", 3.0), ("Movmatrix", 2.0)).Measure);
        var warnings = new List<string>();
        var timer = new FakeTimer(("TransPrmt", 3.0), ("Movmatrix", 2.0), ("Pretransposed", 1.0));
        var tuner = new Autotuner(_directory);
        tuner.Warning += (_, message) => warnings.Add(message);

        Assert.Equal("Pretransposed", tuner.Choose(Key, Strategies, timer.Measure).Winner);
        Assert.Equal(3, timer.TotalCalls);
        Assert.Contains("never timed Pretransposed", Assert.Single(warnings));
    }

    [Fact]
    public void A_stored_decision_over_more_candidates_still_answers_a_subset_that_holds_its_winner()
    {
        new Autotuner(_directory).Choose(Key, Strategies, new FakeTimer(("TransPrmt", 3.0), ("Movmatrix", 2.0), ("Pretransposed", 1.0)).Measure);
        var timer = new FakeTimer(("TransPrmt", 3.0), ("Pretransposed", 1.0));
        var tuner = new Autotuner(_directory);

        var result = tuner.Choose(Key, ["Pretransposed", "TransPrmt"], timer.Measure);

        Assert.Equal(("Pretransposed", TuningSource.Disk, 0), (result.Winner, result.Source, timer.TotalCalls));
    }

    [Fact]
    public void The_same_key_with_another_candidate_list_in_memory_is_tuned_for_that_list()
    {
        var timer = new FakeTimer(("TransPrmt", 3.0), ("Movmatrix", 2.0), ("Pretransposed", 1.0));
        var tuner = new Autotuner(null);

        Assert.Equal("Pretransposed", tuner.Choose(Key, Strategies, timer.Measure).Winner);
        Assert.Equal("Movmatrix", tuner.Choose(Key, ["TransPrmt", "Movmatrix"], timer.Measure).Winner);
        Assert.Equal("Movmatrix", tuner.Choose(Key, ["Movmatrix", "TransPrmt"], timer.Measure).Winner);

        Assert.Equal(5, timer.TotalCalls);
        Assert.Equal((2L, 1L), (tuner.Statistics.Tunings, tuner.Statistics.MemoryHits));
        Assert.True(tuner.TryGetResult(Key, out var latest));
        Assert.Equal("Movmatrix", latest.Winner);
    }

    [Fact]
    public void Different_keys_are_tuned_and_stored_independently()
    {
        const string other = "attention|sm_90|F16|D128|causal|Sq=1024|Sk=1024|B=16|Hq=16|Hkv=16";
        var fast = new FakeTimer(("TransPrmt", 1.0), ("Movmatrix", 2.0), ("Pretransposed", 3.0));
        var slow = new FakeTimer(("TransPrmt", 3.0), ("Movmatrix", 2.0), ("Pretransposed", 1.0));
        var tuner = new Autotuner(_directory);

        Assert.Equal("TransPrmt", tuner.Choose(Key, Strategies, fast.Measure).Winner);
        Assert.Equal("Pretransposed", tuner.Choose(other, Strategies, slow.Measure).Winner);
        Assert.Equal((3, 3), (fast.TotalCalls, slow.TotalCalls));
        Assert.Equal(2, Directory.GetFiles(tuner.Directory!).Length);

        var reader = new Autotuner(_directory);
        var none = new FakeTimer();
        Assert.Equal("TransPrmt", reader.Choose(Key, Strategies, none.Measure).Winner);
        Assert.Equal("Pretransposed", reader.Choose(other, Strategies, none.Measure).Winner);
        Assert.Equal(0, none.TotalCalls);
        Assert.Equal(2, reader.Results.Count);
    }

    [Fact]
    public void Concurrent_first_requests_for_one_key_time_each_candidate_once()
    {
        var timer = new FakeTimer(("TransPrmt", 1.0), ("Movmatrix", 2.0), ("Pretransposed", 3.0)) { Delay = TimeSpan.FromMilliseconds(20) };
        var tuner = new Autotuner(_directory);
        var results = new ConcurrentBag<TuningResult>();

        Parallel.For(0, 16, new ParallelOptions { MaxDegreeOfParallelism = 16 }, _ => results.Add(tuner.Choose(Key, Strategies, timer.Measure)));

        Assert.All(Strategies, name => Assert.Equal(1, timer.CallsOf(name)));
        Assert.Single(results.Distinct());
        Assert.Equal("TransPrmt", results.First().Winner);
        Assert.Equal((1L, 15L), (tuner.Statistics.Tunings, tuner.Statistics.MemoryHits));
    }

    [Fact]
    public void An_unusable_folder_tunes_in_memory_and_warns()
    {
        // Root ignores permissions, so make the folder impossible instead: its parent is a regular file.
        Directory.CreateDirectory(_directory);
        var blocker = Path.Combine(_directory, "a-file");
        File.WriteAllText(blocker, "not a folder");
        var warnings = new List<string>();
        var timer = new FakeTimer(("TransPrmt", 2.0), ("Movmatrix", 1.0), ("Pretransposed", 3.0));
        var tuner = new Autotuner(Path.Combine(blocker, "cache"));
        tuner.Warning += (_, message) => warnings.Add(message);

        var first = tuner.Choose(Key, Strategies, timer.Measure);
        var second = tuner.Choose(Key, Strategies, timer.Measure);

        Assert.Equal("Movmatrix", first.Winner);
        Assert.Same(first, second);
        Assert.Equal(3, timer.TotalCalls);
        Assert.Contains("keeping the decision in memory only", Assert.Single(warnings));
        Assert.Equal((1L, 1L, 1L), (tuner.Statistics.Tunings, tuner.Statistics.MemoryHits, tuner.Statistics.Warnings));
        Assert.Equal(["a-file"], Directory.GetFileSystemEntries(_directory).Select(Path.GetFileName));
    }

    [Fact]
    public void A_memory_only_tuner_writes_nothing()
    {
        var tuner = new Autotuner(" ");

        Assert.Null(tuner.Directory);
        Assert.Equal("TransPrmt", tuner.Choose(Key, Strategies, new FakeTimer(("TransPrmt", 1.0), ("Movmatrix", 2.0), ("Pretransposed", 3.0)).Measure).Winner);
        Assert.False(Directory.Exists(_directory));
    }

    [Fact]
    public void A_measurement_that_throws_leaves_nothing_behind_and_the_next_request_tunes_again()
    {
        var tuner = new Autotuner(_directory);
        var failing = new FakeTimer(("TransPrmt", 1.0), ("Pretransposed", 3.0));

        Assert.Throws<KeyNotFoundException>(() => tuner.Choose(Key, Strategies, failing.Measure));
        Assert.False(Directory.Exists(tuner.Directory));
        Assert.False(tuner.TryGetResult(Key, out _));

        var timer = new FakeTimer(("TransPrmt", 1.0), ("Movmatrix", 2.0), ("Pretransposed", 3.0));
        Assert.Equal("TransPrmt", tuner.Choose(Key, Strategies, timer.Measure).Winner);
        Assert.Equal(3, timer.TotalCalls);
    }

    [Theory]
    [InlineData(double.NaN)]
    [InlineData(double.PositiveInfinity)]
    [InlineData(-1.0)]
    public void A_time_that_is_not_a_finite_non_negative_number_is_an_error(double bad)
    {
        var tuner = new Autotuner(_directory);

        var error = Assert.Throws<InvalidOperationException>(() => tuner.Choose(Key, Strategies, new FakeTimer(("TransPrmt", 1.0), ("Movmatrix", bad), ("Pretransposed", 3.0)).Measure));

        Assert.Contains("'Movmatrix'", error.Message);
        Assert.Equal(0, tuner.Statistics.Tunings);
    }

    [Fact]
    public void Bad_arguments_are_rejected()
    {
        var tuner = new Autotuner(null);
        var timer = new FakeTimer(("A", 1.0));

        Assert.Throws<ArgumentException>(() => tuner.Choose("", ["A"], timer.Measure));
        Assert.Throws<ArgumentException>(() => tuner.Choose(Key, [], timer.Measure));
        Assert.Throws<ArgumentException>(() => tuner.Choose(Key, ["A", ""], timer.Measure));
        Assert.Throws<ArgumentException>(() => tuner.Choose(Key, ["A", "A"], timer.Measure));
        Assert.Equal(0, timer.TotalCalls);
    }

    [Fact]
    public void MedianOf_discards_the_warm_ups_and_returns_the_median_of_the_runs()
    {
        var calls = new List<string>();
        double[] sequence = [100, 90, 5, 1, 4, 2, 3];
        var measure = Autotuner.MedianOf(name => { calls.Add(name); return sequence[calls.Count - 1]; }, warmups: 2, runs: 5);

        Assert.Equal(3, measure("X"));
        Assert.Equal(7, calls.Count);
        Assert.All(calls, name => Assert.Equal("X", name));
        var even = 0;
        Assert.Equal(2.5, Autotuner.Median(() => ++even, warmups: 0, runs: 4));
        Assert.Throws<ArgumentOutOfRangeException>(() => Autotuner.MedianOf(_ => 1, warmups: -1));
        Assert.Throws<ArgumentOutOfRangeException>(() => Autotuner.MedianOf(_ => 1, runs: 0));
    }

    /// <summary>A measuring function with fixed times that counts its calls; an unknown candidate throws.</summary>
    private sealed class FakeTimer(params (string Name, double Milliseconds)[] times)
    {
        private readonly ConcurrentDictionary<string, int> _calls = new();

        public TimeSpan Delay { get; init; }

        public int TotalCalls => _calls.Values.Sum();

        public int CallsOf(string name) => _calls.GetValueOrDefault(name);

        public double Measure(string name)
        {
            _calls.AddOrUpdate(name, 1, (_, count) => count + 1);
            if (Delay > TimeSpan.Zero)
            {
                Thread.Sleep(Delay);
            }
            foreach (var (known, milliseconds) in times)
            {
                if (known == name)
                {
                    return milliseconds;
                }
            }
            throw new KeyNotFoundException(name);
        }
    }

    private sealed class FixedTime(DateTimeOffset now) : TimeProvider
    {
        public override DateTimeOffset GetUtcNow() => now;
    }
}
